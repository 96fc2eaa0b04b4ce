"""Landmark and AoP metrics, their uncertainty, and paired comparisons. numpy (and pandas for the
per-frame table).

Uncertainty is hierarchical. Frames of one acquisition are near-copies, so they are not
independent evidence: a test split of 400 frames from 8 acquisitions is about 8 things. And a
network trained once is one draw of its initialisation and data order. The intervals therefore
come from a bootstrap that resamples training seeds and acquisition groups (the split's groups),
never single frames: each draw takes S seeds and G groups with replacement and averages every
frame of the drawn groups for every drawn seed. Paired comparisons of two variants use the same
draws for both (the same seeds, the same frames), so what varies in common cancels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .geometry import LANDMARKS, aop_from_landmarks


def radial_errors(pred, true) -> np.ndarray:
    """Euclidean distance per frame and landmark, shape ``(n, k)``, for points ``(n, k, 2)``."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.shape[-1] != 2:
        raise ValueError(f"points must be (n, k, 2) and alike, got {pred.shape} and {true.shape}")
    return np.linalg.norm(pred - true, axis=-1)


def mean_radial_error(pred, true) -> float:
    """Eq. 19 averaged over frames: mean over frames of the mean over the three landmarks."""
    return float(np.mean(radial_errors(pred, true)))


def undefined_aop(points) -> np.ndarray:
    """Frames whose AoP cannot be computed (PS1 on PS2 or on FH1)."""
    return np.isnan(aop_from_landmarks(points))


def aop_errors(pred, true) -> np.ndarray:
    """|AoP(pred) - AoP(true)| per frame, in degrees (Eq. 20).

    A predicted AoP that is undefined (two predicted points coincide) is a failed measurement,
    not a frame to leave out: it counts as the largest error any angle could have had there,
    max(AoP_true, 180 - AoP_true). ``undefined_aop`` says how many such frames there are.
    """
    truth = aop_from_landmarks(true)
    predicted = aop_from_landmarks(pred)
    worst = np.maximum(truth, 180.0 - truth)
    return np.where(np.isnan(predicted), worst, np.abs(predicted - truth))


def aop_mae(pred, true) -> float:
    """Eq. 20 averaged over frames (undefined predictions count at their worst, see aop_errors)."""
    return float(np.mean(aop_errors(pred, true)))


def success_rates(errors, radii) -> dict[float, float]:
    """Share of landmark predictions within each radius (pixels)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return {float(r): float(np.mean(errors <= r)) for r in radii}


# --- the hierarchical bootstrap ------------------------------------------------------------------

@dataclass(frozen=True)
class Draws:
    """Bootstrap draws of seeds and groups: ``seeds`` (B, S) and ``groups`` (B, G) counts of how
    often each seed and each group is drawn. One set of draws serves every variant of a study,
    which is what makes comparisons paired."""

    seeds: np.ndarray
    groups: np.ndarray

    @classmethod
    def make(cls, n_seeds: int, n_groups: int, n_samples: int, seed: int) -> "Draws":
        rng = np.random.default_rng(seed)
        seeds = rng.integers(0, n_seeds, size=(n_samples, n_seeds))
        groups = rng.integers(0, n_groups, size=(n_samples, n_groups))
        return cls(_counts(seeds, n_seeds), _counts(groups, n_groups))


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """Per row of drawn indices, how often each of 0..n-1 was drawn: (B, draws) -> (B, n)."""
    offsets = np.arange(len(indices))[:, None] * n
    return np.bincount((indices + offsets).ravel(), minlength=len(indices) * n).reshape(len(indices), n)


def group_codes(groups) -> np.ndarray:
    """Group labels (any hashable) as 0..G-1 in order of first appearance."""
    return pd.factorize(np.asarray(groups))[0]


def resampled_means(values, groups, draws: Draws) -> np.ndarray:
    """The mean of ``values`` (S seeds x F frames) under each draw: every frame of every drawn
    group counts once per time its group and its seed were drawn. Shape (B,)."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    codes = group_codes(groups)
    n_groups = draws.groups.shape[1]
    sums = np.stack([np.bincount(codes, weights=row, minlength=n_groups) for row in values])  # (S, G)
    sizes = np.bincount(codes, minlength=n_groups)                                          # (G,)
    per_seed = draws.groups @ sums.T                                                        # (B, S)
    total = (draws.seeds * per_seed).sum(axis=1)
    return total / (draws.seeds.sum(axis=1) * (draws.groups @ sizes))


def interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def hierarchical_ci(values, groups, n_samples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (S seeds x F frames, or F frames for one
    seed), resampling seeds and acquisition groups."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return (float("nan"), float("nan"))
    draws = Draws.make(values.shape[0], len(np.unique(group_codes(groups))), n_samples, seed)
    return interval(resampled_means(values, groups, draws), confidence)


def paired_difference(values_a, values_b, groups, draws: Draws, confidence: float) -> dict:
    """Mean of ``a - b`` (S x F each: the same seeds and frames), its interval and a two-sided
    p-value of "no difference" from the same resampling: twice the smaller share of draws on
    either side of zero (with the usual +1 so that it is never 0)."""
    diff = np.atleast_2d(np.asarray(values_a, float) - np.asarray(values_b, float))
    stats = resampled_means(diff, groups, draws)
    below, above = np.sum(stats <= 0), np.sum(stats >= 0)
    p = min(1.0, 2.0 * (1 + min(below, above)) / (len(stats) + 1))
    lo, hi = interval(stats, confidence)
    return {"difference": float(diff.mean()), "lo": lo, "hi": hi, "p": p}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of ``pvalues`` (family-wise error), in their given order."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


# --- one model on one split --------------------------------------------------------------------

def summarize(pred, true, groups, radii=(5, 10, 20, 40), n_samples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> dict:
    """All headline metrics for one model on one split, with intervals over acquisition groups."""
    errs = radial_errors(pred, true)            # (n, 3)
    per_frame_mre = errs.mean(axis=1)
    aop_err = aop_errors(pred, true)
    codes = group_codes(groups)
    out = {
        "n_frames": int(errs.shape[0]),
        "n_groups": int(len(np.unique(codes))),
        "mre": float(per_frame_mre.mean()),
        "mre_ci": hierarchical_ci(per_frame_mre, codes, n_samples, confidence, seed),
        "aop_mae": float(aop_err.mean()),
        "aop_mae_ci": hierarchical_ci(aop_err, codes, n_samples, confidence, seed),
        "aop_undefined": int(undefined_aop(pred).sum()),
        "success_rate": {f"{r:g}px": v for r, v in success_rates(errs, radii).items()},
    }
    for j, name in enumerate(LANDMARKS[: errs.shape[1]]):
        out[f"re_{name}"] = float(errs[:, j].mean())
    return out


def prediction_table(frames: pd.DataFrame, pred: np.ndarray, spread: np.ndarray | None = None) -> pd.DataFrame:
    """One row per frame: true and predicted points, radial errors, AoP and its error (with the
    undefined predicted AoPs flagged), and each landmark's spread (its confidence) when given.
    Frames are named, not located: a result must not depend on where the study was checked out."""
    true = frames[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    table = frames[["filename"]].copy()
    if "group" in frames:
        table["group"] = frames["group"].to_numpy()
    for j, name in enumerate(LANDMARKS):
        table[f"{name}_x"], table[f"{name}_y"] = true[:, j, 0], true[:, j, 1]
        table[f"pred_{name}_x"], table[f"pred_{name}_y"] = pred[:, j, 0], pred[:, j, 1]
        table[f"re_{name}"] = np.linalg.norm(pred[:, j] - true[:, j], axis=-1)
        if spread is not None:
            table[f"spread_{name}"] = spread[:, j]
    table["mre"] = table[[f"re_{n}" for n in LANDMARKS]].mean(axis=1)
    table["aop"] = aop_from_landmarks(true)
    table["pred_aop"] = aop_from_landmarks(pred)
    table["aop_undefined"] = undefined_aop(pred)
    table["aop_error"] = aop_errors(pred, true)
    return table
