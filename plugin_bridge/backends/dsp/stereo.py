"""Stereo image: mid/side width and constant-power pan (unity at centre)."""

from __future__ import annotations

import math

import numpy as np

from .stage import Stage


def pan_gains(pan: float) -> tuple[float, float]:
    """Left/right linear gains for ``pan`` in [-1, 1]: sqrt(2) cos(t), sqrt(2) sin(t), t = (pan+1) pi/4."""
    if pan == 0.0:
        return 1.0, 1.0  # exactly unity at centre (the formula rounds to 1 + 2e-16)
    t = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(t), math.sqrt(2.0) * math.sin(t)


def apply_width(x: np.ndarray, width: float) -> np.ndarray:
    """Scale the side signal of stereo ``x`` by ``width`` (ratio); mono input is returned unchanged."""
    if x.shape[0] != 2:
        return x
    # the same arithmetic as mid = 0.5 (L+R), side = 0.5 width (L-R), stack((mid+side, mid-side)),
    # written into one output array with a single temporary: this runs on every block of a render
    out = np.empty_like(x)
    mid = np.add(x[0], x[1])
    mid *= x.dtype.type(0.5)
    side = np.subtract(x[0], x[1], out=out[1])
    side *= x.dtype.type(0.5 * width)
    np.add(mid, side, out=out[0])
    np.subtract(mid, side, out=out[1])
    return out


class Width(Stage):
    """Mid/side width: M = (L+R)/2, S = (L-R)/2 * width, L = M+S, R = M-S."""

    native_float32 = True

    def __init__(self, channels: int, width: float) -> None:
        super().__init__(channels)
        self.width = float(width)

    def _process(self, x: np.ndarray) -> np.ndarray:
        return apply_width(x, self.width)


class Pan(Stage):
    """Constant-power pan; a mono input becomes stereo ``[x gL, x gR]``."""

    def __init__(self, channels: int, pan: float) -> None:
        super().__init__(channels, out_channels=2)
        self.gains = np.array(pan_gains(pan))[:, None]

    def _process(self, x: np.ndarray) -> np.ndarray:
        return self.gains * (x if x.shape[0] == 2 else x[0][None, :])
