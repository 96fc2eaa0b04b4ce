"""Layer shapes and parameter counts of a variant, as `iugc model-summary` prints them.

The models are built on PyTorch's meta device and run on a meta input: every shape is computed
but no weight is allocated and no arithmetic is done, so HRNet-W48 at 512 px takes a second or
two instead of a CPU forward pass.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..geometry import LANDMARKS
from .discriminator import PatchGANDiscriminator
from .landmark_net import LandmarkNetSpec, build_landmark_model


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _trace(model: nn.Module, blocks: list[tuple[str, nn.Module]], x: torch.Tensor):
    """Run ``model`` on ``x``; return its output and one row (name, type, output shape without
    the batch, parameter count) per block, in call order."""
    rows = []

    def record(name):
        def hook(module, inputs, output):
            rows.append(dict(name=name, type=type(module).__name__,
                             output=list(output.shape[1:]), params=_count(module)))
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in blocks]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, rows


def _shape(dims) -> str:
    return " x ".join(str(d) for d in dims)


def model_summary(variant_name: str, spec: LandmarkNetSpec, *, adversarial: bool,
                  discriminator_channels: Sequence[int], leaky_relu_slope: float,
                  size: int | None = None) -> dict:
    """Shapes (without batch) and parameter counts of the generator ``spec`` describes and, for
    heatmap variants, of the discriminator that judges its heatmaps (None otherwise)."""
    size = spec.image_size if size is None else size
    with torch.device("meta"):
        generator = build_landmark_model(spec)
        heatmaps = generator.output == "heatmaps"
        discriminator = (PatchGANDiscriminator(len(LANDMARKS), discriminator_channels, leaky_relu_slope)
                         if heatmaps else None)
    divisor = generator.encoder.size_divisor
    if size <= 0 or size % divisor:
        raise UserError(f"size {size}: the {spec.encoder.kind} encoder needs a positive "
                        f"multiple of {divisor}")

    blocks = [("generator.encoder", generator.encoder)]
    blocks += [(f"generator.head.{name}", m) for name, m in generator.head.named_children()]
    out, layers = _trace(generator, blocks, torch.zeros(1, 1, size, size, device="meta"))
    summary = dict(
        variant=variant_name,
        encoder=spec.encoder.kind,
        output=generator.output,
        attention=spec.attention,
        adversarial=adversarial,
        input=[1, size, size],
        encoder_out=layers[0]["output"],
        generator_out=list(out["heatmaps" if heatmaps else "coords"].shape[1:]),
        coords_out=list(out["coords"].shape[1:]),
        discriminator_out=None,
        encoder_params=_count(generator.encoder),
        head_params=_count(generator.head),
        generator_params=_count(generator),
        discriminator_params=None,
    )
    if discriminator is not None:
        blocks = [(f"discriminator.{name}", m) for name, m in discriminator.named_children()]
        scores, rows = _trace(discriminator, blocks, out["heatmaps"])
        layers += rows
        summary.update(discriminator_out=list(scores.shape[1:]),
                       discriminator_params=_count(discriminator))
    summary["layers"] = layers
    return summary


def format_summary(summary: Mapping) -> str:
    """A readable table of ``model_summary``'s layers and totals."""
    flags = [summary["output"], "attention" if summary["attention"] else "no attention",
             "adversarial" if summary["adversarial"] else "not adversarial"]
    lines = [f"{summary['variant']}: {summary['encoder']} encoder, {', '.join(flags)}; "
             f"input {_shape(summary['input'])}",
             f"{'layer':<26}{'type':<24}{'output':>18}{'params':>14}"]
    for row in summary["layers"]:
        lines.append(f"{row['name']:<26}{row['type']:<24}{_shape(row['output']):>18}"
                     f"{row['params']:>14,}")
    totals = [f"encoder {summary['encoder_params']:,}", f"head {summary['head_params']:,}",
              f"generator {summary['generator_params']:,}"]
    if summary["discriminator_params"] is not None:
        totals.append(f"discriminator {summary['discriminator_params']:,}")
    lines.append("parameters: " + ", ".join(totals))
    return "\n".join(lines)
