"""FIR tools in numpy: the Hann window, a windowed-sinc low-pass, FFT convolution, polyphase resampling.

They compute what ``scipy.signal`` offers under these names (``get_window("hann", n)`` and
``windows.hann``, ``firwin`` with a Kaiser window, ``oaconvolve``, ``resample_poly``), so that the
mixing and mastering paths never import ``scipy.signal``: it costs over half a second at start-up
(it parses its docstrings and loads ``scipy.stats``). The Hann window is scipy's to the bit; the
others agree to float64 rounding (FFT sizes, summation order and numpy's Bessel function differ).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def hann_window(length: int, symmetric: bool = False) -> np.ndarray:
    """The Hann window of ``length`` samples (float64, peak 1).

    Periodic by default, for spectral analysis (``scipy.signal.get_window("hann", length)``); with
    ``symmetric`` the first and last samples are both 0, for FIR design (``scipy.signal.windows.hann``).
    Computed as scipy does, ``0.5 + 0.5 cos(t)`` for ``t`` evenly spaced over ``[-pi, pi]``.
    """
    if length <= 1:
        return np.ones(max(length, 0))
    points = length if symmetric else length + 1
    w = 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, points))
    return w if symmetric else w[:-1]


def kaiser_lowpass(numtaps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Linear-phase low-pass FIR of ``numtaps`` taps (float64): a sinc with its cutoff at ``cutoff``
    (a fraction of Nyquist, 0 to 1), Kaiser-windowed (``beta``) and scaled to gain 1 at DC.

    ``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))``.
    """
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    return h / np.sum(h)


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution of ``x`` ``(..., n)`` with the FIR ``h`` ``(m,)`` along the last axis.

    Returns ``(..., n + m - 1)`` float64 (``scipy.signal.oaconvolve(x, h[None], mode="full", axes=-1)``
    for 2-D ``x``). By FFT overlap-add: ``x`` is cut into blocks such that each block's convolution
    fits one power-of-two FFT at least twice ``m`` long (one FFT for all when ``x`` is short).
    """
    x = np.asarray(x, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    n, m = x.shape[-1], h.shape[0]
    total = n + m - 1
    nfft = 1 << max(1, math.ceil(math.log2(2 * m)))
    if total <= nfft:  # one transform for all
        nfft = 1 << max(1, math.ceil(math.log2(total)))
    step = nfft - m + 1
    spectrum = np.fft.rfft(h, nfft)
    y = np.zeros((*x.shape[:-1], total))
    for start in range(0, n, step):
        part = np.fft.irfft(np.fft.rfft(x[..., start : start + step], nfft) * spectrum, nfft)
        stop = min(start + nfft, total)
        y[..., start:stop] += part[..., : stop - start]
    return y


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """``x`` ``(..., n)`` resampled along its last axis by the ratio ``up / down``: ``ceil(n up / down)`` samples.

    ``scipy.signal.resample_poly(x, up, down, axis=-1)`` with its default filter: up-sampling by
    ``up`` (zeros in between), the low-pass ``kaiser_lowpass(20 r + 1, 1 / r, 5.0) * up`` for
    ``r = max(up, down)`` (in the dtype of a floating ``x``, as scipy rounds it) centred on each output
    sample, zeros outside the signal, and every ``down``-th sample kept. Computed polyphase (only
    the taps that meet input samples) and summed in float64; returns the dtype of a floating ``x``
    (float64 otherwise). A float32 signal matches scipy's within float32 rounding (scipy sums in float32).
    """
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up == down == 1:
        return x.astype(out_dtype, copy=True)
    rate = max(up, down)
    half = 10 * rate
    h = kaiser_lowpass(2 * half + 1, 1.0 / rate).astype(out_dtype) * out_dtype.type(up)
    taps = -(-h.shape[0] // up)  # per phase
    phases = np.zeros(taps * up)
    phases[: h.shape[0]] = h
    phases = phases.reshape(taps, up).T[:, ::-1]  # phases[p, taps - 1 - t] = h[p + up t]
    n = x.shape[-1]
    n_out = -(-n * up // down)
    # Output k sits at up-sampled position k down + half (the filter's centre): with base, phase =
    # divmod(k down + half, up) it is the dot product of the taps of that phase with input samples
    # base - taps + 1 .. base. Outputs k = r + up q share their phase, and their inputs start every
    # ``down`` samples: one matrix-vector product per phase r over a strided view.
    padded = np.zeros((*x.shape[:-1], n + 2 * taps))
    padded[..., taps : taps + n] = x
    frames = sliding_window_view(padded, taps, axis=-1)  # frames[..., i, :] = padded[..., i : i + taps]
    y = np.empty((*x.shape[:-1], n_out), dtype=out_dtype)
    for r in range(min(up, n_out)):
        base, phase = divmod(r * down + half, up)
        count = len(range(r, n_out, up))
        y[..., r::up] = frames[..., base + 1 : base + 1 + down * count : down, :] @ phases[phase]
    return y
