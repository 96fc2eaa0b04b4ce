"""The report's tables: the ablation in the layout of the paper's Table 2, the paper's claims as
tested here, and the published numbers for reference. Markdown and LaTeX from one DataFrame."""
from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import numpy as np
import pandas as pd
import yaml

ENCODER_NAMES = {"hrnet": "HRNet", "resnet": "ResNet", "attention_unet": "Attention UNet",
                 "unet": "U-Net (reference)"}
PRETRAIN_NAMES = {"none": "-", "moco": "MoCoV2", "mae": "Masked AE"}
# What kind of data each source is, beside the name the obtain stage recorded for it.
SOURCE_NOTES = {
    "phantom": "synthetic frames, NOT the IUGC 2025 data",
    "psfhs": "PSFHS frames, landmarks from its masks, NOT the IUGC 2025 test set",
    "iugc2025": "a tree in IUGC 2025 layout, held-out split of its labelled frames",
}


def _published() -> dict:
    return yaml.safe_load(resources.files("iugc.presets").joinpath("published.yaml").read_text())


def published_table2() -> dict:
    return _published()["table2"]


def published_claims() -> list[dict]:
    return _published()["claims"]


def published_method() -> str:
    return _published()["method"]


def pixel_scale(data: Mapping) -> float:
    """Our pixels per pixel of the paper's frames: the side of the study's most common frame size
    (the obtain stage's record) over the paper's. Rescales the paper's MRE differences."""
    sizes = data.get("image_sizes") or {}
    if not sizes:
        return 1.0
    most_common = max(sizes, key=sizes.get)
    width, height = (int(v) for v in most_common.split("x"))
    return max(width, height) / float(_published()["image_side"])


def ablation_table(variants: Mapping, numbers: pd.DataFrame, ranks: Mapping[str, Mapping[str, int]],
                   encoder_names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per variant in params order: its configuration (Table 2's columns), our numbers
    (``analysis.variant_table``) and the emphasis each metric earned (``ranks``)."""
    rows = []
    by_name = numbers.set_index("variant")
    for name, v in variants.items():
        rows.append({
            "variant": name,
            "Encoder": (encoder_names or {}).get(v["encoder"], ENCODER_NAMES[v["encoder"]]),
            "Pretrain": PRETRAIN_NAMES[v["pretrain"]],
            "Attn": "yes" if v["attention"] else "-",
            "Adv.": "yes" if v["adversarial"] else "-",
            "Output": v["output"].capitalize(),
            "reference": bool(v.get("reference", False)),
            **by_name.loc[name].to_dict(),
            **{f"{metric}_rank": ranks[metric][name] for metric in ranks},
        })
    return pd.DataFrame(rows)


def _style(kind: str):
    if kind == "md":
        return (lambda t: f"**{t}**"), (lambda t: f"<u>{t}</u>"), "–", "-", "±"
    return (lambda t: f"\\textbf{{{t}}}"), (lambda t: f"\\underline{{{t}}}"), "--", "--", "$\\pm$"


def _share(value: float) -> str:
    """A share in two decimals; '-' where there is nothing to take it of (NaN)."""
    return "-" if np.isnan(value) else f"{value:.2f}"


def _markdown(caption: str, header: list[str], lines: list[list[str]], notes: str = "") -> str:
    out = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out + ([""] + [notes] if notes else [])) + "\n"


def _latex(caption: str, header: list[str], lines: list[list[str]], align: str) -> str:
    def tex(text: str) -> str:  # the LaTeX table uses booktabs rules
        return str(text).replace("%", "\\%").replace("_", "\\_")

    out = ["\\begin{table}[t]", "\\centering", f"\\caption{{{tex(caption)}}}", f"\\begin{{tabular}}{{{align}}}",
           "\\toprule", " & ".join(tex(h) for h in header) + " \\\\", "\\midrule"]
    out += [" & ".join(c if c.startswith("\\") else tex(c) for c in cells) + " \\\\" for cells in lines]
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def render(table: pd.DataFrame, kind: str, caption: str) -> str:
    """Markdown or LaTeX of the ablation: mean ± sd over seeds, the interval, emphasis only
    where a difference is significant."""
    bold, underline, dash, none, pm = _style(kind)

    def value(row, metric):
        text = f"{row[f'{metric}_mean']:.2f} {pm} {row[f'{metric}_sd_seeds']:.2f}"
        rank = row.get(f"{metric}_rank", 0)
        return bold(text) if rank == 1 else underline(text) if rank == 2 else text

    header = ["Encoder", "Pretrain", "Attn", "Adv.", "Output", "MRE (px)", "95% CI", "AoP MAE (deg)", "95% CI"]
    lines = []
    for _, r in table.iterrows():
        flags = [none if r[c] == "-" else r[c] for c in ("Pretrain", "Attn", "Adv.")]
        lines.append([r["Encoder"], *flags, r["Output"],
                      value(r, "mre"), f"{r['mre_lo']:.2f}{dash}{r['mre_hi']:.2f}",
                      value(r, "aop_mae"), f"{r['aop_mae_lo']:.2f}{dash}{r['aop_mae_hi']:.2f}"])
    undefined = [f"{r['variant']} {int(r['aop_undefined'])}" for _, r in table.iterrows() if r["aop_undefined"]]
    notes = ("Frames whose predicted AoP is undefined (two points coincide), counted at the largest "
             f"error possible for them: {', '.join(undefined)}." if undefined else
             "No predicted AoP was undefined.")
    if kind == "md":
        return _markdown(caption, header, lines, notes)
    return _latex(caption + " " + notes, header, lines, "lllll" + "r" * 4)


def count_cell(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{int(value)}"


def render_claims(claims: pd.DataFrame, kind: str, caption: str) -> str:
    """Markdown or LaTeX of the claims table: the verdict, and what it rests on."""
    _, _, dash, _, _ = _style(kind)
    header = ["Claim (paper, Sec. 4)", "Compared", "Metric", "Ours: better - worse", "95% CI (unadj.)", "p (Holm)",
              "Paper-direction effect below (95%)", "Detectable (80%)", "Paper here", "Acq. needed (3/5/10 seeds)",
              "Verdict"]
    lines = []
    for _, r in claims.iterrows():
        needed = "/".join(count_cell(r.get(f"acquisitions_needed_{s}_seeds")) for s in (3, 5, 10))
        lines.append([r["text"], f"{r['better']} vs {r['worse']}", r["metric"].replace("_", " "),
                      f"{r['difference']:+.2f}", f"{r['lo']:+.2f}{dash}{r['hi']:+.2f}",
                      f"{r['p_holm']:.3f}", f"{r['paper_direction_bound']:.2f}", f"{r['mde']:.2f}",
                      f"{r['paper_difference_here']:+.2f}", needed, r["verdict"]])
    if kind == "md":
        return _markdown(caption, header, lines)
    return _latex(caption, header, lines, "lllrrrrrrrl")


def render_plan(plan: pd.DataFrame, power: float) -> str:
    """Markdown of ``analysis.plan_from_claims``: test acquisitions needed per seed count."""
    seeds = [c for c in plan.columns if c.endswith(" seeds")]
    header = ["Claim", "Metric", "Paper, our px", "Verdict now", *[f"acq. for {c}" for c in seeds]]
    lines = [[r["claim"], r["metric"].replace("_", " "), f"{r['paper_difference_here']:+.2f}", r["verdict"],
              *[count_cell(r[c]) for c in seeds]] for _, r in plan.iterrows()]
    return _markdown(f"Test acquisitions (like this study's) needed to detect the paper's difference with "
                     f"{power:.0%} power at Holm's strictest level ('-': not reachable with that many seeds, "
                     "up to 2000 acquisitions).", header, lines)


def render_reference(table: pd.DataFrame, kind: str, caption: str) -> str:
    _, _, dash, _, _ = _style(kind)
    header = ["Method", "Reference", "Metric", "Method - reference", "95% CI", "p"]
    lines = [[r["method"], r["reference"], r["metric"].replace("_", " "), f"{r['difference']:+.2f}",
              f"{r['lo']:+.2f}{dash}{r['hi']:+.2f}", f"{r['p']:.3f}"] for _, r in table.iterrows()]
    if kind == "md":
        return _markdown(caption, header, lines)
    return _latex(caption, header, lines, "lllrrr")


def published_markdown() -> str:
    """The paper's Table 2, for reference (its data, scale and test set, not ours)."""
    table2 = published_table2()
    lines = [[name, f"{v['mre']:.2f}", f"{v['aop_mae']:.2f}"] for name, v in table2.items()]
    return _markdown(f"Published Table 2 ({_published()['source']}): IUGC 2025 test set, 512 x 512 "
                     "frames, HRNet-W48 / ResNet-50, 400 epochs.", ["variant", "MRE (px)", "AoP MAE (deg)"], lines)


def caption(data: Mapping, preset: str, encoder_names: Mapping[str, str], n_seeds: int, n_groups: int,
            n_frames: int, confidence: float, alpha: float) -> str:
    """The ablation's caption; ``data`` is the record of the obtain stage (what the numbers were
    computed on: its name and source), not parameters that could have changed since."""
    encoders = ", ".join(f"{k} = {v}" for k, v in encoder_names.items())
    return (f"Ablation on {data['name']} ({SOURCE_NOTES[data['source']]}); preset '{preset}' ({encoders}). "
            f"MRE in pixels of the original images, AoP MAE in degrees, on our held-out split: mean ± sd over {n_seeds} "
            f"seed(s), {n_frames} test frames from {n_groups} acquisition(s); {confidence:.0%} intervals "
            "over seeds and acquisitions (crossed analysis, t with Satterthwaite degrees of freedom). "
            "Bold: best, and better than the second by a "
            f"paired test at p < {alpha:g}; underlined: second, and better than the third. "
            "Not comparable with the paper's numbers unless data and preset are the paper's; the "
            "claims table says which of the paper's effects this run reproduces.")


def claims_caption(n_seeds: int, n_groups: int, n_frames: int, confidence: float, alpha: float,
                   margins: Mapping[str, float], n_claims: int) -> str:
    text = (f"The paper's claims (Sec. 4) tested on this run: paired differences better - worse (negative "
            f"means the effect goes the paper's way) over {n_seeds} seed(s) and {n_frames} test frames from "
            f"{n_groups} acquisition(s). Intervals and p-values come from a crossed seed x acquisition analysis "
            "of the per-frame differences (t with Satterthwaite degrees of freedom; 95 % intervals covered "
            "95-97 % of true differences in simulated studies of 3 seeds and 10 acquisitions); intervals are "
            f"unadjusted, p-values Holm-adjusted over the {n_claims} rows. Supported / reversed: adjusted p < "
            f"{alpha:g} in / against the paper's direction; absent at this scale: the difference lies within "
            f"+-{margins['mre']:g} px (MRE) or +-{margins['aop_mae']:g} deg (AoP) by two one-sided tests "
            "(Holm-adjusted); underpowered: the smallest difference this study detects with 80 % power at "
            f"alpha/{n_claims} (Holm's strictest level) exceeds that margin; inconclusive: otherwise. 'Paper-"
            "direction effect below': any effect in the paper's direction is smaller than this with 95 % "
            "confidence. 'Paper here': the published difference (IUGC 2025) in this study's pixels; "
            "'acq. needed': test acquisitions like these that would detect it with 80 % power at that level "
            "('-': none up to 2000).")
    if n_seeds < 2 or n_groups < 3:
        text += (f" This study cannot support any claim: it has {n_seeds} seed(s) and {n_groups} test "
                 "acquisition(s), and a verdict needs at least 2 seeds and 3 acquisitions.")
    return text


def coverage_caption(coverage: float, confidence: float, decision_deg: float) -> str:
    return (f"Coverage achieved on the test split by the radii and AoP intervals calibrated on the validation split "
            f"(split-conformal at {coverage:.0%}, one frame per acquisition): the share of test frames whose true "
            f"point lies within its landmark's radius, and whose true AoP lies within its interval, with "
            f"{confidence:.0%} intervals over seeds and acquisitions (per seed: over acquisitions; cut to 0-1); seed "
            "'all' pools the seeds. 'By chance': where one run's coverage lands nine times in ten at this study's size "
            "when test and calibration acquisitions are alike (the calibration's own draw and the test split's); a "
            "coverage outside it says they are not. The mean radius and width say how informative the confidence is. "
            "An infinite radius means the validation split held too few acquisitions for this coverage. "
            f"'Decides at {decision_deg:g} deg': the shares of test frames whose AoP interval lies wholly at or above "
            f"{decision_deg:g} deg (evaluate.aop_decision_deg) and wholly below it, and in brackets the share of those "
            "on the true AoP's side; 'point on the true side': the share of all frames whose predicted AoP alone is, "
            "which a reader of the number cannot tell from the frames where it is not.")


def render_coverage(table: pd.DataFrame, caption: str) -> str:
    """Markdown of the coverage table (``analysis.coverage_table``), seeds pooled: what the README
    quotes."""
    header = ["Variant", "Target", "By chance", "PS1", "PS2", "FH1", "AoP", "Mean radius PS1 / PS2 / FH1 (px)",
              "Mean AoP width (deg)", f"Decides at {table['decision_deg'].iloc[0]:g} deg: above / below (right)",
              "Point on the true side"]
    lines = []
    for _, r in table[table["seed"].astype(str) == "all"].iterrows():
        covered = [f"{r[f'coverage_{k}']:.2f} ({r[f'coverage_{k}_lo']:.2f}-{r[f'coverage_{k}_hi']:.2f})"
                   for k in ("ps1", "ps2", "fh1", "aop")]
        radii = " / ".join(f"{r[f'mean_radius_{k}']:.1f}" for k in ("ps1", "ps2", "fh1"))
        lines.append([r["variant"], f"{r['target']:.2f}", f"{r['chance_lo']:.2f}-{r['chance_hi']:.2f}", *covered, radii,
                      f"{r['mean_aop_width']:.1f}", f"{r['decides_above']:.2f} / {r['decides_below']:.2f} ({_share(r['decisive_right'])})",
                      f"{r['point_right']:.2f}"])
    return _markdown(caption, header, lines)
