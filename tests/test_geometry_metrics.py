import math

import numpy as np
import pytest

from iugc.geometry import angle_of_progression, aop_from_landmarks
from iugc.metrics import aop_mae, bootstrap_ci, mean_radial_error, radial_errors, success_rates, summarize


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


def test_success_rates_and_bootstrap():
    errors = np.array([[1, 2, 30], [4, 50, 6]], dtype=float)
    assert success_rates(errors, [5, 40]) == {5.0: 0.5, 40.0: 5 / 6}
    values = np.arange(100, dtype=float)
    lo, hi = bootstrap_ci(values, n_samples=500, seed=1)
    assert lo < values.mean() < hi and hi - lo < 25
    assert bootstrap_ci(values, n_samples=500, seed=1) == (lo, hi)     # deterministic per seed


def test_summarize_reports_per_landmark_and_intervals():
    rng = np.random.default_rng(0)
    true = rng.uniform(50, 200, size=(30, 3, 2))
    pred = true + rng.normal(0, 3, size=true.shape)
    s = summarize(pred, true, radii=(5, 10), n_samples=200)
    assert s["n_frames"] == 30
    assert s["mre_ci"][0] <= s["mre"] <= s["mre_ci"][1]
    assert s["mre"] == pytest.approx(np.mean([s["re_ps1"], s["re_ps2"], s["re_fh1"]]))
    assert set(s["success_rate"]) == {"5px", "10px"}
    assert aop_from_landmarks(true).shape == (30,)
