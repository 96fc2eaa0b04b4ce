"""Dense MoCoV2 (Sec. 2.1): a contrastive loss per token of the encoder's stride-32 map.

Each token of the query view is a query; its positive is the key-view token that shows the SAME
anatomy. The two views are different random warps of one image, so the grid ``i, j`` of the two
maps does not line up. Instead a grid of points at the token centres of the original image is
pushed through each view's augmentation (as keypoints), and both projected maps are sampled
bilinearly at where those points went (``F.grid_sample``); points that left either view are
dropped. Negatives are the keys of earlier batches held in a FIFO queue (Eq. 4); the key encoder
follows the query encoder by momentum (Eq. 5).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Sequential):
    """ProjHead of Eq. 1: ``hidden``c1w0p1s -> ReLU -> ``dim``c1w0p1s (1024x16x16 -> 128x16x16)."""

    def __init__(self, in_channels: int, hidden: int, dim: int):
        super().__init__(
            nn.Conv2d(in_channels, hidden, kernel_size=1, padding=0, stride=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim, kernel_size=1, padding=0, stride=1),
        )


def token_centres(image_size: int, stride: int) -> np.ndarray:
    """(x, y) pixel centres of the tokens of a stride-``stride`` map, row-major, shape (h*w, 2).

    Token ``j`` covers pixels ``stride*j .. stride*(j+1)-1``, whose centre is at
    ``stride*(j + 0.5) - 0.5`` in the pixel-centre convention (pixel i has coordinate i).
    """
    side = (np.arange(image_size // stride) + 0.5) * stride - 0.5
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def inside(points: torch.Tensor, image_size: int) -> torch.Tensor:
    """Which (x, y) points lie in the frame of a square image: (..., 2) -> (...) bool."""
    return ((points >= 0) & (points <= image_size - 1)).all(dim=-1)


def sample_at(features: torch.Tensor, points: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinear samples of ``features`` (B, C, h, w) at image pixels ``points`` (B, P, 2) -> (B, P, C).

    With ``align_corners=False`` the map and the image span the same area, so the
    normalised coordinate of pixel x is (2x + 1) / S - 1 whatever the map's stride.
    """
    grid = (2 * points + 1) / image_size - 1
    sampled = F.grid_sample(features, grid.unsqueeze(1).to(features.dtype), mode="bilinear",
                            padding_mode="border", align_corners=False)
    return sampled.squeeze(2).transpose(1, 2)


def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Eq. 4, averaged over the N queries; the positive is at index 0 of the logits.

    query, key: (N, D) l2-normalised; negatives: (K, D) l2-normalised.
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    negative = query @ negatives.T
    logits = torch.cat([positive, negative], dim=1) / temperature
    labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)


class MoCo(nn.Module):
    """Query encoder + head trained by gradient; key encoder + head by momentum; queue of keys.

    ``dim`` is the projection head's output width; the queue of ``queue_size`` keys (K of
    Eq. 4) is stored as (K, dim), one key per row.
    """

    def __init__(self, encoder_q: nn.Module, head_q: nn.Module, *, dim: int, queue_size: int,
                 momentum: float, temperature: float):
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.encoder_q, self.head_q = encoder_q, head_q
        self.encoder_k, self.head_k = copy.deepcopy(encoder_q), copy.deepcopy(head_q)
        for p in (*self.encoder_k.parameters(), *self.head_k.parameters()):
            p.requires_grad = False
        queue = F.normalize(torch.randn(queue_size, dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Eq. 5: theta_k <- m theta_k + (1 - m) theta_q."""
        query = (*self.encoder_q.parameters(), *self.head_q.parameters())
        key = (*self.encoder_k.parameters(), *self.head_k.parameters())
        for theta_q, theta_k in zip(query, key):
            theta_k.mul_(self.momentum).add_(theta_q.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """FIFO: write ``keys`` over the oldest entries, wrapping around the end of the queue."""
        size = len(self.queue)
        keys = keys[-size:]  # a batch larger than the queue leaves only its newest keys
        ptr = int(self.queue_ptr)
        slots = (ptr + torch.arange(len(keys), device=keys.device)) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + len(keys)) % size

    def embed(self, encoder: nn.Module, head: nn.Module, view: torch.Tensor,
              points: torch.Tensor) -> torch.Tensor:
        """Projected, l2-normalised embeddings of ``view`` at ``points``: (B, P, dim), float32."""
        z = head(encoder(view)).float()
        return F.normalize(sample_at(z, points, view.shape[-1]), dim=-1)

    def forward(self, view_q: torch.Tensor, view_k: torch.Tensor, points_q: torch.Tensor,
                points_k: torch.Tensor) -> torch.Tensor:
        """InfoNCE loss of the tokens whose centre is inside both views; enqueues their keys.

        points_q, points_k: (B, P, 2) positions of the same P original-image points in each view.
        """
        size = view_q.shape[-1]
        valid = inside(points_q, size) & inside(points_k, size)
        query = self.embed(self.encoder_q, self.head_q, view_q, points_q)[valid]
        with torch.no_grad():
            self.momentum_update()
            key = self.embed(self.encoder_k, self.head_k, view_k, points_k)[valid]
        with torch.autocast(view_q.device.type, enabled=False):  # logits / 0.2 in float32
            loss = info_nce(query, key, self.queue.clone(), self.temperature)
        self.enqueue(key)
        return loss


def stage_wise_param_groups(encoder: nn.Module, head: nn.Module, lrs: Mapping[str, float]) -> list[dict]:
    """Optimizer groups: one per encoder stage (deep, middle, shallow) and one for the head."""
    stages = encoder.stage_groups()
    groups = []
    for name in ("deep", "middle", "shallow"):
        params = [p for module in stages[name] for p in module.parameters() if p.requires_grad]
        groups.append({"name": name, "params": params, "lr": lrs[name]})
    groups.append({"name": "head", "params": [p for p in head.parameters() if p.requires_grad],
                   "lr": lrs["head"]})
    grouped = [id(p) for group in groups[:-1] for p in group["params"]]
    trainable = {id(p) for p in encoder.parameters() if p.requires_grad}
    if len(grouped) != len(set(grouped)) or set(grouped) != trainable:
        raise ValueError("encoder.stage_groups() must partition the encoder's parameters")
    return groups
