"""Mastering: meet a loudness target under a true-peak ceiling, optionally match a reference, report.

The pipeline is a row of stage functions with plain inputs and outputs (matchering's shape):

1. **check** the input: digital silence, files under 400 ms, mono, DC offset (removed by a 5 Hz
   high-pass), clipping (runs of identical full-scale samples), each said in a warning or a note;
2. **match a reference** (optional, `match_reference`): stereo width (side/mid energy), the
   loudness-normalised 1/3-octave-smoothed average spectrum (a linear-phase FIR) and loudness;
3. **loudness and true peak** (`normalize_loudness`): a gain, then an oversampled true-peak
   limiter (`true_peak_limit`), until the integrated loudness (ITU-R BS.1770-4) of the rendered
   result is within 0.1 LU of the target, with the make-up gain capped (+30 dB) and the limiter's
   gain reduction capped (6 dB: more is audible distortion); when a cap stops it the target is not
   reached and a warning says so. The gain is searched on a prediction (the input's K-weighted
   power times the squared gain curve: no filtering, no rendering), then rendered and measured;
   a miss corrects the prediction and searches again. The limiter holds the true peak 0.15 dB
   under the ceiling (meters disagree by about that much on bright, limited material);
4. **verify**: the true peak of the result must be at or below the ceiling; if not, stage 3 runs
   again with the ceiling lowered by the excess plus 0.02 dB.

Cost (3-minute stereo song, one core): the two true-peak readings (input and result, 8x
oversampled by FFT) are about half of it, the K-weighting filters of input and result and the DC
high-pass (when needed) most of the rest; the input's loudness, envelope and K-weighted power
are measured once and reused. The signal is held in float32 (the master is float32 anyway) and
the passes work block by block, because fresh full-length arrays cost as much as the arithmetic.

True peaks are read 8x oversampled with a long interpolation filter
(`plugin_bridge.loudness.true_peak_envelope`): BS.1770-4 asks for at least 4x, but at 4x a peak of
content near Nyquist can fall between the points, and ffmpeg's meter then reads up to 0.2 dB above
a ceiling held at 4x; at 8x the reading has converged (8x and 16x agree within 0.001 dB on our
test material).

Loudness targets (integrated LUFS, true-peak ceiling dBTP): streaming -14/-1, apple -16/-1,
ebu_r128 -23/-1, club -9/-0.3, or any custom pair. The result promises the integrated loudness
within `LOUDNESS_TOLERANCE_LU` (0.5 LU) of the target and the true peak at or below the ceiling,
unless a cap stopped it (``MasterResult.reached`` is then False and a warning explains why).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import minimum_filter1d
from scipy.signal import butter, oaconvolve, sosfilt, sosfilt_zi
from scipy.signal.windows import hann

from .analysis import (
    SpectralProfile,
    mid_side,
    octave_smoothed_db,
    profile_distance_db,
    spectral_profile,
    stereo_width,
)
from .audio_io import check_audio_array, check_output_path, read_audio, write_audio
from .backends.dsp._kernels import release_smoother
from .errors import ParameterError
from .loudness import (
    amplitude_to_db,
    integrated_loudness,
    is_shorter_than_block,
    k_weighted_power,
    loudness_from_power,
    pack_pair,
    power_to_lufs,
    true_peak,
    true_peak_envelope,
)

log = logging.getLogger(__name__)

#: What the result promises: integrated loudness within this many LU of the target.
LOUDNESS_TOLERANCE_LU = 0.5
LUFS_RANGE = (-50.0, -3.0)
CEILING_RANGE_DBTP = (-12.0, 0.0)


@dataclass(frozen=True)
class LoudnessTarget:
    """Where the master will be played: integrated loudness (LUFS) and true-peak ceiling (dBTP)."""

    name: str
    lufs: float
    ceiling_dbtp: float

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


#: The shipped loudness targets, by name.
TARGETS: dict[str, LoudnessTarget] = {
    "streaming": LoudnessTarget("streaming", -14.0, -1.0),
    "apple": LoudnessTarget("apple", -16.0, -1.0),
    "ebu_r128": LoudnessTarget("ebu_r128", -23.0, -1.0),
    "club": LoudnessTarget("club", -9.0, -0.3),
}


def resolve_target(
    target: str | LoudnessTarget | None = None, lufs: float | None = None, ceiling_dbtp: float | None = None
) -> LoudnessTarget:
    """A `LoudnessTarget` from a preset name (or object) and/or custom values.

    ``lufs`` makes a custom target (ceiling ``ceiling_dbtp``, else the preset's, else -1 dBTP);
    ``ceiling_dbtp`` alone overrides a preset's ceiling; nothing at all gives "streaming".
    Raises `ParameterError` for an unknown name or values outside -50..-3 LUFS / -12..0 dBTP.
    """
    if isinstance(target, LoudnessTarget):
        base: LoudnessTarget | None = target
    elif target is None:
        base = None
    elif str(target) in TARGETS:
        base = TARGETS[str(target)]
    else:
        raise ParameterError(f"unknown loudness target {target!r}; choose one of {', '.join(TARGETS)}")
    if lufs is not None:
        ceiling = ceiling_dbtp if ceiling_dbtp is not None else (base.ceiling_dbtp if base else -1.0)
        result = LoudnessTarget("custom", float(lufs), float(ceiling))
    else:
        result = base or TARGETS["streaming"]
        if ceiling_dbtp is not None:
            result = replace(result, ceiling_dbtp=float(ceiling_dbtp))
    lo, hi = LUFS_RANGE
    if not (math.isfinite(result.lufs) and lo <= result.lufs <= hi):
        raise ParameterError(f"loudness target {result.lufs} LUFS is outside {lo:g}..{hi:g} LUFS")
    lo, hi = CEILING_RANGE_DBTP
    if not (math.isfinite(result.ceiling_dbtp) and lo <= result.ceiling_dbtp <= hi):
        raise ParameterError(f"true-peak ceiling {result.ceiling_dbtp} dBTP is outside {lo:g}..{hi:g} dBTP")
    return result


@dataclass(frozen=True)
class MasterSettings:
    """How hard mastering may work (units in the names).

    ``max_makeup_db`` caps the gain added to quiet input; ``max_limiting_db`` caps the limiter's
    gain reduction (a target that needs more is not reached, with a warning); the limiter's
    ``lookahead_ms`` (its attack) and ``release_ms``; ``aim_lu`` is the tolerance the iteration
    aims at (tighter than the promised 0.5 LU, so that other meters agree); the limiter holds the
    true peak ``safety_margin_db`` under the ceiling (meters with other interpolation filters read
    a few hundredths of a dB apart on bright, limited material); DC above
    ``dc_threshold`` (linear, -60 dBFS) is removed; ``clip_run`` identical full-scale samples in a
    row count as clipping.
    """

    max_makeup_db: float = 30.0
    max_limiting_db: float = 6.0
    lookahead_ms: float = 5.0
    release_ms: float = 100.0
    aim_lu: float = 0.1
    safety_margin_db: float = 0.15
    max_iterations: int = 10
    dc_threshold: float = 1e-3
    clip_run: int = 4


class _Messages:
    """Warnings (something the musician should act on) and notes (what was done), also logged."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning(text)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)


# ---------------------------------------------------------------------------------------------
# stage 1: checks


@dataclass(frozen=True)
class Clipping:
    """Runs of identical full-scale samples: how many runs, the longest (samples), samples in runs."""

    runs: int
    longest: int
    samples: int


def detect_clipping(audio: np.ndarray, min_run: int = 4, level: float = 0.999) -> Clipping:
    """Find clipping: runs of at least ``min_run`` consecutive identical samples with ``|x| >= level``.

    ``level`` is linear (0.999 = -0.009 dBFS). Identical values are what a clipper leaves; an
    unclipped waveform passing near full scale changes from sample to sample.
    """
    x = np.atleast_2d(np.asarray(audio))
    runs = longest = samples = 0
    for ch in x:
        loud = np.flatnonzero((ch >= level) | (ch <= -level))  # few: only these can be clipped
        loud = loud[loud > 0]
        same = loud[ch[loud] == ch[loud - 1]]  # sample i full scale and equal to sample i - 1
        if not same.size:
            continue
        breaks = np.flatnonzero(np.diff(same) != 1)  # consecutive i make one run of len + 1 samples
        lengths = np.diff(np.concatenate(([0], breaks + 1, [same.size]))) + 1
        lengths = lengths[lengths >= min_run]
        runs += int(lengths.size)
        samples += int(lengths.sum())
        longest = max(longest, int(lengths.max()) if lengths.size else 0)
    return Clipping(runs, longest, samples)


def remove_dc(audio: np.ndarray, sample_rate: float, cutoff_hz: float = 5.0) -> np.ndarray:
    """Remove DC: subtract each channel's mean, then a zero-phase 2nd-order Butterworth high-pass at ``cutoff_hz``.

    Zero-phase (forward-backward) so transients keep their shape; only content below about 10 Hz
    changes. Returns float64 (`filtfilt_inplace`: scipy's ``sosfiltfilt``, computed in place).
    """
    x = np.array(np.atleast_2d(audio), dtype=np.float64)
    x -= x.mean(axis=1, keepdims=True)
    if x.shape[1] <= 30:
        return x
    return filtfilt_inplace(butter(2, cutoff_hz, btype="highpass", fs=sample_rate, output="sos"), x)


def filtfilt_inplace(sos: np.ndarray, x: np.ndarray, block: int = 1 << 15) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=1)`` (default odd padding), written over float64 ``x``.

    The same numbers (the same recursions on the same values, with the state carried from block to
    block), but ``block`` samples at a time in place instead of several full-length copies (for a
    3-minute song the fresh memory costs more than the filtering), and a stereo pair as one complex
    signal (`pack_pair`). ``x`` is ``(channels, samples)`` with more samples than the padding
    (``3 (2 sections + 1)``). Returns ``x``.
    """
    sections = sos.shape[0]
    pad = 3 * (2 * sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    n = x.shape[1]
    if n <= pad:
        raise ValueError(f"filtfilt_inplace: {n} samples, need more than {pad}")
    if x.shape[0] == 2:  # the pair as one complex signal; the state is then (sections, 2) complex
        pack, unpack, zi = pack_pair, (lambda z: (z.real, z.imag)), sosfilt_zi(sos)
    else:
        pack, unpack, zi = (lambda b: b), (lambda y: y), sosfilt_zi(sos)[:, None, :]

    def run(signal: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Filter along the last axis from ``state``, by default scipy's steady state for the first sample."""
        if state is None:
            state = zi * (signal[..., :1] if signal.ndim == 2 else signal[0])
        return sosfilt(sos, signal, axis=-1, zi=state)

    right = pack(2.0 * x[:, -1:] - x[:, -2 : -pad - 2 : -1])  # scipy's odd extension at both ends
    _, z = run(pack(2.0 * x[:, :1] - x[:, pad:0:-1]))
    for start in range(0, n, block):
        y, z = run(pack(x[:, start : start + block]), z)
        x[:, start : start + block] = unpack(y)
    tail, _ = run(right, z)
    _, z = run(tail[..., ::-1])
    for stop in range(n, 0, -block):
        start = max(0, stop - block)
        y, z = run(pack(x[:, start:stop][:, ::-1]), z)
        x[:, start:stop] = unpack(y[..., ::-1])
    return x


# ---------------------------------------------------------------------------------------------
# stage 3: true-peak limiter and the loudness loop


def _trailing_min(x: np.ndarray, length: int) -> np.ndarray:
    """out[i] = min(x[i - length + 1 .. i]) with x before the start taken as 1 (no reduction)."""
    ext = np.concatenate((np.ones(length - 1), x))
    full = minimum_filter1d(ext, size=length, origin=(length - 1) // 2, mode="nearest")
    return full[length - 1 :]


def _trailing_mean(x: np.ndarray, length: int) -> np.ndarray:
    """out[i] = mean(x[i - length + 1 .. i]) with x before the start taken as 1."""
    cs = np.concatenate(([0.0], np.cumsum(np.concatenate((np.ones(length - 1), x)))))
    return (cs[length:] - cs[:-length]) / length


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``starts[k] .. starts[k] + lengths[k] - 1`` for every ``k``, concatenated (int64)."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if ends.size else 0) + np.repeat(starts - (ends - lengths), lengths)


def lookahead_gain(peak: np.ndarray, ceiling: float, lookahead: int, release_coeff: float) -> np.ndarray:
    """Gain (linear, ``(samples,)``) of the look-ahead limiter for a peak envelope, aligned with the audio.

    The gain law of `plugin_bridge.backends.dsp.dynamics.Limiter` (see its module docstring):
    ``r = min(1, ceiling / peak)``, a trailing minimum over ``lookahead`` samples, a trailing mean
    over ``lookahead`` samples, and the instant-attack one-pole release (its `release_smoother`
    kernel). The limiter delays the audio by ``lookahead - 1`` samples; offline the gain is
    advanced instead, so ``gain[n] * peak[n] <= ceiling`` for every ``n`` with no latency.

    Only the stretches where ``r < 1`` are smoothed: the minimum and mean of sample ``i`` see ``r``
    over ``i - 2 (lookahead - 1) .. i``, so elsewhere they are exactly 1. Stretches of peaks over the
    ceiling closer than that are joined; each is smoothed with the ones before and after it that
    the signal has there, all in one compact array (the whole signal when that is no shorter). The
    release runs over the whole signal.
    """
    n, length = peak.shape[0], max(1, int(lookahead))
    h = length - 1
    ceiling = np.float64(ceiling)  # compared and divided in float64, also for a float32 envelope
    over = np.flatnonzero(peak > ceiling)
    if over.size == 0:
        return np.ones(n)
    reach = 2 * h  # r[i - reach .. i] decides the smoothed gain at i
    split = np.flatnonzero(np.diff(over) > reach) + 1
    starts = over[np.concatenate(([0], split))]
    lengths = over[np.concatenate((split - 1, [over.size - 1]))] + 1 - starts
    if int(lengths.sum()) + reach * starts.size > n:  # dense: one stretch, the whole signal
        starts, lengths = np.zeros(1, np.int64), np.full(1, n, np.int64)
    offsets = reach * np.arange(1, starts.size + 1) + np.cumsum(lengths) - lengths  # in `compact`
    compact = np.ones(int(lengths.sum()) + reach * (starts.size + 1))
    compact[_ranges(offsets, lengths)] = ceiling / np.maximum(peak[_ranges(starts, lengths)], ceiling)
    smooth = np.minimum(_trailing_mean(_trailing_min(compact, length), length), 1.0)
    s = np.ones(n + h)  # the smoothed target gain, h samples past the end (no peaks there)
    span = np.minimum(lengths + reach, n + h - starts)  # each stretch and the reach after it
    s[_ranges(starts, span)] = smooth[_ranges(offsets, span)]
    g, _ = release_smoother(s, 1.0, release_coeff)
    return g[h:]


def limiter_gain(
    envelope: np.ndarray,
    sample_rate: float,
    ceiling_dbtp: float,
    gain_db: float = 0.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
) -> tuple[np.ndarray, float]:
    """Total gain (linear, ``(samples,)``: ``gain_db`` times the limiter's) under the ceiling.

    ``envelope`` is the input's true-peak envelope (`true_peak_envelope`, linear); the limiter
    (`lookahead_gain`, look-ahead ``lookahead_ms`` and release ``release_ms`` in ms) acts where
    the envelope raised by ``gain_db`` exceeds ``ceiling_dbtp``. Returns the gain curve and the
    largest gain reduction (dB, >= 0).
    """
    g0 = 10.0 ** (gain_db / 20.0)
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    lookahead = max(1, int(round(lookahead_ms * sample_rate / 1000.0)))
    coeff = 1.0 - math.exp(-1.0 / (release_ms * sample_rate / 1000.0))
    g = lookahead_gain(envelope, ceiling / g0, lookahead, coeff)  # r = min(1, ceiling / (g0 env))
    reduction = max(0.0, -20.0 * math.log10(max(float(g.min()), 1e-12)))
    g *= g0
    return g, reduction


def true_peak_limit(
    audio: np.ndarray,
    sample_rate: float,
    ceiling_dbtp: float,
    gain_db: float = 0.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
    envelope: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Apply ``gain_db`` then limit the true peak (8x oversampled) to ``ceiling_dbtp``.

    The gain needed is computed from the oversampled signal's peaks (`true_peak_envelope`: each
    sample's neighbourhood, all channels, stereo-linked), smoothed by the look-ahead limiter's gain
    law (`limiter_gain`) and applied at the base rate. ``envelope`` is the input's envelope if
    already computed (it scales with the gain). Returns the limited audio (float32: the product of
    the float32-rounded audio and gain) and the largest gain reduction (dB, >= 0). The caller
    verifies the true peak: smoothing and the gain's own modulation can leave a few hundredths of a
    dB over.
    """
    x = np.atleast_2d(np.asarray(audio))
    env = true_peak_envelope(x, dtype=np.float32) if envelope is None else envelope
    g, reduction = limiter_gain(env, sample_rate, ceiling_dbtp, gain_db, lookahead_ms, release_ms)
    return np.multiply(x, g, dtype=np.float32), reduction


@dataclass(frozen=True)
class LoudnessStep:
    """What `normalize_loudness` did: gain (dB), loudness reached (LUFS), limiting (dB), what stopped it.

    ``iterations`` counts the gains tried (one limiter gain curve each: the loudness of each is
    predicted, that of the one rendered is measured).
    """

    gain_db: float
    lufs: float
    limiting_db: float
    iterations: int
    capped_by: str | None  # "make-up" | "limiter" | None


def search_gain(
    loudness_at, target_lufs: float, gain_db: float, upper_db: float, tolerance_lu: float, max_steps: int
) -> tuple[float, float, int]:
    """Gain (dB, at most ``upper_db``) at which ``loudness_at(gain)`` (LUFS) is near the target.

    Near: within ``tolerance_lu``. Starts at ``gain_db`` and corrects it by the loudness error
    divided by the slope seen so far (the secant, within 0.05..1: limiting makes 1 dB of gain worth
    less than 1 LU); stops at ``upper_db`` when even that is too quiet, or after ``max_steps``
    tries. Returns the last gain tried, its loudness and the number of tries.
    """
    history: list[tuple[float, float]] = []
    gain = gain_db
    for _ in range(max(1, max_steps)):
        lufs = loudness_at(gain)
        history.append((gain, lufs))
        error = target_lufs - lufs
        if abs(error) <= tolerance_lu or (error > 0 and gain >= upper_db - 1e-9) or len(history) == max_steps:
            break
        slope = 1.0
        if len(history) >= 2:
            (g0, l0), (g1, l1) = history[-2], history[-1]
            if abs(g1 - g0) > 1e-6 and math.isfinite(l1 - l0):
                slope = min(1.0, max(0.05, (l1 - l0) / (g1 - g0)))
        gain = min(gain + error / slope, upper_db)
    return history[-1][0], history[-1][1], len(history)


class _GainCurves:
    """`limiter_gain` curves for one input, by gain (dB), remembering the last one (float64, linear)."""

    def __init__(
        self, envelope: np.ndarray, sample_rate: float, ceiling_dbtp: float, settings: MasterSettings
    ):
        self.args = (envelope, sample_rate, ceiling_dbtp)
        self.settings = settings
        self.last: tuple[float, np.ndarray, float] | None = None
        self.count = 0

    def __call__(self, gain_db: float) -> tuple[np.ndarray, float]:
        if self.last is None or self.last[0] != gain_db:
            self.last = None  # free the previous curve before making the next
            env, sr, ceiling = self.args
            g, reduction = limiter_gain(
                env, sr, ceiling, gain_db, self.settings.lookahead_ms, self.settings.release_ms
            )
            self.last = (gain_db, g, reduction)
            self.count += 1
        return self.last[1], self.last[2]


def predicted_loudness(power: np.ndarray, gain: np.ndarray, sample_rate: float, scratch: np.ndarray) -> float:
    """Loudness (LUFS) of the input times ``gain``, predicted from the input's K-weighted ``power``.

    ``power`` is `k_weighted_power` of the input (per sample), ``gain`` the linear gain curve; the
    prediction is the loudness of ``power * gain**2`` (`loudness_from_power`), i.e. the gain moved
    after the K-weighting filters. The limiter's gain changes slowly against them: on music the
    prediction is within 0.005 LU of the measurement at 6 dB of limiting (0.015 LU at 11 dB).
    ``scratch`` is a float32 work array of the signal's length.
    """
    np.multiply(gain, gain, out=scratch, casting="same_kind")
    scratch *= power
    return loudness_from_power(scratch, sample_rate)


def normalize_loudness(
    audio: np.ndarray,
    sample_rate: float,
    target: LoudnessTarget,
    input_lufs: float,
    settings: MasterSettings = MasterSettings(),
    envelope: np.ndarray | None = None,
    ceiling_margin_db: float = 0.0,
    power: np.ndarray | None = None,
) -> tuple[np.ndarray, LoudnessStep]:
    """Gain + true-peak limiter, iterated until the loudness is within ``settings.aim_lu`` of the target.

    ``input_lufs`` is the input's loudness (LUFS, finite); ``envelope`` its true-peak envelope and
    ``power`` its K-weighted power (`k_weighted_power`), computed when not given. The gain is
    capped at ``settings.max_makeup_db`` and at the gain that makes the limiter reduce by
    ``settings.max_limiting_db`` at the loudest peak; the limiter's ceiling is the target's minus
    ``ceiling_margin_db``.

    The gain is searched (`search_gain`) on the predicted loudness (`predicted_loudness`: no
    filtering, no rendering) to half the aim; the output is then rendered and measured
    (BS.1770-4). If the measurement misses the aim, the prediction is corrected by the difference
    seen and the search goes on, up to ``settings.max_iterations`` renders. Returns float32 audio.
    """
    x = np.atleast_2d(np.asarray(audio))
    env = true_peak_envelope(x, dtype=np.float32) if envelope is None else envelope
    if power is None:
        power = k_weighted_power(x, sample_rate, dtype=np.float32)
    ceiling = target.ceiling_dbtp - ceiling_margin_db
    tp_db = amplitude_to_db(float(env.max()))
    limit_cap = ceiling + settings.max_limiting_db - tp_db
    upper = min(settings.max_makeup_db, limit_cap)
    curves = _GainCurves(env, sample_rate, ceiling, settings)
    scratch = np.empty(x.shape[1], dtype=np.float32)
    offset = 0.0  # measured minus predicted loudness (LU) at the last render

    def loudness_at(gain_db: float) -> float:
        return predicted_loudness(power, curves(gain_db)[0], sample_rate, scratch) + offset

    gain = min(target.lufs - input_lufs, upper)
    y, lufs, reduction = None, input_lufs, 0.0
    for _ in range(max(1, settings.max_iterations)):
        gain, predicted, _ = search_gain(
            loudness_at, target.lufs, gain, upper, settings.aim_lu / 2, settings.max_iterations
        )
        g, reduction = curves(gain)
        y = None  # free the previous render before making the next
        y = np.multiply(x, g, dtype=np.float32)
        lufs = loudness_from_power(k_weighted_power(y, sample_rate, dtype=np.float32), sample_rate)
        error = target.lufs - lufs
        if abs(error) <= settings.aim_lu or (error > 0 and gain >= upper - 1e-9):
            break
        if math.isfinite(lufs) and math.isfinite(predicted):
            offset += lufs - predicted
        else:  # below the gate: only more gain can help
            gain = upper
    capped = None
    if target.lufs - lufs > settings.aim_lu:
        capped = "make-up" if upper == settings.max_makeup_db else "limiter"
    return y, LoudnessStep(gain, lufs, reduction, curves.count, capped)


# ---------------------------------------------------------------------------------------------
# stage 2: reference matching


@dataclass(frozen=True)
class MatchReport:
    """What `match_reference` did, with the spectral distance (dB) to the reference before and after."""

    reference_lufs: float
    gain_db: float
    width_input: float
    width_reference: float
    width_output: float
    side_gain: float
    eq_centers_hz: tuple[float, ...]
    eq_gain_db: tuple[float, ...]
    distance_before_db: float
    distance_after_db: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (rounded; non-finite values become None)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 3) if math.isfinite(v) else None
        d["eq_centers_hz"] = [round(f, 1) for f in self.eq_centers_hz]
        d["eq_gain_db"] = [round(g, 2) for g in self.eq_gain_db]
        d["notes"] = list(self.notes)
        return d


def _fir_length(sample_rate: float) -> int:
    """Odd FIR length (samples) of about 0.37 s: ~5 Hz resolution, enough for 1/3 octave at 20 Hz."""
    return 2 ** int(math.ceil(math.log2(0.37 * sample_rate))) + 1


def linear_phase_fir(grid_hz: np.ndarray, gain_db: np.ndarray, sample_rate: float) -> np.ndarray:
    """A linear-phase (symmetric, odd-length) FIR whose magnitude follows ``gain_db`` at ``grid_hz``.

    Frequency sampling: the curve interpolated in log frequency onto the FFT grid (held flat beyond
    its ends), inverse FFT to a zero-phase response, centred and Hann-windowed. Delay: ``(len - 1) / 2``.
    """
    numtaps = _fir_length(sample_rate)
    nfft = numtaps - 1
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    db = np.interp(np.log(np.maximum(f, 1.0)), np.log(grid_hz), gain_db)
    h = np.fft.irfft(10.0 ** (db / 20.0), nfft)
    h = np.roll(h, nfft // 2)
    h = np.append(h, h[0]) * hann(numtaps, sym=True)
    return h


def apply_fir(audio: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Filter every channel by a linear-phase FIR ``h`` with its delay removed (same length out)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    delay = (len(h) - 1) // 2
    y = oaconvolve(x, h[None, :], mode="full", axes=1)
    return y[:, delay : delay + x.shape[1]]


def match_curve_db(
    audio: SpectralProfile, reference: SpectralProfile, max_eq_db: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """The matching EQ curve ``(grid_hz, gain_db)``: reference minus input, 1/3-octave smoothed, loudness-normalised.

    Both average spectra (`spectral_profile`) are smoothed over 1/3 octave on a 1/12-octave grid,
    taken relative to their integrated loudness, and subtracted; the difference is limited to
    +-``max_eq_db``, held flat above 0.45 x the lower sample rate (or 20 kHz), and faded to 0 dB
    from 20 Hz down to 10 Hz.
    """
    top = min(20000.0, 0.45 * min(audio.sample_rate, reference.sample_rate))
    grid = 20.0 * 2.0 ** (np.arange(0, 12 * math.log2(top / 20.0) + 1) / 12.0)
    diff = (octave_smoothed_db(reference.freqs_hz, reference.psd, grid) - reference.lufs) - (
        octave_smoothed_db(audio.freqs_hz, audio.psd, grid) - audio.lufs
    )
    diff = np.clip(diff, -max_eq_db, max_eq_db)
    return np.concatenate(([10.0], grid)), np.concatenate(([0.0], diff))


def match_reference(
    audio: np.ndarray,
    sample_rate: int,
    reference: np.ndarray,
    reference_sample_rate: int,
    max_eq_db: float = 12.0,
    max_side_gain: float = 2.0,
) -> tuple[np.ndarray, MatchReport]:
    """Match ``audio`` to a ``reference`` track: stereo width, average spectrum, loudness.

    1. width: the side channel is scaled by ``sqrt(width_ref / width_in)`` (width = side/mid
       energy), at most ``max_side_gain``; a mono or nearly mono input (side 40 dB below mid) is
       not widened, a mono reference makes the output mono;
    2. spectrum: the loudness-normalised, 1/3-octave-smoothed difference of the average spectra
       (`match_curve_db`, within +-``max_eq_db`` dB) applied as a linear-phase FIR (no phase
       distortion, no latency in the result);
    3. loudness: a gain to the reference's integrated loudness (peaks may exceed full scale; the
       mastering stage limits them).

    Both signals are ``(channels, samples)``; the sample rates (Hz) may differ. Returns float64
    audio of the input's shape and a `MatchReport` with the spectral distance (dB, see
    `plugin_bridge.analysis`) to the reference before and after.
    """
    x = check_audio_array(audio, sample_rate).astype(np.float64)
    ref = check_audio_array(reference, reference_sample_rate, "reference").astype(np.float64)
    notes: list[str] = []
    ref_profile = spectral_profile(ref, reference_sample_rate)
    if not math.isfinite(ref_profile.lufs):
        raise ParameterError("reference: is silent (no loudness to match)")
    in_profile = spectral_profile(x, sample_rate)
    before = profile_distance_db(in_profile, ref_profile)
    w_in, w_ref = stereo_width(x), stereo_width(ref)
    side_gain = 1.0
    if x.shape[0] == 1:
        notes.append("mono input: stereo width left as is")
    elif ref.shape[0] == 1 or w_ref == 0.0:
        side_gain = 0.0
        notes.append("mono reference: the output is made mono")
    elif w_in < 1e-4:
        notes.append("the input is (nearly) mono: width not increased")
    else:
        side_gain = min(max_side_gain, math.sqrt(w_ref / w_in))
        if side_gain == max_side_gain:
            notes.append(f"width increase limited to side x{max_side_gain:g}")
    if side_gain != 1.0:
        mid, side = mid_side(x)
        x = np.stack([mid + side_gain * side, mid - side_gain * side])
    work = spectral_profile(x, sample_rate) if side_gain != 1.0 else in_profile
    lufs = work.lufs
    if math.isfinite(lufs):
        grid, curve = match_curve_db(work, ref_profile, max_eq_db)
        x = apply_fir(x, linear_phase_fir(grid, curve, sample_rate))
        lufs = integrated_loudness(x, sample_rate)
        centers = ref_profile.centers_hz[
            (ref_profile.centers_hz >= 20) & (ref_profile.centers_hz <= grid[-1])
        ]
        eq = np.interp(np.log(centers), np.log(grid), curve)
    else:
        notes.append("silent input: no EQ or loudness matching")
        centers, eq = np.zeros(0), np.zeros(0)
    gain_db = ref_profile.lufs - lufs if math.isfinite(lufs) else 0.0
    x *= 10.0 ** (gain_db / 20.0)
    after = profile_distance_db(spectral_profile(x, sample_rate), ref_profile)
    report = MatchReport(
        reference_lufs=ref_profile.lufs,
        gain_db=gain_db,
        width_input=w_in,
        width_reference=w_ref,
        width_output=stereo_width(x),
        side_gain=side_gain,
        eq_centers_hz=tuple(float(c) for c in centers),
        eq_gain_db=tuple(float(g) for g in eq),
        distance_before_db=before,
        distance_after_db=after,
        notes=tuple(notes),
    )
    return x, report


# ---------------------------------------------------------------------------------------------
# the whole master


@dataclass(frozen=True)
class MasterResult:
    """What mastering did and measured (loudness in LUFS, peaks in dBTP, gains in dB)."""

    target: LoudnessTarget
    sample_rate: int
    channels: int
    frames: int
    input_lufs: float
    input_true_peak_dbtp: float
    output_lufs: float
    output_true_peak_dbtp: float
    gain_db: float
    limiting_db: float
    iterations: int
    reached: bool
    seconds: float
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reference: MatchReport | None = None
    output: str | None = None

    @property
    def realtime_factor(self) -> float:
        """Audio seconds mastered per wall-clock second."""
        return (self.frames / self.sample_rate) / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        """JSON-ready summary (rounded; non-finite values become None)."""

        def num(v: float, nd: int = 2) -> float | None:
            return round(float(v), nd) if math.isfinite(v) else None

        return {
            "output": self.output,
            "target": self.target.to_dict(),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration_s": round(self.frames / self.sample_rate, 3),
            "input_lufs": num(self.input_lufs),
            "input_true_peak_dbtp": num(self.input_true_peak_dbtp),
            "output_lufs": num(self.output_lufs),
            "output_true_peak_dbtp": num(self.output_true_peak_dbtp),
            "gain_db": num(self.gain_db),
            "limiting_db": num(self.limiting_db),
            "iterations": self.iterations,
            "reached": self.reached,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "reference": self.reference.to_dict() if self.reference else None,
        }


def _check_input(x: np.ndarray, sample_rate: int, settings: MasterSettings, msg: _Messages) -> np.ndarray:
    """Stage 1: clipping, DC offset, mono and short-file notes. Returns float32 audio (DC removed).

    float32 is what the master is made of: the limiter multiplies the float32-rounded audio by the
    float32-rounded gain, so holding the input in float64 would change nothing but the memory.
    """
    clip = detect_clipping(x, settings.clip_run)
    if clip.runs:
        msg.warn(
            f"clipping detected: {clip.runs} runs of {settings.clip_run} or more identical full-scale "
            f"samples (longest {clip.longest}); the mix was clipped before mastering, which cannot undo it"
        )
    dc = np.abs(x.mean(axis=1))  # float32, pairwise: accurate to ~1e-7 of full scale
    if dc.max() >= settings.dc_threshold:
        msg.warn(f"DC offset of {100 * dc.max():.2f}% of full scale removed (high-pass at 5 Hz, zero phase)")
        x = remove_dc(x, sample_rate).astype(np.float32)
    if x.shape[0] == 1:
        msg.note("mono: measured as one channel (BS.1770, not dual mono) and written as mono")
    if is_shorter_than_block(x.shape[1], sample_rate):
        msg.warn(
            f"the audio is {1000 * x.shape[1] / sample_rate:.3g} ms long, shorter than one 400 ms "
            "loudness block: its loudness is measured ungated over the whole file"
        )
    return x


def master_array(
    audio: np.ndarray,
    sample_rate: int,
    target: str | LoudnessTarget | None = None,
    reference: np.ndarray | None = None,
    reference_sample_rate: int | None = None,
    *,
    lufs: float | None = None,
    ceiling_dbtp: float | None = None,
    settings: MasterSettings | None = None,
) -> tuple[np.ndarray, MasterResult]:
    """Master ``(channels, samples)`` audio at ``sample_rate`` Hz to a loudness target.

    ``target`` is a preset name (streaming, apple, ebu_r128, club) or a `LoudnessTarget`; ``lufs``
    and ``ceiling_dbtp`` make or adjust a custom one (`resolve_target`). With a ``reference``
    (audio at ``reference_sample_rate``, default ``sample_rate``) its width and spectrum are matched
    first (`match_reference`) and, unless a target or ``lufs`` is given, its integrated loudness
    becomes the target (ceiling -1 dBTP or ``ceiling_dbtp``). Returns the master (float32, same
    shape) and a `MasterResult`; warnings are also logged.
    """
    t0 = time.perf_counter()
    settings = settings or MasterSettings()
    x = check_audio_array(audio, sample_rate)
    msg = _Messages()
    match = None
    if reference is not None and target is None and lufs is None:
        ref_sr = reference_sample_rate or sample_rate
        ref_lufs = integrated_loudness(check_audio_array(reference, ref_sr, "reference"), ref_sr)
        if not math.isfinite(ref_lufs):
            raise ParameterError("reference: is silent (no loudness to match)")
        ref_lufs = min(max(ref_lufs, LUFS_RANGE[0]), LUFS_RANGE[1])
        goal = resolve_target(
            LoudnessTarget("reference", round(ref_lufs, 2), -1.0), ceiling_dbtp=ceiling_dbtp
        )
    else:
        goal = resolve_target(target, lufs, ceiling_dbtp)
    x = _check_input(x, sample_rate, settings, msg)
    power = k_weighted_power(x, sample_rate, dtype=np.float32)  # measured once, reused by the gain search
    in_lufs = loudness_from_power(power, sample_rate)
    env = true_peak_envelope(x, dtype=np.float32)
    in_tp = amplitude_to_db(float(env.max()))

    def result(y: np.ndarray, out_lufs: float, out_tp: float, gain: float, lim: float, its: int, ok: bool):
        return y.astype(np.float32, copy=False), MasterResult(
            target=goal,
            sample_rate=int(sample_rate),
            channels=int(y.shape[0]),
            frames=int(y.shape[1]),
            input_lufs=in_lufs,
            input_true_peak_dbtp=in_tp,
            output_lufs=out_lufs,
            output_true_peak_dbtp=out_tp,
            gain_db=gain,
            limiting_db=lim,
            iterations=its,
            reached=ok,
            seconds=time.perf_counter() - t0,
            warnings=tuple(msg.warnings),
            notes=tuple(msg.notes),
            reference=match,
        )

    if not np.any(x):
        msg.warn("the input is digital silence: nothing to master, written unchanged")
        return result(x.copy(), -math.inf, -math.inf, 0.0, 0.0, 0, False)
    if not math.isfinite(in_lufs):
        in_lufs = float(power_to_lufs(np.mean(power, dtype=np.float64)))  # `short_loudness`'s rule
        msg.warn(f"the input is below the -70 LUFS gate: measured ungated at {in_lufs:.1f} LUFS")
    if in_lufs > goal.lufs + LOUDNESS_TOLERANCE_LU:
        msg.note(f"the input is {in_lufs - goal.lufs:.1f} LU louder than the target: turned down")
    work_lufs = in_lufs
    if reference is not None:
        x, match = match_reference(x, sample_rate, reference, reference_sample_rate or sample_rate)
        for n in match.notes:
            msg.note(n)
        x = x.astype(np.float32)
        power = k_weighted_power(x, sample_rate, dtype=np.float32)
        work_lufs = loudness_from_power(power, sample_rate)
        if not math.isfinite(work_lufs):
            work_lufs = float(power_to_lufs(np.mean(power, dtype=np.float64)))
        env = true_peak_envelope(x, dtype=np.float32)
    margin = settings.safety_margin_db
    for _ in range(4):
        y, step = normalize_loudness(x, sample_rate, goal, work_lufs, settings, env, margin, power)
        out_tp = amplitude_to_db(true_peak(y))
        if out_tp <= goal.ceiling_dbtp:
            break
        margin += out_tp - goal.ceiling_dbtp + 0.02
        msg.note(f"true peak {out_tp:.2f} dBTP over the ceiling: limiting again {margin:.2f} dB lower")
    if step.capped_by == "make-up":
        msg.warn(
            f"the input is very quiet: make-up gain capped at +{settings.max_makeup_db:g} dB, "
            f"so the master is {step.lufs:.1f} LUFS instead of {goal.lufs:g}"
        )
    elif step.capped_by == "limiter":
        msg.warn(
            f"reaching {goal.lufs:g} LUFS would need more than {settings.max_limiting_db:g} dB of peak "
            f"limiting (audible distortion): limiting capped there, the master is {step.lufs:.1f} LUFS"
        )
    ok = abs(step.lufs - goal.lufs) <= LOUDNESS_TOLERANCE_LU and out_tp <= goal.ceiling_dbtp
    return result(y, step.lufs, out_tp, step.gain_db, step.limiting_db, step.iterations, ok)


def master_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    target: str | LoudnessTarget | None = None,
    reference: str | os.PathLike | None = None,
    *,
    lufs: float | None = None,
    ceiling_dbtp: float | None = None,
    subtype: str | None = None,
    downmix: bool = False,
    settings: MasterSettings | None = None,
) -> MasterResult:
    """Master an audio file to ``output_path`` (.wav 32-bit float or .flac 24-bit unless ``subtype``).

    Same targets and reference rule as `master_array`; ``reference`` is an audio file. The output
    is written atomically and never over the input or the reference (`AudioError`).
    """
    inputs = (input_path,) + ((reference,) if reference is not None else ())
    out = check_output_path(output_path, inputs)
    audio, sr = read_audio(input_path, downmix=downmix)
    ref = ref_sr = None
    if reference is not None:
        ref, ref_sr = read_audio(reference, downmix=True)
    y, res = master_array(
        audio, sr, target, ref, ref_sr, lufs=lufs, ceiling_dbtp=ceiling_dbtp, settings=settings
    )
    write_audio(out, y, sr, subtype=subtype)
    return replace(res, output=str(out))
