"""The landmark detector (the generator of Sec. 2.2): an encoder and a head, one per variant of
Table 2."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import UserError
from ..geometry import LANDMARKS
from .decoder import HeatmapDecoder
from .encoders import EncoderSpec, build_encoder
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


@dataclass(frozen=True)
class LandmarkNetSpec:
    """Everything that decides the generator's architecture for one Table 2 variant.

    It is saved beside the weights (``to_dict``), so a trained model can be rebuilt from its
    file alone. ``cbam_*`` matter only with ``attention``; ``decoder_channels`` and
    ``soft_argmax_beta`` only for heatmap outputs.
    """

    encoder: EncoderSpec
    output: str                      # heatmaps | coordinates
    attention: bool
    image_size: int                  # network input side; heatmaps have the same side
    decoder_channels: tuple[int, ...] = ()
    soft_argmax_beta: float = 1.0
    cbam_reduction: int | None = None
    cbam_kernel: int | None = None
    coordinate_head: dict | None = None

    @property
    def cbam(self) -> bool:
        """Whether the head has CBAM blocks (attention, unless the encoder has gates of its own)."""
        return self.attention and self.encoder.kind != "attention_unet"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "LandmarkNetSpec":
        data = dict(data)
        encoder = dict(data.pop("encoder"))
        encoder["channels"] = tuple(encoder.get("channels", ()))
        data["decoder_channels"] = tuple(data.get("decoder_channels", ()))
        return cls(encoder=EncoderSpec(**encoder), **data)


def build_landmark_model(spec: LandmarkNetSpec) -> LandmarkNet:
    """The generator ``spec`` describes, with random weights."""
    if spec.output not in OUTPUTS:
        raise UserError(f"output {spec.output!r} is not one of {', '.join(OUTPUTS)}")
    encoder = build_encoder(spec.encoder)
    if spec.image_size % encoder.size_divisor:
        raise UserError(f"model.image_size: {spec.image_size} is not a multiple of "
                        f"{encoder.size_divisor}, which the {spec.encoder.kind} encoder needs")
    cbam = dict(cbam_reduction=spec.cbam_reduction, cbam_kernel=spec.cbam_kernel)
    if spec.output == "heatmaps":
        head = HeatmapDecoder(encoder.out_channels, spec.decoder_channels, len(LANDMARKS),
                              encoder.reduction, spec.cbam, **cbam)
        return LandmarkNet(encoder, head, "heatmaps", spec.soft_argmax_beta)
    layout = dict(spec.coordinate_head)
    layout["grid"] = pooled_side(spec.image_size // encoder.reduction, layout["grid"])
    head = CoordinateHead(encoder.out_channels, len(LANDMARKS), spec.cbam, **layout, **cbam)
    return LandmarkNet(encoder, head, "coordinates")


def pooled_side(side: int, grid: int) -> int:
    """The coordinate head's layout: the largest divisor of the map's ``side`` up to ``grid``, so
    pooling only averages whole cells (and exports to ONNX as a plain average pool)."""
    return max(d for d in range(1, min(side, grid) + 1) if side % d == 0)


def load_encoder_state(model: LandmarkNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load pretrained encoder weights into ``model.encoder``, strictly.

    ``state_dict`` is that of a module built by ``build_encoder`` from the same spec:
    MoCo's query encoder, or MAE's ``AttentionUNetBody``. A mismatch (another preset's
    checkpoint, another encoder) is a UserError naming the first problem.
    """
    try:
        model.encoder.load_state_dict(state_dict)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = problems[0] if problems else str(err)
        raise UserError(f"pretrained encoder weights do not fit this encoder: {first[:300]}") from None
