"""Reading frames as one grey channel, and the exact map between original and model pixels.

Every reader of the project goes through ``read_grey``: IUGC 2025 ships 512 x 512 RGB JPG/PNG,
PSFHS 256 x 256 grey PNG, and users bring whatever their scanner exports.

16-bit frames are scaled to 8 bits by dropping the low byte (``value >> 8``), the same for every
frame, so a grey level means the same thing in all frames of a dataset. (Stretching each frame by
its own range would make intensities frame-dependent.) Data that use only 12 of the 16 bits come
out dark; convert them before use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def is_image_name(path: str | Path) -> bool:
    """True for file names with an image suffix (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def to_grey(img: Image.Image) -> np.ndarray:
    """One uint8 channel from a decoded Pillow image of any 8- or 16-bit mode.

    Colour is reduced by Pillow's ITU-R 601 luma; alpha is dropped (ultrasound exports carry an
    opaque alpha channel at most).
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img).astype(np.int64)
        return (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    if img.mode == "F":
        raise ValueError("floating-point pixels are not supported; export 8- or 16-bit images")
    return np.asarray(img.convert("L"))


class ImageError(UserError):
    """An image file that cannot be used; ``reason`` says why, without the path."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _open_error(path: Path, err: Exception) -> ImageError:
    if isinstance(err, FileNotFoundError):
        return ImageError(path, "image file not found")
    if isinstance(err, UnidentifiedImageError):
        return ImageError(path, "not an image file")
    return ImageError(path, f"unreadable image ({err})")


def read_grey(path: str | Path) -> np.ndarray:
    """The frame at ``path`` as a uint8 array (H, W); ``ImageError`` (a ``UserError`` naming the
    file) when it is missing, not an image, truncated or corrupt."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not later in a worker
            return to_grey(img)
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's ways of saying "broken file"
        raise _open_error(path, err) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as err:
        raise _open_error(path, err) from None


@dataclass(frozen=True)
class ResizeMap:
    """Exact map of points between a ``width`` x ``height`` frame and the ``size`` x ``size`` grid.

    Pixel-centre convention: pixel i spans [i - 0.5, i + 0.5] in both grids, so the image borders
    coincide and ``x_model = (x + 0.5) * size / width - 0.5`` (same in y with ``height``). This is
    the convention of OpenCV's and PyTorch's (align_corners=False) resizers.
    """

    width: int
    height: int
    size: int

    @property
    def _scale(self) -> np.ndarray:
        return np.array([self.size / self.width, self.size / self.height])

    def to_model(self, points) -> np.ndarray:
        """Points (..., 2) in original pixels -> model pixels."""
        return (np.asarray(points, dtype=np.float64) + 0.5) * self._scale - 0.5

    def to_original(self, points) -> np.ndarray:
        """Points (..., 2) in model pixels -> original pixels."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self._scale - 0.5


def resize_frames(frames, size: int):
    """Grey frames (B, 1, H, W) as a float tensor, resized to ``size`` x ``size``: bilinear with
    antialiasing (a triangle filter as wide as the shrink where an axis shrinks), pixel centres
    aligned as in ``ResizeMap``. One torch call, so that a trained model exported without this
    package (``iugc export-submission``) resizes exactly as training did."""
    import torch.nn.functional as F

    return F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_grey(image: np.ndarray, size: int) -> np.ndarray:
    """A grey frame resized to ``size`` x ``size``, float32 (see ``resize_frames``)."""
    import torch

    frames = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return resize_frames(frames, size)[0, 0].numpy()


def load_for_model(path: str | Path, size: int) -> tuple[np.ndarray, ResizeMap]:
    """The frame resized to the model grid (float32, values 0..255) and its ``ResizeMap``."""
    image = read_grey(path)
    height, width = image.shape
    return resize_grey(image, size), ResizeMap(width, height, size)
