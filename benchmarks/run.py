"""The project's benchmarks in one command (`make bench`): figures against this machine's limit.

Measured in one run, on whatever this machine is (CPU threads as the study's jobs use them,
``compute.threads``; CUDA with the preset's mixed precision when there is a GPU):

- the machine's limit: a 2048^3 float32 matrix product, in GFLOP/s;
- a training step of the full method (variant 2: generator + PatchGAN discriminator, Eq. 17)
  at the paper's and the quick preset's architecture, encoder frozen and encoder training:
  seconds, images/s, FLOPs per step (counted by torch.utils.flop_counter on that very step)
  and the share of the machine's matmul rate it reaches;
- the data pipeline (decoding, resizing, Table 1 augmentation) against what a step consumes;
- inference: latency at batch 1 and throughput at batch 16 (the exported predictor's forward);
- peak memory of this process;
- with --study PATH (a finished study): how long `snakemake -n` and `dvc status` take there.

    python benchmarks/run.py [--short] [--presets paper quick] [--study PATH] [--json FILE]

``--short`` (what the test suite runs) measures the quick preset only, with few repetitions.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from iugc.config import load_preset
from iugc.data.dataset import LandmarkDataset
from iugc.inference import LandmarkPredictor
from iugc.models.landmark_net import build_landmark_model
from iugc.stages.views import finetune_config, landmark_spec
from iugc.train.finetune import FinetuneMethod
from iugc.train.runtime import choose_device

VARIANT = "v2_moco_cbam_adv"
LANDMARK_COLUMNS = ["image_path"] + [f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]


def _median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 3,
                  dtype: torch.dtype = torch.float32) -> float:
    a, b = (torch.rand(size, size, device=device).to(dtype) for _ in range(2))

    def product():
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    product()
    return 2 * size ** 3 / _median_seconds(product, repeats) / 1e9


def _batches(n: int, batch: int, size: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    # Images as the dataset hands them to a step: normalised (Table 1: divided by 255).
    return [(torch.rand(batch, 1, size, size, generator=g), torch.rand(batch, 3, 2, generator=g) * (size - 1),
             torch.arange(batch)) for _ in range(n)]


def training_step(params: dict, device: torch.device, frozen: bool, steps: int, limit: float) -> dict:
    """The full method's step at ``params``' architecture, batch size and precision (finetune.amp:
    float16 autocast on CUDA); ``limit``: the matmul rate (GFLOP/s) its share is taken of."""
    config = finetune_config(params, VARIANT)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    no_validation = LandmarkDataset(pd.DataFrame(columns=LANDMARK_COLUMNS), params["model"]["image_size"], None)
    method = FinetuneMethod(VARIANT, landmark_spec(params, VARIANT), config, device, no_validation, seed=0,
                            pretrained=True)
    method.begin_epoch(0 if frozen else config.unfreeze_epochs[-1])
    size, batch = params["model"]["image_size"], config.batch_size
    data = _batches(steps + 1, batch, size, device)
    method.step(data[0])  # warm-up
    with FlopCounterMode(display=False) as counter:
        method.step(data[0])
    flops = counter.get_total_flops()
    iterator = iter(data[1:])

    def one():
        losses = method.step(next(iterator))
        float(losses["total"])  # waits for the device

    seconds = _median_seconds(one, steps)
    row = {"seconds_per_step": seconds, "images_per_second": batch / seconds, "tflop_per_step": flops / 1e12,
           "share_of_matmul_rate": flops / seconds / (limit * 1e9), "batch": batch, "size": size}
    if device.type == "cuda":
        row["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return row


def data_pipeline(params: dict, frames: int) -> dict:
    """Frames/s of the training dataset (decode, resize, Table 1 augmentation) from PNG files."""
    from iugc.data.augment import AugmentConfig, build_augment
    from iugc.data.phantom import make_phantom

    with tempfile.TemporaryDirectory() as folder:
        root = make_phantom(Path(folder) / "ph", n_labeled=frames, n_unlabeled=0, seed=0, size=256,
                            standard_plane_fraction=0.5, frames_per_acquisition=6)
        from iugc.data.labels import load_labels

        labels = load_labels(root)
        start = time.perf_counter()
        dataset = LandmarkDataset(labels, params["model"]["image_size"],
                                  build_augment(AugmentConfig.from_section(params["augment"])), seed=0)
        decode = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        augment = time.perf_counter() - start
    return {"frames": frames, "decode_resize_frames_per_second": frames / decode,
            "augment_frames_per_second": frames / augment}


def inference(params: dict, device: torch.device, repeats: int) -> dict:
    spec = landmark_spec(params, VARIANT)
    predictor = LandmarkPredictor(build_landmark_model(spec), 0.0, 255.0).to(device).eval()
    size = spec.image_size
    one = torch.rand(1, 1, size, size, device=device) * 255
    many = torch.rand(16, 1, size, size, device=device) * 255

    def run(x):
        def go():
            with torch.no_grad():
                out = predictor(x)
            float(out[0].sum())
        return go

    run(one)()
    latency = _median_seconds(run(one), repeats)
    throughput = 16 / _median_seconds(run(many), max(1, repeats // 2))
    return {"latency_batch1_ms": latency * 1000, "frames_per_second_batch16": throughput}


def dry_runs(study: Path, repeats: int = 3) -> dict:
    """Seconds of `snakemake -n` and `dvc status` in a finished study (median of ``repeats``)."""
    env_bin = Path(sys.executable).parent

    def command(*cmd):
        return lambda: subprocess.run([str(env_bin / cmd[0]), *cmd[1:]], cwd=study, capture_output=True, check=True)

    command("snakemake", "-n")()  # the first run fills the hash cache
    return {"snakemake_dry_run_seconds": _median_seconds(command("snakemake", "-n"), repeats),
            "dvc_status_seconds": _median_seconds(command("dvc", "status"), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="quick preset only, few repetitions (the test suite)")
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--study", type=Path, default=None, help="a finished study: time its dry runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    presets = args.presets or (["quick"] if args.short else ["quick", "paper"])
    threads = load_preset("quick")["compute"]["threads"]
    torch.set_num_threads(threads)
    device = choose_device(None)
    steps, repeats = (2, 3) if args.short else (5, 10)

    limit = matmul_gflops(device)
    record = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": threads,
                          "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                          "torch": torch.__version__, "matmul_gflops": limit},
              "training_step": [], "inference": [], "data_pipeline": None, "dry_runs": None}
    print(f"{record['machine']['device']}, {threads} thread(s), torch {torch.__version__}: "
          f"2048^3 fp32 matmul {limit:.1f} GFLOP/s")
    print(f"{'preset':7} {'encoder':16} {'size':>4} {'batch':>5} {'encoder':>9} {'s/step':>8} {'img/s':>7} "
          f"{'TFLOP':>7} {'of limit':>8}")
    for name in presets:
        params = load_preset(name)
        for frozen in (True, False):
            row = training_step(params, device, frozen, 1 if name == "paper" else steps, limit)
            row.update(preset=name, encoder=params["encoders"]["hrnet"], frozen=frozen)
            record["training_step"].append(row)
            print(f"{name:7} {row['encoder']:16} {row['size']:>4} {row['batch']:>5} "
                  f"{'frozen' if frozen else 'training':>9} {row['seconds_per_step']:8.3f} {row['images_per_second']:7.2f} "
                  f"{row['tflop_per_step']:7.3f} {row['share_of_matmul_rate']:8.0%}", flush=True)
    for name in presets:
        row = {"preset": name, **inference(load_preset(name), device, 3 if name == "paper" else repeats)}
        record["inference"].append(row)
        print(f"inference {name}: {row['latency_batch1_ms']:.1f} ms at batch 1, "
              f"{row['frames_per_second_batch16']:.1f} frames/s at batch 16", flush=True)
    quick = load_preset("quick")
    record["data_pipeline"] = data_pipeline(quick, 24 if args.short else 96)
    demand = next(r["images_per_second"] for r in record["training_step"] if r["preset"] == "quick" and not r["frozen"])
    pipe = record["data_pipeline"]
    print(f"data pipeline (quick): decode + resize {pipe['decode_resize_frames_per_second']:.0f} frames/s once, "
          f"augmentation {pipe['augment_frames_per_second']:.0f} frames/s per epoch; a training step consumes "
          f"{demand:.0f} frames/s")
    if args.study:
        record["dry_runs"] = dry_runs(args.study)
        print(f"dry runs on {args.study}: snakemake -n {record['dry_runs']['snakemake_dry_run_seconds']:.2f} s, "
              f"dvc status {record['dry_runs']['dvc_status_seconds']:.2f} s")
    record["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        record["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(f"peak memory of this process: {record['peak_memory_mb']:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
