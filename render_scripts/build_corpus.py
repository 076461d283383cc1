#!/usr/bin/env python3
"""Rebuild the model-training corpus from nothing (no downloads), with fixed seeds.

The corpus draws only from the packages of the project's data list (``DATA.md``: "Real, finished
music" and "MIDI and sounds"); each package's music files are found with ``dpkg -L`` and its licence
was read from ``/usr/share/doc/PACKAGE/copyright``. Songs in the build of 2026-12-03 (Debian
packages as installed that day, ``--max-seconds 150``, seed 0):

==========================  =====  =========================================================
package                     songs  licence of the music files (Debian copyright file)
==========================  =====  =========================================================
``asc-music``                   3  GPL-2+
``fb-music-high``               1  GPL-2+ (tracker module, decoded by ffmpeg/libopenmpt)
``drascula-music``             27  Drascula licence (BSD-like, DFSG); six language copies: once
``singularity-music``          16  CC-BY-SA 3.0
``ufoai-music``                63  GPL-2 / GPL-2+ / CC-BY 3.0 / CC-BY-SA 3.0 / public domain
                                   (per file); the Ogg files of ``0music.pk3`` (a zip)
``openttd-openmsx``            31  GPL-2 (MIDI, rendered with FluidR3_GM)
``hedgewars-data``             26  GPL-2 (``Data/Music``; the GFDL ``Data/Sounds`` not taken)
``extremetuxracer-data``        6  GPL-2+
``megaglest-data``              9  CC-BY-SA 3.0 (menu and faction music)
``openclonk-data``              8  CC-BY 3.0 / CC0 (game content; engine ISC); ``Music.ocg`` is
                                   a plain folder in the Debian package, read as such
``supertux-data``              45  GPL-2+ (``data/music``)
``scorched3d-data``             3  GPL-2+
``xmoto-data``                  7  GPL-2+
``planetblupi-music-ogg``      10  GPL-3+
``widelands-data``             30  GPL-2+; ``ingame_24``-``26`` CC-BY-SA 3.0
``supertuxkart-data``          32  CC-BY-SA 3.0 (most) / CC-BY-SA 4.0 / CC-BY 4.0 / GPL / GPL-3+
                                   (per file)
music21 corpus (PyPI)          83  compositions out of copyright; encodings distributed by
                                   permission of their encoders, some for non-commercial use
                                   only (music21 ``corpus/license.txt``)
==========================  =====  =========================================================

That is 400 songs, 13.4 hours (each song cut at ``--max-seconds``; 120 s on average): 317 from
the packages (286 recordings, 9.6 h; 31 openmsx MIDI renders, 1.0 h) and 83 music21 renders
(2.7 h: Monteverdi, Palestrina, Bach, Schumann, trecento masses 9 each, Beethoven and Josquin 8,
Mozart and Haydn 7, eight single pieces; soundfonts 28 FluidR3 / 26 TimGM6mb / 29 MuseScore).
Splits: 280 train, 60 val, 60 test. The build took 9-18 min with ``--jobs 2`` on two shared cores
and is bit-for-bit reproducible (two builds, one of them resumed, gave identical FLACs).

Rules:

- Only music: the files of each package's music folder (`Source.include`), never of a sound/sfx/
  speech/voices folder (`SFX_DIRS`), and no file shorter than `MIN_SONG_S` (jingles, stingers).
- Each identical file once (sha1 of its bytes, across all packages: supertuxkart's
  ``beneath_the_rabbit_hole`` is supertux's). Versions of one song are taken once too, so that no
  song is in two splits: supertuxkart's ``*_fast`` / ``farm_f`` (the songs played faster),
  drascula's ``track30`` (track1's recording again), supertux's ``retro/cave_old`` and
  ``misc/christmas_theme`` (old version of ``cave``, arrangement of ``theme``) are left out; they
  were found by comparing every pair of songs' band-energy envelopes (0.71-0.89 on a 0-1 scale;
  the highest remaining pair scores 0.62, and the pairs around it are unrelated songs).
- Not taken: ``neverball-data`` (holds no audio: Neverball's music is in ``neverball-common``, which
  DATA.md does not list); ``openarena-data`` (its pk3 archives hold no music, only sounds);
  ``planetblupi-music-midi`` (the same songs as ``planetblupi-music-ogg``, which is taken).
- **Held out**: `HELD_OUT_PACKAGES` (``pushover-data``, ``freedroidrpg-data``) are the blind
  benchmark's unseen packages: never a source, and any file byte-identical to one of theirs is
  refused too.
- Fill-up: when the packages give fewer than ``--min-songs`` songs, multi-part works of music21's
  corpus (string quartet movements, madrigals, masses, chorales, piano and chamber pieces, taken
  round-robin over composers in a seeded order; `M21_SKIP` left out) are rendered with fluidsynth,
  the soundfont rotating over FluidR3_GM, TimGM6mb and MuseScore_General_Lite (the installed ones),
  each part given a seeded General MIDI ensemble instrument and a pan (`orchestrate`); works that
  music21 cannot expand (badly formed repeats), that have one part, or that last under
  `MIN_SONG_S` are passed over for the next in the order.
- procedural songs (``--procedural N``, none by default):
  `plugin_bridge.songgen.compose.compose_song(seed)` rendered per part by fluidsynth (FluidR3 or
  TimGM6mb alternately), each part level-matched to its `MIX_DEFAULTS` loudness and panned as in
  the multitrack sessions, then summed.

Every song is written as 44.1 kHz stereo 24-bit FLAC (at most ``--max-seconds``, peak at most
-1 dBFS, songs whose RMS is not above -60 dBFS refused as silent) to ``OUT/songs/NAME.flac``, and
``OUT/manifest.json`` records name, source, path and the split (by song, per source,
`assign_splits`). Decoding runs in a pool of ``--jobs`` processes (fork). The build is resumable: a
song whose FLAC exists is not rendered again (FLACs are written atomically) and the manifest is
written at the end, atomically, from the songs present; delete OUT to rebuild with other settings.

Usage: ``python render_scripts/build_corpus.py OUT_DIR [--min-songs 400] [--procedural 0]
[--seed 0] [--jobs 2]``. Missing packages are skipped with a note (apt-get install fluidsynth
fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small ffmpeg and the packages
above; pip install music21).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from plugin_bridge.files import replacing, write_atomic
from plugin_bridge.graph import track_pan_gains
from plugin_bridge.ml.corpus import assign_splits
from plugin_bridge.ml.features import FEATURE_SR, to_feature_rate
from plugin_bridge.songgen.compose import compose_song
from plugin_bridge.songgen.fluid import render_fluidsynth
from plugin_bridge.songgen.multitrack import MIX_DEFAULTS, _loudness, render_parts

# The blind benchmark's unseen packages: never trained or tuned on. No source below may name them,
# and a file byte-identical to one of theirs is refused even when another package ships it.
HELD_OUT_PACKAGES = ("pushover-data", "freedroidrpg-data")

MIN_SONG_S = 20.0
SILENT_DB = -60.0  # RMS (dBFS) at or below which a rendered song is refused as silent
PEAK = 0.89  # songs louder than this peak are scaled down to it (-1 dBFS)
FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TIM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
AUDIO_EXT = (".ogg", ".mp3", ".flac", ".wav")
MODULE_EXT = (".xm", ".mod", ".s3m", ".it")
MIDI_EXT = (".mid", ".midi")
SFX_DIRS = re.compile(r"/(sounds?|sfx|speech|voices|wav|water_sounds)/", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """A package's music: files of ``dpkg -L package`` whose path matches ``include`` (and not
    ``exclude``); with ``archive`` the matching files are zip archives (pk3) and their members
    matching ``member`` are the songs."""

    prefix: str
    package: str
    include: str
    exclude: str | None = None
    archive: bool = False
    member: str = r"music/.*\.ogg$"


SOURCES: tuple[Source, ...] = (
    Source("asc", "asc-music", r"/asc/music/.*\.mp3$"),
    Source("fb", "fb-music-high", r"/frozen-bubble/snd/.*\.xm$"),
    # track30 is track1's recording again (waveform correlation 0.56 at lag 0): left out
    Source("drascula", "drascula-music", r"/drascula/audio/.*\.ogg$", exclude=r"/track30\.ogg$"),
    Source("singularity", "singularity-music", r"/singularity/music/.*\.ogg$"),
    Source("ufoai", "ufoai-music", r"/0music\.pk3$", archive=True),
    Source("openmsx", "openttd-openmsx", r"/openmsx/.*\.mid$"),
    Source("hedgewars", "hedgewars-data", r"/Data/Music/[^/]+\.ogg$"),
    Source("etr", "extremetuxracer-data", r"/etr/music/.*\.ogg$"),
    Source("megaglest", "megaglest-data", r"/music/[^/]+\.ogg$"),
    Source("openclonk", "openclonk-data", r"/Music\.ocg/[^/]+\.ogg$"),
    # cave_old is the old version of cave, christmas_theme an arrangement of theme: left out
    Source(
        "supertux",
        "supertux-data",
        r"/supertux2/music/.*\.ogg$",
        exclude=r"/(retro/cave_old|misc/christmas_theme)\.ogg$",
    ),
    Source("neverball", "neverball-data", r"/bgm/.*\.ogg$"),
    Source("scorched3d", "scorched3d-data", r"/data/music/.*\.ogg$"),
    Source("xmoto", "xmoto-data", r"/Musics/.*\.ogg$"),
    Source("openarena", "openarena-data", r"\.pk3$", archive=True),
    Source("blupi", "planetblupi-music-ogg", r"/planetblupi/music/.*\.ogg$"),
    Source("widelands", "widelands-data", r"/data/music/.*\.ogg$"),
    Source(
        "stk",
        "supertuxkart-data",
        r"/data/music/[^/]+\.ogg$"
        r"|/data/tracks/[^/]+/(Battle_Theme_1|Gran_Paradiso_[^/]*|beneath_the_rabbit_hole|intro2)\.ogg$",
        exclude=r"(_fast|_f)\.ogg$",
    ),
)
assert not {s.package for s in SOURCES} & set(HELD_OUT_PACKAGES), "a held-out package is a source"

#: music21 corpus folders of multi-part works, taken round-robin (a seeded order within each).
M21_GROUPS: tuple[tuple[str, ...], ...] = (
    ("beethoven",),
    ("mozart",),
    ("haydn",),
    ("monteverdi",),
    ("palestrina",),
    ("bach",),
    ("schumann_robert", "schumann_clara"),
    ("josquin",),
    ("trecento",),
    (
        "beach", "chopin", "ciconia", "corelli", "cpebach", "handel", "johnson_j_r", "joplin",
        "liliuokalani", "luca", "lusitano", "schoenberg", "schubert", "verdi", "weber", "webern",
    ),
)  # fmt: skip
M21_EXT = (".mxl", ".krn", ".xml", ".musicxml", ".abc")
#: Whole multi-movement quartets in one file: music21 takes up to tens of minutes (and a GB) to parse
#: and expand one (``opus18no4`` ran 19 min without finishing). The quartets stored one movement per
#: file (``opus18no1``, ``opus59``) are taken.
M21_SKIP = tuple(
    f"beethoven/{w}.mxl" for w in ("opus18no3", "opus18no4", "opus18no5", "opus74", "opus132", "opus133")
)
M21_TIMEOUT_S = 900  # a safety net only: a music21 job running longer is given up (noted)
#: General MIDI ensembles (programs, highest part first; extra parts take the last one).
ENSEMBLES: tuple[tuple[int, ...], ...] = (
    (40, 40, 41, 42, 43),  # string quartet + bass
    (48, 49, 48, 49, 48),  # string orchestra
    (73, 68, 71, 70, 70),  # flute, oboe, clarinet, bassoon
    (56, 60, 60, 57, 58),  # trumpet, horns, trombone, tuba
    (52, 52, 53, 52, 52),  # choir
    (19, 19, 19, 19, 19),  # church organ
    (0, 0, 0, 0, 0),  # piano
    (6, 6, 6, 6, 6),  # harpsichord
    (73, 40, 71, 42, 32),  # mixed chamber group
    (64, 65, 66, 67, 67),  # saxophones
    (24, 25, 24, 32, 32),  # guitars and bass
    (80, 81, 89, 87, 38),  # synth leads, pad, synth bass
)


@dataclass(frozen=True)
class Job:
    """One song to render: ``kind`` is audio / zip / module / midi / music21 / procedural;
    ``where`` a path (or ``archive::member``, a music21 corpus path, a seed)."""

    name: str
    source: str
    kind: str
    where: str
    soundfont: str = ""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def _dpkg_files(package: str) -> list[str] | None:
    proc = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    return sorted(proc.stdout.splitlines()) if proc.returncode == 0 else None


def _held_out_digests() -> set[str]:
    """sha1 of every audio or MIDI file of the held-out packages (installed or not)."""
    out = set()
    for package in HELD_OUT_PACKAGES:
        for f in _dpkg_files(package) or []:
            if f.lower().endswith(AUDIO_EXT + MODULE_EXT + MIDI_EXT) and Path(f).is_file():
                out.add(hashlib.sha1(Path(f).read_bytes()).hexdigest())
    return out


def _duration(blob: bytes, suffix: str) -> float | None:
    """Length (s) of an audio file's bytes, or None for a format soundfile does not read (module)."""
    if suffix not in AUDIO_EXT:
        return None
    info = sf.info(io.BytesIO(blob))
    return info.frames / info.samplerate


def package_jobs(source: Source, seen: set[str], held: set[str], notes: list[str]) -> list[Job]:
    """The songs of ``source``: its music files in path order, each identical file once (``seen``,
    shared across sources), none held out, none shorter than `MIN_SONG_S` (audio files: from their
    header; modules and MIDI are checked once rendered)."""
    files = _dpkg_files(source.package)
    if files is None:
        notes.append(f"{source.package} not installed, skipped")
        return []
    inc, exc = re.compile(source.include), re.compile(source.exclude) if source.exclude else None
    items: list[tuple[str, str, bytes]] = []  # (where, stem, bytes)
    for f in files:
        if not inc.search(f) or (exc and exc.search(f)) or SFX_DIRS.search(f) or not Path(f).is_file():
            continue
        if not source.archive:
            items.append((f, Path(f).stem, Path(f).read_bytes()))
            continue
        with zipfile.ZipFile(f) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                name = info.filename
                if re.search(source.member, name, re.IGNORECASE) and not SFX_DIRS.search("/" + name):
                    items.append((f"{f}::{name}", Path(name).stem, z.read(info)))
    jobs, names, short = [], set(), 0
    for where, stem, blob in items:
        digest = hashlib.sha1(blob).hexdigest()
        if digest in held:
            notes.append(f"{source.package}: {where} is a held-out package's file, left out")
            continue
        if digest in seen:
            continue
        seen.add(digest)
        suffix = Path(where).suffix.lower()
        length = _duration(blob, suffix)
        if length is not None and length < MIN_SONG_S:
            short += 1
            continue
        name = f"{source.prefix}_{_slug(stem)}"
        if name in names:  # the same stem in two folders of one package
            name = f"{name}_{_slug(Path(where.split('::')[-1]).parent.name)}"
        names.add(name)
        if source.archive:
            kind = "zip"
        else:
            kind = "audio" if suffix in AUDIO_EXT else "module" if suffix in MODULE_EXT else "midi"
        jobs.append(Job(name, source.package, kind, where, str(FLUID_R3) if kind == "midi" else ""))
    if not items:
        notes.append(f"{source.package}: no music files found, skipped")
    elif short:
        notes.append(f"{source.package}: {short} files shorter than {MIN_SONG_S:.0f} s left out")
    return jobs


def music21_candidates(seed: int) -> list[Job]:
    """music21 corpus works, round-robin over `M21_GROUPS` (each in a seeded order), the soundfont
    rotating over the installed ones."""
    from music21 import corpus

    root = Path(corpus.__file__).parent
    fonts = [str(p) for p in (FLUID_R3, TIM, MUSESCORE) if p.is_file()]
    queues = []
    for k, group in enumerate(M21_GROUPS):
        paths = sorted(
            str(p.relative_to(root))
            for name in group
            for p in (root / name).rglob("*")
            if p.suffix.lower() in M21_EXT and str(p.relative_to(root)) not in M21_SKIP
        )
        rng = np.random.default_rng(seed + 7919 * k)
        queues.append([paths[i] for i in rng.permutation(len(paths))])
    out, used = [], set()
    for rank in range(max(len(q) for q in queues)):
        for q in queues:
            if rank < len(q):
                rel = q[rank]
                name = "m21_" + _slug(str(Path(rel).with_suffix("")))
                if name not in used:
                    used.add(name)
                    out.append(Job(name, "music21", "music21", rel, fonts[len(out) % len(fonts)]))
    return out


def orchestrate(midi: mido.MidiFile, rng: np.random.Generator) -> mido.MidiFile:
    """Each part (track with notes) on its own channel with a seeded `ENSEMBLES` instrument, volume
    100 and a pan spread evenly over +-s (s seeded in 0.2-0.6); the music21 export's own program,
    volume and pan messages dropped."""
    parts = [i for i, t in enumerate(midi.tracks) if any(m.type == "note_on" for m in t)]
    programs = ENSEMBLES[int(rng.integers(len(ENSEMBLES)))]
    spread = float(rng.uniform(0.2, 0.6))
    pans = np.linspace(-spread, spread, len(parts)) if len(parts) > 1 else np.zeros(1)
    if rng.random() < 0.5:
        pans = pans[::-1]
    channels = [c for c in range(16) if c != 9]
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for i, track in enumerate(midi.tracks):
        new = mido.MidiTrack()
        if i in parts:
            k = parts.index(i)
            ch = channels[k % len(channels)]
            prog = programs[min(k, len(programs) - 1)]
            new.append(mido.Message("program_change", channel=ch, program=prog, time=0))
            new.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
            pan = int(round(64 + 63 * float(pans[k])))
            new.append(mido.Message("control_change", channel=ch, control=10, value=pan, time=0))
        carry = 0
        for msg in track:
            drop = msg.type == "program_change" or (msg.type == "control_change" and msg.control in (7, 10))
            if drop or (not msg.is_meta and i not in parts):
                carry += msg.time
                continue
            if hasattr(msg, "channel"):
                new.append(msg.copy(time=msg.time + carry, channel=ch))
            else:
                new.append(msg.copy(time=msg.time + carry))
            carry = 0
        out.tracks.append(new)
    return out


def crop_midi(midi: mido.MidiFile, seconds: float) -> mido.MidiFile:
    """The first ``seconds`` of ``midi`` as one track at a fixed tempo (tempo changes folded into
    the tick times), with all notes released at the cut, so that fluidsynth renders no more than
    is kept."""
    tpb, tempo = 960, 500000
    out = mido.MidiFile(type=0, ticks_per_beat=tpb)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    out.tracks.append(track)
    t, last = 0.0, 0
    for msg in midi:  # merged tracks, delta times in seconds
        t += msg.time
        if t > seconds:
            break
        if msg.is_meta:
            continue
        tick = int(round(mido.second2tick(t, tpb, tempo)))
        track.append(msg.copy(time=tick - last))
        last = tick
    end = int(round(mido.second2tick(min(t, seconds), tpb, tempo)))
    for ch in range(16):
        track.append(mido.Message("control_change", channel=ch, control=123, value=0, time=end - last))
        last = end
    return out


def procedural_song(seed: int, seconds: float) -> np.ndarray:
    """A balanced procedural mix at 44.1 kHz: parts level-matched and panned as in make_multitrack."""
    sf2 = FLUID_R3 if seed % 2 == 0 or not TIM.is_file() else TIM
    parts, _, _ = render_parts(compose_song(seed, seconds), FEATURE_SR, sf2, "auto")
    mix = 0.0
    for name, a in parts.items():
        d = MIX_DEFAULTS.get(name, MIX_DEFAULTS["*"])
        lufs = _loudness(a, FEATURE_SR)
        gain = 10 ** ((d["lufs"] - lufs) / 20) if math.isfinite(lufs) else 0.0
        mono = a.mean(axis=0) if name != "drums" else None
        gl, gr = track_pan_gains(float(d.get("pan", 0.0)), 1 if mono is not None else 2)
        src = np.stack([mono, mono]) if mono is not None else a
        mix = mix + gain * np.stack([gl * src[0], gr * src[1]])
    return np.asarray(mix, dtype=np.float32)


def _read_head(src, max_s: float) -> tuple[np.ndarray, int, float]:
    """The first ``max_s`` (+1) seconds of a soundfile-readable file: (audio, rate, full length)."""
    with sf.SoundFile(src) as f:
        sr, total = f.samplerate, f.frames / f.samplerate  # MP3 frame counts are estimates
        a = f.read(frames=int((max_s + 1) * sr), dtype="float32", always_2d=True)
    return a.T, sr, total


def _render_midi(midi: mido.MidiFile, soundfont: str, max_s: float) -> tuple[np.ndarray, int, float]:
    length = midi.length
    keep = min(max_s, length + 2)
    a = render_fluidsynth(crop_midi(midi, keep), FEATURE_SR, soundfont, timeout_s=300)
    return a[:, : int(keep * FEATURE_SR)], FEATURE_SR, length


def decode(job: Job, max_s: float, seed: int) -> tuple[np.ndarray, int, float]:
    """``(audio (channels, n), sample_rate, full length in s)`` of one job (at most ~max_s kept)."""
    if job.kind == "audio":
        return _read_head(job.where, max_s)
    if job.kind == "zip":
        archive, member = job.where.split("::", 1)
        with zipfile.ZipFile(archive) as z:
            return _read_head(io.BytesIO(z.read(member)), max_s)
    if job.kind == "module":
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "module.wav"
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-i", job.where, "-ar", "44100", "-ac", "2", str(wav)],
                check=True,
            )
            return _read_head(wav, max_s)
    if job.kind == "midi":
        return _render_midi(mido.MidiFile(job.where), job.soundfont, max_s)
    if job.kind == "music21":
        from music21 import corpus
        from music21 import midi as m21midi

        score = corpus.parse(job.where)
        if hasattr(score, "scores"):  # an Opus (ABC): one voice per tune (josquin) or several pieces
            one_part = all(len(s.parts) == 1 for s in score.scores)
            score = score.mergeScores() if one_part else score.scores[0]
        if len(score.parts) < 2:
            return np.zeros((2, 0), np.float32), FEATURE_SR, 0.0
        blob = m21midi.translate.streamToMidiFile(score).writestr()
        rng = np.random.default_rng(seed + zlib.crc32(job.name.encode()))
        midi = orchestrate(mido.MidiFile(file=io.BytesIO(blob)), rng)
        return _render_midi(midi, job.soundfont, max_s)
    if job.kind == "procedural":
        a = procedural_song(int(job.where.split(":")[0]), float(job.where.split(":")[1]))
        return a, FEATURE_SR, a.shape[1] / FEATURE_SR
    raise ValueError(job.kind)


def render_job(job: Job, out: Path, max_s: float, seed: int) -> tuple[Job, str, float]:
    """Decode ``job`` and write ``out/songs/NAME.flac`` atomically; returns (job, status, seconds)
    with status new / short / silent / failed: reason."""

    def give_up(signum, frame):
        raise TimeoutError(f"over {M21_TIMEOUT_S} s")

    if job.kind == "music21":
        signal.signal(signal.SIGALRM, give_up)
        signal.alarm(M21_TIMEOUT_S)
    try:
        audio, sr, length = decode(job, max_s, seed)
    except Exception as e:  # one bad file must not stop a 30-minute build
        return job, f"failed: {type(e).__name__}: {str(e)[:200]}", 0.0
    finally:
        signal.alarm(0)
    if length < MIN_SONG_S and job.kind != "procedural":  # generated at the length asked for
        return job, "short", length
    x = to_feature_rate(audio, sr)[:, : int(max_s * FEATURE_SR)]
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms <= 10 ** (SILENT_DB / 20):
        return job, "silent", length
    peak = float(np.max(np.abs(x))) or 1.0
    x = x * min(1.0, PEAK / peak)
    path = out / "songs" / f"{job.name}.flac"
    with replacing(path) as tmp:
        sf.write(tmp, x.T, FEATURE_SR, subtype="PCM_24", format="FLAC")
    return job, "new", x.shape[1] / FEATURE_SR


_WORKER: dict = {}


def _init_worker(out: Path, max_s: float, seed: int) -> None:
    _WORKER.update(out=out, max_s=max_s, seed=seed)


def _run(job: Job) -> tuple[Job, str, float]:
    return render_job(job, _WORKER["out"], _WORKER["max_s"], _WORKER["seed"])


def run_jobs(
    pool, jobs: list[Job], out: Path, t0: float, tally: dict[str, dict[str, float]]
) -> Iterator[tuple[Job, str, float]]:
    """Render ``jobs`` in order on ``pool`` (cached FLACs are not rendered again); yields
    (job, status, seconds) with status cached / new / short / silent / failed, and writes a
    progress line to stderr when a source is done."""
    todo = [j for j in jobs if not (out / "songs" / f"{j.name}.flac").is_file()]
    results, pending = pool.imap(_run, todo, chunksize=1), set(todo)
    for i, job in enumerate(jobs):
        path = out / "songs" / f"{job.name}.flac"
        if job in pending:
            job, status, secs = next(results)
        else:
            status, secs = "cached", sf.info(path).duration
        t = tally.setdefault(job.source, {"songs": 0, "cached": 0, "left out": 0, "s": 0.0})
        if status in ("new", "cached"):
            t["songs"] += 1
            t["cached"] += status == "cached"
            t["s"] += secs
            print(
                f"  {job.name} ({job.source}) {status} {secs:.0f} s  [{time.time() - t0:.0f} s]", flush=True
            )
        else:
            t["left out"] += 1
            print(f"  {job.name} ({job.source}) left out: {status}", flush=True)
        if i + 1 == len(jobs) or jobs[i + 1].source != job.source:
            print(
                f"[{time.time() - t0:5.0f} s] {job.source}: {t['songs']:.0f} songs ({t['cached']:.0f} cached), "
                f"{t['s'] / 60:.1f} min, {t['left out']:.0f} left out",
                file=sys.stderr,
                flush=True,
            )
        yield job, status, secs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--min-songs", type=int, default=400, help="fill up with music21 renders to this many")
    ap.add_argument("--procedural", type=int, default=0, help="number of procedural songs")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each procedural song (s)")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="longest song kept (s)")
    ap.add_argument("--no-packages", action="store_true", help="procedural songs only (tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="decoding processes")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    (out / "songs").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    songs: list[dict] = []
    notes: list[str] = []
    tally: dict[str, dict[str, float]] = {}  # per source: songs, cached, left out, seconds
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.jobs, _init_worker, (out, args.max_seconds, args.seed), maxtasksperchild=40) as pool:

        def render(jobs: list[Job]) -> int:
            n = 0
            for job, status, _ in run_jobs(pool, jobs, out, t0, tally):
                if status in ("new", "cached"):
                    songs.append(
                        {
                            "name": job.name,
                            "source": job.source,
                            "path": str((out / "songs" / f"{job.name}.flac").resolve()),
                        }
                    )
                    n += 1
                elif status.startswith("failed"):
                    notes.append(f"{job.source}: {job.name} {status}")
            return n

        if not args.no_packages:
            seen, held = set(), _held_out_digests()
            jobs = [j for source in SOURCES for j in package_jobs(source, seen, held, notes)]
            print(
                f"{len(jobs)} package songs to take ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True
            )
            render(jobs)
            need = args.min_songs - len(songs)
            if need > 0:
                try:
                    queue = music21_candidates(args.seed)
                except ImportError:
                    queue = []
                    notes.append("music21 not installed (pip install music21): no fill-up")
                while need > 0 and queue:  # the first `need` that render, in the seeded order
                    batch, queue = queue[:need], queue[need:]
                    need -= render(batch)
                if need > 0:
                    notes.append(f"only {len(songs)} songs: {need} short of --min-songs")
        procedural = [
            Job(
                f"proc_{args.seed * 1000 + k:04d}",
                "procedural",
                "procedural",
                f"{args.seed * 1000 + k}:{args.seconds}",
            )
            for k in range(args.procedural)
        ]
        render(procedural)
    by_source: dict[str, list[str]] = {}
    for s in songs:
        by_source.setdefault(s["source"], []).append(s["name"])
    split = assign_splits(by_source, args.seed)
    for s in songs:
        s["split"] = split[s["name"]]
    manifest = {"seed": args.seed, "sample_rate": FEATURE_SR, "max_seconds": args.max_seconds, "songs": songs}
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    listed = {f"{s['name']}.flac" for s in songs}
    stray = [p.name for p in (out / "songs").glob("*.flac") if p.name not in listed]
    if stray:
        notes.append(f"{len(stray)} FLACs in {out / 'songs'} are not in this manifest (left as they are)")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    counts = {k: sum(s["split"] == k for s in songs) for k in ("train", "val", "test")}
    per_source = {k: len(v) for k, v in by_source.items()}
    print(f"sources: {per_source}")
    print(f"corpus: {len(songs)} songs {counts} in {time.time() - t0:.0f} s -> {out}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
