"""PSFHS (Chen et al., Sci. Data 2024) to the three-landmark IUGC 2025 layout.

PSFHS gives segmentations (0 background, 1 pubic symphysis, 2 fetal head) as MetaImage files;
the landmarks follow the IUGC organisers' biometry convention:

1. PS1, PS2: the farthest pair of points of the outer contour of the largest PS region, PS1 the
   one with the larger x (the vertex of the angle).
2. FH1: the point of the outer contour of the largest FH region whose ray from PS1 makes the
   largest angle with PS2 - PS1 (the tangent from PS1 to the skull); ties go to the point nearest
   PS1.
3. The ray PS1 -> FH1 must be a tangent: the whole FH contour lies on one side of it. When the
   skull wraps round past the symphysis axis (AoP near 180) no tangent exists and the frame is
   skipped, like the 27 frames the organisers' code finds no tangent for (those frames are not
   in the psfhs_aop release, so this rule is tested on drawn masks).

From its masks this reproduces the points and AoP of all 1082 frames of the psfhs_aop release.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk
from PIL import Image

from ..errors import UserError
from ..geometry import angle_of_progression
from .images import to_grey
from .labels import LABEL_CSV, LABELED_FOLDER, format_point

PS_LABEL = 1
FH_LABEL = 2
# Angles are compared with this tolerance (degrees) so that contour points on one ray from PS1,
# whose arccos differ in the last bits, count as a tie.
_ANGLE_TIE = 1e-9


@dataclass
class ConversionReport:
    n_written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (frame id, reason)


def _outer_contour(region: np.ndarray) -> np.ndarray | None:
    """(N, 2) integer (x, y) points of the outer contour of the largest region (by the area the
    contour encloses), or None for an empty region."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    return max(contours, key=cv2.contourArea)[:, 0, :].astype(np.int64)


def _farthest_pair(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two points farthest apart (the first such pair in contour order)."""
    squared = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmax(squared), squared.shape)
    return points[i], points[j]


def _landmarks_or_reason(mask: np.ndarray) -> tuple[np.ndarray | None, str]:
    symphysis = _outer_contour(mask == PS_LABEL)
    head = _outer_contour(mask == FH_LABEL)
    if symphysis is None:
        return None, f"no pubic symphysis (label {PS_LABEL})"
    if head is None:
        return None, f"no fetal head (label {FH_LABEL})"
    a, b = _farthest_pair(symphysis)
    if (a == b).all():
        return None, "pubic symphysis is a single pixel"
    ps1, ps2 = (a, b) if tuple(a) > tuple(b) else (b, a)  # larger x (then larger y) is PS1

    angles = angle_of_progression(ps1, ps2, head)  # labels are exclusive: no head point is PS1
    candidates = np.flatnonzero(angles >= angles.max() - _ANGLE_TIE)
    distances = np.linalg.norm(head[candidates] - ps1, axis=1)
    fh1 = head[candidates[np.argmin(distances)]]

    # A tangent leaves the whole head on one side: the cross products share one sign.
    ray, to_head = fh1 - ps1, head - ps1
    sides = np.sign(ray[0] * to_head[:, 1] - ray[1] * to_head[:, 0])
    if (sides > 0).any() and (sides < 0).any():
        return None, "no tangent from PS1 to the fetal head (head wraps past the symphysis axis)"
    return np.stack([ps1, ps2, fh1]), ""


def landmarks_from_mask(mask: np.ndarray) -> np.ndarray | None:
    """PS1, PS2, FH1 as an integer array (3, 2) of (x, y) pixels, or None when the mask has no
    symphysis or head, or no tangent from PS1 to the head exists."""
    points, _ = _landmarks_or_reason(np.asarray(mask))
    return points


def _read_mha(path: Path) -> np.ndarray:
    """A MetaImage as (H, W) or channels-last (H, W, C); PSFHS stores RGB as 3 slices."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() == 1 and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)  # (C, H, W) slices -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def _grey_frame(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:
        if array.dtype != np.uint8 or array.shape[-1] not in (3, 4):
            raise ValueError(f"unsupported colour image {array.shape} {array.dtype}")
        return to_grey(Image.fromarray(np.ascontiguousarray(array[..., :3])))
    return to_grey(Image.fromarray(array))


def _check_destination(src: Path, dst: Path) -> None:
    src_abs, dst_abs = src.resolve(), dst.resolve()
    if dst_abs == src_abs or src_abs in dst_abs.parents:
        raise UserError(f"{dst}: destination lies inside the source {src}; choose another folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UserError(f"{dst}: exists and is not an empty folder")


def convert_psfhs(src: str | Path, dst: str | Path) -> ConversionReport:
    """Write ``src`` (``image_mha/``, ``label_mha/``) to ``dst`` in IUGC 2025 layout.

    Output: ``Training/Labeled cases/label.csv`` (Filename, PS1, PS2, FH1, AoP rounded to 4
    decimals) with 8-bit grey PNG frames beside it, and ``masks/<id>.png``. Frames without
    landmarks (see the module docstring) or with unreadable files are skipped and reported.
    """
    src, dst = Path(src), Path(dst)
    image_dir, label_dir = src / "image_mha", src / "label_mha"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise UserError(f"{src}: no {folder.name}/ folder (expected the PSFHS release)")
    images = {p.stem: p for p in image_dir.glob("*.mha")}
    labels = {p.stem: p for p in label_dir.glob("*.mha")}
    if not images:
        raise UserError(f"{image_dir}: no .mha images")
    _check_destination(src, dst)

    frames_dir, masks_dir = dst / "Training" / LABELED_FOLDER, dst / "masks"
    frames_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(exist_ok=True)
    report = ConversionReport()
    rows = []
    for frame_id in sorted(images.keys() | labels.keys()):
        if frame_id not in labels or frame_id not in images:
            missing = "label_mha" if frame_id not in labels else "image_mha"
            report.skipped.append((frame_id, f"no {missing}/{frame_id}.mha"))
            continue
        try:
            frame = _grey_frame(_read_mha(images[frame_id]))
            mask = _read_mha(labels[frame_id])
        except (RuntimeError, ValueError) as err:  # SimpleITK reports broken files as RuntimeError
            report.skipped.append((frame_id, f"unreadable: {str(err).strip().splitlines()[0]}"))
            continue
        if mask.shape != frame.shape:
            report.skipped.append((frame_id, f"label {mask.shape} and image {frame.shape} differ"))
            continue
        points, reason = _landmarks_or_reason(mask)
        if points is None:
            report.skipped.append((frame_id, reason))
            continue
        name = f"{frame_id}.png"
        Image.fromarray(frame).save(frames_dir / name)
        Image.fromarray(mask.astype(np.uint8)).save(masks_dir / name)
        aop = float(angle_of_progression(*points))
        rows.append([name, *(format_point(*p) for p in points), f"{aop:.4f}"])

    with open(frames_dir / LABEL_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Filename", "PS1", "PS2", "FH1", "AoP"])
        writer.writerows(rows)
    report.n_written = len(rows)
    return report
