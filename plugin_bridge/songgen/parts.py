"""Splitting a MIDI file into one file per part, and reading its notes in seconds.

A part is a track that holds notes (for a type-0 file, a channel). Each part's file keeps the tempo,
time and key signatures of the whole file and ends where the whole file ends, so every part renders
on the same time line and the parts sum to the whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido

_CONDUCTOR_TYPES = {"set_tempo", "time_signature", "key_signature"}


@dataclass(frozen=True)
class NoteEvent:
    """One note: start and end (seconds), channel (0-15), MIDI pitch, velocity (1-127), GM program
    (0-127) and the channel's volume x expression (CC7 x CC11) at the start as a linear gain."""

    start_s: float
    end_s: float
    channel: int
    pitch: int
    velocity: int
    program: int
    gain: float = 1.0


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message | mido.MetaMessage]]:
    out, now = [], 0
    for msg in track:
        now += msg.time
        out.append((now, msg))
    return out


def _has_notes(events) -> bool:
    return any(m.type == "note_on" and m.velocity > 0 for _, m in events)


def _to_track(events, end_tick: int, name: str | None = None) -> mido.MidiTrack:
    track = mido.MidiTrack()
    if name is not None:
        track.append(mido.MetaMessage("track_name", name=name))
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return track


def _unique(name: str, taken: set[str]) -> str:
    base, k = name, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def split_parts(midi: mido.MidiFile) -> dict[str, mido.MidiFile]:
    """One type-1 MIDI file per part, keyed by part name, in the order of the file.

    Names come from the ``track_name`` of each track with notes (``track<N>`` when unnamed, a
    ``-2`` suffix when repeated); a type-0 file is split by channel (``drums`` for channel 10,
    ``channel<N>`` otherwise). Every part file holds a conductor track (all tempo, time and key
    signature events of the whole file) and ends at the same tick as the whole file.
    """
    tracks = [_absolute(t) for t in midi.tracks]
    end_tick = max((ev[-1][0] for ev in tracks if ev), default=0)
    conductor = [(t, m) for ev in tracks for t, m in ev if m.is_meta and m.type in _CONDUCTOR_TYPES]
    groups: list[tuple[str, list]] = []
    if midi.type == 0 and tracks:
        channels = sorted({m.channel for _, m in tracks[0] if not m.is_meta and hasattr(m, "channel")})
        for ch in channels:
            events = [(t, m) for t, m in tracks[0] if not m.is_meta and getattr(m, "channel", None) == ch]
            if _has_notes(events):
                groups.append(("drums" if ch == 9 else f"channel{ch + 1}", events))
    else:
        for i, events in enumerate(tracks):
            if not _has_notes(events):
                continue
            names = [m.name for _, m in events if m.type == "track_name" and m.name.strip()]
            body = [
                (t, m) for t, m in events if not (m.is_meta and m.type in _CONDUCTOR_TYPES | {"end_of_track"})
            ]
            groups.append((names[0].strip() if names else f"track{i}", body))
    taken: set[str] = set()
    parts = {}
    for name, events in groups:
        part = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
        part.tracks.append(_to_track(conductor, end_tick))
        part.tracks.append(_to_track(events, end_tick))
        parts[_unique(name, taken)] = part
    return parts


def note_events(midi: mido.MidiFile) -> list[NoteEvent]:
    """Every note of ``midi`` with times in seconds (tempo changes applied), sorted by start.

    Program changes and CC7/CC11 are tracked per channel; sustain pedal and pitch bend are ignored.
    A note still sounding at the end of the file ends there.
    """
    now = 0.0
    program = [0] * 16
    volume = [100] * 16
    expression = [127] * 16
    sounding: dict[tuple[int, int], list[tuple[float, int, int, float]]] = {}
    notes: list[NoteEvent] = []
    for msg in midi:  # merged tracks, delta times in seconds
        now += msg.time
        if msg.is_meta:
            continue
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "control_change" and msg.control in (7, 11):
            (volume if msg.control == 7 else expression)[msg.channel] = msg.value
        elif msg.type == "note_on" and msg.velocity > 0:
            gain = (volume[msg.channel] / 127.0) ** 2 * (expression[msg.channel] / 127.0) ** 2
            sounding.setdefault((msg.channel, msg.note), []).append(
                (now, msg.velocity, program[msg.channel], gain)
            )
        elif msg.type in ("note_off", "note_on"):
            started = sounding.get((msg.channel, msg.note))
            if started:
                t0, vel, prog, gain = started.pop(0)
                notes.append(NoteEvent(t0, now, msg.channel, msg.note, vel, prog, gain))
    for (ch, pitch), started in sounding.items():
        notes.extend(NoteEvent(t0, now, ch, pitch, vel, prog, gain) for t0, vel, prog, gain in started)
    notes.sort(key=lambda n: (n.start_s, n.channel, n.pitch))
    return notes


def channels_of(midi: mido.MidiFile, notes_only: bool = False) -> set[int]:
    """The MIDI channels (0-15) that ``midi`` uses (only those with notes when ``notes_only``)."""
    return {
        m.channel
        for track in midi.tracks
        for m in track
        if not m.is_meta and hasattr(m, "channel") and (not notes_only or m.type == "note_on")
    }


def remap_channels(midi: mido.MidiFile, mapping: dict[int, int]) -> mido.MidiFile:
    """A copy of ``midi`` with channel ``c`` moved to ``mapping[c]`` (others unchanged)."""
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    for track in midi.tracks:
        out.tracks.append(
            mido.MidiTrack(
                m.copy(channel=mapping.get(m.channel, m.channel))
                if not m.is_meta and hasattr(m, "channel")
                else m
                for m in track
            )
        )
    return out
