"""HeatmapCodec: Eq. 18 targets and their soft-argmax round trip."""
from __future__ import annotations

import math

import pytest
import torch

from iugc.models.codec import HeatmapCodec


def test_encode_draws_eq18():
    codec = HeatmapCodec(size=16, sigma=2.0)
    coords = torch.tensor([[[3.0, 5.0], [10.5, 2.25], [0.0, 15.0]]])
    heatmaps = codec.encode(coords)
    assert heatmaps.shape == (1, 3, 16, 16)
    assert heatmaps[0, 0, 5, 3] == 1.0  # peak of 1 at (x, y) = (3, 5): row y, column x
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    for k, (x, y) in enumerate(coords[0].tolist()):
        expected = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.0 ** 2))
        assert torch.allclose(heatmaps[0, k], expected, atol=1e-6)
    assert heatmaps[0, 0, 5, 5].item() == pytest.approx(math.exp(-4 / 8))  # 2 px from the centre


def test_encode_stays_on_the_coordinates_device_and_dtype():
    codec = HeatmapCodec(size=8, sigma=1.0)
    on_meta = codec.encode(torch.zeros(4, 3, 2, device="meta"))  # no CPU round trip possible
    assert on_meta.device.type == "meta" and on_meta.shape == (4, 3, 8, 8)
    assert codec.encode(torch.zeros(1, 3, 2, dtype=torch.float64)).dtype == torch.float64
    assert codec.encode(torch.zeros(1, 3, 2, dtype=torch.int64)).is_floating_point()


def test_round_trip_with_a_sharp_enough_beta():
    # S = 64, sigma = 3: beta = 15 makes the peak outweigh the background while the sharpened
    # peak (sd 3 / sqrt(15) = 0.77 px) still spans pixels (see the codec's docstring).
    codec = HeatmapCodec(size=64, sigma=3.0, beta=15.0)
    coords = torch.rand(8, 3, 2, generator=torch.Generator().manual_seed(0)) * 48 + 8
    decoded = codec.decode(codec.encode(coords))
    assert torch.allclose(decoded, coords, atol=0.02)


def test_plain_softmax_pulls_a_target_towards_the_image_centre():
    # With beta = 1 a peak-1 Gaussian hardly outweighs the background, so the decoded point
    # lies between the landmark and the image centre: the round trip is not an identity.
    codec = HeatmapCodec(size=64, sigma=3.0, beta=1.0)
    coords = torch.tensor([[[10.0, 12.0]]])
    decoded = codec.decode(codec.encode(coords))[0, 0]
    centre = torch.tensor([31.5, 31.5])
    assert (decoded - coords[0, 0]).norm() > 5
    assert (decoded - centre).norm() < (coords[0, 0] - centre).norm()


def test_a_target_holds_its_distribution_near_its_point_and_a_flat_map_does_not():
    from iugc.models.heads import mass_near
    codec = HeatmapCodec(size=128, sigma=2.0, beta=20.0)
    points = torch.tensor([[[30.0, 40.0], [90.5, 70.25], [64.0, 64.0]]])
    near = mass_near(codec.encode(points), points, radius=8.0, beta=codec.beta)
    assert near.shape == (1, 3) and torch.all(near > 0.999)
    # A target a little way off puts its mass there, not near the point asked about.
    assert torch.all(mass_near(codec.encode(points + 12.0), points, radius=8.0, beta=codec.beta) < 1e-3)
    # A flat map: the share of the frame's pixels inside the disc (about pi 8^2 / 128^2 = 1.2 %).
    flat = mass_near(torch.zeros(1, 3, 128, 128), points, radius=8.0, beta=codec.beta)
    grid = torch.stack(torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="xy"), dim=-1)
    inside = [int(((grid - point).pow(2).sum(-1) <= 64).sum()) for point in points[0]]
    assert torch.allclose(flat[0], torch.tensor(inside) / 128 ** 2)
