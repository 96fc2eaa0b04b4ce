"""The device check of the CUDA path: one run on a lent GPU (benchmarks/gpu_check.sh), prepared and
rehearsed on the CPU (``--tiny``).

``prepare`` (on the CPU, before): copies a few dozen real frames into the check's folder (git-ignored,
``.gpucheck/``), writes its params.yaml and runs the data stages (obtain, validate, split, filter)
there through ``iugc stage``, so the GPU only trains. ``run`` (on the GPU), in that folder:

(a) the tests marked ``cuda`` (tests/test_cuda.py);
(b) the paper preset's training step (the full method, variant 2; hrnet_w48 at 512 px), batches 4 and
    16, encoder frozen and training, float16 autocast and fp32 (and autotuned kernels at the larger
    batch): s/step, images/s, share of the measured float16 matmul rate, peak GPU memory
    (benchmarks/run.py's step benchmark);
(c) a short chain on the real frames through ``iugc stage``: pretrain, finetune, evaluate, and
    ``iugc predict`` on CUDA and on the CPU, compared.

It writes its figures to OUT/gpu_check.json (after each part, so a run cut short keeps what it
measured) and a Markdown table to OUT/gpu_check.md. ``--tiny`` is the same on the smoke preset's
sizes: seconds on a CPU (where the cuda tests skip and autocast is off).

    python benchmarks/gpu_check.py prepare [--tiny] [--folder .gpucheck] [--data ../shared/data/psfhs_aop]
    python benchmarks/gpu_check.py run [--tiny] [--folder .gpucheck] [--out DIR] [--budget SECONDS]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pandas as pd

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
DATA = REPO.parent / "shared" / "data" / "psfhs_aop"
LABELS = Path("Training") / "Labeled cases" / "label.csv"
VARIANT, METHOD, SEED = "v2_moco_cbam_adv", "moco_hrnet", "1"  # the full method and its encoder

# The check's sizes, here only. "gpu": the paper preset's networks on a few dozen frames for a few
# epochs (the whole CUDA path once, in minutes); "tiny": the smoke preset's, seconds on a CPU.
SCALES = {
    "gpu": {"preset": "paper", "frames": 48, "step_batches": (4, 16), "steps": 5, "matmul_size": 8192,
            "params": ["study.seeds=[1]", "pretrain.moco.epochs=2", "finetune.epochs=3",
                       "finetune.unfreeze_epochs=[1,2]"]},
    "tiny": {"preset": "smoke", "frames": 24, "step_batches": (2,), "steps": 1, "matmul_size": 256,
             "params": ["study.seeds=[1]"]},
}


@contextlib.contextmanager
def inside(folder: Path):
    """Run in the check's folder: it is the study folder of the stages (paths relative to it)."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def stage(name: str, *args: str) -> None:
    """One job, as the rules run it (``iugc stage NAME ...``), in this process."""
    from iugc.stages.runner import main

    status = main([name, *args, "--params", "params.yaml", "--log", f"results/logs/{name}.log"])
    if status:
        raise RuntimeError(f"iugc stage {name} exited with status {status} (see results/logs/{name}.log)")


# --- prepare (CPU) -----------------------------------------------------------------------------

def copy_frames(source: Path, dst: Path, n: int) -> int:
    """``n`` labelled frames spread evenly over ``source`` (IUGC 2025 layout) copied into ``dst``."""
    labels = pd.read_csv(source / LABELS).sort_values("Filename", kind="stable").reset_index(drop=True)
    chosen = labels.iloc[[round(i * (len(labels) - 1) / (n - 1)) for i in range(n)]]
    (dst / LABELS).parent.mkdir(parents=True)
    for name in chosen["Filename"]:  # contents only, not the mode: the source may be read-only
        shutil.copyfile(source / LABELS.parent / name, dst / LABELS.parent / name)
    chosen.to_csv(dst / LABELS, index=False)
    (dst / "README.md").write_text(f"# {n} frames of {source.name} (device check)\n")
    return len(chosen)


def prepare(folder: Path, scale: dict, data: Path) -> None:
    from iugc.config import dump_params, load_preset, set_values

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    frames = copy_frames(data, folder / "frames", scale["frames"])
    params = set_values(load_preset(scale["preset"]),
                        ["data.source=iugc2025", "data.root=frames", *scale["params"]])
    (folder / "params.yaml").write_text(dump_params(params))
    with inside(folder):
        stage("obtain", "--source", "frames", "--out", "data/dataset")
        stage("validate", "--dataset", "data/dataset", "--out", "results/validate")
        stage("split", "--dataset", "data/dataset", "--validation", "results/validate", "--out", "results/split")
        stage("filter", "--dataset", "data/dataset", "--split", "results/split", "--out", "results/filter")
    print(f"gpu_check prepare: {frames} frames of {data} and the data stages in {folder}")


# --- run (GPU) ---------------------------------------------------------------------------------

def machine() -> dict:
    import torch

    from iugc.train.runtime import choose_device, device_record

    return {"date": datetime.date.today().isoformat(), "python": sys.version.split()[0],
            **device_record(choose_device(None)), "cuda_available": torch.cuda.is_available()}


def cuda_tests(out: Path) -> dict:
    """pytest -m cuda on tests/test_cuda.py, counted from its JUnit report."""
    report = out / "cuda_tests.xml"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q",
                             f"--junitxml={report}", str(REPO / "tests" / "test_cuda.py")],
                            cwd=REPO, capture_output=True, text=True)
    print(result.stdout[-3000:], result.stderr[-2000:], sep="\n")
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report (exit status {result.returncode}): {result.stderr[-500:]}")
    suite = ElementTree.parse(report).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed_tests": failed, "exit_status": result.returncode,
            "seconds": round(time.perf_counter() - started, 1)}


def step_rows(scale: dict, deadline: float, record: dict, save) -> None:
    """(b): benchmarks/run.py's step benchmark over batch, encoder, precision and kernels."""
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    from run import matmul_gflops, training_step

    from iugc.config import load_preset
    from iugc.stages.runner import use_determinism
    from iugc.train.runtime import amp_enabled, choose_device

    device = choose_device(None)
    size = scale["matmul_size"]
    rates = {"float16": matmul_gflops(device, size, repeats=10, dtype=torch.float16),
             "float32": matmul_gflops(device, size, repeats=10, dtype=torch.float32)}
    record["matmul_gflops"] = {"size": size, **rates}
    biggest = max(scale["step_batches"])
    cases = [(batch, frozen, amp, True) for batch in scale["step_batches"] for frozen in (True, False)
             for amp in (True, False)] + [(biggest, frozen, True, False) for frozen in (True, False)]
    for batch, frozen, amp, deterministic in cases:
        row = {"batch": batch, "encoder": "frozen" if frozen else "training", "amp": amp,
               "deterministic": deterministic}
        if time.perf_counter() > deadline:
            row["error"] = "not run: the check's time budget was spent"
        else:
            params = load_preset(scale["preset"])
            params["finetune"].update(batch_size=batch, amp=amp)
            row.update(encoder_name=params["encoders"]["hrnet"], amp_active=amp_enabled(device, amp))
            use_determinism(deterministic)
            try:
                row.update(training_step(params, device, frozen, scale["steps"], rates["float16"]))
            except torch.cuda.OutOfMemoryError as err:
                row["error"] = f"out of memory: {str(err).splitlines()[0]}"
            finally:
                use_determinism(True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        record["training_step"].append(row)
        print(json.dumps(row), flush=True)
        save()


def chain(record: dict, save) -> None:
    """(c): pretrain -> finetune -> calibrate -> evaluate -> predict on the prepared real frames (cwd:
    the folder)."""
    import numpy as np

    from iugc.cli import main as iugc
    from iugc.train.runtime import choose_device

    for stale in ("results/pretrain", "results/finetune", "results/calibrate", "results/eval", "results/checkpoints",
                  "results/predict"):
        shutil.rmtree(stale, ignore_errors=True)
    pretrained = f"results/pretrain/{METHOD}/seed{SEED}"
    model = f"results/finetune/{VARIANT}/seed{SEED}"
    calibration = f"results/calibrate/{VARIANT}/seed{SEED}"
    jobs = [
        ("pretrain", "--method", METHOD, "--seed", SEED, "--pool", "results/filter",
         "--checkpoints", f"results/checkpoints/pretrain/{METHOD}/seed{SEED}", "--out", pretrained),
        ("finetune", "--variant", VARIANT, "--seed", SEED, "--dataset", "data/dataset", "--split", "results/split",
         "--encoder", pretrained, "--checkpoints", f"results/checkpoints/finetune/{VARIANT}/seed{SEED}",
         "--out", model),
        ("calibrate", "--variant", VARIANT, "--seed", SEED, "--dataset", "data/dataset", "--split", "results/split",
         "--model", model, "--out", calibration),
        ("evaluate", "--variant", VARIANT, "--seed", SEED, "--dataset", "data/dataset", "--split", "results/split",
         "--model", model, "--calibration", calibration, "--out", f"results/eval/{VARIANT}/seed{SEED}"),
    ]
    for job in jobs:
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # ops without a deterministic kernel
            warnings.simplefilter("always")
            stage(*job)
        nondeterministic = sorted({str(w.message).splitlines()[0] for w in caught
                                   if "deterministic" in str(w.message)})
        out = Path(job[job.index("--out") + 1])
        stamp = json.loads((out / "stamp.json").read_text())
        entry = {"stage": job[0], "seconds": round(time.perf_counter() - started, 1), "device": stamp.get("device"),
                 "nondeterministic_ops": nondeterministic}
        if (out / "summary.json").is_file():
            summary = json.loads((out / "summary.json").read_text())
            entry.update({k: summary[k] for k in ("final_val_mre", "final_loss", "epochs_done", "images")
                          if k in summary})
        if (out / "metrics.json").is_file():
            entry["test_mre_px"] = json.loads((out / "metrics.json").read_text()).get("mre")
        record["chain"].append(entry)
        save()

    frames = str(Path("frames") / LABELS.parent)
    tables = {}
    for device in ("cuda", "cpu"):
        resolved = device if device == "cpu" or choose_device(None).type == "cuda" else "cpu"
        started = time.perf_counter()
        status = iugc(["predict", "--model", model, frames, "--out", f"results/predict/{device}", "--device", resolved,
                       "--calibration", str(Path(calibration) / "calibration.json")])
        if status:
            raise RuntimeError(f"iugc predict --device {resolved} exited with status {status}")
        tables[device] = pd.read_csv(f"results/predict/{device}/predictions.csv").set_index("Filename").sort_index()
        record["chain"].append({"stage": f"predict --device {resolved}", "frames": len(tables[device]),
                                "seconds": round(time.perf_counter() - started, 1)})
    points = {d: np.stack([t[c].str.strip("()").str.split(", ", expand=True).astype(float).to_numpy()
                           for c in ("PS1", "PS2", "FH1")], axis=1) for d, t in tables.items()}
    record["predict_devices"] = [entry["stage"].split()[-1] for entry in record["chain"][-2:]]
    record["predict_max_difference_px"] = float(np.abs(points["cuda"] - points["cpu"]).max())
    save()


def table(record: dict) -> str:
    m = record["machine"]
    lines = [f"# Device check ({record['scale']})", "",
             f"{m['device']}, driver {m.get('driver')}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, "
             f"torch {m['torch']}, Python {m['python']}, {m['date']}", ""]
    if record.get("matmul_gflops"):
        rates = record["matmul_gflops"]
        lines += [f"Matmul ({rates['size']}^3): float16 {rates['float16'] / 1e3:.1f} TFLOP/s, "
                  f"float32 {rates['float32'] / 1e3:.1f} TFLOP/s", ""]
    tests = record.get("cuda_tests")
    if tests:
        lines += [f"Tests marked cuda: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
                  f"{tests['skipped']} skipped ({tests['seconds']} s)"
                  + (f"; failed: {', '.join(tests['failed_tests'])}" if tests["failed_tests"] else ""), ""]
    if record["training_step"]:
        lines += ["| network | batch | encoder | precision | kernels | s/step | images/s | TFLOP/step "
                  "| of fp16 matmul | peak GPU memory |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in record["training_step"]:
            head = (f"| {r.get('encoder_name', '')} | {r['batch']} | {r['encoder']} | "
                    f"{_precision(r)} | "
                    f"{'deterministic' if r['deterministic'] else 'autotuned'} |")
            if "error" in r:
                lines.append(f"{head} {r['error']} | | | | |")
                continue
            memory = f"{r['peak_gpu_memory_mb'] / 1024:.1f} GiB" if "peak_gpu_memory_mb" in r else "-"
            lines.append(f"{head} {r['seconds_per_step']:.3f} | {r['images_per_second']:.1f} | "
                         f"{r['tflop_per_step']:.2f} | {r['share_of_matmul_rate']:.0%} | {memory} |")
        lines.append("")
    if record["chain"]:
        lines += ["| chain stage | seconds | figures |", "|---|---|---|"]
        for entry in record["chain"]:
            figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()
                                if k not in ("stage", "seconds", "device", "nondeterministic_ops"))
            lines.append(f"| {entry['stage']} | {entry['seconds']} | {figures} |")
        lines.append("")
    for entry in record["chain"]:
        for message in entry.get("nondeterministic_ops", []):
            lines.append(f"{entry['stage']}, no deterministic kernel: {message}")
    if "predict_max_difference_px" in record:
        first, second = record["predict_devices"]
        lines += [f"`iugc predict --device {first}` against `--device {second}`: largest difference "
                  f"{record['predict_max_difference_px']:.3f} px", ""]
    for name, message in record["errors"].items():
        lines.append(f"**{name} failed**: {message}")
    return "\n".join(lines) + "\n"


def _precision(row: dict) -> str:
    if row.get("amp_active"):
        return "float16 autocast"
    return "fp32 (autocast is CUDA-only)" if row["amp"] and "amp_active" in row else "fp32"


def run(folder: Path, out: Path, scale_name: str, budget: float) -> int:
    from iugc.config import load_params
    from iugc.stages.runner import use_determinism

    use_determinism(True)  # as the job runner does, before anything starts CUDA or cuBLAS
    scale = SCALES[scale_name]
    if not (folder / "params.yaml").is_file():
        raise SystemExit(f"gpu_check: {folder} is not prepared; run `make gpu-check-prepare` "
                         "(or gpu_check.py prepare) first")
    prepared = _in(folder, lambda: load_params("params.yaml"))["preset"]
    if prepared != scale["preset"]:
        raise SystemExit(f"gpu_check: {folder} was prepared with the {prepared} preset; "
                         f"prepare it again{' with --tiny' if scale_name == 'tiny' else ''}")
    deadline = time.perf_counter() + budget
    out.mkdir(parents=True, exist_ok=True)
    record = {"scale": scale_name, "machine": machine(), "cuda_tests": None, "training_step": [], "chain": [],
              "errors": {}}

    def save():
        (out / "gpu_check.json").write_text(json.dumps(record, indent=1) + "\n")
        (out / "gpu_check.md").write_text(table(record))

    save()
    parts = [("cuda_tests", lambda: record.update(cuda_tests=cuda_tests(out))),
             ("chain", lambda: _in(folder, lambda: chain(record, save))),
             ("training_step", lambda: step_rows(scale, deadline, record, save))]
    for name, part in parts:
        try:
            part()
        except Exception as err:  # the other parts still run; the record names what failed
            record["errors"][name] = f"{type(err).__name__}: {err}"
        save()
        print(f"gpu_check: {name} done after {budget - (deadline - time.perf_counter()):.0f} s", flush=True)
    print(table(record))
    tests = record["cuda_tests"] or {}
    return 1 if record["errors"] or tests.get("failures") or tests.get("errors") else 0


def _in(folder: Path, work):
    with inside(folder):
        return work()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "run"))
    parser.add_argument("--tiny", action="store_true", help="the smoke preset's sizes: seconds on a CPU")
    parser.add_argument("--folder", type=Path, default=REPO / ".gpucheck")
    parser.add_argument("--data", type=Path, default=DATA, help="real frames in IUGC 2025 layout (prepare)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", REPO / "reports" / "gpu_check")))
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds after which no further step benchmark starts (run)")
    args = parser.parse_args()
    scale = "tiny" if args.tiny else "gpu"
    if args.action == "prepare":
        prepare(args.folder.resolve(), SCALES[scale], args.data.resolve())
        return 0
    return run(args.folder.resolve(), args.out.resolve(), scale, args.budget)


if __name__ == "__main__":
    sys.exit(main())
