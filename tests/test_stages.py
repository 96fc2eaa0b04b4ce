"""Stages on real data and the stage runner's contract (declared params only, one-line errors)."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from iugc.config import load_preset
from iugc.data.manifest import SPLITS_CSV, read_dataset
from iugc.stages import runner
from iugc.stages.registry import Stage


def run_stage(name, params_path, **args):
    """``iugc stage NAME --params PARAMS --ARG VALUE ...`` in this process; its exit status."""
    argv = [name, "--params", str(params_path)]
    for key, value in args.items():
        argv += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    return runner.main(argv)


def _params_file(tmp_path, **data):
    params = load_preset("smoke")
    params["data"].update(max_labeled=None, **data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _snapshot(folder):
    return sorted((p.relative_to(folder), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_obtain_validate_split_on_the_real_frames(psfhs_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(psfhs_root)
    params = _params_file(tmp_path, source="iugc2025", root=str(psfhs_root))
    assert run_stage("obtain", params, source=psfhs_root, out="data/dataset") == 0
    assert run_stage("validate", params, dataset="data/dataset", out="results/validate") == 0
    assert run_stage("split", params, dataset="data/dataset", validation="results/validate",
                     out="results/split") == 0
    labels, unlabeled, source = read_dataset("data/dataset")
    assert len(labels) == 1082 and len(unlabeled) == 0 and source["source"] == "iugc2025"
    assert all(path.startswith(str(psfhs_root.resolve())) for path in labels["image_path"])
    table = pd.read_csv(f"results/split/{SPLITS_CSV}")
    assert set(table["subset"]) == {"train", "val", "test"}
    assert table.groupby("group")["subset"].nunique().max() == 1       # groups never straddle
    assert 0.15 < (table["subset"] == "test").mean() < 0.25
    assert _snapshot(psfhs_root) == before                               # nothing written there


def test_obtain_converts_a_psfhs_release(psfhs_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params_file(tmp_path, source="psfhs", root=str(psfhs_root / "raw"))
    assert run_stage("obtain", params, source=psfhs_root / "raw", out="data/dataset") == 0
    labels, _, _ = read_dataset("data/dataset")
    published = pd.read_csv(psfhs_root / "Training" / "Labeled cases" / "label.csv").set_index("Filename")
    assert len(labels) == 12
    for _, row in labels.iterrows():
        assert row["aop"] == pytest.approx(published.loc[row["filename"], "AoP"], abs=1e-4)


def test_a_stage_sees_only_the_params_it_declares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params_file(tmp_path, source="phantom")

    def reads_undeclared(view, *, out):
        return view["finetune"]["epochs"]

    declared = Stage("split", reads_undeclared, lambda params, wildcards: ["split", "seed"], (), (), owns_out=True)
    with pytest.raises(KeyError, match="finetune"):
        runner.run_job(declared, yaml.safe_load(params.read_text()), {"out": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()  # a failed job leaves no output behind


def test_a_stage_reports_a_user_error_in_one_line(repo_root, tmp_path):
    params = _params_file(tmp_path, source="iugc2025", root=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, "-m", "iugc", "stage", "obtain", "--source", str(tmp_path / "missing"),
                             "--out", str(tmp_path / "out"), "--params", str(params)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("obtain: error:") and "missing" in result.stderr


def test_the_organisers_held_out_frames_are_split_into_acquisitions(tmp_path, monkeypatch):
    """Testing and Validation labels present: they are the test and (part of the) val subsets, and
    their frames are grouped into acquisitions like the training frames (noise frames look unlike
    each other: one acquisition each), never one group for a whole set, and never a group shared
    with the training frames or between the two sets."""
    from dataset_builders import GOOD_ROWS, write_csv, write_dataset, write_labelled

    monkeypatch.chdir(tmp_path)
    root = write_dataset(tmp_path / "ds")
    write_labelled(root / "Testing", [[f"0001{k}.png", *GOOD_ROWS[0][1:]] for k in range(4)])
    write_labelled(root / "Validation", [[f"0002{k}.png", *GOOD_ROWS[0][1:4]] for k in range(3)],
                   ["Filename", "PS1", "PS2", "AOP Tangency"], csv_name="landmarks_data.csv")
    write_csv(root / "Validation" / "aop_results.csv", ["Filename", "AOP"], [[f"0002{k}.png", "97.125"] for k in range(3)])
    params = _params_file(tmp_path, source="iugc2025", root=str(root))
    assert run_stage("obtain", params, source=root, out="data/dataset") == 0
    assert run_stage("validate", params, dataset="data/dataset", out="results/validate") == 0
    assert run_stage("split", params, dataset="data/dataset", validation="results/validate", out="results/split") == 0
    table = pd.read_csv(f"results/split/{SPLITS_CSV}").set_index("filename")
    test, val = table.loc[[f"0001{k}.png" for k in range(4)]], table.loc[[f"0002{k}.png" for k in range(3)]]
    assert (test["subset"] == "test").all() and (val["subset"] == "val").all()
    assert test["group"].nunique() == 4 and val["group"].nunique() == 3
    training = table.loc[["00001.png", "00002.png", "00003.png"], "group"]
    assert not set(training) & set(test["group"]) and not set(test["group"]) & set(val["group"])
    assert table.groupby("group")["subset"].nunique().max() == 1
