import math

import numpy as np
import pandas as pd
import pytest
import torch
from dataset_builders import write_frame
from model_builders import encoder
from torch import nn

from iugc.config import load_preset, select
from iugc.errors import UserError
from iugc.ssl.mae import MaskedAutoencoder, masked_mse, random_patch_mask
from iugc.ssl.pretrain import load_pretrained_encoder, pretrain_mae
from iugc.stages.views import mae_config, pretrain_keys


@pytest.mark.parametrize("size, patch, ratio, hidden",
                         [(64, 16, 0.75, 12), (64, 16, 0.6, 10), (512, 16, 0.75, 768)])
def test_mask_hides_the_right_number_of_whole_patches(size, patch, ratio, hidden):
    mask = random_patch_mask(size, patch, ratio, np.random.default_rng(0))
    assert mask.shape == (size, size) and set(np.unique(mask)) <= {0.0, 1.0}
    blocks = mask.reshape(size // patch, patch, size // patch, patch)
    assert (blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))).all()  # constant on each patch
    assert int(blocks[:, 0, :, 0].sum()) == hidden  # He et al.: int(L * (1 - ratio)) stay visible


def test_masks_differ_per_draw_and_repeat_per_seed():
    first = random_patch_mask(64, 16, 0.75, np.random.default_rng(1))
    np.testing.assert_array_equal(first, random_patch_mask(64, 16, 0.75, np.random.default_rng(1)))
    draws = [random_patch_mask(64, 16, 0.75, np.random.default_rng(s)) for s in range(2, 8)]
    assert any(not np.array_equal(first, other) for other in draws)


def test_patch_size_must_divide_the_input():
    with pytest.raises(UserError, match="pretrain.mae.patch_size"):
        random_patch_mask(64, 24, 0.75, np.random.default_rng(0))


def test_masked_mse_counts_masked_pixels_only():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    reconstruction = torch.tensor([[[[0.0, 2.0], [5.0, 100.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    # masked pixels: errors 1, 0, 2 -> (1 + 0 + 4) / 3; the unmasked 96 is ignored
    assert masked_mse(reconstruction, target, mask).item() == pytest.approx(5 / 3)


class Recorder(nn.Module):
    """Identity 'encoder' that keeps what it was shown."""

    out_channels = 1

    def forward(self, x):
        self.seen = x.detach().clone()
        return x


def test_network_sees_only_the_visible_patches_and_is_scored_on_the_hidden_ones():
    model = MaskedAutoencoder(Recorder())
    images = torch.rand(2, 1, 32, 32)
    masks = [random_patch_mask(32, 8, 0.75, np.random.default_rng(seed)) for seed in (0, 1)]
    mask = torch.from_numpy(np.stack(masks))[:, None]
    loss = model(images, mask)
    assert (model.encoder.seen[mask.bool()] == 0).all()
    torch.testing.assert_close(model.encoder.seen[~mask.bool()], images[~mask.bool()])
    # changing the targets of visible pixels leaves the loss as it is
    reconstruction = model.reconstruct(images * (1 - mask))
    changed = images + 5.0 * (1 - mask)
    assert masked_mse(reconstruction, changed, mask).item() == pytest.approx(loss.item())


def test_pretrain_mae_end_to_end(tmp_path):
    smoke = load_preset("smoke")
    params = select(smoke, pretrain_keys(smoke, {"method": "mae_attention_unet"}))  # only the keys it declares
    frames = [write_frame(tmp_path / "frames" / f"{i}.png", (64, 64), seed=i) for i in range(6)]
    summary = pretrain_mae(mae_config(params), frames, tmp_path / "out", seed=42, log=lambda _: None)
    assert summary["complete"] and summary["images"] == 6 and math.isfinite(summary["final_loss"])
    losses = pd.read_csv(tmp_path / "out" / "losses.csv")
    assert len(losses) == summary["steps"] == 6 // params["pretrain"]["mae"]["batch_size"]
    assert losses["lr"].iloc[0] == params["pretrain"]["mae"]["lr"]
    body = encoder(params, "attention_unet")
    meta = load_pretrained_encoder(tmp_path / "out" / "encoder.pt", body)
    assert meta["method"] == "mae" and meta["encoder_kind"] == "attention_unet"
