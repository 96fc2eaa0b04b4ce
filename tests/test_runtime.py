"""The CUDA code paths, exercised on the CPU where torch allows it: mixed precision (float16
autocast with a live GradScaler) through the real fine-tuning and pretraining steps, the
disabled-scaler path the CPU takes, and the device choices. No GPU has run them yet."""
from __future__ import annotations

import pandas as pd
import torch

from iugc.config import load_preset
from iugc.data.dataset import LandmarkDataset
from iugc.stages.views import finetune_config, landmark_spec
from iugc.train.finetune import FinetuneMethod
from iugc.train.runtime import amp_enabled, autocast, choose_device, grad_scaler

CPU = torch.device("cpu")
NO_FRAMES = LandmarkDataset(pd.DataFrame(columns=["image_path"] + [f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]),
                            64, None)


def _batch(size=64, batch=4):
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 1, size, size, generator=g), torch.rand(batch, 3, 2, generator=g) * (size - 1), torch.arange(batch)


def test_mixed_precision_is_for_cuda_only_and_the_cpu_scaler_is_a_no_op():
    assert not amp_enabled(CPU, True) and amp_enabled(torch.device("cuda"), True)
    assert not amp_enabled(torch.device("cuda"), False)
    scaler = grad_scaler(CPU, False)
    assert not scaler.is_enabled()
    restored = grad_scaler(CPU, False)
    restored.load_state_dict(scaler.state_dict())  # checkpoints carry it either way
    assert choose_device("auto") == choose_device(None)
    assert choose_device("cpu") == CPU


def test_the_adversarial_step_runs_under_float16_autocast_with_a_live_scaler():
    """What a GPU does (preset amp: true): networks in float16, losses in float32, scaled
    gradients for both optimisers; forced onto the CPU, which supports float16 autocast."""
    params = load_preset("smoke")
    variant = "v2_moco_cbam_adv"
    method = FinetuneMethod(variant, landmark_spec(params, variant), finetune_config(params, variant), CPU,
                            NO_FRAMES, seed=0)
    method.scaler = grad_scaler(CPU, True)  # the CUDA path
    method.begin_epoch(99)
    before = {k: v.clone() for k, v in method.generator.state_dict().items() if v.is_floating_point()}
    for _ in range(2):
        losses = method.step(_batch())
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert set(losses) == {"coord", "heatmap", "entropy", "gan", "total", "discriminator"}
    changed = [k for k, v in method.generator.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed and method.scaler.get_scale() > 0
    with autocast(CPU, True):
        out = method.generator(_batch()[0])
    assert out["heatmaps"].dtype == torch.float16 and out["coords"].dtype == torch.float32


def test_pretraining_steps_under_float16_autocast_with_a_live_scaler(tmp_path):
    from iugc.models.encoders import build_encoder
    from iugc.ssl.mae import MaskedAutoencoder
    from iugc.ssl.pretrain import PretrainMethod
    from iugc.stages.views import encoder_spec

    encoder = build_encoder(encoder_spec(load_preset("smoke"), "attention_unet"))
    model = MaskedAutoencoder(encoder)
    method = PretrainMethod("mae pretraining", model, encoder, torch.optim.Adam(model.parameters(), 1e-3), 10,
                            CPU, amp=False, meta={"config_hash": "x"})
    method.scaler = grad_scaler(CPU, True)
    images = torch.rand(2, 1, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    losses = method.step({"images": images, "mask": mask})
    assert torch.isfinite(losses["loss"]) and losses["loss"].dtype == torch.float32
    # A step whose gradients overflow is skipped by the scaler, and the schedule waits for it.
    steps, scale = method.scheduler.last_epoch, method.scaler.get_scale()
    method.step({"images": torch.full_like(images, float("nan")), "mask": mask})
    assert method.scaler.get_scale() < scale and method.scheduler.last_epoch == steps
    method.step({"images": images, "mask": mask})
    assert method.scheduler.last_epoch == steps + 1
