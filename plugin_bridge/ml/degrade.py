"""Mis-mixes of finished music in three tiers: the damage the blind benchmark judges and the models
train against.

A `Damage` is 1-3 filters the chain does not share (RBJ low/high shelves and peaks at random corner
frequencies and Qs, and spectral tilts: a pair of broad shelves, -g/2 dB at 250 Hz and +g/2 dB at
4 kHz), a stereo width factor (mid/side: side times ``width``) and a level offset (dB). It is linear
and time-invariant, so it can be applied to audio (`apply_damage`) or, for training, to power
spectra (`damage_power`) with the same numbers.

Tiers (the ranges of `plugin_bridge` issue 13; level -12..-3 dB in every tier):

- ``clear``: 1-2 filters of 7-12 dB (either sign), width x0.25-0.5 or x1.8-2.5: faults a mixing
  engineer would fix at once;
- ``middle``: shelves and tilts +-6 dB, peaks +-4 dB, width x0.5-1.5;
- ``taste``: +-3 dB filters, width x0.8-1.25: differences that may be the song's own character.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import sosfilt

from ..backends.dsp.filters import high_shelf_sos, low_shelf_sos, peak_sos
from ..backends.dsp.stereo import apply_width
from ..errors import ParameterError

TIERS: tuple[str, ...] = ("clear", "middle", "taste")
KINDS: tuple[str, ...] = ("low_shelf", "high_shelf", "peak", "tilt")
_SOS = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}
#: Corner frequencies of a tilt's two shelves (Hz) and their Q.
TILT_CORNERS_HZ = (250.0, 4000.0)
TILT_Q = 0.5


@dataclass(frozen=True)
class Filter:
    """One damaging filter: ``kind`` (`KINDS`), centre or corner ``freq_hz``, ``q``, ``gain_db``."""

    kind: str
    freq_hz: float
    q: float
    gain_db: float

    def sos(self, sample_rate: float) -> np.ndarray:
        """Second-order sections ``(k, 6)`` of this filter at ``sample_rate`` (Hz)."""
        if self.kind == "tilt":
            lo, hi = TILT_CORNERS_HZ
            return np.concatenate(
                [
                    low_shelf_sos(sample_rate, lo, -self.gain_db / 2, TILT_Q),
                    high_shelf_sos(sample_rate, hi, self.gain_db / 2, TILT_Q),
                ]
            )
        if self.kind not in _SOS:
            raise ParameterError(f"unknown damage filter {self.kind!r} (valid: {', '.join(KINDS)})")
        return _SOS[self.kind](sample_rate, self.freq_hz, self.gain_db, self.q)


@dataclass(frozen=True)
class Damage:
    """A mis-mix: ``filters``, stereo ``width`` factor and ``level_db`` offset."""

    filters: tuple[Filter, ...] = field(default_factory=tuple)
    width: float = 1.0
    level_db: float = 0.0
    tier: str = ""

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "tier": self.tier,
            "filters": [
                {
                    "kind": f.kind,
                    "freq_hz": round(f.freq_hz, 1),
                    "q": round(f.q, 3),
                    "gain_db": round(f.gain_db, 2),
                }
                for f in self.filters
            ],
            "width": round(self.width, 4),
            "level_db": round(self.level_db, 2),
        }


def _filter(rng: np.random.Generator, kind: str, gain_db: float) -> Filter:
    if kind == "low_shelf":
        return Filter(
            kind, math.exp(rng.uniform(math.log(50), math.log(500))), rng.uniform(0.5, 1.0), gain_db
        )
    if kind == "high_shelf":
        return Filter(
            kind, math.exp(rng.uniform(math.log(1500), math.log(14000))), rng.uniform(0.5, 1.0), gain_db
        )
    if kind == "peak":
        return Filter(
            kind, math.exp(rng.uniform(math.log(80), math.log(10000))), rng.uniform(0.5, 3.0), gain_db
        )
    return Filter("tilt", 1000.0, TILT_Q, gain_db)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_damage(rng: np.random.Generator, tier: str) -> Damage:
    """A random `Damage` of ``tier`` (one of `TIERS`, see the module docstring)."""
    if tier not in TIERS:
        raise ParameterError(f"unknown damage tier {tier!r} (valid: {', '.join(TIERS)})")
    level = float(rng.uniform(-12.0, -3.0))
    filters = []
    if tier == "clear":
        for _ in range(int(rng.integers(1, 3))):
            kind = str(rng.choice(KINDS))
            filters.append(_filter(rng, kind, float(rng.choice([-1, 1]) * rng.uniform(7.0, 12.0))))
        width = _log_uniform(rng, 0.25, 0.5) if rng.random() < 0.5 else _log_uniform(rng, 1.8, 2.5)
    elif tier == "middle":
        for _ in range(int(rng.integers(1, 4))):
            kind = str(rng.choice(KINDS))
            limit = 4.0 if kind == "peak" else 6.0
            filters.append(_filter(rng, kind, float(rng.uniform(-limit, limit))))
        width = _log_uniform(rng, 0.5, 1.5)
    else:
        for _ in range(int(rng.integers(1, 4))):
            filters.append(_filter(rng, str(rng.choice(KINDS)), float(rng.uniform(-3.0, 3.0))))
        width = _log_uniform(rng, 0.8, 1.25)
    return Damage(tuple(filters), width, level, tier)


def damage_sos(damage: Damage, sample_rate: float) -> np.ndarray | None:
    """All of ``damage``'s filters as one ``(k, 6)`` SOS array, or None when it has none."""
    if not damage.filters:
        return None
    return np.concatenate([f.sos(sample_rate) for f in damage.filters])


def apply_damage(audio: np.ndarray, sample_rate: float, damage: Damage) -> np.ndarray:
    """``(2, n)`` audio mis-mixed by ``damage`` (filters, then width, then level); float32."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ParameterError(f"damage needs stereo (2, n) audio, got shape {x.shape}")
    sos = damage_sos(damage, sample_rate)
    if sos is not None:
        x = sosfilt(sos, x, axis=-1)
    x = apply_width(x, damage.width)
    return (x * 10.0 ** (damage.level_db / 20.0)).astype(np.float32)


def sos_power(
    sos: np.ndarray | None, freqs_hz: Sequence[float] | np.ndarray, sample_rate: float
) -> np.ndarray:
    """Power response ``|H|^2`` of second-order sections at ``freqs_hz`` (ones when ``sos`` is None)."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    if sos is None:
        return np.ones_like(f)
    z1 = np.exp(-2j * np.pi * f / sample_rate)
    z2 = z1 * z1
    total = np.ones_like(f)
    for b0, b1, b2, _, a1, a2 in np.asarray(sos, dtype=np.float64):
        h = (b0 + b1 * z1 + b2 * z2) / (1.0 + a1 * z1 + a2 * z2)
        total = total * (h.real**2 + h.imag**2)
    return total
