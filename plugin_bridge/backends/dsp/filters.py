"""IIR filters as second-order sections: the EQ designs (JUCE's exact formulas), and running them.

The coefficient functions reproduce ``juce::dsp::IIR::Coefficients`` (``makeLowShelf``,
``makePeakFilter``, ``makeHighShelf``, ``makeFirstOrderHighPass``), which is what pedalboard's
``LowShelfFilter``, ``PeakFilter``, ``HighShelfFilter`` and ``HighpassFilter`` run (in float32;
we compute in float64). Each returns one second-order section ``[b0, b1, b2, 1, a1, a2]``
normalised by a0, ready for `sos_filter` (the same numbers as ``scipy.signal.sosfilt``, run by the
compiled loop of `_kernels`: ``scipy.signal`` costs over half a second to import).

With ``w = 2 pi f / sr`` and ``A = sqrt(10^(gain_db/20))``:

- shelves: ``beta = sin(w) sqrt(A) / q`` (the cookbook's ``2 sqrt(A) alpha``);
- peak: ``alpha = sin(w) / (2 q)``, ``b = [1 + alpha A, -2 cos w, 1 - alpha A]``,
  ``a = [1 + alpha / A, -2 cos w, 1 - alpha / A]``;
- first-order high-pass: ``n = tan(pi f / sr)``, ``b = [1, -1]``, ``a = [n + 1, n - 1]``
  (bilinear transform of s / (s + 1), -3 dB at ``f``).

`butterworth_highpass_sos` (2nd order) is ``scipy.signal.butter(2, f, "highpass", fs=sr, output="sos")``
in closed form (within an ulp or two), and `sos_steady_state` is ``scipy.signal.sosfilt_zi``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.polynomial import polyval

from ...errors import ParameterError
from ._kernels import sos_filter_inplace
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


def butterworth_highpass_sos(sample_rate: float, cutoff_hz: float) -> np.ndarray:
    """2nd-order Butterworth high-pass, -3 dB at ``cutoff_hz`` (Hz): one section ``(1, 6)``.

    Bilinear transform with the cutoff prewarped, ``K = tan(pi f / sr)``, ``D = 1 + sqrt(2) K + K^2``:
    ``b = [1, -2, 1] / D``, ``a = [1, 2 (K^2 - 1) / D, (1 - sqrt(2) K + K^2) / D]`` (unity gain at Nyquist),
    what ``scipy.signal.butter(2, cutoff_hz, "highpass", fs=sample_rate, output="sos")`` designs.
    """
    _check(sample_rate, cutoff_hz)
    k = math.tan(math.pi * cutoff_hz / sample_rate)
    r = math.sqrt(2.0) * k
    return _sos(1.0, -2.0, 1.0, 1.0 + r + k * k, 2.0 * (k * k - 1.0), 1.0 - r + k * k)


def sos_response(sos: np.ndarray, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Complex frequency response (linear) of the sections ``sos`` at ``freqs_hz`` (Hz) for ``sample_rate`` (Hz).

    The product over sections of ``B(z) / A(z)`` at ``z^-1 = exp(-2 pi i f / sr)``, each polynomial
    by Horner's rule: ``scipy.signal.freqz(b, a, worN=freqs_hz, fs=sample_rate)[1]`` per section.
    """
    sos = np.asarray(sos, dtype=np.float64)
    zm1 = np.exp(-1j * (2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate))
    h = np.ones(zm1.shape, dtype=np.complex128)
    for section in sos:
        h *= polyval(zm1, section[:3]) / polyval(zm1, section[3:])
    return h


def sos_response_db(sos: np.ndarray, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Magnitude response (dB) of the sections ``sos`` at ``freqs_hz`` (Hz) for ``sample_rate`` (Hz)."""
    return 20.0 * np.log10(np.maximum(np.abs(sos_response(sos, freqs_hz, sample_rate)), 1e-300))


def sos_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` along its last axis (samples) by the second-order sections ``sos``; returns ``(y, zf)``.

    ``sos`` is ``(sections, 6)`` rows ``[b0, b1, b2, 1, a1, a2]`` (a0 normalised to 1), run in series
    in transposed direct form II with ``scipy.signal.sosfilt``'s operation order, so ``y`` holds the
    same numbers as ``sosfilt(sos, x, axis=-1, zi=zi)``. ``x`` is ``(..., samples)``; ``zi`` the state
    ``(sections, ..., 2)`` (zeros, i.e. silence before ``x``, when None) and ``zf`` the state after
    the last sample, to pass as ``zi`` with the next block. The arithmetic is in the dtype numpy's
    type promotion gives ``sos``, ``x`` and ``zi`` (float64 for float64 coefficients and float32 or
    float64 audio; complex works too); ``y`` and ``zf`` have that dtype, ``zi`` is not modified.
    """
    sos, x = np.asarray(sos), np.asarray(x)
    if sos.ndim != 2 or sos.shape[1] != 6 or not np.all(sos[:, 3] == 1):
        raise ValueError(f"sos must be (sections, 6) rows with a0 = 1, got {sos.shape}")
    arrays = (sos, x) if zi is None else (sos, x, np.asarray(zi))
    dtype = np.result_type(*arrays, np.float32)
    state_shape = (sos.shape[0], *x.shape[:-1], 2)
    if zi is None:
        state = np.zeros(state_shape, dtype=dtype)
    else:
        state = np.array(zi, dtype=dtype)  # a copy: updated in place below
        if state.shape != state_shape:
            raise ValueError(
                f"zi must be {state_shape} for sos {sos.shape} and x {x.shape}, got {state.shape}"
            )
    y = np.array(x, dtype=dtype, order="C")  # a copy, filtered in place
    channels = math.prod(x.shape[:-1])
    sos_filter_inplace(
        np.ascontiguousarray(sos, dtype=dtype),
        y.reshape(channels, x.shape[-1]),
        state.reshape(sos.shape[0], channels, 2),
    )
    return y, state


def sos_steady_state(sos: np.ndarray) -> np.ndarray:
    """The state ``(sections, 2)`` of ``sos`` after a long run of input 1: ``scipy.signal.sosfilt_zi``.

    Scaled by a channel's first sample it starts `sos_filter` as if that value had always been the
    input (no start-up transient). Per section, ``(I - A) z = B`` for the companion matrix ``A`` of
    ``[1, a1, a2]`` and ``B = [b1 - a1 b0, b2 - a2 b0]``, times the DC gain of the sections before it.
    """
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for s, (b, a) in enumerate(zip(sos[:, :3], sos[:, 3:], strict=True)):
        bn, an = (b, a) if a[0] == 1.0 else (b / a[0], a / a[0])
        i_minus_a = np.array([[1.0 + an[1], -1.0], [an[2], 1.0]])
        zi[s] = scale * np.linalg.solve(i_minus_a, bn[1:] - an[1:] * bn[0])
        scale *= b.sum() / a.sum()  # the section's gain at DC
    return zi


class SosFilter(Stage):
    """Streaming IIR filter: `sos_filter` over the channels with its state carried across blocks."""

    def __init__(self, channels: int, sos: np.ndarray) -> None:
        super().__init__(channels)
        self.sos = np.asarray(sos, dtype=np.float64)
        self._zi = np.zeros((self.sos.shape[0], channels, 2))

    def _process(self, x: np.ndarray) -> np.ndarray:
        y, self._zi = sos_filter(self.sos, x, self._zi)
        return y
