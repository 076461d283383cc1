"""The chain's corrective stages as an exact, differentiable model on the analysis bands.

The default chain's EQ slots are RBJ/JUCE biquads (`plugin_bridge.backends.dsp.filters`) at fixed
frequencies and Qs with a predicted gain. `rbj_power` computes their power response ``|H|^2`` at
given frequencies from the same formulas, for numpy arrays or torch tensors of gains (so training
can differentiate through it); `eq_band_power` pools the product of all slots' responses over the
feature bands (`plugin_bridge.ml.features.band_matrix`), which is what the chain's EQ does to a
clip's band frames (`plugin_bridge.ml.features.scale_bands`). The tests check it against the
chain's real render.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..chain import Chain, default_chain
from .features import FEATURE_SR, band_centres_hz, band_matrix, bin_freqs_hz

EQ_TYPES = ("low_shelf", "peak", "high_shelf")


def _eq_slots_of(chain: Chain) -> tuple[tuple[str, str, float, float], ...]:
    return tuple(
        (s.id, s.type, float(s.fixed["cutoff_hz"]), float(s.fixed["q"]))
        for s in chain.slots
        if s.type in EQ_TYPES and "gain_db" in s.predicted and "cutoff_hz" in s.fixed and "q" in s.fixed
    )


def eq_slots(chain: Chain | None = None) -> tuple[tuple[str, str, float, float], ...]:
    """``(id, type, cutoff_hz, q)`` of each EQ slot with a predicted gain, in chain order."""
    return _eq_slots_of(chain) if chain is not None else _default_eq_slots()


@lru_cache(maxsize=1)
def _default_eq_slots() -> tuple[tuple[str, str, float, float], ...]:
    return _eq_slots_of(default_chain())


def eq_names(chain: Chain | None = None) -> tuple[str, ...]:
    """The parameter names of the EQ gains, ``"<slot>.gain_db"``, in chain order."""
    return tuple(f"{sid}.gain_db" for sid, *_ in eq_slots(chain))


def rbj_power(
    kind: str, cutoff_hz: float, q: float, gain_db: Any, freqs_hz: np.ndarray, sample_rate: float
) -> Any:
    """Power response ``|H|^2`` ``(..., F)`` of a JUCE/RBJ ``kind`` biquad (``low_shelf``, ``peak``,
    ``high_shelf``) with gain ``gain_db`` ``(...)`` (dB; numpy array or torch tensor) at ``freqs_hz``
    (Hz). The same formulas as `plugin_bridge.backends.dsp.filters`."""
    w0 = 2.0 * math.pi * max(cutoff_hz, 2.0) / sample_rate
    cosw, sinw = math.cos(w0), math.sin(w0)
    a = (10.0 ** (gain_db / 20.0)) ** 0.5
    a = a[..., None] if hasattr(a, "shape") and len(a.shape) else a
    if kind == "peak":
        alpha = sinw / (2.0 * q)
        b0, b1, b2 = 1.0 + alpha * a, -2.0 * cosw + 0.0 * a, 1.0 - alpha * a
        a0, a1, a2 = 1.0 + alpha / a, -2.0 * cosw + 0.0 * a, 1.0 - alpha / a
    else:
        beta = sinw * a**0.5 / q
        am1, ap1 = a - 1.0, a + 1.0
        if kind == "low_shelf":
            b0, b1, b2 = (
                a * (ap1 - am1 * cosw + beta),
                a * 2.0 * (am1 - ap1 * cosw),
                a * (ap1 - am1 * cosw - beta),
            )
            a0, a1, a2 = ap1 + am1 * cosw + beta, -2.0 * (am1 + ap1 * cosw), ap1 + am1 * cosw - beta
        elif kind == "high_shelf":
            b0, b1, b2 = (
                a * (ap1 + am1 * cosw + beta),
                a * -2.0 * (am1 + ap1 * cosw),
                a * (ap1 + am1 * cosw - beta),
            )
            a0, a1, a2 = ap1 - am1 * cosw + beta, 2.0 * (am1 - ap1 * cosw), ap1 - am1 * cosw - beta
        else:
            raise ValueError(f"unknown EQ type {kind!r}")
    w = 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate
    c1, s1, c2, s2 = np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)
    if hasattr(gain_db, "dtype") and type(gain_db).__module__.startswith("torch"):
        import torch

        c1, s1, c2, s2 = (torch.as_tensor(v, dtype=gain_db.dtype) for v in (c1, s1, c2, s2))
    num = (b0 + b1 * c1 + b2 * c2) ** 2 + (b1 * s1 + b2 * s2) ** 2
    den = (a0 + a1 * c1 + a2 * c2) ** 2 + (a1 * s1 + a2 * s2) ** 2
    return num / den


def eq_bin_power(
    gains_db: Any,
    chain: Chain | None = None,
    freqs_hz: np.ndarray | None = None,
    sample_rate: float = FEATURE_SR,
) -> Any:
    """Power response ``(..., F)`` of all EQ slots at gains ``(..., n_slots)`` (dB) at ``freqs_hz``
    (default: the analysis FFT bins) for ``sample_rate`` (Hz)."""
    freqs = bin_freqs_hz() if freqs_hz is None else freqs_hz
    total = None
    for j, (_, kind, f, q) in enumerate(eq_slots(chain)):
        p = rbj_power(kind, f, q, gains_db[..., j], freqs, sample_rate)
        total = p if total is None else total * p
    return total


@lru_cache(maxsize=1)
def _band_points() -> tuple[np.ndarray, np.ndarray]:
    """Three frequencies per band (its centre and a twelfth of an octave either side) and the
    ``(N_BANDS, 3 N_BANDS)`` weights (1/4, 1/2, 1/4) that average them: a triangle like the band's."""
    c = band_centres_hz()
    pts = np.stack([c * 2 ** (-1 / 12), c, c * 2 ** (1 / 12)], axis=1).ravel()
    w = np.zeros((len(c), pts.size))
    for b in range(len(c)):
        w[b, 3 * b : 3 * b + 3] = (0.25, 0.5, 0.25)
    return pts, w


def pool_bands(bin_power: Any) -> Any:
    """A per-bin power response ``(..., N_BINS)`` pooled to the feature bands ``(..., N_BANDS)``."""
    m = band_matrix()
    if type(bin_power).__module__.startswith("torch"):
        import torch

        return bin_power @ torch.as_tensor(m.T, dtype=bin_power.dtype)
    return bin_power @ m.T


def eq_band_power(gains_db: Any, chain: Chain | None = None) -> Any:
    """Band power response ``(..., N_BANDS)`` of the chain's EQ at gains ``(..., n_slots)`` (dB): the
    mean of ``|H|^2`` at three points across each band. The chain's EQs are broad, so this is within
    0.3 dB (lowest bands, where the FFT bins are coarse) and 0.15 dB (above 300 Hz) of pooling every
    FFT bin with `pool_bands`, at a twelfth of the work (the tests check it)."""
    pts, w = _band_points()
    power = eq_bin_power(gains_db, chain, pts)
    if type(power).__module__.startswith("torch"):
        import torch

        return power @ torch.as_tensor(w.T, dtype=power.dtype)
    return power @ w.T
