"""A built-in demo song, synthesized with numpy: no files, no downloads, fully deterministic.

Four parts (kick/snare/hat drums, bass, chord pad, lead) over an eight-bar progression, mixed a
little off-balance on purpose (dull top, boomy low end, narrow) so the default chain has something
to correct. Used by ``make demo`` and by tests that need music-like material.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# A minor progression: Am F C G, as MIDI note numbers (root, third, fifth)
_CHORDS = ((57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62))
_LEAD = (69, 72, 76, 74, 72, 69, 67, 69, 65, 69, 72, 71, 67, 71, 74, 72)


def _hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _place(track: np.ndarray, sound: np.ndarray, at: int) -> None:
    end = min(track.shape[-1], at + sound.shape[-1])
    if at < end:
        track[..., at:end] += sound[..., : end - at]


def demo_stems(seconds: float = 20.0, sample_rate: int = 44100, bpm: float = 110.0, seed: int = 0) -> dict:
    """The demo song's parts as ``{name: (2, samples) float32}`` at ``sample_rate`` Hz."""
    rng = np.random.default_rng(seed)
    sr = int(sample_rate)
    n = int(seconds * sr)
    beat = int(round(60.0 / bpm * sr))
    stems = {k: np.zeros((2, n)) for k in ("drums", "bass", "pad", "lead")}
    t_kick = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * (45 * t_kick + 90 * (1 - np.exp(-t_kick * 30)) / 30)) * np.exp(-t_kick * 9)
    snare_n = int(0.2 * sr)
    snare = (rng.standard_normal(snare_n) * 0.6 + np.sin(2 * np.pi * 190 * np.arange(snare_n) / sr)) * _env(
        snare_n, sr, 0.001, 0.05
    )
    hat_n = int(0.05 * sr)
    hat = lfilter([1, -1], [1, -0.2], rng.standard_normal(hat_n)) * _env(hat_n, sr, 0.0005, 0.012) * 0.3
    for b in range(n // beat + 1):
        at = b * beat
        _place(stems["drums"], np.stack([kick, kick]) * 0.9, at)
        if b % 2 == 1:
            _place(stems["drums"], np.stack([snare * 0.5, snare * 0.45]), at)
        for half in (0, beat // 2):
            _place(stems["drums"], np.stack([hat * 0.6, hat]), at + half)
    bar = 4 * beat
    for i in range(n // bar + 1):
        chord = _CHORDS[i % len(_CHORDS)]
        at = i * bar
        tb = np.arange(bar) / sr
        bass_f = _hz(chord[0] - 24)
        bass = np.tanh(2.5 * np.sin(2 * np.pi * bass_f * tb)) * _env(bar, sr, 0.005, 1.2) * 0.45
        _place(stems["bass"], np.stack([bass, bass]), at)
        pad = sum(
            np.sin(2 * np.pi * _hz(nt) * tb + k) + 0.3 * np.sin(4 * np.pi * _hz(nt) * tb)
            for k, nt in enumerate(chord)
        )
        pad = pad * _env(bar, sr, 0.3, 3.0) * 0.12
        _place(stems["pad"], np.stack([pad, pad * 0.9]), at)
    step = beat // 2
    note_n = int(step * 0.9)
    tn = np.arange(note_n) / sr
    for i in range(n // step + 1):
        f = _hz(_LEAD[i % len(_LEAD)])
        tone = (
            sum(np.sin(2 * np.pi * f * h * tn) / h for h in (1, 2, 3, 4))
            * _env(note_n, sr, 0.01, 0.25)
            * 0.18
        )
        _place(stems["lead"], np.stack([tone * 0.8, tone]), i * step)
    return {k: v.astype(np.float32) for k, v in stems.items()}


def demo_song(seconds: float = 20.0, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """The demo song mixed to ``(2, samples)`` float32, peaking at -3 dBFS, slightly mis-balanced."""
    stems = demo_stems(seconds, sample_rate, seed=seed)
    mix = sum(stems.values())
    # the 'mis-mix': a dull top (one-pole lowpass blend) and a narrow image
    b, a = [0.35], [1.0, -0.65]
    mix = 0.5 * mix + 0.5 * lfilter(b, a, mix, axis=1)
    mid, side = (mix[0] + mix[1]) / 2, (mix[0] - mix[1]) / 2 * 0.6
    mix = np.stack([mid + side, mid - side])
    mix *= 10 ** (-3 / 20) / np.max(np.abs(mix))
    return mix.astype(np.float32)
