"""``iugc stage NAME ...``: run one job of the study, the same way under Snakemake and DVC.

The command line is built from the stage's declaration: ``--<wildcard> VALUE`` for each
wildcard, ``--<input> PATH`` (several for list inputs), ``--out PATH``, the stage's other
options, ``--params`` (default params.yaml) and ``--log``. The runner

1. reads and validates params.yaml and fixes the number of CPU threads from ``compute.threads``
   before the numerical libraries start, so the numbers do not depend on the environment the
   orchestrator hands down (Snakemake sets OMP_NUM_THREADS for its jobs, DVC does not); a job
   that computes with torch takes a GPU of its own where it sees several (``iugc.gpus``) and
   gets deterministic kernels or not from ``compute.deterministic``;
2. checks every stamped input (intact, made under the current parameters, consistent with the
   job's other inputs) and refuses a stale one in one line;
3. empties ``out`` (unless the stage shares it), runs the stage on its view of the parameters,
   and writes ``out/stamp.json`` last; a job that fails leaves no output behind.

A user's mistake ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import shutil
import sys
import time
from pathlib import Path

from ..config import load_params
from ..errors import UserError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CUBLAS_WORKSPACE = ":4096:8"  # what deterministic cuBLAS needs (CUDA's reproducibility notes)


def use_threads(threads: int) -> None:
    """Fix the CPU threads of every numerical library of this process to ``threads``: the
    variables are read when torch, numpy's BLAS or OpenMP start, which happens after this (a
    stage imports them when it runs; one that needs no torch never pays for importing it)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # already started (a caller that imported it): tell it directly
        import torch

        torch.set_num_threads(threads)


def use_determinism(enabled: bool) -> None:
    """``compute.deterministic``: deterministic cuDNN and torch kernels (cuBLAS needs its
    workspace fixed before CUDA starts, hence the variable), or the fastest kernels, cuDNN
    autotuning included. On a CPU the kernels are deterministic either way."""
    from ..train.runtime import set_deterministic

    if enabled:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    set_deterministic(enabled)


# What each argument of a stage is, by name (the rules in workflow/rules pass these folders).
ARGUMENT_HELP = {
    "variant": "the variant to run (a key of `variants` in params.yaml)",
    "seed": "the seed of this job (one of study.seeds)",
    "method": "the pretraining method: moco_hrnet, moco_resnet or mae_attention_unet",
    "source": "the data tree (data.root) when data.source is psfhs or iugc2025; none for the phantom",
    "dataset": "the obtain stage's manifest, data/dataset",
    "validation": "the validate stage's folder, results/validate",
    "split": "the split stage's folder, results/split",
    "pool": "the filter stage's folder, results/filter",
    "filter": "the filter stage's folder, results/filter",
    "encoder": "the pretrained encoder, results/pretrain/<method>/seed<s> (variants that pretrain)",
    "pretrained": "every pretrained encoder folder, results/pretrain/<method>/seed<s>",
    "finetuned": "every fine-tuned model folder, results/finetune/<variant>/seed<s>",
    "evaluations": "every evaluation folder, results/eval/<variant>/seed<s>",
    "results": "every stamped result the report rests on",
    "ablation": "the ablation stage's folder, results/ablation",
    "figures": "the figures stage's folder, results/figures",
    "checkpoints": "folder for the resumable state of an unfinished run",
    "calibration": "the calibrate stage's folder, results/calibrate/<variant>/seed<s>",
    "calibrations": "every calibration folder, results/calibrate/<variant>/seed<s>",
    "out": "the folder this job writes (emptied first, unless the stage shares it)",
}
# Arguments whose meaning depends on the stage.
STAGE_ARGUMENT_HELP = {
    ("evaluate", "model"): "the fine-tuned model to evaluate, results/finetune/<variant>/seed<s>",
    ("calibrate", "model"): "the fine-tuned model to calibrate, results/finetune/<variant>/seed<s>",
    ("report", "model"): "the export stage's folder, reports/model",
}


def argument_help(stage, name: str) -> str | None:
    return STAGE_ARGUMENT_HELP.get((stage.name, name), ARGUMENT_HELP.get(name))


def summary(stage) -> str:
    """One line on what ``stage`` does: the first paragraph of its docstring."""
    first = (stage.run.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(first.split())


def describe_stages() -> str:
    """Every stage with one line each, in the order of the study."""
    from .registry import stages

    known = stages()
    width = max(map(len, known))
    return "\n".join(f"  {name:<{width}}  {summary(stage)}" for name, stage in known.items())


def _parser(stage) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"iugc stage {stage.name}", description=summary(stage),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="A job of the study, as the rule of the same name runs it "
                                            "(workflow/rules);\nprefer `snakemake` or `dvc repro`.")
    for name in stage.wildcards:
        parser.add_argument(f"--{name}", required=True, help=argument_help(stage, name))
    for p in inspect.signature(stage.run).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name in stage.wildcards:
            continue
        required = p.default is inspect.Parameter.empty
        many = "list" in str(p.annotation)
        help_text = argument_help(stage, p.name)
        if help_text is not None and not required and p.default is not None:
            help_text += " (default: %(default)s)"
        parser.add_argument(f"--{p.name.replace('_', '-')}", dest=p.name, required=required,
                            nargs="+" if many else None, default=None if required else p.default,
                            help=help_text)
    parser.add_argument("--params", default="params.yaml", help="the parameter file (default: %(default)s)")
    parser.add_argument("--log", default=None, help="also write what the stage prints to this file")
    return parser


def run_job(stage, params: dict, args: dict) -> None:
    """Run one job: check its inputs, run the stage into a fresh ``out``, stamp the result."""
    from ..integrity import STAMP_FILE, write_stamp
    from .verify import check_inputs

    wildcards = {name: args.pop(name) for name in stage.wildcards}
    inputs = {name: args[name] for name in stage.inputs if args.get(name) is not None}
    view = stage.view(params, wildcards)
    if stage.on_device:  # a job that computes with torch: its own GPU first, before CUDA starts
        from ..gpus import claim_gpu, uses_cuda

        if uses_cuda(view["compute"]["device"]):
            claim_gpu()
        use_determinism(view["compute"]["deterministic"])
    check_inputs(params, inputs)
    out = Path(args["out"])
    if stage.owns_out and out.exists():
        shutil.rmtree(out)
    (out / STAMP_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        written = stage.run(stage.handed(params, wildcards), **wildcards, **args)
    except BaseException:
        if stage.owns_out:
            shutil.rmtree(out, ignore_errors=True)
        raise
    record = {"job": stage.job_id(wildcards), "stage": stage.name, "wildcards": wildcards,
              "params": view, "seconds": round(time.perf_counter() - started, 3),
              "threads": params["compute"]["threads"]}
    if stage.on_device:
        from ..train.runtime import device_record

        record["device"] = device_record(view["compute"]["device"])
    write_stamp(out, record, inputs,
                files=None if stage.owns_out else written)


def main(argv: list[str]) -> int:
    """``iugc stage NAME [options]``; returns the exit status."""
    from .registry import get_stage

    if not argv or argv[0].startswith("-"):
        usage = ("usage: iugc stage NAME [--help] [options]\n\n"
                 "Runs one job of the study, as the rule of the same name does. The stages:\n"
                 f"{describe_stages()}\n")
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(usage, end="", file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    name, rest = argv[0], argv[1:]
    if "-h" in rest or "--help" in rest:  # help needs no params.yaml
        try:
            stage = get_stage(name)
        except KeyError as err:
            print(f"{name}: error: {err.args[0]}", file=sys.stderr)
            return 2
        _parser(stage).print_help()
        return 0
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--params", default="params.yaml")
    early.add_argument("--log", default=None)
    known, _ = early.parse_known_args(rest)
    with _tee(known.log):
        try:
            params = load_params(known.params)
            use_threads(params["compute"]["threads"])
            try:
                stage = get_stage(name)
            except KeyError as err:
                raise UserError(err.args[0]) from None
            args = vars(_parser(stage).parse_args(rest))
            args.pop("params"), args.pop("log")
            run_job(stage, params, args)
        except UserError as err:
            print(f"{name}: error: {err}", file=sys.stderr)
            return 2
    return 0


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def _tee(log: str | None):
    """Copy stdout and stderr into ``log`` (the orchestrator's log file) while still printing."""
    if not log:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, handle), _Tee(err, handle)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err
