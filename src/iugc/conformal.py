"""Calibrated confidence: per-landmark radii and AoP intervals by split-conformal prediction.

A landmark's radius is meant to hold its true point with probability ``coverage`` (0.9: nine
frames in ten) for a new frame like the calibration frames. It is calibrated on held-out frames
(the validation split) from a nonconformity score per frame:

- *plain*: the radial error ``e``; the radius is one number per landmark, ``q``;
- *scaled*: the error divided by the landmark's spread ``s`` (the standard deviation of the
  distribution the soft-argmax read, ``inference.LandmarkPredictor``); the radius is ``q * s``,
  wide where the network hesitates, narrow where it does not.

``q`` is the conformal quantile of the scores: the ``ceil((n + 1) * coverage) / n`` empirical
quantile of ``n`` exchangeable scores, the finite-sample correction that makes the coverage of a
new score at least ``coverage`` (and less than ``coverage + 1 / (n + 1)``), not only in the
limit. With fewer than ``coverage / (1 - coverage)`` units the level exceeds 1 and no finite
radius has the guarantee: the radius is then infinite, and says so.

Per landmark, the score that gives the smaller mean radius over the calibration frames is kept
(both hold the coverage; the smaller is the more informative). A spread that tracks the error
makes the scaled radii smaller on average; one that does not (or a coordinate-output variant,
which has no spread) leaves the plain radius. Choosing between two on the same frames costs
little coverage: about a point at 56 acquisitions, 0.90 where a fixed score gives 0.91 on average
(simulated in tests/test_conformal.py); the evaluate stage measures the coverage achieved on the
test split.

Exchangeability. The frames of one acquisition are near-copies, so they are not exchangeable
units: n frames from G acquisitions are about G things, as in the crossed analysis of ``metrics.py``.
The scores are therefore one per acquisition: one frame drawn at random from each (seeded), so
that the G scores and the score of a random frame of a new acquisition are exchangeable when the
acquisitions are, and the finite-sample guarantee holds exactly with n = G ("subsampling once"
in Dunn, Wasserman and Ramdas's treatment of two-level data, JASA 2022). Pooling every frame
with each acquisition weighing 1 / G keeps more data but has no such guarantee, and where frames
of one acquisition differ it over-covers at these G (0.95 against 0.92 in the simulation of
tests/test_conformal.py: 12 acquisitions of 3 frames, log error sd 0.3 within one);
counting frames as units under-covers new acquisitions (the same file). The guarantee
is for a new frame from a new acquisition exchangeable with the calibration acquisitions: the
same scanner, settings and population, not another hospital.

AoP intervals are conformal on the AoP error itself (``|AoP_pred - AoP_true|``, plain), not
propagated from the three radii: the worst angle over the three discs holds the true AoP whenever
all three discs hold their points, which the union bound only puts at >= 1 - 3 (1 - coverage);
a propagated interval's coverage would be bounded, not calibrated. Calibrating the quantity the
clinician reads gives the stated coverage for it directly. It is one width for every frame:
scaled by how far the frame's AoP moves per pixel of landmark error (its arms' lengths), it was
no narrower on the real-frame studies (``benchmarks/aop_lever_arm.py``; README).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .geometry import LANDMARKS, aop_from_landmarks
from .metrics import aop_errors, radial_errors

CALIBRATION_FILE = "calibration.json"  # beside model.pt in a model folder


def conformal_level(n_units: int, coverage: float) -> float:
    """The finite-sample corrected quantile level ``ceil((n + 1) * coverage) / n`` (above 1:
    too few units for the coverage; the quantile is then infinite)."""
    if n_units < 1:
        raise ValueError("conformal calibration needs at least one score")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage}")
    # The small tolerance keeps (n + 1) * coverage that is an integer in exact arithmetic but a
    # hair above it in floating point (25 * 0.28 gives 7.000000000000001) from rounding one step up.
    return math.ceil((n_units + 1) * coverage - 1e-9) / n_units


def conformal_quantile(scores, coverage: float) -> float:
    """The conformal quantile of ``n`` exchangeable ``scores``: the ``ceil((n + 1) * coverage)``-th
    smallest, infinite when that exceeds ``n``."""
    scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if np.isnan(scores).any():
        raise ValueError("conformal scores must not be NaN")
    level = conformal_level(len(scores), coverage)
    return math.inf if level > 1.0 else float(scores[round(level * len(scores)) - 1])


def one_per_acquisition(groups, seed: int) -> np.ndarray:
    """Indices of one frame drawn at random from each acquisition (in order of their labels)."""
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(np.flatnonzero(codes == code)) for code in range(codes.max() + 1)])


@dataclass(frozen=True)
class LandmarkRadius:
    """One landmark's calibrated radius: ``quantile * spread`` when ``scaled``, else ``quantile``
    (pixels of the original frame). The mean radii of both scores on the calibration frames are
    kept to show why the one in use was chosen."""

    scaled: bool
    quantile: float
    mean_radius_plain: float
    mean_radius_scaled: float | None

    def radius(self, spread) -> np.ndarray:
        spread = np.asarray(spread, dtype=np.float64)
        return self.quantile * spread if self.scaled else np.full(spread.shape, self.quantile)


@dataclass(frozen=True)
class Calibration:
    """What the calibrate stage writes (``calibration.json``) and prediction reads."""

    coverage: float
    landmarks: dict[str, LandmarkRadius]
    aop_half_width: float         # degrees: the interval is AoP +- this, within 0..180
    n_frames: int
    n_acquisitions: int
    # (width, height) of the calibration frames: radii in pixels hold for frames of these sizes
    # only (empty: not recorded, a calibration.json written before it was).
    frame_sizes: tuple[tuple[int, int], ...] = ()

    def fits(self, width: int, height: int) -> bool:
        """Whether a frame of this size is of a size the radii were calibrated on."""
        return not self.frame_sizes or (int(width), int(height)) in self.frame_sizes

    def radii(self, spread) -> np.ndarray:
        """Radii (n, 3) in pixels for spreads (n, 3) (NaN where the variant has none)."""
        spread = np.asarray(spread, dtype=np.float64)
        return np.stack([self.landmarks[name].radius(spread[:, j]) for j, name in enumerate(LANDMARKS)], axis=1)

    def aop_interval(self, aop) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) in degrees around predicted AoPs; 0..180 where the AoP is undefined."""
        aop = np.asarray(aop, dtype=np.float64)
        low = np.where(np.isnan(aop), 0.0, np.clip(aop - self.aop_half_width, 0.0, 180.0))
        high = np.where(np.isnan(aop), 180.0, np.clip(aop + self.aop_half_width, 0.0, 180.0))
        return low, high

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        landmarks = {name: LandmarkRadius(**data["landmarks"][name]) for name in LANDMARKS}
        return cls(float(data["coverage"]), landmarks, float(data["aop_half_width"]),
                   int(data["n_frames"]), int(data["n_acquisitions"]),
                   tuple((int(width), int(height)) for width, height in data.get("frame_sizes", ())))

    def save(self, path: str | Path, **extra) -> None:
        """Write it as JSON (infinite radii as ``Infinity``), with ``extra`` facts beside it."""
        Path(path).write_text(json.dumps({**self.to_dict(), **extra}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls.from_dict(json.loads(Path(path).read_text()))


def calibrate(pred, true, spread, groups, coverage: float, seed: int, frame_sizes=()) -> Calibration:
    """Radii and AoP interval from held-out frames: predicted and true points (n, 3, 2), the
    spreads (n, 3) (NaN for coordinate-output variants) and each frame's acquisition; the
    scores are those of one frame per acquisition, drawn with ``seed``. ``frame_sizes``: the
    frames' (width, height), recorded so that prediction can say when a frame is of another."""
    errors = radial_errors(pred, true)
    spread = np.asarray(spread, dtype=np.float64)
    chosen = one_per_acquisition(groups, seed)
    landmarks = {}
    for j, name in enumerate(LANDMARKS):
        plain = conformal_quantile(errors[chosen, j], coverage)
        mean_scaled, scaled = None, None
        if np.all(np.isfinite(spread[:, j])) and np.all(spread[:, j] > 0):
            scaled = conformal_quantile(errors[chosen, j] / spread[chosen, j], coverage)
            mean_scaled = float(np.mean(scaled * spread[:, j]))
        use_scaled = mean_scaled is not None and mean_scaled < plain
        landmarks[name] = LandmarkRadius(use_scaled, scaled if use_scaled else plain, plain, mean_scaled)
    aop = conformal_quantile(aop_errors(pred, true)[chosen], coverage)
    sizes = tuple(sorted({(int(width), int(height)) for width, height in frame_sizes}))
    return Calibration(float(coverage), landmarks, aop, len(errors), len(chosen), sizes)


def coverage_columns(pred, true, spread, calibration: Calibration) -> dict[str, np.ndarray]:
    """Per frame, for a table of held-out frames: each landmark's radius and whether it holds
    the true point, the AoP interval and whether it holds the true AoP."""
    radii = calibration.radii(spread)
    errors = radial_errors(pred, true)
    low, high = calibration.aop_interval(aop_from_landmarks(pred))
    truth = aop_from_landmarks(true)
    columns = {}
    for j, name in enumerate(LANDMARKS):
        columns[f"radius_{name}"] = radii[:, j]
        columns[f"covered_{name}"] = errors[:, j] <= radii[:, j]
    columns.update(aop_low=low, aop_high=high, aop_covered=(low <= truth) & (truth <= high))
    return columns


def aop_decisions(pred_aop, low, high, true_aop, threshold: float) -> dict:
    """What the AoP intervals let a clinician decide against ``threshold`` (degrees; at or above
    it the AoP is read as favourable for a spontaneous birth): the shares of frames whose
    interval lies wholly at or above it (``decides_above``) and wholly below it
    (``decides_below``), the share of those deciding frames on the true AoP's side
    (``decisive_right``; NaN where none decides), and, for comparison, the share of all frames
    whose bare predicted AoP is on the true side (``point_right``), which a reader of the number
    alone cannot tell from the wrong ones. The two sides are apart because they need not be
    alike: where most true angles are low, intervals can rule out a favourable AoP far more
    often than confirm it. An undefined (NaN) prediction decides nothing and is never right."""
    pred_aop, low, high, true_aop = (np.asarray(a, np.float64) for a in (pred_aop, low, high, true_aop))
    n_frames = len(true_aop)
    true_above = true_aop >= threshold
    above, below = low >= threshold, high < threshold
    n_decisive = int(np.sum(above | below))
    right = int(np.sum(above & true_above) + np.sum(below & ~true_above))
    point_right = np.where(pred_aop >= threshold, true_above, ~true_above) & np.isfinite(pred_aop)

    def share(count) -> float:
        return int(count) / n_frames if n_frames else math.nan

    return {"decision_deg": float(threshold), "n_frames": n_frames, "n_decisive": n_decisive,
            "decides_above": share(above.sum()), "decides_below": share(below.sum()),
            "decisive_right": right / n_decisive if n_decisive else math.nan,
            "point_right": share(point_right.sum())}


def flagging(radius, error, thresholds, error_above: float) -> list[dict]:
    """What flagging frames whose largest calibrated radius exceeds each threshold finds among
    the frames whose largest error exceeds ``error_above`` (the ones a clinician should see):
    frames flagged, precision (flagged frames that are such frames) and recall (such frames that
    are flagged); NaN where nothing is flagged, or there is no such frame."""
    radius, error = np.asarray(radius, np.float64), np.asarray(error, np.float64)
    wrong = error > error_above
    rows = []
    for threshold in thresholds:
        flagged = radius > threshold
        hits = int(np.sum(flagged & wrong))
        rows.append({"flag_above_px": float(threshold), "error_above_px": float(error_above),
                     "n_frames": int(len(radius)), "n_wrong": int(wrong.sum()), "n_flagged": int(flagged.sum()),
                     "precision": hits / flagged.sum() if flagged.any() else math.nan,
                     "recall": hits / wrong.sum() if wrong.any() else math.nan})
    return rows


def chance_range(n_calibration: int, test_group_sizes, coverage: float, level: float = 0.9,
                 draws: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Where one study's achieved coverage lands by chance alone, ``level`` of the time: the
    central range of the frame-weighted share of test frames covered, for radii calibrated on
    ``n_calibration`` acquisitions (one score each) and a test split of acquisitions of
    ``test_group_sizes`` frames, when calibration and test acquisitions are exchangeable.

    Two draws add up. The calibration: the true coverage of the ``k``-th smallest of ``n`` scores
    (``k = ceil((n + 1) * coverage)``) is Beta(k, n + 1 - k) distributed (about 0.84-0.96 at n =
    56 and 0.9). The test split: its acquisitions are covered or not, and the frames of one
    acquisition, near-copies, together (the widest case; frames that differ narrow it). A
    coverage outside this range says the test acquisitions are unlike the calibration ones; one
    inside it says nothing more precise than the study's size allows. ``(1, 1)`` where too few
    acquisitions calibrated for a finite radius."""
    sizes = np.asarray(test_group_sizes, dtype=np.float64)
    quantile_level = conformal_level(n_calibration, coverage)
    if quantile_level > 1.0:
        return 1.0, 1.0
    rank = round(quantile_level * n_calibration)
    rng = np.random.default_rng(seed)
    true_coverage = rng.beta(rank, n_calibration + 1 - rank, size=draws)
    covered = rng.random((draws, len(sizes))) < true_coverage[:, None]
    achieved = covered @ sizes / sizes.sum()
    low, high = np.quantile(achieved, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def stratified_draw(labels, label_strata, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``labels`` drawn at random, stratum by stratum (``label_strata``, one per label):
    each stratum gives its share of ``n``, measured cumulatively (through this stratum, rounded,
    less what the strata before gave) so the roundings carry over instead of adding up, as
    ``data.splits.assign_groups`` fills the held-out subsets."""
    labels, label_strata = np.asarray(labels), np.asarray(label_strata)
    order = np.unique(label_strata)
    through = np.cumsum([np.sum(label_strata == stratum) for stratum in order])
    chosen, taken = [], 0
    for stratum, count_through in zip(order, through):
        share = round(n * count_through / len(labels)) - taken
        chosen.append(rng.choice(labels[label_strata == stratum], share, replace=False))
        taken += share
    return np.concatenate(chosen)


def resplit_coverage(pred, true, spread, groups, coverage: float, n_calibration: int, repetitions: int,
                     seed: int, strata=None) -> dict[str, np.ndarray]:
    """How the achieved coverage of one calibration varies with the draw of acquisitions: the
    held-out frames (predicted and true points, spreads, acquisitions) are split again and again
    into ``n_calibration`` calibration acquisitions and the rest, calibrated on the first part
    (``calibrate``, as the stage does) and scored on the second (frame-weighted, as the report).
    Returns, per landmark and for "aop", the ``repetitions`` coverages achieved.

    A diagnostic of the method on a finished study, not a calibration to use: it lets test
    frames calibrate. One split's coverage differs from the target by chance (a Beta spread of
    the conformal quantile, and acquisitions that differ in difficulty); this says by how much.

    ``strata`` (one per frame, the same for an acquisition's frames; ``data.splits.aop_strata``):
    the calibration acquisitions are drawn stratum by stratum (``stratified_draw``), as the
    study's split draws its validation subset, so the spread measured is that of the study's
    design; without, at random (a little wider)."""
    groups = np.asarray(groups)
    labels, first = np.unique(groups, return_index=True)
    if not 0 < n_calibration < len(labels):
        raise ValueError(f"n_calibration must leave acquisitions on both sides, got {n_calibration} of {len(labels)}")
    rng = np.random.default_rng(seed)
    errors, aop_truth = radial_errors(pred, true), aop_from_landmarks(true)
    achieved = {name: np.empty(repetitions) for name in (*LANDMARKS, "aop")}
    for k in range(repetitions):
        drawn = (rng.choice(labels, n_calibration, replace=False) if strata is None
                 else stratified_draw(labels, np.asarray(strata)[first], n_calibration, rng))
        inside = np.isin(groups, drawn)
        fitted = calibrate(pred[inside], true[inside], spread[inside], groups[inside], coverage, seed=int(rng.integers(2**31)))
        radii = fitted.radii(spread[~inside])
        for j, name in enumerate(LANDMARKS):
            achieved[name][k] = np.mean(errors[~inside, j] <= radii[:, j])
        low, high = fitted.aop_interval(aop_from_landmarks(pred[~inside]))
        achieved["aop"][k] = np.mean((low <= aop_truth[~inside]) & (aop_truth[~inside] <= high))
    return achieved


def scaled_width_ratio(values, scale, groups, coverage: float, halves: int, seed: int) -> float:
    """Would scaling by a per-frame ``scale`` make the radii (or intervals) more informative?
    The median over ``halves`` random halves of the acquisitions of the mean width of the
    ``values`` (errors) scaled by ``scale`` over the plain one, both calibrated on one frame per
    acquisition of one half and averaged over the other half's frames. Below 1: narrower at the
    same coverage. NaN where half the acquisitions are too few for a finite width (or there are
    fewer than two). A diagnostic of a candidate signal on held-out frames, as ``calibrate``
    chooses between the spread-scaled radius and the plain one."""
    values, scale, groups = (np.asarray(a) for a in (values, scale, groups))
    values, scale = values.astype(np.float64), scale.astype(np.float64)
    labels = np.unique(groups)
    if len(labels) < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(halves):
        inside = np.isin(groups, rng.choice(labels, len(labels) // 2, replace=False))
        chosen = np.flatnonzero(inside)[one_per_acquisition(groups[inside], int(rng.integers(2**31)))]
        plain = conformal_quantile(values[chosen], coverage)
        scaled = conformal_quantile(values[chosen] / scale[chosen], coverage)
        if math.isfinite(plain) and math.isfinite(scaled):
            ratios.append(np.mean(scaled * scale[~inside]) / plain)
    return float(np.median(ratios)) if ratios else math.nan
