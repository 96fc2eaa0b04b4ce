"""Staged unfreezing of the encoder during fine-tuning (Sec. 3.2).

The paper says only that "the encoder was frozen initially and unfrozen in stages at epochs 150
and 250" (``finetune.unfreeze_epochs``). We read it as the usual top-down schedule for
transfer learning: the decoder (and discriminator) train alone first; at the first epoch the
deepest encoder stages join, whose features are the most task-specific; at the second epoch
the middle and shallow stages join, so the whole encoder trains for the rest of the run.

Staged unfreezing is for pretrained encoders: it protects features learned before. A randomly
initialised encoder (the supervised baseline, Table 2's first row, which the paper trains
"directly") has nothing to protect, and frozen with BatchNorm on its default statistics it would
feed the decoder features hundreds of times too large; it trains from the first epoch
(``RANDOM_ENCODER``). Fine-tuning picks the schedule.

The groups come from the encoder itself (``encoder.stage_groups()``), which partitions all its
parameters, so no parameter can be left out by a name that does not match (the seed authors'
code matched names that timm's HRNet does not have and never unfroze most of the encoder).

A frozen group keeps ``requires_grad=False`` and stays in eval mode, so its BatchNorm running
statistics keep their pretrained values instead of drifting with batches it does not learn from.
The optimiser holds every parameter from the start: frozen ones get no gradient and AdamW skips
them (weight decay included), so unfreezing needs no optimiser rebuild.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

ENCODER_GROUPS = ("shallow", "middle", "deep")
RANDOM_ENCODER = (0, 0)  # the unfreeze epochs of an encoder that was not pretrained: all train at once


def trainable_groups(epoch: int, unfreeze_epochs: Sequence[int]) -> set[str]:
    """Encoder groups that train during ``epoch`` (0-based)."""
    first, second = unfreeze_epochs
    if epoch >= second:
        return set(ENCODER_GROUPS)
    if epoch >= first:
        return {"deep"}
    return set()


def apply_unfreeze(model: nn.Module, epoch: int, unfreeze_epochs: Sequence[int]) -> set[str]:
    """Freeze or release the encoder groups for ``epoch``; returns the trainable groups.

    Call it at the start of every epoch, after ``model.train()`` (which would otherwise switch the
    frozen groups' BatchNorm layers back to updating their statistics).
    """
    trainable = trainable_groups(epoch, unfreeze_epochs)
    groups = model.encoder.stage_groups()
    if set(groups) != set(ENCODER_GROUPS):
        raise ValueError(f"encoder.stage_groups() must name {ENCODER_GROUPS}, got {tuple(groups)}")
    for group, modules in groups.items():
        for module in modules:
            module.requires_grad_(group in trainable)
            module.train(model.training and group in trainable)
    return trainable
