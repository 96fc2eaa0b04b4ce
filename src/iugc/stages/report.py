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

ABLATION_FILES = ("ablation.md", "ablation.csv", "ablation.tex", "claims.md", "claims.csv", "claims.tex",
                  "published.md", "per_landmark.csv", "by_aop_range.csv")
METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "predictions.csv"


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


@stage("ablation", reads=["preset", "variants", "encoders.hrnet", "encoders.resnet", "evaluate", "seed"],
       inputs=("dataset", "split", "evaluations"))
def ablation(view, *, dataset, split, evaluations: list[str], out):
    """Table 2 of our run over every seed, the paper's claims tested, where the error is, and the
    DVC metrics."""
    from ..geometry import LANDMARKS
    from ..report import analysis
    from ..report import tables as tab

    _, _, source = read_dataset(dataset)
    study = _study(view, split, evaluations)
    ev, out = view["evaluate"], Path(out)
    draws = study.draws(ev["bootstrap_samples"], view["seed"])
    numbers = analysis.variant_table(study, draws, ev["confidence"], ev["success_radii"])
    ranks = {metric: analysis.significant_ranks(study, metric, draws, ev["confidence"], ev["alpha"])
             for metric in analysis.METRICS}
    names = _encoder_names(view)
    table = tab.ablation_table(view["variants"], numbers, ranks, names)
    counts = dict(n_seeds=len(study.seeds), n_groups=study.n_groups, n_frames=len(study.frames))
    text = tab.caption(source["source"], view["preset"], names, **counts, confidence=ev["confidence"],
                       alpha=ev["alpha"])
    table.to_csv(out / "ablation.csv", index=False)
    (out / "ablation.md").write_text(tab.render(table, "md", text))
    (out / "ablation.tex").write_text(tab.render(table, "tex", text))

    claims = analysis.claims_table(study, tab.published_claims(), tab.published_table2(), draws,
                                   ev["confidence"], ev["alpha"])
    claims_text = tab.claims_caption(**counts, confidence=ev["confidence"], alpha=ev["alpha"])
    claims.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(tab.render_claims(claims, "md", claims_text))
    (out / "claims.tex").write_text(tab.render_claims(claims, "tex", claims_text))
    (out / "published.md").write_text(tab.published_markdown())

    landmark_columns = [c for c in numbers.columns if c.startswith(("re_", "within_"))]
    numbers[["variant", *landmark_columns]].to_csv(out / "per_landmark.csv", index=False)
    analysis.by_aop_range(study, ev["aop_ranges"]).to_csv(out / "by_aop_range.csv", index=False)
    summary = {row["variant"]: {"mre": row["mre_mean"], "aop_mae": row["aop_mae_mean"],
                                **{f"re_{n}": row[f"re_{n}_mean"] for n in LANDMARKS}}
               for _, row in numbers.iterrows()}
    (out / METRICS_JSON).write_text(json.dumps(summary, indent=1) + "\n")


def _study(view, split, evaluations: list[str]):
    """Every evaluation's per-frame table with the split's acquisition groups."""
    from ..data.manifest import read_splits
    from ..report.analysis import Study

    groups = read_splits(split).set_index("filename")["group"]
    runs: dict[str, dict[int, pd.DataFrame]] = {}
    for folder in evaluations:
        metrics = json.loads((Path(folder) / METRICS_JSON).read_text())
        table = pd.read_csv(Path(folder) / PREDICTIONS_CSV)
        table["group"] = groups.loc[table["filename"]].to_numpy()
        runs.setdefault(metrics["variant"], {})[int(metrics["seed"])] = table
    return Study.from_tables(runs, view["variants"])


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
       inputs=("dataset", "split", "ablation", "evaluations", "finetuned", "pretrained"))
def figures(view, *, dataset, split, ablation, evaluations: list[str], finetuned: list[str],
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
    fig.where_the_error_is(pd.read_csv(Path(ablation) / "per_landmark.csv"),
                           pd.read_csv(Path(ablation) / "by_aop_range.csv"), out / "where_the_error_is.png")


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
