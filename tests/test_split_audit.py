"""benchmarks/split_audit.py's arithmetic: reweighting one distribution to another and the effective
number of weighted frames. The nearness-scaled radius against the plain one is
``conformal.scaled_width_ratio`` (test_conformal.py); the script's run on a finished study is in
test_study.py."""
from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def audit(benchmark_script):
    return benchmark_script("split_audit")


def test_shift_weights_give_the_source_the_targets_shares(audit):
    rng = np.random.default_rng(0)
    source = rng.integers(4, 16, 400)
    target = rng.integers(8, 20, 300)             # farther on the whole; beyond the source's top too
    weights, edges = audit.shift_weights(source, target, n_bins=4)
    bins_source, bins_target = np.searchsorted(edges, source, "right"), np.searchsorted(edges, target, "right")
    for b in range(len(edges) + 1):
        assert np.sum(weights[bins_source == b]) / len(source) == pytest.approx(np.mean(bins_target == b))
    assert np.sum(weights) == pytest.approx(len(source))
    # Alike distributions: weights near one, and the effective count near the count.
    same, _ = audit.shift_weights(source, source)
    np.testing.assert_allclose(same, 1.0)
    assert audit.effective_frames(same) == pytest.approx(len(source))
    assert audit.effective_frames([1.0, 1.0, 0.0, 0.0]) == pytest.approx(2.0)


def test_weighted_mean_leaves_undefined_values_out(audit):
    assert audit.weighted_mean([1.0, 3.0, math.nan], [1.0, 3.0, 5.0]) == pytest.approx(2.5)
    assert math.isnan(audit.rank_correlation([1, 1, 1, 1], [1, 2, 3, 4]))
    assert audit.rank_correlation([1, 2, 3, 4], [10, 20, 30, 50]) == pytest.approx(1.0)
