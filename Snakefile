# The iugc study: `snakemake --cores all` rebuilds it; dvc.yaml is generated from this DAG
# (`iugc dvc-yaml`), so `dvc repro` runs the same jobs.
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    variant="|".join(VARIANTS),
    method="|".join(PRETRAIN_METHODS) or "none",


include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "reports/ablation.md",
        "reports/figures",
        "reports/provenance.json",
    default_target: True


# Record the finished outputs in dvc.lock from this one process (jobs never call DVC, so they
# never fight over its lock); then `dvc status` agrees with Snakemake.
onsuccess:
    if Path(".dvc").is_dir():
        shell("dvc commit --force --quiet || echo 'dvc commit skipped: some stage outputs are missing'")
