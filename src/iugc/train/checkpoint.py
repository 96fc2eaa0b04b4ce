"""Atomic checkpoints that load with ``weights_only=True``, and the RNG state they carry.

A checkpoint holds only tensors and plain containers of numbers and strings, so it loads with
``torch.load(..., weights_only=True)`` (no code runs on load). Random-number-generator states
are stored as tensors for that reason. A checkpoint records the hash of the parameters that
produced it; loading it under different parameters is refused.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    The file is written beside its destination (same file system), flushed to disk, then renamed
    over it, so a job killed mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, expected_config_hash: str | None) -> dict[str, Any]:
    """Read a checkpoint on the CPU; refuse one written under another configuration.

    ``expected_config_hash=None`` skips the check (for inspecting a file).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise UserError(f"{path}: not a readable checkpoint ({err}); delete it to start over") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a checkpoint (expected a dict, found {type(state).__name__})")
    found = state.get("config_hash")
    if expected_config_hash is not None and found != expected_config_hash:
        raise UserError(
            f"{path}: written for configuration {found}, but the current parameters hash to "
            f"{expected_config_hash}; delete the file to start over or restore those parameters")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states, as tensors and plain numbers."""
    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored only where CUDA is present)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
