"""The built-in phantom: layout, exact landmarks, the unlabeled pool's truth, determinism."""
from __future__ import annotations

import re
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iugc.cli import main
from iugc.config import load_preset
from iugc.data.phantom import (LABELED_DIR, NON_STANDARD_KINDS, TRUTH_CSV, UNLABELED_DIR, ellipse_rim,
                               make_phantom, sample_geometry)
from iugc.errors import UserError
from iugc.geometry import aop_from_landmarks

SIZE = 64
FRAMES_PER_ACQUISITION = 3
FRACTION = 0.5


def _make(dst, seed=0, n_labeled=9, n_unlabeled=40):
    return make_phantom(dst, n_labeled=n_labeled, n_unlabeled=n_unlabeled, seed=seed, size=SIZE,
                        standard_plane_fraction=FRACTION, frames_per_acquisition=FRAMES_PER_ACQUISITION)


def _points(cell: str) -> tuple[int, int]:
    assert re.fullmatch(r"\(-?\d+, -?\d+\)", cell), cell
    x, y = map(int, re.findall(r"-?\d+", cell))
    return x, y


def _grey(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L"
    return np.asarray(image)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("phantom") / "ds")


@pytest.fixture(scope="module")
def labels(phantom) -> pd.DataFrame:
    return pd.read_csv(phantom / LABELED_DIR / "label.csv")


@pytest.fixture(scope="module")
def truth(phantom) -> pd.DataFrame:
    return pd.read_csv(phantom / TRUTH_CSV, keep_default_na=False)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_the_same_bytes(phantom, tmp_path):
    again = _tree(_make(tmp_path / "again"))
    assert again == _tree(phantom)
    other = _tree(_make(tmp_path / "other", seed=1))
    assert other[str(LABELED_DIR / "00001.png")] != again[str(LABELED_DIR / "00001.png")]


def test_labeled_layout(phantom, labels):
    assert list(labels.columns) == ["Filename", "PS1", "PS2", "FH1", "AoP"]
    assert list(labels["Filename"]) == [f"{i:05d}.png" for i in range(1, 10)]
    assert sorted(p.name for p in (phantom / LABELED_DIR).glob("*.png")) == list(labels["Filename"])
    for name in labels["Filename"]:
        assert _grey(phantom / LABELED_DIR / name).shape == (SIZE, SIZE)
    points = np.array([[_points(c) for c in labels[k]] for k in ("PS1", "PS2", "FH1")])
    assert points.min() >= 0 and points.max() < SIZE
    assert (points[0, :, 0] > points[1, :, 0]).all()       # PS1 is the right end of the symphysis


def test_aop_column_is_the_angle_of_the_written_points(labels):
    points = np.array([[_points(row[k]) for k in ("PS1", "PS2", "FH1")] for _, row in labels.iterrows()])
    np.testing.assert_allclose(labels["AoP"], aop_from_landmarks(points), atol=5e-5)


def test_aop_spread_resembles_the_real_data():
    g = sample_geometry(np.random.default_rng(0), 400)
    aop = aop_from_landmarks(g.landmarks)
    assert aop.min() < 80 and aop.max() > 155
    assert 100 < aop.mean() < 120 and 18 < aop.std() < 30      # PSFHS: mean 109, sd 22


def test_fh1_is_where_the_line_from_ps1_touches_the_skull():
    g = sample_geometry(np.random.default_rng(1), 100)
    ps1, ps2, fh1 = (g.landmarks[:, i] for i in range(3))
    aop = aop_from_landmarks(g.landmarks)
    rim = ellipse_rim(g.skull, 20000)
    rim_angles = aop_from_landmarks(np.stack(np.broadcast_arrays(ps1[:, None], ps2[:, None], rim), axis=-2))
    assert (rim_angles.max(axis=1) <= aop + 1e-9).all()
    assert (rim_angles.max(axis=1) > aop - 1e-3).all()     # and it lies on the rim
    cx, cy, a, b, angle = g.skull.T
    dx, dy = fh1[:, 0] - cx, fh1[:, 1] - cy
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / a
    v = (dy * np.cos(angle) - dx * np.sin(angle)) / b
    np.testing.assert_allclose(u * u + v * v, 1.0, atol=1e-9)


def test_landmarks_sit_on_the_structures_drawn(phantom, labels):
    """FH1 is on the bright skull rim, PS1 and PS2 on the symphysis outline: brighter than the fan."""
    contrast = []
    for _, row in labels.iterrows():
        image = _grey(phantom / LABELED_DIR / row["Filename"]).astype(float)
        fan = image[image > 0].mean()
        for k in ("PS1", "PS2", "FH1"):
            x, y = _points(row[k])
            contrast.append(image[max(0, y - 1):y + 2, max(0, x - 1):x + 2].max() / fan)
    assert np.mean(contrast) > 1.8      # random points: about 1.3


def test_truth_manifest_matches_the_pool(phantom, truth):
    pool = phantom / UNLABELED_DIR
    files = sorted(str(p.relative_to(pool)) for p in pool.rglob("*.png"))
    assert list(truth.columns[:3]) == ["relpath", "standard_plane", "kind"]
    assert sorted(truth["relpath"]) == files and len(files) == 40
    assert all(len(Path(f).parts) == 2 and not Path(f).name.startswith("Example") for f in files)
    assert set(truth["kind"]) == {"standard", "blank", "duplicate", *NON_STANDARD_KINDS}
    rendered = truth[truth["kind"] != "duplicate"]
    assert (rendered["standard_plane"] == (rendered["kind"] == "standard")).all()
    assert abs(truth["standard_plane"].mean() - FRACTION) < 0.05
    for relpath in truth.loc[truth["kind"] == "blank", "relpath"]:
        assert _grey(pool / relpath).std() < 2.0
    for _, row in truth[truth["kind"] == "duplicate"].iterrows():
        copy, source = _grey(pool / row["relpath"]).astype(int), _grey(pool / row["duplicate_of"]).astype(int)
        assert np.abs(copy - source).max() <= 2
        assert row["standard_plane"] == truth.set_index("relpath").loc[row["duplicate_of"], "standard_plane"]


def test_standard_plane_fraction_is_kept(tmp_path):
    g = make_phantom(tmp_path / "ds", n_labeled=1, n_unlabeled=200, seed=3, size=32,
                     standard_plane_fraction=0.85, frames_per_acquisition=6)
    truth = pd.read_csv(g / TRUTH_CSV)
    assert abs(truth["standard_plane"].mean() - 0.85) < 0.02


def test_acquisitions_are_near_duplicates(phantom, labels):
    """Consecutive frames of an acquisition fall within the split's perceptual-hash distance; frames
    of different acquisitions do not."""
    limit = load_preset("paper")["split"]["same_acquisition_distance"]
    hashes = [imagehash.phash(Image.open(phantom / LABELED_DIR / f)) for f in labels["Filename"]]
    points = np.array([[_points(row[k]) for k in ("PS1", "PS2", "FH1")] for _, row in labels.iterrows()])
    for i in range(len(hashes) - 1):
        same = i // FRAMES_PER_ACQUISITION == (i + 1) // FRAMES_PER_ACQUISITION
        if same:
            assert hashes[i] - hashes[i + 1] < limit
            assert np.abs(points[i] - points[i + 1]).max() <= 3      # the probe moves a little
        else:
            assert hashes[i] - hashes[i + 1] >= limit


def test_refuses_to_write_over_other_data(tmp_path, phantom):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a phantom"):
        _make(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="standard_plane_fraction"):
        make_phantom(tmp_path / "new", n_labeled=3, n_unlabeled=0, seed=0, size=SIZE,
                     standard_plane_fraction=1.5, frames_per_acquisition=1)


def test_overwrites_a_previous_phantom(tmp_path):
    first = _make(tmp_path / "ds", n_labeled=6)
    second = _make(tmp_path / "ds", n_labeled=3, n_unlabeled=5)
    assert len(list((second / LABELED_DIR).glob("*.png"))) == 3
    assert len(pd.read_csv(first / TRUTH_CSV)) == 5


def test_cli_writes_a_phantom(tmp_path, capsys):
    argv = ["phantom", str(tmp_path / "ds"), "--n", "4", "--seed", "2", "--size", "48", "--unlabeled", "8"]
    assert main(argv) == 0
    assert "wrote phantom dataset" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "ds" / LABELED_DIR / "label.csv")) == 4
    assert len(pd.read_csv(tmp_path / "ds" / TRUTH_CSV)) == 8
