"""Trained models out of the study: TorchScript and ONNX files of the whole predictor, and a
submission folder in the IUGC 2025 challenge's format that runs without this package.

The exported graph is ``inference.LandmarkPredictor``: frames resized to the network's side,
grey levels 0..255, (B, 1, S, S) -> landmarks (B, 3, 2) in pixels of that input and their
spread (B, 3, 2). Resizing a frame to S x S and mapping the points back to the frame's pixels
are one torch call and one line (``submission_model.py`` shows both).
"""
from __future__ import annotations

import json
import shutil
import warnings
from importlib import resources
from pathlib import Path

import torch

from .conformal import CALIBRATION_FILE
from .errors import UserError
from .inference import TrainedModel, load_calibration, load_trained_model, model_file

SUBMISSION_WEIGHTS = "landmarks.ts"
SUBMISSION_SETTINGS = "settings.json"


def _trained(model_dir: str | Path) -> TrainedModel:
    return load_trained_model(model_file(model_dir), device="cpu")


def _example(model: TrainedModel) -> torch.Tensor:
    size = model.spec.image_size
    return torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)) * 255


def export_torchscript(model: TrainedModel, out: str | Path) -> Path:
    """The predictor traced to TorchScript (any batch size)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation, and the size check frozen for this input side
        traced = torch.jit.trace(model.predictor().eval(), _example(model), check_trace=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(out))
    return out


def export_onnx(model: TrainedModel, out: str | Path) -> Path:
    """The predictor as ONNX (opset 17, dynamic batch), inputs ``frames``, outputs ``landmarks``
    and ``spread``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.predictor().eval(), (_example(model),), str(out), dynamo=False, opset_version=17,
                          input_names=["frames"], output_names=["landmarks", "spread"],
                          dynamic_axes={"frames": {0: "batch"}, "landmarks": {0: "batch"}, "spread": {0: "batch"}})
    return out


def export(model_dir: str | Path, fmt: str, out: str | Path) -> Path:
    model = _trained(model_dir)
    if fmt == "torchscript":
        return export_torchscript(model, out)
    if fmt == "onnx":
        return export_onnx(model, out)
    raise UserError(f"--format {fmt!r}: choose torchscript or onnx")


def export_submission(model_dir: str | Path, dst: str | Path, description: str = "",
                      calibration: str | Path | None = None) -> Path:
    """``dst/`` in the challenge's format (``metadata``, ``model.py`` with class ``model``, the
    weights as TorchScript, and the model's calibration when it has one: ``calibration``, else
    the calibration.json beside model.pt) and ``dst.zip`` beside it."""
    model = _trained(model_dir)
    calibrated = load_calibration(model_file(model_dir), calibration)
    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    export_torchscript(model, dst / SUBMISSION_WEIGHTS)
    (dst / SUBMISSION_SETTINGS).write_text(json.dumps({"image_size": model.spec.image_size,
                                                       "variant": model.variant}, indent=1) + "\n")
    if calibrated is not None:
        calibrated.save(dst / CALIBRATION_FILE)
    (dst / "model.py").write_text(resources.files("iugc").joinpath("submission_model.py").read_text())
    (dst / "metadata").write_text(
        f"description: iugc {model.variant} ({description or 'trained by the iugc study'}); "
        f"input resized to {model.spec.image_size} px\n")
    archive = shutil.make_archive(str(dst), "zip", root_dir=dst)
    return Path(archive)
