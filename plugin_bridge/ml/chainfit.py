"""The best the default chain can do: its corrective settings fitted to a known original.

`fit_chain` measures a damaged clip and the original it came from and returns the default chain's
values (real units) that bring the damaged clip closest to the original, by measurement alone (no
learning): the blind benchmark's "chain LSQ fit" row (``bench/bench_blind.py``), the ceiling a
model that predicts the chain can reach.

The fit works on long-term power spectra (Welch, Hann window, ``N_FFT`` samples, half overlap) of
the mid ``(L+R)/2`` and side ``(L-R)/2`` signals:

1. EQ: the gains (dB) of every EQ slot of the chain (``low_shelf`` / ``peak`` / ``high_shelf`` with
   their fixed ``cutoff_hz`` and ``q``) by bounded least squares (`scipy.optimize.least_squares`,
   each gain within its range in the space) so that, per band of a 1/6-octave grid from 30 Hz to
   16 kHz, the damaged mid power times the chain EQ's exact power response (the RBJ biquads of
   `plugin_bridge.backends.dsp.filters`, as `plugin_bridge.ml.eqresponse.eq_bin_power` computes
   them, evaluated at every FFT bin and summed per band) matches the original's band power, both in dB with the mean over the
   bands removed: the spectral *shape*, independent of loudness;
2. width: the side/mid ratio (the chain's M/S ``width``: side times ``width``) that gives the
   equalised clip the original's broadband side/mid power ratio, clipped to the space's range;
3. input gain (dB): the one that gives the equalised clip the original's mid power (RMS), clipped.

Everything else stays neutral: compressor ratio 1, reverb and delay wet 0, output gain 0 dB (the
space's defaults, which leave audio unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import welch

from ..chain import default_chain
from ..errors import ParameterError
from ..params import ParamSpace
from .eqresponse import eq_bin_power, eq_names

#: Welch segment length (samples) of the long-term spectra: 2.7 Hz bins at 44.1 kHz, so that the
#: narrow 1/6-octave bands at the bottom of the grid hold at least one bin.
N_FFT = 16384
#: The fit's band grid: 1/6-octave bands, centres 30 Hz * 2^(k/6) up to 16 kHz.
BANDS_PER_OCTAVE = 6
F_LO_HZ, F_HI_HZ = 30.0, 16000.0
#: Band powers below this fraction of the loudest band (-90 dB) count as silence: a band silent
#: in both clips does not steer the fit.
FLOOR = 1e-9
#: Parameters held neutral by the fit (the rest of the space keeps its defaults, which are neutral).
NEUTRAL = {"comp.ratio": 1.0, "reverb.wet_level": 0.0, "delay.mix": 0.0, "output.gain_db": 0.0}


def band_centres_hz() -> np.ndarray:
    """Centres (Hz) of the fit's 1/6-octave band grid, 30 Hz - 16 kHz."""
    n = int(math.floor(BANDS_PER_OCTAVE * math.log2(F_HI_HZ / F_LO_HZ))) + 1
    return F_LO_HZ * 2.0 ** (np.arange(n) / BANDS_PER_OCTAVE)


def _spectra(audio: np.ndarray, sample_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (Hz) and long-term mid and side power spectra (Welch, any common scale)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ParameterError(f"fit_chain needs stereo (2, n) audio, got shape {x.shape}")
    nperseg = min(N_FFT, x.shape[1])
    if nperseg < 1024:
        raise ParameterError(f"fit_chain needs at least 1024 samples, got {x.shape[1]}")
    mid, side = 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])
    f, pm = welch(mid, sample_rate, window="hann", nperseg=nperseg)
    _, ps = welch(side, sample_rate, window="hann", nperseg=nperseg)
    return f, pm, ps


def fit_chain(
    damaged: np.ndarray,
    reference: np.ndarray,
    sample_rate: int = 44100,
    space: ParamSpace | None = None,
) -> dict[str, float]:
    """The default chain's values (real units: dB, ratio...) that bring ``damaged`` closest to
    ``reference``; both ``(2, n)`` audio at ``sample_rate`` Hz (they need not be the same length).

    Returns every parameter of ``space`` (default: the default chain's): the EQ slots' ``gain_db``
    fitted to the reference's spectral shape, ``width.width`` (side gain, ratio) and
    ``input.gain_db`` (dB) fitted as the module docstring says, everything else at its neutral
    default. The EQ slots (types, cutoffs, Qs) are the default chain's."""
    space = space or default_chain().space
    names = eq_names()
    f, pm_d, ps_d = _spectra(damaged, sample_rate)
    f_r, pm_r, ps_r = _spectra(reference, sample_rate)
    if len(f_r) != len(f):  # a shorter clip than N_FFT: bring the reference onto the same bins
        pm_r, ps_r = np.interp(f, f_r, pm_r), np.interp(f, f_r, ps_r)

    # band grid: every FFT bin inside [first lower edge, last upper edge) belongs to one band
    centres = band_centres_hz()
    edges = np.concatenate(
        [centres * 2 ** (-0.5 / BANDS_PER_OCTAVE), [centres[-1] * 2 ** (0.5 / BANDS_PER_OCTAVE)]]
    )
    edges = edges[edges < sample_rate / 2]
    inside = (f >= edges[0]) & (f < edges[-1])
    fb = f[inside]
    band_of = np.searchsorted(edges, fb, side="right") - 1
    used = np.unique(band_of)  # bands holding at least one bin
    band_of = np.searchsorted(used, band_of)

    def bands(p: np.ndarray) -> np.ndarray:
        return np.bincount(band_of, weights=p, minlength=len(used))

    d_bins, r_bands = pm_d[inside], bands(pm_r[inside])
    floor_r = FLOOR * max(float(r_bands.max()), 1e-30)
    floor_d = FLOOR * max(float(bands(d_bins).max()), 1e-30)
    target = 10 * np.log10(r_bands + floor_r)
    target -= target.mean()

    def residual(g: np.ndarray) -> np.ndarray:
        out = 10 * np.log10(bands(d_bins * eq_bin_power(g, freqs_hz=fb, sample_rate=sample_rate)) + floor_d)
        return out - out.mean() - target

    specs = [space.spec(name) for name in names]
    lo = np.array([s.min for s in specs], dtype=np.float64)
    hi = np.array([s.max for s in specs], dtype=np.float64)
    x0 = np.clip(np.array([s.default for s in specs], dtype=np.float64), lo, hi)
    fit = least_squares(residual, x0, bounds=(lo, hi), method="trf", x_scale=1.0, xtol=1e-10, ftol=1e-10)
    gains = np.clip(fit.x, lo, hi)

    values = dict(space.defaults())
    values.update({k: v for k, v in NEUTRAL.items() if k in values})
    values.update({name: float(g) for name, g in zip(names, gains, strict=True)})

    h2 = eq_bin_power(gains, freqs_hz=f, sample_rate=sample_rate)  # the EQ acts on mid and side alike
    mid_eq, side_eq = float(np.sum(pm_d * h2)), float(np.sum(ps_d * h2))
    mid_ref, side_ref = float(np.sum(pm_r)), float(np.sum(ps_r))
    if "width.width" in values and mid_eq > 0 and side_eq > 0 and mid_ref > 0 and side_ref > 0:
        spec = space.spec("width.width")
        width = math.sqrt((side_ref / mid_ref) / (side_eq / mid_eq))
        values["width.width"] = float(min(max(width, spec.min), spec.max))
    if "input.gain_db" in values and mid_eq > 0 and mid_ref > 0:
        spec = space.spec("input.gain_db")
        values["input.gain_db"] = float(min(max(10 * math.log10(mid_ref / mid_eq), spec.min), spec.max))
    return values


def chain_vector(values: Mapping[str, float], space: ParamSpace | None = None) -> np.ndarray:
    """The normalized model vector (float64, space order, in [0, 1]) of real-unit ``values``
    (missing parameters at their defaults), for ``render_array(audio, sr, "default", vector=...)``."""
    space = space or default_chain().space
    return space.to_vector(dict(values), fill_defaults=True)
