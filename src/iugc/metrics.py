"""Landmark and AoP metrics, their uncertainty, and paired comparisons. numpy, scipy (and pandas
for the per-frame table).

Uncertainty is hierarchical and the design is crossed: every seed's network is scored on every
test frame, frames come in acquisitions of near-copies, and a study has few of both (3 seeds,
about 10 acquisitions of 1-10 frames). A test split of 400 frames from 8 acquisitions is about 8
things, and a network trained once is one draw of its initialisation and data order. So the mean
of a (seeds x frames) table (frame-weighted, the paper's Eq. 19-20) is analysed as

    y[s, f] = mu + seed[s] + acquisition[g(f)] + (seed x acquisition)[s, g(f)] + frame noise

with moment estimators on the (seeds x acquisitions) table of cell means that stay unbiased for
unequal acquisition sizes, and a t interval whose degrees of freedom combine the seed part (S - 1)
and the acquisition part (about G - 1) by Satterthwaite's rule, with the seed part at its upper
75 % bound (``MeanEstimate.df``). ``tests/test_calibration.py`` measures the coverage on synthetic
studies of this size; the resampling bootstrap it replaces covered 73-89 %. Paired comparisons
analyse the per-frame differences of two variants (the same seeds, the same frames), so what
varies in common cancels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

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


# --- the crossed seed x acquisition analysis ------------------------------------------------------

# The degrees of freedom treat the seed variance as if it were at this one-sided upper bound.
SEED_DF_BOUND = 0.75


class NonFiniteValue(ValueError):
    """A NaN or infinite value where an error was expected: refused, never averaged into a p-value."""

    def __init__(self, seed_index: int, frame_index: int):
        super().__init__(f"value at seed index {seed_index}, frame index {frame_index} is not finite")
        self.seed_index, self.frame_index = seed_index, frame_index


def group_codes(groups) -> np.ndarray:
    """Group labels (any hashable) as 0..G-1 in order of first appearance."""
    return pd.factorize(np.asarray(groups))[0]


def _weighted_spread(weights: np.ndarray, deviations: np.ndarray) -> float:
    """An unbiased estimate of sum_g w_g^2 Var(x_g) for independent x_g of unequal variances,
    from the squared deviations of the x_g around their w-weighted mean: E[(x_g - xbar)^2] =
    Var(x_g)(1 - 2 w_g) + sum_h w_h^2 Var(x_h), solved for the sum. Where one acquisition holds
    nearly half the frames that system is ill-posed; there equal variances are assumed."""
    w = weights
    if w.max() < 0.45:
        c = w ** 2 / (1 - 2 * w)
        return float((c * deviations).sum() / (1 + c.sum()))
    sum_w2 = float((w ** 2).sum())
    return float(sum_w2 * (w * deviations).sum() / (1 - sum_w2))


def _acquisition_df(weights: np.ndarray) -> float:
    """Degrees of freedom of the acquisition part: G - 1 for equal weights, fewer when a few
    acquisitions carry most of the frames (Kish's effective number of the weights above, less 1)."""
    w = weights
    c = w ** 2 / (1 - 2 * w) if w.max() < 0.45 else w ** 2
    return max(float(c.sum() ** 2 / (c ** 2).sum()) - 1.0, 1.0)


@dataclass(frozen=True)
class MeanEstimate:
    """The mean of a (seeds x frames) table and its uncertainty in two parts.

    ``seed_var``: what a new set of seeds would change (seed effects and seed x acquisition
    noise), with ``seed_df`` = S - 1; ``acquisition_var``: what a new set of acquisitions would
    change, with ``acquisition_df``. ``interaction`` (sum_g w_g^2 times the seed x acquisition
    variance) and ``sum_w2`` let a planned study of other sizes be extrapolated (``planned``)."""

    mean: float
    seed_var: float
    seed_df: float
    acquisition_var: float
    acquisition_df: float
    interaction: float
    sum_w2: float
    n_seeds: int
    n_groups: int
    n_frames: int

    @property
    def estimable(self) -> bool:
        return self.n_groups >= 2 and np.isfinite(self.mean)

    @property
    def se(self) -> float:
        return float(np.sqrt(self.seed_var + self.acquisition_var))

    @property
    def df(self) -> float:
        """Satterthwaite's degrees of freedom of the two parts, with the seed part taken at its
        upper 75 % confidence bound: with 2 degrees of freedom on that part, plain Satterthwaite
        trusts an underestimated seed variance too much and covered 93 %, not 95 %."""
        seed = self.seed_var
        if self.n_seeds > 1 and seed > 0:
            seed = seed * self.seed_df / st.chi2.isf(SEED_DF_BOUND, self.seed_df)
        total = seed + self.acquisition_var
        if total == 0:
            return float(self.acquisition_df)
        return float(total ** 2 / (seed ** 2 / self.seed_df + self.acquisition_var ** 2 / self.acquisition_df))

    def half_width(self, tail: float) -> float:
        """Half-width at one-sided tail probability ``tail`` (0.025 for a two-sided 95 % interval)."""
        if not self.estimable:
            return float("nan")
        return float(st.t.isf(tail, self.df) * self.se)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        h = self.half_width((1 - confidence) / 2)
        return (self.mean - h, self.mean + h)

    def p_above(self, bound: float) -> float:
        """One-sided p of "the true mean is at most ``bound``" (small when the mean is clearly above)."""
        if not self.estimable:
            return float("nan")
        if self.se == 0:
            return 0.0 if self.mean > bound else 1.0
        return float(st.t.sf((self.mean - bound) / self.se, self.df))

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p of "the mean equals ``null``", consistent with ``interval``."""
        if not self.estimable:
            return float("nan")
        if self.se == 0:
            return 1.0 if self.mean == null else 0.0
        return float(min(1.0, 2.0 * st.t.sf(abs(self.mean - null) / self.se, self.df)))

    def detectable(self, alpha: float, power: float = 0.8) -> float:
        """The smallest true difference a two-sided test at ``alpha`` finds with ``power``."""
        if not self.estimable:
            return float("nan")
        return float((st.t.isf(alpha / 2, self.df) + st.t.ppf(power, self.df)) * self.se)

    def planned(self, n_seeds: int, n_groups: int) -> "MeanEstimate":
        """The same variance components in a study of ``n_seeds`` seeds and ``n_groups``
        acquisitions of equal size: seed effects shrink with seeds, acquisition effects with
        acquisitions, seed x acquisition noise with both."""
        per_seed = max(self.seed_var * self.n_seeds - self.interaction, 0.0) if self.n_seeds > 1 else 0.0
        per_cell = self.interaction / self.sum_w2
        per_acq = self.acquisition_var / self.sum_w2
        return MeanEstimate(self.mean, (per_seed + per_cell / n_groups) / n_seeds, max(n_seeds - 1, 1),
                            per_acq / n_groups, max(n_groups - 1, 1), per_cell / n_groups, 1.0 / n_groups,
                            n_seeds, n_groups, self.n_frames)


def estimate_mean(values, groups, weights: str = "frames") -> MeanEstimate:
    """The crossed analysis of ``values`` (S seeds x F frames, or F frames for one seed) with one
    acquisition label per frame. ``weights``: "frames" (each frame counts once, the headline) or
    "acquisitions" (each acquisition counts once, a sensitivity check). A NaN is refused."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        raise NonFiniteValue(int(bad[0][0]), int(bad[0][1]))
    codes = group_codes(groups)
    n_seeds, n_frames = values.shape
    if len(codes) != n_frames:
        raise ValueError(f"{len(codes)} group labels for {n_frames} frames")
    n_groups = int(codes.max()) + 1 if n_frames else 0
    if n_groups == 0:
        nan = float("nan")
        return MeanEstimate(nan, nan, 1, nan, 1, nan, nan, n_seeds, 0, 0)
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    cells = np.stack([np.bincount(codes, weights=row, minlength=n_groups) for row in values]) / sizes  # (S, G)
    w = sizes / sizes.sum() if weights == "frames" else np.full(n_groups, 1.0 / n_groups)
    per_seed = cells @ w
    per_group = cells.mean(axis=0)
    mean = float(per_seed.mean())
    if n_groups < 2:
        nan = float("nan")
        return MeanEstimate(mean, nan, 1, nan, 1, nan, 1.0, n_seeds, n_groups, n_frames)
    between_groups = _weighted_spread(w, (per_group - mean) ** 2)      # sum w^2 Var(group mean over seeds)
    acq_df = _acquisition_df(w)
    if n_seeds == 1:  # one network: the acquisitions alone, conditional on that network
        return MeanEstimate(mean, 0.0, 1, between_groups, acq_df, 0.0, float((w ** 2).sum()), 1, n_groups,
                            n_frames)
    between_seeds = float(((per_seed - mean) ** 2).sum() / (n_seeds - 1))  # seed var + interaction
    residual = cells - per_seed[:, None] - per_group[None, :] + mean
    interaction = _weighted_spread(w, (residual ** 2).sum(axis=0) / (n_seeds - 1))
    seed_var = between_seeds / n_seeds
    acquisition_var = max(between_groups - interaction / n_seeds, 0.0)
    return MeanEstimate(mean, seed_var, n_seeds - 1, acquisition_var, acq_df, interaction,
                        float((w ** 2).sum()), n_seeds, n_groups, n_frames)


def hierarchical_ci(values, groups, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the frame-weighted mean of ``values`` (S seeds x F frames, or F frames for one
    seed) over seeds and acquisitions; NaN where fewer than 2 acquisitions make it unknowable."""
    low, high = estimate_mean(values, groups).interval(confidence)
    return float(low), float(high)


def share_ci(covered, groups, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of a share (the frame-weighted mean of 0/1 ``covered``, S x F or F) over seeds
    and acquisitions: ``hierarchical_ci`` cut to 0..1, where a t interval on 0/1 values can
    reach past either end (cutting loses no coverage: the share lies in 0..1). Simulated in
    tests/test_calibration.py: it holds its level for shares near 0.9 (the calibrated radii's
    target) and covers less for shares near 1 measured on few acquisitions, where a t interval's
    symmetry does not fit a share's skew."""
    low, high = hierarchical_ci(covered, groups, confidence)
    return (max(0.0, low), min(1.0, high)) if np.isfinite(low) else (low, high)


def paired_comparison(values_a, values_b, groups, confidence: float = 0.95) -> dict:
    """Mean of ``a - b`` (S x F each: the same seeds and frames), its interval and the two-sided
    p-value of "no difference", from the crossed analysis of the per-frame differences."""
    a, b = np.atleast_2d(np.asarray(values_a, float)), np.atleast_2d(np.asarray(values_b, float))
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same shape, got {a.shape} and {b.shape}")
    estimate = estimate_mean(a - b, groups)
    lo, hi = estimate.interval(confidence)
    return {"difference": estimate.mean, "lo": lo, "hi": hi, "p": estimate.p_value(), "se": estimate.se,
            "estimate": estimate}


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

def summarize(pred, true, groups, radii=(5, 10, 20, 40), confidence: float = 0.95) -> dict:
    """All headline metrics for one model on one split, with intervals over acquisition groups."""
    errs = radial_errors(pred, true)            # (n, 3)
    per_frame_mre = errs.mean(axis=1)
    aop_err = aop_errors(pred, true)
    codes = group_codes(groups)
    out = {
        "n_frames": int(errs.shape[0]),
        "n_groups": int(len(np.unique(codes))),
        "mre": float(per_frame_mre.mean()),
        "mre_ci": hierarchical_ci(per_frame_mre, codes, confidence),
        "aop_mae": float(aop_err.mean()),
        "aop_mae_ci": hierarchical_ci(aop_err, codes, confidence),
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
