"""The fine-tuning losses of Eqs. 11-17, each on a case worked by hand."""
from __future__ import annotations

import math

import pytest
import torch

from iugc.config import load_preset
from iugc.train.losses import (coordinate_loss, discriminator_loss, entropy_loss,
                               generator_adversarial_loss, heatmap_loss, total_loss)


def test_heatmap_loss_is_the_mean_over_landmarks_and_pixels():
    pred = torch.zeros(2, 1, 2, 2)
    target = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0, 0] = 1.0  # sample 0: 1^2 / 4 pixels = 0.25
    target[1, 0] = torch.tensor([[0.5, 0.5], [0.5, 1.0]])  # sample 1: (3 * 0.25 + 1) / 4 = 0.4375
    assert heatmap_loss(pred, target).item() == pytest.approx((0.25 + 0.4375) / 2)


def test_coordinate_loss_is_the_mean_squared_distance_in_units_of_the_side():
    target = torch.zeros(2, 2, 2)
    pred = torch.tensor([[[0.0, 0.0], [3.0, 4.0]],  # misses of 0 and 5 px
                         [[6.0, 8.0], [0.0, 0.0]]])  # misses of 10 and 0 px
    # size 10: squared normalised distances 0, 0.25 | 1, 0 -> per sample 0.125 | 0.5
    assert coordinate_loss(pred, target, size=10).item() == pytest.approx((0.125 + 0.5) / 2)


def test_discriminator_loss_is_least_squares():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert discriminator_loss(ones, zeros).item() == 0.0  # a perfect critic costs nothing
    assert discriminator_loss(zeros, ones).item() == pytest.approx(1.0)  # 1/2 * 1 + 1/2 * 1
    # Quadratic around the targets 1 (real) and 0 (fake): a real score of 3 overshoots and costs
    # more than a real score of 1, where BCE would call it better still.
    d_real, d_fake = torch.full((1, 1, 2, 2), 3.0), torch.full((1, 1, 2, 2), -2.0)
    assert discriminator_loss(d_real, d_fake).item() == pytest.approx(0.5 * 4 + 0.5 * 4)
    assert discriminator_loss(d_real, zeros) > discriminator_loss(ones, zeros)


def test_generator_adversarial_loss_is_least_squares():
    assert generator_adversarial_loss(torch.ones(1, 1, 4, 4)).item() == 0.0
    assert generator_adversarial_loss(torch.zeros(1, 1, 4, 4)).item() == pytest.approx(0.5)
    scores = torch.tensor([[[[0.0, 2.0], [3.0, 1.0]]]])  # (0-1)^2, (2-1)^2, (3-1)^2, 0
    assert generator_adversarial_loss(scores).item() == pytest.approx(0.5 * (1 + 1 + 4 + 0) / 4)


def test_entropy_loss_averages_the_shannon_entropy_of_each_map():
    heatmaps = torch.zeros(2, 2, 2, 2)  # uniform over 4 pixels: entropy log 4
    heatmaps[0, 1] = torch.tensor([[0.0, math.log(3.0)], [-1e4, -1e4]])  # p = 1/4, 3/4
    heatmaps[1, 0] = torch.tensor([[1e4, 0.0], [0.0, 0.0]])  # one-hot: entropy 0
    two_point = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    per_sample = [(math.log(4) + two_point) / 2, (0.0 + math.log(4)) / 2]
    assert entropy_loss(heatmaps).item() == pytest.approx(sum(per_sample) / 2, abs=1e-6)


def test_entropy_loss_uses_the_soft_argmax_sharpness():
    heatmaps = torch.randn(2, 3, 5, 5)
    assert entropy_loss(heatmaps, beta=4.0).item() == pytest.approx(entropy_loss(4 * heatmaps).item())
    assert entropy_loss(heatmaps, beta=4.0) < entropy_loss(heatmaps)


def test_total_loss_weights_the_terms_of_eq17():
    lambdas = load_preset("paper")["finetune"]
    terms = {name: torch.tensor(value, requires_grad=True)
             for name, value in dict(heatmap=1.0, coord=2.0, gan=3.0, entropy=4.0).items()}
    total, parts = total_loss(terms, lambdas)
    expected = (lambdas["lambda_h"] * 1.0 + lambdas["lambda_c"] * 2.0
                + lambdas["lambda_adv"] * 3.0 + lambdas["lambda_e"] * 4.0)
    assert total.item() == pytest.approx(expected)
    assert sum(parts.values()).item() == pytest.approx(total.item())
    assert parts["coord"].item() == pytest.approx(lambdas["lambda_c"] * 2.0)
    total.backward()
    assert terms["gan"].grad.item() == pytest.approx(lambdas["lambda_adv"])


def test_total_loss_takes_a_subset_and_rejects_unknown_terms():
    lambdas = dict(lambda_h=1.0, lambda_c=10.0, lambda_adv=0.01, lambda_e=0.001)
    total, parts = total_loss({"coord": torch.tensor(0.5)}, lambdas)
    assert total.item() == pytest.approx(5.0) and set(parts) == {"coord"}
    with pytest.raises(ValueError, match="unknown"):
        total_loss({"bce": torch.tensor(1.0)}, lambdas)
    with pytest.raises(ValueError):
        total_loss({}, lambdas)
