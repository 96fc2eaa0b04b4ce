"""Check a dataset in IUGC 2025 layout: every problem as one line, and a summary of what is there.

The parsing is ``iugc.data.labels.read_labels`` (the reader ``load_labels`` uses), run with every
image decoded so truncated files are found. Nothing is written anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..geometry import LANDMARKS
from .labels import SPLITS, read_labels
from .unlabeled import UNLABELED_FOLDER, list_unlabeled


@dataclass
class ValidationReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    labels: pd.DataFrame = field(default_factory=pd.DataFrame)  # the rows without problems
    unlabeled: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        labels, lines = self.labels, [f"dataset {self.path}"]
        counts = labels["split"].value_counts() if len(labels) else pd.Series(dtype=int)
        per_split = ", ".join(f"{split} {counts[split]}" for split in SPLITS if split in counts)
        lines.append(f"labelled frames: {len(labels)}" + (f" ({per_split})" if per_split else ""))
        n_examples = int(self.unlabeled["is_example"].sum()) if len(self.unlabeled) else 0
        lines.append(f"unlabeled frames ({UNLABELED_FOLDER.as_posix()}/): {len(self.unlabeled)}"
                     f" ({n_examples} named Example*)")
        if len(labels):
            sizes = labels.groupby(["width", "height"]).size().sort_values(ascending=False)
            lines.append("image sizes: " + ", ".join(f"{w} x {h} ({n})"
                                                      for (w, h), n in sizes.items()))
            aop = labels["aop"].dropna()
            lines.append(f"AoP: {aop.min():.1f} to {aop.max():.1f} degrees, mean {aop.mean():.1f} "
                         f"({len(aop)} given)" if len(aop) else "AoP: not given")
            for name in LANDMARKS:
                x, y = labels[f"{name}_x"], labels[f"{name}_y"]
                lines.append(f"{name.upper()}: x {x.min():g} to {x.max():g}, "
                             f"y {y.min():g} to {y.max():g}")
        lines.append(f"problems: {len(self.problems)}")
        return "\n".join(lines)


def validate_dataset(path: str | Path) -> ValidationReport:
    """Every problem of the dataset at ``path`` (a root or one labelled folder), and its summary.

    Problems: missing, unreadable, truncated or non-image files; malformed, non-numeric, negative
    or out-of-image points; empty cells; duplicate file names; missing columns; CSVs without rows;
    no label CSV at all. Each is one line naming the file and its CSV row or column.
    """
    path = Path(path)
    labels, problems = read_labels(path, decode_images=True)
    return ValidationReport(path, problems, labels, list_unlabeled(path))
