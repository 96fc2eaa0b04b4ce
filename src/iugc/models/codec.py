"""Landmarks <-> heatmaps, a symmetric pair in the manner of mmpose's codecs.

``encode`` draws the Gaussian targets of Eq. 18; ``decode`` reads coordinates back with the
soft-argmax the network uses (Eq. 8 over the spatial softmax of Eq. 15).

When does a target decode to its own centre? softmax(beta * H) of a peak-1 Gaussian weighs every
background pixel by exp(0) = 1 and the peak by at most exp(beta), so with a small beta the S^2
background pixels pull the estimate towards the image centre: at beta = 1, S = 512, sigma = 5 a
target at (100, 140) decodes about 190 px away, near the centre. Near the peak,
exp(beta * H) ~ exp(beta) * exp(-beta * d^2 / (2 sigma^2)), a Gaussian of sd sigma / sqrt(beta)
centred on the landmark, so the round trip is exact (to well under 0.1 px, away from the border)
once both hold:
- exp(beta) * 2 pi sigma^2 / beta >> S^2 (the peak outweighs the background), and
- sigma / sqrt(beta) >~ 0.7 px (the sharpened peak still spans a few pixels, so sampling it on
  the integer grid does not snap the estimate to the nearest pixel).
For S = 512, sigma = 5 that is beta ~ 20-100 (beta = 30: error < 1e-4 px). With beta = 1 the
targets of Eq. 18 do not decode to their landmarks, so the coordinate loss (Eq. 14) can only be
met by heatmaps whose peaks stand far higher above the background than the targets', which the
heatmap loss (Eq. 13) penalises: the two terms pull apart.
"""
from __future__ import annotations

import torch

from .heads import soft_argmax


class HeatmapCodec:
    """Gaussian heatmaps of side ``size`` and sd ``sigma`` (pixels), decoded with soft-argmax
    sharpness ``beta``. Coordinates are (x, y) in heatmap pixels, pixel index i at coordinate i."""

    def __init__(self, size: int, sigma: float, beta: float = 1.0):
        self.size = size
        self.sigma = sigma
        self.beta = beta

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Eq. 18 for every landmark: (..., K, 2) -> (..., K, S, S), on the coordinates' device.

        The 2-D Gaussian is the outer product of its x and y profiles, so no (S, S) distance grid
        is built per landmark.
        """
        if not coords.is_floating_point():
            coords = coords.float()
        grid = torch.arange(self.size, device=coords.device, dtype=coords.dtype)
        profiles = torch.exp(-(grid - coords[..., None]) ** 2 / (2 * self.sigma ** 2))  # (..., K, 2, S)
        gx, gy = profiles.unbind(dim=-2)
        return gy[..., :, None] * gx[..., None, :]

    def decode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, K, S, S) -> (B, K, 2) by soft-argmax with this codec's beta."""
        return soft_argmax(heatmaps, self.beta)
