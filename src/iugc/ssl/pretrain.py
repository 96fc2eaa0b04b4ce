"""Self-supervised pretraining of an encoder on the filtered standard-plane pool: MoCoV2 for
HRNet and ResNet (Sec. 2.1, 3.2), the masked autoencoder for the Attention U-Net (Table 2's last
row). Each method supplies its step; the loop (``train.loop``) does the rest.

Written in ``out_dir``:
- ``encoder.pt``: the pretrained encoder's state_dict (for MoCo the query encoder f_q, for the
  masked AE the U-Net body), the config hash and metadata; fine-tuning loads it into its
  encoder; :func:`load_pretrained_encoder` reads it;
- ``losses.csv`` (one row per optimiser step: epoch, step, loss, lr of the first group) and
  ``dvclive/`` (one row per epoch).

Every random draw of an epoch is derived from (seed, epoch[, frame]): the shuffling order,
each frame's augmentations and masks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import params_hash
from ..data.augment import AugmentConfig, apply, build_augment, reseed, to_uint8
from ..data.images import load_for_model
from ..errors import UserError
from ..models.encoders import EncoderSpec, build_encoder
from ..seeding import derive_seed, seed_everything
from ..train.checkpoint import load_checkpoint, save_checkpoint
from ..train.loop import LoopSettings, StatefulParts, fit
from ..train.runtime import amp_enabled, autocast, choose_device, grad_scaler, set_deterministic
from .mae import MaskedAutoencoder, random_patch_mask
from .moco import MoCo, ProjectionHead, stage_wise_param_groups, token_centres

ENCODER_FILE = "encoder.pt"


@dataclass(frozen=True)
class MocoConfig:
    """MoCoV2 pretraining (Sec. 2.1, 3.2): the encoder, the projection head, the queue and the
    stage-wise Adam learning rates, over ``epochs`` of the pool (capped at ``max_images``)."""

    encoder: EncoderSpec
    image_size: int
    augment: AugmentConfig
    projection_hidden: int
    projection_dim: int
    epochs: int
    batch_size: int
    queue_size: int
    momentum: float
    temperature: float
    lr_deep: float
    lr_middle: float
    lr_shallow: float
    lr_head: float
    weight_decay: float
    amp: bool
    max_images: int | None

    @property
    def learning_rates(self) -> dict[str, float]:
        """Sec. 3.2's stage-wise learning rates, keyed like ``stage_groups()`` plus "head"."""
        return {"deep": self.lr_deep, "middle": self.lr_middle, "shallow": self.lr_shallow,
                "head": self.lr_head}


@dataclass(frozen=True)
class MaeConfig:
    """Masked-autoencoder pretraining of the Attention U-Net body."""

    encoder: EncoderSpec
    image_size: int
    augment: AugmentConfig
    epochs: int
    batch_size: int
    mask_ratio: float
    patch_size: int
    lr: float
    weight_decay: float
    amp: bool
    max_images: int | None


class PretrainFrames(Dataset):
    """Unlabelled frames at the model's input side, with randomness seeded per (epoch, frame)."""

    def __init__(self, image_paths: Sequence[str | Path], image_size: int, augment: AugmentConfig, seed: int):
        self.image_paths = [str(p) for p in image_paths]
        self.image_size = image_size
        self.augment = build_augment(augment)
        self.seed = seed
        self.epoch = 0  # set by the training loop before each epoch's DataLoader is made

    def __len__(self) -> int:
        return len(self.image_paths)

    def frame(self, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """The frame as uint8 (S, S), and this (epoch, frame)'s generator; reseeds the augmentation."""
        image, _ = load_for_model(self.image_paths[index], self.image_size)
        sample_seed = derive_seed(self.seed, self.epoch, index)
        reseed(self.augment, sample_seed)
        return to_uint8(image), np.random.default_rng(sample_seed)


class MoCoViews(PretrainFrames):
    """Two augmented views of a frame, and where the token centres of the frame went in each."""

    def __init__(self, image_paths, image_size, augment, seed, token_stride: int):
        super().__init__(image_paths, image_size, augment, seed)
        self.tokens = token_centres(image_size, token_stride)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, _ = self.frame(index)
        view_q, points_q = apply(self.augment, image, self.tokens)
        view_k, points_k = apply(self.augment, image, self.tokens)
        return {"view_q": torch.from_numpy(view_q)[None], "view_k": torch.from_numpy(view_k)[None],
                "points_q": torch.from_numpy(points_q), "points_k": torch.from_numpy(points_k)}


class MaskedFrames(PretrainFrames):
    """An augmented frame and a random patch mask (1 = hidden from the network)."""

    def __init__(self, image_paths, image_size, augment, seed, patch_size: int, mask_ratio: float):
        super().__init__(image_paths, image_size, augment, seed)
        self.patch_size, self.mask_ratio = patch_size, mask_ratio

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, rng = self.frame(index)
        view, _ = apply(self.augment, image, np.zeros((0, 2), dtype=np.float32))
        mask = random_patch_mask(self.image_size, self.patch_size, self.mask_ratio, rng)
        return {"images": torch.from_numpy(view)[None], "mask": torch.from_numpy(mask)[None]}


class PretrainMethod(StatefulParts):
    """A self-supervised model whose forward pass returns its loss, one Adam optimiser with a
    cosine schedule over all steps, and the loss scaler; ``encoder`` is what gets saved."""

    main_loss = "loss"

    def __init__(self, name: str, model: nn.Module, encoder: nn.Module, optimizer: torch.optim.Optimizer,
                 total_steps: int, device: torch.device, amp: bool, meta: Mapping):
        self.name, self.model, self.encoder, self.optimizer = name, model, encoder, optimizer
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        self.scaler = grad_scaler(device, amp_enabled(device, amp))
        self.device, self.meta = device, dict(meta)
        model.to(device, memory_format=torch.channels_last)
        model.train()

    def parts(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler,
                "scaler": self.scaler}

    def begin_epoch(self, epoch: int) -> str:
        return ""

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {key: _to_device(value, self.device) for key, value in batch.items()}
        with autocast(self.device, self.scaler.is_enabled()):
            loss = self.model(**batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # A step the scaler skipped (inf or NaN gradients; it then lowers its scale) is no step
        # of the schedule: the cosine runs over the updates the weights received.
        if self.scaler.get_scale() >= scale:
            self.scheduler.step()
        return {"loss": loss.detach()}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def finish(self, out_dir: Path) -> None:
        encoder_state = {key: value.cpu() for key, value in self.encoder.state_dict().items()}
        save_checkpoint(out_dir / ENCODER_FILE, {
            "state_dict": encoder_state, "config_hash": self.meta["config_hash"],
            "meta": {**self.meta, "encoder_class": type(self.encoder).__name__,
                     "torch": str(torch.__version__)}})


class _MoCoLoss(nn.Module):
    """MoCo's forward with the batch's keys as arguments (the loop calls ``model(**batch)``)."""

    def __init__(self, moco: MoCo):
        super().__init__()
        self.moco = moco

    def forward(self, view_q, view_k, points_q, points_k):
        return self.moco(view_q, view_k, points_q, points_k)


def pretrain_moco(config: MocoConfig, image_paths: Sequence[str | Path], out_dir: str | Path, *,
                  seed: int, device: str | torch.device | None = None,
                  log: Callable[[str], None] = print, checkpoint_dir: str | Path | None = None,
                  stop_after: int | None = None, deterministic: bool | None = None,
                  num_workers: int = 0) -> dict:
    """MoCoV2 pretraining of ``config.encoder`` (Sec. 2.1, 3.2).

    ``checkpoint_dir`` holds the per-epoch checkpoint (default ``out_dir``); ``stop_after`` ends
    the call after that many epochs in all (no encoder.pt yet); ``deterministic`` defaults to
    True on a CPU; ``num_workers``: loader processes (the results do not depend on it). Returns
    a summary: final loss, images, epochs, steps, seconds, device.
    """
    device = choose_device(device)
    set_deterministic(device.type == "cpu" if deterministic is None else deterministic)
    seed_everything(seed)
    encoder = build_encoder(config.encoder)
    head = ProjectionHead(encoder.out_channels, config.projection_hidden, config.projection_dim)
    moco = MoCo(encoder, head, dim=config.projection_dim, queue_size=config.queue_size,
                momentum=config.momentum, temperature=config.temperature)
    optimizer = torch.optim.Adam(stage_wise_param_groups(encoder, head, config.learning_rates),
                                 weight_decay=config.weight_decay)
    _check_divisible(config.image_size, encoder)
    dataset = MoCoViews(_pool(image_paths, config), config.image_size, config.augment, seed,
                        token_stride=encoder.reduction)
    return _pretrain("moco", _MoCoLoss(moco), encoder, optimizer, dataset, config, seed=seed,
                     device=device, out_dir=out_dir, checkpoint_dir=checkpoint_dir, log=log,
                     stop_after=stop_after, num_workers=num_workers)


def pretrain_mae(config: MaeConfig, image_paths: Sequence[str | Path], out_dir: str | Path, *,
                 seed: int, device: str | torch.device | None = None,
                 log: Callable[[str], None] = print, checkpoint_dir: str | Path | None = None,
                 stop_after: int | None = None, deterministic: bool | None = None,
                 num_workers: int = 0) -> dict:
    """Masked-autoencoder pretraining of the Attention U-Net (Table 2, last row).

    Options and summary as for :func:`pretrain_moco`.
    """
    device = choose_device(device)
    set_deterministic(device.type == "cpu" if deterministic is None else deterministic)
    seed_everything(seed)
    encoder = build_encoder(config.encoder)
    model = MaskedAutoencoder(encoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    _check_divisible(config.image_size, encoder)
    dataset = MaskedFrames(_pool(image_paths, config), config.image_size, config.augment, seed,
                           patch_size=config.patch_size, mask_ratio=config.mask_ratio)
    return _pretrain("mae", model, encoder, optimizer, dataset, config, seed=seed, device=device,
                     out_dir=out_dir, checkpoint_dir=checkpoint_dir, log=log, stop_after=stop_after,
                     num_workers=num_workers)


def _pretrain(method: str, model: nn.Module, encoder: nn.Module, optimizer: torch.optim.Optimizer,
              dataset: PretrainFrames, config: MocoConfig | MaeConfig, *, seed: int,
              device: torch.device, out_dir, checkpoint_dir, log, stop_after, num_workers) -> dict:
    config_hash = params_hash({"config": asdict(config), "seed": seed})
    meta = {"method": method, "encoder_kind": config.encoder.kind, "config_hash": config_hash,
            "image_size": config.image_size}
    steps_per_epoch = len(dataset) // config.batch_size
    runner = PretrainMethod(f"{method} pretraining", model, encoder, optimizer,
                            config.epochs * steps_per_epoch, device, config.amp, meta)
    settings = LoopSettings(epochs=config.epochs, batch_size=config.batch_size, seed=seed, device=device,
                            num_workers=num_workers)
    summary, _ = fit(runner, dataset, settings, out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                     identity={"config_hash": config_hash}, log=log, stop_after=stop_after)
    return {"method": method, "images": len(dataset), **summary}


def load_pretrained_encoder(path: str | Path, encoder: nn.Module) -> dict:
    """Load an ``encoder.pt`` written here into ``encoder``; returns its metadata."""
    state = load_checkpoint(path, expected_config_hash=None)
    encoder.load_state_dict(state["state_dict"])
    return state["meta"]


def _pool(image_paths: Sequence[str | Path], config: MocoConfig | MaeConfig) -> list[str | Path]:
    paths = list(image_paths)
    if config.max_images is not None:
        paths = paths[: config.max_images]
    if len(paths) < config.batch_size:
        raise UserError(f"pretraining needs at least batch_size = {config.batch_size} images, "
                        f"got {len(paths)}")
    return paths


def _check_divisible(image_size: int, encoder: nn.Module) -> None:
    if image_size % encoder.size_divisor:
        raise UserError(f"model.image_size: {image_size} is not a multiple of {encoder.size_divisor}, "
                        "which this encoder needs")


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.dim() == 4:  # images: the layout the model was put in
        return tensor.to(device, memory_format=torch.channels_last, non_blocking=True)
    return tensor.to(device, non_blocking=True)
