"""Report stages: the ablation tables, the figures, and the report a reviewer reads.

``ablation`` and ``figures`` compute into ``results/``; ``report`` is the last job: it receives
every result of the study as input, checks the whole chain (each result was made from the
current version of what it was made from, under the parameters in force now, and is intact),
and only then writes ``reports/`` with the provenance of every number in it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from ..data.manifest import labelled_subsets, read_dataset
from ..errors import UserError
from .registry import stage

ABLATION_FILES = ("ablation.md", "ablation.csv", "ablation.tex", "per_landmark.csv")
METRICS_JSON = "metrics.json"


def _encoder_names(view) -> dict:
    enc = view["encoders"]
    return {"hrnet": f"HRNet ({enc['hrnet']})", "resnet": f"ResNet ({enc['resnet']})",
            "attention_unet": "Attention UNet"}


def _evaluations(folders: list[str]) -> dict[str, list[dict]]:
    """metrics.json of every evaluation folder, grouped by variant (one entry per seed)."""
    by_variant: dict[str, list[dict]] = {}
    for folder in folders:
        metrics = json.loads((Path(folder) / METRICS_JSON).read_text())
        by_variant.setdefault(metrics["variant"], []).append({**metrics, "folder": str(folder)})
    for runs in by_variant.values():
        runs.sort(key=lambda m: m["seed"])
    return by_variant


@stage("ablation", reads=["preset", "variants", "encoders.hrnet", "encoders.resnet"],
       inputs=("dataset", "evaluations"))
def ablation(view, *, dataset, evaluations: list[str], out):
    """Table 2 of our run: CSV, Markdown, LaTeX, per-landmark errors, DVC metrics."""
    from ..geometry import LANDMARKS
    from ..report.tables import ablation_table, caption, render

    _, _, source = read_dataset(dataset)
    runs = _evaluations(evaluations)
    missing = [name for name in view["variants"] if name not in runs]
    if missing:
        raise UserError(f"ablation: no evaluation of {', '.join(missing)} among its inputs")
    metrics = {name: runs[name][0] for name in view["variants"]}
    names = _encoder_names(view)
    table = ablation_table(view, metrics, names)
    text = caption(source["source"], view["preset"], names)
    out = Path(out)
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
    (out / METRICS_JSON).write_text(json.dumps(summary, indent=1) + "\n")


def _dvclive_history(folder: Path) -> pd.DataFrame:
    """Merge dvclive's per-metric TSVs (step + value) into one table per run."""
    frames = []
    for tsv in sorted((folder / "dvclive" / "plots" / "metrics").rglob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        value = [c for c in df.columns if c not in ("step", "timestamp")][0]
        name = str(tsv.relative_to(folder / "dvclive" / "plots" / "metrics").with_suffix(""))
        frames.append(df[["step", value]].rename(columns={value: name}).set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})


@stage("figures", reads=["variants", "report", "model.heatmap_sigma", "model.image_size"],
       inputs=("dataset", "split", "evaluations", "finetuned", "pretrained"))
def figures(view, *, dataset, split, evaluations: list[str], finetuned: list[str],
            pretrained: list[str], out):
    """All report figures from the evaluation tables, training logs and one target example."""
    import torch

    from ..data.images import load_for_model, read_grey
    from ..geometry import LANDMARKS
    from ..models.codec import HeatmapCodec
    from ..report import figures as fig

    out = Path(out)
    size, sigma = view["model"]["image_size"], view["model"]["heatmap_sigma"]

    test = labelled_subsets(dataset, split)["test"]
    frame = test.iloc[0]
    image, resize = load_for_model(frame["image_path"], size)
    points = resize.to_model(frame[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(3, 2))
    heatmaps = HeatmapCodec(size, sigma, 1.0).encode(torch.as_tensor(points, dtype=torch.float32)[None])[0]
    fig.gaussian_targets(image, heatmaps.numpy(), points, out / "fig4_target_heatmaps.png")

    runs = _evaluations(evaluations)
    tables = {name: pd.read_csv(Path(runs[name][0]["folder"]) / "predictions.csv") for name in view["variants"]}
    best = min(tables, key=lambda name: tables[name]["mre"].mean())
    fig.prediction_grid(tables[best], read_grey, f"{best} on held-out frames", out / "fig5_predictions.png",
                        view["report"]["figure_frames"])
    fig.aop_agreement(tables, out / "aop_agreement.png")
    fig.error_distributions(tables, out / "error_distributions.png")
    by_variant = {}
    for folder in map(Path, finetuned):
        summary = json.loads((folder / "summary.json").read_text())
        by_variant.setdefault(summary["variant"], folder)
    histories = {name: _dvclive_history(by_variant[name]) for name in view["variants"]}
    fig.training_curves(histories, out / "training_curves.png")
    losses = {}
    for folder in map(Path, pretrained):  # results/pretrain/<method>/seed<seed>
        losses.setdefault(folder.parent.name, pd.read_csv(folder / "losses.csv"))
    fig.pretraining_curves(dict(sorted(losses.items())), out / "pretraining_curves.png")


def _all_keys(params, wildcards) -> list[str]:
    # The report records the hash of the whole parameter set and checks every result against
    # it, so it reads all of it.
    return list(params)


@stage("report", reads=_all_keys, inputs=("dataset", "ablation", "figures", "results"), owns_out=False)
def report(view, *, dataset, ablation, figures, results: list[str], out):
    """Check every result of the study against its sources and parameters, then write reports/."""
    from ..report.provenance import provenance
    from .verify import verify_chain

    chain = verify_chain(view, [dataset, *results, ablation, figures])
    _, _, source = read_dataset(dataset)
    out, ablation_dir, figures_dir = Path(out), Path(ablation), Path(figures)
    for name in (*ABLATION_FILES, METRICS_JSON):
        shutil.copyfile(ablation_dir / name, out / name)
    figures_out = out / "figures"
    if figures_out.exists():
        shutil.rmtree(figures_out)
    figures_out.mkdir()
    for png in sorted(figures_dir.glob("*.png")):
        shutil.copyfile(png, figures_out / png.name)
    record = provenance(view, source, chain)
    (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    return [*ABLATION_FILES, METRICS_JSON, "provenance.json",
            *(f"figures/{png.name}" for png in sorted(figures_out.glob("*.png")))]
