"""Feedback delay with pedalboard's ``Delay`` semantics, in whole samples.

Measured on pedalboard 0.9.26 (impulse responses, mono and stereo, 22.05..96 kHz): per channel,
``w[n] = x[n] + feedback * w[n-D]``, ``wet[n] = w[n-D]``, ``y = (1 - mix) x + mix wet``. The first
echo sits at ``D`` with amplitude ``mix`` (no feedback on it), echo k at ``k D`` with
``mix * feedback^(k-1)``. pedalboard takes ``D = int(float32(delay_seconds) * sample_rate)``
(truncation of a float32 product, so ``0.01 s`` at 44.1 kHz gives 440, not 441 samples);
``delay_seconds = (D + 0.5) / sample_rate`` gives exactly ``D``. We use
``D = max(1, round(delay_ms * sample_rate / 1000))``.
"""

from __future__ import annotations

import numpy as np

from .stage import Stage


def delay_samples(delay_ms: float, sample_rate: float) -> int:
    """Delay in whole samples for ``delay_ms`` (ms) at ``sample_rate`` (Hz), at least 1."""
    return max(1, int(round(delay_ms * sample_rate / 1000.0)))


def pedalboard_delay_seconds(samples: int, sample_rate: float) -> float:
    """The ``delay_seconds`` that makes ``pedalboard.Delay`` use exactly ``samples`` samples."""
    return (samples + 0.5) / sample_rate


class FeedbackDelay(Stage):
    """Delay line of ``samples`` samples with feedback and dry/wet mix, per channel.

    Works on chunks of at most ``samples`` samples (a chunk never reads what it writes), with a
    ring buffer of the last ``samples`` values of ``w`` carried across blocks.
    """

    def __init__(self, channels: int, samples: int, feedback: float, mix: float) -> None:
        super().__init__(channels)
        self.samples = int(samples)
        self.feedback = float(feedback)
        self.mix = float(mix)
        self._buf = np.zeros((channels, self.samples))
        self._pos = 0

    def _process(self, x: np.ndarray) -> np.ndarray:
        n, d = x.shape[1], self.samples
        wet = np.empty_like(x)
        i = 0
        while i < n:
            k = min(n - i, d - self._pos)
            seg = self._buf[:, self._pos : self._pos + k]
            wet[:, i : i + k] = seg
            seg[...] = x[:, i : i + k] + self.feedback * wet[:, i : i + k]
            self._pos = (self._pos + k) % d
            i += k
        return (1.0 - self.mix) * x + self.mix * wet


class PlainDelay(Stage):
    """A pure delay of ``samples`` whole samples (no feedback, no dry): latency compensation.

    One concatenation per block, so its cost does not depend on how short the delay is.
    """

    native_float32 = True

    def __init__(self, channels: int, samples: int) -> None:
        super().__init__(channels)
        self.samples = int(samples)
        self._buf = np.zeros((channels, self.samples), dtype=np.float32)

    def _process(self, x: np.ndarray) -> np.ndarray:
        if self.samples == 0:
            return x
        joined = np.concatenate((self._buf.astype(x.dtype, copy=False), x), axis=1)
        self._buf = joined[:, -self.samples :].copy()
        return joined[:, : x.shape[1]]
