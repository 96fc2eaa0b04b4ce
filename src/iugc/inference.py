"""Trained landmark models: loading ``model.pt`` and predicting landmarks in original pixels.

``predict_dataset`` (in ``train.predict``) is shared with the validation during training.

``model.pt`` (written by fine-tuning) carries the weights, the ``LandmarkNetSpec`` the network
was built from and the input normalisation, so a trained model is rebuilt from its file alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .conformal import CALIBRATION_FILE, Calibration
from .data.augment import build_eval_transform
from .data.dataset import LandmarkDataset
from .data.images import resize_frames
from .errors import UserError
from .integrity import file_sha256
from .models.heads import soft_argmax_spread
from .models.landmark_net import LandmarkNet, LandmarkNetSpec, build_landmark_model
from .train.checkpoint import load_checkpoint
from .train.predict import MODEL_FILE, predict_dataset
from .train.runtime import choose_device

def predict(model: nn.Module, df: pd.DataFrame, size: int, device: str | torch.device | None,
            transform, *, batch_size: int = 8, num_workers: int = 0, with_spread: bool = False):
    """Landmarks predicted for every row of ``df``, (n, 3, 2) in ORIGINAL image pixels.

    ``transform`` is the evaluation transform the model was trained with (the normalisation,
    ``data.augment.build_eval_transform``).
    """
    device = choose_device(device)
    model.to(device, memory_format=torch.channels_last)
    dataset = LandmarkDataset(df, size, transform, cache=False)
    return predict_dataset(model, dataset, device, batch_size=batch_size, num_workers=num_workers,
                           with_spread=with_spread)


class LandmarkPredictor(nn.Module):
    """A trained network as one function, the form that is exported: frames already resized to
    the network's side (B, 1, S, S), grey levels 0..255 -> landmarks (B, 3, 2) (x, y) in pixels
    of that input, and their spread (B, 3, 2): the standard deviation along x and y of the
    distribution the soft-argmax read them from, in the same pixels (-1 for coordinate-output
    variants, which have no such distribution). Normalisation, network and soft-argmax are all
    inside."""

    def __init__(self, net: LandmarkNet, normalize_mean: float, normalize_std: float):
        super().__init__()
        self.net = net.eval()
        self.mean, self.std = float(normalize_mean), float(normalize_std)
        self.heatmaps = net.output == "heatmaps"
        self.beta = float(net.soft_argmax_beta)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net((frames - self.mean) / self.std)
        coords = out["coords"].float()
        if self.heatmaps:
            return coords, soft_argmax_spread(out["heatmaps"], self.beta)
        return coords, coords * 0.0 - 1.0  # (not full_like: its shape would be frozen into an export)


def prepare_frames(greys: list[np.ndarray], size: int) -> torch.Tensor:
    """Grey uint8 frames of one size (H, W) -> the predictor's input (B, 1, S, S): resized as in
    training and rounded to grey levels, as the training frames were cached."""
    frames = torch.from_numpy(np.stack(greys).astype(np.float32))[:, None]
    return resize_frames(frames, size).round().clamp(0, 255)


@dataclass
class TrainedModel:
    """A fine-tuned generator in eval mode, with what it was built from."""

    net: LandmarkNet
    variant: str
    spec: LandmarkNetSpec
    normalize_mean: float
    normalize_std: float
    device: torch.device

    def transform(self):
        return build_eval_transform(self.normalize_mean, self.normalize_std)

    def predict(self, df: pd.DataFrame, *, batch_size: int = 8, num_workers: int = 0, with_spread: bool = False):
        """Landmarks of every row of ``df`` (its ``image_path``), (n, 3, 2) in original pixels
        (and their radial spread, see ``train.predict.predict_dataset``)."""
        return predict(self.net, df, self.spec.image_size, self.device, self.transform(),
                       batch_size=batch_size, num_workers=num_workers, with_spread=with_spread)

    def predictor(self) -> LandmarkPredictor:
        return LandmarkPredictor(self.net, self.normalize_mean, self.normalize_std).to(self.device)

    def locate(self, greys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (n, 3, 2) and their spread (n, 3, 2), both in pixels of the given frames
        (uint8 grey (H, W), one size per call); spread -1 where the variant has none."""
        height, width = greys[0].shape
        scale = np.array([width, height], dtype=np.float64) / self.spec.image_size
        with torch.no_grad():
            coords, spread = self.predictor()(prepare_frames(greys, self.spec.image_size).to(self.device))
        coords = (coords.cpu().numpy().astype(np.float64) + 0.5) * scale - 0.5  # ResizeMap.to_original
        spread = spread.cpu().numpy().astype(np.float64)
        return coords, np.where(spread < 0, -1.0, spread * scale)


EXPORTED_SUFFIXES = (".ts", ".onnx", ".zip")


def model_file(model: str | Path) -> Path:
    """The ``model.pt`` a ``--model`` argument names: a model folder (``reports/model``, a run's
    ``results/finetune/<variant>/seed<s>``) or the file itself; an exported file is refused."""
    path = Path(model)
    accepts = (f"--model takes a folder holding {MODEL_FILE} (reports/model, results/finetune/<variant>/seed<s>) "
               f"or that {MODEL_FILE}")
    if path.suffix in EXPORTED_SUFFIXES:
        raise UserError(f"{model}: an exported predictor, not a trained model; {accepts} "
                        "(run the .ts with torch.jit.load, the .onnx with onnxruntime)")
    path = path / MODEL_FILE if path.is_dir() else path
    if not path.is_file():
        raise UserError(f"{model}: no {MODEL_FILE} here; {accepts}")
    return path


def load_trained_model(path: str | Path, *, variant: str | None = None,
                       device: str | torch.device | None = None) -> TrainedModel:
    """The generator saved by fine-tuning in ``path`` (a ``model.pt``), rebuilt from the spec it
    carries; ``variant`` (when given) must be the one it holds."""
    state = load_checkpoint(path, expected_config_hash=None)
    if variant is not None and state.get("variant") != variant:
        raise UserError(f"{path}: holds variant {state.get('variant')!r}, not {variant!r}")
    if "spec" not in state or "state_dict" not in state:
        raise UserError(f"{path}: not a fine-tuned model (no network spec or weights); retrain it")
    spec = LandmarkNetSpec.from_dict(state["spec"])
    model = build_landmark_model(spec)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise UserError(f"{path}: weights do not fit the network its spec builds "
                        f"({first[0].strip()[:200]}); retrain the variant") from None
    device = choose_device(device)
    return TrainedModel(model.to(device).eval(), state["variant"], spec, state["normalize"]["mean"],
                        state["normalize"]["std"], device)


def load_calibration(model_file: str | Path, path: str | Path | None = None) -> Calibration | None:
    """The calibrated radii of the model in ``model_file``: from ``path`` (a calibration.json or a
    folder holding one, e.g. results/calibrate/<variant>/seed<s>), else the calibration.json
    beside ``model_file``; None when there is none. A calibration made for other weights is
    refused: its radii would describe another model's errors."""
    model_file = Path(model_file)
    where = Path(path) if path is not None else model_file.parent
    where = where / CALIBRATION_FILE if where.is_dir() else where
    if not where.is_file():
        if path is not None:
            raise UserError(f"{path}: no {CALIBRATION_FILE} here (give a results/calibrate/<variant>/seed<s> folder)")
        return None
    record = json.loads(where.read_text())
    if record.get("model_sha256") != file_sha256(model_file):
        raise UserError(f"{where}: calibrated for other weights than {model_file}; use the calibration made for "
                        "this model (results/calibrate/<variant>/seed<s> of the same variant and seed)")
    return Calibration.from_dict(record)
