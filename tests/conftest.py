"""Shared fixtures. Real-data tests read ../shared/data/psfhs_aop beside the checkout; in CI
(CI=true) a missing folder is a failure, elsewhere the tests are skipped."""
from __future__ import annotations

import atexit
import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# Tests run two workers on two cores: one thread each beats oversubscribed thread pools
# (measured 19 s vs 112 s for the SSL tests on a loaded machine). Set before torch starts.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The tests write nothing outside the checkout and the system's temporary folder: the caches that
# Snakemake, matplotlib and torch keep in the home folder, and DVC's in /var/tmp, go to a
# temporary folder of this test process (its commands inherit the variables), removed at exit.
_CACHES = Path(tempfile.mkdtemp(prefix="iugc-test-caches-"))
atexit.register(shutil.rmtree, _CACHES, ignore_errors=True)
for _name, _folder in (("XDG_CACHE_HOME", "cache"), ("MPLCONFIGDIR", "matplotlib"), ("DVC_SITE_CACHE_DIR", "dvc")):
    os.environ[_name] = str(_CACHES / _folder)

import pytest

REPO = Path(__file__).resolve().parents[1]
PSFHS_AOP = Path(os.environ.get("IUGC_PSFHS_AOP", REPO.parent / "shared" / "data" / "psfhs_aop"))


@pytest.fixture(scope="session")
def benchmark_script():
    """Loads a script of benchmarks/ (by its name, without .py) as a module, to test its arithmetic."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def psfhs_root() -> Path:
    """Root of the real PSFHS frames in IUGC 2025 layout."""
    if not (PSFHS_AOP / "Training" / "Labeled cases" / "label.csv").is_file():
        message = f"real data not found at {PSFHS_AOP}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must have ../shared beside the checkout)")
        pytest.skip(message)
    return PSFHS_AOP


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def finished_study(repo_root, tmp_path_factory) -> Path:
    """The smoke study on the phantom, run by Snakemake in a copy of the repository (committed to
    git as a fresh clone is). Tests that use it copy it first (``study.copy_study``) or only read
    it. It is built once per test run, in the folder the test workers share: the first worker to
    ask builds it under a lock, and a worker asking meanwhile waits (test_study.py's worker asks
    first; the few tests in other files come late in the other worker's queue)."""
    from study import commit_all, copy_tracked, iugc, snakemake

    shared = run_folder(tmp_path_factory)
    work, built = shared / "finished-study", shared / "finished-study.built"
    with open(shared / "finished-study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a failed build
        if not built.is_file():
            shutil.rmtree(work, ignore_errors=True)  # what a failed build left
            copy_tracked(repo_root, work)
            iugc("params", "--preset", "smoke", cwd=work)
            iugc("dvc-yaml", cwd=work)
            commit_all(work)
            snakemake("--cores", "2", cwd=work)
            built.touch()
    return work


def run_folder(tmp_path_factory) -> Path:
    """The temporary folder of this test run: the workers' own folders lie in it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


# The calibration test's figures (tests/test_calibration.py), shown in the run's summary, also
# when xdist workers ran it: they append to one file in the main process's caches folder (the
# workers inherit its path). Not in pytest's folder: on success (tmp_path_retention_policy) that
# is removed before the summary is written.
os.environ.setdefault("IUGC_TEST_FIGURES", str(_CACHES / "calibration-figures.txt"))


def figures_file() -> Path:
    return Path(os.environ["IUGC_TEST_FIGURES"])


def pytest_terminal_summary(terminalreporter, config):
    path = figures_file()
    if path.is_file():
        terminalreporter.section("calibration of the claims' intervals and tests")
        for line in sorted(path.read_text().splitlines()):
            terminalreporter.write_line(line)
