"""Landmarks a network predicts for a dataset, in original-image pixels: the one prediction
routine of validation during training and of inference afterwards."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.dataset import LandmarkDataset

MODEL_FILE = "model.pt"  # the fine-tuned generator, written by fine-tuning and read by inference


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: LandmarkDataset, device: torch.device, *,
                    batch_size: int = 8, num_workers: int = 0) -> np.ndarray:
    """Predicted landmarks of every frame of ``dataset``, (n, 3, 2) in original-image pixels.

    Full precision, so validation during training and evaluation afterwards agree exactly.
    """
    model.eval()
    batches = []
    loader = DataLoader(dataset, shuffle=False, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    for images, _, _ in loader:
        images = images.to(device, memory_format=torch.channels_last, non_blocking=True)
        batches.append(model(images)["coords"].float().cpu().numpy())
    coords = np.concatenate(batches) if batches else np.zeros((0, 3, 2), np.float32)
    original = [resize.to_original(points) for resize, points in zip(dataset.resize_maps, coords)]
    return np.array(original, dtype=np.float64).reshape(-1, 3, 2)
