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

import numpy as np
import pandas as pd

from ..data.manifest import labelled_subsets, read_dataset
from ..errors import UserError
from .registry import stage
from .views import result_keys

ABLATION_FILES = ("ablation.md", "ablation.csv", "ablation.tex", "claims.md", "claims.csv", "claims.tex",
                  "reference.md", "reference.csv", "published.md", "per_landmark.csv", "by_aop_range.csv",
                  "confidence.csv", "coverage.csv", "coverage.md", "flagging.csv")
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


@stage("ablation", reads=["preset", "variants", "encoders.hrnet", "encoders.resnet", "evaluate", "seed",
                          "data.pixel_spacing_mm"],
       inputs=("dataset", "split", "evaluations"))
def ablation(view, *, dataset, split, evaluations: list[str], out):
    """Table 2 of our run over every seed, the paper's claims tested, where the error is, and the
    DVC metrics."""
    from ..geometry import LANDMARKS
    from ..report import analysis
    from ..report import tables as tab

    _, _, source = read_dataset(dataset)
    runs = _evaluations(evaluations)
    study = _study(view, split, runs)
    ev, out = view["evaluate"], Path(out)
    numbers = analysis.variant_table(study, ev["confidence"], ev["success_radii"], ev["success_radii_mm"],
                                     view["data"]["pixel_spacing_mm"])
    references = [name for name, v in view["variants"].items() if v.get("reference")]
    paper_rows = [name for name in view["variants"] if name not in references]
    ranks = {metric: analysis.significant_ranks(study, metric, ev["confidence"], ev["alpha"], paper_rows)
             for metric in analysis.METRICS}
    names = _encoder_names(view)
    table = tab.ablation_table(view["variants"], numbers, ranks, names)
    counts = dict(n_seeds=len(study.seeds), n_groups=study.n_groups, n_frames=len(study.frames))
    text = tab.caption(source, view["preset"], names, **counts, confidence=ev["confidence"],
                       alpha=ev["alpha"])
    table.to_csv(out / "ablation.csv", index=False)
    (out / "ablation.md").write_text(tab.render(table, "md", text))
    (out / "ablation.tex").write_text(tab.render(table, "tex", text))

    claims = analysis.claims_table(study, tab.published_claims(), tab.published_table2(), ev["confidence"],
                                   ev["alpha"], ev["equivalence_margin"], tab.pixel_scale(source))
    claims_text = tab.claims_caption(**counts, confidence=ev["confidence"], alpha=ev["alpha"],
                                     margins=ev["equivalence_margin"], n_claims=len(claims))
    claims.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(tab.render_claims(claims, "md", claims_text))
    (out / "claims.tex").write_text(tab.render_claims(claims, "tex", claims_text))
    (out / "published.md").write_text(tab.published_markdown())
    reference = analysis.reference_table(study, tab.published_method(), references, ev["confidence"])
    reference.to_csv(out / "reference.csv", index=False)
    (out / "reference.md").write_text(tab.render_reference(reference, "md", (
        "The paper's full method against the organisers' baseline design (a plain U-Net heatmap regressor "
        "trained on the same frames with the same budget, seeds and objective): paired differences "
        f"(negative: the method is better), {ev['confidence']:.0%} intervals over seeds and acquisitions, "
        "unadjusted p-values.")))

    landmark_columns = [c for c in numbers.columns if c.startswith(("re_", "within_"))]
    numbers[["variant", *landmark_columns]].to_csv(out / "per_landmark.csv", index=False)
    analysis.by_aop_range(study, ev["aop_ranges"]).to_csv(out / "by_aop_range.csv", index=False)
    analysis.confidence_table(study).to_csv(out / "confidence.csv", index=False)
    coverage = analysis.coverage_table(study, ev["confidence"], ev["coverage"], _calibration_acquisitions(runs),
                                       ev["aop_decision_deg"])
    coverage.to_csv(out / "coverage.csv", index=False)
    (out / "coverage.md").write_text(tab.render_coverage(coverage, tab.coverage_caption(
        ev["coverage"], ev["confidence"], ev["aop_decision_deg"])))
    analysis.flagging_table(study, ev["flag_above_px"], ev["flag_error_px"]).to_csv(out / "flagging.csv", index=False)
    summary = {row["variant"]: {"mre": row["mre_mean"], "aop_mae": row["aop_mae_mean"],
                                **{f"re_{n}": row[f"re_{n}_mean"] for n in LANDMARKS}}
               for _, row in numbers.iterrows()}
    (out / METRICS_JSON).write_text(json.dumps(summary, indent=1) + "\n")


def _study(view, split, runs: dict[str, list[dict]]):
    """Every evaluation's per-frame table (``runs``: ``_evaluations``) with the split's
    acquisition groups."""
    from ..data.manifest import read_splits
    from ..report.analysis import Study

    groups = read_splits(split).set_index("filename")["group"]
    tables: dict[str, dict[int, pd.DataFrame]] = {}
    for variant, metrics in runs.items():
        for run in metrics:
            table = pd.read_csv(Path(run["folder"]) / PREDICTIONS_CSV)
            table["group"] = groups.loc[table["filename"]].to_numpy()
            tables.setdefault(variant, {})[int(run["seed"])] = table
    return Study.from_tables(tables, view["variants"])


def _calibration_acquisitions(runs: dict[str, list[dict]]) -> int:
    """How many validation acquisitions calibrated the radii (the same split for every run)."""
    counts = {run["coverage"]["calibration_acquisitions"] for metrics in runs.values() for run in metrics}
    if len(counts) != 1:
        raise UserError(f"the evaluations were calibrated on different numbers of acquisitions ({sorted(counts)}); "
                        "rerun calibrate and evaluate")
    return counts.pop()


def _dvclive_history(folder: Path) -> pd.DataFrame:
    """Merge dvclive's per-metric TSVs (step + value) into one table per run."""
    frames = []
    for tsv in sorted((folder / "dvclive" / "plots" / "metrics").rglob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        value = [c for c in df.columns if c not in ("step", "timestamp")][0]
        name = str(tsv.relative_to(folder / "dvclive" / "plots" / "metrics").with_suffix(""))
        frames.append(df[["step", value]].rename(columns={value: name}).set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})


@stage("figures", reads=["preset", "variants", "report", "model.heatmap_sigma", "model.image_size"],
       inputs=("dataset", "split", "ablation", "evaluations", "finetuned", "pretrained"))
def figures(view, *, dataset, split, ablation, evaluations: list[str], finetuned: list[str],
            pretrained: list[str], out):
    """The report's figures and a caption for each (what it shows, on what data, n)."""
    import torch

    from ..data.images import load_for_model, read_grey
    from ..geometry import LANDMARKS
    from ..models.codec import HeatmapCodec
    from ..report import figures as fig

    out = Path(out)
    size, sigma = view["model"]["image_size"], view["model"]["heatmap_sigma"]
    _, _, source = read_dataset(dataset)
    study = _study(view, split, _evaluations(evaluations))
    where = (f"{source['name']}, preset '{view['preset']}': {len(study.frames)} held-out frames from "
             f"{study.n_groups} acquisitions, {len(study.seeds)} seed(s)")
    captions = {}

    test = labelled_subsets(dataset, split)["test"]
    frame = test.iloc[0]
    image, resize = load_for_model(frame["image_path"], size)
    points = resize.to_model(frame[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(3, 2))
    heatmaps = HeatmapCodec(size, sigma, 1.0).encode(torch.as_tensor(points, dtype=torch.float32)[None])[0]
    fig.gaussian_targets(image, heatmaps.numpy(), points, out / "fig4_target_heatmaps.png")
    captions["fig4_target_heatmaps"] = (
        f"Gaussian target heatmaps of Eq. 18 (sigma {sigma:g} px at the {size}-px model input) on one held-out "
        f"frame ({frame['filename']}), as in the paper's Fig. 4.")

    summaries = [json.loads((Path(folder) / "summary.json").read_text()) for folder in finetuned]
    chosen, seed, _, _ = _chosen(view, finetuned)
    table = study.tables[chosen][study.seeds.index(seed)].copy()
    table["image_path"] = test.set_index("filename")["image_path"].loc[table["filename"]].to_numpy()
    n = view["report"]["figure_frames"]
    spread = table.groupby("group", sort=False).head(1)
    spread = spread.iloc[np.unique(np.linspace(0, len(spread) - 1, min(n, len(spread))).round().astype(int))]
    fig.prediction_grid(spread, read_grey, f"{chosen} (seed {seed}) on held-out frames, one per acquisition",
                        out / "fig5_predictions.png")
    captions["fig5_predictions"] = (
        f"Predictions of {chosen}, the paper variant with the lowest validation MRE (mean over seeds; never "
        f"chosen on the test split), seed {seed}: one held-out frame per acquisition, circles true and crosses "
        f"predicted landmarks, per-frame MRE in px. {where}.")
    worst = table.sort_values("mre", ascending=False).groupby("group", sort=False).head(1).head(max(n // 2, 5))
    fig.prediction_grid(worst, read_grey, f"{chosen} (seed {seed}): the worst held-out frame of each acquisition",
                        out / "failure_cases.png")
    captions["failure_cases"] = (
        f"Failure cases of {chosen} (seed {seed}): the held-out frames with the largest MRE, one per acquisition, "
        f"worst first. {where}.")

    pooled = {name: pd.concat(tables, ignore_index=True) for name, tables in study.tables.items()}
    mean_prediction = {name: _mean_over_seeds(tables) for name, tables in study.tables.items()}
    fig.aop_agreement(mean_prediction, out / "aop_agreement.png")
    captions["aop_agreement"] = (
        "Predicted against true AoP per variant (the prediction averaged over seeds for each frame), shared axes; "
        f"each panel gives the Bland-Altman bias and 95% limits of agreement in degrees. {where}.")
    fig.error_distributions(pooled, out / "error_distributions.png")
    captions["error_distributions"] = (
        f"Radial error per landmark (px) and AoP error (deg) per variant, all frames of all seeds. {where}.")

    histories: dict[str, list] = {}
    for folder, summary in zip(map(Path, finetuned), summaries):
        histories.setdefault(summary["variant"], []).append(_dvclive_history(folder))
    fig.training_curves({name: histories[name] for name in view["variants"]}, out / "training_curves.png")
    captions["training_curves"] = (
        "Fine-tuning per epoch: the weighted terms of Eq. 17, the discriminator's loss (Eq. 11, adversarial variant "
        "only) and the validation MRE (px); lines are the mean over seeds, bands the lowest to highest seed.")
    losses: dict[str, list] = {}
    for folder in map(Path, pretrained):  # results/pretrain/<method>/seed<seed>
        losses.setdefault(folder.parent.name, []).append(pd.read_csv(folder / "losses.csv"))
    fig.pretraining_curves(dict(sorted(losses.items())), out / "pretraining_curves.png")
    captions["pretraining_curves"] = (
        "Self-supervised pretraining loss per optimiser step (moving average), one line per seed: MoCoV2's InfoNCE "
        "(Eq. 4) for the HRNet and ResNet encoders, masked MSE for the Attention U-Net.")
    fig.where_the_error_is(pd.read_csv(Path(ablation) / "per_landmark.csv"),
                           pd.read_csv(Path(ablation) / "by_aop_range.csv"), out / "where_the_error_is.png")
    captions["where_the_error_is"] = (
        "Where the error is: radial error per landmark with 95% intervals over seeds and acquisitions, and MRE and "
        f"AoP MAE by range of the true AoP (n frames per range below each tick). {where}.")
    (out / "captions.json").write_text(json.dumps({"chosen_variant": chosen, "chosen_seed": seed,
                                                   "figures": captions}, indent=1) + "\n")


def _chosen(view, finetuned: list[str]):
    """The paper variant with the best validation MRE, and its first seed: ``analysis.chosen_on_validation``."""
    from ..report.analysis import chosen_on_validation

    rows = []
    for folder in map(Path, finetuned):  # results/finetune/<variant>/seed<seed>
        summary = json.loads((folder / "summary.json").read_text())
        rows.append({"variant": summary["variant"], "seed": int(folder.name.removeprefix("seed")),
                     "val_mre": summary["final_val_mre"], "folder": str(folder)})
    paper_rows = [name for name, v in view["variants"].items() if not v.get("reference")]
    return chosen_on_validation(pd.DataFrame(rows), paper_rows) + (pd.DataFrame(rows),)


@stage("export", reads=["variants"], inputs=("finetuned", "calibrations"))
def export_model(view, *, finetuned: list[str], calibrations: list[str], out):
    """The study ends with a usable model: the paper variant with the best validation MRE (never
    chosen on the test split) as a model folder (model.pt and its calibration.json, what
    `iugc predict --model reports/model` reads), TorchScript, ONNX and a challenge submission
    carrying the same calibration."""
    from ..conformal import CALIBRATION_FILE
    from ..export import export_onnx, export_submission, export_torchscript
    from ..inference import load_calibration, load_trained_model
    from ..train.predict import MODEL_FILE

    variant, seed, means, table = _chosen(view, finetuned)
    folder = Path(table[(table["variant"] == variant) & (table["seed"] == seed)]["folder"].iloc[0])
    calibration = _calibration_of(calibrations, variant, seed)
    out = Path(out)
    shutil.copyfile(folder / MODEL_FILE, out / MODEL_FILE)
    shutil.copyfile(calibration, out / CALIBRATION_FILE)
    load_calibration(out / MODEL_FILE)  # refuses a calibration of other weights
    trained = load_trained_model(out / MODEL_FILE, device="cpu")
    export_torchscript(trained, out / "landmarks.ts")
    export_onnx(trained, out / "landmarks.onnx")
    export_submission(out, out / "submission", description=f"seed {seed}, variant chosen by validation MRE")
    (out / "chosen.json").write_text(json.dumps({
        "variant": variant, "seed": seed, "model": str(folder), "calibration": str(calibration.parent),
        "why": "lowest validation MRE (mean over seeds) among the paper's variants; its first seed (the best seed on "
               "validation would be the one its calibration frames flatter)",
        "validation_mre": {name: float(value) for name, value in means.items()}}, indent=1) + "\n")


def _calibration_of(calibrations: list[str], variant: str, seed: int) -> Path:
    from ..conformal import CALIBRATION_FILE

    for path in (Path(folder) / CALIBRATION_FILE for folder in calibrations):
        record = json.loads(path.read_text())
        if (record["variant"], record["seed"]) == (variant, seed):
            return path
    raise UserError(f"no calibration of {variant} seed {seed} among the calibrate stage's results")


def _mean_over_seeds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per frame: the true AoP and the predicted AoP averaged over seeds."""
    first = tables[0][["filename", "aop"]].copy()
    first["pred_aop"] = np.nanmean(np.stack([t["pred_aop"].to_numpy(float) for t in tables]), axis=0)
    return first


def _all_keys(params, wildcards) -> list[str]:
    # The report records the hash of the parameter set and checks every result against it, so it
    # reads all of it but the settings that change no result (views.SETTINGS).
    return result_keys(params)


@stage("report", reads=_all_keys, inputs=("dataset", "split", "filter", "ablation", "figures", "model", "results"),
       owns_out=False)
def report(view, *, dataset, split, filter, ablation, figures, model, results: list[str], out):
    """Check every result of the study against its sources and parameters, then write reports/:
    the tables, the figures, the provenance and report.html."""
    from ..data.manifest import read_splits
    from ..report import document
    from ..report.provenance import provenance
    from ..report.tables import published_method
    from .verify import verify_chain

    chain = verify_chain(view, [dataset, split, filter, *results, ablation, figures, model])
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
    page = document.build(
        out, data=source, splits=read_splits(split), pool=json.loads((Path(filter) / "metrics.json").read_text()),
        captions=json.loads((figures_dir / "captions.json").read_text()), provenance=record, params=view,
        method=published_method(), chosen=json.loads((Path(model) / "chosen.json").read_text()),
        downloads=[out / name for name in (*ABLATION_FILES, METRICS_JSON, "provenance.json")])
    (out / "report.html").write_text(page)
    return [*ABLATION_FILES, METRICS_JSON, "provenance.json", "report.html",
            *(f"figures/{png.name}" for png in sorted(figures_out.glob("*.png")))]
