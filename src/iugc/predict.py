"""``iugc predict``: a trained model on new frames.

Frames are files or folders (searched recursively): PNG, JPEG, BMP, TIFF of any size and kind,
and single-frame DICOM, whose pixel spacing is used when it has one. The results are
``predictions.csv`` in the IUGC label layout (points ``"(x, y)"`` in pixels of each frame) with
the AoP, the spread per landmark (of its heatmap's distribution, in pixels) and, for a
calibrated model (``conformal.py``), each landmark's radius and the AoP interval at the
calibrated coverage; where the pixel spacing is known, the same in mm; and one overlay per
frame. A frame that cannot be read is named in one line and the others go on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .conformal import Calibration
from .data.images import ImageError, is_image_name, read_grey
from .errors import UserError
from .geometry import LANDMARKS, aop_from_landmarks
from .inference import TrainedModel, load_calibration, load_trained_model, model_file
from .train.runtime import progress

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
OVERLAY_COLORS = {"ps1": (60, 60, 230), "ps2": (40, 170, 250), "fh1": (230, 200, 40)}  # BGR


@dataclass
class Frame:
    path: Path
    name: str                     # relative to the folder it was found in
    grey: np.ndarray
    pixel_spacing_mm: float | None = None
    coords: np.ndarray | None = None   # (3, 2) predicted, pixels of the frame
    spread: np.ndarray | None = None   # (3,) radial spread in pixels, NaN without confidence
    radius: np.ndarray | None = None   # (3,) calibrated radius in pixels, None without calibration
    aop_range: tuple[float, float] | None = None


def find_frames(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(path, name) of every frame under ``paths``; a folder is searched recursively."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file()):
                if is_image_name(path) or path.suffix.lower() in DICOM_SUFFIXES:
                    found.append((path, path.relative_to(given).as_posix()))
        elif given.exists():
            found.append((given, given.name))
        else:
            raise UserError(f"{given}: no such file or folder")
    if not found:
        raise UserError(f"no frames found in {', '.join(map(str, paths))}")
    return found


def read_frame(path: Path, name: str) -> Frame:
    """One frame as grey uint8, and its pixel spacing when the file says it (DICOM)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return _read_dicom(path, name)
    return Frame(path, name, read_grey(path))


def _read_dicom(path: Path, name: str) -> Frame:
    import pydicom
    from PIL import Image

    from .data.images import to_grey

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds; all mean "unreadable"
        raise ImageError(path, f"not a readable DICOM frame ({type(err).__name__})") from None
    if pixels.ndim == 4 or (pixels.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1):
        raise ImageError(path, "a multi-frame DICOM; export single frames")
    if pixels.ndim == 3:
        grey = np.asarray(Image.fromarray(pixels.astype(np.uint8)).convert("L"))
    elif pixels.dtype == np.uint8:
        grey = pixels
    else:
        grey = to_grey(Image.fromarray(pixels.astype(np.uint16)))
    return Frame(path, name, grey, _dicom_spacing(ds))


def _dicom_spacing(ds) -> float | None:
    """mm per pixel: PixelSpacing, else the ultrasound region's PhysicalDeltaX (in cm)."""
    spacing = getattr(ds, "PixelSpacing", None)
    if spacing:
        return float(spacing[0])
    regions = getattr(ds, "SequenceOfUltrasoundRegions", None)
    if regions and getattr(regions[0], "PhysicalUnitsXDirection", None) == 3:  # 3 = cm
        return float(regions[0].PhysicalDeltaX) * 10.0
    return None


def _point(x: float, y: float) -> str:
    return f"({x:.2f}, {y:.2f})"


@dataclass(frozen=True)
class Flag:
    """``--flag-above``: mark frames with a landmark whose calibrated radius exceeds ``limit``,
    in pixels or (``in_mm``) in mm."""

    limit: float
    in_mm: bool = False


def predict_frames(model: TrainedModel, frames: list[Frame], pixel_spacing_mm: float | None,
                   calibration: Calibration | None = None, flag: Flag | None = None) -> pd.DataFrame:
    """One row per frame: the IUGC label columns, AoP, spread per landmark, and with a
    calibration each landmark's radius and the AoP interval (px; and mm)."""
    rows = []
    by_size: dict[tuple, list[int]] = {}
    for index, frame in enumerate(frames):
        by_size.setdefault(frame.grey.shape, []).append(index)
    located: dict[int, tuple] = {}
    for indices in by_size.values():
        coords, spread = model.locate([frames[i].grey for i in indices])
        located.update({i: (c, s) for i, c, s in zip(indices, coords, spread)})
    for index, frame in enumerate(frames):
        coords, spread = located[index]
        radial = np.where(spread[:, 0] < 0, np.nan, np.hypot(spread[:, 0], spread[:, 1]))
        aop = float(aop_from_landmarks(coords))
        row = {"Filename": frame.name, **{n.upper(): _point(*coords[j]) for j, n in enumerate(LANDMARKS)},
               "AoP": aop, **{f"spread_{n.upper()}_px": radial[j] for j, n in enumerate(LANDMARKS)}}
        if calibration is not None:
            frame.radius = calibration.radii(radial[None])[0]
            low, high = calibration.aop_interval([aop])
            frame.aop_range = (float(low[0]), float(high[0]))
            row.update({f"radius_{n.upper()}_px": frame.radius[j] for j, n in enumerate(LANDMARKS)})
            row.update(aop_low=frame.aop_range[0], aop_high=frame.aop_range[1])
        spacing = frame.pixel_spacing_mm or pixel_spacing_mm
        if spacing:
            row.update({f"spread_{n.upper()}_mm": radial[j] * spacing for j, n in enumerate(LANDMARKS)})
            if frame.radius is not None:
                row.update({f"radius_{n.upper()}_mm": frame.radius[j] * spacing for j, n in enumerate(LANDMARKS)})
            row["PS1_PS2_mm"] = float(np.linalg.norm(coords[0] - coords[1]) * spacing)
            row["pixel_spacing_mm"] = spacing
        if flag is not None:
            if flag.in_mm and not spacing:
                raise UserError(f"{frame.name}: --flag-above-mm needs the pixel spacing, which this frame does "
                                "not carry; give --pixel-spacing MM, or --flag-above in pixels")
            row["check"] = bool(np.max(frame.radius) * (spacing if flag.in_mm else 1.0) > flag.limit)
        rows.append(row)
        frame.coords, frame.spread = coords, radial  # for the overlay
    return pd.DataFrame(rows)


def draw_overlay(frame: Frame, aop: float, path: Path, coverage: float | None = None) -> None:
    """The frame, the three points (with their calibrated radii as circles), the two rays of the
    angle, the AoP (with its interval) and the confidence."""
    import cv2

    image = cv2.cvtColor(frame.grey, cv2.COLOR_GRAY2BGR)
    scale = max(max(frame.grey.shape) / 512, 0.8)
    ps1, ps2, fh1 = (tuple(int(round(v)) for v in p) for p in frame.coords)
    for end in (ps2, fh1):
        cv2.line(image, ps1, end, (80, 230, 80), max(1, round(1.5 * scale)), cv2.LINE_AA)
    for j, (point, name) in enumerate(zip((ps1, ps2, fh1), LANDMARKS)):
        cv2.circle(image, point, max(2, round(4 * scale)), OVERLAY_COLORS[name], -1, cv2.LINE_AA)
        if frame.radius is not None and np.isfinite(frame.radius[j]):
            cv2.circle(image, point, int(round(frame.radius[j])), OVERLAY_COLORS[name], 1, cv2.LINE_AA)
    if frame.radius is not None:
        lines = [f"AoP {aop:.1f} deg ({coverage:.0%}: {frame.aop_range[0]:.1f}-{frame.aop_range[1]:.1f})",
                 f"{coverage:.0%} radii px: " + " ".join(f"{r:.1f}" for r in frame.radius)]
    else:
        spread = ", ".join(f"{n.upper()} {s:.1f}" for n, s in zip(LANDMARKS, frame.spread) if not np.isnan(s))
        lines = [f"AoP {aop:.1f} deg", f"spread px: {spread}" if spread else "no confidence (coordinate head)"]
    for k, text in enumerate(lines):
        origin = (int(8 * scale), int((22 + 20 * k) * scale))
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255),
                    max(1, round(scale)), cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def run(model_dir: str | Path, paths: Sequence[str | Path], out: str | Path, *, device: str = "auto",
        batch_size: int = 16, pixel_spacing_mm: float | None = None, calibration: str | Path | None = None,
        flag: Flag | None = None, log=print) -> int:
    """Predict every frame under ``paths`` with the model in ``model_dir`` (and its calibration:
    ``calibration``, else the calibration.json beside model.pt); returns the number of frames
    that could not be read."""
    weights = model_file(model_dir)
    calibrated = load_calibration(weights, calibration)
    if flag is not None and calibrated is None:
        raise UserError(f"--flag-above needs calibrated radii and {weights.parent} has no calibration.json; "
                        "give --calibration results/calibrate/<variant>/seed<s>, or use reports/model")
    model = load_trained_model(weights, device=None if device == "auto" else device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed, tables, other_sizes = 0, [], set()
    listing = find_frames(paths)
    for start in progress(range(0, len(listing), batch_size), desc="predict"):
        frames = []
        for path, name in listing[start:start + batch_size]:
            try:
                frames.append(read_frame(path, name))
            except ImageError as err:
                log(f"iugc predict: skipped {err}")
                failed += 1
        if not frames:
            continue
        for frame in frames:
            height, width = frame.grey.shape
            if calibrated is not None and not calibrated.fits(width, height) and (width, height) not in other_sizes:
                other_sizes.add((width, height))
                calibrated_on = ", ".join(f"{w}x{h}" for w, h in calibrated.frame_sizes)
                log(f"iugc predict: {frame.name} and any other frame of {width}x{height} px: the radii were "
                    f"calibrated on frames of {calibrated_on} px, so their coverage on this size is unknown "
                    "(the AoP interval is in degrees, whatever the size)")
        table = predict_frames(model, frames, pixel_spacing_mm, calibrated, flag)
        for frame, aop in zip(frames, table["AoP"]):
            draw_overlay(frame, aop, out / "overlays" / f"{Path(frame.name).with_suffix('')}.png",
                         calibrated.coverage if calibrated else None)
        tables.append(table)
    result = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["Filename"])
    result.to_csv(out / "predictions.csv", index=False, float_format="%.4f")
    log(f"iugc predict: {len(result)} frame(s) in {out / 'predictions.csv'}"
        + (f"; {failed} could not be read" if failed else ""))
    return failed

