"""The smoke study through a real Slurm cluster (a one-node cluster started on this machine by
workflow/profiles/slurm-local/local-cluster.sh), compared with a local run of the same commit; and
the smoke study on real frames with one command (`make study DATA=...`).

These tests run on one worker (`make test` distributes by file), usually not test_study.py's. The
Slurm one (marker `slurm`) needs root and a machine with no Slurm or munge of its own: `make test`
leaves it out, `make test-cluster` runs it alone (CI runs both).
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from study import commit_all, copy_tracked, iugc, run, snakemake

from iugc.config import load_params, load_preset

pytestmark = pytest.mark.slow
CLUSTER = "workflow/profiles/slurm-local/local-cluster.sh"


@pytest.fixture(scope="module")
def smoke_copy(repo_root, tmp_path_factory):
    """A fresh copy of the repository set to the smoke preset (nothing run yet)."""
    work = copy_tracked(repo_root, tmp_path_factory.mktemp("smoke") / "study")
    iugc("params", "--preset", "smoke", cwd=work)
    iugc("dvc-yaml", cwd=work)
    commit_all(work)
    return work


@pytest.fixture(scope="module")
def local_cluster(repo_root, tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(repo_root / CLUSTER), "start", str(state)], capture_output=True, text=True)
    if started.returncode:
        pytest.fail(f"the local Slurm cluster did not start: {started.stderr[-2000:]}")
    yield state
    subprocess.run(["bash", str(repo_root / CLUSTER), "stop", str(state)], capture_output=True)


def _job_records(state) -> dict[int, dict]:
    """Slurm's own record of every finished job (JobCompType=jobcomp/filetxt), by job id."""
    records = {}
    for line in (state / "log" / "jobcomp.txt").read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[int(fields["JobId"])] = fields
    return records


# One chain of the smoke study, from the data to one evaluation: every kind of job the paper preset
# sends to a GPU node (pretraining, fine-tuning, evaluation) and the CPU jobs before them. The whole
# DAG through sbatch costs ~13 minutes of a 2-core CI machine for nothing more than this checks.
CHAIN = "results/eval/v4_moco/seed1"


@pytest.mark.slurm
def test_a_chain_of_the_study_runs_through_slurm_as_it_runs_locally(smoke_copy, local_cluster, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(smoke_copy, local, symlinks=True)
    snakemake("--cores", "2", CHAIN, cwd=local)

    cluster = tmp_path / "cluster"
    shutil.copytree(smoke_copy, cluster, symlinks=True)
    result = run(["timeout", "1200", "python", "-m", "snakemake", "--profile", "workflow/profiles/slurm-local",
                  "--slurm-keep-successful-logs", CHAIN], cluster, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Every job went through sbatch, with the resources the profile gives its rule.
    profile = __import__("yaml").safe_load((cluster / "workflow/profiles/slurm-local/config.yaml").read_text())
    records = _job_records(local_cluster)
    logs = sorted((cluster / ".snakemake" / "slurm_logs").rglob("*.log"))
    rules = {int(log.stem): log.relative_to(cluster / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")
             for log in logs}
    planned = re.findall(r"^(?:local)?rule (?!all)(\w+)", snakemake("-n", "-F", CHAIN, cwd=cluster).stdout, re.M)
    assert sorted(rules.values()) == sorted(planned)
    assert {"obtain", "pretrain", "finetune", "evaluate"} <= set(planned)
    for job_id, rule in rules.items():
        record = records[job_id]
        assert record["JobState"] == "COMPLETED", (rule, record)
        mem = profile["set-resources"].get(rule, {}).get("mem_mb", profile["default-resources"]["mem_mb"])
        assert f"mem={mem}M" in record["Tres"] and "cpu=1," in record["Tres"], (rule, record["Tres"])

    # ...and the model and its numbers are those of the local run, to the byte.
    for name in ("results/finetune/v4_moco/seed1/model.pt", f"{CHAIN}/metrics.json", f"{CHAIN}/predictions.csv"):
        assert (cluster / name).read_bytes() == (local / name).read_bytes(), name


def test_make_study_with_data_runs_on_real_frames(smoke_copy, psfhs_root, tmp_path):
    """`make study PRESET=smoke DATA=tree` on a copy of a few real frames: the tree is checked,
    params.yaml and dvc.yaml follow it, and the study runs end to end and says what data it read."""
    tree = tmp_path / "tree"
    labelled = tree / "Training" / "Labeled cases"
    labelled.mkdir(parents=True)
    labels = pd.read_csv(psfhs_root / "Training" / "Labeled cases" / "label.csv")
    chosen = labels.iloc[::12].head(70)  # frames from across the set
    for name in chosen["Filename"]:  # contents only: the shared frames may be read-only, and this copy gets damaged
        shutil.copyfile(psfhs_root / "Training" / "Labeled cases" / name, labelled / name)
    chosen.to_csv(labelled / "label.csv", index=False)
    (tree / "README.md").write_text("# A few PSFHS frames\n")

    work = tmp_path / "study"
    shutil.copytree(smoke_copy, work, symlinks=True)
    made = run(["make", "study", "PRESET=smoke", f"DATA={tree}"], work, check=False)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    params = load_params(work / "params.yaml")
    assert params["data"]["source"] == "iugc2025" and params["data"]["root"] == str(tree)
    assert params["preset"] == "smoke" and load_preset("smoke")["study"] == params["study"]
    assert iugc("dvc-yaml", "--check", cwd=work).returncode == 0
    source = json.loads((work / "data" / "dataset" / "source.json").read_text())
    assert source["name"] == "A few PSFHS frames" and source["n_labeled"] == 70
    page = html.unescape((work / "reports" / "report.html").read_text())
    assert "iugc study: A few PSFHS frames, preset 'smoke'" in page

    # A tree with a problem is refused before anything runs, in one line.
    (labelled / chosen["Filename"].iloc[0]).write_bytes(b"not a png")
    refused = run(["make", "study", f"DATA={tree}"], work, check=False)
    assert refused.returncode != 0 and "not an image file" in refused.stderr
