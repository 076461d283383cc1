"""What a mixing model hears: per-frame band spectra of a clip, and the features computed from them.

Analysis (numpy only; `FEATURE_SR` = 44.1 kHz, other rates resampled with
`plugin_bridge.backends.dsp.fir.resample_poly`, scipy's ``resample_poly`` filter): a `CLIP_S`-second
stereo clip is split into mid ``(L+R)/2`` and side ``(L-R)/2``; each is cut into `N_FRAMES`
Hann-windowed frames of `N_FFT` samples (hop `HOP`, 93 ms); the power and the mid/side
cross-spectrum of every FFT bin are pooled into `N_BANDS` bands a sixth of an octave apart (centres
31.5 Hz - 16 kHz, triangular weights on a log-frequency axis, each band's weights summing to one, so
a band holds a power *density*). The result, `band_frames`, is an array ``(4, N_BANDS, N_FRAMES)``:
mid power, side power, and the real and imaginary parts of ``M S*``.

Why this form: every damage and every correction the models deal with (EQ, width, level) is linear
and time-invariant, and acts on these four quantities exactly as a per-band factor (EQ power
response ``h``, width ``w``, level ``g``: mid x h g^2, side x h w^2 g^2, cross x h w g^2). So the
training code damages and corrects clips in this domain (`scale_bands`), and the features the
model sees are computed from them by `features_from_bands`, one function written for numpy arrays
and torch tensors alike: the same code runs at training time (torch, on damaged band frames) and at
inference time (numpy, on a song's audio). All features are level-independent.

Features (`features_from_bands`):

- ``patch`` ``(2, N_BANDS, N_FRAMES)``: mid and side band energy per frame in dB relative to the
  clip's total mid energy (floor `FLOOR_DB`): what the CNN / transformer trunks look at;
- ``glob`` ``(N_GLOBAL,)``: the long-term mid spectrum (band energies relative to the total, dB),
  the long-term side spectrum (relative to the total mid energy), per-band L/R coherence, the 10th,
  50th and 90th percentiles over time of each band's share of its frame (dB), the overall side/mid
  ratio (dB) and the overall L/R coherence. The long-term spectrum at a sixth of an octave shows
  an EQ's signature; the percentiles and the per-band width and coherence tell a song that is
  simply dark or narrow from one that was EQ'd or narrowed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..backends.dsp.fir import resample_poly

FEATURE_SR = 44100
CLIP_S = 6.0
CLIP_FRAMES = int(round(CLIP_S * FEATURE_SR))
N_FFT = 4096
HOP = 4096
N_FRAMES = 1 + (CLIP_FRAMES - N_FFT) // HOP
N_BINS = N_FFT // 2 + 1
BAND_LO_HZ = 31.5
N_BANDS = 55
FLOOR_DB = -100.0
PERCENTILES = (10.0, 50.0, 90.0)
N_GLOBAL = (3 + len(PERCENTILES)) * N_BANDS + 2
GLOBAL_NAMES = (
    [f"mid_ltas_b{i}_db" for i in range(N_BANDS)]
    + [f"side_ltas_b{i}_db" for i in range(N_BANDS)]
    + [f"coherence_b{i}" for i in range(N_BANDS)]
    + [f"mid_share_p{int(p)}_b{i}_db" for p in PERCENTILES for i in range(N_BANDS)]
    + ["side_mid_db", "coherence"]
)
_EPS = 1e-12


@lru_cache(maxsize=1)
def band_centres_hz() -> np.ndarray:
    """Centre frequency (Hz) of each of the `N_BANDS` analysis bands, a sixth of an octave apart."""
    return BAND_LO_HZ * 2.0 ** (np.arange(N_BANDS) / 6.0)


@lru_cache(maxsize=1)
def band_widths_hz() -> np.ndarray:
    """Width (Hz) of each analysis band (between the geometric midpoints to its neighbours)."""
    c = band_centres_hz()
    return c * (2.0 ** (1 / 12) - 2.0 ** (-1 / 12))


@lru_cache(maxsize=1)
def bin_freqs_hz() -> np.ndarray:
    """Frequency (Hz) of each FFT bin of the analysis."""
    return np.fft.rfftfreq(N_FFT, 1.0 / FEATURE_SR)


@lru_cache(maxsize=1)
def band_matrix() -> np.ndarray:
    """``(N_BANDS, N_BINS)`` float64 pooling weights: triangles on a log-frequency axis between the
    neighbouring centres, each row summing to one (a band whose triangle falls between two bins
    takes the nearest bins by linear interpolation)."""
    f = bin_freqs_hz()
    logf = np.log2(np.maximum(f, 1e-3))
    c = np.log2(band_centres_hz())
    step = 1.0 / 6.0
    w = np.maximum(0.0, 1.0 - np.abs(logf[None, :] - c[:, None]) / step)
    for b in range(N_BANDS):
        if w[b].sum() <= 0.0:  # narrower than a bin: interpolate between the two nearest bins
            fc = 2.0 ** c[b]
            k = int(np.searchsorted(f, fc))
            frac = (fc - f[k - 1]) / (f[k] - f[k - 1])
            w[b, k - 1], w[b, k] = 1.0 - frac, frac
    return w / w.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]


#: Scale that makes a full-scale sine read about 0 dB in a band holding it.
POWER_SCALE = 4.0 / float(np.hanning(N_FFT + 1)[:-1].sum() ** 2)


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
        x = resample_poly(x, FEATURE_SR // g, int(sample_rate) // g).astype(np.float32)
    return x


def _frames(x: np.ndarray) -> np.ndarray:
    n = 1 + max(0, (x.shape[-1] - N_FFT)) // HOP
    if x.shape[-1] < N_FFT:
        x = np.pad(x, (0, N_FFT - x.shape[-1]))
    return np.lib.stride_tricks.as_strided(x, shape=(n, N_FFT), strides=(x.strides[0] * HOP, x.strides[0]))


def band_frames(clip: np.ndarray) -> np.ndarray:
    """``(4, N_BANDS, frames)`` float32: mid power, side power, Re and Im of the mid/side cross-power
    ``M S*`` per band and frame (densities, `POWER_SCALE`d) of a ``(2, n)`` clip at `FEATURE_SR`.
    A `CLIP_FRAMES`-sample clip gives `N_FRAMES` frames; shorter clips are zero-padded to it."""
    x = np.asarray(clip, dtype=np.float64)
    if x.shape[1] < CLIP_FRAMES:
        x = np.pad(x, ((0, 0), (0, CLIP_FRAMES - x.shape[1])))
    mid = np.ascontiguousarray(0.5 * (x[0] + x[1]))
    side = np.ascontiguousarray(0.5 * (x[0] - x[1]))
    m = np.fft.rfft(_frames(mid) * _window(), axis=1)
    s = np.fft.rfft(_frames(side) * _window(), axis=1)
    cross = m * np.conj(s)
    stacked = np.stack([m.real**2 + m.imag**2, s.real**2 + s.imag**2, cross.real, cross.imag])  # (4, T, bins)
    # one BLAS thread: the product's rounding must not depend on how many threads numpy may use
    # (Dask workers run single-threaded, local workers do not; the mixes must be the same files)
    with threadpool_limits(limits=1, user_api="blas"):
        bands = stacked @ band_matrix().T  # (4, T, B)
    return (np.transpose(bands, (0, 2, 1)) * POWER_SCALE).astype(np.float32)


def scale_bands(frames: Any, h: Any, width: Any = 1.0, gain: Any = 1.0) -> Any:
    """Band frames ``(..., 4, B, T)`` after an LTI change: band power response ``h`` ``(..., B)``,
    stereo width ``width`` (side x width) and amplitude ``gain``, all broadcast over leading dims.
    Works on numpy arrays and torch tensors."""
    h = h[..., None]
    width = _expand(width, frames)
    g2 = _expand(gain, frames) ** 2
    mid = frames[..., 0, :, :] * h * g2
    side = frames[..., 1, :, :] * h * width**2 * g2
    cr = frames[..., 2, :, :] * h * width * g2
    ci = frames[..., 3, :, :] * h * width * g2
    return _stack([mid, side, cr, ci], -3)


def _expand(v: Any, like: Any) -> Any:
    if isinstance(v, (int, float)):
        return v
    return v[..., None, None]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(items: list, axis: int) -> Any:
    if _is_torch(items[0]):
        import torch

        return torch.stack(items, axis)
    return np.stack(items, axis)


def _cat(items: list, axis: int) -> Any:
    if _is_torch(items[0]):
        import torch

        return torch.cat(items, axis)
    return np.concatenate(items, axis)


def _log10(x: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.log10(torch.clamp(x, min=_EPS))
    return np.log10(np.maximum(x, _EPS))


def _quantiles(x: Any, qs: tuple[float, ...]) -> list:
    """Percentiles ``qs`` (0-100) over the last axis, linear interpolation (numpy's default)."""
    if _is_torch(x):
        import torch

        q = torch.tensor([p / 100.0 for p in qs], dtype=x.dtype)
        return list(torch.quantile(x, q, dim=-1))
    return list(np.percentile(x, qs, axis=-1))


def _db(x: Any) -> Any:
    v = 10.0 * _log10(x)
    if _is_torch(v):
        import torch

        return torch.clamp(v, min=FLOOR_DB)
    return np.maximum(v, FLOOR_DB)


def _widths_like(x: Any) -> Any:
    w = band_widths_hz()
    if _is_torch(x):
        import torch

        return torch.as_tensor(w, dtype=x.dtype)
    return w.astype(x.dtype)


def long_term_energy(frames: Any) -> tuple[Any, Any]:
    """Long-term mid and side band energies ``(..., B)`` (density x band width) of band frames."""
    bw = _widths_like(frames)
    return frames[..., 0, :, :].mean(-1) * bw, frames[..., 1, :, :].mean(-1) * bw


def balance_db(frames: Any) -> Any:
    """The long-term mid spectrum's shape: each band's share of the total mid energy (dB), ``(..., B)``."""
    mid, _ = long_term_energy(frames)
    return _db(mid / (mid.sum(-1)[..., None] + _EPS))


def side_mid_ratio_db(frames: Any) -> Any:
    """Overall side/mid energy ratio (dB), ``(...)``."""
    mid, side = long_term_energy(frames)
    return 10.0 * _log10((side.sum(-1) + _EPS) / (mid.sum(-1) + _EPS))


def features_from_bands(frames: Any) -> tuple[Any, Any]:
    """``(patch (..., 2, B, T), glob (..., N_GLOBAL))`` of band frames ``(..., 4, B, T)`` (see the
    module docstring); numpy in, numpy out (float32), torch in, torch out."""
    bw = _widths_like(frames)[:, None]
    # energies relative to the clip's long-term mid energy: every feature is level-free
    total = (frames[..., 0, :, :] * bw).mean(-1).sum(-1)[..., None, None] + 1e-30
    mid_e = frames[..., 0, :, :] * bw / total  # (..., B, T)
    side_e = frames[..., 1, :, :] * bw / total
    cr = frames[..., 2, :, :] * bw / total
    ci = frames[..., 3, :, :] * bw / total
    patch = _stack([_db(mid_e), _db(side_e)], -3)
    ltm, lts = mid_e.mean(-1), side_e.mean(-1)
    tot = ltm.sum(-1)[..., None] + _EPS
    # L = M + S, R = M - S: P_LL = Pm + Ps + 2 Re(M S*), P_RR = Pm + Ps - 2 Re(M S*),
    # L R* = Pm - Ps - 2i Im(M S*)
    lr_re = (mid_e - side_e).mean(-1)
    lr_im = (-2.0 * ci).mean(-1)
    ll = (mid_e + side_e + 2.0 * cr).mean(-1)
    rr = (mid_e + side_e - 2.0 * cr).mean(-1)
    coh = (lr_re**2 + lr_im**2) / (ll * rr + _EPS)
    share = _db(mid_e / (mid_e.sum(-2)[..., None, :] + _EPS))
    pct = _quantiles(share, PERCENTILES)
    sm = 10.0 * _log10((lts.sum(-1) + _EPS) / (ltm.sum(-1) + _EPS))
    coh_all = (lr_re.sum(-1) ** 2 + lr_im.sum(-1) ** 2) / (ll.sum(-1) * rr.sum(-1) + _EPS)
    glob = _cat([_db(ltm / tot), _db(lts / tot), coh, *pct, sm[..., None], coh_all[..., None]], -1)
    if not _is_torch(frames):
        return patch.astype(np.float32), glob.astype(np.float32)
    return patch, glob


def clip_features(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of one stereo clip at `FEATURE_SR` (`CLIP_FRAMES` samples; shorter is zero-padded):
    ``(patch (2, N_BANDS, N_FRAMES), glob (N_GLOBAL,))`` float32."""
    return features_from_bands(band_frames(np.asarray(clip)[:, :CLIP_FRAMES]))


def _clip_starts(n: int, n_clips: int) -> np.ndarray:
    """Candidate clip starts (samples at `FEATURE_SR`) in a song of ``n`` feature-rate samples."""
    return np.linspace(0.05 * (n - CLIP_FRAMES), 0.95 * (n - CLIP_FRAMES), max(1, 2 * n_clips)).astype(int)


#: Feature-rate samples read on each side of a clip before resampling it (the resampler's edges).
_RESAMPLE_MARGIN = 256


class SongClips:
    """The analysis clips of a song fed block by block (`song_clips`' rule, for files never held whole).

    ``feed`` takes consecutive ``(channels, m)`` blocks at ``sample_rate`` Hz; only the candidate
    clips' spans (and a running sum of squares) are kept, so memory is a few clips whatever the
    song's length. A song at another rate than `FEATURE_SR` is resampled clip by clip (each span read
    with a margin of `_RESAMPLE_MARGIN` feature-rate samples, so the resampler's edges fall outside
    the clip). ``clips()`` returns up to ``n_clips`` ``(2, CLIP_FRAMES)`` float32 clips.
    """

    def __init__(self, frames: int, sample_rate: int, n_clips: int = 6) -> None:
        self.frames, self.sample_rate, self.n_clips = int(frames), int(sample_rate), n_clips
        g = int(np.gcd(self.sample_rate, FEATURE_SR))
        self.up, self.down = FEATURE_SR // g, self.sample_rate // g
        self.n = -(-self.frames * self.up // self.down)  # feature-rate length (resample_poly's)
        self.position, self.sumsq, self.channels = 0, 0.0, 1
        if self.n <= CLIP_FRAMES:
            self.spans = [(0, self.frames, 0)]
        else:
            self.spans = [self._span(int(s)) for s in _clip_starts(self.n, n_clips)]
        self.parts: list[list[np.ndarray]] = [[] for _ in self.spans]

    def _span(self, start: int) -> tuple[int, int, int]:
        """(first, stop) source samples to read for a clip at feature-rate ``start``, and the clip's
        offset in the resampled span."""
        if self.up == self.down:
            return start, start + CLIP_FRAMES, 0
        a = max(0, (start - _RESAMPLE_MARGIN) // self.up) * self.up  # on the common grid
        b = min(self.n, -(-(start + CLIP_FRAMES + _RESAMPLE_MARGIN) // self.up) * self.up)
        return a // self.up * self.down, min(self.frames, -(-b * self.down // self.up)), start - a

    def feed(self, block: np.ndarray) -> None:
        """Take the next ``(channels, m)`` block of the song."""
        x = np.atleast_2d(block)
        self.channels = x.shape[0]
        a, b = self.position, self.position + x.shape[1]
        self.position = b
        self.sumsq += float(np.einsum("ij,ij->", x, x, dtype=np.float64))
        for (first, stop, _), parts in zip(self.spans, self.parts, strict=True):
            lo, hi = max(first, a), min(stop, b)
            if lo < hi:
                parts.append(x[:, lo - a : hi - a].astype(np.float32, copy=True))

    def _clip(self, k: int) -> np.ndarray:
        first, stop, offset = self.spans[k]
        parts = self.parts[k]
        x = np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), np.float32)
        x = to_feature_rate(x, self.sample_rate)[:, offset : offset + CLIP_FRAMES]
        return np.pad(x, ((0, 0), (0, CLIP_FRAMES - x.shape[1]))) if x.shape[1] < CLIP_FRAMES else x

    def clips(self) -> list[np.ndarray]:
        """Up to ``n_clips`` clips (clips more than 20 dB below the song's mean level are skipped
        when louder ones exist), each ``(2, CLIP_FRAMES)`` float32."""
        clips = [self._clip(k) for k in range(len(self.spans))]
        if len(clips) == 1:
            return clips
        total = self.sumsq / max(1, self.channels * self.frames) + 1e-20
        loud = [c for c in clips if np.mean(c.astype(np.float64) ** 2) > total * 0.01]
        chosen = loud or clips
        idx = np.linspace(0, len(chosen) - 1, min(self.n_clips, len(chosen))).round().astype(int)
        return [chosen[i] for i in idx]


def song_clips(audio: np.ndarray, sample_rate: int, n_clips: int = 6) -> list[np.ndarray]:
    """Up to ``n_clips`` evenly spaced `CLIP_S`-second clips of a song (clips more than 20 dB below the
    song's mean level are skipped when louder ones exist); each ``(2, CLIP_FRAMES)`` float32.
    The same clips as `SongClips` fed the song block by block."""
    x = np.asarray(audio, dtype=np.float32)
    x = x[None, :] if x.ndim == 1 else x[:2]
    collector = SongClips(x.shape[1], sample_rate, n_clips)
    collector.feed(x)
    return collector.clips()


def features_of_clips(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """`clip_features` of each clip stacked: ``(patch (k, 2, N_BANDS, N_FRAMES), glob (k, N_GLOBAL))``."""
    feats = [clip_features(c) for c in clips]
    return np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])


def song_features(audio: np.ndarray, sample_rate: int, n_clips: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``n_clips`` clips of a song: ``(patch (k, 2, N_BANDS, N_FRAMES), glob (k, N_GLOBAL))``.

    A model predicts per clip; `plugin_bridge.ml.inference` combines the clip predictions."""
    return features_of_clips(song_clips(audio, sample_rate, n_clips))
