"""The device check (benchmarks/gpu_check.sh) in its tiny mode: prepared and run end to end on the
CPU, as it runs on a lent GPU, with the smoke preset's sizes."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.realdata

CHAIN = ["pretrain", "finetune", "calibrate", "evaluate"]


def test_the_device_check_runs_end_to_end_in_tiny_mode(repo_root, psfhs_root, tmp_path):
    folder, out = tmp_path / "check", tmp_path / "out"
    for action in ("prepare", "run"):
        result = subprocess.run([sys.executable, str(repo_root / "benchmarks" / "gpu_check.py"), action, "--tiny",
                                 "--folder", str(folder), "--data", str(psfhs_root), "--out", str(out)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=900)
        assert result.returncode == 0, (action, result.stdout[-3000:], result.stderr[-3000:])
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["errors"] == {}

    tests = record["cuda_tests"]
    assert tests["tests"] >= 6 and tests["failures"] == tests["errors"] == 0
    if not torch.cuda.is_available():
        assert tests["skipped"] == tests["tests"]

    rows = record["training_step"]
    assert len(rows) == 4 + 2  # batch x encoder x precision, and autotuned kernels at the largest batch
    for row in rows:
        assert row["seconds_per_step"] > 0 and row["share_of_matmul_rate"] > 0 and row["tflop_per_step"] > 0
    assert record["matmul_gflops"]["float16"] > 0

    assert [entry["stage"] for entry in record["chain"][:4]] == CHAIN
    assert record["chain"][1]["device"]["deterministic"] is True
    assert math.isfinite(record["chain"][3]["test_mre_px"])
    assert record["predict_max_difference_px"] <= 0.1
    table = (out / "gpu_check.md").read_text()
    assert "| chain stage |" in table and "s/step" in table and "Tests marked cuda" in table
