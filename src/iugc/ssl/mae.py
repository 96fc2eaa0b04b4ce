"""Masked-autoencoder pretraining of the Attention U-Net (Table 2, last row).

He et al. (2022) adapted to a convolutional network: a random ``mask_ratio`` of the
``patch_size`` x ``patch_size`` patches of the input is blanked (set to 0, black after
normalisation), the network reconstructs the whole image through a 1x1 convolution to one
channel, and the loss is the mean squared error over the blanked pixels only, so the network
is scored on what it had to infer from context. A convolution sees the blanked pixels as black
rather than skipping them as a ViT skips masked tokens; the loss restricted to them keeps the
task the same.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UserError


def random_patch_mask(image_size: int, patch_size: int, mask_ratio: float,
                      rng: np.random.Generator) -> np.ndarray:
    """A (S, S) float32 mask of whole patches, 1 where the input is hidden.

    As in He et al., ``int(L * (1 - mask_ratio))`` of the L patches stay visible, chosen uniformly.
    """
    if image_size % patch_size:
        raise UserError(f"pretrain.mae.patch_size: {patch_size} does not divide "
                        f"model.image_size {image_size}")
    side = image_size // patch_size
    patches = side * side
    keep = int(patches * (1 - mask_ratio))
    masked = np.ones(patches, dtype=np.float32)
    masked[rng.permutation(patches)[:keep]] = 0.0
    block = np.ones((patch_size, patch_size), dtype=np.float32)
    return np.kron(masked.reshape(side, side), block)


def masked_mse(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels where ``mask`` is 1 (all tensors (B, 1, S, S))."""
    squared = (reconstruction.float() - target.float()) ** 2
    return (squared * mask).sum() / mask.sum().clamp_min(1)


class MaskedAutoencoder(nn.Module):
    """``encoder`` (full-resolution map) + 1x1 convolution to one channel, trained by masked MSE."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Conv2d(encoder.out_channels, 1, kernel_size=1)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images))

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss of reconstructing ``images`` from their unmasked part (``mask`` 1 = hidden)."""
        reconstruction = self.reconstruct(images * (1 - mask))
        return masked_mse(reconstruction, images, mask)
