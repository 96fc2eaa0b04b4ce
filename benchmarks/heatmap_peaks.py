"""What the spread of a finished study's heatmap variants stands on: do their heatmaps have peaks?

The spread (``models.heads.soft_argmax_spread``) is the standard deviation of the distribution
the soft-argmax reads. It says how much the network hesitates only when that distribution is a
peak; when it is nearly flat, the standard deviation measures the background over the whole
frame, and the coordinates are read from small tilts of it. This script predicts the test frames
with each heatmap model of the study and prints, per variant (seeds pooled) and landmark:

- the mean peak height of the heatmap (an Eq. 18 target's is 1);
- the share of the soft-argmax's distribution within 4 heatmap sigmas of the predicted point
  (``models.heads.mass_near``; an encoded target holds all of it there);
- Spearman's rank correlation of the spread with the radial error (what the report's confidence
  table gives), and of the two peak figures (low peak, little mass near: the network hesitates)
  with it: whether a frame's peak says more about its error than the spread does.

    python benchmarks/heatmap_peaks.py --study PATH [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.stats import spearmanr
from torch.utils.data import DataLoader

from iugc.data.dataset import LandmarkDataset
from iugc.data.manifest import labelled_subsets, true_points
from iugc.geometry import LANDMARKS
from iugc.inference import load_trained_model
from iugc.metrics import radial_errors
from iugc.models.heads import mass_near, soft_argmax_spread


@torch.no_grad()
def heatmap_figures(trained, frames, radius: float) -> dict[str, np.ndarray]:
    """Per frame and landmark: peak height, mass within ``radius`` heatmap pixels of the point,
    radial spread (heatmap pixels) and the predicted points in original pixels."""
    dataset = LandmarkDataset(frames, trained.spec.image_size, trained.transform(), cache=False)
    net = trained.net.eval()
    beta = net.soft_argmax_beta
    parts = {"peak": [], "near": [], "spread": [], "coords": []}
    for images, _, _ in DataLoader(dataset, batch_size=16):
        out = net(images)
        heatmaps, coords = out["heatmaps"].float(), out["coords"].float()
        parts["peak"].append(heatmaps.flatten(start_dim=-2).amax(dim=-1))
        parts["near"].append(mass_near(heatmaps, coords, radius, beta))
        parts["spread"].append(soft_argmax_spread(heatmaps, beta).norm(dim=-1))
        parts["coords"].append(coords)
    figures = {name: torch.cat(values).numpy().astype(np.float64) for name, values in parts.items()}
    figures["coords"] = np.array([resize.to_original(points) for resize, points
                                  in zip(dataset.resize_maps, figures["coords"])]).reshape(-1, 3, 2)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished study's folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    study = args.study
    params = yaml.safe_load((study / "params.yaml").read_text())
    radius = 4 * params["model"]["heatmap_sigma"]
    test = labelled_subsets(study / "data" / "dataset", study / "results" / "split")["test"]
    true = true_points(test)
    models = sorted((study / "results" / "finetune").glob("*/seed*/model.pt"))
    if not models:
        print(f"{study}: no results/finetune/<variant>/seed<s>/model.pt; run the study first", file=sys.stderr)
        return 1

    pooled: dict[str, dict[str, list]] = {}
    for model in models:
        trained = load_trained_model(model, variant=model.parent.parent.name, device="cpu")
        if trained.spec.output != "heatmaps":
            continue
        figures = heatmap_figures(trained, test, radius)
        figures["error"] = radial_errors(figures.pop("coords"), true)
        entry = pooled.setdefault(trained.variant, {name: [] for name in figures})
        for name, values in figures.items():
            entry[name].append(values)

    print(f"{study}: {len(test)} test frames; mass within {radius:g} heatmap px (4 sigma) of the point; "
          "an encoded target: peak 1, mass 1")
    print("Spearman with the radial error: of the spread, of a low peak, of little mass near")
    print("| variant | " + " | ".join(f"{n.upper()} peak / mass near / Spearman spread / peak / mass"
                                     for n in LANDMARKS) + " |")
    print("|---|" + "---|" * len(LANDMARKS))
    table = {}
    for variant, entry in pooled.items():
        figures = {name: np.concatenate(values) for name, values in entry.items()}
        cells, table[variant] = [], {}
        for j, name in enumerate(LANDMARKS):
            error = figures["error"][:, j]
            rho = float(spearmanr(figures["spread"][:, j], error).statistic)
            row = {"mre_px": float(error.mean()),  # what the evaluate stage measured: the same frames and points
                   "peak": float(figures["peak"][:, j].mean()), "mass_near": float(figures["near"][:, j].mean()),
                   "spearman_spread_error": rho,
                   "spearman_low_peak_error": float(spearmanr(-figures["peak"][:, j], error).statistic),
                   "spearman_little_mass_near_error": float(spearmanr(-figures["near"][:, j], error).statistic)}
            table[variant][name] = row
            cells.append(f"{row['peak']:.2f} / {row['mass_near']:.2f} / {rho:+.2f} / "
                         f"{row['spearman_low_peak_error']:+.2f} / {row['spearman_little_mass_near_error']:+.2f}")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"radius_heatmap_px": radius, "n_frames": len(test),
                                         "variants": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
