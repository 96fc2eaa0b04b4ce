"""validate_dataset: one line per problem naming file and row, all problems collected, and the
``iugc validate-data`` command around it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builders import GOOD_ROWS, HEADER, write_csv, write_dataset, write_frame
from iugc.data.labels import load_labels
from iugc.data.validate import validate_dataset
from iugc.errors import UserError

LABELED = Path("Training") / "Labeled cases"


def _edit_row(root: Path, row: int, column: int, value: str) -> None:
    rows = [list(r) for r in GOOD_ROWS]
    rows[row - 1][column] = value
    write_csv(root / LABELED / "label.csv", HEADER, rows)


def _missing_image(root):
    (root / LABELED / "00002.png").unlink()


def _unreadable_image(root):
    """A PNG whose header is fine and whose pixel data is damaged (checksum fails)."""
    path = write_frame(root / LABELED / "00002.png", size=(32, 32), seed=1)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(8)
    path.write_bytes(bytes(data))


def _truncated_image(root):
    write_frame(root / LABELED / "00002.png", size=(32, 32), seed=1)
    data = (root / LABELED / "00002.png").read_bytes()
    (root / LABELED / "00002.png").write_bytes(data[: len(data) // 2])


def _non_image_file(root):
    (root / LABELED / "00002.png").write_text("Filename,PS1\n")


def _duplicate_filename(root):
    _edit_row(root, 3, 0, "00001.png")


def _missing_column(root):
    write_csv(root / LABELED / "label.csv", ["Filename", "PS1", "FH1", "AoP"],
              [[r[0], r[1], r[3], r[4]] for r in GOOD_ROWS])


def _no_rows(root):
    write_csv(root / LABELED / "label.csv", HEADER, [])


def _no_label_csv(root):
    (root / LABELED / "label.csv").unlink()


def _aop_missing_from_aop_results(root):
    (root / LABELED / "label.csv").unlink()
    write_csv(root / LABELED / "landmarks_data.csv", ["Filename", "PS1", "PS2", "AOP Tangency"],
              [r[:4] for r in GOOD_ROWS])
    write_csv(root / LABELED / "aop_results.csv", ["Filename", "AOP"],
              [["00001.png", "97.1"], ["00003.png", "97.1"]])


ROW_2 = r"data row 2 \(line 3\)"  # data rows count from 1 after the header (line 1)
BAD_INPUTS = {
    "missing image": (_missing_image, rf"label.csv {ROW_2}: image 00002.png not found"),
    "unreadable image": (_unreadable_image, rf"{ROW_2}: image 00002.png: unreadable image"),
    "truncated image": (_truncated_image, rf"{ROW_2}: image 00002.png: unreadable image"),
    "non-image file": (_non_image_file, rf"{ROW_2}: image 00002.png: not an image file"),
    "malformed point": (lambda r: _edit_row(r, 2, 2, "(6; 9)"),
                        r"label.csv data row 2 \(line 3\): column PS2: expected a point"),
    "non-numeric point": (lambda r: _edit_row(r, 1, 3, "(x, 9)"),
                          r"label.csv data row 1 \(line 2\): column FH1: expected a point"),
    "point outside": (lambda r: _edit_row(r, 3, 1, "(32, 9)"),
                      r"data row 3 \(line 4\): PS1 \(32, 9\) lies outside the 32 x 32 image"),
    "negative point": (lambda r: _edit_row(r, 2, 3, "(5, -1)"),
                       r"data row 2 \(line 3\): FH1 \(5, -1\) is negative"),
    "empty cell": (lambda r: _edit_row(r, 2, 1, ""),
                   r"label.csv data row 2 \(line 3\): empty cell in column PS1"),
    "non-numeric AoP": (lambda r: _edit_row(r, 1, 4, "wide"),
                        r"data row 1 \(line 2\): AoP 'wide' is not a number"),
    "duplicate filename": (_duplicate_filename, r"data row 3 \(line 4\): duplicate filename "
                                                r"00001.png \(first at data row 1\)"),
    "missing column": (_missing_column, r"label.csv: missing column PS2 \(columns are: Filename"),
    "CSV with no rows": (_no_rows, r"label.csv: no data rows"),
    "no label CSV": (_no_label_csv, r"Training: no label CSV"),
    "AoP not in aop_results": (_aop_missing_from_aop_results,
                               r"landmarks_data.csv data row 2 \(line 3\): no AoP for 00002.png"),
}
FOUND_ONLY_BY_DECODING = {"unreadable image", "truncated image"}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_each_bad_input_gives_one_line(tmp_path, kind):
    spoil, expected = BAD_INPUTS[kind]
    root = write_dataset(tmp_path / "ds")
    spoil(root)
    report = validate_dataset(root)
    assert len(report.problems) == 1, report.problems
    assert "\n" not in report.problems[0]
    assert re.search(expected, report.problems[0]), report.problems[0]
    if kind in FOUND_ONLY_BY_DECODING:  # load_labels reads image headers only, for speed
        assert len(load_labels(root)) == 3
    else:
        with pytest.raises(UserError, match=re.escape(report.problems[0])):
            load_labels(root)


def test_all_problems_are_collected_in_row_order(tmp_path):
    root = write_dataset(tmp_path / "ds")
    rows = [list(r) for r in GOOD_ROWS]
    rows[0][1], rows[1][2], rows[2][3] = "", "(1, 2", "(99, 1)"
    write_csv(root / LABELED / "label.csv", HEADER, rows)
    (root / LABELED / "00002.png").unlink()
    report = validate_dataset(root)
    assert [re.search(r"data row (\d+)", p)[1] for p in report.problems] == ["1", "2", "2", "3"]
    assert ["empty cell" in report.problems[0], "expected a point" in report.problems[1],
            "not found" in report.problems[2], "lies outside" in report.problems[3]] == [True] * 4
    assert len(report.labels) == 0 and not report.ok


def test_good_dataset_summary_and_nothing_written(tmp_path):
    root = write_dataset(tmp_path / "ds")
    write_frame(root / "Training" / "Unlabeled cases" / "v1" / "Example3.jpg")
    write_frame(root / "Training" / "Unlabeled cases" / "v1" / "f4.jpg")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    report = validate_dataset(root)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert report.ok and len(report.labels) == 3
    summary = report.summary()
    for expected in ["labelled frames: 3 (Training 3)", "unlabeled frames",
                     ": 2 (1 named Example*)", "image sizes: 32 x 32 (3)",
                     "AoP: 97.1 to 97.1 degrees", "PS1: x 20 to 22, y 5 to 7",
                     "problems: 0"]:
        assert expected in summary


def test_real_psfhs_is_valid(psfhs_root):
    report = validate_dataset(psfhs_root)
    assert report.problems == []
    assert "labelled frames: 1082 (Training 1082)" in report.summary()
    assert "image sizes: 256 x 256 (1082)" in report.summary()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iugc", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_reports_each_problem_without_traceback(tmp_path):
    root = write_dataset(tmp_path / "ds")
    _edit_row(root, 2, 2, "(6; 9)")
    (root / LABELED / "00003.png").unlink()
    result = _cli("validate-data", str(root))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 3
    assert "data row 2 (line 3)" in lines[0] and "data row 3 (line 4)" in lines[1]
    assert lines[2].endswith("2 problem(s) found")


def test_cli_on_real_data_prints_the_summary(psfhs_root):
    result = _cli("validate-data", str(psfhs_root))
    assert result.returncode == 0, result.stderr
    assert "labelled frames: 1082" in result.stdout and "problems: 0" in result.stdout
