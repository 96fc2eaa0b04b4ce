"""The phantom on disk: standard and non-standard scenes written in the IUGC 2025 layout."""
from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ...errors import UserError
from ...geometry import angle_of_progression
from .geometry import sample_geometry
from .render import Canvas, Scene, SpeckleBank, render_acquisition

TRUTH_CSV = "phantom_truth.csv"
LABELED_DIR = Path("Training") / "Labeled cases"
UNLABELED_DIR = Path("Training") / "Unlabeled cases"
NON_STANDARD_KINDS = ("no_symphysis", "no_head", "head_cut", "oblique", "shadow")
BLANK_FRACTION = 0.01       # of the unlabeled pool; at least one frame each when the pool has 3+
DUPLICATE_FRACTION = 0.02


def _standard_scene(rng: np.random.Generator, size: int) -> Scene:
    g = sample_geometry(rng, 1, size)[0]
    return Scene("standard", g.sector, g.symphysis, g.skull, g.landmarks)


def _non_standard_scene(rng: np.random.Generator, size: int, kind: str) -> Scene:
    """A plane a reader would reject: a structure missing, cut off or distorted, or the fan mostly
    in shadow. Its landmarks are those of the standard anatomy it was made from (never written)."""
    scene = _standard_scene(rng, size)
    symphysis, skull = scene.symphysis.copy(), scene.skull.copy()
    if kind == "no_symphysis":
        symphysis = None
    elif kind == "no_head":
        skull = None
    elif kind == "head_cut":            # the skull slid sideways until the fan's edge cuts it
        ax, ay, _, _, half = scene.sector
        radius = np.hypot(skull[0] - ax, skull[1] - ay)
        bearing = rng.choice([-1.0, 1.0]) * half * rng.uniform(0.9, 1.2)
        skull[:2] = ax + radius * np.sin(bearing), ay + radius * np.cos(bearing)
    elif kind == "oblique":             # a slanted plane: a long thin skull section, a stub of symphysis
        skull[3] = skull[2] * rng.uniform(0.3, 0.45)
        skull[4] = rng.uniform(0.0, np.pi)
        symphysis[2] *= rng.uniform(0.35, 0.55)
        symphysis[3] = symphysis[2] * rng.uniform(0.8, 1.0)
    elif kind != "shadow":              # "shadow" keeps the anatomy; _echo_map darkens the fan
        raise ValueError(f"unknown non-standard kind {kind!r}")
    return replace(scene, kind=kind, symphysis=symphysis, skull=skull)


def _write_png(path: Path, image: np.ndarray) -> None:
    # One fixed row filter and run-length zlib: twice as fast as the defaults on speckle, files
    # about as small. Writing PNGs is most of the phantom's run time.
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(data.tobytes())


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _check_arguments(n_labeled, n_unlabeled, size, standard_plane_fraction, frames_per_acquisition) -> None:
    rules = (
        ("n_labeled", n_labeled, n_labeled >= 1, "need at least 1"),
        ("n_unlabeled", n_unlabeled, n_unlabeled >= 0, "cannot be negative"),
        ("size", size, size >= 32, "frames need at least 32 pixels a side"),
        ("standard_plane_fraction", standard_plane_fraction, 0.0 <= standard_plane_fraction <= 1.0,
         "must lie in [0, 1]"),
        ("frames_per_acquisition", frames_per_acquisition, frames_per_acquisition >= 1, "need at least 1"),
    )
    for name, value, ok, rule in rules:
        if not ok:
            raise UserError(f"phantom: {name} = {value!r}: {rule}")


def _clear_previous(dst: Path) -> None:
    """Make ``dst`` ready: a new or empty folder, or a previous phantom (whose files go)."""
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()):
        if not (dst / TRUTH_CSV).is_file():
            raise UserError(f"{dst}: not empty and not a phantom dataset (no {TRUTH_CSV}); "
                            "refusing to write into it")
        shutil.rmtree(dst / "Training", ignore_errors=True)
        (dst / TRUTH_CSV).unlink()
    dst.mkdir(parents=True, exist_ok=True)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def _write_labeled(folder: Path, n: int, seed: int, canvas: Canvas, bank: SpeckleBank,
                   frames_per_acquisition: int) -> None:
    folder.mkdir(parents=True)
    rows = []
    for acquisition, count in enumerate(_chunks(n, frames_per_acquisition)):
        rng = np.random.default_rng([seed, 0, acquisition])   # acquisition k is the same whatever n is
        scene = _standard_scene(rng, canvas.size)
        frames, landmarks = render_acquisition(scene, canvas, bank, rng, count)
        for image, points in zip(frames, landmarks):
            name = f"{len(rows) + 1:05d}.png"
            _write_png(folder / name, image)
            ps1, ps2, fh1 = np.clip(np.rint(points), 0, canvas.size - 1).astype(int)
            aop = angle_of_progression(ps1, ps2, fh1)          # of the points as written
            rows.append([name, *(f"({x}, {y})" for x, y in (ps1, ps2, fh1)), f"{aop:.4f}"])
    _write_csv(folder / "label.csv", ["Filename", "PS1", "PS2", "FH1", "AoP"], rows)


def _write_unlabeled(folder: Path, n: int, seed: int, canvas: Canvas, bank: SpeckleBank,
                     standard_plane_fraction: float, frames_per_acquisition: int) -> list[list]:
    """The pool: acquisitions of one kind each (standard or one way of not being standard) in
    shuffled folders, plus blank frames and copies of pool frames dropped into random folders.
    Returns the truth rows (relpath, standard_plane, kind, duplicate_of)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng([seed, 1])
    n_blank = max(1, round(BLANK_FRACTION * n)) if n >= 3 else 0
    n_duplicate = max(1, round(DUPLICATE_FRACTION * n)) if n >= 3 else 0
    n_rendered = n - n_blank - n_duplicate
    n_standard = round(standard_plane_fraction * n_rendered)
    non_standard = _chunks(n_rendered - n_standard, frames_per_acquisition)
    plan = ([("standard", k) for k in _chunks(n_standard, frames_per_acquisition)]
            + [(NON_STANDARD_KINDS[i % len(NON_STANDARD_KINDS)], k) for i, k in enumerate(non_standard)])
    plan = [plan[i] for i in rng.permutation(len(plan))]
    sources = set(rng.choice(n_rendered, n_duplicate, replace=False).tolist())

    truth, copied, folder_sizes = [], {}, []
    for acquisition, (kind, count) in enumerate(plan):
        scene_rng = np.random.default_rng([seed, 1, acquisition])
        scene = (_standard_scene(scene_rng, canvas.size) if kind == "standard"
                 else _non_standard_scene(scene_rng, canvas.size, kind))
        frames, _ = render_acquisition(scene, canvas, bank, scene_rng, count)
        (folder / f"case{acquisition + 1:04d}").mkdir()
        for j, image in enumerate(frames):
            relpath = f"case{acquisition + 1:04d}/frame{j + 1:03d}.png"
            _write_png(folder / relpath, image)
            if len(truth) in sources:
                copied[len(truth)] = image
            truth.append([relpath, int(kind == "standard"), kind, ""])
        folder_sizes.append(count)

    def add(image: np.ndarray, standard_plane: int, kind: str, duplicate_of: str = "") -> None:
        acquisition = int(rng.integers(len(folder_sizes)))
        folder_sizes[acquisition] += 1
        relpath = f"case{acquisition + 1:04d}/frame{folder_sizes[acquisition]:03d}.png"
        _write_png(folder / relpath, image)
        truth.append([relpath, standard_plane, kind, duplicate_of])

    for _ in range(n_blank):            # a frozen or disconnected screen
        noise = rng.normal(rng.integers(0, 30), 0.6, (canvas.size, canvas.size))
        add(np.clip(np.rint(noise), 0, 255).astype(np.uint8), 0, "blank")
    for i, source in enumerate(sorted(copied)):   # exact copies, and copies with a little noise
        image = copied[source]
        if i % 2:
            noisy = image + rng.integers(-2, 3, image.shape)
            image = np.where(image > 0, np.clip(noisy, 0, 255), 0).astype(np.uint8)
        relpath, standard_plane, _, _ = truth[source]
        add(image, standard_plane, "duplicate", relpath)
    return sorted(truth)


def make_phantom(dst, *, n_labeled: int, n_unlabeled: int, seed: int, size: int,
                 standard_plane_fraction: float, frames_per_acquisition: int) -> Path:
    """Write a phantom dataset in the IUGC 2025 layout under ``dst`` and return ``dst``.

    ``Training/Labeled cases/``: ``label.csv`` (Filename, PS1, PS2, FH1, AoP) and frames
    00001.png ... in acquisitions of ``frames_per_acquisition`` consecutive near-duplicates.
    ``Training/Unlabeled cases/caseNNNN/frameNNN.png``: the pool; ``standard_plane_fraction`` of
    its rendered frames are standard planes, and about 1% blank and 2% duplicated frames are added.
    ``phantom_truth.csv``: relpath (relative to the pool folder), standard_plane, kind,
    duplicate_of. The same seed writes the same bytes (with the same OpenCV/zlib). ``dst`` must
    be new, empty or a previous phantom.
    """
    _check_arguments(n_labeled, n_unlabeled, size, standard_plane_fraction, frames_per_acquisition)
    dst = Path(dst)
    _clear_previous(dst)
    canvas = Canvas(int(size))
    bank = SpeckleBank(np.random.default_rng([seed, 2]), int(size))
    _write_labeled(dst / LABELED_DIR, int(n_labeled), seed, canvas, bank, int(frames_per_acquisition))
    truth = _write_unlabeled(dst / UNLABELED_DIR, int(n_unlabeled), seed, canvas, bank,
                             float(standard_plane_fraction), int(frames_per_acquisition))
    _write_csv(dst / TRUTH_CSV, ["relpath", "standard_plane", "kind", "duplicate_of"], truth)
    return dst
