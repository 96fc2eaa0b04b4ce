"""A failed job of the study never leaves stale results, replayed on the finished smoke study.

Apart from test_study.py so that the other test worker can run it: it trains twice again, the
longest of the replays. Both files use the one finished study (``finished_study`` in conftest.py,
built once per test run).
"""
from __future__ import annotations

import json

import pytest
import torch
from study import V2, assert_report_is_current, copy_study, set_param, snakemake

pytestmark = pytest.mark.slow


def poison_checkpoint(work, stage: str, wildcard: str, seed: int) -> None:
    """A checkpoint written under other parameters: the job refuses it and fails."""
    folder = work / "results" / "checkpoints" / stage / wildcard / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config_hash": "deadbeef", "encoder_hash": None}, folder / "checkpoint.pt")


def test_a_failed_job_never_leaves_stale_results(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    old_metrics = (work / "reports" / "metrics.json").read_text()
    set_param(work, "finetune", "lambda_adv", 0.02)
    poison_checkpoint(work, "finetune", V2, 1)
    failed = snakemake("--cores", "2", cwd=work, check=False)
    assert failed.returncode != 0 and "delete the file to start over" in failed.stdout + failed.stderr
    assert not (work / "results" / "finetune" / V2 / "seed1").exists()

    (work / "results" / "checkpoints" / "finetune" / V2 / "seed1" / "checkpoint.pt").unlink()  # the advice
    snakemake("--cores", "2", cwd=work)
    model = work / "results" / "finetune" / V2 / "seed1" / "model.pt"
    assert model.is_file()
    evaluation = json.loads((work / "results" / "eval" / V2 / "seed1" / "stamp.json").read_text())
    assert evaluation["inputs"][f"results/finetune/{V2}/seed1"].startswith("stamp:")
    assert (work / "reports" / "metrics.json").read_text() != old_metrics
    assert_report_is_current(work)

    # The same after a failed forced rerun of another variant.
    poison_checkpoint(work, "finetune", "v1_hrnet_supervised", 2)
    forced = snakemake("--cores", "2", "--forcerun", "results/finetune/v1_hrnet_supervised/seed2",
                       cwd=work, check=False)
    assert forced.returncode != 0
    (work / "results" / "checkpoints" / "finetune" / "v1_hrnet_supervised" / "seed2" / "checkpoint.pt").unlink()
    snakemake("--cores", "2", cwd=work)
    assert (work / "results" / "finetune" / "v1_hrnet_supervised" / "seed2" / "model.pt").is_file()
    assert_report_is_current(work)
