"""True-peak limiting: the look-ahead limiter's gain law driven by an 8x-oversampled peak envelope.

The gain law is the `limiter` effect's (`plugin_bridge.backends.dsp.dynamics`: `limiter_target_gain`,
`LimiterGain`, `release_smoother`), not a copy of it: ``r = min(1, ceiling / peak)``, a trailing
minimum and a trailing mean over the look-ahead, an instant-attack one-pole release. The effect
delays the audio by the look-ahead; offline (`lookahead_gain`) the gain is advanced instead, and
streamed (`BlockLimiter`) the audio is held back until its gain is known, so both give
``gain[n] * peak[n] <= ceiling`` with no latency in the result.
"""

from __future__ import annotations

import math

import numpy as np

from ..backends.dsp._kernels import release_smoother
from ..backends.dsp.dynamics import LimiterGain, limiter_target_gain
from ..loudness import true_peak_envelope


def limiter_constants(sample_rate: float, lookahead_ms: float, release_ms: float) -> tuple[int, float]:
    """Look-ahead length (samples, >= 1) and release coefficient ``1 - exp(-1 / release samples)``."""
    lookahead = max(1, int(round(lookahead_ms * sample_rate / 1000.0)))
    return lookahead, 1.0 - math.exp(-1.0 / (release_ms * sample_rate / 1000.0))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``starts[k] .. starts[k] + lengths[k] - 1`` for every ``k``, concatenated (int64)."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if ends.size else 0) + np.repeat(starts - (ends - lengths), lengths)


def lookahead_gain(peak: np.ndarray, ceiling: float, lookahead: int, release_coeff: float) -> np.ndarray:
    """Gain (linear, ``(samples,)``) of the look-ahead limiter for a peak envelope, aligned with the audio.

    The gain law of `plugin_bridge.backends.dsp.dynamics.Limiter` (see its module docstring):
    ``r = min(1, ceiling / peak)``, a trailing minimum over ``lookahead`` samples, a trailing mean
    over ``lookahead`` samples, and the instant-attack one-pole release (its `release_smoother`
    kernel). The limiter delays the audio by ``lookahead - 1`` samples; offline the gain is
    advanced instead, so ``gain[n] * peak[n] <= ceiling`` for every ``n`` with no latency.

    Only the stretches where ``r < 1`` are smoothed: the minimum and mean of sample ``i`` see ``r``
    over ``i - 2 (lookahead - 1) .. i``, so elsewhere they are exactly 1. Stretches of peaks over the
    ceiling closer than that are joined; each is smoothed with the ones before and after it that
    the signal has there, all in one compact array (the whole signal when that is no shorter). The
    release runs over the whole signal.
    """
    n, length = peak.shape[0], max(1, int(lookahead))
    h = length - 1
    ceiling = np.float64(ceiling)  # compared and divided in float64, also for a float32 envelope
    over = np.flatnonzero(peak > ceiling)
    if over.size == 0:
        return np.ones(n)
    reach = 2 * h  # r[i - reach .. i] decides the smoothed gain at i
    split = np.flatnonzero(np.diff(over) > reach) + 1
    starts = over[np.concatenate(([0], split))]
    lengths = over[np.concatenate((split - 1, [over.size - 1]))] + 1 - starts
    if int(lengths.sum()) + reach * starts.size > n:  # dense: one stretch, the whole signal
        starts, lengths = np.zeros(1, np.int64), np.full(1, n, np.int64)
    offsets = reach * np.arange(1, starts.size + 1) + np.cumsum(lengths) - lengths  # in `compact`
    compact = np.ones(int(lengths.sum()) + reach * (starts.size + 1))
    compact[_ranges(offsets, lengths)] = ceiling / np.maximum(peak[_ranges(starts, lengths)], ceiling)
    smooth, _, _ = limiter_target_gain(compact, length)
    s = np.ones(n + h)  # the smoothed target gain, h samples past the end (no peaks there)
    span = np.minimum(lengths + reach, n + h - starts)  # each stretch and the reach after it
    s[_ranges(starts, span)] = smooth[_ranges(offsets, span)]
    g, _ = release_smoother(s, 1.0, release_coeff)
    return g[h:]


def limiter_gain(
    envelope: np.ndarray,
    sample_rate: float,
    ceiling_dbtp: float,
    gain_db: float = 0.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
) -> tuple[np.ndarray, float]:
    """Total gain (linear, ``(samples,)``: ``gain_db`` times the limiter's) under the ceiling.

    ``envelope`` is the input's true-peak envelope (`true_peak_envelope`, linear); the limiter
    (`lookahead_gain`, look-ahead ``lookahead_ms`` and release ``release_ms`` in ms) acts where
    the envelope raised by ``gain_db`` exceeds ``ceiling_dbtp``. Returns the gain curve and the
    largest gain reduction (dB, >= 0).
    """
    g0 = 10.0 ** (gain_db / 20.0)
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    lookahead, coeff = limiter_constants(sample_rate, lookahead_ms, release_ms)
    g = lookahead_gain(envelope, ceiling / g0, lookahead, coeff)  # r = min(1, ceiling / (g0 env))
    reduction = max(0.0, -20.0 * math.log10(max(float(g.min()), 1e-12)))
    g *= g0
    return g, reduction


def true_peak_limit(
    audio: np.ndarray,
    sample_rate: float,
    ceiling_dbtp: float,
    gain_db: float = 0.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
    envelope: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Apply ``gain_db`` then limit the true peak (8x oversampled) to ``ceiling_dbtp``.

    The gain needed is computed from the oversampled signal's peaks (`true_peak_envelope`: each
    sample's neighbourhood, all channels, stereo-linked), smoothed by the look-ahead limiter's gain
    law (`limiter_gain`) and applied at the base rate. ``envelope`` is the input's envelope if
    already computed (it scales with the gain). Returns the limited audio (float32: the product of
    the float32-rounded audio and gain) and the largest gain reduction (dB, >= 0). The caller
    verifies the true peak: smoothing and the gain's own modulation can leave a few hundredths of a
    dB over.
    """
    x = np.atleast_2d(np.asarray(audio))
    env = true_peak_envelope(x, dtype=np.float32) if envelope is None else envelope
    g, reduction = limiter_gain(env, sample_rate, ceiling_dbtp, gain_db, lookahead_ms, release_ms)
    return np.multiply(x, g, dtype=np.float32), reduction


class BlockLimiter:
    """`true_peak_limit` block by block: the same gain law and result, for audio that is never held whole.

    ``process(x, env)`` takes the next ``(channels, m)`` audio block and its true-peak envelope
    (`true_peak_envelope` of the whole input, the same samples) and returns the limited audio that
    is complete so far (float32, ``gain_db`` applied; the look-ahead holds back ``lookahead - 1``
    samples); ``flush()`` returns the rest. ``reduction_db`` is the largest gain reduction so far.
    The gain equals `limiter_gain`'s to float64 rounding, so the output equals `true_peak_limit`'s
    to float32 rounding.
    """

    def __init__(
        self,
        channels: int,
        sample_rate: float,
        ceiling_dbtp: float,
        gain_db: float = 0.0,
        lookahead_ms: float = 5.0,
        release_ms: float = 100.0,
    ) -> None:
        self.g0 = 10.0 ** (gain_db / 20.0)
        self.ceiling = np.float64(10.0 ** (ceiling_dbtp / 20.0) / self.g0)
        length, coeff = limiter_constants(sample_rate, lookahead_ms, release_ms)
        self._gain = LimiterGain(length, coeff)
        self._held = np.zeros((channels, 0), dtype=np.float32)  # audio waiting for its gain
        self._length = length
        self._skip = length - 1  # gains computed before the first audio sample
        self._lowest = 1.0

    @property
    def reduction_db(self) -> float:
        """Largest gain reduction so far (dB, >= 0)."""
        return max(0.0, -20.0 * math.log10(max(self._lowest, 1e-12)))

    def _gains(self, r: np.ndarray) -> np.ndarray:
        """The total gain (``gain_db`` included, float64) of the samples whose look-ahead ``r`` completes."""
        if self._gain.idle and not np.any(r < 1.0):
            g = np.ones(r.size)
        else:
            g = self._gain.process(r)
        if self._skip:
            k = min(self._skip, g.size)
            g, self._skip = g[k:], self._skip - k
        if g.size:
            self._lowest = min(self._lowest, float(g.min()))
        g *= self.g0
        return g

    def gain(self, env: np.ndarray) -> np.ndarray:
        """The gain (linear, float64, ``gain_db`` included) of the next samples, for the next ``env`` block.

        Without audio: as many values as samples whose look-ahead ``env`` completes (the first
        call gives ``lookahead - 1`` fewer than ``env`` holds); `gain_flush` gives the rest.
        """
        return self._gains(self.ceiling / np.maximum(env, self.ceiling))

    def gain_flush(self) -> np.ndarray:
        """The gain of the samples `gain` has not given yet (no peaks after the end)."""
        return self._gains(np.ones(self._length - 1))  # owed values + those still to skip

    def _apply(self, g: np.ndarray) -> np.ndarray:
        x, self._held = self._held[:, : g.size], self._held[:, g.size :]
        return np.multiply(x, g, dtype=np.float32)

    def process(self, x: np.ndarray, env: np.ndarray) -> np.ndarray:
        """Limited audio for the samples whose look-ahead ``env`` has now seen (float32)."""
        self._held = np.concatenate((self._held, np.asarray(x, dtype=np.float32)), axis=1)
        return self._apply(self.gain(env))

    def flush(self) -> np.ndarray:
        """The held-back end of the audio (no peaks after the end)."""
        return self._apply(self._gains(np.ones(self._held.shape[1] + self._skip)))
