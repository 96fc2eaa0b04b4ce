"""Real frames beside phantom frames, with their landmarks and AoP (docs/phantom_vs_real.png).

    python docs/make_phantom_figure.py PATH/TO/psfhs_aop [--out docs/phantom_vs_real.png] [--n 4]

The real folder is any dataset in the IUGC 2025 layout (``Training/Labeled cases/label.csv``).
The phantom frames are drawn at the real frames' size, one per acquisition.
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from iugc.data.phantom import LABELED_DIR, make_phantom  # noqa: E402
from iugc.geometry import angle_of_progression  # noqa: E402

COLOURS = {"PS1": "#ff4040", "PS2": "#40ff40", "FH1": "#40c0ff"}


def _frames(root: Path, names: list[str] | None, n: int, seed: int):
    """(image, {landmark: (x, y)}, AoP) for ``n`` frames of a labelled folder, drawn at random."""
    folder = root / LABELED_DIR
    table = pd.read_csv(folder / "label.csv", skipinitialspace=True)
    if names is None:
        rows = table.sample(n=n, random_state=seed)
    else:
        rows = table.set_index("Filename").loc[names].reset_index()
    for _, row in rows.iterrows():
        points = {k: tuple(int(v) for v in re.findall(r"-?\d+", row[k])) for k in COLOURS}
        image = np.asarray(Image.open(folder / row["Filename"]).convert("L"))
        yield image, points, float(angle_of_progression(points["PS1"], points["PS2"], points["FH1"]))


def _draw(ax, image, points, aop, title):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    (x1, y1), (x2, y2), (x3, y3) = points["PS1"], points["PS2"], points["FH1"]
    ax.plot([x2, x1, x3], [y2, y1, y3], color="yellow", lw=0.8, alpha=0.8)
    for name, (x, y) in points.items():
        ax.scatter([x], [y], s=14, color=COLOURS[name], edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_title(f"{title}   AoP {aop:.1f}\N{DEGREE SIGN}", fontsize=8)
    ax.axis("off")


def side_by_side_figure(real_root, out_png, n: int = 4, seed: int = 0) -> Path:
    """Top row: ``n`` real frames; bottom row: ``n`` phantom frames (seed ``seed``)."""
    real_root, out_png = Path(real_root), Path(out_png)
    real = list(_frames(real_root, None, n, seed))
    size = real[0][0].shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        make_phantom(tmp, n_labeled=n, n_unlabeled=0, seed=seed, size=size,
                     standard_plane_fraction=1.0, frames_per_acquisition=1)
        phantom = list(_frames(Path(tmp), [f"{i + 1:05d}.png" for i in range(n)], n, seed))
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 6.0), squeeze=False)
    for i, (image, points, aop) in enumerate(real):
        _draw(axes[0, i], image, points, aop, "real (PSFHS)")
    for i, (image, points, aop) in enumerate(phantom):
        _draw(axes[1, i], image, points, aop, "phantom")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1), h_pad=1.5)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=150)
    plt.close(fig)
    return out_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real_root", help="a dataset in IUGC 2025 layout, e.g. the PSFHS frames")
    parser.add_argument("--out", default=str(Path(__file__).with_name("phantom_vs_real.png")))
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(side_by_side_figure(args.real_root, args.out, n=args.n, seed=args.seed))


if __name__ == "__main__":
    main()
