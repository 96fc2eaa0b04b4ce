"""`make bench` in its short mode: it runs, and its figures hang together."""
from __future__ import annotations

import json
import subprocess
import sys


def test_the_benchmark_runs_and_reports_against_the_machine_limit(repo_root, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(repo_root / "benchmarks" / "run.py"), "--short", "--json", str(out)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["machine"]["matmul_gflops"] > 0
    steps = {(r["preset"], r["frozen"]): r for r in record["training_step"]}
    assert set(steps) == {("quick", True), ("quick", False)}
    for row in steps.values():
        assert row["seconds_per_step"] > 0 and 0 < row["share_of_matmul_rate"] < 2
    # training the encoder costs more arithmetic than keeping it frozen
    assert steps[("quick", False)]["tflop_per_step"] > steps[("quick", True)]["tflop_per_step"]
    assert record["inference"][0]["latency_batch1_ms"] > 0 and record["data_pipeline"]["augment_frames_per_second"] > 0
    assert record["peak_memory_mb"] > 0 and "of limit" in result.stdout
