"""Dynamics: the JUCE/pedalboard compressor and our look-ahead brick-wall limiter.

Compressor (``juce::dsp::Compressor``, which ``pedalboard.Compressor`` wraps), per channel,
unlinked, hard knee:

- peak ballistics: ``env[n] = |x[n]| + cte * (env[n-1] - |x[n]|)``, ``cte`` = attack coefficient
  while ``|x[n]| > env[n-1]``, else release; ``cte(t_ms) = exp(-2 pi 1000 / (sr t_ms))`` (0 below
  0.001 ms); the envelope starts at 0;
- gain: 1 while ``env < threshold`` else ``(env / threshold)^(1/ratio - 1)``; then make-up gain.

Measured against pedalboard 0.9.26 (float32 inside) on decaying noise bursts and noise at 44.1 and
48 kHz for thresholds -40..-10 dB, ratios 2..20, attack 0.1..30 ms, release 50..1000 ms: the
outputs agree sample by sample within 3e-6 (float32 rounding), and stepped-sine static curves within
1e-5 dB: the coefficient formula above is exactly what pedalboard runs (no knee, no RMS detector,
no linked channels, no smoothing of the gain).

Limiter (ours; stereo-linked look-ahead brick-wall), with ``c`` the ceiling (linear),
``L = max(1, round(lookahead_ms sr / 1000))`` and ``a = exp(-1 / (release_ms sr / 1000))``:
``p[n] = max_ch |x|``; ``r = min(1, c / p)``; ``m`` = sliding minimum of ``r`` over ``L`` samples;
``s`` = moving average of ``m`` over ``L`` samples (history before the start counts as 1);
``g[n] = s[n]`` if it falls, else ``g[n-1] + (1 - a)(s[n] - g[n-1])``;
``y[n] = g[n] x[n - (L - 1)]``, clipped to ``[-c, c]``. Every ``m`` averaged into ``s[n]`` covers
``r[n-L+1]``, so ``g[n] <= c / p[n-L+1]``: the output never exceeds the ceiling. Latency ``L - 1``.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import peak_envelope, release_smoother
from .stage import Stage, db_to_gain


def ballistics_coefficient(time_ms: float, sample_rate: float) -> float:
    """JUCE ballistics one-pole coefficient for a time constant ``time_ms`` (ms) at ``sample_rate`` (Hz)."""
    if time_ms < 1e-3:
        return 0.0
    return math.exp(-2.0 * math.pi * 1000.0 / (sample_rate * time_ms))


def compressor_gain(env: np.ndarray, threshold: float, ratio: float) -> np.ndarray:
    """Static hard-knee gain (linear) for a peak envelope ``env`` and a linear ``threshold``."""
    gain = np.ones_like(env)
    over = env >= threshold
    if ratio != 1.0 and over.any():
        gain[over] = (env[over] / threshold) ** (1.0 / ratio - 1.0)
    return gain


def compressor_curve_db(
    level_db: np.ndarray, threshold_db: float, ratio: float, makeup_db: float
) -> np.ndarray:
    """Theoretical steady-state output level (dB) for an input level (dB) of a steady peak."""
    level_db = np.asarray(level_db, dtype=np.float64)
    over = np.maximum(level_db - threshold_db, 0.0)
    return level_db - over * (1.0 - 1.0 / ratio) + makeup_db


class Compressor(Stage):
    """``juce::dsp::Compressor`` per channel (see the module docstring), then make-up gain."""

    def __init__(
        self,
        channels: int,
        sample_rate: float,
        threshold_db: float,
        ratio: float,
        attack_ms: float,
        release_ms: float,
        makeup_db: float = 0.0,
    ) -> None:
        super().__init__(channels)
        self.threshold = db_to_gain(threshold_db)
        self.ratio = float(ratio)
        self.cte_attack = ballistics_coefficient(attack_ms, sample_rate)
        self.cte_release = ballistics_coefficient(release_ms, sample_rate)
        self.makeup = db_to_gain(makeup_db)
        self._env = np.zeros(channels)

    def _process(self, x: np.ndarray) -> np.ndarray:
        if self.ratio == 1.0:  # the gain computer is 1 everywhere; the envelope does not matter
            return x * self.makeup
        y = np.empty_like(x)
        for ch in range(x.shape[0]):
            env, self._env[ch] = peak_envelope(x[ch], self._env[ch], self.cte_attack, self.cte_release)
            y[ch] = x[ch] * compressor_gain(env, self.threshold, self.ratio)
        if self.makeup != 1.0:
            y *= self.makeup
        return y


def _sliding_min(ext: np.ndarray, length: int) -> np.ndarray:
    """Trailing-window minimum: out[i] = min(ext[i : i + length]) for i in 0..len(ext)-length."""
    if length == 1:
        return ext.copy()
    # by doubling: after each pass m[i] = min(ext[i : i + w]) for the i still valid; a window of
    # ``length`` is then two overlapping windows of the largest power of two w <= length. Exact
    # (a minimum rounds nothing), about log2(length) vectorised passes.
    n = ext.shape[0]
    m = ext.copy()
    w, valid = 1, n
    while 2 * w <= length:
        np.minimum(m[: valid - w], m[w:valid], out=m[: valid - w])  # numpy buffers the overlap
        valid -= w
        w *= 2
    count = n - length + 1
    return np.minimum(m[:count], m[length - w : length - w + count])


def _sliding_mean(ext: np.ndarray, length: int) -> np.ndarray:
    """Trailing-window mean: out[i] = mean(ext[i : i + length]) for i in 0..len(ext)-length."""
    if length == 1:
        return ext.copy()
    cs = np.concatenate(([0.0], np.cumsum(ext)))
    return (cs[length:] - cs[:-length]) / length


def limiter_target_gain(
    r: np.ndarray, length: int, r_hist: np.ndarray | None = None, m_hist: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The limiter's gain law before its release: ``s`` = mean over ``length`` of the minimum over ``length`` of ``r``.

    ``r = min(1, ceiling / peak)`` (linear); ``r_hist`` and ``m_hist`` are the last ``length - 1``
    values of ``r`` and of its sliding minimum before this block (ones, i.e. no reduction, when
    None). Returns ``s`` (clamped to 1, same length as ``r``) and the two histories for the next block.
    """
    h = length - 1
    ones = np.ones(h)
    ext = np.concatenate((ones if r_hist is None else r_hist, r))
    r_hist = ext[len(ext) - h :]
    m = _sliding_min(ext, length)
    ext = np.concatenate((ones if m_hist is None else m_hist, m))
    m_hist = ext[len(ext) - h :]
    return np.minimum(_sliding_mean(ext, length), 1.0), r_hist, m_hist


class LimiterGain:
    """The limiter's gain computer, streaming (see the module docstring): blocks of ``r`` in, of ``g`` out.

    ``g[n]`` covers ``r[n - length + 1 .. n]``; ``release_coeff`` is ``1 - a``. Used by `Limiter`
    and by the mastering true-peak limiter (`plugin_bridge.mastering.limiter`).
    """

    def __init__(self, length: int, release_coeff: float) -> None:
        self.length = max(1, int(length))
        self.release_coeff = float(release_coeff)
        self._r_hist = np.ones(self.length - 1)
        self._m_hist = np.ones(self.length - 1)
        self._g = 1.0

    def process(self, r: np.ndarray) -> np.ndarray:
        """Gain (linear, float64) for the next block of ``r``."""
        s, self._r_hist, self._m_hist = limiter_target_gain(r, self.length, self._r_hist, self._m_hist)
        g, self._g = release_smoother(s, self._g, self.release_coeff)
        return g

    @property
    def idle(self) -> bool:
        """True when no reduction is pending: a block of ``r == 1`` would give ``g == 1`` exactly."""
        return self._g == 1.0 and bool(np.all(self._r_hist == 1.0)) and bool(np.all(self._m_hist == 1.0))


class Limiter(Stage):
    """Stereo-linked look-ahead brick-wall limiter (see the module docstring); latency ``L - 1``."""

    def __init__(
        self, channels: int, sample_rate: float, ceiling_db: float, release_ms: float, lookahead_ms: float
    ) -> None:
        super().__init__(channels)
        self.ceiling = db_to_gain(ceiling_db)
        # the largest float32 not above the ceiling: float32 output then never exceeds it either
        c32 = np.float32(self.ceiling)
        if float(c32) > self.ceiling:
            c32 = np.nextafter(c32, np.float32(0))
        self._clip = float(c32)
        self.length = max(1, int(round(lookahead_ms * sample_rate / 1000.0)))
        self.release_coeff = 1.0 - math.exp(-1.0 / (release_ms * sample_rate / 1000.0))
        self.latency = self.length - 1
        self._gain = LimiterGain(self.length, self.release_coeff)
        self._x_hist = np.zeros((channels, self.length - 1))

    def _process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        peak = np.abs(x).max(axis=0)
        r = np.ones(n)
        over = peak > self.ceiling
        r[over] = self.ceiling / peak[over]
        g = self._gain.process(r)
        xd = np.concatenate((self._x_hist, x), axis=1)
        self._x_hist = xd[:, n:]
        return np.clip(g * xd[:, :n], -self._clip, self._clip)
