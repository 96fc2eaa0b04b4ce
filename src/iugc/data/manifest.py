"""The dataset manifest that the obtain stage writes and every later stage reads.

A manifest folder holds ``labels.csv`` (one row per labelled frame: file, split, landmarks,
AoP, size), ``unlabeled.csv`` (the unlabeled pool) and ``source.json`` (where the frames are and
content hashes of them). Image paths are stored relative to the manifest folder when the frames
live inside the study folder (the phantom, a converted PSFHS release, a data root kept in the
study), so the study can be moved or copied whole, and absolute otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..geometry import LANDMARKS

LABELS_CSV = "labels.csv"
UNLABELED_CSV = "unlabeled.csv"
SOURCE_JSON = "source.json"
SPLITS_CSV = "splits.csv"
SUBSETS = ("train", "val", "test")


def read_dataset(dataset: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Labels, unlabeled pool and source record of a manifest folder, paths made absolute."""
    dataset = Path(dataset)
    try:
        labels = pd.read_csv(dataset / LABELS_CSV)
        unlabeled = pd.read_csv(dataset / UNLABELED_CSV)
        source = json.loads((dataset / SOURCE_JSON).read_text())
    except FileNotFoundError as err:
        raise UserError(f"{dataset}: not a dataset manifest ({Path(err.filename).name} missing); "
                        "run the obtain stage") from None
    for frame in (labels, unlabeled):
        frame["image_path"] = [str(p if Path(p).is_absolute() else (dataset / p).resolve())
                               for p in frame["image_path"]]
    return labels, unlabeled, source


def write_dataset(out: str | Path, labels: pd.DataFrame, unlabeled: pd.DataFrame, record: dict) -> None:
    """Write a manifest folder; image paths inside the study are stored relative to ``out``."""
    out = Path(out)
    for frame, name in ((labels, LABELS_CSV), (unlabeled, UNLABELED_CSV)):
        frame = frame.copy()
        frame["image_path"] = [manifest_path(p, out) for p in frame["image_path"]]
        frame.to_csv(out / name, index=False)
    (out / SOURCE_JSON).write_text(json.dumps(record, indent=1) + "\n")


def manifest_path(path: str | Path, out: str | Path) -> str:
    """``path`` as manifest ``out`` stores it: relative to ``out`` when inside it or inside the
    study folder (the working directory every stage runs in), absolute otherwise."""
    p, out = Path(path).resolve(), Path(out).resolve()
    if p.is_relative_to(out) or p.is_relative_to(Path.cwd().resolve()):
        return os.path.relpath(p, out)
    return str(p)


def portable_path(path: str) -> str:
    """A frame's path as a result stores it: relative to the study folder (the working directory
    every stage runs in) when inside it, so results do not depend on where the study was checked
    out or pulled; absolute otherwise (a data root outside the study, named by data.root)."""
    return _relative_to(path, Path.cwd())


def _relative_to(path: str, folder: Path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(p.resolve())


def read_splits(split: str | Path) -> pd.DataFrame:
    """``filename, group, subset`` of every labelled frame (the split stage's table)."""
    return pd.read_csv(Path(split) / SPLITS_CSV)


def labelled_subsets(dataset: str | Path, split: str | Path) -> dict[str, pd.DataFrame]:
    """Labels joined with the split, as {'train': df, 'val': df, 'test': df}."""
    labels, _, _ = read_dataset(dataset)
    table = labels.merge(read_splits(split), on="filename", how="inner", validate="one_to_one")
    return {name: table[table["subset"] == name].reset_index(drop=True) for name in SUBSETS}


def true_points(frames: pd.DataFrame) -> np.ndarray:
    """The labelled landmarks of ``frames`` (rows of ``labelled_subsets``), (n, 3, 2) in pixels."""
    return frames[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(np.float64).reshape(-1, 3, 2)
