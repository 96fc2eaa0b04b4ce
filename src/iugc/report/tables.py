"""The ablation table in the layout of the paper's Table 2, with the published numbers beside ours."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import yaml

ENCODER_NAMES = {"hrnet": "HRNet", "resnet": "ResNet", "attention_unet": "Attention UNet"}
PRETRAIN_NAMES = {"none": "-", "moco": "MoCoV2", "mae": "Masked AE"}
SOURCE_NOTES = {
    "phantom": "the built-in phantom (synthetic frames), NOT the IUGC 2025 data",
    "psfhs": "PSFHS frames converted to IUGC landmarks, NOT the IUGC 2025 test set",
    "iugc2025": "an IUGC 2025 tree (held-out split of its labelled frames)",
}


def published_table2() -> dict:
    return yaml.safe_load(resources.files("iugc.presets").joinpath("published.yaml").read_text())["table2"]


def ablation_table(params: dict, metrics: dict[str, dict], encoder_names: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per variant in params order: configuration, our metrics with CIs, published numbers."""
    published = published_table2()
    rows = []
    for name, v in params["variants"].items():
        m = metrics[name]
        paper = published.get(name, {})
        rows.append({
            "variant": name,
            "Encoder": (encoder_names or {}).get(v["encoder"], ENCODER_NAMES[v["encoder"]]),
            "Pretrain": PRETRAIN_NAMES[v["pretrain"]],
            "Attn": "yes" if v["attention"] else "-",
            "Adv.": "yes" if v["adversarial"] else "-",
            "Output": v["output"].capitalize(),
            "MRE": m["mre"], "MRE_lo": m["mre_ci"][0], "MRE_hi": m["mre_ci"][1],
            "AoP MAE": m["aop_mae"], "AoP_lo": m["aop_mae_ci"][0], "AoP_hi": m["aop_mae_ci"][1],
            "RE PS1": m["re_ps1"], "RE PS2": m["re_ps2"], "RE FH1": m["re_fh1"],
            "n_test": m["n_frames"],
            "paper MRE": paper.get("mre", np.nan), "paper AoP MAE": paper.get("aop_mae", np.nan),
        })
    return pd.DataFrame(rows)


def _ranks(values: pd.Series) -> pd.Series:
    """1 for the best (lowest), 2 for the second, 0 otherwise (ties share a rank)."""
    order = sorted(set(values.dropna()))
    return values.map(lambda x: order.index(x) + 1 if x in order[:2] else 0)


def _fmt(value: float, rank: int, bold, underline) -> str:
    text = f"{value:.2f}"
    return bold(text) if rank == 1 else underline(text) if rank == 2 else text


def render(table: pd.DataFrame, kind: str, caption: str) -> str:
    """Markdown or LaTeX: best of ours in bold, second underlined, published numbers beside."""
    if kind == "md":
        bold, underline, dash, none = (lambda t: f"**{t}**"), (lambda t: f"<u>{t}</u>"), "–", "-"
    else:
        bold, underline, dash, none = (lambda t: f"\\textbf{{{t}}}"), (lambda t: f"\\underline{{{t}}}"), "--", "--"
    ranks = {c: _ranks(table[c]) for c in ("MRE", "AoP MAE")}
    header = ["Encoder", "Pretrain", "Attn", "Adv.", "Output", "MRE (px)", "95% CI", "AoP MAE (deg)",
              "95% CI", "paper MRE", "paper AoP MAE"]
    lines = []
    for i, r in table.iterrows():
        flags = [none if r[c] == "-" else r[c] for c in ("Pretrain", "Attn", "Adv.")]
        lines.append([r["Encoder"], *flags, r["Output"],
                      _fmt(r["MRE"], ranks["MRE"][i], bold, underline), f"{r['MRE_lo']:.2f}{dash}{r['MRE_hi']:.2f}",
                      _fmt(r["AoP MAE"], ranks["AoP MAE"][i], bold, underline),
                      f"{r['AoP_lo']:.2f}{dash}{r['AoP_hi']:.2f}",
                      f"{r['paper MRE']:.2f}", f"{r['paper AoP MAE']:.2f}"])
    if kind == "md":
        out = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out) + "\n"

    def tex(text: str) -> str:  # the LaTeX table uses booktabs rules
        return text.replace("%", "\\%").replace("_", "\\_")

    out = ["\\begin{table}[t]", "\\centering", f"\\caption{{{tex(caption)}}}",
           "\\begin{tabular}{lllll" + "r" * (len(header) - 5) + "}", "\\toprule",
           " & ".join(tex(h) for h in header) + " \\\\", "\\midrule"]
    out += [" & ".join(tex(c) for c in cells) + " \\\\" for cells in lines]
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def caption(source: str, preset: str, encoder_names: dict[str, str]) -> str:
    """The table's caption; ``source`` is the data source recorded by the obtain stage (what the
    numbers were computed on), not a parameter that could have changed since."""
    encoders = ", ".join(f"{k} = {v}" for k, v in encoder_names.items())
    return (f"Ablation on {SOURCE_NOTES[source]}; preset '{preset}' ({encoders}). "
            "MRE in pixels of the original images, AoP MAE in degrees, on our held-out split, with "
            "95% bootstrap intervals; best of ours in bold, second underlined. 'paper' columns: "
            "the published Table 2 (IUGC 2025 test set, HRNet-W48/ResNet-50 at 512 px, 400 epochs) "
            "for reference; they are not comparable unless data and preset are the paper's.")
