"""Benchmark: one fine-tuning step (Eq. 17, generator + discriminator) and images/s.

Runs the real training step (iugc.train.finetune.FinetuneMethod.step) on synthetic batches for the
paper's architecture and the quick preset's, on the CPU and, where there is one, on CUDA (with
the preset's mixed precision). Two encoder states: frozen (epochs before the first unfreeze)
and fully trainable (after the last).

    python benchmarks/train_step.py [--presets paper quick] [--variant v2_moco_cbam_adv] [--steps 3]
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from iugc.config import load_preset
from iugc.data.dataset import LandmarkDataset
from iugc.stages.views import finetune_config, landmark_spec
from iugc.train.finetune import FinetuneMethod


def synthetic_batches(n: int, batch: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        images = torch.rand(batch, 1, size, size, generator=g)
        points = torch.rand(batch, 3, 2, generator=g) * (size - 1)
        yield images, points, torch.arange(batch)


def bench(params: dict, variant: str, device: torch.device, steps: int, warmup: int, frozen: bool) -> dict:
    config = finetune_config(params, variant)
    no_validation = LandmarkDataset(pd.DataFrame(columns=["image_path"] + [f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]),
                                    params["model"]["image_size"], None)
    method = FinetuneMethod(variant, landmark_spec(params, variant), config, device, no_validation, seed=0)
    method.begin_epoch(0 if frozen else config.unfreeze_epochs[-1])
    batch, size = config.batch_size, params["model"]["image_size"]
    batches = list(synthetic_batches(warmup + steps, batch, size))
    for images in batches[:warmup]:
        method.step(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for images in batches[warmup:]:
        losses = method.step(images)
    float(losses["total"])  # waits for the device
    seconds = (time.perf_counter() - start) / steps
    return {"seconds_per_step": seconds, "images_per_second": batch / seconds, "batch": batch, "size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "quick"])
    parser.add_argument("--variant", default="v2_moco_cbam_adv")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"))
    print(f"{'preset':7} {'device':6} {'encoder':16} {'size':>4} {'batch':>5} {'encoder state':14} "
          f"{'s/step':>8} {'img/s':>7}")
    for preset in args.presets:
        params = load_preset(preset)
        encoder = params["encoders"][params["variants"][args.variant]["encoder"]]
        for device in args.devices:
            for frozen in (True, False):
                r = bench(params, args.variant, torch.device(device), args.steps, args.warmup, frozen)
                print(f"{preset:7} {device:6} {encoder:16} {r['size']:>4} {r['batch']:>5} "
                      f"{'frozen' if frozen else 'all trainable':14} {r['seconds_per_step']:8.3f} "
                      f"{r['images_per_second']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
