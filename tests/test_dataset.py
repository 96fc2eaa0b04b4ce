"""LandmarkDataset: model-pixel landmarks, caching, and augmentation seeded per (epoch, frame)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from model_builders import augment as build_augment
from model_builders import eval_transform as build_eval_transform
from test_finetune import synthetic_frames

from iugc.config import load_preset
from iugc.data.dataset import LandmarkDataset, landmarks_of


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return synthetic_frames(tmp_path_factory.mktemp("frames"), 4)


@pytest.fixture(scope="module")
def augment_params():
    return load_preset("smoke")["augment"]


def test_items_are_normalised_images_and_model_pixel_landmarks(frames, augment_params):
    dataset = LandmarkDataset(frames, 32, build_eval_transform(augment_params))
    image, points, index = dataset[2]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5
    assert points.dtype == torch.float32 and index == 2
    original = landmarks_of(frames)[2]
    # 64 px frames at 32 px: x_model = (x + 0.5) / 2 - 0.5, and back exactly
    np.testing.assert_allclose(points.numpy(), (original + 0.5) / 2 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(dataset.resize_maps[2].to_original(points.numpy()), original, rtol=1e-5)


def test_uncached_dataset_gives_the_same_items(frames, augment_params):
    cached = LandmarkDataset(frames, 32, build_eval_transform(augment_params))
    uncached = LandmarkDataset(frames, 32, build_eval_transform(augment_params), cache=False)
    assert uncached.frames is None
    assert uncached.resize_maps == cached.resize_maps
    for i in range(len(frames)):
        assert torch.equal(cached[i][0], uncached[i][0]) and torch.equal(cached[i][1], uncached[i][1])


def test_augmentation_depends_only_on_seed_epoch_and_frame(frames, augment_params):
    def items(order, epoch, seed=7):
        dataset = LandmarkDataset(frames, 64, build_augment(augment_params), seed=seed)
        dataset.epoch = epoch
        return {i: dataset[i] for i in order}

    forward, backward = items([0, 1, 2, 3], epoch=1), items([3, 2, 1, 0], epoch=1)
    for i in range(4):
        assert torch.equal(forward[i][0], backward[i][0]) and torch.equal(forward[i][1], backward[i][1])
    other_epoch = items([0, 1, 2, 3], epoch=2)
    assert not all(torch.equal(forward[i][0], other_epoch[i][0]) for i in range(4))
