"""Landmark and AoP metrics with bootstrap confidence intervals, and the per-frame table they are
computed from. numpy (and pandas for the table)."""
from __future__ import annotations

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


def aop_errors(pred, true) -> np.ndarray:
    """|AoP(pred) - AoP(true)| per frame, in degrees."""
    return np.abs(aop_from_landmarks(pred) - aop_from_landmarks(true))


def aop_mae(pred, true) -> float:
    """Eq. 20 averaged over frames (frames with an undefined AoP are ignored)."""
    return float(np.nanmean(aop_errors(pred, true)))


def success_rates(errors, radii) -> dict[float, float]:
    """Share of landmark predictions within each radius (pixels)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return {float(r): float(np.mean(errors <= r)) for r in radii}


def bootstrap_ci(values, n_samples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 statistic=np.nanmean) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over frames (axis 0 of ``values``).

    ``statistic`` takes an ``axis`` argument (numpy reductions do): all resamples at once."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_samples, n))
    stats = statistic(values[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(pred, true, radii=(5, 10, 20, 40), n_samples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> dict:
    """All headline metrics for one model on one split, with bootstrap intervals."""
    errs = radial_errors(pred, true)            # (n, 3)
    per_frame_mre = errs.mean(axis=1)
    aop_err = aop_errors(pred, true)
    out = {
        "n_frames": int(errs.shape[0]),
        "mre": float(per_frame_mre.mean()),
        "mre_ci": bootstrap_ci(per_frame_mre, n_samples, confidence, seed),
        "aop_mae": float(np.nanmean(aop_err)),
        "aop_mae_ci": bootstrap_ci(aop_err, n_samples, confidence, seed),
        "success_rate": {f"{r:g}px": v for r, v in success_rates(errs, radii).items()},
    }
    for j, name in enumerate(LANDMARKS[: errs.shape[1]]):
        out[f"re_{name}"] = float(errs[:, j].mean())
    return out


def prediction_table(frames: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    """One row per frame: true and predicted points, radial errors, AoP and its error."""
    true = frames[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    table = frames[["filename", "image_path"]].copy()
    for j, name in enumerate(LANDMARKS):
        table[f"{name}_x"], table[f"{name}_y"] = true[:, j, 0], true[:, j, 1]
        table[f"pred_{name}_x"], table[f"pred_{name}_y"] = pred[:, j, 0], pred[:, j, 1]
        table[f"re_{name}"] = np.linalg.norm(pred[:, j] - true[:, j], axis=-1)
    table["mre"] = table[[f"re_{n}" for n in LANDMARKS]].mean(axis=1)
    table["aop"] = aop_from_landmarks(true)
    table["pred_aop"] = aop_from_landmarks(pred)
    table["aop_error"] = (table["pred_aop"] - table["aop"]).abs()
    return table
