"""The built-in phantom: synthetic transperineal ultrasound frames in the IUGC 2025 layout.

Each acquisition is one random anatomy seen by a convex probe: a fan-shaped field of view, an
oblong hyperechoic pubic symphysis (PS) near the probe and a fetal skull (a bright elliptical rim
with acoustic shadow beyond it), on speckled soft tissue. Its frames are near-duplicates: the
probe moves a little and the speckle decorrelates a little from frame to frame.

The landmarks are exact properties of the ellipses that are drawn: PS1 and PS2 are the ends of the
symphysis' long axis (the farthest pair of its contour), FH1 is the point where the line from PS1
touches the skull (closed form), so AoP follows the organisers' convention exactly. The priors
(positions, sizes, angles, grey levels) were measured on PSFHS frames at 256 x 256 and scale with
the frame size.

The unlabeled pool mixes standard-plane frames with non-standard ones that lose or spoil a
structure, plus a few blank and duplicated frames; ``phantom_truth.csv`` records which is which,
so the standard-plane filter can be scored. No file is named ``Example*``: in the real IUGC set
that prefix marks standard-plane frames, the phantom's must be found by a classifier.
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..geometry import angle_of_progression

REFERENCE_SIZE = 256   # the priors below are in pixels of a 256 x 256 frame (PSFHS)
TRUTH_CSV = "phantom_truth.csv"
LABELED_DIR = Path("Training") / "Labeled cases"
UNLABELED_DIR = Path("Training") / "Unlabeled cases"
NON_STANDARD_KINDS = ("no_symphysis", "no_head", "head_cut", "oblique", "shadow")
BLANK_FRACTION = 0.01       # of the unlabeled pool; at least one frame each when the pool has 3+
DUPLICATE_FRACTION = 0.02
RIM_SAMPLES = 720           # rim points of the wrap-around check in the geometry sampler


# --- geometry: ellipses, tangent point, the sampler ----------------------------------------------

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


# --- rendering ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    """What one acquisition shows, in pixels of the frame; an absent structure is None."""

    kind: str
    sector: np.ndarray
    symphysis: np.ndarray | None
    skull: np.ndarray | None
    landmarks: np.ndarray


class _Canvas:
    """Pixel grids of one frame size. The echo map (smooth anatomy) is drawn on a grid of at most
    REFERENCE_SIZE pixels a side and upsampled; speckle and the sector edge are full resolution.
    Both grids hold frame-pixel coordinates of their pixel centres."""

    def __init__(self, size: int):
        self.size = size
        self.scale = size / REFERENCE_SIZE
        self.side = min(size, REFERENCE_SIZE)
        coarse = (np.arange(self.side, dtype=np.float32) + 0.5) * (size / self.side) - 0.5
        self.x, self.y = np.meshgrid(coarse, coarse)
        fine = np.arange(size, dtype=np.float32)
        self.fine_x, self.fine_y = np.meshgrid(fine, fine)

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        """The echo-map rows and columns covering frame coordinates [x0, x1] x [y0, y1]."""
        step = self.size / self.side
        lo = [int(np.clip(np.floor((v + 0.5) / step - 0.5), 0, self.side)) for v in (y0, x0)]
        hi = [int(np.clip(np.ceil((v + 0.5) / step - 0.5) + 1, 0, self.side)) for v in (y1, x1)]
        return slice(lo[0], hi[0]), slice(lo[1], hi[1])

    def upsample(self, image: np.ndarray) -> np.ndarray:
        if self.side == self.size:
            return image
        return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)


def _smoothstep(edge0: float, edge1: float, v: np.ndarray) -> np.ndarray:
    t = np.clip((v - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=sigma)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], blob: float) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` with blobs about ``blob`` pixels across (bicubic
    upsampling of a coarse grid)."""
    rows, cols = shape
    coarse = rng.standard_normal((int(rows / blob) + 3, int(cols / blob) + 3), dtype=np.float32)
    field = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _sector_mask(sector, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 inside the fan, 0 outside, one pixel of soft edge. The distance to a side of the fan is
    sin(half) * dy - cos(half) * |dx| (no arctan needed)."""
    ax, ay, r_near, r_far, half = (float(v) for v in sector)
    dx, dy = x - ax, y - ay
    r = np.sqrt(dx * dx + dy * dy)
    side = np.sin(half) * dy - np.cos(half) * np.abs(dx)
    edge = np.minimum(np.minimum(r - r_near, r_far - r), side)
    return np.clip(edge + 0.5, 0.0, 1.0)


class _Beams:
    """Per echo-map pixel: radius from the apex, unit beam direction, depth in the fan (0..1)."""

    def __init__(self, c: _Canvas, sector):
        self.ax, self.ay, self.r_near, self.r_far, self.half = (float(v) for v in sector)
        dx, dy = c.x - self.ax, c.y - self.ay
        self.r = np.sqrt(dx * dx + dy * dy)
        self.ux, self.uy = dx / self.r, dy / self.r
        self.depth = np.clip((self.r - self.r_near) / (self.r_far - self.r_near), 0.0, 1.0)


def _box(ellipse, margin: float) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of an ellipse, grown by ``margin``."""
    cx, cy, a, b, angle = (float(v) for v in ellipse)
    half_w = np.hypot(a * np.cos(angle), b * np.sin(angle)) + margin
    half_h = np.hypot(a * np.sin(angle), b * np.cos(angle)) + margin
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _box_behind(ellipse, beams: _Beams, margin: float, bottom: float) -> tuple[float, float, float, float]:
    """Box holding all the ellipse can shadow: the beams through its bounding box, down to ``bottom``."""
    x0, y0, x1, y1 = _box(ellipse, margin)
    spread = [beams.ax + (x - beams.ax) * (bottom - beams.ay) / (y - beams.ay)
              for x in (x0, x1) for y in (y0, y1)]
    return min(x0, *spread), y0, max(x1, *spread), bottom


class _Ellipse:
    """An ellipse seen from the echo-map pixels of a window (rows, columns)."""

    def __init__(self, c: _Canvas, ellipse, window: tuple[slice, slice]):
        self.cx, self.cy, self.a, self.b, self.angle = (float(v) for v in ellipse)
        self.cos, self.sin = np.cos(self.angle), np.sin(self.angle)
        self.window = window
        dx, dy = c.x[window] - self.cx, c.y[window] - self.cy
        self.u = (dx * self.cos + dy * self.sin) / self.a          # unit-circle frame
        self.v = (dy * self.cos - dx * self.sin) / self.b
        rho = np.sqrt(self.u * self.u + self.v * self.v) + 1e-6
        # Signed distance to the rim (negative inside): exact on the rim, close to it nearby.
        self.distance = (rho - 1.0) * np.sqrt(dx * dx + dy * dy) / rho

    def incidence(self, beams: _Beams) -> np.ndarray:
        """|cos| of the angle between the beam and the rim normal: 1 where the beam hits square on."""
        gu, gv = self.u / self.a, self.v / self.b
        nx, ny = gu * self.cos - gv * self.sin, gu * self.sin + gv * self.cos
        ux, uy = beams.ux[self.window], beams.uy[self.window]
        return np.abs(nx * ux + ny * uy) / (np.sqrt(nx * nx + ny * ny) + 1e-6)

    def travelled(self, beams: _Beams) -> np.ndarray:
        """Per pixel: the length of its beam inside the ellipse between the probe and the pixel
        (0 in front of it or where the beam misses it). Beam: apex + t * (ux, uy), t in pixels;
        the ellipse is |o + t w| = 1 in the unit-circle frame."""
        ox, oy = beams.ax - self.cx, beams.ay - self.cy
        o = ((ox * self.cos + oy * self.sin) / self.a, (oy * self.cos - ox * self.sin) / self.b)
        ux, uy = beams.ux[self.window], beams.uy[self.window]
        wx = (ux * self.cos + uy * self.sin) / self.a
        wy = (uy * self.cos - ux * self.sin) / self.b
        ww = wx * wx + wy * wy
        ow = o[0] * wx + o[1] * wy
        root = np.sqrt(np.maximum(ow * ow - ww * (o[0] ** 2 + o[1] ** 2 - 1.0), 0.0))
        t_near, chord = (-ow - root) / ww, 2.0 * root / ww
        return np.clip(beams.r[self.window] - t_near, 0.0, chord)


def _add_line(image: np.ndarray, c: _Canvas, amplitude: float, p0, p1, width: float) -> None:
    """Add a bright segment from p0 to p1 with a Gaussian profile of sd ``width`` (in place)."""
    (x0, y0), (x1, y1) = p0, p1
    r = 3.0 * width
    window = c.window(min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r)
    x, y = c.x[window], c.y[window]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    ex, ey = x - (x0 + t * dx), y - (y0 + t * dy)
    image[window] += amplitude * np.exp(-(ex * ex + ey * ey) / (2.0 * width * width))


def _add_arc(image: np.ndarray, c: _Canvas, amplitude: float, middle, radius: float, heading: float,
             length: float, width: float) -> None:
    """Add a curved bright band (in place): part of a circle of ``radius`` through ``middle``
    whose centre lies towards ``heading``, fading out about ``length`` from the middle."""
    mx, my = middle
    window = c.window(mx - 2 * length, my - 2 * length, mx + 2 * length, my + 2 * length)
    x, y = c.x[window], c.y[window]
    dx, dy = x - (mx + radius * np.cos(heading)), y - (my + radius * np.sin(heading))
    across = (np.sqrt(dx * dx + dy * dy) - radius) / width
    along = ((x - mx) ** 2 + (y - my) ** 2) / (length * length)
    image[window] += amplitude * np.exp(-across * across - along)


def _soft_tissue(c: _Canvas, beams: _Beams, rng: np.random.Generator) -> np.ndarray:
    """Bright perineum some way below the probe face, mid-grey blotchy tissue deeper, fascia as
    bright bands."""
    s = c.scale
    peak = beams.depth / rng.uniform(0.15, 0.3)           # brightest 15-30% of the way down
    level = 0.7 + rng.uniform(1.0, 2.5) * peak * np.exp(1.0 - peak)
    grid = (c.side, c.side)
    blotches = 0.45 * _smooth_noise(rng, grid, c.side / 12) + 0.25 * _smooth_noise(rng, grid, c.side / 40)
    echo = level * np.exp(blotches)
    for _ in range(rng.integers(3, 9)):        # layers parallel to the probe face
        radius = beams.r_near + rng.uniform(5.0, 70.0) * s
        bearing = rng.uniform(-0.8, 0.8) * beams.half
        middle = (beams.ax + radius * np.sin(bearing), beams.ay + radius * np.cos(bearing))
        towards_apex = np.arctan2(-np.cos(bearing), -np.sin(bearing))
        _add_arc(echo, c, rng.uniform(0.5, 2.5), middle, radius, towards_apex,
                 rng.uniform(20.0, 60.0) * s, rng.uniform(1.0, 3.0) * s)
    for _ in range(rng.integers(1, 6)):        # curved bands (muscle sheaths, vaginal walls)
        middle = rng.uniform([30.0, 25.0], [226.0, 170.0]) * s
        _add_arc(echo, c, rng.uniform(0.8, 3.0), middle, rng.uniform(60.0, 250.0) * s,
                 rng.uniform(0.0, 2.0 * np.pi), rng.uniform(15.0, 50.0) * s, rng.uniform(1.0, 2.5) * s)
    return echo


def _add_symphysis(echo, c: _Canvas, beams: _Beams, symphysis, rng: np.random.Generator):
    """Pubic symphysis: a brighter granular oval with a hyperechoic outline, and the shadow the
    bone casts behind it."""
    s = c.scale
    ps = _Ellipse(c, symphysis, c.window(*_box(symphysis, 8.0 * s)))
    inside = _smoothstep(1.0 * s, -1.0 * s, ps.distance)
    outline = np.exp(-(ps.distance / (rng.uniform(1.2, 2.5) * s)) ** 2
                     + _smooth_noise(rng, inside.shape, c.side / 24))
    echo[ps.window] *= 1.0 + rng.uniform(0.2, 0.9) * inside
    specular = 0.35 + 0.65 * np.exp((ps.incidence(beams) - 1.0) / 0.3)
    echo[ps.window] += rng.uniform(6.0, 14.0) * specular * outline
    behind = _Ellipse(c, symphysis, c.window(*_box_behind(symphysis, beams, 10.0 * s, c.size)))
    shadow = _blur(_smoothstep(0.0, 10.0 * s, behind.travelled(beams)), 3.0 * s)
    echo[behind.window] *= 1.0 - rng.uniform(0.5, 0.85) * shadow
    return echo


def _add_skull(echo, c: _Canvas, beams: _Beams, skull, rng: np.random.Generator):
    """Fetal skull: dark brain with a midline echo and a few spots, a bone rim that is brightest
    where the beam meets it square on (specular) yet still seen where it grazes (diffuse), and
    acoustic shadow past its near side."""
    s = c.scale
    sk = _Ellipse(c, skull, c.window(*_box(skull, 12.0 * s)))
    inside = _smoothstep(1.5 * s, -1.5 * s, sk.distance)
    brain = rng.uniform(0.2, 0.5) * np.exp(0.5 * _smooth_noise(rng, (c.side, c.side), c.side / 24))
    midline = sk.angle + rng.normal(0.0, 0.3)
    reach = sk.a * rng.uniform(0.3, 0.8) * np.array([np.cos(midline), np.sin(midline)])
    centre = np.array([sk.cx, sk.cy])
    _add_line(brain, c, rng.uniform(0.2, 1.0), centre - reach, centre + reach, 1.2 * s)
    for _ in range(rng.integers(1, 4)):
        spot = centre + rng.uniform(-0.5, 0.5, 2) * (sk.a, sk.b)
        _add_line(brain, c, rng.uniform(0.3, 1.2), spot, spot + rng.uniform(-8.0, 8.0, 2) * s,
                  rng.uniform(1.5, 3.0) * s)
    echo[sk.window] *= 1.0 - inside + brain[sk.window] * inside

    width = rng.uniform(2.0, 3.5) * s                      # the bone echo trails inwards
    profile = np.where(sk.distance > 0, sk.distance / width, sk.distance / (2.0 * width))
    bone = np.exp(-profile * profile + 0.5 * _smooth_noise(rng, inside.shape, c.side / 16))
    bone *= rng.uniform(25.0, 70.0) * (0.3 + 0.7 * np.exp((sk.incidence(beams) - 1.0) / 0.25))
    # Acoustic shadow: what lies past the near side of the skull comes back weaker. The bone's
    # far side fades with the path through the skull, so its sides stay visible, its bottom less.
    behind = _Ellipse(c, skull, c.window(*_box_behind(skull, beams, 25.0 * s, c.size)))
    travelled = np.zeros_like(echo)
    travelled[behind.window] = behind.travelled(beams)
    echo *= 1.0 - rng.uniform(0.15, 0.35) * _blur(_smoothstep(0.0, 25.0 * s, travelled), 3.0 * s)
    echo[sk.window] += bone * np.exp(-travelled[sk.window] / (rng.uniform(25.0, 50.0) * s))
    return echo


def _echo_map(scene: Scene, c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Log echogenicity of one acquisition before speckle, on the frame grid."""
    beams = _Beams(c, scene.sector)
    echo = _soft_tissue(c, beams, rng)
    if scene.symphysis is not None:
        echo = _add_symphysis(echo, c, beams, scene.symphysis, rng)
    if scene.skull is not None:
        echo = _add_skull(echo, c, beams, scene.skull, rng)
    sine = beams.ux / np.sin(beams.half)                   # -1 .. 1 across the fan
    if scene.kind == "shadow":                             # poor probe contact: most of the fan dark
        centre, width = rng.uniform(-0.4, 0.4), rng.uniform(0.6, 0.9)
        echo *= 1.0 - rng.uniform(0.95, 0.99) * _smoothstep(width, 0.7 * width, np.abs(sine - centre))
    # Time-gain compensation never quite levels the attenuation; the fan's sides are darker.
    echo *= np.exp(-rng.uniform(0.0, 0.6) * beams.depth)
    echo *= 1.0 - 0.45 * _smoothstep(0.6, 1.0, np.abs(sine))
    return c.upsample(np.log(echo + 0.08).astype(np.float32))


class _SpeckleBank:
    """Log-amplitude speckle fields, cropped per frame. Fully developed speckle is the magnitude
    of a complex Gaussian field (Rayleigh); blurring it more across the beam than along it gives
    the laterally elongated grains of a real scan, and summing two independent intensities
    (compounding, as scanners do) fills the deep nulls of raw speckle."""

    def __init__(self, rng: np.random.Generator, size: int, n_fields: int = 4):
        self.size, self.side = size, 2 * size
        s = size / REFERENCE_SIZE
        fields = []
        for _ in range(n_fields):
            power = sum(self._power(rng, s) for _ in range(2))
            log_amplitude = 0.5 * np.log(power / power.mean() + 1e-12)
            fields.append(log_amplitude - log_amplitude.mean())
        self.fields = np.stack(fields)

    def _power(self, rng: np.random.Generator, s: float) -> np.ndarray:
        re, im = (cv2.GaussianBlur(rng.standard_normal((self.side, self.side), dtype=np.float32), (0, 0),
                                   sigmaX=1.1 * s, sigmaY=0.6 * s) for _ in range(2))
        return re * re + im * im

    def crop(self, field: int, origin) -> np.ndarray:
        x, y = np.clip(origin, 0, self.side - self.size)
        return self.fields[field, y:y + self.size, x:x + self.size]

    def random_origin(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.side - self.size, 2)


def _draw_overlays(image: np.ndarray, sector, s: float, bar: bool, ticks: bool) -> None:
    """Scanner overlays seen in real frames: a grey-scale bar top left, depth ticks at the bottom."""
    if bar:
        rows = np.arange(int(3 * s), int(63 * s))
        image[rows, int(3 * s):int(6 * s) + 1] = np.linspace(250, 30, len(rows)).astype(np.uint8)[:, None]
    if ticks:
        y = int(min(image.shape[0] - 2, sector[1] + sector[3] + 4 * s))
        image[y, np.arange(int(20 * s), image.shape[1] - int(10 * s), max(1, int(19 * s)))] = 160


def _render_acquisition(scene: Scene, canvas: _Canvas, bank: _SpeckleBank, rng: np.random.Generator,
                        n_frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n_frames`` near-duplicate frames (uint8) of one scene and their landmarks ``(n, 3, 2)``.

    Between frames the probe slides and tilts a little (a random walk about the apex), the
    anatomy and its speckle move with it, and part of the speckle decorrelates."""
    s, size = canvas.scale, canvas.size
    log_echo = _echo_map(scene, canvas, rng)
    mask = _sector_mask(scene.sector, canvas.fine_x, canvas.fine_y)
    grey_per_neper = 255.0 / (rng.uniform(45.0, 60.0) / 8.686)     # display dynamic range 45-60 dB
    gain = rng.uniform(55.0, 85.0)
    field, origin = int(rng.integers(len(bank.fields))), bank.random_origin(rng)
    bar, ticks = rng.random() < 0.7, rng.random() < 0.8
    fresh = 0.3                                   # share of new speckle from one frame to the next
    angle, shift = 0.0, np.zeros(2)
    frames, landmarks = [], []
    for j in range(n_frames):
        if j:
            angle += rng.normal(0.0, 0.6)
            shift += rng.normal(0.0, 1.0 * s, 2)
        motion = cv2.getRotationMatrix2D((float(scene.sector[0]), float(scene.sector[1])), angle, 1.0)
        motion[:, 2] += shift
        moved = cv2.warpAffine(log_echo, motion, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        speckle = ((1.0 - fresh) * bank.crop(field, origin - np.rint(shift).astype(int))
                   + fresh * bank.crop(int(rng.integers(len(bank.fields))), bank.random_origin(rng)))
        speckle /= np.hypot(1.0 - fresh, fresh)
        grey = (moved + speckle) * grey_per_neper + (gain + rng.normal(0.0, 2.0))
        image = (np.clip(grey, 0.0, 255.0) * mask).astype(np.uint8)
        _draw_overlays(image, scene.sector, s, bar, ticks)
        frames.append(image)
        landmarks.append(scene.landmarks @ motion[:, :2].T + motion[:, 2])
    return frames, np.stack(landmarks)


# --- scenes and the dataset on disk -------------------------------------------------------------

def _standard_scene(rng: np.random.Generator, size: int) -> Scene:
    g = sample_geometry(rng, 1, size)[0]
    return Scene("standard", g.sector, g.symphysis, g.skull, g.landmarks)


def _non_standard_scene(rng: np.random.Generator, size: int, kind: str) -> Scene:
    """A plane a reader would reject: a structure missing, cut off or distorted, or the fan mostly
    in shadow. Its landmarks are those of the standard anatomy it was made from (never written)."""
    scene = _standard_scene(rng, size)
    symphysis, skull = scene.symphysis.copy(), scene.skull.copy()
    if kind == "no_symphysis":
        symphysis = None
    elif kind == "no_head":
        skull = None
    elif kind == "head_cut":            # the skull slid sideways until the fan's edge cuts it
        ax, ay, _, _, half = scene.sector
        radius = np.hypot(skull[0] - ax, skull[1] - ay)
        bearing = rng.choice([-1.0, 1.0]) * half * rng.uniform(0.9, 1.2)
        skull[:2] = ax + radius * np.sin(bearing), ay + radius * np.cos(bearing)
    elif kind == "oblique":             # a slanted plane: a long thin skull section, a stub of symphysis
        skull[3] = skull[2] * rng.uniform(0.3, 0.45)
        skull[4] = rng.uniform(0.0, np.pi)
        symphysis[2] *= rng.uniform(0.35, 0.55)
        symphysis[3] = symphysis[2] * rng.uniform(0.8, 1.0)
    elif kind != "shadow":              # "shadow" keeps the anatomy; _echo_map darkens the fan
        raise ValueError(f"unknown non-standard kind {kind!r}")
    return replace(scene, kind=kind, symphysis=symphysis, skull=skull)


def _write_png(path: Path, image: np.ndarray) -> None:
    # One fixed row filter and run-length zlib: twice as fast as the defaults on speckle, files
    # about as small. Writing PNGs is most of the phantom's run time.
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(data.tobytes())


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _check_arguments(n_labeled, n_unlabeled, size, standard_plane_fraction, frames_per_acquisition) -> None:
    rules = (
        ("n_labeled", n_labeled, n_labeled >= 1, "need at least 1"),
        ("n_unlabeled", n_unlabeled, n_unlabeled >= 0, "cannot be negative"),
        ("size", size, size >= 32, "frames need at least 32 pixels a side"),
        ("standard_plane_fraction", standard_plane_fraction, 0.0 <= standard_plane_fraction <= 1.0,
         "must lie in [0, 1]"),
        ("frames_per_acquisition", frames_per_acquisition, frames_per_acquisition >= 1, "need at least 1"),
    )
    for name, value, ok, rule in rules:
        if not ok:
            raise UserError(f"phantom: {name} = {value!r}: {rule}")


def _clear_previous(dst: Path) -> None:
    """Make ``dst`` ready: a new or empty folder, or a previous phantom (whose files go)."""
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()):
        if not (dst / TRUTH_CSV).is_file():
            raise UserError(f"{dst}: not empty and not a phantom dataset (no {TRUTH_CSV}); "
                            "refusing to write into it")
        shutil.rmtree(dst / "Training", ignore_errors=True)
        (dst / TRUTH_CSV).unlink()
    dst.mkdir(parents=True, exist_ok=True)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def _write_labeled(folder: Path, n: int, seed: int, canvas: _Canvas, bank: _SpeckleBank,
                   frames_per_acquisition: int) -> None:
    folder.mkdir(parents=True)
    rows = []
    for acquisition, count in enumerate(_chunks(n, frames_per_acquisition)):
        rng = np.random.default_rng([seed, 0, acquisition])   # acquisition k is the same whatever n is
        scene = _standard_scene(rng, canvas.size)
        frames, landmarks = _render_acquisition(scene, canvas, bank, rng, count)
        for image, points in zip(frames, landmarks):
            name = f"{len(rows) + 1:05d}.png"
            _write_png(folder / name, image)
            ps1, ps2, fh1 = np.clip(np.rint(points), 0, canvas.size - 1).astype(int)
            aop = angle_of_progression(ps1, ps2, fh1)          # of the points as written
            rows.append([name, *(f"({x}, {y})" for x, y in (ps1, ps2, fh1)), f"{aop:.4f}"])
    _write_csv(folder / "label.csv", ["Filename", "PS1", "PS2", "FH1", "AoP"], rows)


def _write_unlabeled(folder: Path, n: int, seed: int, canvas: _Canvas, bank: _SpeckleBank,
                     standard_plane_fraction: float, frames_per_acquisition: int) -> list[list]:
    """The pool: acquisitions of one kind each (standard or one way of not being standard) in
    shuffled folders, plus blank frames and copies of pool frames dropped into random folders.
    Returns the truth rows (relpath, standard_plane, kind, duplicate_of)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng([seed, 1])
    n_blank = max(1, round(BLANK_FRACTION * n)) if n >= 3 else 0
    n_duplicate = max(1, round(DUPLICATE_FRACTION * n)) if n >= 3 else 0
    n_rendered = n - n_blank - n_duplicate
    n_standard = round(standard_plane_fraction * n_rendered)
    non_standard = _chunks(n_rendered - n_standard, frames_per_acquisition)
    plan = ([("standard", k) for k in _chunks(n_standard, frames_per_acquisition)]
            + [(NON_STANDARD_KINDS[i % len(NON_STANDARD_KINDS)], k) for i, k in enumerate(non_standard)])
    plan = [plan[i] for i in rng.permutation(len(plan))]
    sources = set(rng.choice(n_rendered, n_duplicate, replace=False).tolist())

    truth, copied, folder_sizes = [], {}, []
    for acquisition, (kind, count) in enumerate(plan):
        scene_rng = np.random.default_rng([seed, 1, acquisition])
        scene = (_standard_scene(scene_rng, canvas.size) if kind == "standard"
                 else _non_standard_scene(scene_rng, canvas.size, kind))
        frames, _ = _render_acquisition(scene, canvas, bank, scene_rng, count)
        (folder / f"case{acquisition + 1:04d}").mkdir()
        for j, image in enumerate(frames):
            relpath = f"case{acquisition + 1:04d}/frame{j + 1:03d}.png"
            _write_png(folder / relpath, image)
            if len(truth) in sources:
                copied[len(truth)] = image
            truth.append([relpath, int(kind == "standard"), kind, ""])
        folder_sizes.append(count)

    def add(image: np.ndarray, standard_plane: int, kind: str, duplicate_of: str = "") -> None:
        acquisition = int(rng.integers(len(folder_sizes)))
        folder_sizes[acquisition] += 1
        relpath = f"case{acquisition + 1:04d}/frame{folder_sizes[acquisition]:03d}.png"
        _write_png(folder / relpath, image)
        truth.append([relpath, standard_plane, kind, duplicate_of])

    for _ in range(n_blank):            # a frozen or disconnected screen
        noise = rng.normal(rng.integers(0, 30), 0.6, (canvas.size, canvas.size))
        add(np.clip(np.rint(noise), 0, 255).astype(np.uint8), 0, "blank")
    for i, source in enumerate(sorted(copied)):   # exact copies, and copies with a little noise
        image = copied[source]
        if i % 2:
            noisy = image + rng.integers(-2, 3, image.shape)
            image = np.where(image > 0, np.clip(noisy, 0, 255), 0).astype(np.uint8)
        relpath, standard_plane, _, _ = truth[source]
        add(image, standard_plane, "duplicate", relpath)
    return sorted(truth)


def make_phantom(dst, *, n_labeled: int, n_unlabeled: int, seed: int, size: int,
                 standard_plane_fraction: float, frames_per_acquisition: int) -> Path:
    """Write a phantom dataset in the IUGC 2025 layout under ``dst`` and return ``dst``.

    ``Training/Labeled cases/``: ``label.csv`` (Filename, PS1, PS2, FH1, AoP) and frames
    00001.png ... in acquisitions of ``frames_per_acquisition`` consecutive near-duplicates.
    ``Training/Unlabeled cases/caseNNNN/frameNNN.png``: the pool; ``standard_plane_fraction`` of
    its rendered frames are standard planes, and about 1% blank and 2% duplicated frames are added.
    ``phantom_truth.csv``: relpath (relative to the pool folder), standard_plane, kind,
    duplicate_of. The same seed writes the same bytes (with the same OpenCV/zlib). ``dst`` must
    be new, empty or a previous phantom.
    """
    _check_arguments(n_labeled, n_unlabeled, size, standard_plane_fraction, frames_per_acquisition)
    dst = Path(dst)
    _clear_previous(dst)
    canvas = _Canvas(int(size))
    bank = _SpeckleBank(np.random.default_rng([seed, 2]), int(size))
    _write_labeled(dst / LABELED_DIR, int(n_labeled), seed, canvas, bank, int(frames_per_acquisition))
    truth = _write_unlabeled(dst / UNLABELED_DIR, int(n_unlabeled), seed, canvas, bank,
                             float(standard_plane_fraction), int(frames_per_acquisition))
    _write_csv(dst / TRUTH_CSV, ["relpath", "standard_plane", "kind", "duplicate_of"], truth)
    return dst
