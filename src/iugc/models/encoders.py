"""The encoders of Table 2 behind one interface.

Every encoder maps (B, 1, S, S) images to one feature map (B, out_channels, S / reduction,
S / reduction) and exposes:

- ``out_channels``, ``reduction`` and ``feature_info`` (timm-style list of dicts: num_chs,
  reduction, module) of that map;
- ``size_divisor``: the input side must be a multiple of it;
- ``stage_groups()``: {"shallow", "middle", "deep"} -> modules, a partition of all its
  parameters by depth. MoCo gives each group its own learning rate (Sec. 3.2) and fine-tuning
  unfreezes the encoder group by group.

HRNet and ResNet are timm models cut at their stride-32 map; the Attention U-Net is MONAI's.
All are built with random weights and one input channel (grey ultrasound).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import timm
import torch
from torch import nn

from ..errors import UserError

ENCODER_KINDS = ("hrnet", "resnet", "attention_unet", "unet")

# Top-level children of timm's feature models, by depth; parameter-free children (activations,
# pooling) are left out. HRNet: stem + the stride-4 bottleneck layer / the stages that add the
# stride-8 and stride-16 branches / the stride-32 stage and the incre modules (timm's
# feature_location="incre", which widen the branches to the 1024-channel map). ResNet: stem +
# layer1 / layer2, layer3 / layer4.
TIMM_STAGES = {
    "hrnet": {
        "shallow": ("conv1", "bn1", "conv2", "bn2", "layer1"),
        "middle": ("transition1", "stage2", "transition2", "stage3"),
        "deep": ("transition3", "stage4", "incre_modules"),
    },
    "resnet": {
        "shallow": ("conv1", "bn1", "layer1"),
        "middle": ("layer2", "layer3"),
        "deep": ("layer4",),
    },
}


class TimmEncoder(nn.Module):
    """A timm backbone returning its stride-32 feature map (``features_only``, ``out_indices=(4,)``).

    For HRNet that is the 1024-channel map of Sec. 2.1 (1024 x 16 x 16 at 512 px). timm's HRNet
    also runs the incre modules of the three finer branches and discards their output, so those
    few parameters (0.45 M of 67 M for W48) never receive a gradient.
    """

    def __init__(self, model_name: str, stages: Mapping[str, Sequence[str]]):
        super().__init__()
        self.body = timm.create_model(model_name, features_only=True, out_indices=(4,),
                                      pretrained=False, in_chans=1)
        self.feature_info = self.body.feature_info.get_dicts()
        self.out_channels = self.feature_info[-1]["num_chs"]
        self.reduction = self.size_divisor = self.feature_info[-1]["reduction"]
        self._stages = {name: tuple(children) for name, children in stages.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (features,) = self.body(x)
        return features

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        return {stage: [self.body.get_submodule(child) for child in children]
                for stage, children in self._stages.items()}


class AttentionUNetBody(nn.Module):
    """MONAI's Attention U-Net (Oktay et al. 2018) without its final 1x1 output convolution.

    MONAI's implementation is taken as is, a maintained one from the medical-imaging field, so the
    Table 2 row is the published architecture rather than a re-derivation. The body returns the
    full-resolution map of ``channels[0]`` features. MAE pretraining puts a 1x1 convolution to
    one channel on top (``nn.Sequential(body, nn.Conv2d(body.out_channels, 1, 1))``, exactly
    MONAI's output layer) and saves ``body.state_dict()``; fine-tuning puts a CoordinateHead on
    the same body. The modules keep MONAI's names (model.0 = input block, model.1 = the recursive
    encoder-decoder), so a full ``AttentionUnet`` state_dict loads here once its output
    convolution (``model.2.*``) is dropped.
    """

    def __init__(self, channels: Sequence[int]):
        from monai.networks.nets import AttentionUnet  # imported here: MONAI adds seconds to every start

        super().__init__()
        channels = list(channels)
        unet = AttentionUnet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
                             strides=[2] * (len(channels) - 1))
        self.model = unet.model[:-1]
        self.out_channels = channels[0]
        self.reduction = 1
        self.size_divisor = 2 ** (len(channels) - 1)
        self.feature_info = [dict(num_chs=channels[0], reduction=1, module="model.1")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        """By distance from the output, for an encoder-decoder pretrained as a whole: "deep"
        (released first) is the expanding path, every attention gate, up-convolution and merge,
        on which the head sits; "middle" the lower half of the contracting path down to the
        bottom block; "shallow" the input block and the upper half of the contracting path."""
        input_block, layer = self.model
        contracting, expanding = [input_block], []
        while True:
            expanding += [layer.attention, layer.upconv, layer.merge]
            if isinstance(layer.submodule, nn.Sequential):  # (down block, next level's layer)
                down, layer = layer.submodule
                contracting.append(down)
            else:  # the bottom ConvBlock ends the recursion
                contracting.append(layer.submodule)
                break
        half = len(contracting) // 2
        return {"shallow": contracting[:half], "middle": contracting[half:], "deep": expanding}


class UNetBody(nn.Module):
    """MONAI's BasicUNet without its final 1x1 convolution: the plain U-Net of the organisers'
    heatmap baseline (the reference row, not a paper variant). A heatmap head on it is that
    1x1 convolution to one heatmap per landmark (``HeatmapDecoder`` with no blocks).

    Groups for unfreezing, from the output: "deep" the expanding path (the upcat blocks),
    "middle" the lower contracting blocks, "shallow" the first two.
    """

    def __init__(self, features: Sequence[int]):
        from monai.networks.nets import BasicUNet

        super().__init__()
        # Batch norm rather than BasicUNet's default instance norm: under the same budget it reached
        # 20.3 px against 27.8 px on held-out real frames (quick preset, one seed).
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(features), norm="batch")
        self.unet.final_conv = nn.Identity()
        self.out_channels = features[-1]
        self.reduction = 1
        self.size_divisor = 16
        self.feature_info = [dict(num_chs=features[-1], reduction=1, module="unet.upcat_1")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        u = self.unet
        return {"shallow": [u.conv_0, u.down_1], "middle": [u.down_2, u.down_3, u.down_4],
                "deep": [u.upcat_4, u.upcat_3, u.upcat_2, u.upcat_1]}


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder: ``kind`` (one of ENCODER_KINDS), the timm model ``name`` for HRNet and
    ResNet, the level widths ``channels`` for the Attention U-Net and the U-Net."""

    kind: str
    name: str | None = None
    channels: tuple[int, ...] = ()


def build_encoder(spec: EncoderSpec) -> nn.Module:
    """The encoder ``spec`` describes, with random weights and one input channel."""
    if spec.kind == "attention_unet":
        return AttentionUNetBody(spec.channels)
    if spec.kind == "unet":
        return UNetBody(spec.channels)
    if spec.kind not in TIMM_STAGES:
        raise UserError(f"encoder {spec.kind!r} is not one of {', '.join(ENCODER_KINDS)}")
    if not timm.is_model(spec.name):
        raise UserError(f"encoders.{spec.kind}: {spec.name!r} is not a timm model")
    encoder = TimmEncoder(spec.name, TIMM_STAGES[spec.kind])
    try:
        groups = encoder.stage_groups()
    except AttributeError:  # a child named in TIMM_STAGES is missing
        groups = {}
    if not partitions_parameters(encoder, groups):
        raise UserError(f"encoders.{spec.kind}: {spec.name!r} does not have the layers of a {spec.kind} model")
    return encoder


def partitions_parameters(module: nn.Module, groups: Mapping[str, Sequence[nn.Module]]) -> bool:
    """Whether every parameter of ``module`` lies in exactly one of the ``groups``."""
    grouped = [id(p) for members in groups.values() for m in members for p in m.parameters()]
    return len(grouped) == len(set(grouped)) and set(grouped) == {id(p) for p in module.parameters()}
