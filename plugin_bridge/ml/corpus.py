"""Training material and labels: reference clips mis-mixed by the chain's exact inverse or by foreign
degradations, each label a chain setting that provably brings the input back to its reference.

Protocols (full text in ``models/README.md``):

- **natural** (the shipped models): a *reference* is a `CLIP_S`-second clip of a source song as it is
  (`reference_clip`, level set to `REFERENCE_RMS_DB` dBFS mid RMS).
- **house**: the reference is first balanced to the *house balance* (`HouseBalance`, shipped as
  ``models/house_balance.json``: the training songs' median long-term mid spectrum shape in the 64
  mel bands of the features, median side/mid ratio, `REFERENCE_RMS_DB`) with the chain's own EQs
  until a new fit asks for less than `BALANCED_DB` per band (`balance_reference`), so the label is
  identifiable from the input; clips that cannot be balanced (mono, band-limited) are redrawn.

Then, in both:

1. Draw a corrective vector theta over the *labelled* part of the ``mix-v1`` space (`LABELLED`:
   input gain, the five EQ gains, stereo width); every other parameter is set by `RULE_VALUES`.
2. Build the mis-mixed input with the exact inverse of the chain: width ``1 / w`` (mid/side, exact),
   each RBJ/JUCE biquad with its gain negated at the same frequency and Q (for these cookbook
   shelves and peaks ``H(f; -g) = 1 / H(f; g)`` exactly), and a gain of ``-g`` dB. With the
   compressor off (ratio 1), reverb and delay dry and output at 0 dB, the chain is linear and
   time-invariant, so ``chain(theta)(mis-mix) == reference`` to float rounding: the label provably
   produces the target (`tests/test_ml.py` checks it against the numpy and pedalboard backends).
3. Robustness: a share `ROBUST_SHARE` of examples is degraded instead by EQs the chain does not
   have (random shelf/peak types, corner frequencies and Qs), a width change and a level offset.
   Their label is `house_labels` against the reference's own balance (`clip_balance`, natural) or
   the house balance (house): the EQ gains fitted by least squares to that balance, then the width
   and level that reach it exactly.

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

from ..audio_io import read_audio
from ..backends.dsp.filters import high_shelf_sos, low_shelf_sos, peak_sos
from ..backends.dsp.stereo import apply_width
from ..chain import default_chain, default_space
from ..errors import ParameterError
from ..files import write_atomic
from .features import (
    CLIP_FRAMES,
    FEATURE_SR,
    FLOOR_DB,
    N_FFT,
    N_FRAMES,
    N_GLOBAL,
    N_MELS,
    clip_features,
    mel_centres_hz,
    mel_matrix,
    mid_long_term_power,
    to_feature_rate,
)
from .inference import models_dir

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
    chain = default_chain()
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


def random_degradation(reference: np.ndarray, sample_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Degrade a clip with 1-3 EQs the chain does not have (other shelf/peak corners and Qs, +-6 dB),
    a width change (x 1/1.5 .. 1.5) and a level offset (+-9 dB). Returns float32 ``(2, n)``; its
    label is `house_labels` of the result."""
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
    y = sosfilt(np.concatenate(filters), reference.astype(np.float64), axis=-1)
    return (apply_width(y, width) * 10.0 ** (level_db / 20.0)).astype(np.float32)


# ----------------------------------------------------------------------------- house balance

#: File (in the models folder) holding the shipped `HouseBalance`.
HOUSE_FILE = "house_balance.json"
#: Bounds (dB) of the EQ that balances a reference clip to the house curve.
BALANCE_LIMIT_DB = 12.0
#: Deviations from the house curve are soft-limited to this many dB in the fit (empty bands of
#: band-limited sources then stop pulling the fit).
DEVIATION_LIMIT_DB = 15.0
#: Clips whose side signal is this far below the mid are treated as mono (no width label exists).
MONO_SIDE_DB = -40.0
WIDTH_LIMITS = (0.25, 4.0)
#: A clip is balanced when a new fit asks for less than this (dB) on every band, within this many rounds.
BALANCED_DB = 0.2
BALANCE_ROUNDS = 4


@dataclass(frozen=True)
class HouseBalance:
    """What "well balanced" means to the models: a long-term spectral shape, a width and a level.

    ``curve_db`` is the shape of the long-term mid spectrum in the 64 mel bands of the features
    (dB, band-weighted mean removed; weights = each band's width in octaves), ``side_mid_db`` the
    side/mid mean-square ratio (dB) and ``rms_db`` the mid RMS (dBFS). The shipped balance is the
    median over the training songs (`estimate_house`, written by ``render_scripts/train_models.py``).
    """

    curve_db: tuple[float, ...]
    side_mid_db: float
    rms_db: float = REFERENCE_RMS_DB
    source: str = ""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "curve_db": [round(float(v), 4) for v in self.curve_db],
            "band_centres_hz": [round(float(f), 2) for f in mel_centres_hz()],
            "side_mid_db": round(float(self.side_mid_db), 4),
            "rms_db": float(self.rms_db),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping, where: str = HOUSE_FILE) -> HouseBalance:
        """Parse `to_dict` output; a wrong band count is a `ParameterError`."""
        curve = tuple(float(v) for v in d.get("curve_db", ()))
        if len(curve) != len(mel_centres_hz()):
            raise ParameterError(f"{where}: curve_db needs {len(mel_centres_hz())} values, got {len(curve)}")
        return cls(
            curve, float(d["side_mid_db"]), float(d.get("rms_db", REFERENCE_RMS_DB)), str(d.get("source", ""))
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically)."""

        return write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def load_house(folder: str | os.PathLike | None = None) -> HouseBalance:
    """The `HouseBalance` in ``folder`` (default: the shipped models folder)."""

    path = Path(folder or models_dir()) / HOUSE_FILE
    if not path.is_file():
        raise ParameterError(f"{path}: no house balance (render_scripts/train_models.py writes it)")
    return HouseBalance.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


@lru_cache(maxsize=1)
def band_weights() -> np.ndarray:
    """Weight of each mel band in the balance fit: its width in octaves, normalised to sum 1."""
    c = mel_centres_hz()
    edges = np.concatenate([[c[0] ** 2 / c[1]], c, [c[-1] ** 2 / c[-2]]])
    w = 0.5 * np.log2(edges[2:] / edges[:-2])
    return w / w.sum()


@lru_cache(maxsize=2)
def _bins_z(sample_rate: float = FEATURE_SR) -> tuple[np.ndarray, np.ndarray]:
    z1 = np.exp(-2j * np.pi * np.fft.rfftfreq(N_FFT, 1.0 / sample_rate) / sample_rate)
    return z1, z1 * z1


def chain_eq_power(gains_db: Sequence[float], sample_rate: float = FEATURE_SR) -> np.ndarray:
    """Power response ``|H|^2`` of the chain's five EQs with ``gains_db`` on the feature FFT bins."""
    z1, z2 = _bins_z(sample_rate)
    total = np.ones(z1.shape)
    for (_, kind, f, q), g in zip(eq_settings(), gains_db, strict=True):
        if g != 0.0:
            b0, b1, b2, _, a1, a2 = _SOS[kind](sample_rate, f, float(g), q)[0]
            h = (b0 + b1 * z1 + b2 * z2) / (1.0 + a1 * z1 + a2 * z2)
            total = total * (h.real**2 + h.imag**2)
    return total


def band_db(power_bins: np.ndarray) -> np.ndarray:
    """Long-term mel-band levels (dB, floor `FLOOR_DB`) of a per-bin power spectrum."""
    return 10.0 * np.log10(np.maximum(mel_matrix().astype(np.float64) @ power_bins, 10.0 ** (FLOOR_DB / 10)))


def shape_db(levels_db: np.ndarray) -> np.ndarray:
    """Band levels with their band-weighted mean removed (the spectral shape, dB)."""
    return levels_db - float(np.sum(band_weights() * levels_db))


@lru_cache(maxsize=1)
def _band_basis() -> np.ndarray:
    """Shape response (dB per mel band) of each chain EQ at +1 dB on a flat spectrum: ``(64, 5)``."""
    flat = np.ones(N_FFT // 2 + 1)
    cols = []
    for j in range(len(EQ_SLOTS)):
        unit = np.zeros(len(EQ_SLOTS))
        unit[j] = 1.0
        cols.append(shape_db(band_db(flat * chain_eq_power(unit))))
    return np.stack(cols, axis=1)


@lru_cache(maxsize=1)
def _weighted_pinv() -> np.ndarray:
    """Pseudo-inverse ``(5, 64)`` of the band-weighted `_band_basis`: the linearised fit."""
    return np.linalg.pinv(_band_basis() * np.sqrt(band_weights())[:, None])


def fit_balance(
    power_bins: np.ndarray,
    house: HouseBalance,
    limits_db: Sequence[float] | float = BALANCE_LIMIT_DB,
    iterations: int = 20,
) -> np.ndarray:
    """The five chain EQ gains (dB, within +-``limits_db``) that bring the long-term mid spectrum
    ``power_bins`` to the house curve.

    Deviation = house curve - spectrum shape (dB per mel band, soft-limited to `DEVIATION_LIMIT_DB`,
    weighted by band width in octaves). Iterates ``gains += pinv(basis) @ remaining deviation``
    (projected onto the limits) with the exact responses, the linear unit-gain basis as the
    Jacobian, until a step is below 1e-3 dB: the gains at which the remaining deviation is
    orthogonal to what the chain's EQs can change.
    """
    hi = np.broadcast_to(np.asarray(limits_db, dtype=np.float64), (len(EQ_SLOTS),))
    target = np.asarray(house.curve_db)
    sw = np.sqrt(band_weights())
    pinv = _weighted_pinv()
    lim = DEVIATION_LIMIT_DB
    gains = np.zeros(len(EQ_SLOTS))
    for _ in range(iterations):
        d = target - shape_db(band_db(power_bins * chain_eq_power(gains)))
        step = pinv @ (sw * lim * np.tanh(d / lim))
        new = np.clip(gains + step, -hi, hi)
        done = np.max(np.abs(new - gains)) < 1e-3
        gains = new
        if done:
            break
    return gains


def _mid_ms(x: np.ndarray) -> float:
    return float(np.mean((0.5 * (x[0] + x[1])).astype(np.float64) ** 2))


def side_mid_ratio_db(x: np.ndarray) -> float:
    """Side/mid mean-square ratio (dB) of a ``(2, n)`` clip."""
    s = float(np.mean((0.5 * (x[0] - x[1])).astype(np.float64) ** 2))
    return float(10 * np.log10((s + 1e-20) / (_mid_ms(x) + 1e-20)))


def balance_reference(clip: np.ndarray, house: HouseBalance) -> np.ndarray | None:
    """A clip balanced to ``house``, or None when it cannot be.

    The chain's own EQ is fitted to the house curve (`fit_balance`), up to `BALANCE_ROUNDS` rounds
    (each round fits the spectrum the previous rounds' EQs leave, computed on the FFT bins), until
    a new fit asks for less than `BALANCED_DB` on every band: the clip is then a fixed point of the
    fit, so a mis-mix of it is labelled by the fit too. All rounds' EQs are then applied to the
    audio, the side scaled to the house side/mid ratio and the level set to the house mid RMS.
    None for a silent or mono clip (side more than `MONO_SIDE_DB` below mid) or one the EQ cannot
    balance (e.g. a band-limited source with nothing above 11 kHz). Returns float32 ``(2, n)``.
    """
    if _mid_ms(clip) < 1e-14 or side_mid_ratio_db(clip) < MONO_SIDE_DB:
        return None
    power = mid_long_term_power(clip)
    rounds: list[np.ndarray] = []
    for _ in range(BALANCE_ROUNDS + 1):
        gains = fit_balance(power, house)
        if np.max(np.abs(gains)) < BALANCED_DB:
            break
        rounds.append(gains)
        power = power * chain_eq_power(gains)
    else:
        return None
    y = clip.astype(np.float64)
    for gains in rounds:
        y = _eq(y, FEATURE_SR, gains)
    sm = side_mid_ratio_db(y)
    y = apply_width(y, float(np.clip(10 ** ((house.side_mid_db - sm) / 20), *WIDTH_LIMITS)))
    y = y * (10.0 ** (house.rms_db / 20.0) / math.sqrt(_mid_ms(y)))
    return y.astype(np.float32)


def house_labels(x: np.ndarray, house: HouseBalance) -> dict[str, float]:
    """The chain values (real units) that bring ``x`` to the house balance: the EQ gains fitted to the
    house curve within the space's ranges, the width that reaches the house side/mid ratio after that
    EQ, and the input gain that reaches the house level. This labels the robust examples, and used on
    its own it is the measurement baseline (``house-fit``) of the evaluation table."""
    space = default_space()
    limits = [space.spec(f"{sid}.gain_db").max for sid, _ in EQ_SLOTS]
    gains = fit_balance(mid_long_term_power(x), house, limits)
    y = _eq(x, FEATURE_SR, gains)
    w = 10 ** ((house.side_mid_db - side_mid_ratio_db(y)) / 20)
    level = 10 * math.log10(_mid_ms(y) + 1e-20)
    out = {f"{sid}.gain_db": float(g) for (sid, _), g in zip(EQ_SLOTS, gains, strict=True)}
    out["input.gain_db"] = float(np.clip(house.rms_db - level, -12.0, 12.0))
    out["width.width"] = float(np.clip(w, 0.5, 1.5))
    return out


def clip_balance(clip: np.ndarray) -> HouseBalance:
    """The balance of one ``(2, n)`` clip as it is: its own long-term mid spectrum shape, side/mid
    ratio and mid RMS. `house_labels` against it gives the chain values that bring a degraded copy
    of the clip back to the clip (the label of a natural robust example)."""
    return HouseBalance(
        tuple(float(v) for v in shape_db(band_db(mid_long_term_power(clip)))),
        side_mid_ratio_db(clip),
        10 * math.log10(_mid_ms(clip) + 1e-20),
        "one clip",
    )


def estimate_house(songs: Sequence[np.ndarray], clips_per_song: int = 12, seed: int = 0) -> HouseBalance:
    """The house balance of a set of songs (``(2, n)`` at 44.1 kHz): per band the median over songs of
    each song's mean clip shape, and the median side/mid ratio of all clips."""
    rng = np.random.default_rng(seed)
    shapes, ratios = [], []
    for song in songs:
        per = []
        total = song_mid_ms(song)
        for _ in range(clips_per_song):
            clip = reference_clip(song, rng, total=total)
            ratio = side_mid_ratio_db(clip)
            if ratio > MONO_SIDE_DB:
                ratios.append(ratio)
            per.append(shape_db(band_db(mid_long_term_power(clip))))
        shapes.append(np.mean(per, axis=0))
    curve = np.median(np.stack(shapes), axis=0)
    return HouseBalance(
        tuple(float(v) for v in shape_db(curve)),
        float(np.median(ratios)) if ratios else -12.0,
        REFERENCE_RMS_DB,
        f"median of {len(shapes)} songs, {clips_per_song} clips each (seed {seed})",
    )


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


def song_mid_ms(song: np.ndarray) -> float:
    """Mean square of a (2, n) song's mid signal (computed once per song by the callers)."""
    return float(np.mean((0.5 * (song[0] + song[1])).astype(np.float64) ** 2)) + 1e-20


def reference_clip(
    song: np.ndarray, rng: np.random.Generator, tries: int = 8, total: float | None = None
) -> np.ndarray:
    """A random `CLIP_S`-second clip of a (2, n) song at 44.1 kHz, not much quieter than the song
    (``total``: `song_mid_ms`, computed here if not given), scaled to `REFERENCE_RMS_DB` mid RMS."""
    n = song.shape[1]
    total = song_mid_ms(song) if total is None else total
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


def balanced_clip(
    song: np.ndarray, rng: np.random.Generator, house: HouseBalance, tries: int = 12
) -> np.ndarray | None:
    """A reference: a random clip of ``song`` balanced to ``house`` (`balance_reference`); clips that
    cannot be balanced are redrawn up to ``tries`` times, then None (the song is skipped)."""
    total = song_mid_ms(song)
    for _ in range(tries):
        ref = balance_reference(reference_clip(song, rng, total=total), house)
        if ref is not None:
            return ref
    return None


def make_example(
    reference: np.ndarray,
    rng: np.random.Generator,
    house: HouseBalance | None,
    robust_share: float = ROBUST_SHARE,
) -> tuple[np.ndarray, dict[str, float], bool]:
    """One training pair from a reference clip: ``(mis-mixed clip, labelled values, exact?)``.

    Exact examples are the chain's exact inverse of a random theta (label = theta); robust ones are
    `random_degradation` labelled by `house_labels`: against ``house`` (house protocol: the
    reference is balanced to it) or, with ``house=None`` (natural protocol), against the reference's
    own balance (`clip_balance`): the chain values that bring the degraded clip back to it."""
    if rng.random() < robust_share:
        x = random_degradation(reference, FEATURE_SR, rng)
        return x, house_labels(x, house if house is not None else clip_balance(reference)), False
    theta = random_theta(rng)
    return mismix_exact(reference, FEATURE_SR, theta), theta, True


def normalized_labels(labels: Mapping[str, float]) -> np.ndarray:
    """Labelled values (real units) as the normalized vector over `LABELLED` (clipped to the space)."""
    space = default_space()
    return np.asarray(
        [
            space.spec(k).normalize(float(np.clip(labels[k], space.spec(k).min, space.spec(k).max)))
            for k in LABELLED
        ],
        np.float32,
    )


def _song_examples(args: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path, n, seed, robust_share, house = args

    audio, sr = read_audio(path)
    song = to_feature_rate(audio, sr)
    rng = np.random.default_rng(seed)
    total = song_mid_ms(song)
    mels, globs, ys, exact = [], [], [], []
    for _ in range(n):
        ref = balanced_clip(song, rng, house) if house is not None else reference_clip(song, rng, total=total)
        if ref is None:
            break
        x, labels, is_exact = make_example(ref, rng, house, robust_share)
        m, g = clip_features(x)
        mels.append(m.astype(np.float16))
        globs.append(g)
        ys.append(normalized_labels(labels))
        exact.append(is_exact)
    if not mels:
        empty = np.zeros((0, 2, N_MELS, N_FRAMES), np.float16)
        return (
            empty,
            np.zeros((0, N_GLOBAL), np.float32),
            np.zeros((0, len(LABELLED)), np.float32),
            np.zeros(0, bool),
        )
    return np.stack(mels), np.stack(globs), np.stack(ys), np.asarray(exact)


def make_dataset(
    songs: Sequence[SongRef],
    n: int,
    house: HouseBalance | None,
    seed: int = 0,
    robust_share: float = ROBUST_SHARE,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Up to ``n`` examples spread evenly over ``songs``, each from a reference balanced to ``house``
    (house protocol) or, with ``house=None``, a clip as it is (natural protocol; see `make_example`):
    arrays ``mel`` (n, 2, 64, 64) float16, ``glob`` (n, N_GLOBAL), ``y`` (n, len(LABELLED)) normalized
    labels, ``exact`` (bool), ``song`` (index). A song none of whose clips can be balanced adds none."""
    if not songs:
        raise ParameterError("no songs in this split")
    per = [n // len(songs) + (1 if i < n % len(songs) else 0) for i in range(len(songs))]
    tasks = [
        (s.path, k, seed * 100003 + zlib.crc32(s.name.encode()), robust_share, house)
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
