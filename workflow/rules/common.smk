# Helpers shared by the .smk files: the study's dimensions, the per-job parameter snapshots that
# make Snakemake rerun a job exactly when DVC would, and the check of finished results.
import sys

from iugc.integrity import HashCache
from iugc.stages.registry import get_stage
from iugc.stages.verify import StudyState, study_state
from iugc.stages.views import pretrain_method, pretrain_methods
from iugc.workflow import HASH_CACHE, OUTPUT_ROOTS, param_snapshot

VARIANTS = list(config["variants"])
METHODS = pretrain_methods(config)
SEEDS = [str(seed) for seed in config["study"]["seeds"]]
THREADS = config["compute"]["threads"]  # of every job that computes with torch


# A finished result that is damaged, or was made from an input that is gone or changed since,
# is rebuilt: its job's snapshot changes (see iugc/workflow.py). Checked once, before planning.
STUDY = StudyState()
if workflow.is_main_process:
    _hashes = HashCache(HASH_CACHE)
    STUDY = study_state(OUTPUT_ROOTS, _hashes)
    _hashes.save()
    for _job, _reason in STUDY.outdated.items():
        print(f"iugc: {_reason}: {_job} runs again", file=sys.stderr)
_REBUILT = set()


def snapshot(stage):
    """Input function: the snapshot of the params a job of ``stage`` reads."""

    def _snapshot(wildcards):
        wildcards = dict(wildcards)
        job = get_stage(stage).job_id(wildcards)
        rebuild = job in STUDY.outdated and job not in _REBUILT
        _REBUILT.add(job)
        return param_snapshot(config, stage, wildcards, rebuild=rebuild, made_with=STUDY.made_with.get(job))

    return _snapshot


def data_source(wildcards):
    """The user's data tree, an input of `obtain` unless the data are the built-in phantom."""
    return {} if config["data"]["source"] == "phantom" else {"source": config["data"]["root"]}


def pretrained_encoder(wildcards):
    method = pretrain_method(config["variants"][wildcards.variant])
    return {"encoder": f"results/pretrain/{method}/seed{wildcards.seed}"} if method else {}


def option(name):
    """Params function: ``--name PATH`` when the job has the input ``name``, else nothing."""
    return lambda wildcards, input: f"--{name} {input[name]}" if name in input.keys() else ""
