"""Supervised fine-tuning of one Table 2 variant (Sec. 2.2, Eq. 17, Sec. 3.2): its step.

Per step, the generator (the landmark network) minimises Eq. 17,

    lambda_h * L_heatmap + lambda_c * L_coord + lambda_adv * L_GAN + lambda_e * L_entropy,

against Gaussian targets drawn (Eq. 18) from the batch's augmented landmarks; the adversarial
variant then takes a discriminator step on Eq. 11 with the targets as real heatmaps and the
detached predictions as fake ones. Coordinate-output variants have no heatmaps, so they train
with the coordinate term alone (no heatmap, entropy or adversarial term exists for them).

AdamW for each network, cosine annealing over the epochs, a pretrained encoder unfrozen in
stages (``train.unfreeze``; a randomly initialised one trains from the first epoch). After every epoch: validation MRE in original-image pixels. The loop
(``train.loop``) does the rest. ``model.pt`` holds the generator after the last epoch with the
spec it was built from; the paper selects no best epoch, so neither do we.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ..config import params_hash
from ..data.augment import AugmentConfig, build_augment, build_eval_transform
from ..data.dataset import LandmarkDataset
from ..geometry import LANDMARKS
from ..metrics import mean_radial_error
from ..models.codec import HeatmapCodec
from ..models.discriminator import PatchGANDiscriminator
from ..models.landmark_net import LandmarkNet, LandmarkNetSpec, build_landmark_model, load_encoder_state
from ..seeding import seed_everything
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import LoopSettings, StatefulParts, best_epoch, fit
from .losses import (coordinate_loss, discriminator_loss, entropy_loss, generator_adversarial_loss,
                     heatmap_loss, total_loss)
from .predict import MODEL_FILE, predict_dataset
from .runtime import amp_enabled, autocast, choose_device, grad_scaler, set_deterministic
from .unfreeze import RANDOM_ENCODER, apply_unfreeze


@dataclass(frozen=True)
class FinetuneConfig:
    """How a variant is trained (Sec. 3.2). The heatmap and adversarial settings are None for
    variants that have no heatmaps or no discriminator."""

    epochs: int
    batch_size: int
    lr_generator: float
    weight_decay: float
    unfreeze_epochs: tuple[int, int]
    lambda_c: float
    amp: bool
    augment: AugmentConfig
    heatmap_sigma: float | None = None
    lambda_h: float | None = None
    lambda_e: float | None = None
    adversarial: bool = False
    lr_discriminator: float | None = None
    lambda_adv: float | None = None
    discriminator_channels: tuple[int, ...] = ()
    leaky_relu_slope: float | None = None

    @property
    def lambdas(self) -> dict[str, float | None]:
        return {"lambda_h": self.lambda_h, "lambda_c": self.lambda_c, "lambda_adv": self.lambda_adv,
                "lambda_e": self.lambda_e}


def load_encoder_weights(model: LandmarkNet, path: str | Path) -> str | None:
    """Load pretrained encoder weights (``ssl.pretrain``'s ``encoder.pt`` or a bare state_dict)
    into ``model.encoder``; returns the file's config hash (None for a bare state_dict)."""
    state = load_checkpoint(path, expected_config_hash=None)
    if "state_dict" in state:
        load_encoder_state(model, state["state_dict"])
        return state.get("config_hash")
    load_encoder_state(model, state)
    return None


class FinetuneMethod(StatefulParts):
    """The generator (and the discriminator of an adversarial variant), their AdamW optimisers
    and cosine schedules, the loss scaler, and the step of Eq. 17.

    Each optimiser holds all its network's parameters from the start; frozen encoder parameters
    get no gradient and AdamW skips them, so unfreezing needs no new optimiser. ``num_workers``:
    loader processes of the validation predictions (the results do not depend on it).
    """

    main_loss = "total"

    def __init__(self, name: str, spec: LandmarkNetSpec, config: FinetuneConfig, device: torch.device,
                 val_set: LandmarkDataset, seed: int, pretrained: bool = True, num_workers: int = 0):
        self.name, self.spec, self.config, self.device, self.val_set = name, spec, config, device, val_set
        self.num_workers = num_workers
        self.unfreeze_epochs = config.unfreeze_epochs if pretrained else RANDOM_ENCODER
        self.config_hash = finetune_hash(spec, config, seed)
        seed_everything(seed)

        def adamw(module, lr):
            optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=config.weight_decay)
            return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

        self.generator = build_landmark_model(spec).to(device, memory_format=torch.channels_last)
        self.optimizer, self.scheduler = adamw(self.generator, config.lr_generator)
        self.scaler = grad_scaler(device, amp_enabled(device, config.amp))
        self.discriminator = self.d_optimizer = self.d_scheduler = None
        if config.adversarial:
            self.discriminator = PatchGANDiscriminator(len(LANDMARKS), config.discriminator_channels,
                                                       config.leaky_relu_slope)
            self.discriminator.to(device, memory_format=torch.channels_last)
            self.d_optimizer, self.d_scheduler = adamw(self.discriminator, config.lr_discriminator)
        self.codec = (HeatmapCodec(spec.image_size, config.heatmap_sigma, spec.soft_argmax_beta)
                      if spec.output == "heatmaps" else None)

    def parts(self) -> dict:
        parts = {"generator": self.generator, "g_optimizer": self.optimizer, "g_scheduler": self.scheduler,
                 "scaler": self.scaler, "discriminator": self.discriminator,
                 "d_optimizer": self.d_optimizer, "d_scheduler": self.d_scheduler}
        return {name: part for name, part in parts.items() if part is not None}

    def begin_epoch(self, epoch: int) -> str:
        self.generator.train()
        released = apply_unfreeze(self.generator, epoch, self.unfreeze_epochs)
        return f"encoder training: {', '.join(sorted(released)) or 'none'}; "

    def step(self, batch) -> dict[str, torch.Tensor]:
        """One generator step on Eq. 17 and, for the adversarial variant, one discriminator step
        on Eq. 11. Under mixed precision (the scaler is enabled on CUDA only) the networks run in
        float16 and the losses are computed in float32."""
        images, targets, _ = batch
        generator, disc, scaler, codec = self.generator, self.discriminator, self.scaler, self.codec
        amp = scaler.is_enabled()
        images = images.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        with autocast(self.device, amp):
            out = generator(images)
        terms = {"coord": coordinate_loss(out["coords"].float(), targets, images.shape[-1])}
        if codec is not None:
            heatmaps, real = out["heatmaps"].float(), codec.encode(targets)
            terms["heatmap"] = heatmap_loss(heatmaps, real)
            terms["entropy"] = entropy_loss(heatmaps, codec.beta)
        if disc is not None:
            disc.requires_grad_(False)  # the generator's loss must not leave gradients in D
            with autocast(self.device, amp):
                terms["gan"] = generator_adversarial_loss(disc(heatmaps).float())
            disc.requires_grad_(True)
        loss, losses = total_loss(terms, self.config.lambdas)
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(self.optimizer)
        losses["total"] = loss.detach()

        if disc is not None:  # Eq. 11: the targets are real, the detached predictions fake
            with autocast(self.device, amp):
                d_real, d_fake = disc(real), disc(heatmaps.detach())
            d_loss = discriminator_loss(d_real.float(), d_fake.float())
            self.d_optimizer.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(self.d_optimizer)
            losses["discriminator"] = d_loss.detach()
        scaler.update()
        return losses

    def end_epoch(self, epoch: int) -> dict[str, float]:
        figures = {"lr/generator": self.scheduler.get_last_lr()[0]}
        for scheduler in (self.scheduler, self.d_scheduler):
            if scheduler is not None:
                scheduler.step()
        if len(self.val_set):
            predicted = predict_dataset(self.generator, self.val_set, self.device,
                                        batch_size=self.config.batch_size,
                                        num_workers=self.num_workers)
            figures["val/mre"] = mean_radial_error(predicted, self.val_set.landmarks)
        return figures

    def finish(self, out_dir: Path) -> None:
        aug = self.config.augment
        save_checkpoint(out_dir / MODEL_FILE, {
            "state_dict": {k: v.cpu() for k, v in self.generator.state_dict().items()},
            "variant": self.name, "config_hash": self.config_hash, "epochs": self.config.epochs,
            "spec": self.spec.to_dict(),
            "normalize": {"mean": aug.normalize_mean, "std": aug.normalize_std}})


def finetune_hash(spec: LandmarkNetSpec, config: FinetuneConfig, seed: int) -> str:
    """What a fine-tuning checkpoint must have been written under to be resumed."""
    return params_hash({"spec": spec.to_dict(), "config": asdict(config), "seed": seed})


def finetune(name: str, spec: LandmarkNetSpec, config: FinetuneConfig, train_df: pd.DataFrame,
             val_df: pd.DataFrame, out_dir: str | Path, *, seed: int,
             encoder_weights: str | Path | None = None, checkpoint_dir: str | Path | None = None,
             device: str | torch.device | None = None, log: Callable[[str], None] = print,
             stop_after: int | None = None, deterministic: bool | None = None, num_workers: int = 0) -> dict:
    """Fine-tune the network ``spec`` describes (variant ``name``) on ``train_df``, validating
    on ``val_df``; writes ``out_dir/model.pt``, ``losses.csv`` and ``dvclive/``.

    The per-epoch checkpoint lives in ``checkpoint_dir`` (default ``out_dir``); ``stop_after``
    ends the call after that many epochs in all; ``deterministic`` defaults to True on a CPU;
    ``num_workers``: loader processes (the results do not depend on it).
    Returns a summary: final and best validation MRE, epochs, seconds, device.
    """
    device = choose_device(device)
    set_deterministic(device.type == "cpu" if deterministic is None else deterministic)
    size = spec.image_size
    aug = config.augment
    train_set = LandmarkDataset(train_df, size, build_augment(aug), seed=seed)
    val_set = LandmarkDataset(val_df, size, build_eval_transform(aug.normalize_mean, aug.normalize_std))
    method = FinetuneMethod(name, spec, config, device, val_set, seed, pretrained=encoder_weights is not None,
                            num_workers=num_workers)
    encoder_hash = load_encoder_weights(method.generator, encoder_weights) if encoder_weights else None
    settings = LoopSettings(epochs=config.epochs, batch_size=config.batch_size, seed=seed, device=device,
                            num_workers=num_workers)
    summary, history = fit(method, train_set, settings, out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                  identity={"config_hash": method.config_hash, "encoder_hash": encoder_hash}, log=log,
                  stop_after=stop_after,
                  logged_params={"variant": name, "seed": seed, **asdict(config), "spec": spec.to_dict()})
    val = best_epoch(history, "val/mre")
    return {"variant": name, **summary, "final_val_mre": val["final"], "best_val_mre": val["best"],
            "best_epoch": val["best_epoch"], "final_train_loss": summary["final_epoch_loss"]}

