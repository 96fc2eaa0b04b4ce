"""Table 1 augmentations (albumentations 2.0.8), applied to an image and its landmarks together.

Input: a grey uint8 image (H, W) with values 0..255 and landmarks as (x, y) pixels (N, 2).
Output: float32 image normalised once by ``normalize_std`` (Table 1: mean 0, sd 255) and the
landmarks moved with the image; landmarks pushed out of the frame are kept, not dropped.

Two pieces of Table 1 have no faithful counterpart in albumentations 2.0.8, so they are written
here as small transforms:

- ``ElasticAffine``: the ``alpha_affine`` part of the paper's elastic transform. Albumentations
  < 1.4 warped the image by a random affine before the elastic field: the three corners of a
  centred square of side 2/3 of the short side each move by U(-alpha_affine, alpha_affine) px,
  and the affine through the moved corners is applied. 2.0.8 accepts ``alpha_affine`` but ignores
  it, and the old transform never moved keypoints; this one moves them exactly.
- ``SpeckleNoise``: multiplicative Gaussian speckle ``img * (1 + N(mean, std))``; 2.0.8's
  MultiplicativeNoise draws uniform factors.

``KeypointElasticTransform`` is albumentations' ElasticTransform with exact keypoints: 2.0.8
rounds keypoints to whole pixels, clips them to the frame and drops those that leave it, which
breaks landmark supervision and the dense correspondences of MoCo.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
from scipy import ndimage

KEYPOINT_PARAMS = dict(format="xy", remove_invisible=False)


@dataclass(frozen=True)
class AugmentConfig:
    """Table 1. ``alpha_affine``, ``elastic_alpha`` and ``elastic_sigma`` are pixels of the image
    the pipeline is applied to (the model input); the smaller presets scale them."""

    elastic_alpha: float
    elastic_sigma: float
    alpha_affine: float
    elastic_p: float
    brightness_limit: float
    contrast_limit: float
    brightness_contrast_p: float
    blur_kernel: tuple[int, int]
    blur_p: float
    speckle_mean: float
    speckle_std: float
    speckle_p: float
    normalize_mean: float
    normalize_std: float

    @classmethod
    def from_section(cls, section) -> "AugmentConfig":
        """From the ``augment`` section of the parameters (a list for ``blur_kernel``)."""
        return cls(**{**section, "blur_kernel": tuple(section["blur_kernel"])})


class ElasticAffine(A.DualTransform):
    """Random affine that moves three corners of a centred square by up to ``alpha_affine`` px."""

    def __init__(self, alpha_affine: float, border_value: float = 0, p: float = 1.0):
        super().__init__(p=p)
        self.alpha_affine = alpha_affine
        self.border_value = border_value

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        centre = np.array([width // 2, height // 2], dtype=np.float32)
        half = min(height, width) // 3
        corners = np.stack([centre + half, centre + [half, -half], centre - half]).astype(np.float32)
        jitter = self.random_generator.uniform(-self.alpha_affine, self.alpha_affine, size=corners.shape)
        matrix = cv2.getAffineTransform(corners, (corners + jitter).astype(np.float32))
        return {"matrix": matrix}

    def apply(self, img: np.ndarray, matrix: np.ndarray, **params: Any) -> np.ndarray:
        height, width = img.shape[:2]
        # Black outside the frame: ultrasound background, never mirrored anatomy.
        return cv2.warpAffine(img, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=self.border_value)

    def apply_to_keypoints(self, keypoints: np.ndarray, matrix: np.ndarray, **params: Any) -> np.ndarray:
        moved = keypoints.copy()
        moved[:, :2] = keypoints[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        return moved

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha_affine", "border_value")


class KeypointElasticTransform(A.ElasticTransform):
    """``A.ElasticTransform`` whose keypoints follow the displacement field to sub-pixel accuracy."""

    # Fixed-point steps for inverting the smooth field; |grad d| << 1 makes a few enough.
    inverse_iterations = 8

    def apply_to_keypoints(self, keypoints: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                           **params: Any) -> np.ndarray:
        # The image is resampled as out(q) = in(q + d(q)), so a source point p lands at the q
        # with q + d(q) = p: iterate q <- p - d(q).
        height, width = map_x.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        dx, dy = map_x - grid_x, map_y - grid_y
        p = keypoints[:, :2].astype(np.float64)
        q = p.copy()
        for _ in range(self.inverse_iterations):
            at = [q[:, 1], q[:, 0]]
            q[:, 0] = p[:, 0] - ndimage.map_coordinates(dx, at, order=1, mode="nearest")
            q[:, 1] = p[:, 1] - ndimage.map_coordinates(dy, at, order=1, mode="nearest")
        moved = keypoints.copy()
        moved[:, :2] = q
        return moved


class SpeckleNoise(A.ImageOnlyTransform):
    """Multiplicative Gaussian speckle: ``img * (1 + n)``, ``n ~ N(mean, std)`` per pixel."""

    def __init__(self, mean: float, std: float, p: float = 0.5):
        super().__init__(p=p)
        self.mean = mean
        self.std = std

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        noise = self.random_generator.normal(self.mean, self.std, size=params["shape"])
        return {"noise": noise.astype(np.float32)}

    def apply(self, img: np.ndarray, noise: np.ndarray, **params: Any) -> np.ndarray:
        top = 255.0 if img.dtype == np.uint8 else 1.0
        # Stay in float so that sd 0.01 (about 2.5 grey levels at most) is not rounded away.
        return np.clip(img.astype(np.float32) * (1.0 + noise.reshape(img.shape)), 0.0, top)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("mean", "std")


def opencv_blur_sigma(kernel_size: int) -> float:
    """OpenCV's sigma for a Gaussian kernel of this size (what sigma=0 means in cv2.GaussianBlur)."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def _gaussian_blur(kernel_range, p: float) -> A.OneOf:
    # A.GaussianBlur(blur_limit=(3, 5)) draws 3, 4 or 5 and rounds 4 up to 5, with a random sigma
    # up to 3; here the odd sizes are equally likely and sigma follows the size, as in cv2.
    low, high = kernel_range
    sizes = [k for k in range(low, high + 1) if k % 2 == 1]
    blurs = [A.GaussianBlur(blur_limit=(k, k), sigma_limit=(opencv_blur_sigma(k),) * 2, p=1.0) for k in sizes]
    return A.OneOf(blurs, p=p)


def _normalize(mean: float, std: float) -> A.Normalize:
    return A.Normalize(mean=mean, std=std, max_pixel_value=1.0, p=1.0)


def reseed(transform: A.Compose, seed: int | None) -> A.Compose:
    """Drive every transform of ``transform`` from ONE random stream seeded by ``seed``.

    ``A.Compose(seed=...)`` hands each child its own generator with the same seed, so the
    children's first coin flips coincide (elastic, blur and speckle would fire together).
    """
    rng = np.random.default_rng(seed)
    transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
    return transform


def build_augment(config: AugmentConfig, seed: int | None = None) -> A.Compose:
    """Table 1 for training: geometric and intensity augmentations, then normalisation once."""
    elastic = A.Sequential([
        ElasticAffine(alpha_affine=config.alpha_affine, p=1.0),
        # Uniform noise as in albumentations < 1.4, whose semantics the paper's numbers have.
        KeypointElasticTransform(alpha=config.elastic_alpha, sigma=config.elastic_sigma,
                                 noise_distribution="uniform", border_mode=cv2.BORDER_CONSTANT, p=1.0),
    ], p=config.elastic_p)
    transform = A.Compose([
        elastic,
        A.RandomBrightnessContrast(brightness_limit=config.brightness_limit,
                                   contrast_limit=config.contrast_limit, p=config.brightness_contrast_p),
        _gaussian_blur(config.blur_kernel, p=config.blur_p),
        SpeckleNoise(mean=config.speckle_mean, std=config.speckle_std, p=config.speckle_p),
        _normalize(config.normalize_mean, config.normalize_std),
    ], keypoint_params=A.KeypointParams(**KEYPOINT_PARAMS))
    return reseed(transform, seed)


def build_eval_transform(normalize_mean: float, normalize_std: float) -> A.Compose:
    """Normalisation only (validation, test, inference)."""
    return A.Compose([_normalize(normalize_mean, normalize_std)])  # keypoints pass through unchanged


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A 0..255 float image as uint8 (the brightness/contrast step reads uint8 as 0..255)."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def apply(transform: A.Compose, image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``transform`` on a uint8 image and (N, 2) points; returns float32 image and (N, 2) points."""
    out = transform(image=image, keypoints=np.asarray(points, dtype=np.float32).reshape(-1, 2))
    return out["image"].astype(np.float32, copy=False), np.asarray(out["keypoints"], dtype=np.float32)[:, :2]
