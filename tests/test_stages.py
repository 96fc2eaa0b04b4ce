"""Stages on real data and the stage runner's contract (declared params only, one-line errors)."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from iugc.config import load_preset
from iugc.stages.data import obtain, read_dataset, split, validate
from iugc.stages.runner import run_stage


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
    run_stage("obtain", obtain, params_path=params, out="data/dataset")
    run_stage("validate", validate, params_path=params, dataset="data/dataset", out="results/validation.json")
    run_stage("split", split, params_path=params, dataset="data/dataset",
              validation="results/validation.json", out="data/splits.csv")
    labels, unlabeled, source = read_dataset("data/dataset")
    assert len(labels) == 1082 and len(unlabeled) == 0 and source["source"] == "iugc2025"
    assert all(path.startswith(str(psfhs_root.resolve())) for path in labels["image_path"])
    table = pd.read_csv("data/splits.csv")
    assert set(table["subset"]) == {"train", "val", "test"}
    assert table.groupby("group")["subset"].nunique().max() == 1       # groups never straddle
    assert 0.15 < (table["subset"] == "test").mean() < 0.25
    assert _snapshot(psfhs_root) == before                               # nothing written there


def test_obtain_converts_a_psfhs_release(psfhs_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params_file(tmp_path, source="psfhs", root=str(psfhs_root / "raw"))
    run_stage("obtain", obtain, params_path=params, out="data/dataset")
    labels, _, _ = read_dataset("data/dataset")
    published = pd.read_csv(psfhs_root / "Training" / "Labeled cases" / "label.csv").set_index("Filename")
    assert len(labels) == 12
    for _, row in labels.iterrows():
        assert row["aop"] == pytest.approx(published.loc[row["filename"], "AoP"], abs=1e-4)


def test_a_stage_sees_only_the_params_it_declares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params_file(tmp_path, source="phantom")

    def reads_undeclared(view, **_):
        return view["finetune"]["epochs"]

    with pytest.raises(KeyError, match="finetune"):
        run_stage("split", reads_undeclared, params_path=params)


def test_a_stage_reports_a_user_error_in_one_line(repo_root, tmp_path):
    params = _params_file(tmp_path, source="iugc2025", root=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, str(repo_root / "workflow" / "scripts" / "obtain.py"),
                             "--out", str(tmp_path / "out"), "--params", str(params)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("obtain: error:") and "missing" in result.stderr
