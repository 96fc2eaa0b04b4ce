"""What the HTML report says, composed from the report's own files: the first section's account of
the study and its summary paragraph (written from the numbers), then every table and figure."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .analysis import VERDICTS
from .html import Section, document
from .tables import count_cell, coverage_caption

FEW_ACQUISITIONS = 10  # a test split resting on fewer is flagged: its intervals are wide for a reason


def split_counts(splits: pd.DataFrame) -> pd.DataFrame:
    """Frames and acquisitions per subset of the split table (frames outside a cap excluded)."""
    used = splits[splits["subset"] != "unused"]
    counts = used.groupby("subset").agg(frames=("filename", "count"), acquisitions=("group", "nunique"))
    return counts.reindex([s for s in ("train", "val", "test") if s in counts.index]).reset_index()


def summary_paragraph(data: Mapping, ablation: pd.DataFrame, claims: pd.DataFrame, reference: pd.DataFrame,
                      method: str, confidence: float) -> str:
    """What the study shows, in one paragraph written from its numbers."""
    row = ablation.set_index("variant").loc[method] if method in set(ablation["variant"]) else None
    parts = []
    if row is not None:
        parts.append(
            f"On {data['name']} ({int(row['n_frames'])} held-out frames from {int(row['n_groups'])} acquisition(s), "
            f"{int(row['n_seeds'])} seed(s)), the paper's full method ({method}) reached an MRE of "
            f"{row['mre_mean']:.2f} px ({confidence:.0%} interval {row['mre_lo']:.2f} to {row['mre_hi']:.2f}) and an "
            f"AoP MAE of {row['aop_mae_mean']:.2f} degrees ({row['aop_mae_lo']:.2f} to {row['aop_mae_hi']:.2f}).")
    best = ablation[~ablation["reference"]].sort_values("mre_mean").iloc[0]
    if row is None or best["variant"] != method:
        parts.append(f"The lowest mean MRE among the paper's rows was {best['variant']}'s, {best['mre_mean']:.2f} px.")
    if len(claims):
        verdicts = claims["verdict"].value_counts()
        counted = ", ".join(f"{verdicts[v]} {v}" for v in VERDICTS if verdicts.get(v, 0))
        parts.append(f"Of the paper's {len(claims)} claim tests (claim x metric): {counted} "
                     "(Holm-adjusted paired tests; see the claims table for what each verdict means).")
    for _, r in reference[reference["metric"] == "mre"].iterrows():
        if r["lo"] > 0:
            word = "worse than"
        elif r["hi"] < 0:
            word = "better than"
        else:
            word = "not distinguishable from"
        parts.append(f"On MRE the full method was {word} the organisers' U-Net baseline ({r['reference']}): "
                     f"difference {r['difference']:+.2f} px ({r['lo']:+.2f} to {r['hi']:+.2f}).")
    return " ".join(parts)


def _read(path: Path) -> pd.DataFrame:
    """A CSV the study wrote, or an empty table (a study without reference rows writes none)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=["metric", "verdict"])


def build(folder: Path, *, data: Mapping, splits: pd.DataFrame, pool: Mapping, captions: Mapping,
          provenance: Mapping, params: Mapping, method: str, chosen: Mapping, downloads: list[Path]) -> str:
    """The HTML report from ``folder`` (reports/: the tables and figures the study wrote);
    ``method`` is the paper's full method, the row the summary speaks of."""
    ablation = pd.read_csv(folder / "ablation.csv")
    claims, reference = _read(folder / "claims.csv"), _read(folder / "reference.csv")
    ev = params["evaluate"]
    counts = split_counts(splits)
    test = counts.set_index("subset").loc["test"] if "test" in set(counts["subset"]) else None
    git = provenance["git"]
    title = f"iugc study: {data['name']}, preset '{params['preset']}'"
    lead = summary_paragraph(data, ablation, claims, reference, method, ev["confidence"])

    study = Section("The study")
    study.facts({
        "data": f"{data['name']} (source '{data['source']}'): {data['n_labeled']} labelled frames, "
                + ", ".join(f"{size} px ({n})" for size, n in data.get("image_sizes", {}).items()),
        "landmarks": data["landmarks"],
        "split": "; ".join(f"{r['subset']} {r['frames']} frames from {r['acquisitions']} acquisition(s)"
                           for _, r in counts.iterrows()),
        "preset": f"{params['preset']} (encoders {params['encoders']['hrnet']}, {params['encoders']['resnet']}; "
                  f"input {params['model']['image_size']} px; {params['finetune']['epochs']} fine-tuning epochs)",
        "seeds": ", ".join(map(str, params["study"]["seeds"])),
        "commit": f"{git['commit']}" + (" (with uncommitted changes)" if git["dirty"] else " (clean)"),
        "params hash": provenance["params_hash"],
        # The sum over jobs, not the elapsed time: jobs may have run side by side.
        "compute time": f"{provenance['total_stage_seconds'] / 60:.1f} min, summed over the jobs (elapsed time is "
                        f"less when jobs ran side by side); machine: {provenance['device']['cpu_count']} "
                        f"CPU(s){', ' + provenance['device']['gpu'] if provenance['device'].get('gpu') else ''}",
    })
    if test is not None and test["acquisitions"] < FEW_ACQUISITIONS:
        study.text(f"The test split rests on {test['acquisitions']} acquisition(s) only (fewer than {FEW_ACQUISITIONS}): "
                   "its intervals are wide, and its numbers predict unseen acquisitions poorly.", css="warn")
    if data["source"] != "iugc2025" or params["preset"] != "paper":
        study.text("Not the paper's setting: these numbers are not comparable with the published ones; the claims "
                   "table says which of the paper's effects this run reproduces.", css="small")

    sections = [study]
    claims_section = Section("Claims of the paper")
    claims_section.text(_first_line(folder / "claims.md"), css="small")
    if len(claims):
        shown = claims[["text", "better", "worse", "metric", "difference", "lo", "hi", "p_holm",
                        "paper_direction_bound", "mde", "paper_difference_here", "acquisitions_needed_3_seeds",
                        "acquisitions_needed_5_seeds", "acquisitions_needed_10_seeds", "verdict"]].rename(columns={
            "text": "claim (Sec. 4)", "difference": "ours: better - worse", "lo": "CI low (unadj.)",
            "hi": "CI high (unadj.)", "p_holm": "p (Holm)", "paper_direction_bound": "paper-direction effect below",
            "mde": "detectable (80 %)", "paper_difference_here": "paper, our px",
            "acquisitions_needed_3_seeds": "acq. needed, 3 seeds", "acquisitions_needed_5_seeds": "5 seeds",
            "acquisitions_needed_10_seeds": "10 seeds"})
        for column in ("acq. needed, 3 seeds", "5 seeds", "10 seeds"):  # counts, '-' for none up to 2000
            shown[column] = shown[column].map(count_cell)
        claims_section.table(shown)
    sections.append(claims_section)

    table = Section("Ablation (Table 2)")
    table.text(_first_line(folder / "ablation.md"), css="small")
    cells = {}
    shown = ablation[["variant", "Encoder", "Pretrain", "Attn", "Adv.", "Output"]].copy()
    for metric, label in (("mre", "MRE (px)"), ("aop_mae", "AoP MAE (deg)")):
        shown[label] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(ablation[f"{metric}_mean"], ablation[f"{metric}_sd_seeds"])]
        shown[f"{label} CI"] = [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(ablation[f"{metric}_lo"], ablation[f"{metric}_hi"])]
        for i, rank in enumerate(ablation[f"{metric}_rank"]):
            if rank:
                cells[(i, label)] = "b" if rank == 1 else "u"
    shown["undefined AoP"] = ablation["aop_undefined"]
    table.table(shown, bold=cells)
    sensitivity = pd.DataFrame({
        "variant": ablation["variant"],
        "MRE, frame-weighted": ablation["mre_mean"].round(2),
        "MRE, acquisition-weighted": ablation["mre_acquisition_mean"].round(2),
        "AoP MAE, frame-weighted": ablation["aop_mae_mean"].round(2),
        "AoP MAE, acquisition-weighted": ablation["aop_mae_acquisition_mean"].round(2),
        "AoP MAE, defined frames": ablation["aop_mae_defined"].round(2),
        "AoP failure rate": ablation["aop_failure_rate"].round(4)})
    table.table(sensitivity, caption=(
        "Sensitivity: the headline means count every frame once (the paper's Eq. 19-20); counting every "
        "acquisition once instead shows whether a few long acquisitions drive them. AoP MAE over the frames "
        "whose predicted AoP is defined, and the share where it is not (counted at the worst error above)."))
    if len(reference):
        table.text(_first_line(folder / "reference.md"), css="small")
        table.table(reference.rename(columns={"difference": "method - reference", "lo": "CI low", "hi": "CI high"}))
    sections.append(table)

    where = Section("Where the error is")
    per_landmark = pd.read_csv(folder / "per_landmark.csv")
    columns = ["variant"] + [c for c in per_landmark.columns if c.endswith(("_mean", "_lo", "_hi")) or c.startswith("within_")]
    where.table(per_landmark[columns], caption="Radial error per landmark in px (mean over seeds and frames, 95% interval "
                "over seeds and acquisitions), and the share of landmarks within each radius (success detection rate).")
    if not any(c.endswith("mm") for c in per_landmark.columns):
        where.text("Success rates in mm are not given: the pixel spacing of these frames is not known "
                   "(set data.pixel_spacing_mm when it is).", css="small")
    where.table(pd.read_csv(folder / "by_aop_range.csv"), caption=(
        "MRE (px) and AoP MAE (deg) by range of the true AoP ([low, high), the last range closed), with the "
        "frames and acquisitions each rests on."))
    where.table(pd.read_csv(folder / "confidence.csv"), caption=(
        "Does the confidence mean anything? Rank correlation (Spearman) between a landmark's spread (the standard "
        "deviation of the distribution its heatmap's soft-argmax reads, which `iugc predict` reports) and its radial "
        "error on the held-out frames, all seeds: near 0, the spread says nothing; the higher, the better it flags "
        "frames to check."))
    figures_dir = folder / "figures"
    if (figures_dir / "where_the_error_is.png").is_file():
        where.figure(figures_dir / "where_the_error_is.png", captions["figures"]["where_the_error_is"])
    sections.append(where)
    if (folder / "coverage.csv").is_file():
        sections.append(confidence_section(pd.read_csv(folder / "coverage.csv"), pd.read_csv(folder / "flagging.csv"),
                                           ev))

    figure_section = Section("Figures")
    for name, caption in captions["figures"].items():
        if name != "where_the_error_is" and (figures_dir / f"{name}.png").is_file():
            figure_section.figure(figures_dir / f"{name}.png", caption)
    sections.append(figure_section)

    use = Section("Use the trained model")
    use.text(f"reports/model/ holds {chosen['variant']} (seed {chosen['seed']}), chosen because it had the "
             f"{chosen['why']}: model.pt with its calibration.json, TorchScript (landmarks.ts) and ONNX "
             "(landmarks.onnx) of the whole predictor, and a challenge submission carrying the same calibration "
             "(submission/, submission.zip). `iugc predict --model reports/model FRAMES... --out DIR` gives landmarks, "
             f"AoP, each landmark's {ev['coverage']:.0%} radius and the AoP's {ev['coverage']:.0%} interval; "
             "`--flag-above R` marks frames with a radius above R px (choose R from the flagging table above).")
    use.table(pd.DataFrame({"variant": list(chosen["validation_mre"]),
                            "validation MRE (px, mean over seeds)": list(chosen["validation_mre"].values())}))
    sections.append(use)

    data_section = Section("Data behind the pretraining")
    data_section.facts({key: str(value) for key, value in pool.items() if not isinstance(value, dict)})
    sections.append(data_section)

    prov = Section("Provenance")
    prov.facts({"packages": ", ".join(f"{k} {v}" for k, v in provenance["packages"].items() if v),
                "platform": provenance["device"]["platform"], "python": provenance["device"]["python"]})
    jobs = pd.DataFrame([{"result": path, "job": entry["job"], "seconds": entry["seconds"], "stamp": entry["stamp"][:19]}
                         for path, entry in provenance["results"].items()])
    prov.table(jobs, caption="Every result the report rests on: the job that made it, its wall time, and the digest of "
                             "its stamp (the stamp lists the hash of every file the job wrote and of every input it read).")
    sections.append(prov)
    sections.append(Section("Downloads").downloads(downloads))
    return document(title, lead, sections)


def _with_interval(table: pd.DataFrame, column: str) -> list[str]:
    return [f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in
            zip(table[column], table[f"{column}_lo"], table[f"{column}_hi"])]


def confidence_section(coverage: pd.DataFrame, flagging: pd.DataFrame, ev: Mapping) -> Section:
    """Calibrated radii and AoP intervals: the coverage achieved on the test split beside the
    target, how wide they are, and what flagging on the radius finds."""
    section = Section("Calibrated confidence")
    shown = coverage[["variant", "seed", "target"]].copy()
    shown["by chance"] = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(coverage["chance_lo"], coverage["chance_hi"])]
    for key, label in (("ps1", "PS1"), ("ps2", "PS2"), ("fh1", "FH1"), ("aop", "AoP")):
        shown[f"{label} coverage"] = _with_interval(coverage, f"coverage_{key}")
    for key, label in (("ps1", "PS1"), ("ps2", "PS2"), ("fh1", "FH1")):
        shown[f"{label} mean radius (px)"] = coverage[f"mean_radius_{key}"].round(2)
    shown["AoP mean width (deg)"] = coverage["mean_aop_width"].round(2)
    decision = f"{ev['aop_decision_deg']:g} deg"
    shown[f"decides >= {decision}"] = coverage["decides_above"].round(2)
    shown[f"decides < {decision}"] = coverage["decides_below"].round(2)
    shown["deciding: on the true side"] = coverage["decisive_right"].round(2)
    shown["point on the true side"] = coverage["point_right"].round(2)
    section.table(shown, caption=coverage_caption(ev["coverage"], ev["confidence"], ev["aop_decision_deg"]))
    section.table(flagging[["variant", "flag_above_px", "n_flagged", "precision", "recall", "n_wrong", "n_frames"]],
                  caption=(
        f"Choosing `iugc predict --flag-above R`: frames with a landmark more than {ev['flag_error_px']:g} px off "
        "(evaluate.flag_error_px) are the ones to look at (n_wrong of n_frames, all seeds); flagging the frames whose "
        "largest calibrated radius exceeds R finds that share of them (recall), and that share of the flagged frames "
        "are such frames (precision). Pick the largest R whose recall you can accept."))
    return section


def _first_line(path: Path) -> str:
    return path.read_text().split("\n\n", 1)[0].strip() if path.is_file() else ""
