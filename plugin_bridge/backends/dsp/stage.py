"""The stage: one effect as a small stateful object that processes consecutive blocks.

A stage holds its configuration (coefficients, gains) and its running state (filter memories,
envelopes, delay lines, convolution tails), so that processing a signal block by block gives the
same result as processing it whole. The DSP itself lives in pure functions and kernels; stages only
hold state and call them.

Contract: ``process(block)`` takes ``(channels, n)`` audio (any n >= 0, float32 or float64) and
returns ``(out_channels, n)`` float32; ``latency`` is the delay in samples the stage adds (the
renderer removes it). `process64` is the same in float64, used to chain stages without rounding.
"""

from __future__ import annotations

import numpy as np

from ...errors import AudioError


class Stage:
    """Base class of every DSP stage; subclasses implement `_process` on float64 blocks."""

    latency: int = 0
    #: True for stages that work in float32 without loss that matters (pedalboard's engine, pure
    #: gains and mid/side sums): `process` then runs `_process` on float32 directly.
    native_float32: bool = False

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        self.channels = int(channels)
        self.out_channels = int(out_channels if out_channels is not None else channels)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` block; returns ``(out_channels, n)`` float32."""
        if self.native_float32:
            return self._checked(block, np.float32).astype(np.float32, copy=False)
        return self.process64(block).astype(np.float32)

    def process64(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` block in float64; returns ``(out_channels, n)`` float64."""
        return self._checked(block, np.float64)

    def _checked(self, block: np.ndarray, dtype: type) -> np.ndarray:
        x = np.asarray(block, dtype=dtype)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"{type(self).__name__}: expected a ({self.channels}, samples) block, got shape {x.shape}"
            )
        if x.shape[1] == 0:
            return np.zeros((self.out_channels, 0), dtype=dtype)
        return self._process(x)

    def _process(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Identity(Stage):
    """Passes audio unchanged (a neutral effect)."""

    native_float32 = True

    def _process(self, x: np.ndarray) -> np.ndarray:
        return x


class Gain(Stage):
    """Multiplies every channel by a fixed linear gain."""

    native_float32 = True

    def __init__(self, channels: int, gain: float) -> None:
        super().__init__(channels)
        self.gain = float(gain)

    def _process(self, x: np.ndarray) -> np.ndarray:
        return x * x.dtype.type(self.gain)


def db_to_gain(db: float) -> float:
    """Linear amplitude gain for ``db`` decibels: 10^(db/20)."""
    return float(10.0 ** (db / 20.0))
