"""Training material: reference clips of finished songs as band frames, damaged and corrected in the
band domain.

Protocol (full text in ``models/README.md``):

1. **References.** Random `CLIP_S`-second clips of the corpus songs as they are (clips much quieter
   than their song are redrawn), analysed once into band frames (`features.band_frames`). A clip
   keeps its own balance and width: the models learn what finished music sounds like, not a house
   curve.
2. **Damage**, drawn afresh for every training step (`draw_training_damage`): a tier of
   `plugin_bridge.ml.degrade` (clear faults, middle, matters of taste) or none at all, in the shares
   `TIER_SHARES`. Its filters' power response on the FFT bins, pooled to the bands, and its width
   factor act on the reference's band frames exactly as on the audio (`damage_bands`; the tests
   compare the features of damaged audio with those of damaged band frames).
3. **Song variety**: before the damage, every reference also gets a fresh matters-of-taste change
   (`VARIETY_TIER`, on reference and damaged copy alike): a new "song" whose own balance and width
   differ by as much as a song's taste may. A model cannot then learn the training songs' exact
   balances by heart; it learns what is out of the range of finished music, which is what
   generalises to music it never heard and leaves a song's character alone.
4. **Target**: no parameter label. The training loss (`plugin_bridge.ml.train`) corrects the
   damaged frames through an exact model of the chain's EQ and width (`plugin_bridge.ml.eqresponse`)
   and measures what the benchmark measures: the long-term balance and the side/mid ratio against
   the reference's. The least-squares chain setting (`oracle_moves`) is an auxiliary target for the
   models' uncertainty only.

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

from ..audio_io import read_audio
from ..errors import ParameterError
from .degrade import TIERS, Damage, damage_sos, draw_damage, sos_power
from .eqresponse import eq_band_power, eq_slots, pool_bands
from .features import (
    CLIP_FRAMES,
    FEATURE_SR,
    N_BANDS,
    balance_db,
    band_frames,
    bin_freqs_hz,
    side_mid_ratio_db,
    to_feature_rate,
)

SPLITS = ("train", "val", "test")
#: Share of training examples per damage tier; ``none`` leaves the clip as it is (level aside).
TIER_SHARES: dict[str, float] = {"none": 0.1, "taste": 0.25, "middle": 0.3, "clear": 0.35}
#: The tier whose changes make a reference a new, equally finished song (see the module docstring).
VARIETY_TIER = "taste"
#: Range of every corrective move (dB): EQ gains and the width as 20 log10(width).
MOVE_LIMIT_DB = 12.0
#: Bands whose reference share is below this (dB) are left out of the balance loss (empty bands).
EMPTY_BAND_DB = -70.0
#: Clips whose side is this far below the mid are mono: no width target.
MONO_SIDE_DB = -40.0


# ----------------------------------------------------------------------------- damage in bands


def damage_bands(damage: Damage) -> tuple[np.ndarray, float, float]:
    """``(band power response (N_BANDS,), width factor, amplitude gain)`` of a damage."""
    h = pool_bands(sos_power(damage_sos(damage, FEATURE_SR), bin_freqs_hz(), FEATURE_SR))
    return h, float(damage.width), float(10.0 ** (damage.level_db / 20.0))


def draw_training_damage(rng: np.random.Generator) -> Damage:
    """A damage drawn from the training mix of tiers (`TIER_SHARES`)."""
    names = list(TIER_SHARES)
    tier = names[int(rng.choice(len(names), p=list(TIER_SHARES.values())))]
    if tier == "none":
        return Damage((), 1.0, float(rng.uniform(-12.0, -3.0)), "none")
    return draw_damage(rng, tier)


def damage_batch(
    rng: np.random.Generator, n: int, tier: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``n`` damages (the training mix of tiers, or all of ``tier``): band responses ``(n, N_BANDS)``,
    widths ``(n,)``, gains ``(n,)`` and tier names."""
    hs, ws, gs, tiers = [], [], [], []
    for _ in range(n):
        d = draw_training_damage(rng) if tier is None else draw_damage(rng, tier)
        h, w, g = damage_bands(d)
        hs.append(h)
        ws.append(w)
        gs.append(g)
        tiers.append(d.tier)
    return np.stack(hs), np.asarray(ws), np.asarray(gs), tiers


@dataclass
class DamagePool:
    """Pre-drawn damages in band form, sampled with replacement by the training loop (drawing and
    pooling a filter response costs more than a training step's share): ``h`` ``(n, N_BANDS)``,
    ``width`` and ``gain`` ``(n,)``."""

    h: np.ndarray
    width: np.ndarray
    gain: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, tier: str | None = None) -> DamagePool:
        """``n`` damages as `damage_batch` draws them."""
        h, w, g, _ = damage_batch(rng, n, tier)
        return cls(h, w, g)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` damages drawn from the pool."""
        i = rng.integers(0, len(self.h), n)
        return self.h[i], self.width[i], self.gain[i]


# ----------------------------------------------------------------------------- oracle moves


def _basis() -> np.ndarray:
    """Balance change (dB per band) of each EQ slot at +6 dB, divided by 6, plus a constant column."""
    n = len(eq_slots())
    cols = []
    for j in range(n):
        g = np.zeros(n)
        g[j] = 6.0
        cols.append(10.0 * np.log10(eq_band_power(g)) / 6.0)
    return np.concatenate([np.stack(cols, axis=1), np.ones((N_BANDS, 1))], axis=1)


@lru_cache(maxsize=1)
def _pinv() -> np.ndarray:
    return np.linalg.pinv(_basis())


def oracle_moves(damaged: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares chain moves ``(..., n_eq + 1)`` (dB: EQ gains, then 20 log10 width) that bring
    damaged band frames ``(..., 4, B, T)`` closest to the reference's balance and width (linearised
    EQ responses, bands empty in the reference left out; clipped to +-`MOVE_LIMIT_DB`)."""
    want = balance_db(reference) - balance_db(damaged)
    want = np.where(balance_db(reference) > EMPTY_BAND_DB, want, 0.0)
    gains = want @ _pinv().T
    width_db = side_mid_ratio_db(reference) - side_mid_ratio_db(damaged)
    width_db = np.where(side_mid_ratio_db(reference) > MONO_SIDE_DB, width_db, 0.0)
    moves = np.concatenate([gains[..., :-1], np.asarray(width_db)[..., None]], axis=-1)
    return np.clip(moves, -MOVE_LIMIT_DB, MOVE_LIMIT_DB)


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
    (``total``: `song_mid_ms`, computed here if not given); float32 ``(2, CLIP_FRAMES)``."""
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
    return np.asarray(clip, dtype=np.float32)


def _song_bank(args: tuple) -> np.ndarray:
    path, n, seed = args
    audio, sr = read_audio(path)
    song = to_feature_rate(audio, sr)
    rng = np.random.default_rng(seed)
    total = song_mid_ms(song)
    return np.stack([band_frames(reference_clip(song, rng, total=total)) for _ in range(n)])


def clip_bank(
    songs: Sequence[SongRef], clips_per_song: int, seed: int = 0, workers: int = 1
) -> dict[str, np.ndarray]:
    """Reference clips of ``songs`` as band frames: ``frames`` ``(n, 4, N_BANDS, N_FRAMES)`` float32
    and ``song`` (index into ``songs``), ``clips_per_song`` random clips per song (seeded per song)."""
    if not songs:
        raise ParameterError("no songs in this split")
    tasks = [(s.path, clips_per_song, seed * 100003 + zlib.crc32(s.name.encode())) for s in songs]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_song_bank, tasks, chunksize=1)
    else:
        parts = [_song_bank(t) for t in tasks]
    return {
        "frames": np.concatenate(parts),
        "song": np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)]),
    }


def fixed_damages(n: int, seed: int, tiers: Sequence[str] = TIERS) -> list[Damage]:
    """``n`` damages cycling through ``tiers`` (seeded): the validation and test sets' damage."""
    rng = np.random.default_rng(seed)
    return [draw_damage(rng, tiers[i % len(tiers)]) for i in range(n)]


def level_of(frames: np.ndarray) -> float:
    """Mid level (dB) of band frames: used to skip silent clips."""
    mid = frames[0].mean(-1)
    return float(10 * math.log10(float(mid.sum()) + 1e-20))
