"""The spectral-normalised PatchGAN discriminator of Eq. 10 (3 x 512 x 512 -> 1 x 62 x 62)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class SpectralConv2D(nn.Sequential):
    """A spectral-normalised 4x4 convolution followed by a leaky ReLU (Eq. 10, layers 1-4)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, negative_slope: float):
        super().__init__(
            spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=stride, padding=1)),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


class PatchGANDiscriminator(nn.Sequential):
    """Eq. 10: SpectralConv2D blocks of widths ``channels`` (stride 2 except the last, stride 1),
    then a plain 4x4 conv to one realism score per patch.

    It sees the heatmaps alone, as in the paper (Sec. 2.2: D receives H in R^{3 x 512 x 512}).
    Spectral normalisation (Miyato et al.) is on layers 1-4 only.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], negative_slope: float):
        layers = []
        for i, width in enumerate(channels):
            stride = 1 if i == len(channels) - 1 else 2
            layers.append(SpectralConv2D(in_channels, width, stride, negative_slope))
            in_channels = width
        layers.append(nn.Conv2d(in_channels, 1, 4, stride=1, padding=1))
        super().__init__(*layers)
