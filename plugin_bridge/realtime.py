"""Real-time block processing: a chain run on small blocks at a fixed latency, adjustable while it runs.

`BlockProcessor` takes consecutive blocks of any size (32 to 4096 samples is what live audio
uses), keeps every effect's state between them, reports a fixed ``latency`` (the look-ahead
limiters' delay, in samples) and applies `BlockProcessor.set_values` between blocks without
zipper noise::

    proc = BlockProcessor("default", 44100, values={"comp.threshold_db": -18.0})
    for block in blocks:                      # (2, n) float32
        out = proc.process(block)             # (2, n) float32, delayed by proc.latency samples
        proc.set_values({"output.gain_db": -3.0})   # glides there over smoothing_ms

With settings left alone the output equals the offline render (`plugin_bridge.render.render_array`
on the same backend) delayed by ``latency``, whatever the block sizes.

How changes are smoothed (numpy backend, float64 inside):

- gains, width, pan, the compressor's threshold/ratio/make-up, the reverb's dry and wet levels and
  the delay's mix glide linearly, sample by sample, over ``smoothing_ms``;
- the reverb runs as JUCE's Freeverb itself (8 combs and 4 allpasses per side, sample by sample:
  the offline numpy backend convolves with its impulse response), so its room size, damping and
  width glide sample by sample too, its tail kept;
- filters and the delay's time/feedback are linear systems: a change starts a new instance and the
  input crossfades from the old one to the new one over ``smoothing_ms``; the old one rings out
  on silence (its echoes are kept), so nothing jumps. Changes arriving during a crossfade are
  applied when it ends;
- the compressor's attack and release and the limiter's ceiling and release are set in place (the
  envelope and the limiter's look-ahead smoothing keep the gain continuous); the limiter's
  look-ahead sets the latency and cannot change.

The pedalboard backend runs fixed settings only (its plugins cannot be retuned with their state
kept here): `set_values` on it is an error that says so.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .backends import get_backend
from .backends.dsp import (
    FeedbackDelay,
    Limiter,
    ballistics_coefficient,
    delay_samples,
    first_order_highpass_sos,
    high_shelf_sos,
    low_shelf_sos,
    peak_sos,
)
from .backends.dsp._kernels import FreeverbState, freeverb, peak_envelope, sos_filter
from .backends.dsp.reverb import ALLPASS_TUNINGS, COMB_TUNINGS, INPUT_GAIN, STEREO_SPREAD, scaled_length
from .chain import Chain, load_chain
from .effects import Effect, clamp_to_sample_rate, effect_specs, tail_seconds
from .errors import AudioError, ParameterError
from .export.recipe import Recipe, session_of
from .graph import SessionGraph
from .render import prepare_processor
from .session import Session, load_session

log = logging.getLogger(__name__)

#: Default glide time (ms) of a parameter change.
SMOOTHING_MS = 20.0
#: Level (relative) below which a retired filter's ringing is dropped.
_RING_FLOOR = 1e-7


class _Ramp:
    """A value that glides linearly to a target over a number of samples."""

    def __init__(self, value: float) -> None:
        self.value = self.target = float(value)
        self.step = 0.0
        self.left = 0

    def go(self, target: float, samples: int) -> None:
        target = float(target)
        if samples <= 0 or target == self.value:
            self.value = self.target = target
            self.left = 0
            return
        self.target, self.left = target, int(samples)
        self.step = (target - self.value) / samples

    def take(self, n: int) -> float | np.ndarray:
        """The values for the next ``n`` samples: a float when constant, else an array."""
        if self.left == 0:
            return self.value
        k = min(n, self.left)
        out = np.full(n, self.target)
        out[:k] = self.value + self.step * np.arange(1, k + 1)
        self.left -= k
        self.value = self.target if self.left == 0 else float(out[k - 1])
        if self.left == 0:
            out[k - 1 :] = self.target
        return out


class _Switch:
    """A linear system whose settings change by crossfading its input from the old instance to a
    new one; retired instances ring out on silence for their tail (samples)."""

    def __init__(self, make: Callable[[tuple], tuple[object, int]], settings: tuple) -> None:
        self.make = make
        self.settings = settings
        self.cur, self.cur_tail = make(settings)
        self.fading: list | None = None  # [instance, tail, position, length, settings]
        self.pending: tuple | None = None
        self.retiring: list[list] = []  # [instance, samples left]

    def set(self, settings: tuple, fade: int) -> None:
        if self.fading is not None:
            self.pending = (settings, fade)
            return
        if settings == self.settings:
            return
        new, tail = self.make(settings)
        self.fading = [new, tail, 0, max(1, fade), settings]

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[-1]
        if self.fading is None:
            y = self.cur.process64(x)
        else:
            new, tail, pos, length, settings = self.fading
            w = np.minimum((pos + np.arange(1, n + 1)) / length, 1.0)
            y = self.cur.process64(x * (1.0 - w)) + new.process64(x * w)
        if self.retiring:
            silence = np.zeros_like(x)
            for r in self.retiring:
                y = y + r[0].process64(silence)
                r[1] -= n
            self.retiring = [r for r in self.retiring if r[1] > 0]
        if self.fading is not None:
            if pos + n >= length:  # the crossfade is complete: the old instance rings out from the next block
                self.retiring.append([self.cur, self.cur_tail])
                self.cur, self.cur_tail, self.settings, self.fading = new, tail, settings, None
                if self.pending is not None:
                    pending, self.pending = self.pending, None
                    self.set(*pending)
            else:
                self.fading[2] = pos + n
        return y


def _filter_tail(sos: np.ndarray) -> int:
    """Samples until an IIR cascade's ringing falls below `_RING_FLOOR` (from its largest pole)."""
    radius = max(max(abs(np.roots([1.0, s[4], s[5]]))) if s[5] or s[4] else 0.0 for s in sos)
    if radius <= 0.0:
        return 2
    return int(math.ceil(math.log(_RING_FLOOR) / math.log(min(radius, 1.0 - 1e-12)))) + 2


class _Silent:
    """The state before a reverb or delay first runs: silence out (``outputs`` channels)."""

    def __init__(self, outputs: int) -> None:
        self.outputs = outputs

    def process64(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((self.outputs, x.shape[-1]))


class _Biquads:
    """A streaming IIR filter (second-order sections) for small blocks: `sos_filter`, state kept."""

    def __init__(self, channels: int, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self._zi = np.zeros((self.sos.shape[0], channels, 2))

    def process64(self, x: np.ndarray) -> np.ndarray:
        return sos_filter(self.sos, x, self._zi)


class _Identity:
    """A neutral filter (0 dB): passes its input unchanged, has no state."""

    def process64(self, x: np.ndarray) -> np.ndarray:
        return x


_DESIGNS = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}


class _LiveEffect:
    """One effect of a live chain: its DSP, its state, its parameters (gliding or switched)."""

    def __init__(self, effect: Effect, sample_rate: float, channels: int, fade: int) -> None:
        self.sr = float(sample_rate)
        self.fade = fade
        self.channels = channels
        self.effect = effect
        self.type = effect.type
        self.latency = 0
        self.out_channels = 2 if effect.type == "pan" else channels
        p = effect.params
        self.ramps = {k: _Ramp(v) for k, v in p.items()}
        t = self.type
        if t in _DESIGNS or t == "highpass":
            self.switch = _Switch(self._make_filter, self._filter_settings(effect))
        elif t == "reverb":
            sides = range(channels)  # mono: the left bank only (as JUCE's processMono)
            self.verb = FreeverbState(
                np.array(
                    [[scaled_length(c + STEREO_SPREAD * s, self.sr) for c in COMB_TUNINGS] for s in sides]
                ),
                np.array(
                    [[scaled_length(a + STEREO_SPREAD * s, self.sr) for a in ALLPASS_TUNINGS] for s in sides]
                ),
            )
            self._verb_idle = False
        elif t == "delay":
            self.switch = _Switch(self._make_delay, (delay_samples(p["delay_ms"], self.sr), p["feedback"]))
        elif t == "compressor":
            self._env = np.zeros(channels)
            self._ballistics = (
                ballistics_coefficient(p["attack_ms"], self.sr),
                ballistics_coefficient(p["release_ms"], self.sr),
            )
        elif t == "limiter":
            self.limiter = Limiter(channels, self.sr, p["ceiling_db"], p["release_ms"], p["lookahead_ms"])
            self.latency = self.limiter.latency

    # ---- builders of switched parts --------------------------------------------------------

    def _filter_settings(self, e: Effect) -> tuple:
        e = clamp_to_sample_rate(e, self.sr)
        if e.type == "highpass":
            return (e["cutoff_hz"],)
        return (e["cutoff_hz"], e["gain_db"], e["q"])

    def _make_filter(self, settings: tuple) -> tuple[_Biquads | _Identity, int]:
        if self.type != "highpass" and settings[1] == 0.0:
            return _Identity(), 0
        if self.type == "highpass":
            sos = first_order_highpass_sos(self.sr, settings[0])
        else:
            sos = _DESIGNS[self.type](self.sr, *settings)
        return _Biquads(self.channels, sos), _filter_tail(sos)

    def _make_delay(self, settings: tuple) -> tuple[FeedbackDelay, int]:
        d, fb = settings
        tail = math.ceil(
            tail_seconds(Effect("d", "delay", {"delay_ms": 1000.0 * d / self.sr, "feedback": fb, "mix": 1.0}))
            * self.sr
        )
        return FeedbackDelay(self.channels, d, fb, 1.0), max(tail, d) + 1

    # ---- changes ----------------------------------------------------------------------------

    def set(self, effect: Effect, fade: int) -> None:
        """Glide or switch to ``effect``'s parameters over ``fade`` samples."""
        old, p = self.effect.params, effect.params
        self.effect = effect
        for k, v in p.items():
            self.ramps[k].go(v, fade)
        t = self.type
        if t in _DESIGNS or t == "highpass":
            self.switch.set(self._filter_settings(effect), fade)
        elif t == "delay":
            self.switch.set((delay_samples(p["delay_ms"], self.sr), p["feedback"]), fade)
        elif t == "compressor":
            self._ballistics = (
                ballistics_coefficient(p["attack_ms"], self.sr),
                ballistics_coefficient(p["release_ms"], self.sr),
            )
        elif t == "limiter":
            if p["lookahead_ms"] != old["lookahead_ms"]:
                raise ParameterError(
                    f"{effect.id}.lookahead_ms sets the processor's latency and cannot change while it runs"
                )
            lim = self.limiter
            fresh = Limiter(self.channels, self.sr, p["ceiling_db"], p["release_ms"], p["lookahead_ms"])
            lim.ceiling, lim._clip, lim.release_coeff = fresh.ceiling, fresh._clip, fresh.release_coeff
            lim._gain.release_coeff = fresh.release_coeff

    # ---- processing -------------------------------------------------------------------------

    def _skip(self, level: np.ndarray) -> bool:
        """True when the delay's wet part is silent and idle (``level`` 0, nothing fading or
        ringing): it is not run, and its input fades in from silence when it returns."""
        sw = self.switch
        if np.any(level != 0.0) or sw.fading is not None or sw.retiring:
            if getattr(self, "_stale", False):  # its input fades in from silence
                fresh = _Switch(lambda settings: (_Silent(self.channels), 0), None)
                fresh.make = sw.make
                fresh.set(sw.settings, self.fade)
                self.switch = fresh
                self._stale = False
            return False
        self._stale = True
        return True

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next ``(channels, n)`` float64 block through this effect."""
        n, t, r = x.shape[1], self.type, self.ramps
        if t == "gain":
            g = r["gain_db"].take(n)
            return x if (np.isscalar(g) and g == 0.0) else x * (10.0 ** (np.asarray(g) / 20.0))
        if t in _DESIGNS or t == "highpass":
            return self.switch.process(x)
        if t == "compressor":
            thr_db, ratio, makeup_db = r["threshold_db"].take(n), r["ratio"].take(n), r["makeup_db"].take(n)
            linear = np.isscalar(ratio) and ratio == 1.0
            thr = 10.0 ** (np.asarray(thr_db) / 20.0)
            expo = 1.0 / np.asarray(ratio) - 1.0
            y = x if linear else np.empty_like(x)
            for ch in range(x.shape[0]):  # the envelope is tracked even at 1:1, ready for a change
                env, self._env[ch] = peak_envelope(x[ch], self._env[ch], *self._ballistics)
                if not linear:
                    y[ch] = x[ch] * (np.maximum(env, thr) / thr) ** expo
            if np.isscalar(makeup_db) and makeup_db == 0.0:
                return y
            return y * (10.0 ** (np.asarray(makeup_db) / 20.0))
        if t == "reverb":
            dry, wet = 2.0 * np.asarray(r["dry_level"].take(n)), 3.0 * np.asarray(r["wet_level"].take(n))
            room, damping, width = (np.asarray(r[k].take(n)) for k in ("room_size", "damping", "width"))
            y = x * dry
            if np.all(wet == 0.0):
                self._verb_idle = True  # silent: not run; starts from silence when the wet level rises
                return y
            if self._verb_idle:
                self.verb.reset()
                self._verb_idle = False
            mono = INPUT_GAIN * (x.sum(axis=0) if self.channels == 2 else x[0])
            out = freeverb(self.verb, mono, 0.7 + 0.28 * room, 0.4 * damping)
            w1, w2 = 0.5 * wet * (1.0 + width), 0.5 * wet * (1.0 - width)
            if self.channels == 1:
                return y + w1 * out
            return y + np.stack((w1 * out[0] + w2 * out[1], w1 * out[1] + w2 * out[0]))
        if t == "delay":
            mix = np.asarray(r["mix"].take(n))
            for k in ("delay_ms", "feedback"):
                r[k].take(n)
            if self._skip(mix):
                return x
            return (1.0 - mix) * x + mix * self.switch.process(x)
        if t == "width":
            w = r["width"].take(n)
            if self.channels == 1 or (np.isscalar(w) and w == 1.0):
                return x
            mid = 0.5 * (x[0] + x[1])
            side = (0.5 * np.asarray(w)) * (x[0] - x[1])
            return np.stack((mid + side, mid - side))
        if t == "pan":
            th = (np.asarray(r["pan"].take(n)) + 1.0) * math.pi / 4.0
            src = x if x.shape[0] == 2 else np.vstack((x, x))
            return np.stack((math.sqrt(2.0) * np.cos(th) * src[0], math.sqrt(2.0) * np.sin(th) * src[1]))
        if t == "limiter":
            for k in r.values():
                k.take(n)
            return self.limiter.process64(x)
        raise ParameterError(f"effect {self.effect.id!r}: cannot run type {t!r} live")  # pragma: no cover


def _effects_and_space(source, values: Mapping[str, float] | None) -> tuple[list[Effect], Chain | None]:
    """Concrete effects and the chain (None for a plain effect list) of a block processor's source."""
    if isinstance(source, Recipe):
        if source.kind != "chain":
            raise ParameterError(
                "BlockProcessor runs a chain recipe; a session recipe has one chain per node"
            )
        chain = source.chain_object()
        merged = {**source.values, **(values or {})}
        return (chain.resolve(merged) if chain else list(source.effects)), chain
    if isinstance(source, Sequence) and not isinstance(source, str):
        effects = list(source)
        if not all(isinstance(e, Effect) for e in effects):
            raise ParameterError("BlockProcessor: a list source must hold Effect objects")
        if values:
            return _apply(effects, None, values), None
        return effects, None
    chain = source if isinstance(source, Chain) else load_chain(source)
    return chain.resolve(values or {}), chain


def _apply(effects: Sequence[Effect], chain: Chain | None, values: Mapping[str, float]) -> list[Effect]:
    """``effects`` with ``{"effect_id.param": value}`` applied (validated: space range, else effect range)."""
    by_id = {e.id: dict(e.params) for e in effects}
    for name, v in values.items():
        eid, _, pname = str(name).rpartition(".")
        if eid not in by_id or pname not in by_id[eid]:
            valid = ", ".join(chain.space.names) if chain else ", ".join(f"{e.id}.<param>" for e in effects)
            raise ParameterError(f"unknown parameter {name!r}; valid: {valid}")
        if chain is not None and name in chain.space.names:
            by_id[eid][pname] = chain.space.spec(name).check(v)
        else:
            spec = {s.name: s for s in effect_specs(next(e.type for e in effects if e.id == eid))}[pname]
            by_id[eid][pname] = spec.check(v, where=f"{eid}.")
    return [Effect(e.id, e.type, by_id[e.id], e.plugin) for e in effects]


class BlockProcessor:
    """A chain (name, file, `Chain`, chain `Recipe` or list of `Effect`) processing live blocks.

    ``sample_rate`` in Hz; ``channels`` (1 or 2) of the input blocks; ``values`` sets parameters
    (``{"comp.threshold_db": -18.0}``; a recipe's own values are the starting point);
    ``backend`` ``"numpy"`` (adjustable while running) or ``"pedalboard"`` (fixed settings);
    ``smoothing_ms`` is how long a change takes. ``latency`` (samples) is fixed for the
    processor's life; ``out_channels`` is 2 after a ``pan``.
    """

    def __init__(
        self,
        source: Chain | Recipe | Sequence[Effect] | str | os.PathLike = "default",
        sample_rate: float = 44100.0,
        backend: str = "numpy",
        channels: int = 2,
        values: Mapping[str, float] | None = None,
        smoothing_ms: float = SMOOTHING_MS,
    ) -> None:
        try:
            sample_rate = float(sample_rate)
        except (TypeError, ValueError):
            sample_rate = math.nan
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ParameterError(
                f"BlockProcessor: sample rate must be a positive number of Hz, got {sample_rate!r}"
            )
        if channels not in (1, 2):
            raise ParameterError(f"BlockProcessor: blocks must be mono or stereo, got {channels} channels")
        if not (math.isfinite(smoothing_ms) and 0.0 <= smoothing_ms <= 1000.0):
            raise ParameterError(
                f"BlockProcessor: smoothing_ms must be in [0, 1000] ms, got {smoothing_ms!r}"
            )
        effects, self.chain = _effects_and_space(source, values)
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.smoothing_ms = float(smoothing_ms)
        self.backend = get_backend(backend).name
        self.effects = effects
        if any(e.plugin for e in effects):
            log.warning("BlockProcessor: plugin slots run their built-in effects live")
            effects = [Effect(e.id, e.type, e.params) for e in effects]
        if self.backend == "numpy":
            self._live: list[_LiveEffect] | None = []
            ch = channels
            fade = max(1, int(round(self.smoothing_ms * self.sample_rate / 1000.0)))
            for e in effects:
                stage = _LiveEffect(e, self.sample_rate, ch, fade)
                self._live.append(stage)
                ch = stage.out_channels
            self.out_channels = ch
            self.latency = sum(s.latency for s in self._live)
            self._fixed = None
        else:
            self._live = None
            self._fixed = prepare_processor(get_backend(self.backend), effects, self.sample_rate, channels)
            self.out_channels = self._fixed.out_channels
            self.latency = int(self._fixed.latency)

    @property
    def values(self) -> dict[str, float]:
        """The current target value of every parameter, ``{"effect_id.param": value}``."""
        return {f"{e.id}.{k}": float(v) for e in self.effects for k, v in e.params.items()}

    def set_values(self, values: Mapping[str, float]) -> None:
        """Change parameters (``{"effect_id.param": value}``, validated) from the next block on,
        gliding over ``smoothing_ms``; a bad name or value raises `ParameterError` and changes nothing."""
        new = _apply(self.effects, self.chain, values)
        if self._live is None:
            raise ParameterError(
                f"the {self.backend} backend runs fixed settings; live parameter changes need backend 'numpy'"
            )
        for live, e in zip(self._live, new, strict=True):
            if e.type == "limiter" and e["lookahead_ms"] != live.effect["lookahead_ms"]:
                raise ParameterError(
                    f"{e.id}.lookahead_ms sets the processor's latency and cannot change while it runs"
                )
        fade = int(round(self.smoothing_ms * self.sample_rate / 1000.0))
        for live, e in zip(self._live, new, strict=True):
            if e.params != live.effect.params:
                live.set(e, fade)
        self.effects = new

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` block (any n >= 0); returns ``(out_channels, n)``
        float32, delayed by ``latency`` samples."""
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"BlockProcessor: expected a ({self.channels}, samples) block, got shape {x.shape}"
            )
        if x.shape[1] == 0:
            return np.zeros((self.out_channels, 0), dtype=np.float32)
        if self._fixed is not None:
            return np.asarray(self._fixed.process(x.astype(np.float32, copy=False)), dtype=np.float32)
        y = x.astype(np.float64)
        for live in self._live or ():
            y = live.process(y)
        return y.astype(np.float32)


class SessionBlockProcessor:
    """A multitrack session (file, `Session` or session `Recipe`) mixed block by block.

    Each call renders the next ``n`` frames of the master mix; tracks read their stem files unless
    ``inputs`` hands them live blocks. ``latency`` (samples) is the session's compensated latency
    (every track aligned to the slowest path), fixed for the processor's life. Settings are fixed
    (`BlockProcessor` changes a chain's settings while it runs). Backends: numpy or pedalboard.
    """

    def __init__(self, session: Session | Recipe | str | os.PathLike, backend: str = "numpy") -> None:
        if isinstance(session, Recipe):
            session = session_of(session)
        s = session if isinstance(session, Session) else load_session(session)
        be = get_backend(backend)
        if not be.streaming:
            raise ParameterError(
                f"the {be.name} backend renders whole buffers; live blocks need numpy or pedalboard"
            )
        self.graph = SessionGraph(s, be)
        self.sample_rate = float(self.graph.sample_rate)
        self.latency = int(self.graph.latency)
        self.out_channels = 2
        self.tracks = {name: src.channels for name, src in self.graph.sources.items()}

    def process(self, n: int, inputs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The next ``n`` frames of the master mix, ``(2, n)`` float32, delayed by ``latency``;
        ``inputs`` maps track names to ``(channels, n)`` live blocks (checked)."""
        if not (isinstance(n, int | np.integer) and n >= 0):
            raise ParameterError(
                f"SessionBlockProcessor: block length must be a whole number >= 0, got {n!r}"
            )
        blocks = {}
        for name, block in (inputs or {}).items():
            if name not in self.tracks:
                raise ParameterError(f"no audible track {name!r}; tracks: {', '.join(self.tracks)}")
            x = np.asarray(block, dtype=np.float32)
            if x.shape != (self.tracks[name], n):
                raise AudioError(
                    f"track {name!r}: expected a ({self.tracks[name]}, {n}) block, got shape {x.shape}"
                )
            blocks[name] = x
        if n == 0:
            return np.zeros((2, 0), dtype=np.float32)
        mix, _ = self.graph.process(int(n), blocks)
        return np.asarray(mix, dtype=np.float32)


def audio_devices() -> tuple[list[str], list[str]]:
    """``(input device names, output device names)`` as pedalboard's AudioStream sees them."""
    from pedalboard.io import AudioStream

    return list(AudioStream.input_device_names), list(AudioStream.output_device_names)


def check_devices(input_device: str, output_device: str) -> None:
    """Raise `AudioError` in one line when the machine has no audio device, or when a device name
    is not one of those it lists (the valid names are given)."""
    inputs, outputs = audio_devices()
    if not inputs or not outputs:
        raise AudioError(
            "this machine has no audio "
            + (
                "input or output devices"
                if not inputs and not outputs
                else "input device"
                if not inputs
                else "output device"
            )
            + " (pedalboard's AudioStream lists none): live processing needs an audio interface"
        )
    for name, names, kind in ((input_device, inputs, "input"), (output_device, outputs, "output")):
        if name not in names:
            raise AudioError(f"no {kind} device {name!r}; {kind} devices here: {', '.join(names)}")


def run_live(
    input_device: str,
    output_device: str,
    processor: BlockProcessor,
    block_size: int = 128,
    seconds: float | None = None,
) -> int:
    """Play ``input_device`` through ``processor`` to ``output_device`` in blocks of ``block_size``
    samples (pedalboard's AudioStream: one stream reads, the other plays) until interrupted or
    ``seconds`` have passed; returns the number of blocks processed.

    Raises `AudioError` in one line when the machine has no audio device, or when a device name is
    not one of those it lists (the valid names are given).
    """
    from pedalboard.io import AudioStream

    if not 16 <= block_size <= 8192:
        raise ParameterError(f"block size must be 16-8192 samples, got {block_size}")
    check_devices(input_device, output_device)
    sr = processor.sample_rate
    blocks = 0
    limit = None if seconds is None else int(seconds * sr / block_size)
    with (
        AudioStream(
            input_device_name=input_device,
            sample_rate=sr,
            buffer_size=block_size,
            num_input_channels=processor.channels,
        ) as source,
        AudioStream(
            output_device_name=output_device,
            sample_rate=sr,
            buffer_size=block_size,
            num_output_channels=processor.out_channels,
        ) as sink,
    ):
        while limit is None or blocks < limit:
            sink.write(processor.process(np.asarray(source.read(block_size), dtype=np.float32)), sr)
            blocks += 1
    return blocks
