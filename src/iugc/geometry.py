"""Angle of Progression geometry (organisers' convention). Pure numpy; imports nothing of iugc.

PS1 is the right end of the pubic symphysis (the vertex), PS2 the left end, FH1 the point where
the line from PS1 touches the fetal skull. AoP is the angle at PS1 between PS2 - PS1 and
FH1 - PS1, in degrees, with no 180-minus step.
"""
from __future__ import annotations

import numpy as np

LANDMARKS = ("ps1", "ps2", "fh1")


def angle_of_progression(ps1, ps2, fh1) -> np.ndarray:
    """AoP in degrees for points of shape ``(..., 2)``; NaN where a vector has zero length."""
    ps1, ps2, fh1 = (np.asarray(p, dtype=np.float64) for p in (ps1, ps2, fh1))
    u = ps2 - ps1
    v = fh1 - ps1
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    denom = nu * nv
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(u * v, axis=-1) / denom
    cos = np.where(denom > 0, np.clip(cos, -1.0, 1.0), np.nan)
    return np.degrees(np.arccos(cos))


def aop_from_landmarks(points) -> np.ndarray:
    """AoP for landmarks stacked as ``(..., 3, 2)`` in the order PS1, PS2, FH1."""
    points = np.asarray(points, dtype=np.float64)
    return angle_of_progression(points[..., 0, :], points[..., 1, :], points[..., 2, :])
