"""How much one split's achieved coverage says: a finished study's radii calibrated again on
random draws of its held-out acquisitions.

The report's coverage table is one calibration (the validation split) scored on one test split.
Both are a few dozen acquisitions, and acquisitions differ in difficulty, so that one figure
differs from the target by chance. This script predicts the validation and test frames with each
trained model of the study, then, ``--repetitions`` times, draws as many calibration acquisitions
from the pooled held-out acquisitions as the validation split has, calibrates on them as the
calibrate stage does (``conformal.calibrate``) and scores the rest (``conformal.resplit_coverage``).
The draws are stratified by the acquisitions' AoP in the study's ``split.aop_strata`` bins, as its
split was, so the spread printed is that of the study's own design.
It prints, per variant (seeds pooled), the mean and the 5th-95th percentiles of the coverage
achieved, beside the study's own split, and how often one figure, and all four of one run
together, land within ``--band`` of the target. A diagnostic: test frames calibrate here, so none of
these radii is for use.

    python benchmarks/coverage_resplit.py --study PATH [--repetitions 500] [--band 0.05] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from iugc.conformal import resplit_coverage
from iugc.data.manifest import labelled_subsets, true_points
from iugc.data.splits import aop_strata
from iugc.geometry import LANDMARKS, aop_from_landmarks
from iugc.inference import load_trained_model

KEYS = (*LANDMARKS, "aop")


def study_split_coverage(study: Path, variant: str, seed: str) -> dict[str, float]:
    """The coverage the study's own evaluate stage measured for this run."""
    metrics = json.loads((study / "results" / "eval" / variant / seed / "metrics.json").read_text())["coverage"]
    return {key: metrics[key]["coverage"] for key in KEYS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished study's folder")
    parser.add_argument("--repetitions", type=int, default=500)
    parser.add_argument("--band", type=float, default=0.05, help="half-width of the band around the target")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    study = args.study
    params = yaml.safe_load((study / "params.yaml").read_text())
    coverage = params["evaluate"]["coverage"]
    subsets = labelled_subsets(study / "data" / "dataset", study / "results" / "split")
    held_out = pd.concat([subsets["val"], subsets["test"]], ignore_index=True)
    n_calibration = subsets["val"]["group"].nunique()
    true = true_points(held_out)
    groups = held_out["group"].to_numpy()
    strata = aop_strata(groups, aop_from_landmarks(true), params["split"].get("aop_strata", 1))
    models = sorted((study / "results" / "finetune").glob("*/seed*/model.pt"))
    if not models:
        print(f"{study}: no results/finetune/<variant>/seed<s>/model.pt; run the study first", file=sys.stderr)
        return 1

    by_variant: dict[str, dict[str, list]] = {}
    for number, model in enumerate(models):
        variant, seed = model.parent.parent.name, model.parent.name
        pred, spread = load_trained_model(model, variant=variant, device="cpu").predict(held_out, with_spread=True)
        achieved = resplit_coverage(pred, true, spread, groups, coverage, n_calibration, args.repetitions,
                                    seed=number, strata=strata)
        entry = by_variant.setdefault(variant, {"resplit": {k: [] for k in KEYS}, "study": {k: [] for k in KEYS},
                                                "all_in_band": []})
        entry["all_in_band"].append(np.all([np.abs(achieved[k] - coverage) <= args.band for k in KEYS], axis=0))
        own = study_split_coverage(study, variant, seed)
        for key in KEYS:
            entry["resplit"][key].append(achieved[key])
            entry["study"][key].append(own[key])

    print(f"{study}: target {coverage:.2f}; {len(held_out)} held-out frames of {held_out['group'].nunique()} "
          f"acquisitions, {n_calibration} drawn to calibrate (stratified in {len(np.unique(strata))} AoP bins), "
          f"{args.repetitions} draws per run")
    print("| variant | " + " | ".join(f"{k.upper()} study / resplit mean (5-95 %) / in band" for k in KEYS)
          + f" | all four in {coverage - args.band:.2f}-{coverage + args.band:.2f} |")
    print("|---|" + "---|" * (len(KEYS) + 1))
    figures = {}
    for variant, entry in by_variant.items():
        cells, figures[variant] = [], {}
        for key in KEYS:
            draws = np.concatenate(entry["resplit"][key])
            low, high = np.quantile(draws, [0.05, 0.95])
            own = float(np.mean(entry["study"][key]))
            in_band = float(np.mean(np.abs(draws - coverage) <= args.band))
            figures[variant][key] = {"study": own, "mean": float(draws.mean()), "p05": float(low), "p95": float(high),
                                     "in_band": in_band}
            cells.append(f"{own:.2f} / {draws.mean():.2f} ({low:.2f}-{high:.2f}) / {in_band:.2f}")
        all_in_band = float(np.mean(np.concatenate(entry["all_in_band"])))
        figures[variant]["all_in_band"] = all_in_band
        print(f"| {variant} | " + " | ".join(cells) + f" | {all_in_band:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"target": coverage, "n_calibration": int(n_calibration),
                                         "repetitions": args.repetitions, "aop_strata": int(len(np.unique(strata))),
                                         "band": args.band, "variants": figures}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
