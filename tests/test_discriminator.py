"""The spectral-normalised PatchGAN discriminator of Eq. 10."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from iugc.config import load_preset
from model_builders import discriminator as build_discriminator

from iugc.models.discriminator import PatchGANDiscriminator, SpectralConv2D


@pytest.fixture(scope="module")
def paper():
    return load_preset("paper")


def test_paper_discriminator_maps_3x512x512_to_1x62x62(paper):
    discriminator = build_discriminator(paper).eval()
    with torch.no_grad():
        scores = discriminator(torch.rand(1, 3, 512, 512))
    assert scores.shape == (1, 1, 62, 62)


def test_paper_discriminator_is_eq10(paper):
    discriminator = build_discriminator(paper)
    widths = paper["model"]["discriminator_channels"]
    blocks = list(discriminator)
    assert [type(b) for b in blocks] == [SpectralConv2D] * 4 + [nn.Conv2d]
    convs = [b[0] for b in blocks[:4]] + [blocks[4]]
    assert [c.out_channels for c in convs] == [*widths, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert [parametrize.is_parametrized(c, "weight") for c in convs] == [True] * 4 + [False]
    slopes = {m.negative_slope for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {paper["model"]["leaky_relu_slope"]}
    in_channels = [3, *widths]
    expected = sum(16 * i * o + o for i, o in zip(in_channels, [*widths, 1]))  # 4x4 convs with bias
    assert sum(p.numel() for p in discriminator.parameters()) == expected


def test_spectral_norm_bounds_the_weights():
    torch.manual_seed(0)
    discriminator = PatchGANDiscriminator(3, [4, 8, 8, 16], negative_slope=0.2)
    for _ in range(30):  # each training-mode forward runs one power iteration
        discriminator(torch.rand(1, 3, 32, 32))
    for block in list(discriminator)[:4]:
        weight = block[0].weight.flatten(start_dim=1)
        assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=1e-2)
