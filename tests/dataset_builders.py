"""Small synthetic datasets in IUGC 2025 layout for the data-layer tests."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

HEADER = ["Filename", "PS1", "PS2", "FH1", "AoP"]
# Three frames of 32 x 32 with valid points; AoP values are the geometry of the points.
GOOD_ROWS = [
    ["00001.png", "(20, 5)", "(5, 8)", "(25, 20)", "97.1250"],
    ["00002.png", "(21, 6)", "(6, 9)", "(26, 21)", "97.1250"],
    ["00003.png", "(22, 7)", "(7, 10)", "(27, 22)", "97.1250"],
]


def write_frame(path: Path, size=(32, 32), seed: int = 0) -> Path:
    """An 8-bit grey PNG (or any format Pillow infers from the suffix) of noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_csv(path: Path, header, rows, newline: str = "\n", bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        csv.writer(handle, lineterminator=newline).writerows([header, *rows])
    return path


def write_labelled(folder: Path, rows=GOOD_ROWS, header=HEADER, csv_name="label.csv",
                   size=(32, 32)) -> Path:
    """``folder/csv_name`` plus one frame per distinct file name of ``rows``; returns the CSV."""
    names = {row[0] for row in rows if row and row[0]}
    for seed, name in enumerate(sorted(names)):
        write_frame(folder / name, size, seed)
    return write_csv(folder / csv_name, header, rows)


def write_dataset(root: Path, rows=GOOD_ROWS) -> Path:
    """A dataset root with ``Training/Labeled cases/label.csv`` and its frames."""
    write_labelled(root / "Training" / "Labeled cases", rows)
    return root
