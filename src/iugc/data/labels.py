"""Labelled frames of a dataset in IUGC 2025 layout, as one table.

Two CSV forms exist in the IUGC 2025 release:

- ``label.csv`` (IUGC 2025 training set, PSFHS conversion): ``Filename, PS1, PS2, FH1`` and
  optionally ``AoP``;
- ``landmarks_data.csv`` (IUGC 2025 validation and test sets): ``Filename, PS1, PS2,
  AOP Tangency``, with the angles in ``aop_results.csv`` (``Filename, AOP``) beside it.

Points are written ``"(x, y)"`` in pixels of the image. Column names are matched ignoring case
and surrounding whitespace. ``read_labels`` is the one parser: it collects every problem as one
line naming the CSV and its row; ``load_labels`` refuses a dataset with any problem, and
``iugc.data.validate`` reports them all.
"""
from __future__ import annotations

import csv
import glob
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..geometry import LANDMARKS
from .images import ImageError, image_size, read_grey

SPLITS = ("Training", "Validation", "Testing")
LABELED_FOLDER = "Labeled cases"
LABEL_CSV = "label.csv"
LANDMARKS_CSV = "landmarks_data.csv"
AOP_CSV = "aop_results.csv"

POINT_COLUMNS = [f"{name}_{axis}" for name in LANDMARKS for axis in "xy"]
LABEL_COLUMNS = ["filename", "image_path", "split", *POINT_COLUMNS, "aop", "width", "height"]

# Normalised header -> canonical column; the third point has two names.
_COLUMN_NAMES = {"filename": "filename", "ps1": "ps1", "ps2": "ps2", "fh1": "fh1",
                 "aop tangency": "fh1", "aop": "aop"}
_DISPLAY = {"filename": "Filename", "ps1": "PS1", "ps2": "PS2", "fh1": "FH1 (or AOP Tangency)",
            "aop": "AoP"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")


def parse_point(text: str) -> tuple[float, float]:
    """``"(x, y)"`` -> ``(x, y)``; ``ValueError`` for anything else."""
    match = _POINT.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"expected a point '(x, y)' with numeric x and y, got {text!r}")
    return float(match[1]), float(match[2])


def format_point(x: float, y: float) -> str:
    """The CSV form of a point, integers without a decimal point like IUGC 2025's label.csv."""
    return "({}, {})".format(*(int(v) if float(v).is_integer() else v for v in (x, y)))


def _normalise(header: str) -> str:
    return " ".join(header.split()).lower()


@dataclass(frozen=True)
class LabelTable:
    """One label CSV: the split it belongs to and, for landmarks_data.csv, its AoP file."""

    split: str
    csv: Path
    aop_csv: Path | None = None


@dataclass
class _CsvRows:
    path: Path
    headers: dict[str, str]                      # canonical name -> header as written
    rows: list[tuple[int, int, dict[str, str]]]  # (data row, line, cells by canonical name)

    def where(self, row: int, line: int) -> str:
        return f"{self.path} data row {row} (line {line})"


def _read_csv(path: Path, required: tuple[str, ...], problems: list[str]) -> _CsvRows | None:
    """Rows of a CSV keyed by canonical column; None (with problems noted) when unusable.

    Data rows are numbered from 1 and blank lines are not counted; the line number counts every
    line of the file, the header being line 1.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                problems.append(f"{path}: empty file (no header row)")
                return None
            headers: dict[str, str] = {}
            keys = []
            for written in header:
                key = _COLUMN_NAMES.get(_normalise(written))
                keys.append(key)
                if key is not None:
                    headers.setdefault(key, written.strip())
            rows = []
            for cells in reader:
                if not any(cell.strip() for cell in cells) and len(cells) <= 1:
                    continue  # blank line
                values = {key: cell.strip() for key, cell in zip(keys, cells) if key is not None}
                rows.append((len(rows) + 1, reader.line_num, values))
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return None
    except (OSError, csv.Error) as err:
        problems.append(f"{path}: unreadable CSV ({err})")
        return None

    missing = [key for key in required if key not in headers]
    for key in missing:
        written = ", ".join(h.strip() for h in header)
        problems.append(f"{path}: missing column {_DISPLAY[key]} (columns are: {written})")
    if missing:
        return None
    if not rows:
        problems.append(f"{path}: no data rows")
        return None
    return _CsvRows(path, headers, rows)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    return value


def _aop_lookup(path: Path, problems: list[str]) -> dict[str, float]:
    """Filename -> AoP from aop_results.csv; rows with a problem are left out."""
    table = _read_csv(path, ("filename", "aop"), problems)
    if table is None:
        return {}
    angles: dict[str, float] = {}
    for row, line, cells in table.rows:
        name, text = cells.get("filename", ""), cells.get("aop", "")
        if not name or not text:
            column = "Filename" if not name else table.headers["aop"]
            problems.append(f"{table.where(row, line)}: empty cell in column {column}")
            continue
        if name in angles:
            problems.append(f"{table.where(row, line)}: duplicate filename {name}")
            continue
        try:
            angles[name] = _number(text)
        except ValueError:
            problems.append(f"{table.where(row, line)}: AoP {text!r} is not a number")
    return angles


def _table_in(folder: Path, split: str, problems: list[str]) -> LabelTable | None:
    """The label table of one folder (file names matched ignoring case), or None."""
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    label, landmarks = files.get(LABEL_CSV), files.get(LANDMARKS_CSV)
    if label and landmarks:
        problems.append(f"{folder}: holds both {label.name} and {landmarks.name}; keep one")
        return None
    if label:
        return LabelTable(split, label)
    if landmarks:
        return LabelTable(split, landmarks, files.get(AOP_CSV))
    return None


def find_label_tables(path: str | Path, problems: list[str]) -> list[LabelTable]:
    """Label tables of a dataset root (Training/, Validation/, Testing/) or of one folder.

    In a root, a split's table lies in the split folder or in its ``Labeled cases`` folder.
    Training must have one; Validation and Testing may come without labels (withheld). A single
    folder takes its split from the nearest enclosing split folder, Training if there is none.
    """
    path = Path(path)
    if not path.is_dir():
        problems.append(f"{path}: not a folder")
        return []
    split_folders = [(split, path / split) for split in SPLITS if (path / split).is_dir()]
    if not split_folders:
        split = next((p.name for p in (path, *path.resolve().parents) if p.name in SPLITS),
                     "Training")
        table = _table_in(path, split, problems)
        if table is None:
            problems.append(f"{path}: no label CSV ({LABEL_CSV} or {LANDMARKS_CSV})")
        return [table] if table else []

    tables = []
    for split, folder in split_folders:
        candidates = [folder, folder / LABELED_FOLDER]
        found = [t for f in candidates if f.is_dir() and (t := _table_in(f, split, problems))]
        if found:
            tables.append(found[0])
        elif split == "Training":
            problems.append(f"{folder}: no label CSV ({LABEL_CSV} or {LANDMARKS_CSV}) here or "
                            f"in {LABELED_FOLDER}/")
    return tables


def _image_file(folder: Path, filename: str) -> Path | None:
    """The image next to the CSV, else the one match in a subfolder (layouts vary)."""
    direct = folder / filename
    if direct.is_file():
        return direct
    matches = [p for p in folder.glob(f"*/{glob.escape(filename)}") if p.is_file()]
    return matches[0] if len(matches) == 1 else None


def _parse_cells(cells: dict[str, str], headers: dict[str, str], angles: dict[str, float] | None,
                 problems: list[str]) -> dict:
    """The CSV fields of one row as table columns; what is wrong goes to ``problems``."""
    has_aop = "aop" in headers
    for key in ["filename", *LANDMARKS] + (["aop"] if has_aop else []):
        if not cells.get(key):
            problems.append(f"empty cell in column {headers[key]}")
    record = {"filename": cells.get("filename", ""), "aop": math.nan}
    for key in LANDMARKS:
        if cells.get(key):
            try:
                record[f"{key}_x"], record[f"{key}_y"] = parse_point(cells[key])
            except ValueError as err:
                problems.append(f"column {headers[key]}: {err}")
    if has_aop and cells.get("aop"):
        try:
            record["aop"] = _number(cells["aop"])
        except ValueError:
            problems.append(f"AoP {cells['aop']!r} is not a number")
    elif angles is not None and record["filename"]:
        if record["filename"] in angles:
            record["aop"] = angles[record["filename"]]
        else:
            problems.append(f"no AoP for {record['filename']} in {AOP_CSV}")
    return record


def _image_fields(folder: Path, record: dict, decode: bool, problems: list[str]) -> dict:
    """image_path, width and height of a row's frame; points checked against its size."""
    name = record["filename"]
    image = _image_file(folder, name)
    if image is None:
        problems.append(f"image {name} not found in {folder}")
        return {}
    try:
        height, width = read_grey(image).shape if decode else image_size(image)[::-1]
    except ImageError as err:
        problems.append(f"image {name}: {err.reason}")
        return {}
    for key in (key for key in LANDMARKS if f"{key}_x" in record):  # the points that parsed
        x, y = record[f"{key}_x"], record[f"{key}_y"]
        point = format_point(x, y)
        if x < 0 or y < 0:
            problems.append(f"{key.upper()} {point} is negative")
        elif x > width - 1 or y > height - 1:
            problems.append(f"{key.upper()} {point} lies outside the {width} x {height} image "
                            f"(x in 0..{width - 1}, y in 0..{height - 1})")
    return {"image_path": os.path.abspath(image), "width": width, "height": height}


def _read_table(table: LabelTable, decode_images: bool, problems: list[str]) -> list[dict]:
    """The rows of one label table without problems; one line per problem in ``problems``."""
    rows = _read_csv(table.csv, ("filename", "ps1", "ps2", "fh1"), problems)
    if rows is None:
        return []
    angles = _aop_lookup(table.aop_csv, problems) if table.aop_csv else None
    first_row: dict[str, int] = {}
    records = []
    for row, line, cells in rows.rows:
        row_problems: list[str] = []
        record = _parse_cells(cells, rows.headers, angles, row_problems)
        name = record["filename"]
        if name in first_row:
            row_problems.append(f"duplicate filename {name} (first at data row {first_row[name]})")
        if name:
            first_row.setdefault(name, row)
            record |= _image_fields(table.csv.parent, record, decode_images, row_problems)
        problems += [f"{rows.where(row, line)}: {problem}" for problem in row_problems]
        if not row_problems:
            records.append(record | {"split": table.split})
    return records


def read_labels(path: str | Path, decode_images: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Every labelled frame under ``path`` and the problems found, one line each.

    Rows with a problem are left out of the table. ``decode_images`` decodes every image (finds
    truncated files) instead of reading only the headers for the size.
    """
    problems: list[str] = []
    records = []
    for table in find_label_tables(path, problems):
        records += _read_table(table, decode_images, problems)
    frame = pd.DataFrame.from_records(records, columns=LABEL_COLUMNS)
    frame[POINT_COLUMNS + ["aop"]] = frame[POINT_COLUMNS + ["aop"]].astype(np.float64)
    frame[["width", "height"]] = frame[["width", "height"]].astype(np.int64)
    return frame, problems


def load_labels(path: str | Path) -> pd.DataFrame:
    """The labels table of a dataset root or of one folder holding a label CSV with its images.

    Columns: ``LABEL_COLUMNS`` (points in pixels of the original image, AoP NaN when the dataset
    gives none). Raises ``UserError`` on the first problem; ``iugc validate-data`` lists them all.
    Only image headers are read here; damaged pixel data shows when a frame is read (or in
    ``iugc validate-data``, which decodes every frame).
    """
    frame, problems = read_labels(path)
    if problems:
        more = f" (and {len(problems) - 1} more; run `iugc validate-data {path}`)" \
            if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    return frame.reset_index(drop=True)
