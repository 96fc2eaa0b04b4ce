"""PSFHS masks -> IUGC landmarks (organisers' convention) and the conversion to IUGC layout."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from iugc.data.labels import load_labels, parse_point
from iugc.data.psfhs import convert_psfhs, landmarks_from_mask
from iugc.data.validate import validate_dataset
from iugc.errors import UserError
from iugc.geometry import aop_from_landmarks

SIZE = 48


def _symphysis(mask: np.ndarray) -> np.ndarray:
    """A one-pixel bar along y = 10 from x = 5 to 20: PS2 = (5, 10), PS1 = (20, 10)."""
    mask[10, 5:21] = 1
    return mask


def _head_with_tie() -> np.ndarray:
    """A head whose upper edge lies on the ray from PS1 through (30, 11) and (40, 12)."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    mask[(xs >= 30) & (xs <= 40) & (ys <= 20) & (10 * (ys - 10) >= xs - 20)] = 2
    return _symphysis(mask)


def _head_wrapping_past_the_axis() -> np.ndarray:
    """A head that crosses the symphysis axis beyond PS1 (y = 10, x > 20): no tangent."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    mask = np.where((xs - 28) ** 2 + (ys - 16) ** 2 <= 64, 2, 0).astype(np.uint8)
    return _symphysis(mask)


def test_landmarks_of_a_drawn_mask_with_a_tie_on_the_tangent():
    points = landmarks_from_mask(_head_with_tie())
    np.testing.assert_array_equal(points, [[20, 10], [5, 10], [30, 11]])  # tie -> nearest PS1


def test_landmarks_follow_the_convention_on_a_random_head():
    """Properties of the convention on an ellipse: farthest PS pair, widest ray, a true tangent."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    mask = np.where(((xs - 32) / 12.0) ** 2 + ((ys - 32) / 9.0) ** 2 <= 1, 2, 0).astype(np.uint8)
    mask[8:11, 4:20] = 1
    ps1, ps2, fh1 = landmarks_from_mask(mask)
    ps = np.argwhere(mask == 1)[:, ::-1]
    longest = np.sqrt(((ps[:, None] - ps[None]) ** 2).sum(-1)).max()
    assert np.hypot(*(ps1 - ps2)) == pytest.approx(longest) and ps1[0] > ps2[0]
    head = np.argwhere(mask == 2)[:, ::-1]
    assert mask[fh1[1], fh1[0]] == 2
    widest = aop_from_landmarks(np.stack(np.broadcast_arrays(ps1, ps2, head), axis=1)).max()
    assert aop_from_landmarks(np.stack([ps1, ps2, fh1])) == pytest.approx(widest, abs=1e-9)
    ray, to_head = fh1 - ps1, head - ps1
    assert (ray[0] * to_head[:, 1] - ray[1] * to_head[:, 0] >= 0).all()  # all on one side


def test_no_landmarks_without_tangent_or_structure():
    assert landmarks_from_mask(_head_wrapping_past_the_axis()) is None
    assert landmarks_from_mask(np.where(_head_with_tie() == 2, 2, 0)) is None  # no symphysis
    assert landmarks_from_mask(np.where(_head_with_tie() == 1, 1, 0)) is None  # no head


def _label_rows(psfhs_root: Path) -> dict[str, list[str]]:
    with open(psfhs_root / "Training" / "Labeled cases" / "label.csv", newline="") as handle:
        return {row[0]: row for row in list(csv.reader(handle))[1:]}


def test_masks_give_the_published_landmarks_for_every_frame(psfhs_root):
    rows = _label_rows(psfhs_root)
    agree = 0
    for name, row in rows.items():
        points = landmarks_from_mask(np.asarray(Image.open(psfhs_root / "masks" / name)))
        expected = np.array([parse_point(text) for text in row[1:4]])
        aop = float(aop_from_landmarks(points)) if points is not None else np.nan
        agree += points is not None and (points == expected).all() and f"{aop:.4f}" == row[4]
    assert agree == len(rows) == 1082


def _snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_convert_raw_frames_reproduces_the_published_files(psfhs_root, tmp_path):
    raw, dst = psfhs_root / "raw", tmp_path / "converted"
    before = _snapshot(raw)
    report = convert_psfhs(raw, dst)
    assert _snapshot(raw) == before
    assert report.n_written == 12 and report.skipped == []

    published = _label_rows(psfhs_root)
    with open(dst / "Training" / "Labeled cases" / "label.csv", newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["Filename", "PS1", "PS2", "FH1", "AoP"]
    assert written[1:] == [published[row[0]] for row in written[1:]]
    for name in [row[0] for row in written[1:]]:
        for folder in ("Training/Labeled cases", "masks"):
            ours, theirs = (Image.open(root / folder / name) for root in (dst, psfhs_root))
            assert ours.mode == theirs.mode == "L"
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def _write_mha(path: Path, array: np.ndarray, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=compress)


def test_convert_compressed_mha_and_report_skipped_frames(tmp_path):
    src = tmp_path / "psfhs"
    frame = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    as_slices = np.stack([frame] * 3)  # PSFHS stores RGB as three slices (3, H, W)
    _write_mha(src / "image_mha" / "00001.mha", as_slices, compress=True)
    _write_mha(src / "label_mha" / "00001.mha", _head_with_tie(), compress=True)
    _write_mha(src / "image_mha" / "00002.mha", as_slices, compress=False)
    _write_mha(src / "label_mha" / "00002.mha", _head_wrapping_past_the_axis(), compress=False)
    _write_mha(src / "image_mha" / "00003.mha", frame, compress=False)  # no label
    (src / "image_mha" / "00004.mha").write_text("ObjectType = Image\nNDims = banana\n")
    _write_mha(src / "label_mha" / "00004.mha", _head_with_tie(), compress=False)

    report = convert_psfhs(src, tmp_path / "out")
    assert report.n_written == 1
    reasons = dict(report.skipped)
    assert list(reasons) == ["00002", "00003", "00004"]
    assert "no tangent" in reasons["00002"] and "no label_mha/00003.mha" == reasons["00003"]
    assert reasons["00004"].startswith("unreadable")

    assert validate_dataset(tmp_path / "out").problems == []
    labels = load_labels(tmp_path / "out")
    assert list(labels["filename"]) == ["00001.png"]
    np.testing.assert_array_equal(labels[["ps1_x", "ps1_y", "ps2_x", "ps2_y", "fh1_x", "fh1_y"]],
                                  [[20, 10, 5, 10, 30, 11]])
    np.testing.assert_array_equal(np.asarray(Image.open(labels["image_path"][0])), frame)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out/masks/00001.png")),
                                  _head_with_tie())


def test_convert_refuses_unsafe_destinations(tmp_path):
    src = tmp_path / "psfhs"
    _write_mha(src / "image_mha" / "00001.mha", np.zeros((8, 8), np.uint8), compress=False)
    (src / "label_mha").mkdir()
    with pytest.raises(UserError, match="inside the source"):
        convert_psfhs(src, src / "converted")
    with pytest.raises(UserError, match="inside the source"):
        convert_psfhs(src, src)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty folder"):
        convert_psfhs(src, tmp_path / "full")
    with pytest.raises(UserError, match="no image_mha"):
        convert_psfhs(tmp_path / "full", tmp_path / "out")
    assert not (src / "converted").exists()
