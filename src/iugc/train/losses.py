"""The fine-tuning objective, Eqs. 11-17: heatmap MSE, coordinate MSE, least-squares GAN terms
and the entropy penalty, weighted into one total.

Every loss is a mean over the batch of the per-sample quantity the paper writes.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

# Eq. 17: the weight (a key of params["finetune"]) of each term.
LOSS_WEIGHTS = {"heatmap": "lambda_h", "coord": "lambda_c", "gan": "lambda_adv", "entropy": "lambda_e"}


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 13: mean squared error over landmarks and pixels; (B, K, H, W) each."""
    return F.mse_loss(pred, target)


def coordinate_loss(pred: torch.Tensor, target: torch.Tensor, size: float) -> torch.Tensor:
    """Eq. 14: mean over landmarks of the squared Euclidean distance, with (B, K, 2) pixel
    coordinates divided by ``size``, the heatmap (= model input) side.

    Why normalised units: the paper's weights only make sense on a unit scale. At 512 px,
    sigma = 5, an empty heatmap costs L_heatmap = pi sigma^2 / S^2 = 3e-4, and a 20 px miss costs
    L_coord = (20 / 512)^2 = 1.5e-3; with lambda_c = 10, lambda_h = 1 the coordinate term then
    leads by about 50x, the emphasis Sec. 3.2 gives lambda_c >> lambda_h. In pixels it would be
    4000, some 10^7 times the heatmap term, which would then not count at all. Normalised units
    also give the same loss for the same relative miss at every input size (presets differ in
    size only), and match the seed code, which divides its target coordinates by the width.
    """
    return (((pred - target) / size) ** 2).sum(dim=-1).mean()


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 11 (LSGAN): 1/2 E[(D(H_real) - 1)^2] + 1/2 E[D(H_fake)^2] over all patch scores."""
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake ** 2).mean()


def generator_adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 12 (LSGAN): 1/2 E[(D(H_fake) - 1)^2]; the generator pushes its patch scores to 1."""
    return 0.5 * ((d_fake - 1) ** 2).mean()


def entropy_loss(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Eqs. 15-16: Shannon entropy (nats) of each map's spatial softmax, mean over landmarks and
    batch. ``beta`` is the soft-argmax sharpness, so the penalty sees the distribution the
    coordinates are read from (beta = 1 is Eq. 15 as written)."""
    log_probs = torch.log_softmax(beta * heatmaps.flatten(start_dim=-2), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1).mean()


def total_loss(terms: Mapping[str, torch.Tensor],
               lambdas: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 17: sum of ``lambda * term`` over the terms present.

    ``terms`` maps names of LOSS_WEIGHTS ("heatmap", "coord", "gan", "entropy") to scalar
    losses; a variant leaves out what it lacks (no "gan" without adversarial training).
    ``lambdas`` holds lambda_h, lambda_c, lambda_adv, lambda_e: ``params["finetune"]`` as is.
    Returns the total and the weighted parts (detached, for logging); the parts sum to the total.
    """
    if not terms:
        raise ValueError("total_loss needs at least one term")
    unknown = set(terms) - set(LOSS_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; expected some of {list(LOSS_WEIGHTS)}")
    parts = {name: lambdas[LOSS_WEIGHTS[name]] * value for name, value in terms.items()}
    total = sum(parts.values())
    return total, {name: part.detach() for name, part in parts.items()}
