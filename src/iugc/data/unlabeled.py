"""The unlabeled pool of a dataset in IUGC 2025 layout (``Training/Unlabeled cases/``).

IUGC 2025 ships about 31k unlabeled frames in nested folders; 2045 of them, named
``Example*``, are its standard-plane examples (the seed paper pretrains on exactly those).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .images import is_image_name

UNLABELED_FOLDER = Path("Training") / "Unlabeled cases"
EXAMPLE_PREFIX = "Example"


def _is_archive_debris(relpath: Path) -> bool:
    """Hidden files and macOS archive leftovers (``__MACOSX/``, ``._name``) are not frames."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.parts)


def list_unlabeled(root: str | Path) -> pd.DataFrame:
    """Images under ``root/Training/Unlabeled cases`` (nested folders included), sorted by path.

    Columns: ``image_path`` (absolute str), ``relpath`` (posix, relative to the unlabeled
    folder), ``is_example`` (file name starts with ``Example``). Empty when the folder is absent.
    """
    folder = Path(root) / UNLABELED_FOLDER
    found = folder.rglob("*") if folder.is_dir() else []
    files = sorted(relpath for p in found
                   if p.is_file() and is_image_name(p)
                   and not _is_archive_debris(relpath := p.relative_to(folder)))
    return pd.DataFrame({
        "image_path": [os.path.abspath(folder / relpath) for relpath in files],
        "relpath": [relpath.as_posix() for relpath in files],
        "is_example": [relpath.name.startswith(EXAMPLE_PREFIX) for relpath in files],
    }, columns=["image_path", "relpath", "is_example"]).astype({"is_example": bool})


def cap_pool(unlabeled: pd.DataFrame, max_frames: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_frames`` frames of the pool, in whole folders (acquisitions) drawn in a
    seeded random order, never the first folders by name; rows keep their order."""
    if max_frames is None or max_frames >= len(unlabeled):
        return unlabeled
    folders = unlabeled["relpath"].map(lambda r: Path(r).parent.as_posix())
    sizes = folders.value_counts().sort_index()
    chosen, total = set(), 0
    for index in np.random.default_rng([seed, 2]).permutation(len(sizes)):
        if total + sizes.iloc[index] <= max_frames:
            chosen.add(sizes.index[index])
            total += sizes.iloc[index]
    return unlabeled[folders.isin(chosen).to_numpy()].reset_index(drop=True)
