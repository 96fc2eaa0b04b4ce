"""From decoder output to landmark coordinates: the soft-argmax of Eqs. 8 and 15, and the direct
coordinate-regression head of Table 2's "Coordinates" rows.

Coordinates follow the project's pixel-centre convention: pixel index i has coordinate i
(0-based), points are (x, y) with x along the width.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .cbam import ConvCBAM2D


def spatial_softmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Eq. 15: softmax of ``beta * H`` over all pixels of each map; (B, K, H, W) -> same shape.

    ``beta = 1`` is the paper's plain softmax; a larger beta sharpens it (see HeatmapCodec).
    """
    flat = (beta * heatmaps).flatten(start_dim=-2)
    return torch.softmax(flat, dim=-1).view_as(heatmaps)


def _distribution(heatmaps: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distribution the soft-argmax reads (``spatial_softmax``) and the pixel coordinates
    along x and y. In at least float32: half precision cannot hold sub-pixel positions on a
    512-pixel grid (bfloat16 steps by 2 there)."""
    probs = spatial_softmax(heatmaps.to(torch.promote_types(heatmaps.dtype, torch.float32)), beta)
    height, width = heatmaps.shape[-2:]
    xs = torch.arange(width, device=probs.device, dtype=probs.dtype)
    ys = torch.arange(height, device=probs.device, dtype=probs.dtype)
    return probs, xs, ys


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Eq. 8: expected pixel position under the spatial softmax; (B, K, H, W) -> (B, K, 2) (x, y)
    in heatmap pixels, in at least float32 (``_distribution``)."""
    probs, xs, ys = _distribution(heatmaps, beta)
    x = (probs.sum(dim=-2) * xs).sum(dim=-1)  # marginal over rows, then its mean
    y = (probs.sum(dim=-1) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def soft_argmax_spread(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """How spread out the distribution the soft-argmax reads is: its standard deviation along x
    and y, (B, K, H, W) -> (B, K, 2) in heatmap pixels. A confident heatmap has one narrow peak;
    one that hesitates between places has a wide distribution, and its coordinates (the mean)
    can land between them. The landmark's confidence (``iugc predict``)."""
    probs, xs, ys = _distribution(heatmaps, beta)
    px, py = probs.sum(dim=-2), probs.sum(dim=-1)  # marginals over x and y
    var_x = (px * xs ** 2).sum(dim=-1) - (px * xs).sum(dim=-1) ** 2
    var_y = (py * ys ** 2).sum(dim=-1) - (py * ys).sum(dim=-1) ** 2
    return torch.stack([var_x, var_y], dim=-1).clamp_min(0).sqrt()


def mass_near(heatmaps: torch.Tensor, points: torch.Tensor, radius: float, beta: float = 1.0) -> torch.Tensor:
    """The share of the distribution the soft-argmax reads that lies within ``radius`` of
    ``points`` (B, K, 2), (x, y) in heatmap pixels: (B, K, H, W) -> (B, K), 0..1.

    What the spread stands on. A heatmap with a peak holds nearly all of it near the point (an
    encoded target: about 1 within 4 sigma); a flat one spreads it over the frame, and its
    standard deviation (``soft_argmax_spread``) then measures the background's extent, not the
    network's hesitation."""
    probs, xs, ys = _distribution(heatmaps, beta)
    points = points.to(probs.dtype)
    dx2 = (xs - points[..., 0, None]) ** 2      # (B, K, W)
    dy2 = (ys - points[..., 1, None]) ** 2      # (B, K, H)
    near = dy2[..., :, None] + dx2[..., None, :] <= radius ** 2
    return (probs * near).sum(dim=(-2, -1))


class CoordinateHead(nn.Sequential):
    """Direct coordinate regression for the "Coordinates" rows of Table 2.

    The paper names the head but not its layers. It must keep where things are: a landmark's
    position is a spatial fact, and a global average over the map (the head this project had
    first) leaves the MLP a bag of features with the layout thrown away, which the
    full-resolution Attention U-Net row could not learn from at all. So: ConvCBAM2D on the
    encoder map to ``channels`` (CBAM only when ``attention``), average pooling to a
    ``grid`` x ``grid`` layout (``landmark_net.pooled_side``: at most the map's side), a two-layer MLP over that layout
    (``hidden`` units), and a sigmoid. Output: (B, K, 2) normalised coordinates in [0, 1],
    where 0 and 1 are the first and last pixel centres; LandmarkNet scales them to pixels of
    the input it was given.
    """

    def __init__(self, in_channels: int, num_landmarks: int, attention: bool = True, *, channels: int,
                 grid: int, hidden: int, cbam_reduction: int | None, cbam_kernel: int | None):
        super().__init__(OrderedDict(
            refine=ConvCBAM2D(in_channels, channels, attention,
                              cbam_reduction=cbam_reduction, cbam_kernel=cbam_kernel),
            pool=nn.AdaptiveAvgPool2d(grid),
            flatten=nn.Flatten(),
            fc1=nn.Linear(channels * grid * grid, hidden),
            act=nn.ReLU(inplace=True),
            fc2=nn.Linear(hidden, num_landmarks * 2),
            gate=nn.Sigmoid(),
            unflatten=nn.Unflatten(1, (num_landmarks, 2)),
        ))
