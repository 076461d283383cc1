"""The stems mix's decisions per track: role, fader, pan, high-pass, unmasking EQ, compression, sends.

Pure functions of the measurements (`plugin_bridge.stems.analysis.TrackAnalysis`) and the model's
prediction (`plugin_bridge.stems.model.StemPrediction`); `decide_mix` runs them in order and
returns one `TrackDecision` per track, each with the reasons a report prints.

1. **Role** (`ROLES`): the model's probabilities from the audio; the file name is only a hint
   (`role_from_name`), which multiplies its role's probability by `NAME_HINT_WEIGHT` before the
   probabilities are normalised again, so only near-certain audio evidence (over 95 %) overrides a name.
2. **Fader** (the balance comes first): each track's target loudness relative to the mix's mean
   track loudness (LU) comes from ``balance``: ``"model"`` (learned from the composers' balances,
   `models/stems.md`), ``"rules"`` (`RULE_LEVELS_LU`, a documented role table) or ``"equal"``
   (every track at the same loudness). Faders then put the tracks there, with the whole mix at
   about `MIX_LUFS` before mastering. ``intensity`` blends from one common gain (0) to the full
   balance (1).
3. **Pan** (`pan_targets`): bass, drums and vocals in the centre; the other tracks spread left and
   right in pairs, by role and brightness, up to `MAX_SPREAD`. Stereo stems keep their image: the
   balance control moves their energy toward the target, as far as costs at most
   `MAX_BALANCE_LOSS_DB` of their power (`stereo_pan_move`), and the fader restores that loss.
   The job then corrects every fader by what the track's inserts (high-pass, EQ, compression)
   measure on it (`plugin_bridge.stems.job.measured_insert_gain`).
4. **High-pass** (`highpass_for`): where a track holds less than 0.5 % of its power below a
   frequency, a 6 dB/octave high-pass at 0.8 times that frequency (at most 300 Hz; bass at most
   30 Hz, drums 35 Hz) removes rumble that only muddies the mix.
5. **Unmasking** (`unmasking_cuts`): for each lead track (vocals, bass, kick drum; without vocals the
   loudest melodic track) and its focus band, a lower-priority track whose level in that band comes
   within 3 dB of the lead's gets a peak cut there (2-6 dB, Q 1.4), one per track.
6. **Compression** (`compression_for`): a track whose peaks stand far above its body (crest factor
   over its role's limit in `COMPRESSION`) is compressed at its role's ratio and attack, threshold
   below its peak; make-up gain restores the loudness the static curve takes away, so the fader
   still sets the balance.
7. **Sends** (`SENDS_DB`): post-fader sends to a shared reverb bus and delay bus by role.

Silent tracks are kept silent (fader 0 dB, no processing) and noted; a clipping stem is noted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from .analysis import BAND_CENTERS_HZ, TrackAnalysis
from .corpus import ROLES

BALANCES = ("model", "rules", "equal")
#: The mix before mastering lands near this loudness (LUFS).
MIX_LUFS = -18.0
#: A name hint multiplies its role's probability by this before normalising: the name decides
#: unless the audio is more than 95 % sure of another role (the model's roles are right about two
#: times in three on held-out songs, file names far more often).
NAME_HINT_WEIGHT = 20.0
#: Target loudness relative to the mean track (LU) of the ``rules`` balance: each role's mean level
#: in the training multitracks (`models/stems.md`: the composers' balances, rounded to 0.5 LU;
#: vocals, with only four choir parts there, at the conventional +3).
RULE_LEVELS_LU: dict[str, float] = {
    "vocals": 3.0,
    "other": 1.0,
    "guitar": 0.5,
    "keys": 0.5,
    "bass": -0.5,
    "pad/synth": -0.5,
    "drums": -2.0,
}
CENTRE_ROLES = ("drums", "bass", "vocals")
MAX_SPREAD = 0.6
#: A stereo stem's balance move may cost at most this much of its power (dB; the fader restores it).
MAX_BALANCE_LOSS_DB = 6.0
#: Role -> (crest factor above which it is compressed (dB), ratio, attack ms, threshold below peak dB).
COMPRESSION: dict[str, tuple[float, float, float, float]] = {
    "drums": (16.0, 3.0, 15.0, 10.0),
    "bass": (12.0, 4.0, 20.0, 8.0),
    "vocals": (14.0, 3.0, 5.0, 10.0),
    "guitar": (15.0, 2.5, 10.0, 9.0),
    "keys": (17.0, 2.0, 10.0, 9.0),
    "other": (17.0, 2.0, 10.0, 9.0),
    "pad/synth": (99.0, 1.0, 10.0, 0.0),
}
RELEASE_MS = 150.0
#: Role -> (reverb send, delay send) in dB, post-fader; None = no send.
SENDS_DB: dict[str, tuple[float | None, float | None]] = {
    "vocals": (-14.0, -22.0),
    "pad/synth": (-16.0, None),
    "keys": (-18.0, None),
    "guitar": (-18.0, -26.0),
    "other": (-20.0, None),
    "drums": (-24.0, None),
    "bass": (None, None),
}
REVERB_BUS = "verb"
DELAY_BUS = "echo"
#: Lowest high-pass corner per role (Hz) and the highest any track gets.
HIGHPASS_MAX_HZ = {"bass": 30.0, "drums": 35.0}
HIGHPASS_CAP_HZ = 300.0
HIGHPASS_MIN_HZ = 40.0
#: Lead roles, their focus band (Hz) and priority (higher is protected from lower).
FOCUS_HZ: dict[str, tuple[float, float]] = {
    "vocals": (800.0, 4000.0),
    "bass": (50.0, 160.0),
    "drums": (50.0, 120.0),
}
PRIORITY = {"vocals": 6, "bass": 5, "drums": 5, "guitar": 3, "keys": 3, "other": 2, "pad/synth": 1}
MASK_MARGIN_DB = 3.0
UNMASK_Q = 1.4

_HINTS: tuple[tuple[str, str], ...] = (
    ("drums", r"drum|kick|snare|hat|hh|perc|tom|overhead|cymbal|ride|crash|beat|loop|kit|clap"),
    ("bass", r"bass|sub|808"),
    ("vocals", r"vox|vocal|voc|voice|sing|choir|chorus|bv|lead ?v"),
    ("guitar", r"gtr|guit"),
    ("keys", r"piano|keys|key|rhodes|organ|epiano|wurli|clav|harpsi"),
    ("pad/synth", r"pad|synth|string|strs|arp|saw"),
)


@dataclass
class TrackDecision:
    """What the AI chose for one track, in real units, with the reasons."""

    name: str
    role: str
    role_confidence: float
    gain_db: float
    pan: float
    effects: list[dict] = field(default_factory=list)
    sends: list[dict] = field(default_factory=list)
    silent: bool = False
    reasons: list[str] = field(default_factory=list)
    target_lu: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "name": self.name,
            "role": self.role,
            "role_confidence": round(self.role_confidence, 3),
            "target_lu": round(self.target_lu, 2),
            "gain_db": round(self.gain_db, 2),
            "pan": round(self.pan, 3),
            "effects": self.effects,
            "sends": self.sends,
            "silent": self.silent,
            "reasons": self.reasons,
        }


def role_from_name(name: str) -> str | None:
    """The role a track's name suggests (``"kick_in"`` -> drums), or None."""
    low = name.lower()
    for role, pattern in _HINTS:
        if re.search(pattern, low):
            return role
    return None


def combine_roles(probs: np.ndarray, hint: str | None) -> np.ndarray:
    """The model's role probabilities with the name hint applied (normalised)."""
    p = np.asarray(probs, dtype=np.float64).copy()
    if hint is not None:
        p[ROLES.index(hint)] *= NAME_HINT_WEIGHT
    return p / p.sum()


def target_levels(roles: Sequence[str], model_levels: np.ndarray | None, balance: str) -> np.ndarray:
    """Each track's target loudness relative to the mean track (LU, mean 0)."""
    if balance not in BALANCES:
        raise ParameterError(f"unknown balance {balance!r}; valid: {', '.join(BALANCES)}")
    if balance == "equal" or not roles:
        lv = np.zeros(len(roles))
    elif balance == "rules":
        lv = np.array([RULE_LEVELS_LU[r] for r in roles], dtype=np.float64)
    else:
        if model_levels is None:
            raise ParameterError("the model balance needs the model's levels")
        lv = np.asarray(model_levels, dtype=np.float64)
    return lv - lv.mean() if len(lv) else lv


def fader_gains(loudness: np.ndarray, targets: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """Faders (dB) that bring tracks of ``loudness`` (LUFS) to ``targets`` (LU relative to the mean
    track) with the mix near `MIX_LUFS`; ``intensity`` 0 applies only one common gain."""
    loud = np.asarray(loudness, dtype=np.float64)
    if not len(loud):
        return loud
    level = MIX_LUFS - 10.0 * math.log10(float(np.sum(10.0 ** (np.asarray(targets) / 10.0))))
    full = level + np.asarray(targets) - loud
    current = 10.0 * math.log10(float(np.sum(10.0 ** (loud / 10.0))))
    common = MIX_LUFS - current
    return np.clip(common + intensity * (full - common), -60.0, 24.0)


def balance_pan(position: float, target: float) -> float:
    """The stereo balance value (-1..1, `plugin_bridge.session`'s law) that moves a stereo stem
    whose energy sits at ``position`` to ``target`` (both -1 left .. +1 right)."""
    th_c = (position + 1.0) * math.pi / 4.0
    th_t = (target + 1.0) * math.pi / 4.0
    ratio = math.tan(th_c)  # sqrt(E_R / E_L)
    if ratio <= 1e-6 or ratio > 1e6:
        return 0.0
    t = math.atan(math.tan(th_t) / ratio)
    return float(np.clip(4.0 * t / math.pi - 1.0, -1.0, 1.0))


def balance_power_db(position: float, pan: float) -> float:
    """Power change (dB) of a stereo stem whose energy sits at ``position`` when balanced by ``pan``
    (`plugin_bridge.session`'s law: the far side faded, the near side up to +3 dB)."""
    th = (position + 1.0) * math.pi / 4.0
    t = (pan + 1.0) * math.pi / 4.0
    ratio = 2.0 * math.cos(t) ** 2 * math.cos(th) ** 2 + 2.0 * math.sin(t) ** 2 * math.sin(th) ** 2
    return 10.0 * math.log10(max(ratio, 1e-12))


def stereo_pan_move(position: float, target: float) -> tuple[float, float, float]:
    """``(balance, reached position, power change dB)`` moving a stereo stem from ``position``
    toward ``target``: the whole way if that costs at most `MAX_BALANCE_LOSS_DB` of its power,
    else as far as that allows (a hard-panned stem cannot be centred by a balance control)."""
    for step in range(10, -1, -1):
        reach = position + 0.1 * step * (target - position)
        pan = balance_pan(position, reach)
        loss = balance_power_db(position, pan)
        if loss >= -MAX_BALANCE_LOSS_DB or step == 0:
            return pan, reach, loss
    return 0.0, position, 0.0  # pragma: no cover - the loop always returns


def pan_targets(roles: Sequence[str], centroids: Sequence[float]) -> list[float]:
    """Target positions: centre roles at 0; the others spread in pairs, left then right, ordered by
    role and brightness (the first pair at +-0.3, each next pair 0.15 wider, up to `MAX_SPREAD`)."""
    out = [0.0] * len(roles)
    side = [i for i, r in enumerate(roles) if r not in CENTRE_ROLES]
    if len(side) < 2:
        return out
    side.sort(key=lambda i: (ROLES.index(roles[i]), centroids[i]))
    for k, i in enumerate(side):
        width = min(MAX_SPREAD, 0.3 + 0.15 * (k // 2))
        out[i] = -width if k % 2 == 0 else width
    return out


def highpass_for(a: TrackAnalysis, role: str) -> float | None:
    """The high-pass corner (Hz) for a track, or None where it has useful lows."""
    corner = 0.8 * a.low_cut_hz
    corner = min(corner, HIGHPASS_MAX_HZ.get(role, HIGHPASS_CAP_HZ))
    return round(corner, 1) if corner >= (HIGHPASS_MIN_HZ if role not in HIGHPASS_MAX_HZ else 25.0) else None


def compression_for(a: TrackAnalysis, role: str) -> dict | None:
    """Compressor settings for a track whose crest factor exceeds its role's limit, or None.

    The make-up gain is the loudness the static curve removes, estimated on the track's 93 ms
    frames (peak level against the threshold), so the track's loudness stays where it was."""
    limit, ratio, attack, below = COMPRESSION[role]
    crest = float(a.features[-4])
    if crest <= limit or not len(a.frame_db):
        return None
    threshold = max(-60.0, a.peak_dbfs - below)
    over = np.maximum(a.frame_peak_db - threshold, 0.0)
    reduction = over * (1.0 - 1.0 / ratio)
    p = 10.0 ** (a.frame_db / 10.0)
    drop = 10.0 * math.log10(float(np.sum(p)) / float(np.sum(p * 10.0 ** (-reduction / 10.0))))
    return {
        "threshold_db": round(threshold, 1),
        "ratio": ratio,
        "attack_ms": attack,
        "release_ms": RELEASE_MS,
        "makeup_db": round(float(np.clip(drop, 0.0, 12.0)), 2),
        "crest_db": round(crest, 1),
    }


def _band_index(lo: float, hi: float) -> np.ndarray:
    c = np.asarray(BAND_CENTERS_HZ)
    return np.nonzero((c >= lo) & (c <= hi))[0]


def unmasking_cuts(
    names: Sequence[str], roles: Sequence[str], band_levels: np.ndarray, loudest_melodic: int | None
) -> dict[int, dict]:
    """Peak cuts ``{track index: {cutoff_hz, gain_db, q, for}}`` that clear each lead track's focus
    band of lower-priority tracks. ``band_levels``: (tracks, bands) third-octave levels in the mix
    after the faders (dB)."""
    leads = [i for i, r in enumerate(roles) if r in FOCUS_HZ]
    focus = {i: FOCUS_HZ[roles[i]] for i in leads}
    if "vocals" not in roles and loudest_melodic is not None:
        focus[loudest_melodic] = FOCUS_HZ["vocals"]
    cuts: dict[int, dict] = {}
    for lead, (lo, hi) in focus.items():
        bands = _band_index(lo, hi)
        b = int(bands[np.argmax(band_levels[lead, bands])])
        for j in range(len(roles)):
            pj, pl = PRIORITY[roles[j]], PRIORITY[roles[lead]]
            if j == lead or j in focus or pj > pl or (pj == pl and lead in leads):
                continue
            excess = band_levels[j, b] - (band_levels[lead, b] - MASK_MARGIN_DB)
            if excess <= 0:
                continue
            gain = -float(np.clip(excess + 2.0, 2.0, 6.0))
            if j not in cuts or gain < cuts[j]["gain_db"]:
                cuts[j] = {
                    "cutoff_hz": round(BAND_CENTERS_HZ[b], 1),
                    "gain_db": round(gain, 1),
                    "q": UNMASK_Q,
                    "for": names[lead],
                }
    return cuts


def decide_mix(
    names: Sequence[str],
    analyses: Sequence[TrackAnalysis],
    role_probs: np.ndarray | None,
    model_levels: np.ndarray | None,
    balance: str = "model",
    intensity: float = 1.0,
) -> list[TrackDecision]:
    """Every track's decisions. ``role_probs`` (active tracks, 7) and ``model_levels`` (active
    tracks,) are the model's outputs for the non-silent tracks, in order; ``balance`` picks the
    fader targets (``model``, ``rules`` or ``equal``); ``intensity`` (0..1) scales every move."""
    if not 0.0 <= intensity <= 1.0:
        raise ParameterError(f"intensity {intensity} is outside 0..1")
    active = [i for i, a in enumerate(analyses) if not a.silent]
    out = [
        TrackDecision(n, "other", 0.0, 0.0, 0.0, silent=True, reasons=["silent: kept silent, no processing"])
        for n in names
    ]
    if not active:
        return out
    probs = []
    for k, i in enumerate(active):
        p = role_probs[k] if role_probs is not None else np.full(len(ROLES), 1.0 / len(ROLES))
        probs.append(combine_roles(p, role_from_name(names[i])))
    roles = [ROLES[int(np.argmax(p))] for p in probs]
    a_act = [analyses[i] for i in active]
    targets = target_levels(roles, model_levels, balance)
    comps = [compression_for(a, r) if intensity > 0 else None for a, r in zip(a_act, roles, strict=True)]
    loud = np.array([a.loudness_lufs for a in a_act])
    gains = fader_gains(loud, targets, intensity)
    band_levels = np.stack([loud[k] + gains[k] + a.band_db for k, a in enumerate(a_act)])
    melodic = [k for k, r in enumerate(roles) if r not in ("drums", "bass", "pad/synth")]
    loudest = max(melodic, key=lambda k: targets[k]) if melodic else None
    cuts = unmasking_cuts([names[i] for i in active], roles, band_levels, loudest) if intensity > 0 else {}
    centroids = [float(a.features[len(BAND_CENTERS_HZ)]) for a in a_act]
    pans = pan_targets(roles, centroids)
    for k, i in enumerate(active):
        a, role = a_act[k], roles[k]
        d = out[i]
        d.silent, d.role, d.role_confidence = False, role, float(np.max(probs[k]))
        d.target_lu = float(targets[k])
        d.gain_db = float(gains[k])
        hint = role_from_name(names[i])
        d.reasons = [
            f"role {role} ({100 * d.role_confidence:.0f} %"
            + (f", name hint {hint}" if hint else "")
            + f"); measured {a.loudness_lufs:.1f} LUFS, target {targets[k]:+.1f} LU against the mean track "
            f"({balance} balance) -> fader {gains[k]:+.1f} dB"
        ]
        target_pos = intensity * pans[k] + (1.0 - intensity) * a.pan
        why = "centre role" if role in CENTRE_ROLES else "spread"
        if a.channels == 1:
            d.pan = target_pos
            d.reasons.append(f"pan: {why}; position {target_pos:+.2f}")
        else:
            d.pan, reached, power_db = stereo_pan_move(a.pan, target_pos)
            d.gain_db = float(np.clip(d.gain_db - power_db, -60.0, 24.0))  # the balance's loss restored
            d.reasons.append(
                f"pan: {why}; stereo position {a.pan:+.2f} -> {reached:+.2f} (balance {d.pan:+.2f}"
                + (f", fader {-power_db:+.1f} dB for the balance's loss" if abs(power_db) >= 0.05 else "")
                + ")"
            )
        hp = highpass_for(a, role) if intensity > 0 else None
        if hp is not None:
            d.effects.append({"id": "hpf", "type": "highpass", "params": {"cutoff_hz": hp}})
            d.reasons.append(f"high-pass {hp:.0f} Hz: 0.5 % of its power lies below {a.low_cut_hz:.0f} Hz")
        if k in cuts:
            c = cuts[k]
            gain = round(intensity * c["gain_db"], 1)
            d.effects.append(
                {
                    "id": "unmask",
                    "type": "peak",
                    "params": {"cutoff_hz": c["cutoff_hz"], "gain_db": gain, "q": c["q"]},
                }
            )
            d.reasons.append(
                f"unmasking: {gain:+.1f} dB at {c['cutoff_hz']:.0f} Hz, where it covers {c['for']!r}"
            )
        comp = comps[k]
        if comp is not None:
            params = {x: comp[x] for x in ("threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db")}
            params["ratio"] = round(1.0 + intensity * (params["ratio"] - 1.0), 2)
            d.effects.append({"id": "comp", "type": "compressor", "params": params})
            d.reasons.append(
                f"compression {params['ratio']:g}:1 at {params['threshold_db']:.1f} dBFS: crest factor "
                f"{comp['crest_db']:.1f} dB above the {role} limit {COMPRESSION[role][0]:.0f} dB"
            )
        rv, dl = SENDS_DB[role]
        for bus, level in ((REVERB_BUS, rv), (DELAY_BUS, dl)):
            if level is not None and intensity > 0:
                d.sends.append({"bus": bus, "level_db": level, "pre_fader": False})
        if d.sends:
            d.reasons.append("sends: " + ", ".join(f"{s['bus']} {s['level_db']:+.0f} dB" for s in d.sends))
        if a.clipped_samples:
            d.reasons.append(
                f"the stem clips ({a.clipped_samples} samples at full scale): fix it at the source"
            )
    return out


def bus_dicts(used: Mapping[str, bool]) -> list[dict]:
    """The shared reverb and delay buses that at least one track sends to."""
    buses = []
    if used.get(REVERB_BUS):
        buses.append(
            {
                "name": REVERB_BUS,
                "chain": {
                    "effects": [
                        {
                            "id": "rev",
                            "type": "reverb",
                            "params": {
                                "room_size": 0.6,
                                "damping": 0.5,
                                "wet_level": 0.35,
                                "dry_level": 0.0,
                                "width": 1.0,
                            },
                        }
                    ]
                },
            }
        )
    if used.get(DELAY_BUS):
        buses.append(
            {
                "name": DELAY_BUS,
                "chain": {
                    "effects": [
                        {"id": "hpf", "type": "highpass", "params": {"cutoff_hz": 200.0}},
                        {
                            "id": "dly",
                            "type": "delay",
                            "params": {"delay_ms": 375.0, "feedback": 0.3, "mix": 1.0},
                        },
                    ]
                },
            }
        )
    return buses
