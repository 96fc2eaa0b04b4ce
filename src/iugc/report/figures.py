"""Report figures (matplotlib + seaborn). Each function reads tables and writes one PNG that must
stay readable at the report's width: one legend per figure, distinct colours per variant, units
on every axis, shared axes where panels are compared."""
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
LOSS_LABELS = {
    "train/total": "total, Eq. 17", "train/heatmap": "heatmap, λh·Eq. 13", "train/coord": "coordinate, λc·Eq. 14",
    "train/entropy": "entropy, λe·Eq. 16", "train/gan": "adversarial, λadv·Eq. 12",
    "train/discriminator": "discriminator, Eq. 11", "val/mre": "validation MRE",
}


def variant_colors(variants) -> dict[str, tuple]:
    """One clearly distinct colour per variant, the same in every figure."""
    return dict(zip(variants, sns.color_palette("tab10", max(len(variants), 3))))


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def gaussian_targets(image: np.ndarray, heatmaps: np.ndarray, points: np.ndarray, path: Path) -> None:
    """Fig. 4: a frame and the Gaussian target heatmap of each landmark (Eq. 18), with the scale."""
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
    axes[0].imshow(image, cmap="gray")
    for (x, y), name in zip(points, LANDMARKS):
        axes[0].plot(x, y, "+", color=COLORS[name], ms=10, mew=2, label=name.upper())
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title("frame (model input)", fontsize=9)
    for ax, hm, name in zip(axes[1:], heatmaps, LANDMARKS):
        ax.imshow(image, cmap="gray")
        shown = ax.imshow(hm, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        ax.set_title(f"target {name.upper()}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[1:], shrink=0.8, label="target heatmap value (Eq. 18)")
    _save(fig, path)


def _frame_panel(ax, row, read_image, title: str) -> None:
    ax.imshow(read_image(row["image_path"]), cmap="gray")
    for name in LANDMARKS:
        ax.plot(row[f"{name}_x"], row[f"{name}_y"], "o", mfc="none", color=COLORS[name], ms=6)
        ax.plot(row[f"pred_{name}_x"], row[f"pred_{name}_y"], "x", color=COLORS[name], ms=6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _legend_for_points(fig) -> None:
    handles = [plt.Line2D([], [], ls="none", marker=m, color=COLORS[n], mfc="none" if m == "o" else None)
               for n in LANDMARKS for m in ("o", "x")]
    labels = [f"{n.upper()} {'true' if m == 'o' else 'predicted'}" for n in LANDMARKS for m in ("o", "x")]
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)


def prediction_grid(rows: pd.DataFrame, read_image, title: str, path: Path) -> None:
    """Fig. 5: held-out frames with true (circles) and predicted (crosses) landmarks, per-frame MRE."""
    cols = 5
    nrows = max(1, int(np.ceil(len(rows) / cols)))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.7 * nrows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, r) in zip(axes.ravel(), rows.iterrows()):
        _frame_panel(ax, r, read_image, f"{r['filename']}  MRE {r['mre']:.1f} px")
    fig.suptitle(title, fontsize=10)
    _legend_for_points(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def training_curves(histories: dict[str, list[pd.DataFrame]], path: Path) -> None:
    """Per-epoch fine-tuning losses (weighted Eq. 17 terms, the discriminator's Eq. 11) and the
    validation MRE of every variant: the mean over seeds, shaded between the lowest and highest."""
    metrics = [m for m in LOSS_LABELS if any(m in h for runs in histories.values() for h in runs)]
    colors = variant_colors(list(histories))
    cols = 4
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.8), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.ravel(), metrics):
        for name, runs in histories.items():
            runs = [h.set_index("step")[metric] for h in runs if metric in h]
            if not runs:
                continue
            table = pd.concat(runs, axis=1)
            ax.plot(table.index, table.mean(axis=1), color=colors[name], lw=1.4, label=name)
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colors[name], alpha=0.15)
        ax.set_title(LOSS_LABELS[metric], fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("px" if metric == "val/mre" else "loss (log scale)")
        if metric != "val/mre":
            ax.set_yscale("log")
    handles = [plt.Line2D([], [], color=colors[name], lw=2) for name in histories]
    fig.legend(handles, list(histories), loc="lower center", ncol=min(len(histories), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _save(fig, path)


def aop_agreement(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Predicted against true AoP per variant on shared axes (mean prediction over seeds per
    frame), with the Bland-Altman bias and 95% limits of agreement in each panel."""
    names = list(tables)
    colors = variant_colors(names)
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    everything = pd.concat([t[["aop", "pred_aop"]] for t in tables.values()])
    lo, hi = np.nanmin(everything.to_numpy()), np.nanmax(everything.to_numpy())
    pad = 0.05 * (hi - lo)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        t = tables[name]
        ax.scatter(t["aop"], t["pred_aop"], s=9, alpha=0.7, color=colors[name])
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        diff = (t["pred_aop"] - t["aop"]).dropna()
        bias, sd = diff.mean(), diff.std(ddof=1) if len(diff) > 1 else 0.0
        ax.set_title(f"{name}\nbias {bias:+.1f}°, LoA ±{1.96 * sd:.1f}°", fontsize=8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    for ax in axes[-1]:
        ax.set_xlabel("true AoP (deg)")
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted AoP (deg)")
    fig.tight_layout()
    _save(fig, path)


def error_distributions(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Radial error per landmark and AoP error, per variant (all seeds' frames)."""
    long = pd.concat([
        pd.DataFrame({"variant": name, "landmark": n.upper(), "radial error (px)": t[f"re_{n}"]})
        for name, t in tables.items() for n in LANDMARKS])
    aop = pd.concat([pd.DataFrame({"variant": name, "AoP error (deg)": t["aop_error"]}) for name, t in tables.items()])
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    sns.boxplot(data=long, x="variant", y="radial error (px)", hue="landmark", ax=axes[0], fliersize=2,
                palette=[COLORS[n] for n in LANDMARKS])
    sns.boxplot(data=aop, x="variant", y="AoP error (deg)", hue="variant", ax=axes[1], fliersize=2,
                palette=variant_colors(list(tables)), legend=False)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=35, labelsize=7)
        ax.set_xlabel("")
    axes[0].legend(title="landmark", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def pretraining_curves(losses: dict[str, list[pd.DataFrame]], path: Path) -> None:
    """Self-supervised loss per step (MoCoV2 InfoNCE, masked-AE reconstruction), every seed."""
    units = {"moco": "InfoNCE loss (Eq. 4)", "mae": "masked MSE"}
    n = max(len(losses), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.4), squeeze=False)
    for ax, (name, runs) in zip(axes[0], losses.items()):
        for i, df in enumerate(runs):
            smooth = df["loss"].rolling(max(len(df) // 20, 1), min_periods=1).mean()
            ax.plot(df["step"], smooth, lw=1.3, label=f"seed run {i + 1}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(units[name.split("_")[0]])
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def where_the_error_is(per_landmark: pd.DataFrame, by_range: pd.DataFrame, path: Path) -> None:
    """Radial error per landmark (mean over seeds and frames, 95% interval) and MRE / AoP MAE by
    range of the true AoP, per variant."""
    variants = list(per_landmark["variant"])
    colors = variant_colors(variants)
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
    axes[0].set_title("per landmark (95% interval)", fontsize=9)
    ranges = list(dict.fromkeys(by_range["aop_range"]))
    counts = by_range.drop_duplicates("aop_range").set_index("aop_range")["n_frames"]
    for ax, metric, label in ((axes[1], "mre", "MRE (px)"), (axes[2], "aop_mae", "AoP MAE (deg)")):
        for name, rows in by_range.groupby("variant", sort=False):
            ax.plot(range(len(ranges)), rows.set_index("aop_range").loc[ranges, metric], "o-",
                    color=colors[name], label=name)
        ax.set_xticks(range(len(ranges)), [f"{r}\n(n={counts[r]})" for r in ranges])
        ax.set_xlabel("true AoP (deg)")
        ax.set_ylabel(label)
        ax.set_title(f"{label.split(' (')[0]} by AoP range", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(variants), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _save(fig, path)
