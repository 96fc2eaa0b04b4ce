"""Fine-tuning loop: resume equivalence, determinism, learning, divergence, config hashes,
the adversarial step, pretrained weights and prediction in original pixels.

Frames are 64 px synthetic images with one bright blob per landmark (a different grey level
each, so the landmarks can be told apart); the smoke preset's 64 px HRNet variants train on them.
"""
from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from model_builders import encoder as build_encoder
from model_builders import eval_transform

from iugc.config import load_preset, params_hash, select
from iugc.data.dataset import LandmarkDataset
from iugc.errors import NonFiniteLossError, UserError
from iugc.geometry import LANDMARKS
from iugc.inference import load_trained_model, predict
from iugc.metrics import mean_radial_error
from iugc.stages.views import finetune_config, finetune_keys, landmark_spec
from iugc.train import finetune as ft
from iugc.train.checkpoint import load_checkpoint, save_checkpoint

VARIANT = "v2_moco_cbam_adv"  # HRNet + CBAM + PatchGAN: every part of the loop
FRAME_SIDE = 64


def synthetic_frames(folder, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` grey frames with blobs at the landmarks, written as PNGs, and their labels table."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:FRAME_SIDE, :FRAME_SIDE]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        points = rng.uniform(8, FRAME_SIDE - 8, size=(3, 2))
        image = rng.normal(20, 4, size=(FRAME_SIDE, FRAME_SIDE))
        for (x, y), level in zip(points, (90, 160, 230)):
            image = np.maximum(image, level * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5 ** 2)))
        path = folder / f"frame{i:02d}.png"
        cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
        row = dict(filename=path.name, image_path=str(path), split="Training", aop=np.nan,
                   width=FRAME_SIDE, height=FRAME_SIDE)
        for name, (x, y) in zip(LANDMARKS, points):
            row[f"{name}_x"], row[f"{name}_y"] = x, y
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> pd.DataFrame:
    return synthetic_frames(tmp_path_factory.mktemp("frames"), 16)


@pytest.fixture
def params() -> dict:
    params = load_preset("smoke")  # 64 px, hrnet_w18_small, 2 epochs, encoder released at 1 and 2
    assert params["model"]["image_size"] == FRAME_SIDE
    return params


def view(params, variant: str = VARIANT) -> dict:
    """The parameters the workflow hands the stage: exactly the keys the variant declares."""
    return select(params, finetune_keys(params, {"variant": variant}))


def finetune(view, variant, train, val, out, **kwargs) -> dict:
    """Fine-tuning as the stage runs it: the network spec and configuration built from its view."""
    return ft.finetune(variant, landmark_spec(view, variant), finetune_config(view, variant), train, val,
                       out, seed=42, **kwargs)


def run(params, frames, out, **kwargs) -> dict:
    return finetune(view(params), VARIANT, frames.iloc[:12], frames.iloc[12:], out,
                    log=lambda _: None, **kwargs)


def weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path, None)["state_dict"]


def curve(out, name: str) -> str:
    return (out / "dvclive" / "plots" / "metrics" / f"{name}.tsv").read_text()


@pytest.fixture(scope="module")
def reference(frames, tmp_path_factory):
    """One uninterrupted two-epoch run, started inside a Git repository without DVC."""
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        summary = run(load_preset("smoke"), frames, repo / "run")
    return repo, repo / "run", summary


def test_run_writes_model_metrics_and_leaves_the_repository_alone(reference):
    repo, out, summary = reference
    assert summary["complete"] and summary["epochs_done"] == 2 and summary["device"] == "cpu"
    assert np.isfinite(summary["final_val_mre"]) and summary["best_epoch"] in (1, 2)
    model = load_checkpoint(out / "model.pt", summary["config_hash"])
    assert model["variant"] == VARIANT
    assert not (out / "checkpoint.pt").exists()  # a finished run keeps no checkpoint
    assert curve(out, "val/mre").count("\n") == 3  # header + one row per epoch
    assert not (repo / ".dvc").exists() and not (repo / "dvc.yaml").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    assert status.stdout.split() == ["??", "run/"]


def test_resumed_run_equals_uninterrupted_run(reference, params, frames, tmp_path):
    _, ref_out, ref_summary = reference
    out = tmp_path / "run"
    first = run(params, frames, out, stop_after=1)
    assert not first["complete"] and first["epochs_done"] == 1
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()

    messages = []
    resumed = finetune(view(params), VARIANT, frames.iloc[:12], frames.iloc[12:], out,
                       log=messages.append)
    assert "resuming after epoch 1" in messages[0]
    assert resumed["final_val_mre"] == ref_summary["final_val_mre"]
    assert resumed["final_train_loss"] == ref_summary["final_train_loss"]
    for name in ("val/mre", "train/total", "train/discriminator"):
        assert curve(out, name) == curve(ref_out, name)
    expected = weights(ref_out / "model.pt")
    for name, tensor in weights(out / "model.pt").items():
        assert torch.equal(tensor, expected[name]), name


def test_same_seed_gives_the_same_weights(reference, params, frames, tmp_path):
    _, ref_out, _ = reference
    run(params, frames, tmp_path / "again")
    expected = weights(ref_out / "model.pt")
    assert all(torch.equal(t, expected[n]) for n, t in weights(tmp_path / "again" / "model.pt").items())


def test_predict_reproduces_the_validation_error(reference, frames):
    _, out, summary = reference
    val = frames.iloc[12:]
    pred = load_trained_model(out / "model.pt", variant=VARIANT).predict(val)
    assert pred.shape == (4, 3, 2)
    truth = val[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy().reshape(-1, 3, 2)
    assert mean_radial_error(pred, truth) == pytest.approx(summary["final_val_mre"], rel=1e-6)


def test_trained_model_of_another_variant_is_refused(reference):
    _, out, _ = reference
    with pytest.raises(UserError, match="model.pt.*v2_moco_cbam_adv"):
        load_trained_model(out / "model.pt", variant="v3_moco_cbam")


def test_predict_returns_original_pixels(frames):
    """A stand-in network that always answers the same model-pixel points, at 32 px input."""

    class Fixed(nn.Module):
        def forward(self, images):
            points = torch.tensor([[4.0, 8.0], [16.0, 31.0], [0.0, 0.0]])
            return {"coords": points.expand(images.shape[0], 3, 2)}

    params = load_preset("smoke")
    pred = predict(Fixed(), frames.iloc[:3], 32, "cpu", eval_transform(params["augment"]))
    # 64 px frames at 32 px: x_original = (x_model + 0.5) * 2 - 0.5
    expected = np.array([[8.5, 16.5], [32.5, 62.5], [0.5, 0.5]])
    np.testing.assert_allclose(pred, np.broadcast_to(expected, (3, 3, 2)))


def test_training_lowers_the_landmark_error(params, tmp_path):
    """A few frames, learned from scratch: the validation MRE must fall well below its start.

    A full-resolution network (the Attention U-Net body under the heatmap decoder) learns blob
    positions in a few dozen steps; augmentation is off, the input 32 px.
    """
    frames = synthetic_frames(tmp_path / "frames", 16, seed=1)
    params["variants"]["unet_heatmaps"] = dict(encoder="attention_unet", pretrain="none",
                                               attention=False, adversarial=False, output="heatmaps")
    params["model"].update(image_size=32, soft_argmax_beta=10.0)
    params["finetune"].update(epochs=14, unfreeze_epochs=[0, 0], lr_generator=3e-3)
    for key in ("elastic_p", "brightness_contrast_p", "blur_p", "speckle_p"):
        params["augment"][key] = 0.0
    finetune(view(params, "unet_heatmaps"), "unet_heatmaps", frames, frames.iloc[:4],
             tmp_path / "run", log=lambda _: None)
    mre = [float(line.split()[1]) for line in curve(tmp_path / "run", "val/mre").splitlines()[1:]]
    assert len(mre) == 14
    assert mre[-1] < 0.6 * mre[0]


def test_non_finite_loss_stops_with_the_epoch_and_keeps_the_checkpoint(params, frames, tmp_path,
                                                                       monkeypatch):
    calls = {"n": 0}
    steps_per_epoch = 12 // params["finetune"]["batch_size"]

    def poisoned_heatmap_loss(pred, target):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(pred, target)
        return loss * float("nan") if calls["n"] > steps_per_epoch else loss

    monkeypatch.setattr(ft, "heatmap_loss", poisoned_heatmap_loss)
    out = tmp_path / "run"
    expected = r"heatmap loss is nan at epoch 2, step 1.*after epoch 1"
    with pytest.raises(NonFiniteLossError, match=expected):
        run(params, frames, out)
    assert load_checkpoint(out / "checkpoint.pt", None)["epoch"] == 1
    assert not (out / "model.pt").exists()


def test_checkpoint_of_other_parameters_is_refused(params, frames, tmp_path):
    out = tmp_path / "run"
    run(params, frames, out, stop_after=1)
    params["finetune"]["lambda_adv"] = 0.5
    with pytest.raises(UserError, match=r"checkpoint\.pt.*delete"):
        run(params, frames, out)


def test_discriminator_takes_steps(params, frames, tmp_path, monkeypatch):
    built = []
    build = ft.PatchGANDiscriminator

    def recording_build(*args):
        disc = build(*args)
        built.append((disc, {k: v.clone() for k, v in disc.state_dict().items()}))
        return disc

    monkeypatch.setattr(ft, "PatchGANDiscriminator", recording_build)
    run(params, frames, tmp_path / "run", stop_after=1)
    (disc, initial), = built
    changed = [name for name, value in disc.state_dict().items()
               if not torch.equal(value, initial[name])]
    assert any(name.endswith("bias") for name in changed)  # parameters moved, not only SN vectors
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt", None)["networks"]["discriminator"]
    assert all(torch.equal(saved[name], value) for name, value in disc.state_dict().items())


def test_pretrained_encoder_is_loaded_and_stays_frozen(params, frames, tmp_path):
    torch.manual_seed(123)
    encoder = build_encoder(params, "hrnet")
    weights_file = tmp_path / "encoder.pt"
    save_checkpoint(weights_file, {"state_dict": encoder.state_dict(), "config_hash": "pretrained-1"})
    out = tmp_path / "run"
    run(params, frames, out, encoder_weights=weights_file, stop_after=1)  # epoch 0: encoder frozen

    state = load_checkpoint(out / "checkpoint.pt", None)
    assert state["encoder_hash"] == "pretrained-1"
    for name, value in encoder.state_dict().items():  # weights and BatchNorm statistics alike
        assert torch.equal(state["networks"]["generator"][f"encoder.{name}"], value), name
    with pytest.raises(UserError, match="other pretrained encoder weights"):
        run(params, frames, out)


def test_param_keys_follow_what_a_variant_reads():
    params = load_preset("paper")
    adversarial = finetune_keys(params, {"variant": "v2_moco_cbam_adv"})
    plain = finetune_keys(params, {"variant": "v3_moco_cbam"})
    coords = finetune_keys(params, {"variant": "v7_attunet_mae_coords"})
    assert "finetune.lambda_adv" in adversarial and "finetune.lambda_adv" not in plain
    assert "model.heatmap_sigma" in plain and "model.heatmap_sigma" not in coords
    assert "encoders.attention_unet_channels" in coords and "encoders.hrnet" not in coords

    def config_hash(p, variant):
        return params_hash(view(p, variant))

    changed = load_preset("paper")
    changed["finetune"]["lambda_adv"] = 0.1
    assert config_hash(changed, "v2_moco_cbam_adv") != config_hash(params, "v2_moco_cbam_adv")
    for variant in ("v1_hrnet_supervised", "v3_moco_cbam", "v6_moco_cbam_coords"):
        assert config_hash(changed, variant) == config_hash(params, variant)


def test_every_variant_builds_from_its_own_view():
    """The keys a variant declares are all that building its networks reads."""
    params = load_preset("smoke")
    no_frames = LandmarkDataset(pd.DataFrame(columns=["image_path", *[f"{n}_{a}" for n in LANDMARKS for a in "xy"]]),
                                64, eval_transform(params["augment"]))
    for variant in params["variants"]:
        v = view(params, variant)
        method = ft.FinetuneMethod(variant, landmark_spec(v, variant), finetune_config(v, variant),
                                   torch.device("cpu"), no_frames, seed=0)
        assert (method.discriminator is not None) == params["variants"][variant]["adversarial"]


def test_coordinate_variant_trains_on_the_coordinate_loss_alone(params, frames, tmp_path):
    variant = "v7_attunet_mae_coords"
    summary = finetune(view(params, variant), variant, frames.iloc[:12], frames.iloc[12:],
                       tmp_path / "run", stop_after=1, log=lambda _: None)
    assert np.isfinite(summary["final_val_mre"])
    (row,) = load_checkpoint(tmp_path / "run" / "checkpoint.pt", None)["history"]
    assert sorted(k for k in row if k.startswith("train/")) == ["train/coord", "train/total"]
    assert row["train/coord"] == pytest.approx(row["train/total"])


def test_a_random_encoder_trains_from_the_first_epoch(params, frames, tmp_path):
    """The supervised baseline has no pretrained features to protect: its encoder learns in
    epoch 1 (a pretrained one stays frozen then; see the test above)."""
    variant = "v1_hrnet_supervised"
    v = view(params, variant)
    no_frames = LandmarkDataset(frames.iloc[:0], 64, eval_transform(params["augment"]))
    initial = ft.FinetuneMethod(variant, landmark_spec(v, variant), finetune_config(v, variant),
                                torch.device("cpu"), no_frames, seed=42, pretrained=False).generator.encoder.state_dict()
    finetune(v, variant, frames.iloc[:12], frames.iloc[12:], tmp_path / "run", stop_after=1, log=lambda _: None)
    trained = load_checkpoint(tmp_path / "run" / "checkpoint.pt", None)["networks"]["generator"]
    changed = [name for name, value in initial.items()
               if value.is_floating_point() and not torch.equal(trained[f"encoder.{name}"], value)]
    # every stage group learns at once (the few incre modules whose output timm discards never do)
    for stage in ("body.conv1.", "body.stage2.", "body.stage4."):
        assert any(name.startswith(stage) for name in changed), stage
