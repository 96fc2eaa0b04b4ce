"""The heatmap decoder net_dec of Eq. 7: 1024 x 16 x 16 encoder map -> 3 x 512 x 512 heatmaps."""
from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .cbam import ConvCBAM2D


class HeatmapDecoder(nn.Sequential):
    """ConvCBAM2D blocks of widths ``channels`` with bilinear x2 upsampling, then a 1x1 conv to
    one heatmap per landmark.

    The decoder upsamples log2(``reduction``) times so its heatmaps have the side of the network
    input (the paper: 5 upsamplings for HRNet's stride 32). The upsamplings follow the last
    blocks, as in Eq. 7 where every block is followed by one; a shallower reduction leaves the
    first blocks at the encoder's resolution.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], num_landmarks: int,
                 reduction: int, attention: bool = True, *, cbam_reduction: int, cbam_kernel: int):
        num_upsamples = round(math.log2(reduction))
        if 2 ** num_upsamples != reduction or num_upsamples > len(channels):
            raise ValueError(f"an encoder reduction of {reduction} is not undone by at most "
                             f"{len(channels)} x2 upsamplings (one per decoder width)")
        layers: list[nn.Module] = []
        first_upsampled = len(channels) - num_upsamples
        for i, width in enumerate(channels):
            layers.append(ConvCBAM2D(in_channels, width, attention,
                                     cbam_reduction=cbam_reduction, cbam_kernel=cbam_kernel))
            if i >= first_upsampled:
                layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            in_channels = width
        layers.append(nn.Conv2d(in_channels, num_landmarks, kernel_size=1))
        super().__init__(*layers)
