"""The study's numbers from its per-frame tables: every variant over every seed, with intervals
that resample seeds and acquisitions (``iugc.metrics``), the paper's claims tested as paired
comparisons, and where the error is (per landmark, by AoP range).

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
from ..metrics import Draws, group_codes, holm, interval, paired_difference, resampled_means

METRICS = {"mre": "mre", "aop_mae": "aop_error"}  # metric -> per-frame column of a prediction table
METRIC_NAMES = {"mre": "MRE (px)", "aop_mae": "AoP MAE (deg)"}


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
                tables[name].append(table.loc[frames].reset_index())
        return cls(variants, seeds, frames, group_codes(first["group"]), tables)

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def matrix(self, variant: str, column: str) -> np.ndarray:
        """(seeds x frames) of one per-frame column."""
        return np.stack([table[column].to_numpy(float) for table in self.tables[variant]])

    def draws(self, n_samples: int, seed: int) -> Draws:
        return Draws.make(len(self.seeds), self.n_groups, n_samples, seed)


def _summary(values: np.ndarray, groups: np.ndarray, draws: Draws, confidence: float) -> dict:
    per_seed = values.mean(axis=1)
    lo, hi = interval(resampled_means(values, groups, draws), confidence)
    return {"mean": float(values.mean()), "sd_seeds": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
            "lo": lo, "hi": hi}


def variant_table(study: Study, draws: Draws, confidence: float, radii: Sequence[float],
                  radii_mm: Sequence[float] = (), pixel_spacing_mm: float | None = None) -> pd.DataFrame:
    """One row per variant: MRE and AoP MAE (mean over seeds and frames, sd over seeds,
    interval), per-landmark radial errors with intervals, success rates (in px, and in mm when
    the pixel spacing is known), undefined AoPs, and how many seeds, acquisitions and frames
    every number rests on."""
    rows = []
    for name in study.variants:
        row = {"variant": name, "n_seeds": len(study.seeds), "n_groups": study.n_groups,
               "n_frames": len(study.frames)}
        for metric, column in METRICS.items():
            for key, value in _summary(study.matrix(name, column), study.groups, draws, confidence).items():
                row[f"{metric}_{key}"] = value
        for landmark in LANDMARKS:
            for key, value in _summary(study.matrix(name, f"re_{landmark}"), study.groups, draws,
                                       confidence).items():
                row[f"re_{landmark}_{key}"] = value
        errors = np.stack([study.matrix(name, f"re_{landmark}") for landmark in LANDMARKS])
        for radius in radii:
            row[f"within_{radius:g}px"] = float(np.mean(errors <= radius))
        if pixel_spacing_mm:
            for radius in radii_mm:
                row[f"within_{radius:g}mm"] = float(np.mean(errors * pixel_spacing_mm <= radius))
        row["aop_undefined"] = int(study.matrix(name, "aop_undefined").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def significant_ranks(study: Study, metric: str, draws: Draws, confidence: float, alpha: float,
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
        test = paired_difference(study.matrix(better, column), study.matrix(worse, column), study.groups,
                                 draws, confidence)
        if test["p"] < alpha:
            ranks[better] = rank
        else:
            break  # no emphasis below a difference that is not shown
    return ranks


def claims_table(study: Study, claims: Sequence[Mapping], published: Mapping, draws: Draws,
                 confidence: float, alpha: float) -> pd.DataFrame:
    """Each claim of the paper, per metric it is about: our paired difference better - worse
    (negative = as the paper says), its interval, its p-value, the Holm-adjusted p-value over
    all rows, a verdict, and the paper's own difference."""
    rows = []
    for claim in claims:
        better, worse = claim["better"], claim["worse"]
        if better not in study.variants or worse not in study.variants:
            continue  # a study without those variants cannot test the claim
        for metric in claim["metrics"]:
            column = METRICS[metric]
            test = paired_difference(study.matrix(better, column), study.matrix(worse, column),
                                     study.groups, draws, confidence)
            paper = published.get(better, {}).get(metric, np.nan) - published.get(worse, {}).get(metric, np.nan)
            rows.append({"claim": claim["id"], "text": claim["text"], "better": better, "worse": worse,
                         "metric": metric, "difference": test["difference"], "lo": test["lo"],
                         "hi": test["hi"], "p": test["p"], "paper_difference": paper,
                         "n_seeds": len(study.seeds), "n_groups": study.n_groups,
                         "n_frames": len(study.frames)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = holm(table["p"])
    table["verdict"] = [
        "supported" if p < alpha and d < 0 else "reversed at this scale" if p < alpha and d > 0 else "not shown"
        for p, d in zip(table["p_holm"], table["difference"])]
    return table


def reference_table(study: Study, method: str, references: Sequence[str], draws: Draws,
                    confidence: float) -> pd.DataFrame:
    """The paper's full method against each reference row: paired difference method - reference
    (negative: the method is better), its interval and p-value, per metric."""
    rows = []
    for reference in references:
        if method not in study.variants or reference not in study.variants:
            continue
        for metric, column in METRICS.items():
            test = paired_difference(study.matrix(method, column), study.matrix(reference, column),
                                     study.groups, draws, confidence)
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
    """MRE and AoP MAE (mean over seeds) per range of the true AoP, per variant, with the
    number of frames in each range."""
    truth = study.tables[study.variants[0]][0]["aop"].to_numpy(float)
    bins = pd.cut(truth, list(edges), right=False)
    rows = []
    for name in study.variants:
        mre, aop = study.matrix(name, "mre").mean(axis=0), study.matrix(name, "aop_error").mean(axis=0)
        for label in bins.categories:
            inside = np.asarray(bins == label)
            rows.append({"variant": name, "aop_range": f"{label.left:g}-{label.right:g}",
                         "n_frames": int(inside.sum()),
                         "mre": float(mre[inside].mean()) if inside.any() else np.nan,
                         "aop_mae": float(aop[inside].mean()) if inside.any() else np.nan})
    return pd.DataFrame(rows)


def chosen_on_validation(validation: pd.DataFrame, among: Sequence[str]) -> tuple[str, int, pd.Series]:
    """The variant (``among`` those named) with the lowest mean validation MRE over its seeds,
    its seed with the lowest validation MRE, and every variant's mean: the choice never looks
    at the test split. ``validation``: columns variant, seed, val_mre."""
    means = validation[validation["variant"].isin(among)].groupby("variant")["val_mre"].mean()
    variant = means.idxmin()
    seed = int(validation[validation["variant"] == variant].sort_values("val_mre").iloc[0]["seed"])
    return variant, seed, means


# --- calibrated confidence (conformal.py): coverage achieved on the test split ------------------

def coverage_table(study: Study, draws: Draws, confidence: float, target: float) -> pd.DataFrame:
    """Per variant, over every seed and then per seed: the share of test frames whose true point
    lies within each landmark's calibrated radius, and whose true AoP lies within its interval,
    with intervals over seeds and acquisitions (one seed: over acquisitions), beside the target;
    the mean radius and mean interval width say how informative the confidence is."""
    columns = {**{name: f"covered_{name}" for name in LANDMARKS}, "aop": "aop_covered"}
    rows = []
    for name in study.variants:
        runs = [("all", list(range(len(study.seeds))), draws)]
        runs += [(str(seed), [k], Draws(np.ones((len(draws.groups), 1), int), draws.groups))
                 for k, seed in enumerate(study.seeds)]
        for label, which, run_draws in runs:
            row = {"variant": name, "seed": label, "target": target}
            for key, column in columns.items():
                values = study.matrix(name, column)[which]
                row[f"coverage_{key}"] = float(values.mean())
                row[f"coverage_{key}_lo"], row[f"coverage_{key}_hi"] = interval(
                    resampled_means(values, study.groups, run_draws), confidence)
            for landmark in LANDMARKS:
                row[f"mean_radius_{landmark}"] = float(study.matrix(name, f"radius_{landmark}")[which].mean())
            width = study.matrix(name, "aop_high")[which] - study.matrix(name, "aop_low")[which]
            row["mean_aop_width"] = float(width.mean())
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
