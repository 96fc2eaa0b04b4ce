# The iugc study: `snakemake --cores all` rebuilds it; dvc.yaml is generated from this DAG
# (`iugc dvc-yaml`), so `dvc repro` runs the same jobs. Each rule runs the stage of its name
# (`iugc stage RULE ...`, declared in src/iugc/stages/).
import sys
from pathlib import Path

from snakemake.utils import min_version

from iugc.config import ParamsError, validate_params

min_version("9.0")


configfile: "params.yaml"


# One line naming the offending key (Snakemake's own validation prints the whole schema).
try:
    validate_params(config, "params.yaml")
except ParamsError as err:
    sys.exit(f"iugc: {err}")


ENV = "../envs/iugc.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    variant="|".join(VARIANTS),
    method="|".join(METHODS) or "none",
    seed="|".join(SEEDS),


include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.report.output,
    default_target: True


# Record the finished outputs in dvc.lock from this one process (jobs never call DVC, so they
# never fight over its lock); then `dvc status` agrees with Snakemake.
onsuccess:
    if Path(".dvc").is_dir():
        shell("dvc commit --force --quiet || echo 'dvc commit skipped: some stage outputs are missing'")
