"""The phantom's rendering: an echo map of the anatomy, speckle, the fan and the overlays."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import REFERENCE_SIZE


@dataclass(frozen=True)
class Scene:
    """What one acquisition shows, in pixels of the frame; an absent structure is None."""

    kind: str
    sector: np.ndarray
    symphysis: np.ndarray | None
    skull: np.ndarray | None
    landmarks: np.ndarray


class Canvas:
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

    def __init__(self, c: Canvas, sector):
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

    def __init__(self, c: Canvas, ellipse, window: tuple[slice, slice]):
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


def _add_line(image: np.ndarray, c: Canvas, amplitude: float, p0, p1, width: float) -> None:
    """Add a bright segment from p0 to p1 with a Gaussian profile of sd ``width`` (in place)."""
    (x0, y0), (x1, y1) = p0, p1
    r = 3.0 * width
    window = c.window(min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r)
    x, y = c.x[window], c.y[window]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    ex, ey = x - (x0 + t * dx), y - (y0 + t * dy)
    image[window] += amplitude * np.exp(-(ex * ex + ey * ey) / (2.0 * width * width))


def _add_arc(image: np.ndarray, c: Canvas, amplitude: float, middle, radius: float, heading: float,
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


def _soft_tissue(c: Canvas, beams: _Beams, rng: np.random.Generator) -> np.ndarray:
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


def _add_symphysis(echo, c: Canvas, beams: _Beams, symphysis, rng: np.random.Generator):
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


def _add_skull(echo, c: Canvas, beams: _Beams, skull, rng: np.random.Generator):
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


def _echo_map(scene: Scene, c: Canvas, rng: np.random.Generator) -> np.ndarray:
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


class SpeckleBank:
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


def render_acquisition(scene: Scene, canvas: Canvas, bank: SpeckleBank, rng: np.random.Generator,
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
