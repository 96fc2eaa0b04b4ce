"""Report stages: ablation tables, figures, provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..geometry import LANDMARKS
from ..report import figures as fig
from ..report.provenance import provenance as collect_provenance
from ..report.tables import ablation_table, caption, render
from .data import labelled_subsets, read_dataset


def _encoder_names(params) -> dict:
    enc = params["encoders"]
    return {"hrnet": f"HRNet ({enc['hrnet']})", "resnet": f"ResNet ({enc['resnet']})",
            "attention_unet": "Attention UNet"}


def ablation(params, *, evaluations, out):
    """Table 2 of our run: CSV, Markdown, LaTeX, per-landmark errors, DVC metrics."""
    evaluations, out = Path(evaluations), Path(out)
    metrics = {name: json.loads((evaluations / name / "metrics.json").read_text()) for name in params["variants"]}
    names = _encoder_names(params)
    table = ablation_table(params, metrics, names)
    text = caption(params, names)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "ablation.csv", index=False)
    (out / "ablation.md").write_text(render(table, "md", text))
    (out / "ablation.tex").write_text(render(table, "tex", text))
    per_landmark = pd.DataFrame([
        {"variant": name, **{f"re_{n}": m[f"re_{n}"] for n in LANDMARKS},
         **{f"within_{r}": v for r, v in m["success_rate"].items()}}
        for name, m in metrics.items()])
    per_landmark.to_csv(out / "per_landmark.csv", index=False)
    summary = {name: {"mre": m["mre"], "aop_mae": m["aop_mae"], **{f"re_{n}": m[f"re_{n}"] for n in LANDMARKS}}
               for name, m in metrics.items()}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")


def _dvclive_history(folder: Path) -> pd.DataFrame:
    """Merge dvclive's per-metric TSVs (step + value) into one table per run."""
    frames = []
    for tsv in sorted((folder / "dvclive" / "plots" / "metrics").rglob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        value = [c for c in df.columns if c not in ("step", "timestamp")][0]
        name = str(tsv.relative_to(folder / "dvclive" / "plots" / "metrics").with_suffix(""))
        frames.append(df[["step", value]].rename(columns={value: name}).set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})


def figures(params, *, dataset, splits, evaluations, finetuned, pretrained, out):
    """All report figures from the evaluation tables, training logs and one target example."""
    import torch

    from ..data.images import load_for_model, read_grey
    from ..models.codec import HeatmapCodec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size, sigma = params["model"]["image_size"], params["model"]["heatmap_sigma"]

    test = labelled_subsets(dataset, splits)["test"]
    frame = test.iloc[0]
    image, resize = load_for_model(frame["image_path"], size)
    points = resize.to_model(frame[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(3, 2))
    heatmaps = HeatmapCodec(size, sigma, 1.0).encode(torch.as_tensor(points, dtype=torch.float32)[None])[0]
    fig.gaussian_targets(image, heatmaps.numpy(), points, out / "fig4_target_heatmaps.png")

    tables = {name: pd.read_csv(Path(evaluations) / name / "predictions.csv") for name in params["variants"]}
    best = min(tables, key=lambda name: tables[name]["mre"].mean())
    fig.prediction_grid(tables[best], read_grey, f"{best} on held-out frames", out / "fig5_predictions.png",
                        params["report"]["figure_frames"])
    fig.aop_agreement(tables, out / "aop_agreement.png")
    fig.error_distributions(tables, out / "error_distributions.png")
    histories = {name: _dvclive_history(Path(finetuned) / name) for name in params["variants"]}
    fig.training_curves(histories, out / "training_curves.png")
    losses = {p.parent.name: pd.read_csv(p) for p in sorted(Path(pretrained).glob("*/losses.csv"))}
    fig.pretraining_curves(losses, out / "pretraining_curves.png")


def provenance(params, *, dataset, logs, out):
    """Git commit, params hash, data hashes, package versions, device, wall time per stage."""
    _, _, source = read_dataset(dataset)
    record = collect_provenance(params, source, logs)
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
