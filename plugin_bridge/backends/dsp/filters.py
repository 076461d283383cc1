"""EQ filters: RBJ cookbook biquads and a first-order high-pass, with JUCE's exact formulas.

The coefficient functions reproduce ``juce::dsp::IIR::Coefficients`` (``makeLowShelf``,
``makePeakFilter``, ``makeHighShelf``, ``makeFirstOrderHighPass``), which is what pedalboard's
``LowShelfFilter``, ``PeakFilter``, ``HighShelfFilter`` and ``HighpassFilter`` run (in float32;
we compute in float64). Each returns one second-order section ``[b0, b1, b2, 1, a1, a2]``
normalised by a0, ready for `scipy.signal.sosfilt`.

With ``w = 2 pi f / sr`` and ``A = sqrt(10^(gain_db/20))``:

- shelves: ``beta = sin(w) sqrt(A) / q`` (the cookbook's ``2 sqrt(A) alpha``);
- peak: ``alpha = sin(w) / (2 q)``, ``b = [1 + alpha A, -2 cos w, 1 - alpha A]``,
  ``a = [1 + alpha / A, -2 cos w, 1 - alpha / A]``;
- first-order high-pass: ``n = tan(pi f / sr)``, ``b = [1, -1]``, ``a = [n + 1, n - 1]``
  (bilinear transform of s / (s + 1), -3 dB at ``f``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import sosfilt

from ...errors import ParameterError
from .stage import Stage


def _check(sample_rate: float, cutoff_hz: float) -> None:
    if not (sample_rate > 0 and 0 < cutoff_hz < sample_rate / 2):
        raise ParameterError(
            f"filter cutoff {cutoff_hz:g} Hz must lie between 0 and half the sample rate ({sample_rate:g} Hz)"
        )


def _sos(b0: float, b1: float, b2: float, a0: float, a1: float, a2: float) -> np.ndarray:
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def low_shelf_sos(sample_rate: float, cutoff_hz: float, gain_db: float, q: float) -> np.ndarray:
    """Low-shelf biquad (JUCE ``makeLowShelf``): ``gain_db`` below ``cutoff_hz`` (Hz), cookbook ``q``."""
    _check(sample_rate, cutoff_hz)
    a = math.sqrt(10.0 ** (gain_db / 20.0))
    w = 2.0 * math.pi * max(cutoff_hz, 2.0) / sample_rate
    cosw = math.cos(w)
    beta = math.sin(w) * math.sqrt(a) / q
    am1, ap1 = a - 1.0, a + 1.0
    return _sos(
        a * (ap1 - am1 * cosw + beta),
        a * 2.0 * (am1 - ap1 * cosw),
        a * (ap1 - am1 * cosw - beta),
        ap1 + am1 * cosw + beta,
        -2.0 * (am1 + ap1 * cosw),
        ap1 + am1 * cosw - beta,
    )


def high_shelf_sos(sample_rate: float, cutoff_hz: float, gain_db: float, q: float) -> np.ndarray:
    """High-shelf biquad (JUCE ``makeHighShelf``): ``gain_db`` above ``cutoff_hz`` (Hz), cookbook ``q``."""
    _check(sample_rate, cutoff_hz)
    a = math.sqrt(10.0 ** (gain_db / 20.0))
    w = 2.0 * math.pi * max(cutoff_hz, 2.0) / sample_rate
    cosw = math.cos(w)
    beta = math.sin(w) * math.sqrt(a) / q
    am1, ap1 = a - 1.0, a + 1.0
    return _sos(
        a * (ap1 + am1 * cosw + beta),
        a * -2.0 * (am1 + ap1 * cosw),
        a * (ap1 + am1 * cosw - beta),
        ap1 - am1 * cosw + beta,
        2.0 * (am1 - ap1 * cosw),
        ap1 - am1 * cosw - beta,
    )


def peak_sos(sample_rate: float, cutoff_hz: float, gain_db: float, q: float) -> np.ndarray:
    """Peaking biquad (JUCE ``makePeakFilter``): ``gain_db`` at ``cutoff_hz`` (Hz), bandwidth by ``q``."""
    _check(sample_rate, cutoff_hz)
    a = math.sqrt(10.0 ** (gain_db / 20.0))
    w = 2.0 * math.pi * max(cutoff_hz, 2.0) / sample_rate
    alpha = math.sin(w) / (2.0 * q)
    c2 = -2.0 * math.cos(w)
    return _sos(1.0 + alpha * a, c2, 1.0 - alpha * a, 1.0 + alpha / a, c2, 1.0 - alpha / a)


def first_order_highpass_sos(sample_rate: float, cutoff_hz: float) -> np.ndarray:
    """First-order bilinear high-pass (JUCE ``makeFirstOrderHighPass``), -3 dB at ``cutoff_hz`` (Hz)."""
    _check(sample_rate, cutoff_hz)
    n = math.tan(math.pi * cutoff_hz / sample_rate)
    return _sos(1.0, -1.0, 0.0, n + 1.0, n - 1.0, 0.0)


def sos_response_db(sos: np.ndarray, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Magnitude response (dB) of ``sos`` at ``freqs_hz`` (Hz) for ``sample_rate`` (Hz)."""
    from scipy.signal import sosfreqz

    _, h = sosfreqz(sos, worN=np.asarray(freqs_hz, dtype=np.float64), fs=sample_rate)
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-300))


class SosFilter(Stage):
    """Streaming IIR filter: `scipy.signal.sosfilt` per channel with its state carried across blocks."""

    def __init__(self, channels: int, sos: np.ndarray) -> None:
        super().__init__(channels)
        self.sos = np.asarray(sos, dtype=np.float64)
        self._zi = np.zeros((self.sos.shape[0], channels, 2))

    def _process(self, x: np.ndarray) -> np.ndarray:
        y, self._zi = sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y
