"""Where every random draw of the study comes from.

Training derives one seed per (run seed, epoch[, frame]) instead of carrying generator state
around: an epoch's shuffling and each frame's augmentation are then the same whichever worker
draws them and whether or not the run was resumed in between.
"""
from __future__ import annotations

import random

import numpy as np


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed for (seed, *keys), e.g. one per epoch or per frame."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all CUDA devices included)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def loader_generator(seed: int):
    """Generator for a DataLoader: it fixes the shuffling order and the workers' base seed."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive Python's and numpy's seeds from the worker's torch seed."""
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
