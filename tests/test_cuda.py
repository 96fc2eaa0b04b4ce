"""The CUDA path on a real GPU (marker ``cuda``; skipped where there is none, so the rest of the
suite is the same everywhere). The device check runs them: benchmarks/gpu_check.sh.

- the full method's step (variant 2: generator + PatchGAN discriminator) under float16 autocast,
  with float32 losses that are finite and a live loss scaler;
- the same network on CUDA and on the CPU: fp32 within 0.05 px, float16 autocast within 0.5 px;
- a run on CUDA, twice with deterministic kernels: the same bytes;
- what a CUDA run wrote (model.pt, the resumable checkpoint) loads and resumes on the CPU;
- `iugc predict --device cuda` equals `--device cpu` within 0.1 px.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_finetune import VARIANT, finetune, synthetic_frames, view, weights

from iugc.config import load_preset
from iugc.data.dataset import LandmarkDataset
from iugc.inference import LandmarkPredictor, load_trained_model
from iugc.models.landmark_net import build_landmark_model
from iugc.stages.runner import use_determinism
from iugc.stages.views import finetune_config, landmark_spec
from iugc.train import finetune as ft
from iugc.train.runtime import autocast

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")
LANDMARK_COLUMNS = ["image_path"] + [f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]


@pytest.fixture(autouse=True)
def deterministic_kernels():
    """As the job runner sets them (compute.deterministic: true, the presets' value)."""
    use_determinism(True)


@pytest.fixture
def exact_float32():
    """fp32 convolutions and products without TF32, so that CUDA and the CPU compute the same sums."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> pd.DataFrame:
    return synthetic_frames(tmp_path_factory.mktemp("frames"), 16)


def batch(size: int, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.rand(n, 3, 2, generator=g) * (size - 1), torch.arange(n)


def test_the_full_method_steps_under_float16_autocast():
    params = load_preset("smoke")
    config = finetune_config(params, VARIANT)
    assert config.amp and config.adversarial
    no_validation = LandmarkDataset(pd.DataFrame(columns=LANDMARK_COLUMNS), params["model"]["image_size"], None)
    method = ft.FinetuneMethod(VARIANT, landmark_spec(params, VARIANT), config, CUDA, no_validation, seed=0)
    method.begin_epoch(config.unfreeze_epochs[-1])  # the encoder trains too
    assert method.scaler.is_enabled() and method.discriminator is not None
    dtypes = []
    first_conv = next(m for m in method.generator.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    before = {name: p.detach().clone() for name, p in method.generator.named_parameters()}
    for seed in range(3):
        losses = method.step(batch(params["model"]["image_size"], seed=seed))
        assert {"total", "discriminator", "gan", "heatmap", "coord"} <= set(losses)
        for name, value in losses.items():
            assert value.dtype == torch.float32 and torch.isfinite(value), (name, value)
    assert set(dtypes) == {torch.float16}
    scale = method.scaler.get_scale()
    assert 0 < scale < float("inf")
    assert any(not torch.equal(before[name], p) for name, p in method.generator.named_parameters())


@pytest.mark.parametrize("amp, tolerance_px", [(False, 0.05), (True, 0.5)])
def test_cuda_and_cpu_forwards_agree(amp, tolerance_px, exact_float32):
    params = load_preset("quick")  # hrnet_w18_small at 128 px
    spec = landmark_spec(params, VARIANT)
    torch.manual_seed(0)
    net = build_landmark_model(spec)
    images, _, _ = batch(spec.image_size, n=8)
    with torch.no_grad():  # BatchNorm statistics of real activations, as a trained network has
        net.train()
        for _ in range(3):
            net(images)
    section = params["augment"]
    cpu = LandmarkPredictor(net, section["normalize_mean"], section["normalize_std"]).eval()
    gpu = copy.deepcopy(cpu).to(CUDA)
    frames = images * 255
    with torch.no_grad():
        expected, _ = cpu(frames)
        with autocast(CUDA, amp):
            got, _ = gpu(frames.to(CUDA))
    assert torch.isfinite(got).all()
    assert (got.float().cpu() - expected).abs().max().item() <= tolerance_px


@pytest.fixture(scope="module")
def cuda_run(frames, tmp_path_factory):
    """A two-epoch fine-tuning of variant 2 on CUDA, with deterministic kernels."""
    out = tmp_path_factory.mktemp("cuda_run") / "run"
    use_determinism(True)
    summary = finetune(view(load_preset("smoke")), VARIANT, frames.iloc[:12], frames.iloc[12:], out,
                       device=CUDA, deterministic=True, log=lambda _: None)
    assert summary["device"] == "cuda"
    return out


def test_deterministic_cuda_runs_give_the_same_weights(cuda_run, frames, tmp_path):
    again = tmp_path / "again"
    finetune(view(load_preset("smoke")), VARIANT, frames.iloc[:12], frames.iloc[12:], again,
             device=CUDA, deterministic=True, log=lambda _: None)
    expected = weights(cuda_run / "model.pt")
    differing = [name for name, t in weights(again / "model.pt").items() if not torch.equal(t, expected[name])]
    assert differing == []


def test_what_cuda_wrote_loads_and_resumes_on_the_cpu(cuda_run, frames, tmp_path):
    on_cpu = load_trained_model(cuda_run / "model.pt", variant=VARIANT, device="cpu")
    on_gpu = load_trained_model(cuda_run / "model.pt", variant=VARIANT, device="cuda")
    greys = [(255 * batch(64, n=1, seed=s)[0][0, 0]).to(torch.uint8).numpy() for s in range(3)]
    cpu_coords, _ = on_cpu.locate(greys)
    gpu_coords, _ = on_gpu.locate(greys)
    assert abs(cpu_coords - gpu_coords).max() <= 0.1

    out, messages = tmp_path / "resumed", []
    first = finetune(view(load_preset("smoke")), VARIANT, frames.iloc[:12], frames.iloc[12:], out,
                     device=CUDA, stop_after=1, log=lambda _: None)
    assert not first["complete"] and (out / "checkpoint.pt").is_file()
    resumed = finetune(view(load_preset("smoke")), VARIANT, frames.iloc[:12], frames.iloc[12:], out,
                       device="cpu", log=messages.append)
    assert "resuming after epoch 1" in messages[0] and resumed["complete"] and resumed["device"] == "cpu"


def test_iugc_predict_on_cuda_equals_the_cpu(cuda_run, frames, tmp_path):
    folder = str(Path(frames["image_path"].iloc[0]).parent)
    tables = {}
    for device in ("cuda", "cpu"):
        result = subprocess.run([sys.executable, "-m", "iugc", "predict", "--model", str(cuda_run), folder,
                                 "--out", str(tmp_path / device), "--device", device],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        tables[device] = pd.read_csv(tmp_path / device / "predictions.csv").set_index("Filename")
    assert len(tables["cuda"]) == len(frames)
    for column in ("PS1", "PS2", "FH1"):
        points = {d: t[column].str.strip("()").str.split(", ", expand=True).astype(float) for d, t in tables.items()}
        assert (points["cuda"] - points["cpu"]).abs().to_numpy().max() <= 0.1, column
