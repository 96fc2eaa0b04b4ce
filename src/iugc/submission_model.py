"""IUGC 2025 challenge submission: landmarks PS1, PS2, FH1 of a transperineal ultrasound frame.

Written by `iugc export-submission`. It needs only the standard library, numpy, Pillow and torch:
the network (with its normalisation and soft-argmax) is the TorchScript file beside this one.
The frame is turned grey and resized exactly as during training (one torch call), and the
landmarks are mapped back to the frame's pixels (pixel centres aligned).

With a ``calibration.json`` beside it (the study's calibrate stage), ``confidence(X)`` also gives
each landmark's calibrated radius and the AoP interval, the numbers `iugc predict` writes.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

LANDMARKS = ("ps1", "ps2", "fh1")


class model:  # noqa: N801 - the name the challenge's interface asks for
    def __init__(self):
        self.network = None
        self.size = None
        self.calibration = None

    def load(self, dir_path):
        with open(os.path.join(dir_path, "settings.json")) as handle:
            self.size = int(json.load(handle)["image_size"])
        self.network = torch.jit.load(os.path.join(dir_path, "landmarks.ts"), map_location="cpu").eval()
        calibration = os.path.join(dir_path, "calibration.json")
        if os.path.isfile(calibration):
            with open(calibration) as handle:
                self.calibration = json.load(handle)

    def _locate(self, X):
        """Landmarks (3, 2) and their radial spread (3,) in pixels of X (NaN: no spread)."""
        grey = np.asarray(X.convert("L"), dtype=np.float32)
        height, width = grey.shape
        frames = torch.from_numpy(grey)[None, None]
        frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255)
        with torch.no_grad():
            landmarks, spread = self.network(frames)
        scale = np.array([width, height], dtype=np.float64) / self.size
        points = (landmarks[0].double().numpy() + 0.5) * scale - 0.5
        spread = spread[0].double().numpy()
        radial = np.where(spread[:, 0] < 0, np.nan, np.hypot(*(spread * scale).T))
        return points, radial

    def predict(self, X):
        """X: a PIL image (RGB, any size) -> numpy (6,) [x1, y1, x2, y2, x3, y3] of PS1, PS2, FH1
        in pixels of X."""
        return self._locate(X)[0].reshape(6)

    def confidence(self, X):
        """X as for predict -> {"radius_px": [PS1, PS2, FH1], "aop", "aop_low", "aop_high",
        "coverage"}: radii holding each true point, and an interval holding the true AoP (degrees),
        with the calibrated probability. Needs calibration.json."""
        if self.calibration is None:
            raise RuntimeError("this submission has no calibration.json: export it from a calibrated model")
        points, spread = self._locate(X)
        radius = [entry["quantile"] * s if entry["scaled"] else entry["quantile"]
                  for entry, s in zip((self.calibration["landmarks"][n] for n in LANDMARKS), spread)]
        u, v = points[1] - points[0], points[2] - points[0]
        norms = np.linalg.norm(u) * np.linalg.norm(v)
        aop = math.degrees(math.acos(float(np.clip(u @ v / norms, -1.0, 1.0)))) if norms > 0 else math.nan
        half = self.calibration["aop_half_width"]
        low, high = (0.0, 180.0) if math.isnan(aop) else (max(aop - half, 0.0), min(aop + half, 180.0))
        return {"radius_px": [float(r) for r in radius], "aop": aop, "aop_low": low, "aop_high": high,
                "coverage": self.calibration["coverage"]}
