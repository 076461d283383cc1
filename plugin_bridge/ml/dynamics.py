"""Dynamics: the peak-to-loudness ratio (PLR) of music and the rule that sets the chain's compressor.

Measures (all in dB, of ``(channels, n)`` linear float audio):

- `plr_db`: peak-to-loudness ratio = **sample peak** (dBFS, the largest absolute sample over all
  channels) minus the BS.1770-4 integrated loudness (LUFS, `plugin_bridge.loudness.integrated_loudness`).
  Not the oversampled true peak: it costs ~0.3 s per song, and on 18 packaged songs the 8x true
  peak of the loudest 30 s was a median 0.02 dB above the sample peak (at most 1.3 dB); the corpus
  statistics and the rule use the same measure, so they compare like for like;
- `crest_factor_db`: sample peak minus RMS (dBFS, all channels pooled), ungated;
- `excerpt_plr_db`: the PLR of the song's **loudest 30 s** (`loudest_excerpt`; the whole song when it
  is shorter; a mono song measured as dual mono, like the stereo corpus). This is the measure both
  the corpus statistics (``models/dynamics.json``, written by ``render_scripts/dynamics_stats.py``)
  and the rule use, so that the rule can render and measure its result on the excerpt alone (fast)
  and compare it with the corpus like for like.

The rule (`compressor_rule`), for the model card:

    The compressor is set from the song's peak-to-loudness ratio (PLR: sample peak minus BS.1770
    integrated loudness, of the loudest 30 s) against the PLR of the finished music of the training
    corpus (its percentiles p10, p50, p90, in ``models/dynamics.json``). A song at or below the
    corpus' 90th percentile is left alone (ratio 1, threshold 0 dB, make-up 0 dB: within the range
    of finished music; compressing such songs darkened them and moved them away from their
    originals on the blind benchmark). Above it, the target is PLR - (PLR - p90) x intensity, never
    below p90 (so never below p10): at intensity 1 the song is brought to p90, at 0 the compressor
    is bypassed. The setting has a fixed, moderate character: ratio 2.5:1, attack 10 ms, release
    150 ms (JUCE ballistics: time constants of 1.6 ms and 24 ms, fast enough to hold sample peaks,
    slow enough not to follow the waveform); only the threshold is searched, from the top of the
    compressor's envelope down to 12 dB below the excerpt's loudness (or -40 dBFS, the space's
    lowest). Each candidate is rendered with the chain's own compressor
    (`plugin_bridge.backends.dsp.dynamics.Compressor`, what the numpy backend runs) on the loudest
    30 s at the chain's input gain and its PLR measured; the threshold that meets the target within
    0.25 dB is kept. The make-up gain restores the excerpt's loudness (at most the space's 12 dB).
    When no threshold in that range reaches the target (transients too short for the attack, or the
    12 dB limit), the weakest setting within 0.5 dB of the lowest PLR found is kept, and the
    compressor stays bypassed if that lowers the PLR by less than 0.5 dB. A setting whose measured
    PLR falls below p10 is never returned. (If the envelope rises above 0 dBFS at a large input
    gain, the ratio first rises from 1:1 at 0 dBFS before the threshold moves.)

Search: the threshold is found on a *prediction* (`_Excerpt.predict`: the compressor's gain applied
after the K-weighting filters, per 16-sample chunk, like
`plugin_bridge.mastering.loudness_search.predicted_loudness`; the envelope and the K-weighted power
are computed once), walked in eighths of the threshold range and bisected at the first step that
crosses the target (PLR is not monotonic in the threshold: heavy compression lets transients
through the attack and can raise it again); then the setting is rendered and measured, and a miss
corrects the prediction by the error seen and searches again (at most `MAX_RENDERS` renders; one
in nearly every song tried). About 0.15-0.4 s of one core for a 3-minute song.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from ..backends.dsp._kernels import peak_envelope
from ..backends.dsp.dynamics import Compressor, ballistics_coefficient
from ..backends.dsp.filters import sos_filter
from ..chain import default_space
from ..errors import ParameterError
from ..files import write_atomic
from ..loudness import (
    amplitude_to_db,
    block_powers,
    gated_loudness,
    gating_edges,
    integrated_loudness,
    k_weighting_sos,
    power_to_lufs,
    powers_from_segments,
)
from .inference import models_dir

DYNAMICS_FILE = "dynamics.json"
#: Length of the analysed excerpt (s): the loudest part of the song (`loudest_excerpt`).
EXCERPT_S = 30.0
#: Hop (s) of the mean-square curve the loudest excerpt is chosen on.
EXCERPT_HOP_S = 0.1
#: Audio rendered before the excerpt so that the compressor's envelope is settled when it starts (s).
PREROLL_S = 1.0
#: Samples per chunk of the prediction (`_Excerpt`).
CHUNK = 16
#: The fixed compressor character of the rule (see the module docstring).
RATIO = 2.5
ATTACK_MS = 10.0
RELEASE_MS = 150.0
#: The threshold never goes further below the excerpt's loudness than this (dB): with `RATIO`, a
#: steady signal at the loudness is then turned down by at most 0.6 x 12 = 7.2 dB.
DEPTH_DB = 12.0
#: Measured PLR within this of the target ends the search (dB).
TOLERANCE_DB = 0.25
#: Renders (measurements) at most per song; the predictions between them cost far less.
MAX_RENDERS = 4
#: The search path is walked in steps of this (a step of the path is 1/8 of the threshold range)
#: and the first step that crosses the aim is bisected until the prediction is within
#: `PREDICT_TOLERANCE_DB` of it (see `compressor_rule`).
GRID_STEP = 0.125
BISECTION_STEPS = 12
PREDICT_TOLERANCE_DB = 0.05
#: When no setting reaches the target, the weakest one within this of the lowest PLR found is taken.
PLATEAU_DB = 0.5
#: A setting that lowers the PLR by less than this is not worth applying (dB).
MIN_EFFECT_DB = 0.5
PARAMS: tuple[str, ...] = (
    "comp.threshold_db",
    "comp.ratio",
    "comp.attack_ms",
    "comp.release_ms",
    "comp.makeup_db",
)


# ----------------------------------------------------------------------------- measures


def _as_2d(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ParameterError(f"expected (channels, samples) audio, got shape {np.shape(audio)}")
    return x


def sample_peak_db(audio: np.ndarray) -> float:
    """Largest absolute sample over all channels (dBFS); -inf for digital silence."""
    return amplitude_to_db(float(np.max(np.abs(_as_2d(audio)))))


def plr_db(audio: np.ndarray, sample_rate: float) -> float:
    """Peak-to-loudness ratio (dB): sample peak (dBFS) - BS.1770-4 integrated loudness (LUFS).

    ``audio`` is ``(channels, n)`` (or 1-D) linear float audio. NaN when the audio is silent or
    entirely below the -70 LUFS gate (no PLR to speak of).
    """
    x = _as_2d(audio)
    peak = sample_peak_db(x)
    lufs = integrated_loudness(x, sample_rate)
    return peak - lufs if math.isfinite(peak) and math.isfinite(lufs) else math.nan


def crest_factor_db(audio: np.ndarray) -> float:
    """Crest factor (dB): sample peak over the RMS of all samples of all channels (ungated); NaN if silent."""
    x = _as_2d(audio).astype(np.float64, copy=False)
    ms = float(np.mean(x * x))
    peak = float(np.max(np.abs(x)))
    return 20.0 * math.log10(peak) - 10.0 * math.log10(ms) if ms > 0 else math.nan


class LoudestExcerpt:
    """The loudest ``seconds`` of a song fed block by block (`loudest_excerpt`'s rule).

    ``feed`` takes consecutive ``(channels, m)`` blocks of a ``frames``-sample song at
    ``sample_rate`` Hz and keeps one float64 per `EXCERPT_HOP_S` hop (the channel-summed signal's
    energy), so a song of any length costs a few hundred kB. ``span()`` is ``(start, stop)`` samples.
    """

    def __init__(self, frames: int, sample_rate: float, seconds: float = EXCERPT_S) -> None:
        self.frames = int(frames)
        self.length = int(round(seconds * sample_rate))
        self.hop = max(1, int(round(EXCERPT_HOP_S * sample_rate)))
        self.hops = self.frames // self.hop
        self.energy = np.zeros(self.hops if self.frames > self.length else 0)
        self.position = 0
        self._carry = np.zeros(0, dtype=np.float32)

    def feed(self, block: np.ndarray) -> None:
        """Take the next ``(channels, m)`` block."""
        if not self.energy.size:
            return
        x = _as_2d(block)
        end = min(x.shape[1], self.hops * self.hop - self.position)  # the tail after the last hop is unused
        self.position += x.shape[1]
        if end <= 0:
            return
        mono = np.concatenate((self._carry, x[:, :end].sum(axis=0, dtype=np.float32)))
        whole = mono.shape[0] // self.hop
        first = (self.position - x.shape[1] - self._carry.shape[0]) // self.hop
        rows = mono[: whole * self.hop].reshape(whole, self.hop)
        self.energy[first : first + whole] = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
        self._carry = mono[whole * self.hop :]

    def span(self) -> tuple[int, int]:
        """``(start, stop)`` samples of the loudest excerpt (the whole of a song no longer than it)."""
        if self.frames <= self.length:
            return 0, self.frames
        per = max(1, self.length // self.hop)
        cs = np.concatenate(([0.0], np.cumsum(self.energy)))
        window = cs[per:] - cs[:-per]
        start = min(int(np.argmax(window)) * self.hop, self.frames - self.length)
        return start, start + self.length


def loudest_excerpt(audio: np.ndarray, sample_rate: float, seconds: float = EXCERPT_S) -> tuple[int, int]:
    """``(start, stop)`` samples of the loudest ``seconds`` of ``audio`` (the whole of a shorter signal).

    Loudest: the largest mean square of the channel-summed signal over the window (unweighted, on a
    `EXCERPT_HOP_S` grid: a cheap stand-in for loudness that only has to pick the dense part).
    """
    x = _as_2d(audio)
    scan = LoudestExcerpt(x.shape[1], sample_rate, seconds)
    scan.feed(x)
    return scan.span()


def _dual_mono(x: np.ndarray) -> np.ndarray:
    """A mono ``(1, n)`` signal as two identical channels (others as they are).

    BS.1770 measures a one-channel file as one channel, 3 dB quieter than the same music on two
    channels; the corpus is stereo, so the rule and the statistics measure mono as dual mono.
    """
    return np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x


def excerpt_plr_db(audio: np.ndarray, sample_rate: float, seconds: float = EXCERPT_S) -> float:
    """`plr_db` of the loudest ``seconds`` (`loudest_excerpt`): the measure of the stats and the rule."""
    x = _as_2d(audio)
    start, stop = loudest_excerpt(x, sample_rate, seconds)
    return plr_db(_dual_mono(x[:, start:stop]), sample_rate)


# ----------------------------------------------------------------------------- corpus statistics


@dataclass(frozen=True)
class DynamicsStats:
    """PLR (dB, `excerpt_plr_db`) of the corpus songs: percentiles 10, 50, 90, song count, provenance."""

    p10: float
    p50: float
    p90: float
    count: int
    source: str = ""
    measure: str = "sample peak (dBFS) - BS.1770-4 integrated loudness (LUFS) of the loudest 30 s"
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready form (``extra``: per-source figures and other information, kept as is)."""
        d = {
            "p10": round(float(self.p10), 3),
            "p50": round(float(self.p50), 3),
            "p90": round(float(self.p90), 3),
            "count": int(self.count),
            "source": self.source,
            "measure": self.measure,
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = DYNAMICS_FILE) -> DynamicsStats:
        """Parse `to_dict` output; a missing or non-numeric field, or unordered percentiles, is a
        `ParameterError` (one line, naming ``where``)."""
        if not isinstance(d, Mapping):
            raise ParameterError(f"{where}: malformed dynamics statistics (expected a JSON object)")
        try:
            p10, p50, p90 = (float(d[k]) for k in ("p10", "p50", "p90"))
            count = int(d["count"])
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(
                f"{where}: malformed dynamics statistics (needs numbers p10, p50, p90 and count; "
                f"{type(e).__name__}: {e})"
            ) from None
        if not all(map(math.isfinite, (p10, p50, p90))) or not p10 <= p50 <= p90 or count < 1:
            raise ParameterError(
                f"{where}: malformed dynamics statistics (need finite p10 <= p50 <= p90 and count >= 1; "
                f"got {p10}, {p50}, {p90}, count {count})"
            )
        known = {"p10", "p50", "p90", "count", "source", "measure"}
        extra = {k: v for k, v in d.items() if k not in known}
        kw = {"measure": str(d["measure"])} if "measure" in d else {}
        return cls(p10, p50, p90, count, str(d.get("source", "")), extra=extra, **kw)

    @classmethod
    def from_values(cls, plrs, source: str = "", extra: Mapping | None = None) -> DynamicsStats:
        """Percentiles of a sequence of PLRs (dB; non-finite values are left out)."""
        v = np.asarray([p for p in plrs if math.isfinite(p)], dtype=np.float64)
        if v.size == 0:
            raise ParameterError("no finite PLR to make dynamics statistics from")
        p10, p50, p90 = np.percentile(v, [10, 50, 90])
        return cls(float(p10), float(p50), float(p90), int(v.size), source, extra=dict(extra or {}))

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically)."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def load_dynamics(folder: str | os.PathLike | None = None) -> DynamicsStats:
    """The `DynamicsStats` in ``folder``/dynamics.json (default: the shipped models folder)."""
    path = Path(folder or models_dir()) / DYNAMICS_FILE
    if not path.is_file():
        raise ParameterError(f"{path}: no dynamics statistics (render_scripts/dynamics_stats.py writes it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParameterError(f"{path}: malformed dynamics statistics (not readable JSON: {e})") from None
    return DynamicsStats.from_dict(data, str(path))


# ----------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class CompressorChoice:
    """The compressor setting the rule chose and what it measured.

    ``values``: the five ``comp.*`` parameters in real units; ``plr_before`` / ``plr_after``: the
    measured PLR (dB, of the loudest 30 s at the input gain, `excerpt_plr_db`) without and with this
    setting (NaN for silence); ``target``: the PLR aimed at (``plr_before`` when bypassed);
    ``reason``: one line saying why.
    """

    values: dict[str, float]
    plr_before: float
    plr_after: float
    target: float
    reason: str
    renders: int = 0

    @property
    def bypassed(self) -> bool:
        """True when the setting leaves the audio unchanged (ratio 1, make-up 0 dB)."""
        return self.values["comp.ratio"] == 1.0 and self.values["comp.makeup_db"] == 0.0

    def to_dict(self) -> dict:
        """JSON-ready form (rounded for reading)."""
        return {
            "values": {k: round(float(v), 3) for k, v in self.values.items()},
            "plr_before": round(float(self.plr_before), 3),
            "plr_after": round(float(self.plr_after), 3),
            "target": round(float(self.target), 3),
            "reason": self.reason,
        }


def bypass_values() -> dict[str, float]:
    """The compressor left alone: ratio 1, threshold 0 dB, make-up 0 dB (attack/release at the rule's)."""
    return {
        "comp.threshold_db": 0.0,
        "comp.ratio": 1.0,
        "comp.attack_ms": ATTACK_MS,
        "comp.release_ms": RELEASE_MS,
        "comp.makeup_db": 0.0,
    }


@lru_cache(maxsize=1)
def _ranges() -> dict[str, tuple[float, float]]:
    """The ``comp.*`` ranges of the chain's space (read once: `default_space` parses the YAML)."""
    space = default_space()
    return {n: (space.spec(n).min, space.spec(n).max) for n in PARAMS}


class _Excerpt:
    """The analysed excerpt at the input gain: what the prediction needs, computed once.

    ``x`` is ``(channels, m)`` float64 including ``offset`` samples of pre-roll; every measure is
    of ``x[:, offset:]``. The prediction works on chunks of `CHUNK` samples: per chunk and channel
    the K-weighted energy, the mean compressor envelope (dB), and the largest sample with the
    envelope under it; the compressor's gain is taken constant over a chunk (0.36 ms at 44.1 kHz,
    against the envelope's attack time constant of ``ATTACK_MS / 2 pi`` = 3.2 ms). ``plr`` and
    ``lufs`` (no compression) are exact.
    """

    def __init__(self, x: np.ndarray, offset: int, sample_rate: float) -> None:
        self.x, self.offset, self.sr = x, offset, sample_rate
        body = x[:, offset:]
        channels, m = body.shape
        self.m = m
        nc = -(-m // CHUNK)
        sos = k_weighting_sos(sample_rate)
        power = np.zeros(m)  # exact K-weighted power, channels summed
        self.energy = np.zeros((channels, nc))  # K-weighted energy per chunk
        padded = np.zeros(nc * CHUNK)
        chunks = padded.reshape(nc, CHUNK)
        for ch in range(channels):
            y = sos_filter(sos, body[ch])[0]
            y *= y
            power += y
            padded[:m] = y
            self.energy[ch] = chunks.sum(axis=1)
        self.peak_db = amplitude_to_db(float(np.abs(body).max())) if m else -math.inf
        self.edges, self.lo, self.hi = gating_edges(m, sample_rate)
        self.lufs = self._loudness(power, exact=True)
        self.plr = self.peak_db - self.lufs if math.isfinite(self.lufs) else math.nan
        # the gating segments in chunks (their edges rounded to a chunk)
        self.chunk_starts = np.minimum(np.round(self.edges[self.edges < m] / CHUNK).astype(np.int64), nc - 1)

    @cached_property
    def _envelope(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Per chunk and channel: the mean compressor envelope (dB), the largest sample and the
        envelope under it (dB); and the envelope's largest value (dBFS). Computed on first use:
        a song the rule leaves alone (its PLR within the corpus range) never needs it."""
        ca = ballistics_coefficient(ATTACK_MS, self.sr)
        cr = ballistics_coefficient(RELEASE_MS, self.sr)
        body = self.x[:, self.offset :]
        channels, m = body.shape
        nc = -(-m // CHUNK)
        rows = np.arange(nc)
        env_db = np.zeros((channels, nc))
        top = np.zeros((channels, nc))
        top_env_db = np.zeros((channels, nc))
        env_max_db = -math.inf
        padded = np.zeros(nc * CHUNK)
        chunks = padded.reshape(nc, CHUNK)
        for ch in range(channels):
            env = peak_envelope(self.x[ch], 0.0, ca, cr)[0][self.offset :]
            env_max_db = max(env_max_db, amplitude_to_db(float(env.max())))
            padded[:m] = env
            with np.errstate(divide="ignore"):
                env_db[ch] = 20.0 * np.log10(chunks.mean(axis=1))
            env_chunks = chunks.copy()
            np.abs(body[ch], out=padded[:m])
            at = chunks.argmax(axis=1)
            top[ch] = chunks[rows, at]
            with np.errstate(divide="ignore"):
                top_env_db[ch] = 20.0 * np.log10(env_chunks[rows, at])
        return env_db, top, top_env_db, env_max_db

    @property
    def env_db(self) -> np.ndarray:
        """Mean compressor envelope per chunk and channel (dB)."""
        return self._envelope[0]

    @property
    def top(self) -> np.ndarray:
        """Largest absolute sample per chunk and channel (linear)."""
        return self._envelope[1]

    @property
    def top_env_db(self) -> np.ndarray:
        """The envelope at each chunk's largest sample (dB)."""
        return self._envelope[2]

    @property
    def env_max_db(self) -> float:
        """The compressor envelope's largest value over the excerpt (dBFS)."""
        return self._envelope[3]

    def _loudness(self, power: np.ndarray, exact: bool = False) -> float:
        """BS.1770-4 loudness of per-sample (``exact``) or per-chunk K-weighted power."""
        if self.edges.size == 0:  # shorter than a gating block: `short_loudness`'s rule
            return float(power_to_lufs(power.sum() / self.m))
        if exact:
            return gated_loudness(block_powers(power, self.sr))
        sums = np.add.reduceat(power, self.chunk_starts)[: self.edges.size - 1]
        return gated_loudness(powers_from_segments(sums, self.edges, self.lo, self.hi, self.sr))

    def predict(self, threshold_db: float, ratio: float) -> tuple[float, float]:
        """Predicted (PLR, loudness) with this compressor: its gain, per chunk, after the K-weighting."""
        k = (1.0 / ratio - 1.0) * math.log(10.0) / 20.0  # gain = exp(k * dB over the threshold)
        over = np.maximum(self.env_db - threshold_db, 0.0)
        power = (np.exp(2.0 * k * over) * self.energy).sum(axis=0)
        peak = float(np.max(self.top * np.exp(k * np.maximum(self.top_env_db - threshold_db, 0.0))))
        lufs = self._loudness(power)
        return amplitude_to_db(peak) - lufs, lufs

    def render(self, threshold_db: float, ratio: float) -> tuple[float, float]:
        """Measured (PLR, loudness): the chain's compressor rendered on the excerpt, then BS.1770-4."""
        comp = Compressor(self.x.shape[0], self.sr, threshold_db, ratio, ATTACK_MS, RELEASE_MS, 0.0)
        y = comp.process64(self.x)[:, self.offset :]
        lufs = integrated_loudness(y, self.sr)
        return sample_peak_db(y) - lufs, lufs


def _setting(u: float, t_hi: float, t_lo: float) -> tuple[float, float]:
    """The path of growing compression, ``u`` in [0, 2] -> (threshold dB, ratio).

    [0, 1]: ratio 1 -> `RATIO` at threshold ``t_hi`` (walked only when the envelope rises above
    the highest threshold, 0 dBFS); [1, 2]: threshold ``t_hi`` -> ``t_lo`` at `RATIO`.
    """
    if u <= 1.0:
        return t_hi, RATIO ** max(u, 0.0)
    return t_hi + (min(u, 2.0) - 1.0) * (t_lo - t_hi), RATIO


def preroll_start(start: int, sample_rate: float) -> int:
    """The first sample the rule reads for an excerpt starting at ``start``: `PREROLL_S` before it."""
    return max(0, start - int(round(PREROLL_S * sample_rate)))


def compressor_rule(
    audio: np.ndarray,
    sample_rate: float,
    input_gain_db: float,
    stats: DynamicsStats,
    intensity: float = 1.0,
) -> CompressorChoice:
    """The compressor setting for a song (see the module docstring for the rule), measured.

    ``audio`` is the chain's input, ``(channels, n)`` linear float (the input gain ``input_gain_db``
    is applied here, as the chain does before its compressor); ``stats`` the corpus PLR
    (`load_dynamics`); ``intensity`` in [0, 1] scales the move (0: bypass).
    """
    x = _as_2d(audio)
    start, stop = loudest_excerpt(x, sample_rate)
    pre = preroll_start(start, sample_rate)
    return compressor_rule_excerpt(x[:, pre:stop], start - pre, sample_rate, input_gain_db, stats, intensity)


def compressor_rule_excerpt(
    excerpt: np.ndarray,
    offset: int,
    sample_rate: float,
    input_gain_db: float,
    stats: DynamicsStats,
    intensity: float = 1.0,
) -> CompressorChoice:
    """`compressor_rule` given the song's loudest excerpt (`loudest_excerpt`) read from
    `preroll_start`: ``excerpt`` ``(channels, m)`` whose first ``offset`` samples are the pre-roll."""
    ranges = _ranges()
    x = _as_2d(excerpt)
    if not math.isfinite(float(intensity)) or not math.isfinite(float(input_gain_db)):
        raise ParameterError(f"intensity ({intensity}) and input gain ({input_gain_db} dB) must be finite")
    intensity = min(max(float(intensity), 0.0), 1.0)
    gain = 10.0 ** (float(input_gain_db) / 20.0)
    ex = _Excerpt(np.multiply(_dual_mono(x), gain, dtype=np.float64), offset, sample_rate)
    plr = ex.plr

    def bypass(reason: str, renders: int = 0) -> CompressorChoice:
        return CompressorChoice(bypass_values(), plr, plr, plr, reason, renders)

    if not math.isfinite(plr):
        return bypass("bypassed: silent or below the -70 LUFS gate, no PLR to measure")
    if plr <= stats.p90:
        return bypass(
            f"bypassed: PLR {plr:.1f} dB is at or below the corpus 90th percentile {stats.p90:.1f} dB "
            "(within the range of finished music: the rule acts only on songs more dynamic than 90 % of the corpus)"
        )
    if intensity == 0.0:
        return bypass("bypassed: intensity 0")
    target = max(stats.p90, stats.p10, plr - (plr - stats.p90) * intensity)
    t_min, t_top = ranges["comp.threshold_db"]
    t_hi = min(t_top, ex.env_max_db)
    if t_hi <= t_min:
        return bypass(
            f"bypassed: the compressor's envelope peaks at {ex.env_max_db:.1f} dBFS at this input gain, "
            f"below the lowest threshold {t_min:.0f} dBFS"
        )
    t_lo = min(t_hi, max(t_min, ex.lufs - DEPTH_DB))
    u_lo = 0.0 if ex.env_max_db > t_top else 1.0
    u_hi = 2.0

    predictions: dict[float, float] = {}

    def predicted(u: float) -> float:
        if u not in predictions:
            predictions[u] = ex.predict(*_setting(u, t_hi, t_lo))[0]
        return predictions[u]

    def solve(aim: float, lo: float, hi: float) -> tuple[float, bool]:
        """The weakest ``u`` in [lo, hi] whose predicted PLR reaches ``aim``, and True; or, when none
        does, the weakest within `PLATEAU_DB` of the lowest predicted PLR, and False.

        Walks from ``lo`` in `GRID_STEP` steps, then bisects the first step that crosses the aim:
        PLR is not monotonic along the path (heavy compression at -40 dBFS lets the transients
        through the attack and raises it again), so the first crossing is the one wanted.
        """
        u, walked = lo, [lo]
        while u < hi:
            nxt = min(u + GRID_STEP, hi)
            if predicted(nxt) <= aim:
                weak, strong = u, nxt
                for _ in range(BISECTION_STEPS):
                    mid = 0.5 * (weak + strong)
                    if abs(predicted(mid) - aim) <= PREDICT_TOLERANCE_DB:
                        return mid, True
                    weak, strong = (mid, strong) if predicted(mid) > aim else (weak, mid)
                return strong, True
            walked.append(nxt)
            u = nxt
        lowest = min(predicted(w) for w in walked)
        return next(w for w in walked if predicted(w) <= lowest + PLATEAU_DB), False

    # renders: u -> (measured PLR, loudness); the bracket [weak, strong] narrows with each
    measured: dict[float, tuple[float, float]] = {}
    weak, strong = u_lo, u_hi
    aim = target
    for _ in range(MAX_RENDERS):
        u, reached = solve(aim, weak, strong)
        if u in measured:
            break
        if not reached and predicted(u) > plr - MIN_EFFECT_DB:
            break  # nothing on the path lowers the PLR worth speaking of: no need to render it
        threshold, ratio = _setting(u, t_hi, t_lo)
        measured[u] = ex.render(threshold, ratio)
        got = measured[u][0]
        if abs(got - target) <= TOLERANCE_DB or not reached:
            break
        aim = target + (predicted(u) - got)  # the prediction's error, corrected
        if got > target:
            weak = u
        else:
            strong = u
    ok = {u: m for u, m in measured.items() if m[0] >= stats.p10}
    if not measured:
        return bypass(
            f"bypassed: PLR {plr:.1f} dB is above the corpus 90th percentile {stats.p90:.1f} dB, but no setting "
            f"of the rule lowers it by {MIN_EFFECT_DB} dB (its peaks pass the attack)"
        )
    if not ok:
        return bypass(
            f"bypassed: every setting tried measured below the corpus p10 PLR {stats.p10:.1f} dB "
            f"(PLR {plr:.1f} dB, target {target:.1f} dB)",
            len(measured),
        )
    u = min(ok, key=lambda k: abs(ok[k][0] - target))
    got, lufs = ok[u]
    if got > plr - MIN_EFFECT_DB:
        return bypass(
            f"bypassed: PLR {plr:.1f} dB is above the corpus 90th percentile {stats.p90:.1f} dB, but no setting "
            f"of the rule lowers it by {MIN_EFFECT_DB} dB (best measured {got:.1f} dB)",
            len(measured),
        )
    threshold, ratio = _setting(u, t_hi, t_lo)
    makeup = min(max(ex.lufs - lufs, 0.0), ranges["comp.makeup_db"][1])
    values = {
        "comp.threshold_db": float(np.clip(threshold, *ranges["comp.threshold_db"])),
        "comp.ratio": float(np.clip(ratio, *ranges["comp.ratio"])),
        "comp.attack_ms": ATTACK_MS,
        "comp.release_ms": RELEASE_MS,
        "comp.makeup_db": float(makeup),
    }
    short = "" if abs(got - target) <= TOLERANCE_DB else " (the closest the rule's settings come)"
    reason = (
        f"PLR {plr:.1f} dB above the corpus 90th percentile {stats.p90:.1f} dB: {ratio:.2g}:1 at "
        f"{threshold:.1f} dBFS brings it to {got:.1f} dB (target {target:.1f} dB, "
        f"floor p10 {stats.p10:.1f} dB){short}"
    )
    return CompressorChoice(values, plr, got, target, reason, len(measured))
