"""Report figures (matplotlib + seaborn). Each function reads tables, writes one PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..geometry import LANDMARKS  # noqa: E402

COLORS = {"ps1": "tab:red", "ps2": "tab:orange", "fh1": "tab:cyan"}
DPI = 110


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def gaussian_targets(image: np.ndarray, heatmaps: np.ndarray, points: np.ndarray, path: Path) -> None:
    """Fig. 4: the frame and the Gaussian target heatmap of each landmark (Eq. 18)."""
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    axes[0].imshow(image, cmap="gray")
    for (x, y), name in zip(points, LANDMARKS):
        axes[0].plot(x, y, "+", color=COLORS[name], ms=10, mew=2, label=name.upper())
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title("frame (model input)")
    for ax, hm, name in zip(axes[1:], heatmaps, LANDMARKS):
        ax.imshow(image, cmap="gray")
        ax.imshow(hm, cmap="inferno", alpha=0.6)
        ax.set_title(f"target heatmap {name.upper()}")
    for ax in axes:
        ax.axis("off")
    _save(fig, path)


def prediction_grid(table: pd.DataFrame, read_image, title: str, path: Path, n: int) -> None:
    """Fig. 5: held-out frames with true (circles) and predicted (crosses) landmarks, per-frame MRE.

    Frames are taken evenly across the test split: consecutive frames are near-duplicates."""
    rows = table.iloc[np.unique(np.linspace(0, len(table) - 1, min(n, len(table))).round().astype(int))]
    cols = 5
    nrows = int(np.ceil(len(rows) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.7 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, r) in zip(axes.ravel(), rows.iterrows()):
        ax.imshow(read_image(r["image_path"]), cmap="gray")
        for name in LANDMARKS:
            ax.plot(r[f"{name}_x"], r[f"{name}_y"], "o", mfc="none", color=COLORS[name], ms=6)
            ax.plot(r[f"pred_{name}_x"], r[f"pred_{name}_y"], "x", color=COLORS[name], ms=6)
        ax.set_title(f"{r['filename']}  MRE {r['mre']:.1f}px", fontsize=8)
    fig.suptitle(title + "  (o true, x predicted; red PS1, orange PS2, cyan FH1)", fontsize=9)
    _save(fig, path)


def training_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    """Per-epoch training losses (Eq. 17 terms, discriminator) and validation MRE of every variant."""
    metrics = sorted({c for h in histories.values() for c in h.columns if c.startswith(("train/", "val/"))})
    cols = 4
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.ravel(), metrics):
        for name, h in histories.items():
            if metric in h:
                ax.plot(h["step"], h[metric], label=name, lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.set_yscale("log" if "loss" in metric or metric.startswith("train/") else "linear")
    axes.ravel()[len(metrics) - 1].legend(fontsize=6)
    _save(fig, path)


def aop_agreement(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Predicted vs true AoP (top) and Bland-Altman (bottom) for every variant."""
    n = len(tables)
    fig, axes = plt.subplots(2, n, figsize=(2.8 * n, 5.6), squeeze=False)
    for j, (name, t) in enumerate(tables.items()):
        ax = axes[0][j]
        ax.scatter(t["aop"], t["pred_aop"], s=8, alpha=0.7)
        lo, hi = np.nanmin([t["aop"].min(), t["pred_aop"].min()]), np.nanmax([t["aop"].max(), t["pred_aop"].max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("true AoP (deg)", fontsize=7)
        ax.set_ylabel("predicted AoP (deg)", fontsize=7)
        ax = axes[1][j]
        mean = (t["aop"] + t["pred_aop"]) / 2
        diff = t["pred_aop"] - t["aop"]
        bias, sd = np.nanmean(diff), np.nanstd(diff, ddof=1) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=8, alpha=0.7)
        for level, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(level, color="k", ls=style, lw=0.8)
        ax.set_xlabel("mean AoP (deg)", fontsize=7)
        ax.set_ylabel("pred - true (deg)", fontsize=7)
        ax.set_title(f"bias {bias:.1f}, LoA ±{1.96 * sd:.1f}", fontsize=7)
    _save(fig, path)


def error_distributions(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Radial error per landmark and AoP error, per variant."""
    long = pd.concat([
        pd.DataFrame({"variant": name, "landmark": n.upper(), "radial error (px)": t[f"re_{n}"]})
        for name, t in tables.items() for n in LANDMARKS])
    aop = pd.concat([pd.DataFrame({"variant": name, "AoP error (deg)": t["aop_error"]}) for name, t in tables.items()])
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    sns.boxplot(data=long, x="variant", y="radial error (px)", hue="landmark", ax=axes[0], fliersize=2)
    sns.boxplot(data=aop, x="variant", y="AoP error (deg)", ax=axes[1], fliersize=2, color="tab:blue")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=35, labelsize=7)
    _save(fig, path)


def pretraining_curves(losses: dict[str, pd.DataFrame], path: Path) -> None:
    """Self-supervised loss per step (MoCoV2 InfoNCE, masked-AE reconstruction)."""
    fig, axes = plt.subplots(1, max(len(losses), 1), figsize=(4.2 * max(len(losses), 1), 3.2), squeeze=False)
    for ax, (name, df) in zip(axes[0], losses.items()):
        ax.plot(df["step"], df["loss"], lw=0.8, alpha=0.5)
        ax.plot(df["step"], df["loss"].rolling(max(len(df) // 20, 1), min_periods=1).mean(), lw=1.5)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
    _save(fig, path)


def where_the_error_is(per_landmark: pd.DataFrame, by_range: pd.DataFrame, path: Path) -> None:
    """Radial error per landmark (mean over seeds and frames, 95% interval) and MRE / AoP MAE by
    range of the true AoP, per variant."""
    variants = list(per_landmark["variant"])
    colors = dict(zip(variants, sns.color_palette("tab10", len(variants))))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / len(variants)
    for i, (_, row) in enumerate(per_landmark.iterrows()):
        x = np.arange(len(LANDMARKS)) + (i - (len(variants) - 1) / 2) * width
        means = [row[f"re_{n}_mean"] for n in LANDMARKS]
        errs = [[m - row[f"re_{n}_lo"] for m, n in zip(means, LANDMARKS)],
                [row[f"re_{n}_hi"] - m for m, n in zip(means, LANDMARKS)]]
        axes[0].bar(x, means, width, yerr=errs, color=colors[row["variant"]], label=row["variant"], capsize=2)
    axes[0].set_xticks(np.arange(len(LANDMARKS)), [n.upper() for n in LANDMARKS])
    axes[0].set_ylabel("radial error (px)")
    axes[0].set_title("per landmark (95% interval)")
    ranges = list(dict.fromkeys(by_range["aop_range"]))
    counts = by_range.drop_duplicates("aop_range").set_index("aop_range")["n_frames"]
    for ax, metric, label in ((axes[1], "mre", "MRE (px)"), (axes[2], "aop_mae", "AoP MAE (deg)")):
        for name, rows in by_range.groupby("variant", sort=False):
            ax.plot(range(len(ranges)), rows.set_index("aop_range").loc[ranges, metric], "o-",
                    color=colors[name], label=name)
        ax.set_xticks(range(len(ranges)), [f"{r}\n(n={counts[r]})" for r in ranges])
        ax.set_xlabel("true AoP (deg)")
        ax.set_ylabel(label)
        ax.set_title(f"{label.split(' (')[0]} by AoP range")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(variants), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
