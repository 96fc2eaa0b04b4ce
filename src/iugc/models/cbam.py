"""CBAM (Woo et al., ECCV 2018) and the paper's ConvCBAM2D block (Sec. 2.2).

CBAM is written out here rather than taken from ``timm.layers.CbamModule``: timm marks its
version experimental and puts a BatchNorm in the spatial gate, which Woo et al.'s Eq. 3 does not
have. The two gates below are Eqs. 2 and 3 of the CBAM paper, applied channel first.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """M_c = sigmoid(MLP(avgpool(F)) + MLP(maxpool(F))), one MLP shared by both poolings."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)  # narrow decoders (smoke preset) keep one unit
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """M_s = sigmoid(conv_k([mean over channels; max over channels]))."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Sequential):
    """Convolutional Block Attention Module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int, kernel_size: int):
        super().__init__(OrderedDict(
            channel=ChannelAttention(channels, reduction),
            spatial=SpatialAttention(kernel_size),
        ))


class ConvCBAM2D(nn.Sequential):
    """Conv 3x3 (pad 1, stride 1) -> BatchNorm -> ReLU -> CBAM, the unit of Eq. 7.

    ``attention=False`` drops the CBAM only (the no-attention rows of Table 2). The convolution
    has no bias because the BatchNorm that follows cancels it.
    """

    def __init__(self, in_channels: int, out_channels: int, attention: bool = True, *,
                 cbam_reduction: int, cbam_kernel: int):
        layers = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.ReLU(inplace=True),
        )
        if attention:
            layers["cbam"] = CBAM(out_channels, cbam_reduction, cbam_kernel)
        super().__init__(layers)
