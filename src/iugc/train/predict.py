"""Landmarks a network predicts for a dataset, in original-image pixels: the one prediction
routine of validation during training and of inference afterwards."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.dataset import LandmarkDataset
from ..models.heads import soft_argmax_spread

MODEL_FILE = "model.pt"  # the fine-tuned generator, written by fine-tuning and read by inference


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: LandmarkDataset, device: torch.device, *,
                    batch_size: int = 8, num_workers: int = 0, with_spread: bool = False):
    """Predicted landmarks of every frame of ``dataset``, (n, 3, 2) in original-image pixels;
    with ``with_spread`` also their radial spread (n, 3) in original pixels (NaN for networks
    without heatmaps; see ``models.heads.soft_argmax_spread``).

    Full precision, so validation during training and evaluation afterwards agree exactly.
    """
    model.eval()
    coords, spreads = [], []
    loader = DataLoader(dataset, shuffle=False, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    for images, _, _ in loader:
        images = images.to(device, memory_format=torch.channels_last, non_blocking=True)
        out = model(images)
        coords.append(out["coords"].float().cpu().numpy())
        if with_spread and "heatmaps" in out:
            spreads.append(soft_argmax_spread(out["heatmaps"], model.soft_argmax_beta).cpu().numpy())
    coords = np.concatenate(coords) if coords else np.zeros((0, 3, 2), np.float32)
    original = np.array([resize.to_original(points) for resize, points in zip(dataset.resize_maps, coords)],
                        dtype=np.float64).reshape(-1, 3, 2)
    if not with_spread:
        return original
    if not spreads:
        return original, np.full(original.shape[:2], np.nan)
    scale = np.array([[resize.width / resize.size, resize.height / resize.size] for resize in dataset.resize_maps])
    spread = np.concatenate(spreads).astype(np.float64) * scale[:, None, :]
    return original, np.hypot(spread[..., 0], spread[..., 1])
