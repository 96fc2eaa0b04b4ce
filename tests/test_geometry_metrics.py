import math

import numpy as np
import pytest

from iugc.geometry import angle_of_progression, aop_from_landmarks
from iugc.metrics import (NonFiniteValue, aop_errors, aop_mae, estimate_mean, hierarchical_ci, holm,
                          mean_radial_error, paired_comparison, radial_errors, success_rates, summarize)


@pytest.mark.parametrize("ps1, ps2, fh1, expected", [
    ((0, 0), (-1, 0), (0, 1), 90.0),                       # right angle
    ((0, 0), (-1, 0), (1, 0), 180.0),                      # straight line
    ((0, 0), (-1, 0), (-1, 1), 45.0),
    ((10, 10), (0, 10), (10 + math.cos(math.radians(60)), 10 + math.sin(math.radians(60))), 120.0),
    ((146, 31), (59, 54), (214, 68), 136.6402),            # first row of psfhs_aop label.csv
])
def test_aop_matches_hand_computed_angles(ps1, ps2, fh1, expected):
    assert angle_of_progression(ps1, ps2, fh1) == pytest.approx(expected, abs=1e-4)


def test_aop_has_no_180_minus_step_and_ignores_orientation():
    # The angle at PS1 is symmetric in the two rays and independent of image orientation.
    a = angle_of_progression((5, 5), (0, 5), (5, 0))
    b = angle_of_progression((5, 5), (5, 0), (0, 5))
    assert a == pytest.approx(90.0) and b == pytest.approx(90.0)
    assert angle_of_progression((0, 0), (-2, 0), (1, 1)) == pytest.approx(135.0)


def test_aop_is_vectorised_and_degenerate_input_gives_nan():
    ps1 = np.zeros((2, 3, 2))
    ps2 = np.broadcast_to([-1.0, 0.0], (2, 3, 2))
    fh1 = np.broadcast_to([0.0, 1.0], (2, 3, 2)).copy()
    fh1[1, 2] = 0.0                                        # coincides with PS1
    out = angle_of_progression(ps1, ps2, fh1)
    assert out.shape == (2, 3)
    assert np.isnan(out[1, 2]) and np.allclose(out[~np.isnan(out)], 90.0)
    assert np.isnan(angle_of_progression((1, 1), (1, 1), (2, 2)))


def test_radial_errors_mre_and_aop_mae():
    true = np.array([[[0, 0], [-10, 0], [0, 10]]], dtype=float)
    pred = true + np.array([[[3, 4], [0, 0], [0, 0]]])
    assert radial_errors(pred, true).tolist() == [[5.0, 0.0, 0.0]]
    assert mean_radial_error(pred, true) == pytest.approx(5 / 3)
    # moving FH1 along its ray keeps the angle; rotating it by 45 degrees changes it by 45
    pred2 = true.copy()
    pred2[0, 2] = [10, 10]
    assert aop_mae(pred2, true) == pytest.approx(45.0)
    with pytest.raises(ValueError):
        radial_errors(pred[:, :2], true)


def test_success_rates_and_interval():
    errors = np.array([[1, 2, 30], [4, 50, 6]], dtype=float)
    assert success_rates(errors, [5, 40]) == {5.0: 0.5, 40.0: 5 / 6}
    values = np.arange(100, dtype=float)
    lo, hi = hierarchical_ci(values, np.arange(100))
    # one seed, 100 independent frames: the ordinary t interval of a mean
    half = 1.9842 * values.std(ddof=1) / 10
    assert (lo, hi) == pytest.approx((values.mean() - half, values.mean() + half), rel=1e-3)


def test_identical_frames_of_a_group_count_as_one_frame():
    """Eight acquisitions of five identical frames each: the interval is that of eight frames,
    one per acquisition, not of forty."""
    per_group = np.array([3.0, 9.0, 4.0, 12.0, 5.0, 7.0, 15.0, 2.0])
    frames = np.repeat(per_group, 5)
    groups = np.repeat(np.arange(8), 5)
    one_per_group = hierarchical_ci(per_group, np.arange(8))
    assert hierarchical_ci(frames, groups) == pytest.approx(one_per_group)
    # treating the forty frames as independent would be far narrower
    assert np.diff(hierarchical_ci(frames, np.arange(40)))[0] < 0.6 * np.diff(one_per_group)[0]


def test_unequal_acquisitions_weigh_by_frames():
    """The headline mean counts frames; the sensitivity mean counts acquisitions."""
    values = np.array([1.0, 1.0, 1.0, 1.0, 5.0, 9.0])
    groups = np.array([0, 0, 0, 0, 1, 2])
    assert estimate_mean(values, groups).mean == pytest.approx(3.0)
    assert estimate_mean(values, groups, weights="acquisitions").mean == pytest.approx(5.0)


def test_seeds_that_disagree_widen_the_interval():
    frames = np.arange(20, dtype=float)
    groups = np.arange(20) // 2
    single = hierarchical_ci(frames, groups)
    same = estimate_mean(np.stack([frames, frames, frames]), groups)
    assert same.seed_var == pytest.approx(0.0, abs=1e-12)
    apart = hierarchical_ci(np.stack([frames, frames + 20, frames + 10]), groups)
    assert np.diff(apart)[0] > 2 * np.diff(single)[0]
    # a constant has no spread; one acquisition cannot tell acquisitions apart
    assert estimate_mean(np.full((2, 20), 4.0), groups).se == 0.0
    assert np.isnan(hierarchical_ci(frames, np.zeros(20))).all()


def test_planned_study_shrinks_each_part_with_its_own_count():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 4)
    values = rng.normal(0, 1, (3, 1)) + rng.normal(0, 1, 10)[groups] + rng.normal(0, 0.3, (3, 40))
    estimate = estimate_mean(values, groups)
    more_acquisitions = estimate.planned(3, 100)
    assert more_acquisitions.acquisition_var == pytest.approx(estimate.acquisition_var / 10)
    assert more_acquisitions.detectable(0.05) < estimate.planned(3, 10).detectable(0.05)
    # seeds floor the detectable effect: 10x the acquisitions cannot remove the seed part
    assert more_acquisitions.seed_var > 0.5 * estimate.planned(3, 10).seed_var


def test_paired_comparison_sees_a_consistent_small_gap():
    """A gap of 0.5 on every frame and seed is certain even when frames vary widely; and
    swapping the two gives the opposite difference with the same p."""
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 50, size=(3, 60))
    a = b + 0.5
    groups = np.arange(60) // 6
    result = paired_comparison(a, b, groups)
    assert result["difference"] == pytest.approx(0.5) and result["lo"] == pytest.approx(0.5)
    assert result["p"] < 0.01
    swapped = paired_comparison(b, a, groups)
    assert swapped["difference"] == pytest.approx(-0.5) and swapped["p"] == result["p"]
    noise = paired_comparison(b, b[::-1], groups)  # no systematic gap
    assert noise["lo"] < 0 < noise["hi"] and noise["p"] > 0.05


def test_a_nan_is_refused_never_significant():
    """A NaN among the errors used to give p = 2/(B+1), 'significant'; now it is refused, with
    the place it is at."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(5, 10, (3, 30)), rng.uniform(5, 10, (3, 30))
    a[1, 17] = np.nan
    with pytest.raises(NonFiniteValue, match="seed index 1, frame index 17"):
        paired_comparison(a, b, np.arange(30) // 3)


def test_holm_adjustment_matches_a_hand_computed_case():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).size == 0


def test_an_undefined_predicted_aop_counts_at_its_worst():
    true = np.array([[[0, 0], [-10, 0], [0, 10]], [[0, 0], [-10, 0], [10, 10]]], dtype=float)
    pred = true.copy()
    pred[0, 1] = pred[0, 0]  # PS2 on PS1: no angle
    errors = aop_errors(pred, true)
    assert errors[0] == pytest.approx(90.0)  # true AoP 90: the worst error possible is 90
    assert errors[1] == pytest.approx(0.0)
    assert aop_mae(pred, true) == pytest.approx(45.0)


def test_summarize_reports_per_landmark_and_intervals():
    rng = np.random.default_rng(0)
    true = rng.uniform(50, 200, size=(30, 3, 2))
    pred = true + rng.normal(0, 3, size=true.shape)
    s = summarize(pred, true, np.arange(30) // 3, radii=(5, 10))
    assert s["n_frames"] == 30 and s["n_groups"] == 10 and s["aop_undefined"] == 0
    assert s["mre_ci"][0] <= s["mre"] <= s["mre_ci"][1]
    assert s["mre"] == pytest.approx(np.mean([s["re_ps1"], s["re_ps2"], s["re_fh1"]]))
    assert set(s["success_rate"]) == {"5px", "10px"}
    assert aop_from_landmarks(true).shape == (30,)
