"""Supervised fine-tuning of one Table 2 variant (Sec. 2.2, Eq. 17, Sec. 3.2).

Per step, the generator (the landmark network) minimises Eq. 17,

    lambda_h * L_heatmap + lambda_c * L_coord + lambda_adv * L_GAN + lambda_e * L_entropy,

against Gaussian targets drawn (Eq. 18) from the batch's augmented landmarks; the adversarial
variant then takes a discriminator step on Eq. 11 with the targets as real heatmaps and the
detached predictions as fake ones. Coordinate-output variants have no heatmaps, so they train
with the coordinate term alone (no heatmap, entropy or adversarial term exists for them).

AdamW for each network, cosine annealing over the epochs, the encoder unfrozen in stages
(``train.unfreeze``). After every epoch: validation MRE in original-image pixels, metrics to
dvclive, and an atomic checkpoint from which a killed run resumes and repeats exactly what an
uninterrupted one would have done (each epoch's shuffling and augmentations are derived from
(seed, epoch[, frame]); the global RNG states are checkpointed too). ``model.pt`` holds the
generator after the last epoch; the paper selects no best epoch, so neither do we.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import albumentations as A
import numpy as np
import pandas as pd
import torch
from dvclive import Live
from torch import nn
from torch.utils.data import DataLoader

from ..config import params_hash, select
from ..data.augment import build_augment, build_eval_transform
from ..data.dataset import LandmarkDataset
from ..errors import NonFiniteLossError, UserError
from ..metrics import mean_radial_error
from ..models.codec import HeatmapCodec
from ..models.discriminator import build_discriminator
from ..models.landmark_net import LandmarkNet, build_landmark_model, load_encoder_state, model_param_keys
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .losses import (coordinate_loss, discriminator_loss, entropy_loss, generator_adversarial_loss,
                     heatmap_loss, total_loss)
from .runtime import (amp_enabled, autocast, choose_device, derive_seed, grad_scaler,
                      loader_generator, progress, seed_everything, seed_worker, set_deterministic)
from .unfreeze import apply_unfreeze

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
DVCLIVE_DIR = "dvclive"


class JobLive(Live):
    """dvclive that writes its own folder and nothing else.

    A Live outside a DVC repository runs ``dvc init`` at the enclosing Git root, and inside
    ``dvc exp run`` it ``git add``s its files (dvclive 3.x, treeverse/dvclive#539, #712). A
    fine-tuning job runs under Snakemake or ``dvc repro``, which own the repository, so the
    repository hook is skipped: metrics, plots and params go under ``dir`` only.
    """

    def _init_dvc(self) -> None:
        pass


def finetune_param_keys(params: Mapping, variant_name: str) -> list[str]:
    """Dotted keys of ``params`` that fine-tuning ``variant_name`` reads; they make its config hash.

    Only what the variant uses: lambda_adv and the discriminator's keys for the adversarial
    variant, heatmap keys for heatmap outputs, CBAM keys with attention. The workflow hands the
    stage exactly this view of the parameters, so changing lambda_adv reruns the adversarial
    variant alone.
    """
    variant = params["variants"][variant_name]
    keys = [
        *model_param_keys(params, variant_name), "seed", "augment",
        "finetune.epochs", "finetune.batch_size", "finetune.lr_generator", "finetune.weight_decay",
        "finetune.unfreeze_epochs", "finetune.lambda_c", "finetune.amp", "finetune.num_workers",
    ]
    if variant["output"] == "heatmaps":
        keys += ["model.heatmap_sigma", "finetune.lambda_h", "finetune.lambda_e"]
    if variant["adversarial"]:
        keys += ["model.discriminator_channels", "model.leaky_relu_slope",
                 "finetune.lr_discriminator", "finetune.lambda_adv"]
    return keys


def load_encoder_weights(model: LandmarkNet, path: str | Path) -> str | None:
    """Load pretrained encoder weights (``ssl.pretrain``'s ``encoder.pt`` or a bare state_dict)
    into ``model.encoder``; returns the file's config hash (None for a bare state_dict)."""
    state = load_checkpoint(path, expected_config_hash=None)
    if "state_dict" in state:
        load_encoder_state(model, state["state_dict"])
        return state.get("config_hash")
    load_encoder_state(model, state)
    return None


@dataclass
class Networks:
    """What a checkpoint restores besides history and RNG: the generator, the discriminator of an
    adversarial variant, their AdamW optimisers and cosine schedules, and the loss scaler."""

    generator: LandmarkNet
    g_optimizer: torch.optim.Optimizer
    g_scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    discriminator: nn.Module | None = None
    d_optimizer: torch.optim.Optimizer | None = None
    d_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None

    def parts(self) -> dict:
        return {name: part for name, part in vars(self).items() if part is not None}

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts().items()}

    def load_state_dict(self, state: Mapping) -> None:
        for name, part in self.parts().items():
            part.load_state_dict(state[name])


def build_networks(params: Mapping, variant_name: str, device: torch.device) -> Networks:
    """The variant's networks on ``device``, freshly initialised from ``params["seed"]``.

    Each optimiser holds all its network's parameters from the start; frozen encoder parameters
    get no gradient and AdamW skips them, so unfreezing needs no new optimiser.
    """
    ft = params["finetune"]
    seed_everything(params["seed"])

    def adamw(module, lr):
        optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=ft["weight_decay"])
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ft["epochs"])

    generator = build_landmark_model(params, variant_name).to(device, memory_format=torch.channels_last)
    networks = Networks(generator, *adamw(generator, ft["lr_generator"]),
                        grad_scaler(device, amp_enabled(device, ft["amp"])))
    if params["variants"][variant_name]["adversarial"]:
        disc = build_discriminator(params).to(device, memory_format=torch.channels_last)
        networks.discriminator = disc
        networks.d_optimizer, networks.d_scheduler = adamw(disc, ft["lr_discriminator"])
    return networks


def train_steps(networks: Networks, loader: DataLoader, codec: HeatmapCodec | None,
                lambdas: Mapping[str, float], device: torch.device):
    """One optimiser step per batch; yields that step's losses (weighted Eq. 17 terms, "total",
    and "discriminator" for adversarial variants), detached.

    Under mixed precision (the scaler is enabled on CUDA only) the networks run in float16 and
    the losses are computed in float32.
    """
    generator, disc, scaler = networks.generator, networks.discriminator, networks.scaler
    amp = scaler.is_enabled()
    for images, targets, _ in loader:
        images = images.to(device, memory_format=torch.channels_last, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast(device, amp):
            out = generator(images)
        terms = {"coord": coordinate_loss(out["coords"].float(), targets, images.shape[-1])}
        if codec is not None:
            heatmaps, real = out["heatmaps"].float(), codec.encode(targets)
            terms["heatmap"] = heatmap_loss(heatmaps, real)
            terms["entropy"] = entropy_loss(heatmaps, codec.beta)
        if disc is not None:
            disc.requires_grad_(False)  # the generator's loss must not leave gradients in D
            with autocast(device, amp):
                terms["gan"] = generator_adversarial_loss(disc(heatmaps).float())
            disc.requires_grad_(True)
        loss, losses = total_loss(terms, lambdas)
        networks.g_optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(networks.g_optimizer)
        losses["total"] = loss.detach()

        if disc is not None:  # Eq. 11: the targets are real, the detached predictions fake
            with autocast(device, amp):
                d_real, d_fake = disc(real), disc(heatmaps.detach())
            d_loss = discriminator_loss(d_real.float(), d_fake.float())
            networks.d_optimizer.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(networks.d_optimizer)
            losses["discriminator"] = d_loss.detach()
        scaler.update()
        yield losses


def finetune(params: Mapping, variant_name: str, train_df: pd.DataFrame, val_df: pd.DataFrame,
             out_dir: str | Path, *, encoder_weights: str | Path | None = None,
             checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
             log: Callable[[str], None] = print, stop_after: int | None = None,
             deterministic: bool | None = None) -> dict:
    """Fine-tune variant ``variant_name`` on ``train_df``, validating on ``val_df``.

    Writes ``out_dir/model.pt`` and ``out_dir/dvclive/``; the per-epoch checkpoint lives in
    ``checkpoint_dir`` (default ``out_dir``), is resumed from when present and deleted once the
    run completes. ``stop_after`` ends the call after that many epochs in all (no model.pt yet),
    e.g. to split a run over time-limited jobs. ``deterministic`` defaults to True on a CPU.
    Returns a summary: final and best validation MRE, epochs, seconds, device.
    """
    ft, variant = params["finetune"], params["variants"][variant_name]
    seed, epochs, size = params["seed"], ft["epochs"], params["model"]["image_size"]
    if len(train_df) < ft["batch_size"]:
        raise UserError(f"fine-tuning needs at least finetune.batch_size = {ft['batch_size']} "
                        f"training frames, got {len(train_df)}")
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir or out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = checkpoint_dir / CHECKPOINT_FILE
    device = choose_device(device)
    set_deterministic(device.type == "cpu" if deterministic is None else deterministic)
    config = select(params, finetune_param_keys(params, variant_name))
    config_hash = params_hash(config)

    networks = build_networks(params, variant_name, device)
    encoder_hash = load_encoder_weights(networks.generator, encoder_weights) if encoder_weights else None
    codec = (HeatmapCodec(size, params["model"]["heatmap_sigma"], params["model"]["soft_argmax_beta"])
             if variant["output"] == "heatmaps" else None)
    history, seconds = [], 0.0
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, config_hash)
        if state["encoder_hash"] != encoder_hash:
            raise UserError(f"{checkpoint_path}: started from other pretrained encoder weights than "
                            f"{encoder_weights}; delete it to start over")
        networks.load_state_dict(state["networks"])
        restore_rng_state(state["rng"])
        history, seconds = state["history"], state["seconds"]
        log(f"{variant_name}: resuming after epoch {len(history)} from {checkpoint_path}")

    live = JobLive(dir=str(out_dir / DVCLIVE_DIR), save_dvc_exp=False, dvcyaml=None)
    live.log_params(config)
    for row in history:  # a resumed run rewrites the curves from the checkpoint: no duplicates
        _log_epoch(live, row)

    train_set = LandmarkDataset(train_df, size, build_augment(params["augment"]), seed=seed)
    val_set = LandmarkDataset(val_df, size, build_eval_transform(params["augment"]))
    loader_options = dict(batch_size=ft["batch_size"], num_workers=ft["num_workers"],
                          worker_init_fn=seed_worker, pin_memory=device.type == "cuda")

    for epoch in range(len(history), epochs if stop_after is None else min(epochs, stop_after)):
        started = time.perf_counter()
        networks.generator.train()
        released = apply_unfreeze(networks.generator, epoch, ft["unfreeze_epochs"])
        train_set.epoch = epoch
        loader = DataLoader(train_set, shuffle=True, drop_last=True,
                            generator=loader_generator(derive_seed(seed, epoch)), **loader_options)
        sums: dict[str, float] = {}
        steps = progress(train_steps(networks, loader, codec, ft, device), total=len(loader),
                         desc=f"{variant_name} {epoch + 1}/{epochs}")
        for step, losses in enumerate(steps, start=1):
            values = torch.stack(list(losses.values())).tolist()  # one device sync per step
            for name, value in zip(losses, values):
                if not math.isfinite(value):
                    raise _non_finite(variant_name, name, value, epoch, step, checkpoint_path)
                sums[name] = sums.get(name, 0.0) + value

        row = {"epoch": epoch + 1, **{f"train/{name}": total / step for name, total in sums.items()},
               "lr/generator": networks.g_scheduler.get_last_lr()[0]}
        for scheduler in (networks.g_scheduler, networks.d_scheduler):
            if scheduler is not None:
                scheduler.step()
        if len(val_set):
            predicted = _predict(networks.generator, val_set, device, loader_options)
            row["val/mre"] = mean_radial_error(predicted, val_set.landmarks)
        row["seconds"] = time.perf_counter() - started
        seconds += row["seconds"]
        history.append(row)
        save_checkpoint(checkpoint_path, {
            "config_hash": config_hash, "encoder_hash": encoder_hash, "variant": variant_name,
            "epoch": epoch + 1, "history": history, "seconds": seconds, "rng": capture_rng_state(),
            "networks": networks.state_dict()})
        _log_epoch(live, row)
        val_text = f", val MRE {row['val/mre']:.2f} px" if "val/mre" in row else ""
        log(f"{variant_name}: epoch {epoch + 1}/{epochs} loss {row['train/total']:.4g}{val_text} "
            f"(encoder training: {', '.join(sorted(released)) or 'none'}; {row['seconds']:.1f} s)")

    complete = len(history) == epochs
    if complete:
        save_checkpoint(out_dir / MODEL_FILE, {
            "state_dict": {k: v.cpu() for k, v in networks.generator.state_dict().items()},
            "config_hash": config_hash, "variant": variant_name, "epochs": epochs})
        # A finished run keeps no checkpoint: a later run with changed code must not resume it.
        checkpoint_path.unlink(missing_ok=True)
    live.end()
    return _summary(variant_name, history, epochs, seconds, device, config_hash, complete)


def _non_finite(variant_name: str, loss_name: str, value: float, epoch: int, step: int,
                checkpoint_path: Path) -> NonFiniteLossError:
    kept = (f"the checkpoint after epoch {epoch} is kept in {checkpoint_path}" if epoch
            else "no epoch had completed, so there is no checkpoint")
    return NonFiniteLossError(
        f"{variant_name}: {loss_name} loss is {value} at epoch {epoch + 1}, step {step}; "
        f"training stopped and {kept} (lower the learning rates or check the labels)")


def _log_epoch(live: Live, row: Mapping) -> None:
    live.step = row["epoch"]
    for name, value in row.items():
        if name != "epoch":
            live.log_metric(name, value)
    live.make_summary()


def _summary(variant_name, history, epochs, seconds, device, config_hash, complete) -> dict:
    val = [row["val/mre"] for row in history if "val/mre" in row]
    best = int(np.argmin(val)) if val else None
    return {
        "variant": variant_name, "complete": complete, "epochs": epochs, "epochs_done": len(history),
        "final_val_mre": val[-1] if val else None,
        "best_val_mre": val[best] if val else None,
        "best_epoch": history[best]["epoch"] if val else None,
        "final_train_loss": history[-1]["train/total"] if history else None,
        "seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / len(history), 3) if history else None,
        "device": str(device), "config_hash": config_hash,
    }


@torch.no_grad()
def _predict(model: nn.Module, dataset: LandmarkDataset, device: torch.device,
             loader_options: Mapping) -> np.ndarray:
    """Predicted landmarks of every frame of ``dataset``, (n, 3, 2) in original-image pixels.

    Full precision, so validation during training and evaluation afterwards agree exactly.
    """
    model.eval()
    batches = []
    for images, _, _ in DataLoader(dataset, shuffle=False, **loader_options):
        images = images.to(device, memory_format=torch.channels_last, non_blocking=True)
        batches.append(model(images)["coords"].float().cpu().numpy())
    coords = np.concatenate(batches) if batches else np.zeros((0, 3, 2), np.float32)
    original = [resize.to_original(points) for resize, points in zip(dataset.resize_maps, coords)]
    return np.array(original, dtype=np.float64).reshape(-1, 3, 2)


def predict(model: nn.Module, df: pd.DataFrame, size: int, device: str | torch.device | None,
            transform: A.Compose, *, batch_size: int = 8, num_workers: int = 0) -> np.ndarray:
    """Landmarks predicted for every row of ``df``, (n, 3, 2) in ORIGINAL image pixels.

    ``transform`` is the evaluation transform the model was trained with
    (``data.augment.build_eval_transform(params["augment"])``: the normalisation).
    """
    device = choose_device(device)
    model.to(device, memory_format=torch.channels_last)
    dataset = LandmarkDataset(df, size, transform, cache=False)
    return _predict(model, dataset, device, dict(batch_size=batch_size, num_workers=num_workers,
                                                 pin_memory=device.type == "cuda"))


def load_trained_model(params: Mapping, variant_name: str, path: str | Path,
                       device: str | torch.device | None = None) -> tuple[LandmarkNet, torch.device]:
    """The generator saved by :func:`finetune` in ``model.pt``, in eval mode on ``device``."""
    state = load_checkpoint(path, expected_config_hash=None)
    if state.get("variant") != variant_name:
        raise UserError(f"{path}: holds variant {state.get('variant')!r}, not {variant_name!r}")
    model = build_landmark_model(params, variant_name)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise UserError(f"{path}: weights do not fit the network these parameters build "
                        f"({first[0].strip()[:200]}); retrain the variant") from None
    device = choose_device(device)
    return model.to(device).eval(), device
