"""benchmarks/aop_lever_arm.py's arithmetic: how far the AoP moves per pixel of landmark error.
Its run on a finished study is in test_study.py."""
from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lever(benchmark_script):
    return benchmark_script("aop_lever_arm")


def _triangle(arm_ps2: float, arm_fh1: float, angle_deg: float) -> np.ndarray:
    """PS1 at the origin, PS2 along x, FH1 at ``angle_deg`` from it."""
    angle = math.radians(angle_deg)
    return np.array([[[0.0, 0.0], [arm_ps2, 0.0], [arm_fh1 * math.cos(angle), arm_fh1 * math.sin(angle)]]])


@pytest.mark.parametrize("arm_ps2, arm_fh1, angle_deg", [(60.0, 60.0, 90.0), (50.0, 110.0, 120.0), (70.0, 90.0, 80.0)])
def test_the_sensitivity_is_the_length_of_the_angles_gradient(lever, arm_ps2, arm_fh1, angle_deg):
    """Moving PS2 or FH1 across its arm turns the angle by 1 / arm radians per pixel, PS1 both
    arms at once: |grad|^2 = 2 / a^2 + 2 / b^2 - 2 cos(AoP) / (a b)."""
    angle = math.radians(angle_deg)
    expected = math.degrees(math.sqrt(2 / arm_ps2**2 + 2 / arm_fh1**2 - 2 * math.cos(angle) / (arm_ps2 * arm_fh1)))
    assert lever.aop_sensitivity(_triangle(arm_ps2, arm_fh1, angle_deg))[0] == pytest.approx(expected, rel=1e-4)


def test_longer_arms_steady_the_angle(lever):
    """Twice the frame, half the degrees per pixel; a collapsed arm has no defined sensitivity."""
    points = _triangle(50.0, 100.0, 110.0)
    assert lever.aop_sensitivity(2 * points)[0] == pytest.approx(lever.aop_sensitivity(points)[0] / 2, rel=1e-4)
    collapsed = points.copy()
    collapsed[0, 1] = collapsed[0, 0]
    assert math.isnan(lever.aop_sensitivity(collapsed)[0])
