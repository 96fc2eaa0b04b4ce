"""Shared fixtures. Real-data tests read ../shared/data/psfhs_aop beside the checkout; in CI
(CI=true) a missing folder is a failure, elsewhere the tests are skipped."""
from __future__ import annotations

import os
from pathlib import Path

# Tests run two workers on two cores: one thread each beats oversubscribed thread pools
# (measured 19 s vs 112 s for the SSL tests on a loaded machine). Set before torch starts.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

REPO = Path(__file__).resolve().parents[1]
PSFHS_AOP = Path(os.environ.get("IUGC_PSFHS_AOP", REPO.parent / "shared" / "data" / "psfhs_aop"))


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
