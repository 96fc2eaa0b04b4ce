"""IUGC 2025 challenge submission: landmarks PS1, PS2, FH1 of a transperineal ultrasound frame.

Written by `iugc export-submission`. It needs only the standard library, numpy, Pillow and torch:
the network (with its normalisation and soft-argmax) is the TorchScript file beside this one.
The frame is turned grey and resized exactly as during training (one torch call), and the
landmarks are mapped back to the frame's pixels (pixel centres aligned).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F


class model:  # noqa: N801 - the name the challenge's interface asks for
    def __init__(self):
        self.network = None
        self.size = None

    def load(self, dir_path):
        with open(os.path.join(dir_path, "settings.json")) as handle:
            self.size = int(json.load(handle)["image_size"])
        self.network = torch.jit.load(os.path.join(dir_path, "landmarks.ts"), map_location="cpu").eval()

    def predict(self, X):
        """X: a PIL image (RGB, any size) -> numpy (6,) [x1, y1, x2, y2, x3, y3] of PS1, PS2, FH1
        in pixels of X."""
        grey = np.asarray(X.convert("L"), dtype=np.float32)
        height, width = grey.shape
        frames = torch.from_numpy(grey)[None, None]
        frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255)
        with torch.no_grad():
            landmarks, _ = self.network(frames)
        points = landmarks[0].double().numpy()
        scale = np.array([width, height], dtype=np.float64) / self.size
        return ((points + 0.5) * scale - 0.5).reshape(6)
