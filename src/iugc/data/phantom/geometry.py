"""The phantom's geometry: anatomy and probe as ellipses and a fan, and FH1 in closed form."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import angle_of_progression

REFERENCE_SIZE = 256   # the priors below are in pixels of a 256 x 256 frame (PSFHS)
RIM_SAMPLES = 720      # rim points of the wrap-around check in the geometry sampler


def ellipse_rim(ellipse: np.ndarray, n_points: int) -> np.ndarray:
    """Points on the rim of ellipses ``(..., 5)`` = (cx, cy, a, b, angle): shape ``(..., n, 2)``."""
    ellipse = np.asarray(ellipse, dtype=np.float64)
    t = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1)                     # (n, 2)
    return _from_unit_circle(circle, ellipse[..., None, :])


def _to_unit_circle(points: np.ndarray, ellipse: np.ndarray) -> np.ndarray:
    """Map points into the frame where the ellipse is the unit circle (an affine map)."""
    cx, cy, a, b, angle = np.moveaxis(ellipse, -1, 0)
    dx, dy = points[..., 0] - cx, points[..., 1] - cy
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([(dx * cos + dy * sin) / a, (dy * cos - dx * sin) / b], axis=-1)


def _from_unit_circle(q: np.ndarray, ellipse: np.ndarray) -> np.ndarray:
    cx, cy, a, b, angle = np.moveaxis(ellipse, -1, 0)
    u, v = q[..., 0] * a, q[..., 1] * b
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cx + u * cos - v * sin, cy + u * sin + v * cos], axis=-1)


def tangent_point(ps1, ps2, skull) -> np.ndarray:
    """FH1: of the two points where a line from PS1 touches the skull ellipse, the one at the
    larger angle from PS2 - PS1. Exact (tangency survives the affine map to the unit circle, where
    the tangent points t from q satisfy t.q = 1). PS1 must lie outside the ellipse."""
    ps1, ps2, skull = (np.asarray(v, dtype=np.float64) for v in (ps1, ps2, skull))
    q = _to_unit_circle(ps1, skull)
    q2 = np.sum(q * q, axis=-1, keepdims=True)
    across = np.stack([-q[..., 1], q[..., 0]], axis=-1) * np.sqrt(np.maximum(q2 - 1.0, 0.0)) / q2
    candidates = [_from_unit_circle(q / q2 + sign * across, skull) for sign in (1.0, -1.0)]
    angles = [angle_of_progression(ps1, ps2, c) for c in candidates]
    return np.where((angles[0] >= angles[1])[..., None], candidates[0], candidates[1])


@dataclass(frozen=True)
class Geometry:
    """Anatomy and probe of ``n`` acquisitions, in pixels of the frame.

    sector: (n, 5) apex x, apex y (above the frame), near radius, far radius, half-angle (rad).
    symphysis, skull: (n, 5) ellipses (cx, cy, semi-axis a, semi-axis b, angle of a in rad).
    landmarks: (n, 3, 2) PS1, PS2, FH1 (float; the files hold them rounded).
    """

    sector: np.ndarray
    symphysis: np.ndarray
    skull: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.landmarks)

    def __getitem__(self, index) -> "Geometry":
        return Geometry(self.sector[index], self.symphysis[index], self.skull[index], self.landmarks[index])


def _candidates(rng: np.random.Generator, m: int) -> Geometry:
    """Draw ``m`` anatomies at the reference size (priors measured on PSFHS, see module doc)."""
    deg = np.pi / 180.0
    # Fan: apex about 53 px above the frame, near arc at y 15, far arc at y 230, half-angle 34 deg
    # (medians of PSFHS; some scanners there use narrower, shallower fans).
    apex_y = -rng.uniform(42.0, 65.0, m)
    sector = np.stack([
        REFERENCE_SIZE / 2 + rng.normal(-2.0, 4.0, m),
        apex_y,
        -apex_y + rng.uniform(9.0, 18.0, m),
        -apex_y + rng.uniform(200.0, 240.0, m),
        rng.uniform(28.0, 40.0, m) * deg,
    ], axis=-1)

    # PS1 (the vertex) and the symphysis axis: PS1 at (136 +- 13, 33 +- 8), length 63 +- 10 px,
    # PS2 lower than PS1 by 11 deg on average (the means here are a little off those: the
    # visibility test below drops more of the symphyses that sit high in the frame).
    ps1 = np.stack([rng.normal(136.0, 13.0, m), rng.normal(30.0, 8.0, m)], axis=-1)
    length = np.clip(rng.normal(63.0, 10.0, m), 38.0, 95.0)
    tilt = rng.normal(-9.0, 12.0, m) * deg
    axis = np.stack([np.cos(tilt), np.sin(tilt)], axis=-1)            # PS2 -> PS1
    ps2 = ps1 - length[:, None] * axis
    thickness = length * rng.uniform(0.42, 0.62, m) / 2                # semi-minor axis
    symphysis = np.column_stack([(ps1 + ps2) / 2, length / 2, thickness, tilt])

    # Skull: semi-axes 72 +- 10 and 0.72-0.95 of that, long axis near vertical (94 +- 12 deg).
    # It sits just below the symphysis (2-16 px apart) and slides along its axis: how far along
    # decides the AoP (correlation -0.95 in PSFHS).
    a = np.clip(rng.normal(72.0, 10.0, m), 48.0, 100.0)
    b = a * rng.uniform(0.72, 0.95, m)
    phi = rng.normal(94.0, 12.0, m) * deg
    below = np.stack([-axis[:, 1], axis[:, 0]], axis=-1)              # unit normal, y > 0
    reach = np.hypot(a * (below[:, 0] * np.cos(phi) + below[:, 1] * np.sin(phi)),
                     b * (below[:, 1] * np.cos(phi) - below[:, 0] * np.sin(phi)))
    along = rng.uniform(-40.0, 90.0, m)                               # towards PS2
    clearance = thickness + rng.uniform(2.0, 16.0, m)
    centre = ps1 - along[:, None] * axis + (reach + clearance)[:, None] * below
    skull = np.column_stack([centre, a, b, phi])

    fh1 = tangent_point(ps1, ps2, skull)
    return Geometry(sector, symphysis, skull, np.stack([ps1, ps2, fh1], axis=1))


def _polar(points: np.ndarray, sector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle from the vertical of points ``(..., 2)`` seen from the sector apex."""
    dx = points[..., 0] - sector[..., 0, None]
    dy = points[..., 1] - sector[..., 1, None]
    return np.hypot(dx, dy), np.arctan2(dx, dy)


def _inside_sector(points: np.ndarray, sector: np.ndarray, margin: float) -> np.ndarray:
    r, theta = _polar(points, sector)
    return ((r > sector[:, 2, None] + margin) & (r < sector[:, 3, None] - margin)
            & (np.abs(theta) * r < sector[:, 4, None] * r - margin)).all(axis=-1)


def _valid(g: Geometry) -> np.ndarray:
    """Anatomies a reader would accept as standard planes with a well-defined AoP."""
    ps1, ps2, fh1 = g.landmarks[:, 0], g.landmarks[:, 1], g.landmarks[:, 2]
    aop = angle_of_progression(ps1, ps2, fh1)
    rim = ellipse_rim(g.skull, RIM_SAMPLES)
    # The tangent point must be the rim's largest angle: no rim wraps past the symphysis axis.
    no_wrap = angle_of_progression(ps1[:, None], ps2[:, None], rim).max(axis=1) <= aop + 1e-6
    # The skull does not overlap the symphysis.
    ps_rim = ellipse_rim(g.symphysis, 64)
    apart = (np.sum(_to_unit_circle(ps_rim, g.skull[:, None]) ** 2, axis=-1) > 1.1).all(axis=1)
    visible = (_inside_sector(ps_rim, g.sector, 3.0) & _inside_sector(fh1[:, None], g.sector, 3.0)
               & _inside_sector(g.skull[:, None, :2], g.sector, 0.0))
    return (aop > 60.0) & (aop < 175.0) & no_wrap & apart & visible


def sample_geometry(rng: np.random.Generator, n: int, size: int = REFERENCE_SIZE) -> Geometry:
    """``n`` valid standard-plane anatomies in pixels of a ``size`` x ``size`` frame."""
    kept: list[Geometry] = []
    count = 0
    while count < n:
        candidates = _candidates(rng, max(32, 4 * (n - count)))
        good = candidates[_valid(candidates)][: n - count]
        kept.append(good)
        count += len(good)
    s = size / REFERENCE_SIZE
    lengths = np.array([s, s, s, s, 1.0])       # the last column of sector and ellipses is an angle
    return Geometry(*(np.concatenate([k.sector for k in kept]) * lengths,
                      np.concatenate([k.symphysis for k in kept]) * lengths,
                      np.concatenate([k.skull for k in kept]) * lengths,
                      np.concatenate([k.landmarks for k in kept]) * s))
