"""Staged encoder unfreezing (Sec. 3.2): which parameters train when, frozen BatchNorm statistics,
and an optimiser that needs no rebuild."""
from __future__ import annotations

import pytest
import torch
from model_builders import encoder
from torch import nn

from iugc.config import load_preset
from iugc.train.unfreeze import ENCODER_GROUPS, apply_unfreeze, trainable_groups

PAPER_EPOCHS = [150, 250]


class Net(nn.Module):
    """An encoder with a small head, standing in for LandmarkNet (only ``.encoder`` matters)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Conv2d(encoder.out_channels, 3, 1), nn.BatchNorm2d(3))

    def forward(self, x):
        return self.head(self.encoder(x))


@pytest.fixture(scope="module", params=["hrnet", "resnet", "attention_unet"])
def net(request):
    torch.manual_seed(0)
    return Net(encoder(load_preset("smoke"), request.param))


def _group_params(net) -> dict[str, set[int]]:
    return {group: {id(p) for m in modules for p in m.parameters()}
            for group, modules in net.encoder.stage_groups().items()}


@pytest.mark.parametrize("epoch, expected", [
    (0, set()), (149, set()), (150, {"deep"}), (249, {"deep"}),
    (250, {"shallow", "middle", "deep"}), (399, {"shallow", "middle", "deep"}),
])
def test_trainable_groups_follow_the_paper_schedule(epoch, expected):
    assert trainable_groups(epoch, PAPER_EPOCHS) == expected


@pytest.mark.parametrize("epoch", [0, 149, 150, 249, 250, 399])
def test_exactly_the_released_groups_train(net, epoch):
    groups = _group_params(net)
    net.train()
    released = apply_unfreeze(net, epoch, PAPER_EPOCHS)
    trainable = {id(p) for p in net.encoder.parameters() if p.requires_grad}
    assert trainable == set().union(*(groups[g] for g in released))
    assert all(p.requires_grad for p in net.head.parameters())


def test_whole_encoder_trains_by_the_end(net):
    """Every encoder parameter, not only those whose names match a pattern (the seed code's bug)."""
    net.train()
    apply_unfreeze(net, 0, PAPER_EPOCHS)
    assert not any(p.requires_grad for p in net.encoder.parameters())
    apply_unfreeze(net, 399, PAPER_EPOCHS)
    params = list(net.encoder.parameters())
    assert len(params) > 0 and all(p.requires_grad for p in params)
    assert all(m.training for m in net.encoder.modules())


def _running_means(modules) -> list[torch.Tensor]:
    return [m.running_mean.clone() for module in modules for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_frozen_batchnorm_statistics_do_not_move():
    torch.manual_seed(0)
    net = Net(encoder(load_preset("smoke"), "resnet"))
    groups = net.encoder.stage_groups()
    images = torch.randn(2, 1, 32, 32)

    net.train()
    apply_unfreeze(net, 150, PAPER_EPOCHS)  # deep released, middle and shallow frozen
    before = {g: _running_means(groups[g]) for g in ENCODER_GROUPS}
    head_before = net.head[1].running_mean.clone()
    net(images)
    after = {g: _running_means(groups[g]) for g in ENCODER_GROUPS}
    for group in ("shallow", "middle"):
        assert all(torch.equal(a, b) for a, b in zip(before[group], after[group]))
    assert not all(torch.equal(a, b) for a, b in zip(before["deep"], after["deep"]))
    assert not torch.equal(head_before, net.head[1].running_mean)


def test_adamw_leaves_frozen_parameters_alone_and_picks_them_up_once_released():
    torch.manual_seed(0)
    net = Net(encoder(load_preset("smoke"), "resnet"))
    # All parameters from the start, with a large weight decay that would show on any update.
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.5)
    images = torch.randn(2, 1, 32, 32)

    def step(epoch):
        net.train()
        apply_unfreeze(net, epoch, PAPER_EPOCHS)
        optimizer.zero_grad()
        net(images).square().mean().backward()
        optimizer.step()

    frozen = [p.detach().clone() for p in net.encoder.parameters()]
    head = [p.detach().clone() for p in net.head.parameters()]
    step(0)
    assert all(p.grad is None for p in net.encoder.parameters())
    assert not any(p in optimizer.state for p in net.encoder.parameters())
    assert all(torch.equal(a, p) for a, p in zip(frozen, net.encoder.parameters()))
    assert not any(torch.equal(a, p) for a, p in zip(head, net.head.parameters()))

    step(250)  # released: the same optimiser now updates every encoder parameter
    assert all(p in optimizer.state for p in net.encoder.parameters())
    weights = [(a, p) for a, p in zip(frozen, net.encoder.parameters()) if a.dim() > 1]
    assert not any(torch.equal(a, p) for a, p in weights)


def test_stage_groups_must_use_the_three_names():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(2, 2)
            self.encoder.stage_groups = lambda: {"early": [self.encoder]}

    with pytest.raises(ValueError, match="shallow"):
        apply_unfreeze(Odd(), 0, PAPER_EPOCHS)
