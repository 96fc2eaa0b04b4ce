"""Is a finished study's test split an honest predictor of frames from stretches of recording it
never saw?

The split keeps acquisitions whole, so no test frame has a near-copy in training. But a test
acquisition's neighbours in ID order (the same session, scanner setting, perhaps the same woman)
are often training frames, while frames kept apart as whole blocks of consecutive IDs have none.
If the models do better on frames that look like a training frame, the test split would then be
optimistic for such frames. This script measures it on a finished study:

1. nearness: each test frame's perceptual-hash distance (``split.hash_size``) to its nearest
   training frame, and each held-out (validation and test) frame's distance to its nearest
   training frame outside its own block of ``--block`` consecutive IDs, as if the whole block had
   been kept apart (``data.splits.id_blocks``, ``nearest_distances``);
2. whether it matters: per run, Spearman's rank correlation of the test frames' errors (each
   landmark's radial error, MRE, AoP error) with that nearness, and with the number of training
   frames in the frame's block;
3. the projection: per variant (seeds pooled), the test frames' MRE, AoP MAE and coverage of the
   calibrated radii and AoP interval, reweighted so that their nearness is distributed as the
   whole-block frames' (the ratio of the two shares in bins at the test nearness's quintiles;
   ``shift_weights``), with the weights' effective number of frames. A projection along one
   covariate: what nearness does not capture (another scanner) it does not see;
4. nearness as a confidence: per run and landmark, the mean radius calibrated on the error
   divided by the nearness over the plain radius, both at the study's coverage, calibrated on
   one frame of each of half the test acquisitions and measured on the other half (``--halves``
   random halves, ``conformal.scaled_width_ratio``; below 1: nearness would make the radii more
   informative).

It reads the study's split, its data manifest and the evaluate stage's per-frame tables
(``results/eval/<variant>/seed<s>/predictions.csv``); it trains and predicts nothing.

    python benchmarks/split_audit.py --study PATH [--block 50] [--halves 200] [--json FILE]
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
from iugc.data.manifest import labelled_subsets
from iugc.data.splits import id_blocks, nearest_distances, perceptual_hashes
from iugc.geometry import LANDMARKS

ERRORS = [*(f"re_{name}" for name in LANDMARKS), "mre", "aop_error"]
COVERED = {**{f"covered_{name}": name.upper() for name in LANDMARKS}, "aop_covered": "AoP"}


def shift_weights(source, target, n_bins: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Weights for the ``source`` values that make their distribution in bins that of ``target``:
    per bin, the target's share over the source's. Bins are cut at the source's quantiles (tied
    values share a bin); a target value beyond the source's range falls in the end bin. Returns
    (weight per source value, interior bin edges)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    edges = np.unique(np.quantile(source, np.linspace(0, 1, n_bins + 1)[1:-1]))
    source_bin, target_bin = np.searchsorted(edges, source, "right"), np.searchsorted(edges, target, "right")
    source_share = np.bincount(source_bin, minlength=len(edges) + 1) / len(source)
    target_share = np.bincount(target_bin, minlength=len(edges) + 1) / len(target)
    return (target_share / source_share)[source_bin], edges


def effective_frames(weights) -> float:
    """Kish's effective sample size of weighted frames: (sum w)^2 / sum w^2."""
    weights = np.asarray(weights, np.float64)
    return float(weights.sum() ** 2 / np.sum(weights ** 2))


def weighted_mean(values, weights) -> float:
    values, weights = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    defined = np.isfinite(values)
    return float(np.sum(values[defined] * weights[defined]) / np.sum(weights[defined]))


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation over the pairs where both are defined; NaN where either is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    defined = np.isfinite(a) & np.isfinite(b)
    if defined.sum() < 3 or np.ptp(a[defined]) == 0 or np.ptp(b[defined]) == 0:
        return float("nan")
    return float(spearmanr(a[defined], b[defined]).statistic)


def nearness(subsets: dict[str, pd.DataFrame], hash_size: int, block: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Per test frame (``filename``): the distance to its nearest training frame (``nearness``)
    and the number of training frames in its block of IDs (``train_in_block``); and, per held-out
    frame (validation and test), the distance to its nearest training frame outside its block."""
    train, test = subsets["train"], subsets["test"]
    held_out = pd.concat([subsets["val"], test], ignore_index=True)
    train_bits = perceptual_hashes(train["image_path"], hash_size)
    held_bits = perceptual_hashes(held_out["image_path"], hash_size)
    train_blocks, held_blocks = id_blocks(train["filename"], block), id_blocks(held_out["filename"], block)
    is_test = np.arange(len(held_out)) >= len(subsets["val"])
    whole_block = nearest_distances(held_bits, train_bits, apart=(held_blocks, train_blocks))
    train_in_block = pd.Series(train_blocks).value_counts()
    frames = pd.DataFrame({"filename": test["filename"], "nearness": nearest_distances(held_bits[is_test], train_bits),
                           "train_in_block": [int(train_in_block.get(b, 0)) for b in held_blocks[is_test]]})
    return frames, whole_block[np.isfinite(whole_block)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished study's folder")
    parser.add_argument("--block", type=int, default=50, help="consecutive IDs per block kept apart")
    parser.add_argument("--halves", type=int, default=200, help="random halves for the confidence ratio")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    study = args.study
    params = yaml.safe_load((study / "params.yaml").read_text())
    tables = sorted((study / "results" / "eval").glob("*/seed*/predictions.csv"))
    if not tables:
        print(f"{study}: no results/eval/<variant>/seed<s>/predictions.csv; run the study first", file=sys.stderr)
        return 1
    subsets = labelled_subsets(study / "data" / "dataset", study / "results" / "split")
    hash_size = params["split"]["hash_size"]
    frames, near_whole_block = nearness(subsets, hash_size, args.block)
    near_test = frames["nearness"].to_numpy()
    weights, edges = shift_weights(near_test, near_whole_block)
    frames["weight"] = weights
    coverage = params["evaluate"]["coverage"]

    figures = {"block": args.block, "n_test": len(frames), "n_whole_block": int(len(near_whole_block)),
               "nearness_test": np.percentile(near_test, [10, 25, 50, 75, 90]).tolist(),
               "nearness_whole_block": np.percentile(near_whole_block, [10, 25, 50, 75, 90]).tolist(),
               "bin_edges": edges.tolist(), "effective_frames": effective_frames(weights),
               "spearman_nearness": {}, "spearman_train_in_block": {}, "variants": {}}
    print(f"{study}: {len(frames)} test frames; {len(near_whole_block)} held-out (validation and test) frames, "
          f"blocks of {args.block} IDs; perceptual hash {hash_size}x{hash_size}")
    print("nearest training frame, bits (10/25/50/75/90th percentiles): test frames "
          + " / ".join(f"{v:g}" for v in figures["nearness_test"]) + "; held-out frames, their own block kept apart "
          + " / ".join(f"{v:g}" for v in figures["nearness_whole_block"])
          + f"; reweighting in bins cut at {edges.tolist()}: {figures['effective_frames']:.0f} effective test frames")

    runs = {}
    for path in tables:
        run = pd.read_csv(path).merge(frames, on="filename", validate="one_to_one")
        variant = path.parent.parent.name
        runs.setdefault(variant, []).append(run)
        for column, spearman in (("nearness", figures["spearman_nearness"]),
                                 ("train_in_block", figures["spearman_train_in_block"])):
            for error in ERRORS:
                spearman.setdefault(error, []).append(rank_correlation(run[column], run[error]))
    for name in ("spearman_nearness", "spearman_train_in_block"):
        print(f"{name.replace('_', ' ')}: Spearman with the error, median over {len(tables)} runs (min to max): "
              + "; ".join(f"{e} {np.nanmedian(v):+.2f} ({np.nanmin(v):+.2f} to {np.nanmax(v):+.2f})"
                          for e, v in figures[name].items()))

    print("Test frames (frame means, seeds pooled) -> reweighted as whole-block frames:")
    print("| variant | MRE px | AoP MAE deg | " + " | ".join(f"{label} coverage" for label in COVERED.values())
          + " | nearness-scaled / plain radius " + " / ".join(name.upper() for name in LANDMARKS) + " (runs' range) |")
    print("|---|---|---|" + "---|" * len(COVERED) + "---|")
    for number, (variant, seeds) in enumerate(runs.items()):
        pooled = pd.concat(seeds, ignore_index=True)
        entry = {key: [float(pooled[key].mean()), weighted_mean(pooled[key], pooled["weight"])]
                 for key in ("mre", "aop_error", *COVERED)}
        # Nearness 0 (an identical hash) would make a zero radius: floored at one bit.
        entry["radius_ratio"] = {name: [scaled_width_ratio(run[f"re_{name}"], np.maximum(run["nearness"], 1.0),
                                                           run["group"], coverage, args.halves, seed=100 * number + k)
                                        for k, run in enumerate(seeds)] for name in LANDMARKS}
        figures["variants"][variant] = entry
        print(f"| {variant} | " + " | ".join(f"{a:.2f} -> {b:.2f}" for a, b in (entry[k] for k in ("mre", "aop_error", *COVERED)))
              + " | " + " / ".join(f"{np.nanmin(r):.2f}-{np.nanmax(r):.2f}" if np.isfinite(r).any() else "-"
                                   for r in entry["radius_ratio"].values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
