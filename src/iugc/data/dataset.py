"""Labelled frames as network inputs: resized once, cached, augmented with their landmarks."""
from __future__ import annotations

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..geometry import LANDMARKS
from ..seeding import derive_seed
from .augment import apply, reseed, to_uint8
from .images import ResizeMap, image_size, load_for_model

LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARKS for axis in "xy"]


def landmarks_of(labels_df: pd.DataFrame) -> np.ndarray:
    """Labelled points of every row, (n, 3, 2) float64 in original-image pixels."""
    return labels_df[LANDMARK_COLUMNS].to_numpy(np.float64).reshape(-1, len(LANDMARKS), 2)


class LandmarkDataset(Dataset):
    """Rows of a labels table as ``(image (1, S, S) float32, landmarks (3, 2) float32, index)``.

    Frames are resized to ``size`` x ``size``; ``resize_maps[i]`` maps the points of frame ``i``
    between original and model pixels. With ``cache=True`` each frame is read and resized once
    and kept in memory (uint8, S^2 bytes each), so epochs decode no image files; ``cache=False``
    reads it each time it is drawn (for sets too large to hold).

    ``transform`` is an albumentations Compose with keypoints (``data.augment``) that ends with
    the normalisation. Given a ``seed``, frame ``i`` of epoch ``e`` (``dataset.epoch``) is
    augmented from the seed (seed, e, i), so an epoch's augmentations depend neither on the
    worker that draws them nor on what ran before: a resumed run repeats them exactly.
    """

    def __init__(self, labels_df: pd.DataFrame, size: int, transform: A.Compose, cache: bool = True,
                 seed: int | None = None):
        self.image_paths = labels_df["image_path"].astype(str).tolist()
        self.size = size
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.landmarks = landmarks_of(labels_df)  # original pixels
        self.frames = None
        if cache:
            frames = [self._read(i) for i in range(len(self))]
            self.resize_maps = [resize_map for _, resize_map in frames]
            self.frames = np.stack([frame for frame, _ in frames]) if frames else None
        else:  # the header gives the original size without decoding the pixels
            self.resize_maps = [ResizeMap(*image_size(path), size) for path in self.image_paths]

    def __len__(self) -> int:
        return len(self.image_paths)

    def _read(self, index: int):
        image, resize_map = load_for_model(self.image_paths[index], self.size)
        return to_uint8(image), resize_map

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        frame = self.frames[index] if self.frames is not None else self._read(index)[0]
        points = self.resize_maps[index].to_model(self.landmarks[index]).astype(np.float32)
        if self.seed is not None:
            reseed(self.transform, derive_seed(self.seed, self.epoch, index))
        image, points = apply(self.transform, frame, points)
        return torch.from_numpy(image)[None], torch.from_numpy(points), index
