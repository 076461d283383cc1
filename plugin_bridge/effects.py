"""The canonical effects: their real-unit parameters, valid ranges and what each does.

Every backend renders exactly these effects. Ranges are the widest a chain may use (chain files
narrow them for the model). Frequencies above what a sample rate can carry are clamped at render
time by `clamp_to_sample_rate`, with a warning: no invalid value ever reaches a plugin.

Algorithms (the numpy fallback is the reference; pedalboard and Faust follow it):

- ``gain``: y = x * 10^(gain_db/20).
- ``highpass``: first-order (6 dB/oct) bilinear high-pass, -3 dB at ``cutoff_hz``.
- ``low_shelf`` / ``high_shelf`` / ``peak``: RBJ Audio-EQ-Cookbook biquads (as JUCE computes them),
  ``gain_db`` at the shelf plateau / peak centre, ``q`` the cookbook Q.
- ``compressor``: feed-forward, per channel, hard knee: a peak envelope follower with one-pole
  attack/release ballistics (coefficient exp(-2*pi*1000 / (sample_rate * time_ms))), gain =
  (env/threshold)^(1/ratio - 1) above threshold, then ``makeup_db``.
- ``limiter``: stereo-linked look-ahead brick-wall limiter: the required gain min(1, ceiling/|x|)
  goes through a sliding minimum and a moving average of ``lookahead_ms``, then a one-pole release;
  the signal is delayed by the look-ahead (reported as latency, which the renderer removes). The
  sample peak never exceeds ``ceiling_db``.
- ``reverb``: Freeverb (8 lowpass-feedback combs + 4 allpasses per side, JUCE tunings) with
  ``room_size``, ``damping``, ``wet_level``, ``dry_level`` and ``width`` as in JUCE/pedalboard
  (dry_level 0.5 is unity dry gain).
- ``delay``: feedback delay line of ``delay_ms`` (whole samples), ``feedback`` 0-0.95, dry/wet ``mix``.
- ``width``: mid/side: side *= ``width`` (0 = mono, 1 = unchanged, 2 = twice the side).
- ``pan``: constant-power pan normalised to unity at centre: gL = sqrt(2) cos(t), gR = sqrt(2) sin(t),
  t = (pan + 1) * pi / 4; a mono input becomes stereo.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ChainError, ParameterError
from .params import ParamSpec

log = logging.getLogger(__name__)


def _p(name: str, unit: str, lo: float, hi: float, default: float, curve: str = "linear", desc: str = ""):
    return ParamSpec(name, unit, lo, hi, default, curve, description=desc)


_EQ_Q = _p("q", "", 0.1, 10.0, 0.707, "log", "filter quality factor (RBJ cookbook Q)")

EFFECT_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "gain": (_p("gain_db", "dB", -48.0, 24.0, 0.0, desc="gain"),),
    "highpass": (_p("cutoff_hz", "Hz", 10.0, 2000.0, 80.0, "log", "-3 dB frequency, 6 dB/octave"),),
    "low_shelf": (
        _p("cutoff_hz", "Hz", 20.0, 2000.0, 120.0, "log", "shelf mid-point frequency"),
        _p("gain_db", "dB", -18.0, 18.0, 0.0, desc="shelf gain"),
        _EQ_Q,
    ),
    "peak": (
        _p("cutoff_hz", "Hz", 20.0, 20000.0, 1000.0, "log", "centre frequency"),
        _p("gain_db", "dB", -18.0, 18.0, 0.0, desc="gain at the centre frequency"),
        _EQ_Q,
    ),
    "high_shelf": (
        _p("cutoff_hz", "Hz", 500.0, 20000.0, 8000.0, "log", "shelf mid-point frequency"),
        _p("gain_db", "dB", -18.0, 18.0, 0.0, desc="shelf gain"),
        _EQ_Q,
    ),
    "compressor": (
        _p("threshold_db", "dB", -60.0, 0.0, 0.0, desc="threshold, dBFS peak"),
        _p("ratio", "ratio", 1.0, 20.0, 1.0, "log", "compression ratio (input:output above threshold)"),
        _p("attack_ms", "ms", 0.1, 500.0, 10.0, "log", "attack time"),
        _p("release_ms", "ms", 1.0, 3000.0, 100.0, "log", "release time"),
        _p("makeup_db", "dB", 0.0, 24.0, 0.0, desc="make-up gain after compression"),
    ),
    "limiter": (
        _p("ceiling_db", "dB", -24.0, 0.0, -1.0, desc="sample-peak ceiling, dBFS"),
        _p("release_ms", "ms", 1.0, 2000.0, 100.0, "log", "release time"),
        _p("lookahead_ms", "ms", 0.1, 20.0, 5.0, "log", "look-ahead (also the added latency)"),
    ),
    "reverb": (
        _p("room_size", "", 0.0, 1.0, 0.5, desc="room size (Freeverb feedback 0.7 + 0.28 * size)"),
        _p("damping", "", 0.0, 1.0, 0.5, desc="high-frequency damping in the tail"),
        _p("wet_level", "", 0.0, 1.0, 0.33, desc="wet level (x3 internal scale)"),
        _p("dry_level", "", 0.0, 1.0, 0.5, desc="dry level (x2 internal scale; 0.5 = unity)"),
        _p("width", "", 0.0, 1.0, 1.0, desc="stereo width of the reverb tail"),
    ),
    "delay": (
        _p("delay_ms", "ms", 1.0, 2000.0, 250.0, "log", "delay time (rounded to whole samples)"),
        _p("feedback", "", 0.0, 0.95, 0.3, desc="feedback amount"),
        _p("mix", "", 0.0, 1.0, 0.0, desc="dry/wet mix (0 = dry only, 1 = wet only)"),
    ),
    "width": (_p("width", "ratio", 0.0, 4.0, 1.0, desc="side gain: 0 mono, 1 unchanged, 2 twice as wide"),),
    "pan": (_p("pan", "", -1.0, 1.0, 0.0, desc="-1 left, 0 centre, +1 right (constant power)"),),
}

EFFECT_TYPES: tuple[str, ...] = tuple(EFFECT_PARAMS)

#: Parameters that are frequencies and must stay below Nyquist at render time.
FREQUENCY_PARAMS = {"cutoff_hz"}
#: The highest frequency a filter may be set to, as a fraction of the sample rate.
MAX_FREQUENCY_FRACTION = 0.45


def effect_specs(effect_type: str) -> tuple[ParamSpec, ...]:
    """The real-unit parameter specs of ``effect_type``; an unknown type lists the valid ones."""
    try:
        return EFFECT_PARAMS[effect_type]
    except KeyError:
        raise ChainError(
            f"unknown effect {effect_type!r}; valid effects: {', '.join(EFFECT_TYPES)}"
        ) from None


def q_to_octaves(q: float) -> float:
    """Bandwidth in octaves of an RBJ peaking filter of quality ``q``: 2/ln2 * asinh(1/(2q))."""
    return 2.0 / math.log(2.0) * math.asinh(1.0 / (2.0 * q))


@dataclass(frozen=True)
class Effect:
    """One effect with every parameter set to a validated real-unit value.

    ``id`` names the slot in its chain (e.g. ``"comp"``), ``type`` is a canonical effect type and
    ``params`` maps each of the type's parameter names to a value inside its range. ``plugin``
    optionally names a plugin map (`plugin_bridge.plugins.maps`) that renders this effect on a real
    third-party plugin where the backend can host it (the built-in is the fallback).
    """

    id: str
    type: str
    params: Mapping[str, float] = field(default_factory=dict)
    plugin: str | None = None

    def __post_init__(self) -> None:
        specs = effect_specs(self.type)
        names = [s.name for s in specs]
        for k in self.params:
            if k not in names:
                raise ParameterError(
                    f"effect {self.id!r} ({self.type}): unknown parameter {k!r}; valid: {', '.join(names)}"
                )
        full = {}
        for s in specs:
            v = self.params.get(s.name, s.default)
            full[s.name] = s.check(v, where=f"{self.id}.")
        object.__setattr__(self, "params", full)

    def __getitem__(self, name: str) -> float:
        return self.params[name]

    def is_neutral(self) -> bool:
        """True when the effect leaves audio bit-for-bit unchanged at these settings."""
        p = self.params
        if self.type == "gain":
            return p["gain_db"] == 0.0
        if self.type in ("low_shelf", "high_shelf", "peak"):
            return p["gain_db"] == 0.0
        if self.type == "width":
            return p["width"] == 1.0
        if self.type == "delay":
            return p["mix"] == 0.0
        if self.type == "compressor":
            return p["ratio"] == 1.0 and p["makeup_db"] == 0.0
        if self.type == "reverb":
            return p["wet_level"] == 0.0 and p["dry_level"] == 0.5
        return False

    def to_dict(self) -> dict:
        """``{"id", "type", "params"}`` with plain floats (and ``"plugin"`` when one is named)."""
        out = {"id": self.id, "type": self.type, "params": dict(self.params)}
        if self.plugin:
            out["plugin"] = self.plugin
        return out


def clamp_to_sample_rate(effect: Effect, sample_rate: float) -> Effect:
    """Return ``effect`` with every frequency clamped to 0.45 * sample_rate (warns when it clamps)."""
    limit = MAX_FREQUENCY_FRACTION * sample_rate
    changed = {}
    for name, v in effect.params.items():
        if name in FREQUENCY_PARAMS and v > limit:
            changed[name] = limit
            log.warning(
                "%s.%s=%g Hz is above 0.45 x the sample rate (%g Hz); using %g Hz",
                effect.id,
                name,
                v,
                sample_rate,
                limit,
            )
    if not changed:
        return effect
    # bypass range checks on purpose only for a lower value, which stays valid in every spec
    params = dict(effect.params)
    params.update(changed)
    lowered = Effect.__new__(Effect)
    object.__setattr__(lowered, "id", effect.id)
    object.__setattr__(lowered, "type", effect.type)
    object.__setattr__(lowered, "params", params)
    object.__setattr__(lowered, "plugin", effect.plugin)
    return lowered


def reverb_feedback(room_size: float) -> float:
    """Freeverb comb feedback for a room size in [0, 1]."""
    return 0.7 + 0.28 * room_size


def tail_seconds(effect: Effect) -> float:
    """How long (s) the effect keeps sounding after its input stops, to about -60 dB."""
    import math

    p = effect.params
    if effect.type == "reverb" and p["wet_level"] > 0:
        fb = reverb_feedback(p["room_size"])
        passes = 60.0 / (-20.0 * math.log10(fb))
        return min(passes * 1617 / 44100.0 + 0.1, 15.0)
    if effect.type == "delay" and p["mix"] > 0:
        fb = p["feedback"]
        repeats = 1 if fb <= 0 else 1 + math.ceil(-3.0 / math.log10(fb))
        return min(repeats * p["delay_ms"] / 1000.0, 30.0)
    if effect.type == "limiter":
        return 0.0
    return 0.0
