# Helpers shared by the .smk files. The variants, the pretraining jobs they need, and the
# per-job parameter snapshots that make Snakemake rerun a job exactly when DVC would.
from iugc.stages.keys import pretrain_method, pretrain_methods
from iugc.workflow import param_snapshot

VARIANTS = list(config["variants"])
PRETRAIN_METHODS = pretrain_methods(config)
ENV = "../envs/iugc.yaml"


def snapshot(stage):
    """Input function: the snapshot of the params a job of ``stage`` reads."""

    def _snapshot(wildcards):
        wildcard = wildcards[0] if len(wildcards) else None
        return param_snapshot(config, stage, wildcard)

    return _snapshot


def source_root():
    """The external data folder, a dependency when the data are not the built-in phantom."""
    return [] if config["data"]["source"] == "phantom" else [config["data"]["root"]]


def encoder_of(wildcards):
    method = pretrain_method(config["variants"][wildcards.variant])
    return {"encoder": f"results/pretrain/{method}"} if method else {}


def encoder_arg(wildcards, input):
    return f"--encoder {input.encoder}" if "encoder" in input.keys() else ""
