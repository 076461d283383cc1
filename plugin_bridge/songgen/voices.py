"""The built-in synth: renders MIDI notes with numpy when fluidsynth or a soundfont is missing.

Drums are synthesized per GM drum note (sine-sweep kicks and toms, tone-plus-noise snares,
808-style metallic hats and cymbals, with a closed hat choking an open one) and panned like a kit.
Melodic notes use one voice per GM program family (piano, chromatic percussion, organ, guitar,
bass, strings, ensemble, brass, reed, pipe, synth lead, synth pad): band-limited wavetables whose
spectrum fades from bright to dull over a note (a cheap subtractive filter envelope), an ADSR
amplitude envelope, vibrato and a stereo detune for strings and pads. Velocity scales amplitude as
(velocity / 127)^2 (fluidsynth's default curve). Everything is a pure function of the notes and
the sample rate: no randomness beyond fixed-seed noise, so renders are bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, lfilter

from .parts import NoteEvent

#: Output gain of the built-in synth, chosen so its parts sit near fluidsynth's (TimGM6mb, gain 0.6).
MASTER_GAIN = 0.25
_TABLE = 2048


@dataclass(frozen=True)
class Voice:
    """A melodic voice: harmonic amplitudes (k = 1, 2, ...), ``dull`` the time constant (harmonics)
    of the spectrum it fades to, ``tilt_s`` how fast it gets there (s; inf = stays bright), ``floor``
    the share of brightness that remains; ADSR times in seconds, sustain as a level 0-1; detune
    (cents, L/R), vibrato rate (Hz) and depth (cents), and a level (linear)."""

    harmonics: tuple[float, ...]
    dull: float = 2.0
    tilt_s: float = math.inf
    floor: float = 0.0
    attack_s: float = 0.005
    decay_s: float = 0.5
    sustain: float = 0.7
    release_s: float = 0.1
    detune_cents: float = 0.0
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    level: float = 1.0
    pitch_decay: bool = False  # decay shortens with pitch (struck and plucked strings)


def _saw(n: int, power: float = 1.0, rolloff: float = math.inf) -> tuple[float, ...]:
    """Harmonics 1..n at 1/k^power, times exp(-(k-1)/rolloff)."""
    return tuple(k**-power * math.exp(-(k - 1) / rolloff) for k in range(1, n + 1))


def _odd(n: int, even: float = 0.0) -> tuple[float, ...]:
    """Harmonics 1..n at 1/k, even ones scaled by ``even`` (0: a square wave)."""
    return tuple((1.0 if k % 2 else even) / k for k in range(1, n + 1))


def _partials(spec: dict[int, float]) -> tuple[float, ...]:
    return tuple(spec.get(k, 0.0) for k in range(1, max(spec) + 1))


_PLUCK = {"attack_s": 0.002, "sustain": 0.0, "pitch_decay": True}  # struck or plucked: dies away
_BOWED = {"sustain": 0.85, "vibrato_hz": 5.0}  # held with vibrato


def _bright(dull: float, tilt_s: float, floor: float = 0.0) -> dict:
    return {"dull": dull, "tilt_s": tilt_s, "floor": floor}


_STRINGS = Voice(
    _saw(40, rolloff=8),
    attack_s=0.25,
    decay_s=0.5,
    release_s=0.5,
    detune_cents=8,
    vibrato_cents=6,
    level=0.54,
    **_BOWED,
)
_EPIANO = Voice(
    _partials({1: 1, 2: 0.3, 3: 0.1, 7: 0.06, 9: 0.03}),
    decay_s=1.5,
    release_s=0.3,
    level=0.62,
    **_bright(1.0, 0.15),
    **_PLUCK,
)
_MARIMBA = Voice(
    _partials({1: 1, 4: 0.4, 10: 0.1}),
    decay_s=0.35,
    release_s=0.1,
    level=0.75,
    **_bright(1.0, 0.05),
    **_PLUCK,
)
_SYNTH_BASS = Voice(
    _saw(30), attack_s=0.003, decay_s=0.4, sustain=0.6, release_s=0.06, level=0.9, **_bright(3.0, 0.12, 0.15)
)
_HARP = Voice(_saw(16, 2.0), decay_s=1.5, release_s=0.3, level=1.0, **_bright(2.0, 0.3, 0.2), **_PLUCK)
_REED = {"attack_s": 0.03, "decay_s": 0.2, "release_s": 0.1, **_BOWED}
_LEAD = {"attack_s": 0.005, "decay_s": 0.2, "sustain": 0.8, "release_s": 0.08}
#: One voice per GM family (program // 8).
_FAMILY_VOICES = {
    0: Voice(_saw(16, 1.3), decay_s=1.4, release_s=0.3, level=0.4, **_bright(3.5, 0.35, 0.3), **_PLUCK),
    1: Voice(
        _partials({1: 1, 4: 0.35, 10: 0.12}),
        decay_s=1.0,
        release_s=0.25,
        level=0.9,
        **_bright(1.0, 0.08),
        **_PLUCK,
    ),
    2: Voice(
        _partials({1: 1, 2: 0.8, 3: 0.4, 4: 0.3, 6: 0.15, 8: 0.1}),
        attack_s=0.01,
        decay_s=0.1,
        sustain=1.0,
        release_s=0.06,
        level=0.8,
    ),
    3: Voice(_saw(20), decay_s=1.0, release_s=0.12, level=0.67, **_bright(3.0, 0.12, 0.1), **_PLUCK),
    4: Voice(
        _saw(16, 1.2),
        attack_s=0.004,
        decay_s=1.2,
        sustain=0.25,
        release_s=0.08,
        level=0.76,
        pitch_decay=True,
        **_bright(4.0, 0.3, 0.4),
    ),
    5: _STRINGS,
    6: _STRINGS,
    7: Voice(
        _saw(30),
        attack_s=0.04,
        decay_s=0.3,
        sustain=0.8,
        release_s=0.12,
        vibrato_hz=5.5,
        vibrato_cents=8,
        level=0.95,
        **_bright(5.0, 0.3, 0.6),
    ),
    8: Voice(_odd(24, even=0.6), vibrato_cents=12, level=1.1, **_bright(4.0, 0.4, 0.7), **_REED),
    9: Voice(
        _partials({1: 1, 2: 0.25, 3: 0.1, 4: 0.05}),
        attack_s=0.06,
        decay_s=0.2,
        sustain=0.9,
        release_s=0.12,
        vibrato_hz=5.0,
        vibrato_cents=10,
        level=0.9,
    ),
    10: Voice(_saw(40), level=1.06, **_bright(6.0, 0.2, 0.5), **_LEAD),
    11: Voice(
        _saw(30, rolloff=5),
        attack_s=0.4,
        decay_s=1.0,
        sustain=0.8,
        release_s=0.8,
        detune_cents=10,
        level=0.43,
    ),
}
#: Programs whose family voice would be wrong.
_PROGRAM_VOICES = {
    4: _EPIANO,
    5: _EPIANO,
    8: _MARIMBA,  # celesta
    11: Voice(
        _partials({1: 1, 4: 0.3}), decay_s=1.6, release_s=0.3, level=1.05, **_bright(1.0, 0.2, 0.2), **_PLUCK
    ),
    12: _MARIMBA,
    38: _SYNTH_BASS,
    39: _SYNTH_BASS,
    45: _HARP,  # pizzicato strings
    46: _HARP,
    71: Voice(_odd(25), vibrato_cents=8, level=0.75, **_bright(5.0, 0.5, 0.6), **_REED),  # clarinet
    80: Voice(_odd(40), level=0.84, **_bright(6.0, 0.2, 0.5), **_LEAD),  # square lead
}


def voice_for(program: int) -> Voice:
    """The voice that plays GM ``program`` (0-127): a program's own voice, else its family's."""
    if program in _PROGRAM_VOICES:
        return _PROGRAM_VOICES[program]
    return _FAMILY_VOICES.get(program // 8, _FAMILY_VOICES[10])


@lru_cache(maxsize=512)
def _table(harmonics: tuple[float, ...], dull: float, count: int) -> np.ndarray:
    """One cycle (`_TABLE` + 1 points, peak 1) of the first ``count`` harmonics, each scaled by
    exp(-(k-1)/dull) when ``dull`` > 0."""
    k = np.arange(1, min(count, len(harmonics)) + 1)
    amps = np.asarray(harmonics[: len(k)]) * (np.exp(-(k - 1) / dull) if dull > 0 else 1.0)
    x = np.sin(2 * np.pi * np.outer(k, np.arange(_TABLE + 1) / _TABLE)).T @ amps
    return x / max(np.abs(x).max(), 1e-9)


def _lookup(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    pos = (phase % 1.0) * _TABLE
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] + frac * (table[i + 1] - table[i])


def _envelope(v: Voice, n_on: int, n: int, sr: int, decay_s: float) -> np.ndarray:
    t = np.arange(n) / sr
    attack = max(v.attack_s, 1e-4)
    env = np.where(t < attack, t / attack, v.sustain + (1 - v.sustain) * np.exp(-(t - attack) / decay_s))
    if n > n_on:
        x = (t[n_on:] - t[n_on]) / max(v.release_s, 1e-3)
        env[n_on:] = env[max(n_on - 1, 0)] * np.clip(1.0 - x, 0.0, 1.0) ** 2
    return env


def render_voice(note: NoteEvent, sr: int) -> tuple[int, np.ndarray]:
    """One melodic note as ``(start sample, (2, n) float64)`` including its release tail."""
    v = voice_for(note.program)
    f = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
    start = round(note.start_s * sr)
    n_on = max(1, round(note.end_s * sr) - start)
    n = n_on + round(v.release_s * sr)
    decay = v.decay_s * (float(np.clip((261.6 / f) ** 0.5, 0.3, 2.5)) if v.pitch_decay else 1.0)
    env = _envelope(v, n_on, n, sr, decay)
    t = np.arange(n) / sr
    count = max(1, int(0.45 * sr / f))
    bright = _table(v.harmonics, 0.0, count)
    dull = _table(v.harmonics, v.dull, count) if math.isfinite(v.tilt_s) else None
    if dull is not None:
        vel_tilt = v.tilt_s * (0.5 + note.velocity / 127.0)
        mix = v.floor + (1 - v.floor) * np.exp(-t / vel_tilt)
    chans = []
    for side, sign in enumerate((-1.0, 1.0) if v.detune_cents else (0.0,)):
        fs = f * 2.0 ** (sign * v.detune_cents / 1200.0)
        phase = fs * t + 0.25 * side
        if v.vibrato_hz:
            depth = fs * v.vibrato_cents * math.log(2) / 1200.0
            phase = phase + depth / (2 * np.pi * v.vibrato_hz) * (1 - np.cos(2 * np.pi * v.vibrato_hz * t))
        x = _lookup(bright, phase)
        if dull is not None:
            x = _lookup(dull, phase) + (x - _lookup(dull, phase)) * mix
        chans.append(x)
    amp = v.level * (note.velocity / 127.0) ** 2 * note.gain
    audio = np.stack(chans if len(chans) == 2 else chans * 2) * (env * amp)
    return start, audio


def _noise(n: int, seed: int) -> np.ndarray:
    """Deterministic uniform white noise in [-1, 1) (uniform doubles are stable across numpy versions)."""
    return np.random.default_rng(seed).random(n) * 2.0 - 1.0


def _filt(x: np.ndarray, sr: int, kind: str, hz: float | tuple[float, float]) -> np.ndarray:
    nyq = sr / 2.0
    wn = [min(h / nyq, 0.99) for h in hz] if isinstance(hz, tuple) else min(hz / nyq, 0.99)
    b, a = butter(2, wn, btype=kind)
    return lfilter(b, a, x)


def _metal(t: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The TR-808 cymbal source: six detuned square waves."""
    return sum(
        np.sign(np.sin(2 * np.pi * f * scale * t + k))
        for k, f in enumerate((205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    )


_TOM_HZ = {41: 80.0, 43: 95.0, 45: 110.0, 47: 130.0, 48: 150.0, 50: 175.0}
#: Kit panning (-1 left .. +1 right), drummer's view.
DRUM_PAN = {
    42: 0.3,
    44: 0.3,
    46: 0.3,
    49: -0.4,
    57: 0.45,
    51: 0.4,
    59: 0.4,
    41: -0.45,
    43: -0.3,
    45: -0.1,
    47: 0.05,
    48: 0.15,
    50: 0.3,
}


@lru_cache(maxsize=128)
def drum_sound(pitch: int, sr: int) -> np.ndarray:
    """The one-shot sample (mono float64, peak scaled per instrument) for GM drum note ``pitch``."""

    def time(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    noise_seed = 7919 * pitch
    if pitch in (35, 36):
        t = time(0.5)
        f = 55.0 + 120.0 * np.exp(-t / 0.04)
        x = np.tanh(1.5 * np.sin(2 * np.pi * np.cumsum(f) / sr)) * np.exp(-t / 0.18)
        x += 0.5 * _filt(_noise(len(t), noise_seed), sr, "low", 5000.0) * np.exp(-t / 0.004)
        level = 1.0
    elif pitch in (38, 40):
        t = time(0.4)
        tone = (0.5 * np.sin(2 * np.pi * 185 * t) + 0.3 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.06)
        x = tone + 0.6 * _filt(_noise(len(t), noise_seed), sr, "band", (800.0, 6000.0)) * np.exp(-t / 0.12)
        level = 2.4
    elif pitch == 37:
        t = time(0.15)
        x = _filt(_noise(len(t), noise_seed), sr, "band", (2000.0, 5000.0)) * np.exp(-t / 0.012)
        x += 0.5 * np.sin(2 * np.pi * 1700 * t) * np.exp(-t / 0.02)
        level = 1.5
    elif pitch == 39:
        t = time(0.35)
        env = sum(np.where(t >= d, np.exp(-(t - d) / 0.005), 0.0) for d in (0.0, 0.011, 0.022))
        env = env + np.where(t >= 0.03, 0.6 * np.exp(-(t - 0.03) / 0.08), 0.0)
        x = _filt(_noise(len(t), noise_seed), sr, "band", (1000.0, 3000.0)) * env
        level = 1.3
    elif pitch in (42, 44, 46):
        t = time(0.9 if pitch == 46 else 0.15)
        src = 0.5 * _noise(len(t), noise_seed) + 0.1 * _metal(t)
        x = _filt(src, sr, "band", (5000.0, 13000.0)) * np.exp(-t / (0.25 if pitch == 46 else 0.025))
        level = 0.26 if pitch == 46 else 0.75
    elif pitch in (49, 57, 51, 59):
        ride = pitch in (51, 59)
        t = time(1.5 if ride else 2.5)
        src = (0.2 if ride else 0.6) * _noise(len(t), noise_seed) + 0.15 * _metal(t, 1.6 if ride else 1.0)
        x = _filt(src, sr, "band", (2500.0 if ride else 1500.0, 10000.0)) * np.exp(
            -t / (0.6 if ride else 0.8)
        )
        level = 0.13 if ride else 0.75
    elif pitch in _TOM_HZ:
        t = time(0.6)
        f = _TOM_HZ[pitch] * (1 + 0.5 * np.exp(-t / 0.02))
        x = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.25)
        x += 0.1 * _filt(_noise(len(t), noise_seed), sr, "band", (500.0, 4000.0)) * np.exp(-t / 0.01)
        level = 0.9
    else:
        t = time(0.3)
        x = _filt(_noise(len(t), noise_seed), sr, "high", 5000.0) * np.exp(-t / 0.05)
        level = 0.3
    fade = min(len(x), int(0.005 * sr))
    x[len(x) - fade :] *= np.linspace(1.0, 0.0, fade)
    return x * (level / max(np.abs(x).max(), 1e-9))


def _pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power gains normalised to unity at centre."""
    theta = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


def render_notes(notes: list[NoteEvent], sample_rate: int, n_samples: int) -> np.ndarray:
    """Render ``notes`` into ``(2, n_samples)`` float32 at ``sample_rate`` Hz (channel index 9: drums)."""
    sr = int(sample_rate)
    out = np.zeros((2, n_samples))
    chokes = sorted(round(n.start_s * sr) for n in notes if n.channel == 9 and n.pitch in (42, 44))
    for note in notes:
        if note.channel == 9:
            start = round(note.start_s * sr)
            x = drum_sound(note.pitch, sr) * ((note.velocity / 127.0) ** 2 * note.gain)
            if note.pitch == 46:  # a closed or pedal hat chokes the open hat (GM exclusive class)
                later = [c for c in chokes if c > start]
                if later and later[0] - start < len(x):
                    cut = later[0] - start
                    fade = min(cut, int(0.005 * sr))
                    x = x[:cut].copy()
                    x[cut - fade :] *= np.linspace(1.0, 0.0, fade)
            gl, gr = _pan_gains(DRUM_PAN.get(note.pitch, 0.0))
            audio = np.stack([x * gl, x * gr])
        else:
            start, audio = render_voice(note, sr)
        end = min(n_samples, start + audio.shape[1])
        if start < end:
            out[:, start:end] += audio[:, : end - start]
    return (out * MASTER_GAIN).astype(np.float32)
