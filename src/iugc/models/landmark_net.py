"""The landmark detector (the generator of Sec. 2.2): an encoder and a head, one per variant of
Table 2."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import UserError
from ..geometry import LANDMARKS
from .decoder import HeatmapDecoder
from .encoders import build_encoder
from .heads import CoordinateHead, soft_argmax

OUTPUTS = ("heatmaps", "coordinates")


class LandmarkNet(nn.Module):
    """``encoder`` then ``head``; ``forward(images)`` returns a dict with

    - "coords": (B, K, 2) landmark (x, y) in pixels of the model input, for every variant;
    - "heatmaps": (B, K, S, S) raw decoder output, for ``output == "heatmaps"`` only.

    Heatmap variants read coordinates off the heatmaps by soft-argmax (Eq. 8); the decoder
    restores the input side, so heatmap pixels are input pixels. Coordinate variants scale the
    head's [0, 1] output to the first..last pixel centre of the input.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, output: str,
                 soft_argmax_beta: float = 1.0):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r} is not one of {OUTPUTS}")
        self.encoder = encoder
        self.head = head
        self.output = output
        self.soft_argmax_beta = soft_argmax_beta

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        divisor = self.encoder.size_divisor
        if height % divisor or width % divisor:
            raise ValueError(f"input {height} x {width}: both sides must be multiples of {divisor}")
        out = self.head(self.encoder(images))
        if self.output == "heatmaps":
            return {"heatmaps": out, "coords": soft_argmax(out, self.soft_argmax_beta)}
        scale = torch.tensor([width - 1, height - 1], dtype=torch.float32, device=out.device)
        return {"coords": out.float() * scale}  # float32 under mixed precision, as soft_argmax


def model_param_keys(params: Mapping, variant_name: str) -> list[str]:
    """The dotted keys ``build_landmark_model`` reads for this variant (and no others)."""
    variant = params["variants"][variant_name]
    encoder = variant["encoder"]
    keys = [f"variants.{variant_name}", "model.image_size",
            "encoders.attention_unet_channels" if encoder == "attention_unet" else f"encoders.{encoder}"]
    if variant["output"] == "heatmaps":
        keys += ["model.decoder_channels", "model.soft_argmax_beta"]
    if variant["attention"]:
        keys += ["model.cbam_reduction", "model.cbam_kernel"]
    return keys


def build_landmark_model(params: Mapping, variant_name: str) -> LandmarkNet:
    """The generator of variant ``params["variants"][variant_name]`` with random weights."""
    variants = params["variants"]
    if variant_name not in variants:
        raise UserError(f"variants: no variant {variant_name!r}; "
                        f"choose one of {', '.join(variants)}")
    variant, model = variants[variant_name], params["model"]
    encoder = build_encoder(variant["encoder"], params)
    if model["image_size"] % encoder.size_divisor:
        raise UserError(f"model.image_size: {model['image_size']} is not a multiple of "
                        f"{encoder.size_divisor}, which the {variant['encoder']} encoder needs")
    # Read only what this variant uses: the stage hands the builder exactly those keys.
    cbam = (dict(cbam_reduction=model["cbam_reduction"], cbam_kernel=model["cbam_kernel"])
            if variant["attention"] else dict(cbam_reduction=None, cbam_kernel=None))
    if variant["output"] == "heatmaps":
        head = HeatmapDecoder(encoder.out_channels, model["decoder_channels"], len(LANDMARKS),
                              encoder.reduction, variant["attention"], **cbam)
        return LandmarkNet(encoder, head, "heatmaps", model["soft_argmax_beta"])
    head = CoordinateHead(encoder.out_channels, len(LANDMARKS), variant["attention"], **cbam)
    return LandmarkNet(encoder, head, "coordinates")


def load_encoder_state(model: LandmarkNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load pretrained encoder weights into ``model.encoder``, strictly.

    ``state_dict`` is that of a module built by ``build_encoder`` from the same parameters:
    MoCo's query encoder, or MAE's ``AttentionUNetBody``. A mismatch (another preset's
    checkpoint, another encoder) is a UserError naming the first problem.
    """
    try:
        model.encoder.load_state_dict(state_dict)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = problems[0] if problems else str(err)
        raise UserError(f"pretrained encoder weights do not fit this encoder: {first[:300]}") from None
