# Helpers shared by the .smk files: the study's dimensions, the per-job parameter snapshots that
# make Snakemake rerun a job exactly when DVC would, and the check of finished results.
import sys

from iugc.gpus import uses_cuda, visible_gpus
from iugc.integrity import HashCache
from iugc.stages.verify import current_jobs, study_state
from iugc.stages.views import pretrain_method, pretrain_methods
from iugc.workflow import HASH_CACHE, OUTPUT_ROOTS, align_times, snapshot_path, write_snapshots

VARIANTS = list(config["variants"])
METHODS = pretrain_methods(config)
SEEDS = [str(seed) for seed in config["study"]["seeds"]]
THREADS = config["compute"]["threads"]  # of every job: the job runner fixes them (iugc stage)


def gpus_per_job():
    """GPUs of a training or evaluation job (its `gpu` resource): one when compute.device
    resolves to CUDA on the machine that plans, else none. The Slurm plugin turns it into
    --gpus=1 (on a cluster whose login node has no GPU, set compute.device: cuda, not auto)."""
    return 1 if uses_cuda(config["compute"]["device"]) else 0


# Run locally, at most as many GPU jobs at once as this machine has GPUs (each job takes one of
# its own, iugc/gpus.py); `--resources gpu=N` overrides. A profile cannot count the GPUs itself.
if workflow.global_resources["_nodes"].value is None and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", len(visible_gpus()))


# Before Snakemake plans: every finished result is checked against its stamp, and every job's
# parameter snapshot is written (see iugc/workflow.py); a result that is damaged, or was made
# from an input that is gone or changed since, gets its job's snapshot changed, so it is rebuilt;
# a result proven current gets a modification time Snakemake reads as current (dvc pull and
# dvc checkout do not keep them).
if workflow.is_main_process:
    _hashes = HashCache(HASH_CACHE)
    _study = study_state(OUTPUT_ROOTS, _hashes)
    _hashes.save()
    for _job, _reason in _study.outdated.items():
        print(f"iugc: {_reason}: {_job} runs again", file=sys.stderr)
    write_snapshots(config, _study.outdated, _study.made_with)
    align_times(current_jobs(config, _study))


def snapshot(stage):
    """Input function: the snapshot of the params a job of ``stage`` reads."""
    return lambda wildcards: snapshot_path(stage, dict(wildcards))


def data_source(wildcards):
    """The user's data tree, an input of `obtain` unless the data are the built-in phantom."""
    return {} if config["data"]["source"] == "phantom" else {"source": config["data"]["root"]}


def pretrained_encoder(wildcards):
    method = pretrain_method(config["variants"][wildcards.variant])
    return {"encoder": f"results/pretrain/{method}/seed{wildcards.seed}"} if method else {}


def option(name):
    """Params function: ``--name PATH`` when the job has the input ``name``, else nothing."""
    return lambda wildcards, input: f"--{name} {input[name]}" if name in input.keys() else ""
