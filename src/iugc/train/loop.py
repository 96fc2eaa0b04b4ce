"""The one training loop. Fine-tuning and both pretraining methods supply their step; resume,
seeded loading, progress, the non-finite stop, checkpoints, logs and cleanup are written here once.

Per epoch the dataset is told its epoch (it derives each frame's randomness from (seed, epoch,
frame)), a DataLoader shuffles it with a generator seeded from (seed, epoch), and the method
takes one optimiser step per batch and returns that step's losses. After the epoch the method
adds its own figures (learning rates, validation error), the row joins the history, and an
atomic checkpoint is written: the method's state, the history, the per-step log and the RNG
states. A run that finds a checkpoint written for the same identity resumes after its last
epoch and repeats exactly what an uninterrupted run would have done; a checkpoint written for
another identity is refused. When the last epoch is done the method writes its result and the
checkpoint is deleted, so a later run with changed code cannot resume it.

In ``out_dir``: ``losses.csv`` (one row per step) and ``dvclive/`` (one row per epoch), beside
what the method's ``finish`` writes.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from dvclive import Live
from torch.utils.data import DataLoader, Dataset

from ..errors import NonFiniteLossError, UserError
from ..seeding import derive_seed, loader_generator, seed_worker
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .runtime import progress

CHECKPOINT_FILE = "checkpoint.pt"
LOSSES_FILE = "losses.csv"
DVCLIVE_DIR = "dvclive"

# How a refused checkpoint names what differs (identity key -> words).
_IDENTITY_WORDS = {"encoder_hash": "pretrained encoder weights"}


class StatefulParts(ABC):
    """A method's checkpointable state is the state of its named parts (networks, optimisers,
    schedules, the loss scaler); a subclass names them in ``parts``."""

    @abstractmethod
    def parts(self) -> dict:
        """Name -> part (anything with state_dict / load_state_dict)."""

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts().items()}

    def load_state_dict(self, state: Mapping) -> None:
        for name, part in self.parts().items():
            part.load_state_dict(state[name])


class TrainingMethod(Protocol):
    """What a method gives the loop. ``name`` prefixes its log lines and errors; ``main_loss``
    is the loss its log lines quote; ``optimizer``'s first group gives the logged learning rate."""

    name: str
    main_loss: str
    optimizer: torch.optim.Optimizer

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: Mapping) -> None: ...

    def begin_epoch(self, epoch: int) -> str:
        """Prepare epoch ``epoch`` (0-based); return a note for its log line."""

    def step(self, batch) -> dict[str, torch.Tensor]:
        """One optimiser step on ``batch``; its losses, detached."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """After the epoch's steps: schedules, validation; the figures to log."""

    def finish(self, out_dir: Path) -> None:
        """Write the trained result into ``out_dir``."""


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    seed: int
    device: torch.device
    num_workers: int = 0


class JobLive(Live):
    """dvclive that writes its own folder and nothing else.

    A Live outside a DVC repository runs ``dvc init`` at the enclosing Git root, and inside
    ``dvc exp run`` it ``git add``s its files (dvclive 3.x, treeverse/dvclive#539, #712). A
    training job runs under Snakemake or ``dvc repro``, which own the repository, so the
    repository hook is skipped: metrics, plots and params go under ``dir`` only.
    """

    def _init_dvc(self) -> None:
        pass


def fit(method: TrainingMethod, dataset: Dataset, settings: LoopSettings, *, out_dir: Path | str,
        checkpoint_dir: Path | str | None = None, identity: Mapping[str, object],
        log: Callable[[str], None] = print, stop_after: int | None = None,
        logged_params: Mapping | None = None) -> tuple[dict, list[dict]]:
    """Train ``method`` on ``dataset`` (which has an ``epoch`` attribute that its per-frame
    randomness derives from) for ``settings.epochs`` epochs (or until ``stop_after``
    epochs are done in all, e.g. to split a run over time-limited jobs).

    ``identity`` (``config_hash`` and anything else a resumed run must share, such as the
    pretrained weights it started from) is stored in the checkpoint and checked on resume. The
    checkpoint lives in ``checkpoint_dir`` (default ``out_dir``). Returns a summary and the
    per-epoch history.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = Path(checkpoint_dir or out_dir) / CHECKPOINT_FILE
    if len(dataset) < settings.batch_size:
        raise UserError(f"{method.name}: needs at least batch_size = {settings.batch_size} "
                        f"frames, got {len(dataset)}")

    history, steps, seconds = [], [], 0.0
    if checkpoint_path.exists():
        state = _resume_state(checkpoint_path, identity)
        method.load_state_dict(state["networks"])
        restore_rng_state(state["rng"])
        history, steps, seconds = state["history"], state["steps"], state["seconds"]
        log(f"{method.name}: resuming after epoch {len(history)} from {checkpoint_path}")

    live = JobLive(dir=str(out_dir / DVCLIVE_DIR), save_dvc_exp=False, dvcyaml=None)
    if logged_params is not None:
        live.log_params(json.loads(json.dumps(logged_params, default=str)))  # tuples as lists
    for row in history:  # a resumed run rewrites the curves from the checkpoint: no duplicates
        _log_epoch(live, row)

    last = settings.epochs if stop_after is None else min(settings.epochs, stop_after)
    for epoch in range(len(history), last):
        started = time.perf_counter()
        note = method.begin_epoch(epoch)
        dataset.epoch = epoch
        loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                            num_workers=settings.num_workers, worker_init_fn=seed_worker,
                            generator=loader_generator(derive_seed(settings.seed, epoch)),
                            pin_memory=settings.device.type == "cuda")
        sums: dict[str, float] = {}
        batches = progress(loader, desc=f"{method.name} {epoch + 1}/{settings.epochs}")
        for step, batch in enumerate(batches, start=1):
            lr = method.optimizer.param_groups[0]["lr"]
            losses = method.step(batch)
            values = torch.stack(list(losses.values())).tolist()  # one device sync per step
            for name, value in zip(losses, values):
                if not math.isfinite(value):
                    raise _non_finite(method.name, name, value, epoch, step, checkpoint_path)
                sums[name] = sums.get(name, 0.0) + value
            steps.append({"epoch": epoch + 1, "step": len(steps) + 1, **dict(zip(losses, values)), "lr": lr})

        row = {"epoch": epoch + 1, **{f"train/{name}": total / step for name, total in sums.items()},
               **method.end_epoch(epoch)}
        row["seconds"] = time.perf_counter() - started
        seconds += row["seconds"]
        history.append(row)
        save_checkpoint(checkpoint_path, {
            **identity, "epoch": epoch + 1, "history": history, "steps": steps, "seconds": seconds,
            "rng": capture_rng_state(), "networks": method.state_dict()})
        _write_steps(out_dir / LOSSES_FILE, steps)
        _log_epoch(live, row)
        val_text = f", val MRE {row['val/mre']:.2f} px" if "val/mre" in row else ""
        log(f"{method.name}: epoch {epoch + 1}/{settings.epochs} loss "
            f"{row[f'train/{method.main_loss}']:.4g}{val_text} ({note}{row['seconds']:.1f} s)")

    complete = len(history) == settings.epochs
    if complete:
        method.finish(out_dir)
        checkpoint_path.unlink(missing_ok=True)
    live.end()
    return {
        "complete": complete, "epochs": settings.epochs, "epochs_done": len(history),
        "steps": len(steps), "samples": len(dataset),
        "final_loss": steps[-1][method.main_loss] if steps else None,
        "final_epoch_loss": history[-1][f"train/{method.main_loss}"] if history else None,
        "seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / len(history), 3) if history else None,
        "device": str(settings.device), **identity,
    }, history


def _resume_state(path: Path, identity: Mapping[str, object]) -> dict:
    state = load_checkpoint(path, identity.get("config_hash"))
    for key, expected in identity.items():
        if key != "config_hash" and state.get(key) != expected:
            words = _IDENTITY_WORDS.get(key, key)
            raise UserError(f"{path}: written for other {words} than this run; delete it to start over")
    return state


def _non_finite(name: str, loss_name: str, value: float, epoch: int, step: int,
                checkpoint_path: Path) -> NonFiniteLossError:
    kept = (f"the checkpoint after epoch {epoch} is kept in {checkpoint_path}" if epoch
            else "no epoch had completed, so there is no checkpoint")
    what = "loss" if loss_name == "loss" else f"{loss_name} loss"
    return NonFiniteLossError(
        f"{name}: {what} is {value} at epoch {epoch + 1}, step {step}; training stopped and "
        f"{kept} (lower the learning rates or check the data)")


def _log_epoch(live: Live, row: Mapping) -> None:
    live.step = row["epoch"]
    for name, value in row.items():
        if name != "epoch":
            live.log_metric(name, value)
    live.make_summary()


def _write_steps(path: Path, rows: list[dict]) -> None:
    """Rewrite the whole per-step log through a temporary file, so it is never half written."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    fields.remove("lr")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "lr"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def best_epoch(history: list[Mapping], metric: str) -> dict:
    """Final and best value of ``metric`` over the history, and the best epoch (1-based)."""
    rows = [row for row in history if metric in row]
    if not rows:
        return {"final": None, "best": None, "best_epoch": None}
    best = rows[int(np.argmin([row[metric] for row in rows]))]
    return {"final": rows[-1][metric], "best": best[metric], "best_epoch": best["epoch"]}
