"""The two orchestrators agree: one DAG, the same jobs, the same reruns.

The end-to-end runs of the study are in test_study.py.
"""
from __future__ import annotations

import sys

import pytest
import yaml
from study import run

from iugc.config import load_params, load_preset
from iugc.stages.registry import get_stage
from iugc.workflow import render_dvc_yaml, snakemake_jobs, study_jobs


def test_every_preset_declares_params_that_exist():
    for name in ("paper", "quick", "smoke"):
        params = load_preset(name)
        for stage, wildcards in study_jobs(params):
            for key in get_stage(stage).keys(params, wildcards):
                node = params
                for part in key.split("."):
                    assert part in node, f"{stage}@{wildcards} declares missing key {key}"
                    node = node[part]


def test_lambda_adv_is_read_by_the_adversarial_variant_only():
    params = load_preset("paper")
    def reads(keys, key):
        return any(key == k or key.startswith(k + ".") for k in keys)

    finetune = get_stage("finetune")
    readers = [v for v in params["variants"]
               if reads(finetune.keys(params, {"variant": v, "seed": "1"}), "finetune.lambda_adv")]
    assert readers == ["v2_moco_cbam_adv"]


def test_snakemake_lint_is_clean(repo_root):
    result = run([sys.executable, "-m", "snakemake", "--lint"], repo_root, check=False)
    assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_dvc_yaml_is_generated_from_the_snakefile(repo_root):
    """dvc.yaml in the repository is exactly what `iugc dvc-yaml` derives from the DAG."""
    expected = render_dvc_yaml(snakemake_jobs(workdir=repo_root), load_params(repo_root / "params.yaml"))
    assert (repo_root / "dvc.yaml").read_text() == expected, "run `iugc dvc-yaml` and commit dvc.yaml"
    stages = yaml.safe_load(expected)["stages"]
    jobs = snakemake_jobs(workdir=repo_root)
    assert len(stages) == len(jobs)
    assert {s["cmd"] for s in stages.values()} == {j["cmd"] for j in jobs}
    assert sorted(o if isinstance(o, str) else next(iter(o)) for s in stages.values() for o in s["outs"]) == \
        sorted(o for j in jobs for o in j["outs"])


def test_slurm_profile_validates(repo_root):
    result = run([sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "-n", "--quiet", "rules"],
                 repo_root, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_runs_the_stage_of_its_name_with_its_own_snapshot(repo_root):
    """The rule files write each stage's name in three places (rule, snapshot, command); they agree."""
    from iugc.workflow import SNAPSHOT_DIR

    for job in snakemake_jobs(workdir=repo_root):
        stage = get_stage(job["rule"])
        assert job["cmd"].startswith(f"iugc stage {stage.name} "), job["cmd"]
        snapshot = str(SNAPSHOT_DIR / f"{stage.job_id(job['wildcards'])}.json")
        assert snapshot in job["deps"], (job["rule"], job["deps"][:2])


def test_one_job_per_variant_and_seed_in_both_tools(repo_root):
    params = load_params(repo_root / "params.yaml")
    dvc_stages = set(yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"])
    snakemake = {get_stage(j["rule"]).job_id(j["wildcards"]).replace("@", "-") for j in snakemake_jobs(workdir=repo_root)}
    for stage in ("finetune", "evaluate"):
        expected = {f"{stage}-{v}-{s}" for v in params["variants"] for s in params["study"]["seeds"]}
        assert {name for name in dvc_stages if name.startswith(f"{stage}-")} == expected
        assert {name for name in snakemake if name.startswith(f"{stage}-")} == expected
    assert len(params["study"]["seeds"]) >= 2
