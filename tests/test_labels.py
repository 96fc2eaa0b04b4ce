"""Reading label CSVs of both IUGC 2025 forms into the labels table."""
from __future__ import annotations

import os

import numpy as np
import pytest

from dataset_builders import GOOD_ROWS, HEADER, write_csv, write_dataset, write_labelled
from iugc.data.labels import LABEL_COLUMNS, format_point, load_labels, parse_point
from iugc.errors import UserError
from iugc.geometry import aop_from_landmarks


@pytest.mark.parametrize("text, point", [
    ("(12, 34)", (12.0, 34.0)), (" ( 1.5 ,-2e1 ) ", (1.5, -20.0)), ("(0,0)", (0.0, 0.0)),
    ("(.5, 7.)", (0.5, 7.0))])
def test_parse_point(text, point):
    assert parse_point(text) == point


@pytest.mark.parametrize("text", ["", "12, 34", "(12; 34)", "(12, 34", "(a, 3)", "(1, 2, 3)",
                                  "(nan, 1)", "(1_0, 2)", "[1, 2]"])
def test_parse_point_rejects(text):
    with pytest.raises(ValueError):
        parse_point(text)


def test_format_point_round_trips():
    assert format_point(146, 31) == "(146, 31)"
    assert parse_point(format_point(1.25, 7.0)) == (1.25, 7.0)


def test_label_csv_in_a_dataset_root(tmp_path):
    labels = load_labels(write_dataset(tmp_path / "ds"))
    assert list(labels.columns) == LABEL_COLUMNS
    assert list(labels["filename"]) == ["00001.png", "00002.png", "00003.png"]
    assert set(labels["split"]) == {"Training"}
    first = labels.iloc[0]
    assert (first.ps1_x, first.ps1_y, first.ps2_x, first.ps2_y, first.fh1_x, first.fh1_y) == \
        (20, 5, 5, 8, 25, 20)
    assert first.aop == pytest.approx(97.125) and (first.width, first.height) == (32, 32)
    assert os.path.isabs(first.image_path) and os.path.isfile(first.image_path)


def test_iugc_validation_form_with_aop_results(tmp_path):
    """landmarks_data.csv names the third point 'AOP Tangency'; AoP comes from aop_results.csv."""
    root = write_dataset(tmp_path / "ds")
    rows = [row[:4] for row in GOOD_ROWS[:2]]
    write_labelled(root / "Validation", rows, ["Filename", "PS1", "PS2", "AOP Tangency"],
                   csv_name="landmarks_data.csv", size=(40, 30))
    write_csv(root / "Validation" / "aop_results.csv", ["Filename", "AOP"],
              [["00002.png", "101.5"], ["00001.png", "99.25"], ["unused.png", "1"]])
    labels = load_labels(root)
    validation = labels[labels["split"] == "Validation"]
    assert list(validation["aop"]) == [99.25, 101.5]
    assert list(validation["fh1_x"]) == [25, 26]
    assert set(validation["width"]) == {40} and set(validation["height"]) == {30}
    assert list(labels["split"]) == ["Training"] * 3 + ["Validation"] * 2


def test_no_aop_column_gives_nan(tmp_path):
    write_labelled(tmp_path / "frames", [row[:4] for row in GOOD_ROWS], HEADER[:4])
    labels = load_labels(tmp_path / "frames")
    assert len(labels) == 3 and labels["aop"].isna().all()


def test_headers_ignore_case_and_spaces_bom_and_crlf(tmp_path):
    folder = tmp_path / "Testing"
    write_labelled(folder, GOOD_ROWS)
    write_csv(folder / "label.csv", [" filename", "ps1 ", " Ps2", "fh1", " AOP "], GOOD_ROWS,
              newline="\r\n", bom=True)
    labels = load_labels(folder)
    assert len(labels) == 3 and labels["aop"].notna().all()
    assert set(labels["split"]) == {"Testing"}  # a single folder takes its split from its name


def test_first_problem_is_raised_with_file_and_row(tmp_path):
    rows = [GOOD_ROWS[0], ["00002.png", "(21, 6)", "(6; 9)", "(26, 21)", "97.1250"]]
    write_labelled(tmp_path / "frames", rows)
    with pytest.raises(UserError, match=r"label.csv data row 2 \(line 3\): column PS2: .*'\(6; 9\)'"):
        load_labels(tmp_path / "frames")


def test_real_psfhs_labels(psfhs_root):
    labels = load_labels(psfhs_root)
    assert len(labels) == 1082 and labels["filename"].is_unique
    assert (labels["width"] == 256).all() and (labels["height"] == 256).all()
    points = labels[[f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]].to_numpy()
    geometric = aop_from_landmarks(points.reshape(-1, 3, 2))
    assert np.abs(geometric - labels["aop"].to_numpy()).max() < 1e-3  # NaN fails too
