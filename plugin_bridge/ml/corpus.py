"""Training material and labels: reference songs, and mis-mixed clips made by the chain's exact inverse.

Protocol (full text in ``models/README.md``):

1. A *reference* is a well-balanced clip of a source song (`CLIP_S` s at 44.1 kHz, stereo), scaled
   to a mid-signal RMS of `REFERENCE_RMS_DB` dBFS.
2. Draw a corrective vector theta over the *labelled* part of the ``mix-v1`` space (`LABELLED`:
   input gain, the five EQ gains, stereo width); every other parameter is set by `RULE_VALUES`.
3. Build the mis-mixed input with the exact inverse of the chain: width ``1 / w`` (mid/side, exact),
   each RBJ/JUCE biquad with its gain negated at the same frequency and Q (for these cookbook
   shelves and peaks ``H(f; -g) = 1 / H(f; g)`` exactly), and a gain of ``-g`` dB. With the
   compressor off (ratio 1), reverb and delay dry and output at 0 dB, the chain is linear and
   time-invariant, so ``chain(theta)(mis-mix) == reference`` to float rounding: the label provably
   produces the target (`tests/test_ml.py` checks it against the numpy render backend).
4. Robustness: a share `ROBUST_SHARE` of examples is degraded instead by EQs the chain does not
   have (random shelf/peak types, corner frequencies and Qs), a width change and a level offset.
   Their label is the chain vector that best undoes the degradation: width and level exactly, the
   five EQ gains by a least-squares fit of the chain's EQ response (dB) to the inverse of the
   degradation's response on a log grid 40 Hz - 16 kHz. These labels are approximate; the fit's
   RMS residual (dB) is kept.

Source songs are split into train / validation / test by song, never by clip (`assign_splits`).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import sosfilt

from ..backends.dsp.filters import high_shelf_sos, low_shelf_sos, peak_sos
from ..backends.dsp.stereo import apply_width
from ..chain import load_chain
from ..errors import ParameterError
from .features import CLIP_FRAMES, FEATURE_SR, clip_features

#: The parameters a model predicts from audio; each label is exact (see the module docstring).
LABELLED: tuple[str, ...] = (
    "input.gain_db",
    "low.gain_db",
    "mid.gain_db",
    "high.gain_db",
    "presence.gain_db",
    "air.gain_db",
    "width.width",
)
#: The EQ slots of the default chain (effect id, type), in chain order.
EQ_SLOTS: tuple[tuple[str, str], ...] = (
    ("low", "low_shelf"),
    ("mid", "peak"),
    ("high", "high_shelf"),
    ("presence", "peak"),
    ("air", "high_shelf"),
)
#: The rule for the parameters that cannot be labelled by inversion (real units). A corrective
#: assistant leaves dynamics and time effects off: compressor at ratio 1 (bypassed), reverb and delay
#: dry, output gain at 0 dB (the mastering stage sets the final loudness). See models/README.md.
RULE_VALUES: dict[str, float] = {
    "comp.threshold_db": 0.0,
    "comp.ratio": 1.0,
    "comp.attack_ms": 10.0,
    "comp.release_ms": 150.0,
    "comp.makeup_db": 0.0,
    "reverb.room_size": 0.5,
    "reverb.wet_level": 0.0,
    "delay.delay_ms": 250.0,
    "delay.feedback": 0.3,
    "delay.mix": 0.0,
    "output.gain_db": 0.0,
}
#: Ranges the corrective theta is drawn from (real units; uniform, width log-uniform).
THETA_RANGES: dict[str, tuple[float, float]] = {
    "input.gain_db": (-9.0, 9.0),
    "low.gain_db": (-6.0, 6.0),
    "mid.gain_db": (-6.0, 6.0),
    "high.gain_db": (-6.0, 6.0),
    "presence.gain_db": (-4.5, 4.5),
    "air.gain_db": (-4.5, 4.5),
    "width.width": (1 / 1.5, 1.5),
}
NEUTRAL_SHARE = 0.15  # chance that each labelled parameter is drawn at its neutral value
ROBUST_SHARE = 0.35  # share of examples degraded by EQs outside the chain (approximate labels)
REFERENCE_RMS_DB = -20.0
SPLITS = ("train", "val", "test")
_SOS = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}


@lru_cache(maxsize=1)
def eq_settings() -> tuple[tuple[str, str, float, float], ...]:
    """``(id, type, cutoff_hz, q)`` of each EQ slot, read from the shipped ``default`` chain."""
    chain = load_chain("default")
    slots = {s.id: s for s in chain.slots}
    return tuple(
        (sid, kind, float(slots[sid].fixed["cutoff_hz"]), float(slots[sid].fixed["q"]))
        for sid, kind in EQ_SLOTS
    )


def full_values(labelled: Mapping[str, float]) -> dict[str, float]:
    """A complete ``mix-v1`` value dict: the labelled values plus `RULE_VALUES` (real units)."""
    out = dict(RULE_VALUES)
    for name in LABELLED:
        out[name] = float(labelled.get(name, 1.0 if name == "width.width" else 0.0))
    return out


def _eq(x: np.ndarray, sample_rate: float, gains_db: Sequence[float]) -> np.ndarray:
    sections = [
        _SOS[kind](sample_rate, f, float(g), q)
        for (_, kind, f, q), g in zip(eq_settings(), gains_db, strict=True)
        if g != 0.0
    ]
    y = x.astype(np.float64)
    return sosfilt(np.concatenate(sections), y, axis=-1) if sections else y


def apply_corrective(audio: np.ndarray, sample_rate: float, values: Mapping[str, float]) -> np.ndarray:
    """The labelled part of the chain, forward: input gain, the five EQs, width, output gain.

    Equals ``render_array(audio, sr, vector=...)`` of the default chain when the rule parameters are
    at `RULE_VALUES` (compressor, reverb, delay off). ``audio`` is ``(2, n)``; returns float32.
    """
    v = full_values(values)
    y = audio.astype(np.float64) * 10.0 ** (v["input.gain_db"] / 20.0)
    y = _eq(y, sample_rate, [v[f"{sid}.gain_db"] for sid, _ in EQ_SLOTS])
    y = apply_width(y, v["width.width"])
    return (y * 10.0 ** (v["output.gain_db"] / 20.0)).astype(np.float32)


def mismix_exact(reference: np.ndarray, sample_rate: float, values: Mapping[str, float]) -> np.ndarray:
    """The exact inverse of `apply_corrective`: ``apply_corrective(mismix_exact(r, v), v) == r``.

    Inverse width ``1 / w``, EQ gains negated at the same cutoff and Q (in reverse order), inverse
    input gain. Returns float32 ``(2, n)``.
    """
    v = full_values(values)
    y = reference.astype(np.float64) * 10.0 ** (-v["output.gain_db"] / 20.0)
    y = apply_width(y, 1.0 / v["width.width"])
    sections = [
        _SOS[kind](sample_rate, f, -v[f"{sid}.gain_db"], q)
        for sid, kind, f, q in reversed(eq_settings())
        if v[f"{sid}.gain_db"] != 0.0
    ]
    if sections:
        y = sosfilt(np.concatenate(sections), y, axis=-1)
    return (y * 10.0 ** (-v["input.gain_db"] / 20.0)).astype(np.float32)


def random_theta(rng: np.random.Generator) -> dict[str, float]:
    """A corrective vector over `LABELLED` in real units, drawn from `THETA_RANGES`."""
    out = {}
    for name, (lo, hi) in THETA_RANGES.items():
        if rng.random() < NEUTRAL_SHARE:
            out[name] = 1.0 if name == "width.width" else 0.0
        elif name == "width.width":
            out[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        else:
            out[name] = float(rng.uniform(lo, hi))
    return out


_GRID_HZ = np.geomspace(40.0, 16000.0, 48)


def _response_db(sos: np.ndarray, sample_rate: float) -> np.ndarray:
    """dB magnitude of one biquad section on the fit grid (closed form; `sos_response_db` agrees)."""
    b0, b1, b2, _, a1, a2 = sos[0]
    z1 = np.exp(-2j * np.pi * _GRID_HZ / sample_rate)
    z2 = z1 * z1
    h = (b0 + b1 * z1 + b2 * z2) / (1.0 + a1 * z1 + a2 * z2)
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-300))


@lru_cache(maxsize=4)
def _unit_responses(sample_rate: float) -> np.ndarray:
    """dB response of each chain EQ at +1 dB on the grid: the linear start of the fit."""
    return np.stack(
        [_response_db(_SOS[k](sample_rate, f, 1.0, q), sample_rate) for _, k, f, q in eq_settings()]
    )


def chain_eq_response_db(gains_db: Sequence[float], sample_rate: float = FEATURE_SR) -> np.ndarray:
    """dB response of the chain's five EQs with ``gains_db`` on the fit grid (40 Hz - 16 kHz)."""
    total = np.zeros_like(_GRID_HZ)
    for (_, kind, f, q), g in zip(eq_settings(), gains_db, strict=True):
        if g != 0.0:
            total += _response_db(_SOS[kind](sample_rate, f, float(g), q), sample_rate)
    return total


def fit_chain_eq(target_db: np.ndarray, sample_rate: float = FEATURE_SR) -> tuple[np.ndarray, float, float]:
    """Chain EQ gains (dB, within the space's ranges) and a broadband offset (dB) whose response best
    matches ``target_db`` on the grid; returns ``(gains, offset_db, rms_residual_db)``."""
    from scipy.optimize import least_squares

    lo = np.array([THETA_RANGES[f"{sid}.gain_db"][0] for sid, _ in EQ_SLOTS] + [-12.0]) * (8 / 6)
    hi = -lo
    lo[3:5], hi[3:5] = -6.0, 6.0
    basis = _unit_responses(sample_rate)
    x0 = np.clip(
        np.linalg.lstsq(np.vstack([basis, np.ones_like(_GRID_HZ)]).T, target_db, rcond=None)[0], lo, hi
    )

    def resid(p: np.ndarray) -> np.ndarray:
        return chain_eq_response_db(p[:5], sample_rate) + p[5] - target_db

    sol = least_squares(resid, x0, bounds=(lo, hi), max_nfev=40, x_scale=3.0)
    r = resid(sol.x)
    return sol.x[:5], float(sol.x[5]), float(np.sqrt(np.mean(r * r)))


def random_degradation(
    reference: np.ndarray, sample_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float], float]:
    """Degrade with EQs the chain does not have, a width change and a level offset.

    Returns ``(degraded (2, n) float32, labelled values (real units), fit residual dB)``.
    """
    filters = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["low_shelf", "high_shelf", "peak"]))
        if kind == "low_shelf":
            f, q = math.exp(rng.uniform(math.log(60), math.log(400))), rng.uniform(0.5, 1.0)
        elif kind == "high_shelf":
            f, q = math.exp(rng.uniform(math.log(1500), math.log(12000))), rng.uniform(0.5, 1.0)
        else:
            f, q = math.exp(rng.uniform(math.log(120), math.log(9000))), rng.uniform(0.5, 2.5)
        filters.append(_SOS[kind](sample_rate, f, float(rng.uniform(-6, 6)), q))
    width = float(math.exp(rng.uniform(math.log(1 / 1.5), math.log(1.5))))
    level_db = float(rng.uniform(-9, 9))
    y = reference.astype(np.float64)
    resp = np.zeros_like(_GRID_HZ)
    y = sosfilt(np.concatenate(filters), y, axis=-1)
    for sos in filters:
        resp += _response_db(sos, sample_rate)
    y = apply_width(y, width) * 10.0 ** (level_db / 20.0)
    gains, offset, residual = fit_chain_eq(-resp, sample_rate)
    labels = {f"{sid}.gain_db": float(g) for (sid, _), g in zip(EQ_SLOTS, gains, strict=True)}
    labels["input.gain_db"] = float(np.clip(-level_db + offset, -12, 12))
    labels["width.width"] = float(np.clip(1.0 / width, 0.5, 1.5))
    return y.astype(np.float32), labels, residual


# ----------------------------------------------------------------------------- songs and splits


@dataclass(frozen=True)
class SongRef:
    """A source song of the corpus: ``name`` (unique), ``source`` (package or generator), ``path``
    (FLAC at 44.1 kHz in the corpus folder) and ``split``."""

    name: str
    source: str
    path: str
    split: str


def assign_splits(names_by_source: Mapping[str, Sequence[str]], seed: int = 0) -> dict[str, str]:
    """Split songs by song: within each source, a seeded permutation puts ~15 % in test, ~15 % in
    validation (each at least one song when the source has three or more), the rest in train."""
    out = {}
    for source in sorted(names_by_source):
        names = sorted(names_by_source[source])
        rng = np.random.default_rng(seed + zlib.crc32(source.encode()))
        order = [names[i] for i in rng.permutation(len(names))]
        n = len(order)
        n_test = max(1, round(0.15 * n)) if n >= 3 else 0
        n_val = max(1, round(0.15 * n)) if n >= 3 else 0
        for i, name in enumerate(order):
            out[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def load_manifest(corpus_dir: str | os.PathLike) -> list[SongRef]:
    """The songs of a corpus built by ``render_scripts/build_corpus.py`` (``manifest.json``)."""
    path = Path(corpus_dir) / "manifest.json"
    if not path.is_file():
        raise ParameterError(f"{path}: no corpus manifest (run render_scripts/build_corpus.py first)")
    data = json.loads(path.read_text(encoding="utf-8"))
    return [SongRef(**s) for s in data["songs"]]


def reference_clip(song: np.ndarray, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """A random `CLIP_S`-second clip of a (2, n) song at 44.1 kHz, not much quieter than the song,
    scaled to `REFERENCE_RMS_DB` mid RMS."""
    n = song.shape[1]
    total = float(np.mean((0.5 * (song[0] + song[1])).astype(np.float64) ** 2)) + 1e-20
    clip = song[:, :CLIP_FRAMES]
    for _ in range(tries):
        s = int(rng.integers(0, max(1, n - CLIP_FRAMES)))
        clip = song[:, s : s + CLIP_FRAMES]
        if np.mean((0.5 * (clip[0] + clip[1])).astype(np.float64) ** 2) > 0.05 * total:
            break
    if clip.shape[1] < CLIP_FRAMES:
        clip = np.pad(clip, ((0, 0), (0, CLIP_FRAMES - clip.shape[1])))
    ms = float(np.mean((0.5 * (clip[0] + clip[1])).astype(np.float64) ** 2))
    gain = 10.0 ** (REFERENCE_RMS_DB / 20.0) / math.sqrt(ms) if ms > 1e-14 else 1.0
    return (clip * gain).astype(np.float32)


def make_example(
    reference: np.ndarray, rng: np.random.Generator, robust_share: float = ROBUST_SHARE
) -> tuple[np.ndarray, dict[str, float], bool]:
    """One training pair from a reference clip: ``(mis-mixed clip, labelled values, exact?)``."""
    if rng.random() < robust_share:
        x, labels, _ = random_degradation(reference, FEATURE_SR, rng)
        return x, labels, False
    theta = random_theta(rng)
    return mismix_exact(reference, FEATURE_SR, theta), theta, True


def _song_examples(args: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path, n, seed, robust_share = args
    from ..audio_io import read_audio
    from .features import to_feature_rate

    audio, sr = read_audio(path)
    song = to_feature_rate(audio, sr)
    rng = np.random.default_rng(seed)
    space = load_chain("default").space
    mels, globs, ys, exact = [], [], [], []
    for _ in range(n):
        ref = reference_clip(song, rng)
        x, labels, is_exact = make_example(ref, rng, robust_share)
        m, g = clip_features(x)
        mels.append(m.astype(np.float16))
        globs.append(g)
        ys.append(
            [
                space.spec(k).normalize(float(np.clip(labels[k], space.spec(k).min, space.spec(k).max)))
                for k in LABELLED
            ]
        )
        exact.append(is_exact)
    return np.stack(mels), np.stack(globs), np.asarray(ys, np.float32), np.asarray(exact)


def make_dataset(
    songs: Sequence[SongRef], n: int, seed: int = 0, robust_share: float = ROBUST_SHARE, workers: int = 1
) -> dict[str, np.ndarray]:
    """``n`` examples spread evenly over ``songs``: arrays ``mel`` (n, 2, 64, 64) float16, ``glob``
    (n, 24), ``y`` (n, len(LABELLED)) normalized labels, ``exact`` (bool), ``song`` (index)."""
    if not songs:
        raise ParameterError("no songs in this split")
    per = [n // len(songs) + (1 if i < n % len(songs) else 0) for i in range(len(songs))]
    tasks = [
        (s.path, k, seed * 100003 + zlib.crc32(s.name.encode()), robust_share)
        for s, k in zip(songs, per, strict=True)
        if k
    ]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_song_examples, tasks)
    else:
        parts = [_song_examples(t) for t in tasks]
    idx = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    return {
        "mel": np.concatenate([p[0] for p in parts]),
        "glob": np.concatenate([p[1] for p in parts]),
        "y": np.concatenate([p[2] for p in parts]),
        "exact": np.concatenate([p[3] for p in parts]),
        "song": idx,
    }
