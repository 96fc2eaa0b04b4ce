"""CBAM, ConvCBAM2D, the Eq. 7 decoder, soft-argmax, the coordinate head and LandmarkNet."""
from __future__ import annotations

import pytest
import torch
from model_builders import network
from torch import nn

from iugc.config import load_preset
from iugc.errors import UserError
from iugc.models.cbam import CBAM, ConvCBAM2D
from iugc.models.decoder import HeatmapDecoder
from iugc.models.heads import CoordinateHead, soft_argmax, spatial_softmax

CBAM_ARGS = dict(cbam_reduction=4, cbam_kernel=7)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cbam_keeps_shape_and_gates_with_both_attentions():
    cbam = CBAM(16, reduction=4, kernel_size=7)
    x = torch.rand(2, 16, 8, 8)
    assert cbam(x).shape == x.shape
    # With zero weights each gate is sigmoid(0) = 1/2: channel then spatial gives x / 4.
    for p in cbam.parameters():
        nn.init.zeros_(p)
    assert torch.allclose(cbam(x), x / 4)


def test_conv_cbam_shapes_and_attention_switch():
    x = torch.rand(2, 8, 10, 10)
    with_cbam = ConvCBAM2D(8, 16, attention=True, **CBAM_ARGS)
    without = ConvCBAM2D(8, 16, attention=False, **CBAM_ARGS)
    assert with_cbam(x).shape == without(x).shape == (2, 16, 10, 10)
    conv_bn = 9 * 8 * 16 + 2 * 16  # 3x3 conv without bias, BatchNorm scale and shift
    cbam = 2 * 16 * (16 // 4) + 2 * 7 * 7  # shared MLP, spatial 7x7 conv on [avg, max]
    assert n_params(without) == conv_bn
    assert n_params(with_cbam) == conv_bn + cbam
    assert not any(isinstance(m, CBAM) for m in without.modules())


def test_paper_decoder_is_eq7():
    model = load_preset("paper")["model"]
    widths = model["decoder_channels"]
    decoder = HeatmapDecoder(1024, widths, 3, reduction=32, attention=True,
                             cbam_reduction=model["cbam_reduction"], cbam_kernel=model["cbam_kernel"])
    kinds = [type(m) for m in decoder]
    assert kinds == [ConvCBAM2D, nn.Upsample] * 5 + [nn.Conv2d]
    assert all(m.mode == "bilinear" and m.scale_factor == 2 for m in decoder if isinstance(m, nn.Upsample))
    expected, in_ch = 0, 1024
    for width in widths:
        hidden = max(1, width // model["cbam_reduction"])
        expected += 9 * in_ch * width + 2 * width + 2 * width * hidden + 2 * model["cbam_kernel"] ** 2
        in_ch = width
    expected += in_ch * 3 + 3  # the final 1x1 conv with bias
    assert n_params(decoder) == expected


@pytest.mark.parametrize("reduction", [1, 8, 32])
def test_decoder_restores_the_input_side(reduction):
    decoder = HeatmapDecoder(6, [8, 8, 4, 4, 4], 3, reduction, attention=True, **CBAM_ARGS)
    with torch.no_grad():
        out = decoder(torch.rand(1, 6, 2, 3))
    assert out.shape == (1, 3, 2 * reduction, 3 * reduction)


def test_decoder_rejects_a_reduction_it_cannot_undo():
    with pytest.raises(ValueError):
        HeatmapDecoder(6, [8, 8, 4, 4, 4], 3, reduction=24, **CBAM_ARGS)
    with pytest.raises(ValueError):
        HeatmapDecoder(6, [8, 8], 3, reduction=8, **CBAM_ARGS)


def test_soft_argmax_is_exact_on_a_peaked_heatmap():
    heatmaps = torch.zeros(1, 2, 12, 16)  # H = 12, W = 16
    heatmaps[0, 0, 9, 5] = 50.0  # x = 5, y = 9
    heatmaps[0, 1, 3, 15] = 50.0  # x = 15, y = 3
    coords = soft_argmax(heatmaps)
    assert torch.allclose(coords, torch.tensor([[[5.0, 9.0], [15.0, 3.0]]]), atol=1e-4)


def test_soft_argmax_keeps_pixel_accuracy_in_half_precision():
    heatmaps = torch.zeros(1, 1, 4, 512, dtype=torch.bfloat16)
    heatmaps[0, 0, 2, 301] = 50.0  # bfloat16 itself cannot hold 301
    coords = soft_argmax(heatmaps)
    assert coords.dtype == torch.float32
    assert torch.allclose(coords, torch.tensor([[[301.0, 2.0]]]), atol=1e-3)


def test_soft_argmax_of_a_flat_map_is_the_centre():
    coords = soft_argmax(torch.zeros(2, 3, 12, 16))
    assert torch.allclose(coords, torch.tensor([7.5, 5.5]).expand(2, 3, 2))


def test_spatial_softmax_normalises_each_map_and_beta_sharpens():
    heatmaps = torch.randn(2, 3, 5, 7)
    probs = spatial_softmax(heatmaps)
    assert torch.allclose(probs.sum(dim=(-2, -1)), torch.ones(2, 3))
    assert torch.allclose(spatial_softmax(heatmaps, beta=3.0), spatial_softmax(3 * heatmaps))


def test_soft_argmax_passes_gradients():
    heatmaps = torch.randn(1, 3, 8, 8, requires_grad=True)
    soft_argmax(heatmaps).sum().backward()
    assert heatmaps.grad.abs().sum() > 0


def test_coordinate_head_outputs_normalised_coordinates():
    layout = dict(channels=8, grid=4, hidden=32)
    head = CoordinateHead(16, 3, attention=True, **layout, **CBAM_ARGS)
    out = head(torch.rand(4, 16, 5, 5))
    assert out.shape == (4, 3, 2)
    assert ((out > 0) & (out < 1)).all()
    plain = CoordinateHead(16, 3, attention=False, **layout, **CBAM_ARGS)
    assert not any(isinstance(m, CBAM) for m in plain.modules())


def test_coordinate_head_sees_where_a_feature_is():
    """Two maps with the same features in different places: a global average could not tell
    them apart, the head's pooled layout does."""
    torch.manual_seed(0)
    head = CoordinateHead(1, 1, attention=False, channels=4, grid=4, hidden=16,
                          cbam_reduction=None, cbam_kernel=None).eval()
    left, right = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    left[..., 8, 2], right[..., 8, 13] = 1.0, 1.0
    with torch.no_grad():
        assert not torch.allclose(head(left), head(right))


def test_the_attention_unet_row_has_no_cbam_on_its_gates(smoke):
    model = network(smoke, "v7_attunet_mae_coords")
    assert smoke["variants"]["v7_attunet_mae_coords"]["attention"]
    assert not any(isinstance(m, CBAM) for m in model.head.modules())
    assert any(isinstance(m, CBAM) for m in network(smoke, "v6_moco_cbam_coords").head.modules())


@pytest.fixture(scope="module")
def smoke():
    return load_preset("smoke")


def test_coordinate_variant_scales_to_input_pixels(smoke):
    model = network(smoke, "v6_moco_cbam_coords").eval()
    nn.init.zeros_(model.head.fc2.weight)
    nn.init.zeros_(model.head.fc2.bias)  # sigmoid(0) = 1/2 -> the centre of the input
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 96))
    assert set(out) == {"coords"}
    assert torch.allclose(out["coords"], torch.tensor([47.5, 31.5]).expand(2, 3, 2))


def test_heatmap_variant_reads_coordinates_off_its_heatmaps(smoke):
    model = network(smoke, "v1_hrnet_supervised").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out["heatmaps"].shape == (2, 3, 64, 64)
    beta = smoke["model"]["soft_argmax_beta"]
    assert torch.allclose(out["coords"], soft_argmax(out["heatmaps"], beta))
    assert not any(isinstance(m, CBAM) for m in model.head.modules())  # v1 has no attention


def test_attention_unet_coordinate_variant(smoke):
    model = network(smoke, "v7_attunet_mae_coords").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 32, 32))
    assert out["coords"].shape == (1, 3, 2)
    assert ((out["coords"] >= 0) & (out["coords"] <= 31)).all()


def test_landmark_net_rejects_bad_inputs_and_names(smoke):
    model = network(smoke, "v1_hrnet_supervised")
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 1, 48, 48))

