"""Reference multitracks from packaged MIDI songs: one stem per MIDI channel, the composer's balance.

Each song is cut into excerpts (`plan_excerpts`, 30-45 s, seeded), every excerpt is rendered part by
part with fluidsynth (`plugin_bridge.songgen.multitrack.render_parts`: each channel rendered inside
the whole excerpt, so the stems sum to the full render) with several GM soundfonts, and written as

    OUT/<package>__<song>__<soundfont>__<excerpt>/stems/<part>.wav   # 44.1 kHz stereo float WAV
    OUT/<package>__<song>__<soundfont>__<excerpt>/meta.json          # roles, programs, pans, split

The MIDI's own channel volume (CC7), expression (CC11), velocities and pan (CC10) stay in, so the
stems as rendered ARE the composer's balance: the reference that the balance model learns and that
`plugin_bridge.stems.evaluate` scrambles and judges against.

Roles by General MIDI program (``ROLE_TABLE``, 0-based program numbers):

=============  ==========================================================================
role           GM programs / channel
=============  ==========================================================================
drums          MIDI channel 10 (index 9), whatever its program
keys           0-23: pianos, chromatic percussion, organs
guitar         24-31: guitars
bass           32-39: basses
pad/synth      48-51 (string and synth-string ensembles), 80-95 (synth leads and pads)
vocals         52-54 (choir aahs, voice oohs, synth voice): the only voice-like stand-in
other          everything else (40-47 solo strings, harp, timpani; 55 orchestra hit; 56-79
               brass, reeds, pipes; 96-127 effects, ethnic, percussive, sound effects)
=============  ==========================================================================

A channel that changes program inside an excerpt takes the program that plays the most notes.

Licences (``/usr/share/doc/PACKAGE/copyright``): openttd-openmsx MIDI songs GPL-2; planetblupi-music-midi
GPL-3+ (Mathieu Schroeter); TimGM6mb.sf2 GPL-2 (Tim Brechbill); FluidR3_GM.sf2 MIT (Frank Wen);
MuseScore_General_Lite.sf3 MIT (Frank Wen, S. Christian Collins).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from ..audio_io import write_audio
from ..files import write_atomic
from ..loudness import integrated_loudness
from ..songgen.multitrack import render_parts
from ..songgen.parts import note_events

ROLES: tuple[str, ...] = ("drums", "bass", "vocals", "guitar", "keys", "pad/synth", "other")
#: ``(first program, last program, role)`` for melodic channels (0-based GM programs, inclusive).
ROLE_TABLE: tuple[tuple[int, int, str], ...] = (
    (0, 23, "keys"),
    (24, 31, "guitar"),
    (32, 39, "bass"),
    (48, 51, "pad/synth"),
    (52, 54, "vocals"),
    (80, 95, "pad/synth"),
)
DRUM_CHANNEL = 9
SAMPLE_RATE = 44100
#: Packages: name -> (MIDI folder, split). The test package is held out entirely.
PACKAGES: dict[str, tuple[str, str]] = {
    "openmsx": ("/usr/share/games/openttd/baseset/openmsx", "trainval"),
    "planetblupi": ("/usr/share/planetblupi/music", "test"),
}
SOUNDFONTS: dict[str, str] = {
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
}
#: A stem whose integrated loudness is this far below the loudest stem's is treated as silent (LU).
SILENT_BELOW_LU = 40.0
#: Fixed tempo of the cropped excerpt files (microseconds per beat) and their resolution.
_TEMPO = 500000
_TPB = 960


def role_of(program: int, channel: int) -> str:
    """The role (`ROLES`) of a part playing GM ``program`` (0-127) on MIDI ``channel`` (0-15)."""
    if channel == DRUM_CHANNEL:
        return "drums"
    for lo, hi, role in ROLE_TABLE:
        if lo <= program <= hi:
            return role
    return "other"


def song_seconds(midi: mido.MidiFile) -> float:
    """The end of the last note of ``midi`` (s); 0 for a file without notes."""
    notes = note_events(midi)
    return max((n.end_s for n in notes), default=0.0)


def crop_midi(midi: mido.MidiFile, start_s: float, end_s: float) -> mido.MidiFile:
    """The notes of ``midi`` that start in ``[start_s, end_s)`` as a type-0 file at a fixed tempo.

    Channel state set before ``start_s`` (program, controllers such as CC7/CC10/CC11/CC64, pitch
    bend) is replayed at time 0; notes still held at ``end_s`` are released there. Being type 0, the
    file splits into one part per channel (`plugin_bridge.songgen.parts.split_parts`).
    """
    sec_per_tick = _TEMPO / 1e6 / _TPB
    state: dict[tuple, mido.Message] = {}
    events: list[tuple[float, int, mido.Message]] = []  # (seconds from start, order, message)
    held: set[tuple[int, int]] = set()
    now = 0.0
    for k, msg in enumerate(midi):
        now += msg.time
        if msg.is_meta or not hasattr(msg, "channel"):
            if msg.type == "sysex" and now < start_s:
                state[("sysex", k)] = msg
            continue
        on = msg.type == "note_on" and msg.velocity > 0
        off = msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)
        if now < start_s:
            if msg.type == "control_change":
                state[("cc", msg.channel, msg.control)] = msg
            elif msg.type in ("program_change", "pitchwheel"):
                state[(msg.type, msg.channel)] = msg
            continue
        if now >= end_s:
            break
        if on:
            held.add((msg.channel, msg.note))
        elif off:
            if (msg.channel, msg.note) not in held:
                continue
            held.discard((msg.channel, msg.note))
        events.append((now - start_s, k, msg))
    length = end_s - start_s
    for ch, note in sorted(held):
        events.append((length, 1 << 30, mido.Message("note_off", channel=ch, note=note)))
    head = [(0.0, -1, m) for m in state.values()]
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=_TEMPO, time=0)])
    last = 0
    for t, _, msg in head + sorted(events, key=lambda e: (e[0], e[1])):
        tick = round(t / sec_per_tick)
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, round(length / sec_per_tick) - last)))
    out = mido.MidiFile(type=0, ticks_per_beat=_TPB)
    out.tracks.append(track)
    return out


def plan_excerpts(
    midi: mido.MidiFile, count: int, rng: np.random.Generator, min_s: float = 30.0, max_s: float = 45.0
) -> list[tuple[float, float]]:
    """Up to ``count`` non-overlapping excerpts ``(start_s, end_s)`` of ``min_s``-``max_s`` s
    (seeded by ``rng``), each starting on a note and holding notes of at least two channels.

    A song shorter than ``min_s`` gives one excerpt of the whole song; a song with no room for
    ``count`` excerpts gives fewer.
    """
    notes = note_events(midi)
    if not notes:
        return []
    end = max(n.end_s for n in notes)
    if end <= min_s:
        return [(0.0, end)]
    slot = end / count
    out: list[tuple[float, float]] = []
    prev_stop = 0.0
    for i in range(count):
        length = float(rng.uniform(min_s, max_s))
        lo = max(i * slot, prev_stop)
        hi = min(max((i + 1) * slot, lo + length), end) - length
        if hi < lo:
            break
        t = float(rng.uniform(lo, hi)) if hi > lo else lo
        onsets = [n.start_s for n in notes if t <= n.start_s < t + 5.0]
        start = onsets[0] if onsets else t
        stop = min(start + length, end)
        channels = {n.channel for n in notes if start <= n.start_s < stop}
        if len(channels) >= 2 and stop - start >= 0.9 * min_s:
            out.append((round(start, 3), round(stop, 3)))
            prev_stop = stop
    return out


def _pans(midi: mido.MidiFile) -> dict[int, float]:
    """Each channel's pan (-1 .. +1) from its first CC10 (the replayed state at time 0)."""
    pans: dict[int, float] = {}
    for msg in midi:
        if msg.type == "control_change" and msg.control == 10 and msg.channel not in pans:
            pans[msg.channel] = float(np.clip((msg.value - 64) / 63.0, -1.0, 1.0))
    return pans


def part_channel(name: str) -> int:
    """The MIDI channel (0-15) of a part named by `split_parts` for a type-0 file."""
    if name == "drums":
        return DRUM_CHANNEL
    m = re.fullmatch(r"channel(\d+)", name)
    if m is None:
        raise ValueError(f"not a channel part name: {name!r}")
    return int(m.group(1)) - 1


@dataclass
class Excerpt:
    """One excerpt to render: ``package``, ``song`` (file stem), ``index``, ``start_s``/``end_s``,
    ``split`` ("train", "val" or "test") and the source ``midi_path``."""

    package: str
    song: str
    index: int
    start_s: float
    end_s: float
    split: str
    midi_path: str

    def folder_name(self, soundfont: str) -> str:
        """``<package>__<song>__<soundfont>__<excerpt>``."""
        return f"{self.package}__{self.song}__{soundfont}__{self.index:02d}"


def render_excerpt(excerpt: Excerpt, soundfont: str, out_dir: Path) -> dict | None:
    """Render one excerpt with ``soundfont`` (a `SOUNDFONTS` key) into ``out_dir/<folder>/``.

    Writes ``stems/<part>.wav`` for each non-silent part and ``meta.json`` last (its presence marks
    the folder done). Returns the meta, or None (nothing written) when fewer than two parts sound.
    """
    midi = crop_midi(mido.MidiFile(excerpt.midi_path), excerpt.start_s, excerpt.end_s)
    audio, _, sf_path = render_parts(midi, SAMPLE_RATE, SOUNDFONTS[soundfont], synth="fluidsynth")
    notes = note_events(midi)
    pans = _pans(midi)
    loud = {name: integrated_loudness(a, SAMPLE_RATE) for name, a in audio.items()}
    top = max((v for v in loud.values() if math.isfinite(v)), default=-math.inf)
    stems = {}
    for name, a in audio.items():
        if not (math.isfinite(loud[name]) and loud[name] > top - SILENT_BELOW_LU):
            continue
        ch = part_channel(name)
        programs = Counter(n.program for n in notes if n.channel == ch)
        program = programs.most_common(1)[0][0] if programs else 0
        stems[name] = {
            "channel": ch + 1,
            "program": program,
            "role": role_of(program, ch),
            "pan": round(pans.get(ch, 0.0), 3),
            "notes": int(sum(programs.values())),
            "loudness_lufs": round(loud[name], 3),
            "peak_dbfs": round(20 * math.log10(float(np.max(np.abs(a))) + 1e-12), 2),
        }
    if len(stems) < 2:
        return None
    folder = out_dir / excerpt.folder_name(soundfont)
    (folder / "stems").mkdir(parents=True, exist_ok=True)
    for name in stems:
        write_audio(folder / "stems" / f"{name}.wav", audio[name], SAMPLE_RATE)
    mix = sum(audio[name].astype(np.float64) for name in stems)
    meta = {
        "package": excerpt.package,
        "song": excerpt.song,
        "soundfont": soundfont,
        "soundfont_file": str(sf_path),
        "excerpt": excerpt.index,
        "start_s": excerpt.start_s,
        "end_s": excerpt.end_s,
        "split": excerpt.split,
        "sample_rate": SAMPLE_RATE,
        "frames": int(next(iter(audio.values())).shape[1]),
        "mix_loudness_lufs": round(integrated_loudness(mix, SAMPLE_RATE), 3),
        "dropped_silent": sorted(set(audio) - set(stems)),
        "stems": stems,
    }
    write_atomic(folder / "meta.json", json.dumps(meta, indent=1))
    return meta


def split_songs(songs: Sequence[str], val_share: float, seed: int) -> dict[str, str]:
    """``{song: "train" | "val"}``: a seeded split by song (at least one song in each)."""
    order = sorted(songs)
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    n_val = max(1, round(val_share * len(order)))
    return {s: ("val" if i < n_val else "train") for i, s in enumerate(order)}


def list_multitracks(root: str | Path, split: str | None = None) -> list[Path]:
    """Finished multitrack folders under ``root`` (those with a ``meta.json``), sorted, optionally
    only those of ``split``."""
    out = []
    for meta_path in sorted(Path(root).glob("*/meta.json")):
        if split is None or json.loads(meta_path.read_text())["split"] == split:
            out.append(meta_path.parent)
    return out
