"""Effects that change their settings while they run, without zipper noise: the live stages.

`LiveEffect` renders one canonical effect on consecutive float64 blocks (the numpy backend's
algorithms: its offline output equals `plugin_bridge.backends.numpy_backend` within rounding) and
takes new settings between blocks (`LiveEffect.set`), reaching them over a given number of samples:

- gains, width, pan, the compressor's threshold, ratio and make-up, every reverb control and the
  delay's mix glide linearly, sample by sample;
- the reverb runs as JUCE's Freeverb itself (`_kernels.freeverb`: combs and allpasses sample by
  sample), so its tail is kept through any change;
- filters and the delay's time/feedback are linear systems: a change starts a new instance and
  the input crossfades from the old one to the new one; the old one rings out on silence for its
  tail (`_Switch`). Changes arriving during a crossfade are applied when it ends;
- the compressor's attack/release and the limiter's ceiling/release are set in place (the
  envelope and the limiter's look-ahead smoothing keep the gain continuous); the limiter's
  look-ahead is its latency and cannot change.

`plugin_bridge.realtime.BlockProcessor` chains them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..effects import Effect, clamp_to_sample_rate, tail_seconds
from ..errors import ParameterError
from .dsp import (
    FeedbackDelay,
    Limiter,
    ballistics_coefficient,
    delay_samples,
    first_order_highpass_sos,
    high_shelf_sos,
    low_shelf_sos,
    peak_sos,
)
from .dsp._kernels import FreeverbState, freeverb, peak_envelope
from .dsp.filters import sos_filter
from .dsp.reverb import ALLPASS_TUNINGS, COMB_TUNINGS, INPUT_GAIN, STEREO_SPREAD, scaled_length

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
        """Crossfade to an instance built from ``settings`` over ``fade`` samples (queued during a crossfade)."""
        if self.fading is not None:
            self.pending = (settings, fade)
            return
        if settings == self.settings:
            return
        new, tail = self.make(settings)
        self.fading = [new, tail, 0, max(1, fade), settings]

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next block (float64) through the current, fading and retiring instances."""
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
        y, self._zi = sos_filter(self.sos, x, self._zi)
        return y


class _Identity:
    """A neutral filter (0 dB): passes its input unchanged, has no state."""

    def process64(self, x: np.ndarray) -> np.ndarray:
        return x


_DESIGNS = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}


class LiveEffect:
    """One effect of a live chain: its DSP, its state, its parameters (gliding or switched).

    ``effect`` (real-unit values) at ``sample_rate`` Hz for ``channels`` (1 or 2) inputs; ``fade``
    is how many samples a delay line that starts again after being idle takes to fade its input
    in. ``latency`` (samples) and ``out_channels`` (2 after a ``pan``) are fixed.
    """

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
