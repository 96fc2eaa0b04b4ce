"""The two orchestrators agree: one DAG, the same jobs, the same reruns.

The end-to-end test runs the smoke preset on the phantom through Snakemake and then DVC in a
temporary git repository (a copy of the tracked files), checking the invariants of the README.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iugc.config import load_params, load_preset
from iugc.stages.registry import get_stage, stages
from iugc.stages.views import pretrain_methods
from iugc.workflow import render_dvc_yaml, snakemake_jobs

BIN = Path(sys.executable).parent


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def jobs_of(params) -> list[tuple[str, dict]]:
    """(stage, wildcards) of every job of the study for a parameter set."""
    seeds = [str(seed) for seed in params["study"]["seeds"]]
    dimensions = {"method": pretrain_methods(params), "variant": list(params["variants"]), "seed": seeds}
    jobs = []
    for name, stage in stages().items():
        combos = [{}]
        for wildcard in stage.wildcards:
            combos = [{**c, wildcard: value} for c in combos for value in dimensions[wildcard]]
        jobs += [(name, combo) for combo in combos]
    return jobs


def test_every_preset_declares_params_that_exist():
    for name in ("paper", "quick", "smoke"):
        params = load_preset(name)
        for stage, wildcards in jobs_of(params):
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


def _snakemake_plan(cwd) -> set[str]:
    """Jobs `snakemake -n` would run, named like DVC stages (stage-wildcard-wildcard)."""
    out = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd).stdout
    jobs, current = set(), None
    # Parse the dry-run job listing: "rule NAME:" followed by an optional "wildcards: k=v, ..." line.
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            if current:
                jobs.add(current[0] if current[0] == "all" else get_stage(current[0]).job_id(current[1]))
            current = (m.group(1), {})
            continue
        w = re.match(r"^\s+wildcards: (.*)$", line)
        if w and current:
            current[1].update(pair.split("=", 1) for pair in w.group(1).split(", "))
    if current:
        jobs.add(current[0] if current[0] == "all" else get_stage(current[0]).job_id(current[1]))
    jobs.discard("all")
    return {job.replace("@", "-") for job in jobs}


def _dvc_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
def test_study_end_to_end_snakemake_then_dvc(repo_root, tmp_path):
    work = tmp_path / "study"
    files = run(["git", "ls-files", "-co", "--exclude-standard"], repo_root).stdout.split()
    for name in files:
        if (repo_root / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / name, work / name, follow_symlinks=False)
    run([sys.executable, "-m", "iugc", "params", "--preset", "smoke"], work)
    run([sys.executable, "-m", "iugc", "dvc-yaml"], work)
    run(["git", "init", "-q"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "study"], work)
    run([sys.executable, "-m", "dvc", "init", "-q"], work)

    # 1. Snakemake builds the whole study; the report is there.
    run([sys.executable, "-m", "snakemake", "--cores", "2"], work)
    for name in ("ablation.md", "ablation.csv", "ablation.tex", "per_landmark.csv", "metrics.json",
                 "provenance.json"):
        assert (work / "reports" / name).is_file(), name
    figures = {p.name for p in (work / "reports" / "figures").glob("*.png")}
    assert {"fig4_target_heatmaps.png", "fig5_predictions.png", "training_curves.png",
            "aop_agreement.png", "error_distributions.png", "pretraining_curves.png"} <= figures
    table = (work / "reports" / "ablation.md").read_text()
    assert "phantom" in table and "smoke" in table and "**" in table and "<u>" in table

    # 2. ...and DVC agrees that everything is up to date (Snakemake's onsuccess recorded dvc.lock).
    status = run([sys.executable, "-m", "dvc", "status"], work).stdout
    assert "up to date" in status, status
    assert _snakemake_plan(work) == set()

    # 3. One parameter: both name the same stages, only the adversarial variant and the report.
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["finetune"]["lambda_adv"] = 0.02
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    planned = _snakemake_plan(work)
    seeds = [str(seed) for seed in params["study"]["seeds"]]
    assert planned == {*(f"{stage}-v2_moco_cbam_adv-{seed}" for stage in ("finetune", "evaluate") for seed in seeds),
                       "ablation", "figures", "report"}, planned
    repro = run([sys.executable, "-m", "dvc", "repro"], work).stdout
    assert _dvc_ran(repro) == planned, repro

    # 4. After `dvc repro`, Snakemake has nothing to do, and a second repro does nothing.
    assert _snakemake_plan(work) == set()
    again = run([sys.executable, "-m", "dvc", "repro"], work).stdout
    assert _dvc_ran(again) == set(), again

    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert set(metrics) == set(params["variants"])
    show = run([sys.executable, "-m", "dvc", "metrics", "show"], work).stdout
    assert "v2_moco_cbam_adv" in show
    plots = json.loads(run([sys.executable, "-m", "dvc", "plots", "show", "--json"], work).stdout)
    sources = json.dumps(plots["data"])
    assert "dvclive/plots/metrics" in sources and "losses.csv" in sources, sources[:2000]
