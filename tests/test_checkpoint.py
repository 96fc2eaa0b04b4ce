"""Atomic checkpoints, weights-only loading, config-hash refusal and RNG round trips."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from iugc.errors import UserError
from iugc.train import checkpoint as ckpt


def _training_state() -> dict:
    """What a fine-tuning checkpoint holds: model, optimiser, scheduler, scaler, RNG, history."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "epoch": 3,
        "history": [{"epoch": 0, "val/mre": 12.5}],
        "rng": ckpt.capture_rng_state(),
        "config_hash": "abc123",
    }


def test_round_trip_loads_weights_only(tmp_path):
    state = _training_state()
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, state)
    loaded = ckpt.load_checkpoint(path, "abc123")
    assert loaded["epoch"] == 3 and loaded["history"] == state["history"]
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == state["optimizer"]["param_groups"][0]["lr"]
    assert loaded["scheduler"]["last_epoch"] == 1


def test_no_temporary_files_left_and_previous_file_survives_a_failed_write(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"config_hash": "h", "epoch": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint(path, {"config_hash": "h", "epoch": 2, "bad": Unpicklable()})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert ckpt.load_checkpoint(path, "h")["epoch"] == 1


def test_config_hash_mismatch_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"config_hash": "old", "epoch": 1})
    with pytest.raises(UserError, match=r"checkpoint\.pt.*old.*new"):
        ckpt.load_checkpoint(path, "new")
    assert ckpt.load_checkpoint(path, None)["epoch"] == 1


def test_arbitrary_objects_are_not_loaded(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"config_hash": "h", "payload": np.random.default_rng(0)}, path)
    with pytest.raises(UserError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(path, "h")


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _training_state())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="checkpoint.pt"):
        ckpt.load_checkpoint(path, "abc123")


def test_rng_state_round_trip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.standard_normal()
    path = tmp_path / "rng.pt"
    ckpt.save_checkpoint(path, {"config_hash": "h", "rng": ckpt.capture_rng_state()})
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(),
                torch.rand(3))

    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.restore_rng_state(ckpt.load_checkpoint(path, "h")["rng"])
    again = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(),
             torch.rand(3))
    assert expected[:2] == again[:2]
    np.testing.assert_array_equal(expected[2], again[2])
    assert expected[3] == again[3]
    assert torch.equal(expected[4], again[4])
