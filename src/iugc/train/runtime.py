"""Where and how training runs: device, mixed precision, seeding, determinism, progress, logs."""
from __future__ import annotations

import logging
import random
import sys
from contextlib import AbstractContextManager

import numpy as np
import torch
from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() on the loader twice


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_enabled(device: torch.device, requested: bool) -> bool:
    """Mixed precision is used on CUDA only (bf16 autocast on a CPU is many times slower)."""
    return requested and device.type == "cuda"


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """Loss scaler for float16 autocast; a no-op (still checkpointable) when disabled."""
    return torch.amp.GradScaler(device.type, enabled=enabled)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Reproducible kernels (the CPU default) or the fastest ones (cuDNN autotuning, for GPUs).

    ``warn_only`` keeps the few operations without a deterministic kernel usable; on a CPU
    every operation the project uses has one.
    """
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed for (seed, *keys), e.g. one per epoch or per frame."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def loader_generator(seed: int) -> torch.Generator:
    """Generator for a DataLoader: it fixes the shuffling order and the workers' base seed."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive Python's and numpy's seeds from the worker's torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def progress(iterable, **kwargs):
    """A tqdm bar on an interactive terminal; silent in log files (stderr not a TTY)."""
    return tqdm(iterable, disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True, **kwargs)


def get_logger(name: str = "iugc") -> logging.Logger:
    """A logger that writes ``time name: message`` lines to stderr (configured once)."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
