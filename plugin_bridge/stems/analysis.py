"""What a stems mix measures of each track: loudness, peaks, position, and level-free features.

`analyse_track(audio, sample_rate)` returns a `TrackAnalysis`: the track's integrated loudness
(LUFS, BS.1770), sample peak (dBFS), whether it is silent or clips, its stereo position and width,
the frequency below which it has little energy, and ``features``, a fixed-length vector that does
not depend on the track's level (every spectral value is relative to the track's own total, every
level statistic relative to its own loudness). The role classifier and the balance model read the
features; the decision rules read the rest.

Features (`FEATURE_NAMES`, in order):

- ``band_XX``: long-term third-octave spectrum of the mid signal (L+R)/2, 31.5 Hz to 16 kHz
  (`BAND_CENTERS_HZ`), in dB relative to the track's total power;
- ``centroid``, ``rolloff10``, ``rolloff90``: spectral centroid and the 10 % / 90 % energy roll-off
  frequencies, in octaves above 20 Hz;
- ``flatness``: mean spectral flatness (geometric / arithmetic mean power, 100 Hz-8 kHz), 0..1;
- ``flux``: mean positive spectral flux per frame relative to the mean frame power (onsets, drums);
- ``active``: share of 93 ms frames within 40 dB of the loudest frame's level;
- ``lvl10``, ``lvl50``, ``lvl90``: 10/50/90th percentiles of the active frames' levels, dB
  relative to the mean active level;
- ``crest``: sample peak over RMS of the active part, dB;
- ``side_mid``: side/mid power ratio, dB (floored at -60);
- ``corr``: L/R correlation coefficient (1 for mono);
- ``pan_abs``: the absolute stereo position, 0 (centre) .. 1 (hard side).

Frames are 4096-sample FFTs without overlap (93 ms at 44.1 kHz). The loudness is measured on
the same spectra (`spectral_loudness`: K-weighting applied to each frame's spectrum, gating blocks
of four frames every frame), within a few tenths of a LU of the exact BS.1770 meter, so a track is
transformed once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sp_fft

from ..backends.dsp.filters import sos_response
from ..loudness import gated_loudness, k_weighting_sos, power_to_lufs

#: Third-octave band centres (Hz) of the long-term spectrum feature, 31.5 Hz .. 16 kHz.
BAND_CENTERS_HZ: tuple[float, ...] = tuple(1000.0 * 2.0 ** (k / 3.0) for k in range(-15, 15))
N_FFT = 4096
#: Frames per loudness gating block (4 x 93 ms = 372 ms at 44.1 kHz, BS.1770: 400 ms).
BLOCK_FRAMES = 4
#: Frames more than this far below the loudest frame count as inactive (dB).
ACTIVE_RANGE_DB = 40.0
#: A track whose peak is below this is silent (dBFS).
SILENCE_DBFS = -90.0
#: Samples at or beyond this magnitude count as clipped (linear full scale).
CLIP_LEVEL = 0.999
#: The high-pass suggestion is the frequency below which the track holds this share of its power.
LOW_ENERGY_SHARE = 0.005
FEATURE_NAMES: tuple[str, ...] = (
    *(f"band_{c:.0f}" for c in BAND_CENTERS_HZ),
    "centroid",
    "rolloff10",
    "rolloff90",
    "flatness",
    "flux",
    "active",
    "lvl10",
    "lvl50",
    "lvl90",
    "crest",
    "side_mid",
    "corr",
    "pan_abs",
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass
class TrackAnalysis:
    """One track measured: level (``loudness_lufs`` LUFS, ``peak_dbfs`` dBFS), ``silent``,
    ``clipped_samples`` (samples at full scale), ``pan`` (-1 left .. +1 right, by the channels'
    energies and the sin/cos law), ``low_cut_hz`` (below it the track holds 0.5 % of its power),
    ``band_db`` (the third-octave spectrum relative to the total, dB) and ``features`` (level-free,
    `FEATURE_NAMES`)."""

    loudness_lufs: float
    peak_dbfs: float
    silent: bool
    clipped_samples: int
    channels: int
    pan: float
    low_cut_hz: float
    band_db: np.ndarray
    features: np.ndarray = field(repr=False)
    #: Per active 93 ms frame: mean-square level and sample peak of the mid signal (dBFS).
    frame_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    frame_peak_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)

    def to_dict(self) -> dict:
        """JSON-ready summary (no feature vector)."""
        return {
            "loudness_lufs": None if not math.isfinite(self.loudness_lufs) else round(self.loudness_lufs, 2),
            "peak_dbfs": None if not math.isfinite(self.peak_dbfs) else round(self.peak_dbfs, 2),
            "silent": self.silent,
            "clipped_samples": self.clipped_samples,
            "channels": self.channels,
            "pan": round(self.pan, 3),
            "low_cut_hz": round(self.low_cut_hz, 1),
        }


def _band_edges(freqs: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the FFT bins in each third-octave band."""
    masks = []
    for c in BAND_CENTERS_HZ:
        lo, hi = c * 2.0 ** (-1 / 6), c * 2.0 ** (1 / 6)
        masks.append((freqs >= lo) & (freqs < hi))
    return masks


def stereo_position(left_power: float, right_power: float) -> float:
    """Pan position (-1 left .. +1 right) of a source whose channels hold these powers, by the
    inverse of the constant-power sin/cos law (centre: equal powers; 0 for silence)."""
    if left_power + right_power <= 0.0:
        return 0.0
    theta = math.atan2(math.sqrt(max(right_power, 0.0)), math.sqrt(max(left_power, 0.0)))
    return float(np.clip(4.0 * theta / math.pi - 1.0, -1.0, 1.0))


def _octaves(hz: float) -> float:
    return math.log2(max(hz, 20.0) / 20.0)


def _frames(x: np.ndarray) -> np.ndarray:
    """(channels, n) -> (channels, frames, N_FFT) without overlap (the tail zero-padded)."""
    n = x.shape[1]
    count = max(1, math.ceil(n / N_FFT))
    pad = count * N_FFT - n
    if pad:
        x = np.pad(x, ((0, 0), (0, pad)))
    return x.reshape(x.shape[0], count, N_FFT)


@functools.lru_cache(maxsize=8)
def _k_weight_bins(sample_rate: int) -> np.ndarray:
    """|H_K(f)|^2 of the BS.1770 K-weighting filters at the FFT bins (N_FFT at ``sample_rate``)."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    return (np.abs(sos_response(k_weighting_sos(sample_rate), freqs, sample_rate)) ** 2).astype(np.float32)


def spectral_loudness(frame_power_k: np.ndarray) -> float:
    """BS.1770-style integrated loudness (LUFS) from per-frame K-weighted powers (channels summed):
    gating blocks of `BLOCK_FRAMES` frames (372 ms at 44.1 kHz) every frame (93 ms), gated as BS.1770
    does (`plugin_bridge.loudness.gated_loudness`). Within a few tenths of a LU of the exact meter on
    music, at a fraction of its cost: the analysis needs the spectrum anyway."""
    n = len(frame_power_k)
    if n < BLOCK_FRAMES:
        return float(power_to_lufs(float(np.mean(frame_power_k)))) if n else -math.inf
    cs = np.concatenate(([0.0], np.cumsum(frame_power_k, dtype=np.float64)))
    blocks = (cs[BLOCK_FRAMES:] - cs[:-BLOCK_FRAMES]) / BLOCK_FRAMES
    return gated_loudness(blocks)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """The Hann window of the analysis frames (float32)."""
    return np.hanning(N_FFT).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _bin_weights() -> np.ndarray:
    """Per-bin factors that turn a Hann-windowed one-sided power spectrum into the frame's mean square."""
    win = np.hanning(N_FFT)
    weight = np.full(N_FFT // 2 + 1, 2.0)  # one-sided spectrum: count the other half
    weight[0] = weight[-1] = 1.0
    return (weight / (N_FFT * float(np.sum(win**2)))).astype(np.float32)


#: Frames transformed per chunk: small buffers, reused (large temporaries cost more than the FFT).
CHUNK_FRAMES = 64


def _spectra(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the mid signal's power spectrum ``(frames, bins)``, the K-weighted mean square
    summed over channels ``(frames,)``, and the mid signal's sample peak and mean square (dBFS)."""
    channels, n = x.shape
    count = max(1, math.ceil(n / N_FFT))
    bins = N_FFT // 2 + 1
    win = _window()
    kbins = _k_weight_bins(sample_rate) * _bin_weights()
    spec = np.empty((count, bins), dtype=np.float32)
    frame_k = np.empty(count, dtype=np.float64)
    peak = np.empty(count, dtype=np.float32)
    ms = np.empty(count, dtype=np.float32)
    buf = None
    for f0 in range(0, count, CHUNK_FRAMES):
        m = min(CHUNK_FRAMES, count - f0)
        seg = x[:, f0 * N_FFT : (f0 + m) * N_FFT]
        if seg.shape[1] == m * N_FFT:  # whole frames: a view, no copy
            frames = seg.reshape(channels, m, N_FFT)
        else:  # the last, partial frame: zero-padded
            if buf is None:
                buf = np.zeros((channels, CHUNK_FRAMES, N_FFT), dtype=np.float32)
            flat = buf[:, :m].reshape(channels, m * N_FFT)
            flat[:, : seg.shape[1]] = seg
            flat[:, seg.shape[1] :] = 0.0
            frames = buf[:, :m]
        mid = frames[0] if channels == 1 else 0.5 * (frames[0] + frames[1])
        peak[f0 : f0 + m] = np.max(np.abs(mid), axis=1)
        ms[f0 : f0 + m] = np.einsum("fn,fn->f", mid, mid) / N_FFT
        sp = sp_fft.rfft(frames * win, axis=-1, workers=1)
        power = sp.real**2 + sp.imag**2
        frame_k[f0 : f0 + m] = np.einsum("cfb,b->f", power, kbins)
        if channels == 2:
            ms_spec = 0.5 * (sp[0] + sp[1])
            spec[f0 : f0 + m] = ms_spec.real**2 + ms_spec.imag**2
        else:
            spec[f0 : f0 + m] = power[0]
    with np.errstate(divide="ignore"):
        peak_db = 20.0 * np.log10(peak + 1e-12)
        ms_db = 10.0 * np.log10(ms + 1e-20)
    return spec, frame_k, peak_db.astype(np.float32), ms_db.astype(np.float32)


class TrackMeter:
    """Measures a track fed in consecutive blocks (`add`), then `result` gives its `TrackAnalysis`.

    Blocks whose lengths are multiples of `N_FFT` (all but the last) give exactly the numbers of
    the whole signal measured at once, so a file is analysed while it is read, block by block."""

    def __init__(self, channels: int, sample_rate: int) -> None:
        self.channels, self.sample_rate = int(channels), int(sample_rate)
        self.n = 0
        self.peak = 0.0
        self.clipped = 0
        self.pl = self.pr = self.lr = 0.0  # sums of squares and of the L*R product
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, block: np.ndarray) -> None:
        """The next ``(channels, m)`` block (linear amplitude)."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if not x.shape[1]:
            return
        peak = float(max(np.max(x), -np.min(x)))
        self.peak = max(self.peak, peak)
        if peak >= CLIP_LEVEL:
            self.clipped += int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
        left, right = (x[0], x[0]) if x.shape[0] == 1 else (x[0], x[1])
        self.pl += float(np.dot(left, left))
        self.pr += float(np.dot(right, right))
        self.lr += float(np.dot(left, right))
        self.n += x.shape[1]
        self.parts.append(_spectra(x, self.sample_rate))

    def result(self) -> TrackAnalysis:
        """The analysis of everything added."""
        n, channels, sample_rate = max(self.n, 1), self.channels, self.sample_rate
        peak = self.peak
        peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
        pl, pr = self.pl / n, self.pr / n
        pan = 0.0 if channels == 1 else stereo_position(pl, pr)
        features = np.zeros(N_FEATURES, dtype=np.float32)
        band_db = np.full(len(BAND_CENTERS_HZ), -100.0, dtype=np.float32)
        if not peak_db > SILENCE_DBFS:
            return TrackAnalysis(
                -math.inf, peak_db, True, self.clipped, channels, 0.0, 20.0, band_db, features
            )
        if len(self.parts) == 1:
            spec, frame_k, frame_peak, frame_ms = self.parts[0]
        else:
            spec, frame_k, frame_peak, frame_ms = (np.concatenate(a) for a in zip(*self.parts, strict=True))
        self.parts = []
        loud = spectral_loudness(frame_k)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
        frame_power = spec @ _bin_weights() + np.float32(1e-20)  # mid mean square per frame
        frame_db = 10.0 * np.log10(frame_power)
        active = frame_db > frame_db.max() - ACTIVE_RANGE_DB
        act = spec if active.all() else spec[active]
        lts = act.mean(axis=0).astype(np.float64) + 1e-20  # long-term power spectrum of the active part
        total = float(lts.sum())
        masks = _band_edges(freqs)
        band_db = np.array(
            [10.0 * math.log10(float(lts[m].sum()) / total + 1e-12) for m in masks], dtype=np.float32
        )
        cum = np.cumsum(lts) / total
        centroid = float((freqs * lts).sum() / total)
        roll10 = float(freqs[min(np.searchsorted(cum, 0.10), len(freqs) - 1)])
        roll90 = float(freqs[min(np.searchsorted(cum, 0.90), len(freqs) - 1)])
        low_cut = float(freqs[min(np.searchsorted(cum, LOW_ENERGY_SHARE), len(freqs) - 1)])
        sel = (freqs >= 100.0) & (freqs <= 8000.0)
        a = act[:, sel] + np.float32(1e-20)
        flatness = float(np.mean(np.exp(np.mean(np.log(a), axis=1)) / np.mean(a, axis=1)))
        if act.shape[0] > 1:
            mag = np.sqrt(act)
            diff = np.maximum(mag[1:] - mag[:-1], 0.0)
            flux = float(np.mean(np.einsum("fb,fb->f", diff, diff)) / np.mean(act.sum(axis=1)))
        else:
            flux = 0.0
        lv = frame_db[active]
        mean_db = 10.0 * math.log10(float(np.mean(frame_power[active])))
        p10, p50, p90 = (float(v) - mean_db for v in np.percentile(lv, [10, 50, 90]))
        frame_peak, frame_ms = frame_peak[active], frame_ms[active]
        rms = math.sqrt(float(np.mean(10.0 ** (frame_ms / 10.0))) + 1e-20)
        crest = 20.0 * math.log10(peak / rms) if peak > 0 else 0.0
        pm = 0.25 * (pl + pr + 2.0 * self.lr / n)
        ps = max(0.25 * (pl + pr) * 2.0 - pm, 0.0)
        side_mid = max(-60.0, 10.0 * math.log10(ps / pm + 1e-12)) if pm > 0 else 0.0
        if channels == 1:
            corr = 1.0
        else:
            den = math.sqrt(pl * pr)
            corr = float(self.lr / n / den) if den > 0 else 1.0
        features[:] = [
            *band_db,
            _octaves(centroid),
            _octaves(roll10),
            _octaves(roll90),
            flatness,
            math.log10(flux + 1e-6),
            float(np.mean(active)),
            p10,
            p50,
            p90,
            crest,
            side_mid / 10.0,
            corr,
            abs(pan),
        ]
        return TrackAnalysis(
            loud,
            peak_db,
            False,
            self.clipped,
            channels,
            pan,
            low_cut,
            band_db,
            features,
            frame_ms.astype(np.float32),
            frame_peak.astype(np.float32),
        )


def analyse_track(audio: np.ndarray, sample_rate: int) -> TrackAnalysis:
    """Measure one track (``(channels, n)`` float, 1 or 2 channels) at ``sample_rate`` (Hz)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    meter = TrackMeter(x.shape[0], sample_rate)
    meter.add(x)
    return meter.result()
