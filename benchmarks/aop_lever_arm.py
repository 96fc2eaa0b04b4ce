"""Could the AoP interval be narrower where the frame's geometry makes the angle steady?

The AoP is the angle at PS1 between PS2 and FH1. A landmark that is off by a pixel turns it by
about one radian over the length of the arm it moves: little where the arms are long, much
where they are short. So a frame's own predicted points say how much its AoP moves per pixel
of landmark error (``aop_sensitivity``: the length of the AoP's gradient over the six
coordinates, in degrees per pixel), and an interval scaled by it, calibrated as the plain one,
would be narrow where the angle is steady. This script measures, per run of a finished study,
on its test frames:

- Spearman's rank correlation of that sensitivity with the AoP error;
- the mean width of the AoP interval scaled by it over the plain one, both at the study's
  coverage, calibrated on one frame of each of half the test acquisitions and measured on the
  other half (``--halves`` random halves, ``conformal.scaled_width_ratio``; below 1: the
  geometry would make the interval more informative);
- the sensitivity's spread over the frames (5th, 50th, 95th percentiles): a scale that hardly
  varies cannot make an interval adaptive.

It reads the evaluate stage's per-frame tables (``results/eval/<variant>/seed<s>/predictions.csv``);
it trains and predicts nothing.

    python benchmarks/aop_lever_arm.py --study PATH [--halves 200] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from iugc.conformal import scaled_width_ratio
from iugc.geometry import LANDMARKS, aop_from_landmarks


def aop_sensitivity(points, step: float = 0.5) -> np.ndarray:
    """Degrees of AoP per pixel for landmarks ``(n, 3, 2)``: the length of the AoP's gradient
    over the six coordinates (central differences of ``step`` px), i.e. the AoP's standard
    deviation for independent landmark errors of one pixel per coordinate, to first order."""
    points = np.asarray(points, np.float64)
    squares = np.zeros(points.shape[0])
    for landmark in range(3):
        for axis in range(2):
            ahead, behind = points.copy(), points.copy()
            ahead[:, landmark, axis] += step
            behind[:, landmark, axis] -= step
            squares += ((aop_from_landmarks(ahead) - aop_from_landmarks(behind)) / (2 * step)) ** 2
    return np.sqrt(squares)


def run_figures(table: pd.DataFrame, coverage: float, halves: int, seed: int) -> dict[str, float]:
    """One run's test frames (an evaluate stage's predictions.csv): the figures above."""
    predicted = np.stack([table[[f"pred_{name}_x", f"pred_{name}_y"]].to_numpy() for name in LANDMARKS], axis=1)
    sensitivity, error = aop_sensitivity(predicted), table["aop_error"].to_numpy(np.float64)
    defined = np.isfinite(sensitivity) & np.isfinite(error) & (sensitivity > 0)
    low, median, high = np.percentile(sensitivity[defined], [5, 50, 95])
    return {"n_frames": int(defined.sum()),
            "spearman": float(spearmanr(sensitivity[defined], error[defined]).statistic),
            "width_ratio": scaled_width_ratio(error[defined], sensitivity[defined], table["group"].to_numpy()[defined],
                                              coverage, halves, seed),
            "sensitivity_p05": float(low), "sensitivity_p50": float(median), "sensitivity_p95": float(high)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished study's folder")
    parser.add_argument("--halves", type=int, default=200, help="random halves for the width ratio")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    tables = sorted((args.study / "results" / "eval").glob("*/seed*/predictions.csv"))
    if not tables:
        print(f"{args.study}: no results/eval/<variant>/seed<s>/predictions.csv; run the study first", file=sys.stderr)
        return 1
    coverage = yaml.safe_load((args.study / "params.yaml").read_text())["evaluate"]["coverage"]
    runs = {f"{path.parent.parent.name}/{path.parent.name}": run_figures(pd.read_csv(path), coverage, args.halves, seed=k)
            for k, path in enumerate(tables)}

    print(f"{args.study}: test frames; AoP interval at {coverage:.2f}, widths over {args.halves} random halves")
    print("| run | frames | Spearman sensitivity ~ AoP error | scaled / plain width | deg per px (5th / 50th / 95th) |")
    print("|---|---|---|---|---|")
    for run, figures in runs.items():
        print(f"| {run} | {figures['n_frames']} | {figures['spearman']:+.2f} | {figures['width_ratio']:.2f} | "
              f"{figures['sensitivity_p05']:.2f} / {figures['sensitivity_p50']:.2f} / {figures['sensitivity_p95']:.2f} |")
    for key, form in (("spearman", "+.2f"), ("width_ratio", ".2f")):
        values = np.array([figures[key] for figures in runs.values()])
        values = values[np.isfinite(values)]
        print(f"{key}: " + (f"median {np.median(values):{form}}, {values.min():{form}} to {values.max():{form}} "
                            f"over {len(values)} runs" if len(values) else
                            "none (half the test acquisitions are too few for a finite width)"))
    if args.json:
        args.json.write_text(json.dumps({"coverage": coverage, "halves": args.halves, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
