"""Analysis of a mix or master: loudness, peaks, dynamics, spectral balance, stereo image, plots.

Everything here is a pure function of ``(channels, samples)`` float32 audio and its sample rate
(Hz), built on numpy/scipy only (no librosa: its numba paths cost seconds at start-up, see
shared/HOSTING.md). Definitions, with units:

- loudness (LUFS), loudness range (LU) and true peak (dBTP): `plugin_bridge.loudness`
  (ITU-R BS.1770-4, EBU Tech 3341/3342); momentary = 400 ms windows, short-term = 3 s windows,
  both every 100 ms, and their maxima;
- sample peak (dBFS) = largest absolute sample; RMS (dBFS) = root mean square of all samples of all
  channels (a full-scale sine reads -3.01 dBFS); crest factor (dB) = sample peak - RMS;
- average spectrum: Welch power spectral density (Hann windows of about 0.37 s, half overlap, no
  detrending), averaged over channels; band levels are its power summed over each band, in dB;
- spectral balance: the power in low (20-150 Hz), low-mid (150-500 Hz), mid (500 Hz-2 kHz),
  high-mid (2-6 kHz) and high (6-20 kHz) bands, in dB relative to the total power from 20 Hz up;
- stereo width = side energy / mid energy with mid = (L + R) / 2 and side = (L - R) / 2 (0 for mono
  or identical channels, 1 for uncorrelated channels of equal level); correlation = the zero-lag
  normalised cross-correlation of L and R (1 identical, 0 unrelated, -1 inverted; 1 for mono);
- spectral distance (dB) between two signals = RMS over the 1/3-octave bands from 31.5 Hz to
  16 kHz (or 0.45 x the lower sample rate) of the difference of their band levels, each taken
  relative to its own integrated loudness (so a pure level difference gives 0 dB).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .audio_io import check_audio_array, check_output_location, read_audio
from .backends.dsp.fir import hann_window
from .errors import ParameterError, PluginBridgeError
from .files import replacing
from .loudness import (
    amplitude_to_db,
    integrated_loudness,
    k_weighted_power,
    loudness_curve,
    loudness_range,
    true_peak,
)

#: Exact base-2 1/3-octave centre frequencies (Hz), 25 Hz to 20 kHz (nominal 25 ... 20000).
THIRD_OCTAVE_CENTERS_HZ = 1000.0 * 2.0 ** (np.arange(-16, 14) / 3.0)
#: Spectral-balance bands: (name, low edge Hz, high edge Hz).
BANDS_HZ = (
    ("low", 20.0, 150.0),
    ("low_mid", 150.0, 500.0),
    ("mid", 500.0, 2000.0),
    ("high_mid", 2000.0, 6000.0),
    ("high", 6000.0, 20000.0),
)
DISTANCE_LOW_HZ = 31.0
DISTANCE_HIGH_HZ = 16500.0


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def welch_segment(sample_rate: float, frames: int) -> int:
    """Welch segment length (samples) used here: a power of two near 0.37 s, at most ``frames``."""
    target = 2 ** int(round(math.log2(0.37 * sample_rate)))
    return int(max(16, min(target, 2 ** int(math.floor(math.log2(max(frames, 16)))))))


def average_spectrum(audio: np.ndarray, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average power spectrum: ``(freqs_hz, psd)``, PSD in (full scale)^2 / Hz, averaged over channels.

    Welch's method (periodic Hann windows of `welch_segment` samples, half overlap, no detrending,
    one-sided density: what ``scipy.signal.welch(x, fs, nperseg=..., detrend=False)`` returns), with
    the frames transformed in batches so memory stays small and a 3-minute song takes ~0.2 s.
    """
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    nper = welch_segment(sample_rate, x.shape[1])
    if x.shape[1] < nper:  # shorter than the shortest segment (16 samples): zero-padded
        x = np.pad(x, ((0, 0), (0, nper - x.shape[1])))
    channels, n = x.shape
    hop = nper // 2
    window = hann_window(nper)
    frames_per_channel = 1 + (n - nper) // hop
    acc = np.zeros(nper // 2 + 1)
    batch = max(1, (1 << 22) // nper)
    for ch in range(channels):
        frames = sliding_window_view(x[ch], nper)[::hop]
        for start in range(0, frames.shape[0], batch):
            spec = np.fft.rfft(frames[start : start + batch] * window, axis=1)
            acc += np.sum(spec.real**2 + spec.imag**2, axis=0)
    psd = acc / (sample_rate * np.sum(window**2) * frames_per_channel * channels)
    psd[1 : (nper + 1) // 2] *= 2.0  # one-sided: every bin but DC (and Nyquist for even nper) twice
    return np.fft.rfftfreq(nper, 1.0 / sample_rate), psd


def band_powers(freqs: np.ndarray, psd: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Power in each band ``[edges[i, 0], edges[i, 1])`` (Hz) of a PSD: sum of ``psd * df`` over its bins."""
    df = freqs[1] - freqs[0]
    cs = np.concatenate(([0.0], np.cumsum(psd * df)))
    lo = np.searchsorted(freqs, edges[:, 0], side="left")
    hi = np.searchsorted(freqs, edges[:, 1], side="left")
    return cs[hi] - cs[lo]


def octave_smoothed_db(
    freqs: np.ndarray, psd: np.ndarray, grid_hz: np.ndarray, fraction: float = 3.0
) -> np.ndarray:
    """Fractional-octave-smoothed spectrum (dB) at ``grid_hz``: mean PSD over ``[f 2^(-1/2b), f 2^(1/2b)]``.

    ``fraction`` is b (3 = 1/3 octave). Windows narrower than one bin take the nearest bin. dB of
    power density; only differences between two such curves are meaningful.
    """
    half = 2.0 ** (1.0 / (2.0 * fraction))
    lo = np.searchsorted(freqs, grid_hz / half, side="left")
    hi = np.maximum(np.searchsorted(freqs, grid_hz * half, side="left"), lo + 1)
    hi = np.minimum(hi, len(freqs))
    lo = np.minimum(lo, hi - 1)
    cs = np.concatenate(([0.0], np.cumsum(psd)))
    mean = (cs[hi] - cs[lo]) / (hi - lo)
    return 10.0 * np.log10(np.maximum(mean, 1e-30))


@dataclass(frozen=True)
class SpectralProfile:
    """A signal's average spectrum (`average_spectrum`), 1/3-octave band levels (dB) and loudness (LUFS)."""

    centers_hz: np.ndarray
    levels_db: np.ndarray
    lufs: float
    sample_rate: float
    freqs_hz: np.ndarray
    psd: np.ndarray

    def relative_db(self) -> np.ndarray:
        """Band levels relative to the integrated loudness (dB): the loudness-normalised profile."""
        return self.levels_db - self.lufs


def spectral_profile(audio: np.ndarray, sample_rate: float) -> SpectralProfile:
    """1/3-octave band levels (dB, power summed per band, channel mean) and integrated loudness (LUFS)."""
    freqs, psd = average_spectrum(audio, sample_rate)
    c = THIRD_OCTAVE_CENTERS_HZ
    edges = np.stack([c / 2 ** (1 / 6), c * 2 ** (1 / 6)], axis=1)
    levels = 10.0 * np.log10(np.maximum(band_powers(freqs, psd, edges), 1e-30))
    lufs = integrated_loudness(audio, sample_rate)
    return SpectralProfile(c, levels, lufs, float(sample_rate), freqs, psd)


def profile_distance_db(a: SpectralProfile, b: SpectralProfile) -> float:
    """Spectral distance (dB) between two profiles: RMS of their loudness-normalised band-level difference.

    Bands from 31.5 Hz to 16 kHz whose upper edge is below 0.45 x the lower of the two sample
    rates. NaN when either signal is silent.
    """
    if not (math.isfinite(a.lufs) and math.isfinite(b.lufs)):
        return math.nan
    top = min(DISTANCE_HIGH_HZ, 0.45 * min(a.sample_rate, b.sample_rate))
    use = (a.centers_hz >= DISTANCE_LOW_HZ) & (a.centers_hz * 2 ** (1 / 6) <= top)
    d = a.relative_db()[use] - b.relative_db()[use]
    return float(np.sqrt(np.mean(d * d)))


def spectral_distance_db(a: np.ndarray, sr_a: float, b: np.ndarray, sr_b: float) -> float:
    """Spectral distance (dB, see the module docstring) between audio ``a`` at ``sr_a`` Hz and ``b`` at ``sr_b`` Hz."""
    return profile_distance_db(spectral_profile(a, sr_a), spectral_profile(b, sr_b))


def band_balance_db(audio: np.ndarray, sample_rate: float) -> dict[str, float]:
    """Spectral balance: power in each of `BANDS_HZ` in dB relative to the total from 20 Hz up (-inf if empty)."""
    return band_balance_from_psd(*average_spectrum(audio, sample_rate), sample_rate)


def band_balance_from_psd(freqs: np.ndarray, psd: np.ndarray, sample_rate: float) -> dict[str, float]:
    """`band_balance_db` of a long-term spectrum (``freqs`` Hz, ``psd`` from `average_spectrum`)."""
    nyq = sample_rate / 2.0
    edges = np.array([[lo, min(hi, nyq)] for _, lo, hi in BANDS_HZ])
    powers = band_powers(freqs, psd, edges)
    total = band_powers(freqs, psd, np.array([[20.0, nyq + 1.0]]))[0]
    out = {}
    for (name, _, _), p in zip(BANDS_HZ, powers, strict=True):
        out[name] = 10.0 * math.log10(p / total) if p > 0 and total > 0 else -math.inf
    return out


def mid_side(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid ``(L + R) / 2`` and side ``(L - R) / 2`` of stereo audio; mono gives (itself, zeros)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if x.shape[0] == 1:
        return x[0], np.zeros_like(x[0])
    return (x[0] + x[1]) / 2.0, (x[0] - x[1]) / 2.0


def mid_side_energy(audio: np.ndarray) -> tuple[float, float]:
    """(mid energy, side energy) of ``audio`` (sums of squares of `mid_side`)."""
    mid, side = mid_side(audio)
    return float(np.dot(mid, mid)), float(np.dot(side, side))


def stereo_width(audio: np.ndarray) -> float:
    """Side energy / mid energy (ratio; 0 for mono or identical channels, inf for pure side)."""
    return width_from_energy(*mid_side_energy(audio))


def width_from_energy(em: float, es: float) -> float:
    """Side/mid energy ratio from the mid ``em`` and side ``es`` energies (0 for mono, inf for pure side)."""
    if em == 0.0:
        return 0.0 if es == 0.0 else math.inf
    return es / em


def correlation(audio: np.ndarray) -> float:
    """Zero-lag normalised L/R correlation in [-1, 1]; 1.0 for mono, 0.0 if a channel is silent."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if x.shape[0] == 1:
        return 1.0
    den = math.sqrt(float(np.dot(x[0], x[0])) * float(np.dot(x[1], x[1])))
    return float(np.dot(x[0], x[1]) / den) if den > 0 else 0.0


@dataclass(frozen=True)
class Analysis:
    """Measurements of one signal (units in the field names; see the module docstring)."""

    sample_rate: int
    channels: int
    duration_s: float
    integrated_lufs: float
    momentary_max_lufs: float
    short_term_max_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    rms_dbfs: float
    crest_factor_db: float
    bands_db: dict[str, float] = field(default_factory=dict)
    stereo_width: float = 0.0
    correlation: float = 1.0

    def to_dict(self) -> dict:
        """JSON-ready dict (non-finite values, e.g. the loudness of silence, become None)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = _finite_or_none(v)
        d["bands_db"] = {k: _finite_or_none(v) for k, v in self.bands_db.items()}
        return d


def analyze(audio: np.ndarray, sample_rate: int) -> Analysis:
    """Measure ``(channels, samples)`` audio at ``sample_rate`` Hz (see `Analysis` and the module docstring).

    Momentary/short-term maxima are -inf for audio shorter than their 0.4 s/3 s windows; the
    integrated loudness of audio under 0.4 s follows `plugin_bridge.loudness.short_loudness`.
    """
    x = check_audio_array(audio, sample_rate).astype(np.float64)
    power = k_weighted_power(x, sample_rate)
    _, mom = loudness_curve(power, sample_rate, 0.4)
    _, st = loudness_curve(power, sample_rate, 3.0)
    peak = float(np.abs(x).max())
    rms = math.sqrt(float(np.mean(x * x)))
    peak_db, rms_db = amplitude_to_db(peak), amplitude_to_db(rms)
    return Analysis(
        sample_rate=int(sample_rate),
        channels=int(x.shape[0]),
        duration_s=x.shape[1] / sample_rate,
        integrated_lufs=integrated_loudness(x, sample_rate),
        momentary_max_lufs=float(mom.max()) if mom.size else -math.inf,
        short_term_max_lufs=float(st.max()) if st.size else -math.inf,
        loudness_range_lu=loudness_range(x, sample_rate),
        true_peak_dbtp=amplitude_to_db(true_peak(x)),
        sample_peak_dbfs=peak_db,
        rms_dbfs=rms_db,
        crest_factor_db=peak_db - rms_db if rms > 0 else 0.0,
        bands_db=band_balance_db(x, sample_rate),
        stereo_width=stereo_width(x),
        correlation=correlation(x),
    )


def analyze_file(path: str | os.PathLike, downmix: bool = False) -> Analysis:
    """`analyze` an audio file (read whole; mono or stereo, or more channels with ``downmix``)."""
    audio, sr = read_audio(path, downmix=downmix)
    return analyze(audio, sr)


def _plot_series(audio: np.ndarray, sample_rate: float):
    freqs, psd = average_spectrum(audio, sample_rate)
    grid = np.geomspace(20.0, min(20000.0, 0.49 * sample_rate), 400)
    lufs = integrated_loudness(audio, sample_rate)
    spec = octave_smoothed_db(freqs, psd, grid, 3.0) - (lufs if math.isfinite(lufs) else 0.0)
    power = k_weighted_power(audio, sample_rate)
    t_m, mom = loudness_curve(power, sample_rate, 0.4)
    t_s, st = loudness_curve(power, sample_rate, 3.0)
    return grid, spec, (t_m, mom), (t_s, st), lufs


def check_plot_path(out_png: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Check before any work that the plot can be written at ``out_png``: in an existing, writable
    folder, not one of ``inputs`` (`AudioError`), a ``.png`` name (`ParameterError`)."""
    p = check_output_location(out_png, inputs)
    if p.suffix.lower() != ".png":
        raise ParameterError(f"{p}: the plot must be a .png file")
    return p


def plot_analysis(
    out_png: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    other: np.ndarray | None = None,
    other_sample_rate: int | None = None,
    labels: tuple[str, str] = ("before", "after"),
    title: str | None = None,
) -> Path:
    """Write a PNG: 1/3-octave-smoothed average spectrum (dB re. integrated loudness) and loudness over time.

    With ``other`` (e.g. the master of ``audio``), both signals are drawn, labelled ``labels``.
    Uses matplotlib's Agg canvas (no display, no global backend change); the PNG is written to a
    temporary file and renamed. Raises `PluginBridgeError` if matplotlib is not installed.
    """
    p = check_plot_path(out_png)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PluginBridgeError("plotting needs matplotlib: pip install matplotlib") from None
    signals = [(labels[0], check_audio_array(audio, sample_rate), sample_rate)]
    if other is not None:
        osr = other_sample_rate or sample_rate
        signals.append((labels[1], check_audio_array(other, osr, "second signal"), osr))
    fig = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(fig)
    ax_spec, ax_loud = fig.subplots(2, 1)
    for (label, x, sr), color in zip(signals, ("tab:blue", "tab:orange"), strict=False):
        grid, spec, (t_m, mom), (t_s, st), lufs = _plot_series(x.astype(np.float64), sr)
        ax_spec.semilogx(grid, spec, color=color, label=f"{label} ({lufs:.1f} LUFS)")
        ax_loud.plot(t_m, np.maximum(mom, -70), color=color, alpha=0.35, lw=0.8, label=f"{label} momentary")
        ax_loud.plot(t_s, np.maximum(st, -70), color=color, lw=1.6, label=f"{label} short-term")
        if math.isfinite(lufs):
            ax_loud.axhline(lufs, color=color, ls="--", lw=0.8)
    ax_spec.set(
        xlabel="frequency (Hz)", ylabel="level re. loudness (dB)", title="average spectrum (1/3 octave)"
    )
    ax_spec.set_xlim(20, 20000)
    ax_spec.grid(True, which="both", alpha=0.3)
    ax_spec.legend(loc="lower left")
    ax_loud.set(xlabel="time (s)", ylabel="loudness (LUFS)", title="loudness over time (dashed: integrated)")
    ax_loud.grid(True, alpha=0.3)
    ax_loud.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with replacing(p, ".part.png") as tmp:
        fig.savefig(tmp, format="png")
    return p
