"""Features a mixing model listens to: mid/side log-mel patches and a vector of global measurements.

Everything here is numpy/scipy: the STFT is a strided numpy FFT and the mel filterbank (librosa's
Slaney filterbank, re-computed in numpy and checked against `librosa.filters.mel` in the tests) is
built once per sample rate, so a one-song CLI run pays no librosa import and no numba compilation.

Layout (all at `FEATURE_SR` = 44.1 kHz; other rates are resampled with `scipy.signal.resample_poly`):

- ``mel``: ``(2, N_MELS, N_FRAMES)`` float32, log-mel power in dB (floor -100 dB) of the mid
  ``(L+R)/2`` and side ``(L-R)/2`` signals of a `CLIP_S`-second clip; ``N_FFT`` = 2048 samples Hann
  window, hop 2048 samples (46 ms), 64 mel bands 30 Hz - 16 kHz (Slaney).
- ``glob``: ``(N_GLOBAL,)`` float32: mid RMS level (dBFS), crest factor (dB), side/mid level ratio
  (dB, the stereo width), L/R correlation, then the clip's long-term spectrum: the time-averaged mel
  power (dB, same scale as ``mel``) of the mid signal in the 64 mel bands, and the same for the side
  signal. The long-term mid spectrum is exactly what the house balance is measured on
  (`plugin_bridge.ml.corpus.HouseBalance`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly
from threadpoolctl import threadpool_limits

FEATURE_SR = 44100
CLIP_S = 3.0
CLIP_FRAMES = int(round(CLIP_S * FEATURE_SR))
N_FFT = 2048
HOP = 2048
N_MELS = 64
N_FRAMES = 1 + (CLIP_FRAMES - N_FFT) // HOP
FMIN_HZ, FMAX_HZ = 30.0, 16000.0
N_GLOBAL = 4 + 2 * N_MELS
FLOOR_DB = -100.0
GLOBAL_NAMES = (
    ["rms_db", "crest_db", "side_mid_db", "lr_correlation"]
    + [f"mid_ltas_mel{i}_db" for i in range(N_MELS)]
    + [f"side_ltas_mel{i}_db" for i in range(N_MELS)]
)
#: Scale that makes a full-scale sine read about 0 dB in the mel powers.
POWER_SCALE = 4.0 / (N_FFT * N_FFT)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's ``htk=False``."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@lru_cache(maxsize=4)
def mel_matrix(sample_rate: int = FEATURE_SR) -> np.ndarray:
    """The ``(N_MELS, N_FFT // 2 + 1)`` Slaney mel filterbank (float32), computed once per rate.

    Numerically `librosa.filters.mel` (``htk=False, norm="slaney"``; the tests check it) without
    importing librosa, which keeps a one-song CLI run free of librosa's import and numba time.
    """
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN_HZ), _hz_to_mel(FMAX_HZ), N_MELS + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def mel_centres_hz() -> np.ndarray:
    """Centre frequency (Hz) of each of the `N_MELS` mel bands."""
    return _mel_to_hz(np.linspace(_hz_to_mel(FMIN_HZ), _hz_to_mel(FMAX_HZ), N_MELS + 2))[1:-1]


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def to_feature_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(channels, samples)`` audio as stereo float32 at `FEATURE_SR` (mono is duplicated)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] == 1:
        x = np.concatenate([x, x])
    x = x[:2]
    if int(sample_rate) != FEATURE_SR:
        g = np.gcd(int(sample_rate), FEATURE_SR)
        x = resample_poly(x, FEATURE_SR // g, int(sample_rate) // g, axis=1).astype(np.float32)
    return x


def power_spectrogram(x: np.ndarray) -> np.ndarray:
    """``|STFT|^2`` of a 1-D float32 signal: ``(N_FFT // 2 + 1, frames)``, no padding."""
    n = 1 + max(0, (x.shape[-1] - N_FFT)) // HOP
    if x.shape[-1] < N_FFT:
        x = np.pad(x, (0, N_FFT - x.shape[-1]))
    frames = np.lib.stride_tricks.as_strided(x, shape=(n, N_FFT), strides=(x.strides[0] * HOP, x.strides[0]))
    spec = np.fft.rfft(frames * _window(), axis=1)
    return (spec.real**2 + spec.imag**2).T.astype(np.float32)


def _db(p: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(p, 1e-10))


def clip_features(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of one stereo clip at `FEATURE_SR` of `CLIP_FRAMES` samples (shorter is zero-padded).

    Returns ``(mel (2, N_MELS, N_FRAMES), glob (N_GLOBAL,))`` float32, see the module docstring.
    """
    x = np.asarray(clip, dtype=np.float32)[:, :CLIP_FRAMES]
    if x.shape[1] < CLIP_FRAMES:
        x = np.pad(x, ((0, 0), (0, CLIP_FRAMES - x.shape[1])))
    mid = 0.5 * (x[0] + x[1])
    side = 0.5 * (x[0] - x[1])
    pm, ps = power_spectrogram(mid), power_spectrogram(side)
    mel = mel_matrix()
    # one BLAS thread: the product's rounding must not depend on how many threads numpy may use
    # (Dask workers run single-threaded, local workers do not; the mixes must be the same files)
    with threadpool_limits(limits=1, user_api="blas"):
        mel_m, mel_s = mel @ pm * POWER_SCALE, mel @ ps * POWER_SCALE
    logmel = np.stack([_db(mel_m), _db(mel_s)]).clip(FLOOR_DB, None)
    ms_mid = float(np.mean(mid.astype(np.float64) ** 2))
    ms_side = float(np.mean(side.astype(np.float64) ** 2))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    left, right = x[0].astype(np.float64), x[1].astype(np.float64)
    den = np.sqrt(np.sum(left * left) * np.sum(right * right))
    corr = float(np.sum(left * right) / den) if den > 0 else 1.0
    glob = np.concatenate(
        [
            [
                _db(ms_mid),
                _db(peak**2) - _db(ms_mid),
                _db(ms_side) - _db(ms_mid),
                corr,
            ],
            _db(mel_m.mean(axis=1)).clip(FLOOR_DB, None),
            _db(mel_s.mean(axis=1)).clip(FLOOR_DB, None),
        ]
    ).astype(np.float32)
    return logmel.astype(np.float32), glob


def mid_long_term_power(clip: np.ndarray) -> np.ndarray:
    """Time-averaged power spectrum ``(N_FFT // 2 + 1,)`` (float64, `POWER_SCALE`d) of the mid signal
    of a ``(2, n)`` clip at `FEATURE_SR`, framed exactly as `clip_features` frames it."""
    x = np.asarray(clip, dtype=np.float32)[:, :CLIP_FRAMES]
    if x.shape[1] < CLIP_FRAMES:
        x = np.pad(x, ((0, 0), (0, CLIP_FRAMES - x.shape[1])))
    return power_spectrogram(0.5 * (x[0] + x[1])).mean(axis=1).astype(np.float64) * POWER_SCALE


def song_clips(audio: np.ndarray, sample_rate: int, n_clips: int = 4) -> list[np.ndarray]:
    """Up to ``n_clips`` evenly spaced `CLIP_S`-second clips of a song (the loudest part is favoured
    by skipping clips more than 20 dB below the song's RMS); each ``(2, CLIP_FRAMES)`` float32."""
    x = to_feature_rate(audio, sample_rate)
    n = x.shape[1]
    if n <= CLIP_FRAMES:
        return [np.pad(x, ((0, 0), (0, CLIP_FRAMES - n)))]
    starts = np.linspace(0.1 * (n - CLIP_FRAMES), 0.9 * (n - CLIP_FRAMES), max(1, 2 * n_clips)).astype(int)
    total = float(np.mean(x.astype(np.float64) ** 2)) + 1e-20
    clips = [x[:, s : s + CLIP_FRAMES] for s in starts]
    loud = [c for c in clips if np.mean(c.astype(np.float64) ** 2) > total * 0.01]
    chosen = loud or clips
    idx = np.linspace(0, len(chosen) - 1, min(n_clips, len(chosen))).round().astype(int)
    return [chosen[i] for i in idx]


def song_features(audio: np.ndarray, sample_rate: int, n_clips: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``n_clips`` clips of a song: ``(mel (k, 2, N_MELS, N_FRAMES), glob (k, N_GLOBAL))``.

    A model predicts per clip; `plugin_bridge.ml.inference` averages the clip predictions.
    """
    feats = [clip_features(c) for c in song_clips(audio, sample_rate, n_clips)]
    return np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])
