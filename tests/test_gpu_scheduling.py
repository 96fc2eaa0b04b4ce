"""GPUs in the workflow: which jobs ask for one, how many run at once, which GPU each takes, what
Slurm is asked for, and the determinism switch the job runner applies."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys

import pytest
import torch
from study import environment, iugc, run

from iugc import gpus
from iugc.stages.registry import stages
from iugc.stages.runner import CUBLAS_WORKSPACE, use_determinism

GPU_RULES = {name for name, declared in stages().items() if declared.on_device}  # pretrain, finetune, calibrate, evaluate
THREADS = 3  # not a preset's value: cpus_per_task must follow compute.threads, whatever it is


def dry_run_resources(work, *args, env=None) -> dict[str, list[dict]]:
    """Per rule, the resources (and threads) `snakemake -n` lists for each of its jobs.

    A dry run caps threads at --cores (1 by default), a Slurm submission does not: --cores 64."""
    out = run([sys.executable, "-m", "snakemake", "-n", "--cores", "64", *args], work, env=env).stdout
    jobs: dict[str, list[dict]] = {}
    current = None
    for line in out.splitlines():
        rule = re.match(r"^(?:local)?rule (\w+):", line)
        if rule:
            current = {"threads": 1}
            jobs.setdefault(rule.group(1), []).append(current)
        elif current is not None and (m := re.match(r"^\s+(threads|resources): (.*)$", line)):
            if m.group(1) == "threads":
                current["threads"] = int(m.group(2))
            else:
                current.update(pair.split("=", 1) for pair in m.group(2).split(", "))
    jobs.pop("all", None)
    return jobs


@pytest.fixture
def study_folder(repo_root, tmp_path):
    """The workflow with the paper preset on CUDA, and a machine with two GPUs (a stand-in
    nvidia-smi on PATH)."""
    work = tmp_path / "study"
    shutil.copytree(repo_root / "workflow", work / "workflow")
    iugc("params", "--preset", "paper", "--set", "compute.device=cuda", "--set", f"compute.threads={THREADS}",
         "--out", str(work / "params.yaml"), cwd=work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: Stand-in (UUID: GPU-a)"\n'
                                        'echo "GPU 1: Stand-in (UUID: GPU-b)"\n')
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = environment(CUDA_VISIBLE_DEVICES=None)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return work, env


def test_training_and_evaluation_jobs_ask_for_a_gpu_on_cuda(study_folder):
    work, env = study_folder
    jobs = dry_run_resources(work, env=env)
    assert GPU_RULES == {"pretrain", "finetune", "calibrate", "evaluate"} and GPU_RULES <= set(jobs)
    for rule, listed in jobs.items():
        for job in listed:
            assert job["threads"] == THREADS, (rule, job)  # every rule declares the threads it runs
            assert job.get("gpu") == ("1" if rule in GPU_RULES else None), (rule, job)


def test_no_job_asks_for_a_gpu_on_the_cpu(study_folder):
    work, env = study_folder
    iugc("params", "--from", "params.yaml", "--set", "compute.device=cpu", "--out", "params.yaml", cwd=work)
    jobs = dry_run_resources(work, env=env)
    assert all(job.get("gpu") in (None, "0") for listed in jobs.values() for job in listed)


def test_locally_at_most_as_many_gpu_jobs_as_gpus(study_folder):
    """The workflow registers gpu=<GPUs present>; a machine without GPUs gets 0 and `--resources`
    overrides. (A job's gpu request above the global limit is cut to it, so it shows there.)"""
    work, env = study_folder
    assert {job["gpu"] for job in dry_run_resources(work, env=env)["finetune"]} == {"1"}
    no_gpu = environment(CUDA_VISIBLE_DEVICES="")
    assert {job["gpu"] for job in dry_run_resources(work, env=no_gpu)["finetune"]} == {"0"}
    given = dry_run_resources(work, "--resources", "gpu=1", env=no_gpu)
    assert {job["gpu"] for job in given["finetune"]} == {"1"}


def test_slurm_requests_follow_compute_threads(study_folder):
    work, env = study_folder
    jobs = dry_run_resources(work, "--profile", "workflow/profiles/slurm", env=environment())
    for rule, listed in jobs.items():
        for job in listed:
            assert job["cpus_per_task"] == str(THREADS), (rule, job)
            assert job.get("gpu") == ("1" if rule in GPU_RULES else None), (rule, job)


def test_each_job_takes_a_gpu_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(gpus, "LOCK_DIR", tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with open(tmp_path / "gpu-0.lock", "w") as held:  # another job holds GPU 0
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert gpus.claim_gpu() == "1"
    assert gpus.visible_gpus() == ["1"]
    assert gpus.claim_gpu() is None  # one GPU visible: nothing to choose (a Slurm job's case)


def test_the_runner_applies_compute_deterministic(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    try:
        use_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        use_determinism(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]
