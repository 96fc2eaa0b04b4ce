"""The study's numbers from its per-frame tables: every variant over every seed, with intervals
over seeds and acquisitions (``iugc.metrics``), the paper's claims tested as paired comparisons
with one of five verdicts and the study that would settle each, and where the error is (per
landmark, by AoP range).

Every variant must have been evaluated on the same test frames with the same seeds: that is what
makes the comparisons paired.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from ..geometry import LANDMARKS
from ..metrics import MeanEstimate, estimate_mean, group_codes, holm, paired_comparison, share_ci

METRICS = {"mre": "mre", "aop_mae": "aop_error"}  # metric -> per-frame column of a prediction table
METRIC_NAMES = {"mre": "MRE (px)", "aop_mae": "AoP MAE (deg)"}
# Per-frame columns that must be finite numbers: a NaN there is a failed run, never a mean.
CHECKED_COLUMNS = ("mre", "aop_error", *(f"re_{name}" for name in LANDMARKS))
VERDICTS = ("supported", "reversed at this scale", "absent at this scale", "underpowered", "inconclusive",
            "not testable at this size")
POWER = 0.8
PLAN_SEEDS = (3, 5, 10, 20)  # seed counts the plan considers
PLAN_MAX_ACQUISITIONS = 2000
# What the claims table records of each comparison's analysis, so that a plan can be made from it later.
COMPONENTS = ("seed_var", "seed_df", "acquisition_var", "acquisition_df", "interaction", "sum_w2", "n_seeds",
              "n_groups", "n_frames")


@dataclass
class Study:
    """Per-frame prediction tables of every (variant, seed), aligned on the same test frames."""

    variants: list[str]
    seeds: list[int]
    frames: list[str]
    groups: np.ndarray
    tables: dict[str, list[pd.DataFrame]]  # variant -> one table per seed, rows in ``frames`` order

    @classmethod
    def from_tables(cls, runs: Mapping[str, Mapping[int, pd.DataFrame]], variants: Sequence[str]) -> "Study":
        """``runs``: variant -> seed -> prediction table (``metrics.prediction_table`` with group)."""
        variants = list(variants)
        missing = [v for v in variants if v not in runs]
        if missing:
            raise UserError(f"no evaluation of {', '.join(missing)}")
        seeds = sorted(runs[variants[0]])
        for name in variants:
            if sorted(runs[name]) != seeds:
                raise UserError(f"{name} was evaluated with seeds {sorted(runs[name])}, the others with {seeds}")
        first = runs[variants[0]][seeds[0]]
        frames = list(first["filename"])
        tables = {}
        for name in variants:
            tables[name] = []
            for seed in seeds:
                table = runs[name][seed].set_index("filename")
                if sorted(table.index) != sorted(frames):
                    raise UserError(f"{name} seed {seed} was evaluated on other test frames than {variants[0]}")
                table = table.loc[frames].reset_index()
                for column in CHECKED_COLUMNS:
                    bad = table.index[~np.isfinite(table[column].to_numpy(float))] if column in table else []
                    if len(bad):
                        raise UserError(f"{name} seed {seed}: {column} of frame {table['filename'][bad[0]]} is not a "
                                        f"number ({len(bad)} frame(s)); the network's predictions failed there")
                tables[name].append(table)
        return cls(variants, seeds, frames, group_codes(first["group"]), tables)

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def matrix(self, variant: str, column: str) -> np.ndarray:
        """(seeds x frames) of one per-frame column."""
        return np.stack([table[column].to_numpy(float) for table in self.tables[variant]])

    def compare(self, better: str, worse: str, column: str, confidence: float) -> dict:
        """Paired comparison ``better - worse`` of one per-frame column (same seeds, same frames)."""
        return paired_comparison(self.matrix(better, column), self.matrix(worse, column), self.groups, confidence)


def _summary(values: np.ndarray, groups: np.ndarray, confidence: float) -> dict:
    per_seed = values.mean(axis=1)
    lo, hi = estimate_mean(values, groups).interval(confidence)
    return {"mean": float(values.mean()), "sd_seeds": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
            "lo": lo, "hi": hi}


def variant_table(study: Study, confidence: float, radii: Sequence[float],
                  radii_mm: Sequence[float] = (), pixel_spacing_mm: float | None = None) -> pd.DataFrame:
    """One row per variant: MRE and AoP MAE (frame-weighted mean over seeds and frames, sd over
    seeds, interval; and, as a sensitivity check, the mean that counts each acquisition once),
    per-landmark radial errors with intervals, success rates (in px, and in mm when the pixel
    spacing is known), undefined AoPs (their count, their rate, and the AoP MAE over the frames
    where it is defined), and how many seeds, acquisitions and frames every number rests on."""
    rows = []
    for name in study.variants:
        row = {"variant": name, "n_seeds": len(study.seeds), "n_groups": study.n_groups,
               "n_frames": len(study.frames)}
        for metric, column in METRICS.items():
            values = study.matrix(name, column)
            for key, value in _summary(values, study.groups, confidence).items():
                row[f"{metric}_{key}"] = value
            row[f"{metric}_acquisition_mean"] = estimate_mean(values, study.groups, weights="acquisitions").mean
        for landmark in LANDMARKS:
            for key, value in _summary(study.matrix(name, f"re_{landmark}"), study.groups, confidence).items():
                row[f"re_{landmark}_{key}"] = value
        errors = np.stack([study.matrix(name, f"re_{landmark}") for landmark in LANDMARKS])
        for radius in radii:
            row[f"within_{radius:g}px"] = float(np.mean(errors <= radius))
        if pixel_spacing_mm:
            for radius in radii_mm:
                row[f"within_{radius:g}mm"] = float(np.mean(errors * pixel_spacing_mm <= radius))
        undefined = study.matrix(name, "aop_undefined").astype(bool)
        row["aop_undefined"] = int(undefined.sum())
        row["aop_failure_rate"] = float(undefined.mean())
        errors = study.matrix(name, "aop_error")
        row["aop_mae_defined"] = float(errors[~undefined].mean()) if (~undefined).any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def significant_ranks(study: Study, metric: str, confidence: float, alpha: float,
                      among: Sequence[str] | None = None) -> dict[str, int]:
    """Emphasis that means something: 1 for the best variant (``among`` those named, default
    all) when it beats the second best significantly (paired test at ``alpha``), 2 for the
    second when it beats the third; else 0."""
    column = METRICS[metric]
    among = list(among or study.variants)
    means = {name: study.matrix(name, column).mean() for name in among}
    order = sorted(means, key=means.get)
    ranks = dict.fromkeys(study.variants, 0)
    for rank, (better, worse) in enumerate(zip(order[:2], order[1:3]), start=1):
        test = study.compare(better, worse, column, confidence)
        if test["p"] < alpha:
            ranks[better] = rank
        else:
            break  # no emphasis below a difference that is not shown
    return ranks


def plan(estimate: MeanEstimate, effect: float, alpha: float, power: float = POWER) -> dict:
    """What it would take to find ``effect`` with ``power`` at ``alpha``, from the variance
    components this comparison measured: the fewest test acquisitions at this study's seed count
    and at each of ``PLAN_SEEDS``."""
    return {"acquisitions_needed": plan_one(estimate, effect, alpha, estimate.n_seeds, power),
            **{f"acquisitions_needed_{n}_seeds": plan_one(estimate, effect, alpha, n, power) for n in PLAN_SEEDS}}


def plan_from_claims(claims: pd.DataFrame, seeds: Sequence[int], power: float = POWER) -> pd.DataFrame:
    """The plan of ``plan`` for other seed counts and power, from a finished study's claims table
    (its recorded variance components): per claim and metric, the fewest test acquisitions like
    the study's that would detect the paper's difference (in this study's pixels) at Holm's
    strictest level."""
    rows = []
    for _, r in claims.iterrows():
        estimate = MeanEstimate(mean=r["difference"], **{key: r[key] for key in COMPONENTS})
        row = {"claim": r["claim"], "metric": r["metric"], "paper_difference_here": r["paper_difference_here"],
               "verdict": r["verdict"]}
        for n_seeds in seeds:
            row[f"{n_seeds} seeds"] = plan_one(estimate, r["paper_difference_here"], r["alpha"] / r["family"],
                                               n_seeds, power)
        rows.append(row)
    return pd.DataFrame(rows)


def plan_one(estimate: MeanEstimate, effect: float, alpha: float, n_seeds: int, power: float = POWER) -> int | None:
    """The fewest acquisitions (like these) with which ``n_seeds`` seeds detect ``effect`` with
    ``power`` at ``alpha``; None where the seeds alone make it impossible (up to
    ``PLAN_MAX_ACQUISITIONS``) or the components are unknown (fewer than 2 seeds measured)."""
    if estimate.n_seeds < 2 or not estimate.estimable or not np.isfinite(effect) or effect == 0:
        return None
    low, high = 2, PLAN_MAX_ACQUISITIONS
    if estimate.planned(n_seeds, high).detectable(alpha, power) > abs(effect):
        return None
    while low < high:  # the detectable effect falls with more acquisitions
        middle = (low + high) // 2
        if estimate.planned(n_seeds, middle).detectable(alpha, power) <= abs(effect):
            high = middle
        else:
            low = middle + 1
    return low


def claims_table(study: Study, claims: Sequence[Mapping], published: Mapping, confidence: float, alpha: float,
                 margins: Mapping[str, float], pixel_scale: float = 1.0) -> pd.DataFrame:
    """Each claim of the paper, per metric it is about: our paired difference better - worse
    (negative = as the paper says), its unadjusted interval, its p-value and the Holm-adjusted one
    over all rows, an equivalence test against ``margins`` (two one-sided tests, Holm-adjusted),
    the minimal detectable effect at Holm's strictest level alpha/m and 80 % power, a one-sided
    bound on any effect in the paper's direction, the paper's own difference (MRE rescaled by
    ``pixel_scale`` to this study's pixels), the study that would detect it, and a verdict:

    supported / reversed at this scale: Holm-adjusted p < alpha, in / against the paper's direction;
    absent at this scale: the difference is within +-margin (equivalence, Holm-adjusted p < alpha);
    underpowered: the minimal detectable effect exceeds the margin (the study could not see an
    effect of that size); inconclusive: otherwise; not testable at this size: fewer than 2 seeds or
    3 acquisitions."""
    rows, estimates = [], []
    for claim in claims:
        better, worse = claim["better"], claim["worse"]
        if better not in study.variants or worse not in study.variants:
            continue  # a study without those variants cannot test the claim
        for metric in claim["metrics"]:
            test = study.compare(better, worse, METRICS[metric], confidence)
            paper = published.get(better, {}).get(metric, np.nan) - published.get(worse, {}).get(metric, np.nan)
            estimate = test["estimate"]
            margin = float(margins[metric])
            one_sided = estimate.half_width(1 - confidence)  # NaN where not estimable
            rows.append({"claim": claim["id"], "text": claim["text"], "better": better, "worse": worse,
                         "metric": metric, "difference": test["difference"], "lo": test["lo"],
                         "hi": test["hi"], "p": test["p"],
                         "p_equivalence": max(estimate.p_above(-margin), 1 - estimate.p_above(margin)),
                         "margin": margin,
                         "paper_direction_bound": one_sided - test["difference"],
                         "paper_difference": paper,
                         "paper_difference_here": paper * (pixel_scale if metric == "mre" else 1.0),
                         "df": estimate.df, **{key: getattr(estimate, key) for key in COMPONENTS}})
            estimates.append(estimate)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    family = len(table)
    table["alpha"], table["family"] = alpha, family
    table["p_holm"] = holm(table["p"].fillna(1.0))
    table["p_equivalence_holm"] = holm(table["p_equivalence"].fillna(1.0))
    table["mde"] = [e.detectable(alpha / family, POWER) for e in estimates]
    plans = [plan(e, effect, alpha / family) for e, effect in zip(estimates, table["paper_difference_here"])]
    table = pd.concat([table, pd.DataFrame(plans)], axis=1)
    testable = len(study.seeds) >= 2 and study.n_groups >= 3
    table["verdict"] = [verdict(r, alpha) if testable else "not testable at this size" for _, r in table.iterrows()]
    return table


def verdict(row: Mapping, alpha: float) -> str:
    if row["p_holm"] < alpha:
        return "supported" if row["difference"] < 0 else "reversed at this scale"
    if row["p_equivalence_holm"] < alpha:
        return "absent at this scale"
    if row["mde"] > row["margin"]:
        return "underpowered"
    return "inconclusive"


def reference_table(study: Study, method: str, references: Sequence[str], confidence: float) -> pd.DataFrame:
    """The paper's full method against each reference row: paired difference method - reference
    (negative: the method is better), its interval and p-value, per metric."""
    rows = []
    for reference in references:
        if method not in study.variants or reference not in study.variants:
            continue
        for metric, column in METRICS.items():
            test = study.compare(method, reference, column, confidence)
            test.pop("estimate")
            rows.append({"method": method, "reference": reference, "metric": metric, **test})
    return pd.DataFrame(rows)


def confidence_table(study: Study) -> pd.DataFrame:
    """Does a landmark's confidence mean anything? Per variant, the rank correlation (Spearman)
    between the spread of its heatmap distribution and its radial error over every seed, frame
    and landmark held out, and per landmark; coordinate-output variants have no spread."""
    from scipy.stats import spearmanr

    rows = []
    for name in study.variants:
        columns = [f"spread_{landmark}" for landmark in LANDMARKS]
        tables = study.tables[name]
        if not all(c in tables[0] for c in columns) or tables[0][columns].isna().all().all():
            rows.append({"variant": name, "spearman": np.nan, "note": "no confidence (coordinate output)"})
            continue
        spread = np.concatenate([t[columns].to_numpy(float) for t in tables])
        error = np.concatenate([t[[f"re_{n}" for n in LANDMARKS]].to_numpy(float) for t in tables])
        row = {"variant": name, "spearman": float(spearmanr(spread.ravel(), error.ravel()).statistic), "note": ""}
        for j, landmark in enumerate(LANDMARKS):
            row[f"spearman_{landmark}"] = float(spearmanr(spread[:, j], error[:, j]).statistic)
        row["n"] = int(spread.size)
        rows.append(row)
    return pd.DataFrame(rows)


def by_aop_range(study: Study, edges: Sequence[float]) -> pd.DataFrame:
    """MRE and AoP MAE (mean over seeds) per range of the true AoP, per variant, with the number
    of frames and of acquisitions in each range. Ranges are [low, high), the last one closed, so
    an AoP on the last edge (180) is counted."""
    truth = study.tables[study.variants[0]][0]["aop"].to_numpy(float)
    edges = list(edges)
    index = np.searchsorted(edges, truth, side="right") - 1
    index[truth == edges[-1]] = len(edges) - 2
    rows = []
    for name in study.variants:
        mre, aop = study.matrix(name, "mre").mean(axis=0), study.matrix(name, "aop_error").mean(axis=0)
        for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
            inside = index == k
            rows.append({"variant": name, "aop_range": f"{low:g}-{high:g}", "n_frames": int(inside.sum()),
                         "n_groups": int(len(np.unique(study.groups[inside]))),
                         "mre": float(mre[inside].mean()) if inside.any() else np.nan,
                         "aop_mae": float(aop[inside].mean()) if inside.any() else np.nan})
    return pd.DataFrame(rows)


def chosen_on_validation(validation: pd.DataFrame, among: Sequence[str]) -> tuple[str, int, pd.Series]:
    """The variant (``among`` those named) with the lowest mean validation MRE over its seeds,
    its first seed, and every variant's mean: the choice never looks at the test split.
    ``validation``: columns variant, seed, val_mre.

    Not the seed with the lowest validation MRE: the seeds of one variant differ by chance, so the
    best of them on the validation frames is mostly the one those frames happen to flatter, and
    those are the frames its radii are calibrated on; its calibration would then under-cover new
    frames. The first seed is chosen before anything is seen."""
    means = validation[validation["variant"].isin(among)].groupby("variant")["val_mre"].mean()
    variant = means.idxmin()
    seed = int(validation[validation["variant"] == variant]["seed"].min())
    return variant, seed, means


# --- calibrated confidence (conformal.py): coverage achieved on the test split ------------------

def coverage_table(study: Study, confidence: float, target: float, n_calibration: int,
                   decision_deg: float) -> pd.DataFrame:
    """Per variant, over every seed and then per seed: the share of test frames whose true point
    lies within each landmark's calibrated radius, and whose true AoP lies within its interval,
    with intervals over seeds and acquisitions (one seed: over acquisitions), beside the target
    and the range one run's coverage reaches by chance at this study's size (``n_calibration``
    calibration acquisitions and these test acquisitions; ``conformal.chance_range``, 90 %);
    the mean radius and mean interval width say how informative the confidence is, and
    ``conformal.aop_decisions`` against ``decision_deg`` what the intervals let a reader decide."""
    from ..conformal import aop_decisions, chance_range

    columns = {**{name: f"covered_{name}" for name in LANDMARKS}, "aop": "aop_covered"}
    chance_lo, chance_hi = chance_range(n_calibration, np.bincount(study.groups), target)
    rows = []
    for name in study.variants:
        runs = [("all", list(range(len(study.seeds))))] + [(str(seed), [k]) for k, seed in enumerate(study.seeds)]
        for label, which in runs:
            row = {"variant": name, "seed": label, "target": target, "chance_lo": chance_lo, "chance_hi": chance_hi}
            for key, column in columns.items():
                values = study.matrix(name, column)[which]
                row[f"coverage_{key}"] = float(values.mean())
                row[f"coverage_{key}_lo"], row[f"coverage_{key}_hi"] = share_ci(values, study.groups, confidence)
            for landmark in LANDMARKS:
                row[f"mean_radius_{landmark}"] = float(study.matrix(name, f"radius_{landmark}")[which].mean())
            width = study.matrix(name, "aop_high")[which] - study.matrix(name, "aop_low")[which]
            row["mean_aop_width"] = float(width.mean())
            decisions = aop_decisions(*(study.matrix(name, column)[which].ravel()
                                        for column in ("pred_aop", "aop_low", "aop_high", "aop")), decision_deg)
            row.update({key: value for key, value in decisions.items() if key != "n_frames"})
            rows.append(row)
    return pd.DataFrame(rows)


def flagging_table(study: Study, thresholds: Sequence[float], error_above: float) -> pd.DataFrame:
    """Per variant, over every seed and test frame: precision and recall of flagging the frames
    whose largest calibrated radius exceeds each threshold (`iugc predict --flag-above`), for
    finding the frames with a landmark more than ``error_above`` px off."""
    from ..conformal import flagging

    rows = []
    for name in study.variants:
        radius = np.concatenate([t[[f"radius_{n}" for n in LANDMARKS]].to_numpy(float).max(axis=1)
                                 for t in study.tables[name]])
        error = np.concatenate([t[[f"re_{n}" for n in LANDMARKS]].to_numpy(float).max(axis=1)
                                for t in study.tables[name]])
        rows += [{"variant": name, **row} for row in flagging(radius, error, thresholds, error_above)]
    return pd.DataFrame(rows)
