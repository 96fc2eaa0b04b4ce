"""Helpers for the tests that run the study: a working copy of the repository, commands run in
it with the project's environment, and what Snakemake and DVC say they would run or ran."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from iugc.config import load_params, params_hash
from iugc.stages.registry import get_stage

BIN = Path(sys.executable).parent
VENV = BIN.parent
V2 = "v2_moco_cbam_adv"  # the adversarial variant: the one a change of finetune.lambda_adv touches


# The test repositories' commits need an author; a user's machine may have none configured, and
# the tests write no git configuration of their own.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "iugc tests", "GIT_AUTHOR_EMAIL": "tests@iugc.invalid",
                "GIT_COMMITTER_NAME": "iugc tests", "GIT_COMMITTER_EMAIL": "tests@iugc.invalid"}


def environment(**overrides) -> dict:
    """The environment of a user's shell with the project's venv on PATH (``None`` removes a
    variable): what Snakemake or DVC would inherit."""
    env = {**GIT_IDENTITY, **os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(cmd, cwd, check=True, env=None, **kwargs):
    result = subprocess.run(cmd, cwd=cwd, env=env or environment(), capture_output=True, text=True, **kwargs)
    if check and result.returncode:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def snakemake(*args, cwd, check=True, env=None):
    return run([sys.executable, "-m", "snakemake", *args], cwd, check=check, env=env)


def dvc(*args, cwd, check=True, env=None):
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check, env=env)


def iugc(*args, cwd, check=True, env=None):
    return run([sys.executable, "-m", "iugc", *args], cwd, check=check, env=env)


def copy_tracked(repo_root: Path, work: Path) -> Path:
    """The repository's tracked (and untracked, not ignored) files in ``work``, as a fresh clone
    has them, committed to a new git repository there."""
    files = run(["git", "ls-files", "-co", "--exclude-standard"], repo_root).stdout.splitlines()
    for name in files:
        if (repo_root / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / name, work / name, follow_symlinks=False)
    (work / ".venv").symlink_to(VENV)  # `make study` finds the project's environment installed...
    os.utime(work / "pyproject.toml", (0, 0))  # ...and up to date (never reinstalls it from the copy)
    return work


def commit_all(work: Path, message: str = "study") -> None:
    run(["git", "init", "-q"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", message], work)


def copy_study(study: Path, work: Path) -> Path:
    """A copy of a finished study (modification times kept, as a second checkout would not)."""
    shutil.copytree(study, work, symlinks=True)
    return work


def snakemake_plan(cwd) -> set[str]:
    """Jobs `snakemake -n` would run, named like DVC stages (stage-wildcard-wildcard)."""
    out = snakemake("-n", "--cores", "1", cwd=cwd).stdout
    jobs, current = set(), None

    def close():
        if current and current[0] != "all":
            jobs.add(get_stage(current[0]).job_id(current[1]).replace("@", "-"))

    # The dry-run listing: "rule NAME:" followed by an optional "wildcards: k=v, ..." line.
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            close()
            current = (m.group(1), {})
            continue
        w = re.match(r"^\s+wildcards: (.*)$", line)
        if w and current:
            current[1].update(pair.split("=", 1) for pair in w.group(1).split(", "))
    close()
    return jobs


def dvc_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_param(work, section: str, key: str, value) -> dict:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params[section][key] = value
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_report_is_current(work):
    """Nothing left to run, and the report records the parameters in force."""
    assert snakemake_plan(work) == set()
    provenance = json.loads((work / "reports" / "provenance.json").read_text())
    report = get_stage("report")
    assert provenance["params_hash"] == params_hash(report.view(load_params(work / "params.yaml"), {}))
