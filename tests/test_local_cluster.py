"""The one-node cluster script is safe on a machine that runs Slurm or munge of its own: it refuses
to start there, and `stop` ends only processes whose PIDs it recorded. Stand-in daemons (a copy
of `sleep` under a daemon's name) play the machine's own; nothing here needs root or starts Slurm."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

CLUSTER = "workflow/profiles/slurm-local/local-cluster.sh"


@pytest.fixture
def stand_in(tmp_path):
    """Start a process named like a daemon (e.g. ``slurmd``) that the script did not start."""
    started = []

    def start(name: str) -> subprocess.Popen:
        program = tmp_path / "bin" / name
        program.parent.mkdir(exist_ok=True)
        shutil.copy2(shutil.which("sleep"), program)
        process = subprocess.Popen([str(program), "300"])
        started.append(process)
        time.sleep(0.2)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def cluster(repo_root, *args):
    return subprocess.run(["bash", str(repo_root / CLUSTER), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("daemon", ["munged", "slurmctld", "slurmd"])
def test_start_refuses_a_machine_that_runs_its_own_daemon(repo_root, tmp_path, stand_in, daemon):
    theirs = stand_in(daemon)
    result = cluster(repo_root, "start", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"a {daemon} (pid " in result.stderr and "did not start" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert theirs.poll() is None
    assert not (tmp_path / "state").exists()  # refused before writing anything


def test_stop_ends_only_the_processes_it_recorded(repo_root, tmp_path, stand_in):
    theirs = stand_in("slurmd")
    state = tmp_path / "state"
    assert cluster(repo_root, "stop", str(state)).returncode == 0
    assert theirs.poll() is None  # not found by name

    # A recorded PID that now belongs to another program (reused) is left alone too.
    other = stand_in("sleeper")
    (state / "pids").mkdir(parents=True)
    (state / "pids" / "slurmd").write_text(f"{other.pid}\n")
    assert cluster(repo_root, "stop", str(state)).returncode == 0
    assert other.poll() is None and theirs.poll() is None
    assert not (state / "pids" / "slurmd").exists()


def test_status_says_what_it_started(repo_root, tmp_path):
    result = cluster(repo_root, "status", str(tmp_path / "state"))
    assert result.returncode == 0
    assert "slurmd: not running (not started by this script)" in result.stdout
