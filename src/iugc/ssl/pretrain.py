"""Self-supervised pretraining loops of the workflow's pretrain stages: MoCoV2 and masked AE.

Both write into ``out_dir``:

- ``encoder.pt``: ``{"state_dict": <encoder's state_dict>, "meta": {...}, "config_hash": ...}``
  (the query encoder only; no head, no key encoder); load it with :func:`load_pretrained_encoder`;
- ``losses.csv``: one row per optimiser step (epoch, step, loss, lr of the first group);
- ``checkpoint.pt`` after every epoch while training runs, in ``checkpoint_dir`` (default
  ``out_dir``; put it outside a folder the workflow empties before a run); a run that finds one
  written under the same parameters resumes from it; it is deleted when training completes.

Every random draw of an epoch is derived from (seed, epoch[, frame]): the shuffling order,
each frame's augmentations and masks. A resumed run therefore repeats exactly what an
uninterrupted one would have done, with no generator state to carry.
"""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import params_hash, select
from ..data.augment import apply, build_augment, reseed, to_uint8
from ..data.images import load_for_model
from ..errors import NonFiniteLossError, UserError
from ..models.encoders import build_encoder
from ..train.checkpoint import load_checkpoint, save_checkpoint
from ..train.runtime import (amp_enabled, autocast, choose_device, derive_seed, grad_scaler,
                             loader_generator, progress, seed_everything, seed_worker,
                             set_deterministic)
from .mae import MaskedAutoencoder, random_patch_mask
from .moco import MoCo, ProjectionHead, moco_learning_rates, stage_wise_param_groups, token_centres

ENCODER_FILE = "encoder.pt"
LOSSES_FILE = "losses.csv"
CHECKPOINT_FILE = "checkpoint.pt"


def moco_param_keys(encoder_kind: str) -> list[str]:
    """The parameters :func:`pretrain_moco` reads (they make its config hash)."""
    return ["seed", "model.image_size", "model.projection_dim", "model.projection_hidden",
            "augment", "pretrain.moco", f"encoders.{encoder_kind}"]


def mae_param_keys() -> list[str]:
    """The parameters :func:`pretrain_mae` reads (they make its config hash)."""
    return ["seed", "model.image_size", "augment", "pretrain.mae", "encoders.attention_unet_channels"]


class PretrainFrames(Dataset):
    """Unlabelled frames at the model's input side, with randomness seeded per (epoch, frame)."""

    def __init__(self, image_paths: Sequence[str | Path], image_size: int, aug_params: Mapping, seed: int):
        self.image_paths = [str(p) for p in image_paths]
        self.image_size = image_size
        self.augment = build_augment(aug_params)
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

    def __init__(self, image_paths, image_size, aug_params, seed, token_stride: int):
        super().__init__(image_paths, image_size, aug_params, seed)
        self.tokens = token_centres(image_size, token_stride)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, _ = self.frame(index)
        view_q, points_q = apply(self.augment, image, self.tokens)
        view_k, points_k = apply(self.augment, image, self.tokens)
        return {"view_q": torch.from_numpy(view_q)[None], "view_k": torch.from_numpy(view_k)[None],
                "points_q": torch.from_numpy(points_q), "points_k": torch.from_numpy(points_k)}


class MaskedFrames(PretrainFrames):
    """An augmented frame and a random patch mask (1 = hidden from the network)."""

    def __init__(self, image_paths, image_size, aug_params, seed, patch_size: int, mask_ratio: float):
        super().__init__(image_paths, image_size, aug_params, seed)
        self.patch_size, self.mask_ratio = patch_size, mask_ratio

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, rng = self.frame(index)
        view, _ = apply(self.augment, image, np.zeros((0, 2), dtype=np.float32))
        mask = random_patch_mask(self.image_size, self.patch_size, self.mask_ratio, rng)
        return {"image": torch.from_numpy(view)[None], "mask": torch.from_numpy(mask)[None]}


def pretrain_moco(params: Mapping, image_paths: Sequence[str | Path], out_dir: str | Path, *,
                  encoder_kind: str, device: str | torch.device | None = None,
                  log: Callable[[str], None] = print, checkpoint_dir: str | Path | None = None,
                  stop_after: int | None = None, deterministic: bool | None = None,
                  num_workers: int = 0) -> dict:
    """MoCoV2 pretraining of the ``encoder_kind`` encoder (Sec. 2.1, 3.2).

    ``checkpoint_dir`` holds the per-epoch checkpoint (default ``out_dir``); ``stop_after`` ends
    the call after that many epochs in all (no encoder.pt yet), e.g. to split a run over
    time-limited jobs; ``deterministic`` defaults to True on a CPU. Returns a summary: final
    loss, images, epochs, steps, seconds, device, config hash.
    """
    moco = params["pretrain"]["moco"]
    seed_everything(params["seed"])
    encoder = build_encoder(encoder_kind, params)
    head = ProjectionHead(encoder.out_channels, params["model"]["projection_hidden"],
                          params["model"]["projection_dim"])
    model = MoCo(encoder, head, params)
    optimizer = torch.optim.Adam(stage_wise_param_groups(encoder, head, moco_learning_rates(moco)),
                                 weight_decay=moco["weight_decay"])
    image_size = params["model"]["image_size"]
    _check_divisible(image_size, encoder)
    dataset = MoCoViews(_pool(image_paths, moco), image_size, params["augment"], params["seed"],
                        token_stride=encoder.reduction)

    def compute_loss(batch):
        return model(batch["view_q"], batch["view_k"], batch["points_q"], batch["points_k"])

    return _pretrain("moco", model, encoder, optimizer, dataset, compute_loss, moco,
                     config=select(params, moco_param_keys(encoder_kind)), out_dir=out_dir,
                     device=device, log=log, meta={"method": "moco", "encoder_kind": encoder_kind},
                     checkpoint_dir=checkpoint_dir, stop_after=stop_after,
                     deterministic=deterministic, num_workers=num_workers)


def pretrain_mae(params: Mapping, image_paths: Sequence[str | Path], out_dir: str | Path, *,
                 device: str | torch.device | None = None, log: Callable[[str], None] = print,
                 checkpoint_dir: str | Path | None = None, stop_after: int | None = None,
                 deterministic: bool | None = None, num_workers: int = 0) -> dict:
    """Masked-autoencoder pretraining of the Attention U-Net (Table 2, last row).

    Options and summary as for :func:`pretrain_moco`.
    """
    mae = params["pretrain"]["mae"]
    seed_everything(params["seed"])
    encoder = build_encoder("attention_unet", params)
    model = MaskedAutoencoder(encoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=mae["lr"], weight_decay=mae["weight_decay"])
    image_size = params["model"]["image_size"]
    _check_divisible(image_size, encoder)
    dataset = MaskedFrames(_pool(image_paths, mae), image_size, params["augment"], params["seed"],
                           patch_size=mae["patch_size"], mask_ratio=mae["mask_ratio"])

    def compute_loss(batch):
        return model(batch["image"], batch["mask"])

    return _pretrain("mae", model, encoder, optimizer, dataset, compute_loss, mae,
                     config=select(params, mae_param_keys()), out_dir=out_dir,
                     device=device, log=log, meta={"method": "mae", "encoder_kind": "attention_unet"},
                     checkpoint_dir=checkpoint_dir, stop_after=stop_after,
                     deterministic=deterministic, num_workers=num_workers)


def load_pretrained_encoder(path: str | Path, encoder: nn.Module) -> dict:
    """Load an ``encoder.pt`` written here into ``encoder``; returns its metadata."""
    state = load_checkpoint(path, expected_config_hash=None)
    encoder.load_state_dict(state["state_dict"])
    return state["meta"]


def _pool(image_paths: Sequence[str | Path], section: Mapping) -> list[str | Path]:
    paths = list(image_paths)
    if section["max_images"] is not None:
        paths = paths[: section["max_images"]]
    if len(paths) < section["batch_size"]:
        raise UserError(f"pretraining needs at least batch_size = {section['batch_size']} images, "
                        f"got {len(paths)}")
    return paths


def _check_divisible(image_size: int, encoder: nn.Module) -> None:
    if image_size % encoder.size_divisor:
        raise UserError(f"model.image_size: {image_size} is not a multiple of {encoder.size_divisor}, "
                        "which this encoder needs")


def _pretrain(name: str, model: nn.Module, encoder: nn.Module, optimizer: torch.optim.Optimizer,
              dataset: PretrainFrames, compute_loss: Callable, section: Mapping, *, config: Mapping,
              out_dir: str | Path, device, log: Callable[[str], None], meta: Mapping,
              checkpoint_dir: str | Path | None, stop_after: int | None,
              deterministic: bool | None, num_workers: int) -> dict:
    """The loop both methods share: epochs of shuffled batches, cosine schedule over all steps,
    mixed precision on CUDA, a checkpoint per epoch, then the encoder's weights."""
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir or out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = choose_device(device)
    set_deterministic(device.type == "cpu" if deterministic is None else deterministic)
    config_hash = params_hash(config)
    seed, epochs, batch_size = config["seed"], section["epochs"], section["batch_size"]
    steps_per_epoch = len(dataset) // batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    amp = amp_enabled(device, section["amp"])
    scaler = grad_scaler(device, amp)
    model.to(device, memory_format=torch.channels_last)

    checkpoint_path = checkpoint_dir / CHECKPOINT_FILE
    start_epoch, rows, seconds = 0, [], 0.0
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, config_hash)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, rows, seconds = state["epoch"], state["losses"], state["seconds"]
        log(f"{name}: resuming after epoch {start_epoch} from {checkpoint_path}")

    model.train()
    last_epoch = epochs if stop_after is None else min(epochs, stop_after)
    for epoch in range(start_epoch, last_epoch):
        started = time.perf_counter()
        dataset.epoch = epoch
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                            num_workers=num_workers, worker_init_fn=seed_worker,
                            generator=loader_generator(derive_seed(seed, epoch)),
                            pin_memory=device.type == "cuda")
        epoch_losses = []
        for batch in progress(loader, desc=f"{name} epoch {epoch + 1}/{epochs}"):
            batch = {key: _to_device(value, device) for key, value in batch.items()}
            with autocast(device, amp):
                loss = compute_loss(batch)
            step, value = len(rows) + 1, loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(f"{name} pretraining: loss is {value} at epoch {epoch + 1}, "
                                   f"step {step}; the checkpoint of the last completed epoch, if "
                                   f"any, is in {checkpoint_path}")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            rows.append({"epoch": epoch + 1, "step": step, "loss": value, "lr": lr})
            epoch_losses.append(value)
        seconds += time.perf_counter() - started
        save_checkpoint(checkpoint_path, {
            "config_hash": config_hash, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "losses": rows, "seconds": seconds})
        _write_losses(out_dir / LOSSES_FILE, rows)
        log(f"{name}: epoch {epoch + 1}/{epochs} mean loss {np.mean(epoch_losses):.4f} "
            f"({time.perf_counter() - started:.1f} s)")

    epochs_done = rows[-1]["epoch"] if rows else 0
    summary = {"method": name, "complete": epochs_done == epochs, "epochs": epochs,
               "epochs_done": epochs_done, "steps": len(rows), "images": len(dataset),
               "final_loss": rows[-1]["loss"] if rows else None, "seconds": round(seconds, 3),
               "device": str(device), "config_hash": config_hash}
    if summary["complete"]:
        encoder_state = {key: value.cpu() for key, value in encoder.state_dict().items()}
        save_checkpoint(out_dir / ENCODER_FILE, {
            "state_dict": encoder_state, "config_hash": config_hash,
            "meta": {**meta, **summary, "encoder_class": type(encoder).__name__,
                     "image_size": dataset.image_size, "torch": str(torch.__version__)}})
        # A finished run keeps no checkpoint: a later run with changed code must not resume it.
        checkpoint_path.unlink(missing_ok=True)
    return summary


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.dim() == 4:  # images: the layout the model was put in
        return tensor.to(device, memory_format=torch.channels_last, non_blocking=True)
    return tensor.to(device, non_blocking=True)


def _write_losses(path: Path, rows: list[dict]) -> None:
    """Rewrite the whole loss log through a temporary file, so it is never half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "loss", "lr"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
