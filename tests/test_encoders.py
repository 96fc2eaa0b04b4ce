"""Encoders: the paper's shapes at 512 px, the ResNet path, stage groups, the Attention U-Net body
and loading pretrained encoder weights."""
from __future__ import annotations

import copy

import pytest
import torch
from model_builders import encoder, network
from torch import nn

from iugc.config import load_preset
from iugc.errors import UserError
from iugc.models.encoders import AttentionUNetBody, EncoderSpec, build_encoder
from iugc.models.landmark_net import load_encoder_state


@pytest.fixture(scope="module")
def paper():
    return load_preset("paper")


@pytest.fixture(scope="module")
def smoke():
    return load_preset("smoke")


@pytest.fixture(scope="module")
def paper_forward(paper):
    """The best variant of Table 2 at paper scale (HRNet-W48, CBAM decoder), run once at 512 px."""
    torch.manual_seed(0)
    model = network(paper, "v2_moco_cbam_adv").eval()
    seen = {}
    model.encoder.register_forward_hook(lambda module, inputs, output: seen.update(features=output))
    with torch.no_grad():
        out = model(torch.rand(1, 1, 512, 512))
    return model, seen["features"], out


def assert_partition(encoder: nn.Module, groups: dict[str, list[nn.Module]]) -> None:
    owners: dict[int, list[str]] = {id(p): [] for p in encoder.parameters()}
    for stage, modules in groups.items():
        for module in modules:
            for p in module.parameters():
                owners[id(p)].append(stage)
    assert set(groups) == {"shallow", "middle", "deep"}
    assert all(len(stages) == 1 for stages in owners.values())
    assert len(owners) == len(list(encoder.parameters()))


def test_paper_hrnet_gives_the_1024x16x16_map(paper_forward):
    model, features, _ = paper_forward
    assert features.shape == (1, 1024, 16, 16)
    assert (model.encoder.out_channels, model.encoder.reduction) == (1024, 32)
    assert model.encoder.feature_info[-1]["num_chs"] == 1024


def test_paper_generator_gives_3x512x512_heatmaps(paper_forward):
    _, _, out = paper_forward
    assert out["heatmaps"].shape == (1, 3, 512, 512)
    assert out["coords"].shape == (1, 3, 2)
    assert torch.isfinite(out["coords"]).all()
    assert ((out["coords"] >= 0) & (out["coords"] <= 511)).all()


def test_paper_hrnet_stage_groups_partition_its_parameters(paper_forward):
    encoder = paper_forward[0].encoder
    groups = encoder.stage_groups()
    assert_partition(encoder, groups)
    assert encoder.body.conv1 in groups["shallow"]
    assert encoder.body.stage3 in groups["middle"]
    assert encoder.body.stage4 in groups["deep"]


def test_resnet50_path(paper):
    model = network(paper, "v5_resnet_moco").eval()
    assert (model.encoder.out_channels, model.encoder.reduction) == (2048, 32)
    seen = {}
    model.encoder.register_forward_hook(lambda module, inputs, output: seen.update(features=output))
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert seen["features"].shape == (1, 2048, 2, 2)
    assert out["heatmaps"].shape == (1, 3, 64, 64)
    groups = model.encoder.stage_groups()
    assert_partition(model.encoder, groups)
    assert model.encoder.body.layer4 in groups["deep"]


@pytest.mark.parametrize("kind", ["hrnet", "resnet", "attention_unet"])
def test_stage_groups_partition_every_encoder(smoke, kind):
    built = encoder(smoke, kind)
    assert_partition(built, built.stage_groups())


def test_attention_unet_groups_release_the_expanding_path_first(smoke):
    """An encoder-decoder pretrained as a whole: the path the head sits on is "deep" (released
    first), the contracting path is split into "middle" (down to the bottom) and "shallow"."""
    from monai.networks.blocks.convolutions import Convolution
    from monai.networks.nets.attentionunet import AttentionBlock

    channels = smoke["encoders"]["attention_unet_channels"]
    body = encoder(smoke, "attention_unet")
    groups = body.stage_groups()
    gates = [m for m in body.modules() if isinstance(m, AttentionBlock)]
    in_deep = {id(m) for module in groups["deep"] for m in module.modules()}
    assert gates and all(id(gate) in in_deep for gate in gates)
    assert body.model[0] in groups["shallow"]  # the input block
    widest = {m.out_channels for module in groups["middle"] for m in module.modules() if isinstance(m, nn.Conv2d)}
    assert channels[-1] in widest  # the bottom block
    assert not any(isinstance(m, Convolution) and m in groups["deep"] for m in groups["shallow"])


def test_attention_unet_body_is_monai_without_its_output_conv(smoke):
    from monai.networks.nets import AttentionUnet

    channels = smoke["encoders"]["attention_unet_channels"]
    torch.manual_seed(0)
    unet = AttentionUnet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
                         strides=[2] * (len(channels) - 1)).eval()
    body = AttentionUNetBody(channels).eval()
    body.load_state_dict({k: v for k, v in unet.state_dict().items() if not k.startswith("model.2.")})
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        features = body(x)
        assert features.shape == (2, channels[0], 32, 32)
        assert torch.allclose(unet.model[2](features), unet(x), atol=1e-6)
    assert (body.out_channels, body.reduction, body.size_divisor) == (channels[0], 1, 16)


def test_build_encoder_rejects_a_model_of_another_family(smoke):
    params = copy.deepcopy(smoke)
    params["encoders"]["hrnet"] = "resnet18"
    with pytest.raises(UserError, match="encoders.hrnet"):
        encoder(params, "hrnet")
    params["encoders"]["hrnet"] = "hrnet_nonexistent"
    with pytest.raises(UserError, match="not a timm model"):
        encoder(params, "hrnet")
    with pytest.raises(UserError, match="not one of"):
        build_encoder(EncoderSpec("vit", name="vit_small_patch16_224"))


def test_load_encoder_state_takes_a_pretrained_encoder(smoke):
    pretrained = encoder(smoke, "hrnet")  # what MoCo trains as its query encoder
    model = network(smoke, "v2_moco_cbam_adv")
    load_encoder_state(model, pretrained.state_dict())
    for key, value in pretrained.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)

    with pytest.raises(UserError, match="do not fit"):
        load_encoder_state(model, encoder(smoke, "resnet").state_dict())


def test_known_encoder_names_are_those_timm_can_cut_into_stages():
    """presets/encoders.yaml (what params validation accepts without importing timm) is exactly
    the set of timm HRNet / ResNet models whose layers TIMM_STAGES partitions."""
    import timm

    from iugc.config import known_encoders
    from iugc.models.encoders import TIMM_STAGES, TimmEncoder, partitions_parameters

    for family, listed in known_encoders().items():
        usable = []
        for name in timm.list_models(f"{family}*"):
            if not name.startswith(("hrnet_", "resnet")):
                continue
            try:
                with torch.device("meta"):
                    built = TimmEncoder(name, TIMM_STAGES[family])
                    if partitions_parameters(built, built.stage_groups()):
                        usable.append(name)
            except Exception:  # noqa: BLE001 - a model that cannot be cut is simply not usable
                continue
        assert listed == usable, f"regenerate presets/encoders.yaml ({family})"
