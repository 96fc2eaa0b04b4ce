import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from dataset_builders import write_frame
from torch import nn

from iugc.config import load_preset, select
from iugc.errors import NonFiniteLossError
from model_builders import encoder as build_encoder
from iugc.ssl.moco import (MoCo, ProjectionHead, info_nce, sample_at,
                           stage_wise_param_groups, token_centres)
from iugc.ssl.pretrain import load_pretrained_encoder
from iugc.ssl.pretrain import pretrain_moco as run_pretrain_moco
from iugc.stages.views import moco_config, pretrain_keys


class TinyEncoder(nn.Module):
    """Stand-in for build_encoder: three conv stages down to stride 8, with stage_groups()."""

    out_channels, reduction = 16, 8

    def __init__(self):
        super().__init__()
        self.shallow = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.middle = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.deep = nn.Sequential(nn.Conv2d(16, self.out_channels, 3, stride=2, padding=1),
                                  nn.BatchNorm2d(self.out_channels))

    def forward(self, x):
        return self.deep(self.middle(self.shallow(x)))

    def stage_groups(self):
        return {"shallow": [self.shallow], "middle": [self.middle], "deep": [self.deep]}


class CellMean(nn.Module):
    """An encoder whose token is the mean of its 32 x 32 cell: exactly local, for alignment tests."""

    out_channels, reduction = 1, 32

    def forward(self, x):
        return F.avg_pool2d(x, self.reduction)


def moco_options(queue_size=8, dim=4, **moco):
    """MoCo's settings from the paper preset, with a small queue and projection."""
    paper = {**load_preset("paper")["pretrain"]["moco"], **moco}
    return dict(dim=dim, queue_size=queue_size, momentum=paper["momentum"], temperature=paper["temperature"])


def tiny_moco(queue_size=8, dim=4, **moco):
    torch.manual_seed(0)
    head = ProjectionHead(TinyEncoder.out_channels, 8, dim)
    return MoCo(TinyEncoder(), head, **moco_options(queue_size, dim, **moco))


def test_projection_head_maps_channels_per_token():
    head = ProjectionHead(1024, 256, 128)
    assert head(torch.zeros(1, 1024, 16, 16)).shape == (1, 128, 16, 16)
    assert [m.kernel_size for m in head if isinstance(m, nn.Conv2d)] == [(1, 1), (1, 1)]


def test_key_encoder_is_a_frozen_copy_and_queue_is_normalised():
    moco = tiny_moco(queue_size=8, dim=4)
    assert all(not p.requires_grad for p in moco.encoder_k.parameters())
    assert all(not p.requires_grad for p in moco.head_k.parameters())
    for q, k in zip(moco.encoder_q.parameters(), moco.encoder_k.parameters()):
        assert torch.equal(q, k) and q is not k
    assert moco.queue.shape == (8, 4)
    torch.testing.assert_close(moco.queue.norm(dim=1), torch.ones(8))


def test_queue_is_fifo_and_wraps_around():
    moco = tiny_moco(queue_size=5, dim=2)
    first, second = torch.arange(6.0).view(3, 2), 100 + torch.arange(8.0).view(4, 2)
    moco.enqueue(first)
    assert int(moco.queue_ptr) == 3
    torch.testing.assert_close(moco.queue[:3], first)
    moco.enqueue(second)  # 4 keys into slots 3, 4, 0, 1: the oldest (first[0], first[1]) go
    assert int(moco.queue_ptr) == 2
    expected = torch.stack([second[2], second[3], first[2], second[0], second[1]])
    torch.testing.assert_close(moco.queue, expected)
    many = -torch.arange(14.0).view(7, 2)  # more keys than slots: only the newest 5 remain
    moco.enqueue(many)
    assert int(moco.queue_ptr) == 2  # wrote slots 2, 3, 4, 0, 1
    torch.testing.assert_close(moco.queue, many[[5, 6, 2, 3, 4]])


def test_momentum_update_is_eq5():
    moco = tiny_moco()
    m = moco.momentum
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.fill_(1.0)
        for p in moco.encoder_k.parameters():
            p.fill_(3.0)
    moco.momentum_update()
    for p in moco.encoder_k.parameters():
        torch.testing.assert_close(p, torch.full_like(p, m * 3.0 + (1 - m) * 1.0))


def test_info_nce_matches_a_hand_computation():
    tau = 0.2
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    negatives = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    # query 0: positive 0.6, negatives 1, -1, 0; query 1: positive 1, negatives 0, 0, -1
    e = lambda s: math.exp(s / tau)  # noqa: E731
    losses = [-math.log(e(0.6) / (e(0.6) + e(1) + e(-1) + e(0))),
              -math.log(e(1) / (e(1) + e(0) + e(0) + e(-1)))]
    assert info_nce(q, k, negatives, tau).item() == pytest.approx(sum(losses) / 2, rel=1e-6)


def test_token_centres_follow_the_pixel_centre_convention():
    centres = token_centres(64, 32)
    np.testing.assert_allclose(centres, [[15.5, 15.5], [47.5, 15.5], [15.5, 47.5], [47.5, 47.5]])


def test_sampling_at_token_centres_reads_the_tokens():
    features = torch.randn(2, 3, 4, 4)
    points = torch.from_numpy(token_centres(128, 32)).expand(2, -1, -1)
    torch.testing.assert_close(sample_at(features, points, 128), features.flatten(2).transpose(1, 2))
    # between two token centres: their average
    half = torch.tensor([[[31.5, 15.5]]]).expand(2, -1, -1)
    torch.testing.assert_close(sample_at(features, half, 128)[:, 0], features[:, :, 0, :2].mean(-1))


def test_identical_views_make_the_positive_the_largest_logit():
    moco = tiny_moco(queue_size=64, dim=4)
    view = torch.rand(2, 1, 32, 32)
    points = torch.from_numpy(token_centres(32, 8)).expand(2, -1, -1)
    query = moco.embed(moco.encoder_q, moco.head_q, view, points).flatten(0, 1)
    key = moco.embed(moco.encoder_k, moco.head_k, view, points).flatten(0, 1)
    positive = (query * key).sum(1)
    torch.testing.assert_close(positive, torch.ones_like(positive))
    assert (positive[:, None] >= query @ moco.queue.T).all()


def test_positives_follow_a_known_shift():
    """A view shifted by one token: tracked points pair the same anatomy; grid indices would not."""
    moco = MoCo(CellMean(), nn.Identity(), **moco_options(queue_size=16, dim=1))
    image = torch.rand(1, 1, 128, 128) + 0.1
    shifted = torch.zeros_like(image)
    shifted[..., :, 32:] = image[..., :, :96]  # content moves 32 px right
    tokens = torch.from_numpy(token_centres(128, 32))[None]
    points_k = tokens + torch.tensor([32.0, 0.0])
    features_q = CellMean()(image).flatten(2).transpose(1, 2)
    features_k = sample_at(CellMean()(shifted), points_k, 128)
    valid = points_k[0, :, 0] <= 127
    assert int(valid.sum()) == 12  # the rightmost column left the view
    torch.testing.assert_close(features_k[0, valid], features_q[0, valid])
    grid_pairs = CellMean()(shifted).flatten(2).transpose(1, 2)
    assert not torch.allclose(grid_pairs[0, valid], features_q[0, valid])
    loss = moco(image, shifted, tokens, points_k)  # runs with a dropped column and dim 1
    assert torch.isfinite(loss)
    assert int(moco.queue_ptr) == 12


def test_stage_wise_param_groups_follow_sec_3_2():
    params = load_preset("paper")
    encoder, head = TinyEncoder(), ProjectionHead(16, 8, 4)
    lrs = moco_config(params, "hrnet").learning_rates
    groups = {g["name"]: g for g in stage_wise_param_groups(encoder, head, lrs)}
    moco = params["pretrain"]["moco"]
    assert {name: g["lr"] for name, g in groups.items()} == {
        "deep": moco["lr_deep"], "middle": moco["lr_middle"], "shallow": moco["lr_shallow"],
        "head": moco["lr_head"]}
    assert {id(p) for p in groups["deep"]["params"]} == {id(p) for p in encoder.deep.parameters()}
    assert {id(p) for p in groups["shallow"]["params"]} == {id(p) for p in encoder.shallow.parameters()}
    encoder.stage_groups = lambda: {"shallow": [], "middle": [encoder.middle], "deep": [encoder.deep]}
    with pytest.raises(ValueError, match="partition"):
        stage_wise_param_groups(encoder, head, lrs)


def test_moco_loss_decreases_on_a_tiny_set():
    """Overfit check on 8 frames in two alternating batches. The queue holds exactly one batch
    of keys, so a batch's negatives are always the other batch's tokens (a queue holding a
    batch's own earlier keys would make its positives indistinguishable from negatives)."""
    tokens_per_batch = 4 * 4 * 4
    # m = 0.99: with the paper's 0.999 the key encoder needs far more steps to follow
    moco = tiny_moco(queue_size=tokens_per_batch, dim=8, momentum=0.99)
    lrs = {name: 1e-2 for name in ("deep", "middle", "shallow", "head")}
    optimizer = torch.optim.Adam(stage_wise_param_groups(moco.encoder_q, moco.head_q, lrs))
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 4, 1, 32, 32, generator=generator)
    points = torch.from_numpy(token_centres(32, 8)).expand(4, -1, -1)
    losses = []
    for step in range(24):
        view = frames[step % 2]
        noisy = [view + 0.1 * torch.randn(view.shape, generator=generator) for _ in range(2)]
        loss = moco(noisy[0], noisy[1], points, points)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # from step 2 on, the queue holds real keys
    assert np.mean(losses[-4:]) < 0.85 * np.mean(losses[1:5])


# End to end: the pretraining loop on six 64 px frames with the smoke preset (HRNet-W18-small).

@pytest.fixture()
def frames(tmp_path):
    return [write_frame(tmp_path / "frames" / f"{i}.png", (64, 64), seed=i) for i in range(6)]


def smoke_params(epochs):
    """The smoke preset, cut to the keys pretrain_moco declares it reads."""
    params = load_preset("smoke")
    params["pretrain"]["moco"]["epochs"] = epochs
    return select(params, pretrain_keys(params, {"method": "moco_hrnet"}))


def pretrain_moco(params, frames, out, encoder_kind, **options):
    return run_pretrain_moco(moco_config(params, encoder_kind), frames, out, seed=42, **options)


def test_pretrain_moco_writes_encoder_and_losses(frames, tmp_path):
    params = smoke_params(epochs=1)
    summary = pretrain_moco(params, frames, tmp_path / "out", encoder_kind="hrnet", log=lambda _: None)
    assert summary["complete"] and summary["images"] == 6
    assert summary["steps"] == 6 // params["pretrain"]["moco"]["batch_size"]
    assert math.isfinite(summary["final_loss"])
    losses = pd.read_csv(tmp_path / "out" / "losses.csv")
    assert list(losses.columns) == ["epoch", "step", "loss", "lr"]
    assert losses["loss"].iloc[-1] == pytest.approx(summary["final_loss"])
    assert losses["lr"].iloc[0] == params["pretrain"]["moco"]["lr_deep"]
    assert not (tmp_path / "out" / "checkpoint.pt").exists()

    encoder = build_encoder(params, "hrnet")
    meta = load_pretrained_encoder(tmp_path / "out" / "encoder.pt", encoder)
    assert meta["method"] == "moco" and meta["config_hash"] == summary["config_hash"]
    state = torch.load(tmp_path / "out" / "encoder.pt", weights_only=True)["state_dict"]
    assert state.keys() == encoder.state_dict().keys()  # the query encoder only: no head, no key copy


def test_pretrain_moco_resumes_exactly(frames, tmp_path):
    params = smoke_params(epochs=2)
    quiet = lambda _: None  # noqa: E731
    pretrain_moco(params, frames, tmp_path / "whole", encoder_kind="hrnet", log=quiet)
    first = pretrain_moco(params, frames, tmp_path / "split", encoder_kind="hrnet", log=quiet, stop_after=1)
    assert not first["complete"] and (tmp_path / "split" / "checkpoint.pt").exists()
    assert not (tmp_path / "split" / "encoder.pt").exists()
    messages = []
    pretrain_moco(params, frames, tmp_path / "split", encoder_kind="hrnet", log=messages.append)
    assert any("resuming after epoch 1" in m for m in messages)
    whole = pd.read_csv(tmp_path / "whole" / "losses.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "split" / "losses.csv"), whole)
    weights = [torch.load(tmp_path / run / "encoder.pt", weights_only=True)["state_dict"]
               for run in ("whole", "split")]
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])


def test_pretraining_stops_on_a_non_finite_loss_and_keeps_the_last_checkpoint(frames, tmp_path, monkeypatch):
    params = smoke_params(epochs=2)
    quiet = lambda _: None  # noqa: E731
    pretrain_moco(params, frames, tmp_path / "out", encoder_kind="hrnet", log=quiet, stop_after=1)
    checkpoint = (tmp_path / "out" / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(MoCo, "forward", lambda self, *args: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(NonFiniteLossError, match=r"moco pretraining: loss is nan at epoch 2, step \d+"):
        pretrain_moco(params, frames, tmp_path / "out", encoder_kind="hrnet", log=quiet)
    assert (tmp_path / "out" / "checkpoint.pt").read_bytes() == checkpoint
    assert not (tmp_path / "out" / "encoder.pt").exists()
