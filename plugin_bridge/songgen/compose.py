"""Seeded procedural arrangements as General MIDI files, one track and one channel per part.

A seed picks the key and mode, the tempo (80-140 bpm), a chord progression, a drum style, a density
(0-1: how busy the hats, bass, lead and arp are) and GM programs from a few sensible families. Parts:
``drums`` (channel 10, index 9), ``bass``, ``keys`` (piano, organ, strings or pad), ``lead`` and,
for about two seeds in three, ``arp`` (a plucked or mallet arpeggio). Each part is a named track
(``track_name``; ``instrument_name`` holds the GM program) with a program change, reverb and chorus
sends at 0 (dry) and humanised velocities and timing. The same seed always gives the same bytes:
choices come from `random.Random` (stable across Python versions) seeded with a SHA-256 of the seed
and the part's name (so adding a part never changes another, and near seeds are unrelated).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import mido

from ..errors import ParameterError

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # a 16th note, ticks
BAR = 16 * STEP  # 4/4
#: Silence after the last note-off (seconds) where release tails ring out; the end-of-track marker.
TAIL_S = 2.0
MIN_SECONDS, MAX_SECONDS = 2.0, 600.0

PART_ROLES = ("drums", "bass", "keys", "lead", "arp")
CHANNELS = {"drums": 9, "bass": 0, "keys": 1, "lead": 2, "arp": 3}

#: GM programs (0-based) per part, with their GM names.
PROGRAMS: dict[str, dict[int, str]] = {
    "bass": {
        32: "Acoustic Bass",
        33: "Electric Bass (finger)",
        34: "Electric Bass (pick)",
        35: "Fretless Bass",
        38: "Synth Bass 1",
        39: "Synth Bass 2",
    },
    "keys": {
        0: "Acoustic Grand Piano",
        4: "Electric Piano 1",
        5: "Electric Piano 2",
        16: "Drawbar Organ",
        48: "String Ensemble 1",
        49: "String Ensemble 2",
        50: "Synth Strings 1",
        89: "Pad 2 (warm)",
    },
    "lead": {
        56: "Trumpet",
        65: "Alto Sax",
        71: "Clarinet",
        73: "Flute",
        80: "Lead 1 (square)",
        81: "Lead 2 (sawtooth)",
    },
    "arp": {
        8: "Celesta",
        11: "Vibraphone",
        12: "Marimba",
        24: "Acoustic Guitar (nylon)",
        27: "Electric Guitar (clean)",
        46: "Orchestral Harp",
    },
}
_SUSTAINED_KEYS = {48, 49, 50, 89}
_LEAD_RANGE = {56: (60, 82), 65: (58, 80), 71: (57, 82), 73: (72, 93), 80: (62, 86), 81: (62, 86)}

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
_MODE_WEIGHTS = {"major": 4, "minor": 4, "dorian": 1, "mixolydian": 1}
# Progressions as 0-based scale degrees, one chord per bar (or per two bars).
_MAJOR_PROGS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 1, 4), (3, 4, 2, 5))
_MINOR_PROGS = ((0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 5, 3, 4), (0, 2, 6, 3), (0, 3, 0, 6))
_PROGS = {"major": _MAJOR_PROGS, "mixolydian": (*_MAJOR_PROGS, (0, 6, 3, 0)), "minor": _MINOR_PROGS}
_PROGS["dorian"] = (*_MINOR_PROGS, (0, 3, 0, 3))
_NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")
_PARENT_SHIFT = {"major": 0, "mixolydian": 5, "dorian": 10}  # semitones from root to the parent major

# GM drum notes: 36 kick, 38 snare, 37 side stick, 39 clap, 42 closed hat, 46 open hat, 49 crash, 51 ride.
DRUM_STYLES: dict[str, dict[int, str]] = {
    "rock": {36: "x.......x.x.....", 38: "....X.......X...", 42: "x.x.x.x.x.x.x.x."},
    "disco": {36: "X...X...X...X...", 39: "....X.......X...", 42: "x...x...x...x...", 46: "..x...x...x...x."},
    "halftime": {36: "x.........x.....", 38: "........X.......", 42: "x.x.x.x.x.x.x.x."},
    "funk": {36: "x..x..x...x..x..", 38: "....X..g.g..X..g", 42: "xxxxxxxxxxxxxxxx"},
    "hiphop": {36: "x......xx.x.....", 38: "....X.......X...", 42: "x.x.x.x.x.x.x.x."},
    "pop": {36: "x.....x.x.......", 38: "....X.......X...", 42: "x.x.x.x.x.x.x.x."},
    "ride": {36: "x.......x.......", 37: "....x.......x...", 51: "x.x.x.x.x.x.x.x."},
}
_DRUM_VEL = {"X": 112, "x": 92, "g": 38}
_TOMS = (50, 48, 47, 45, 43, 41)

# Bass rhythms: (step, length in steps, what): r root, 5 fifth, 8 octave, a approach to the next root.
_BASS_PATTERNS = {
    "whole": ((0, 15, "r"),),
    "half": ((0, 7, "r"), (8, 7, "r")),
    "root5": ((0, 3, "r"), (4, 3, "5"), (8, 3, "r"), (12, 3, "5")),
    "eighths": tuple((s, 2, "r") for s in range(0, 16, 2)),
    "octave": tuple((s, 1, "r" if s % 4 == 0 else "8") for s in range(0, 16, 2)),
    "syncop": ((0, 3, "r"), (3, 2, "r"), (6, 2, "5"), (10, 2, "r"), (12, 2, "8"), (14, 2, "a")),
}
_BASS_BY_DENSITY = (
    ("whole", "half", "root5"),
    ("root5", "syncop", "eighths"),
    ("eighths", "octave", "syncop"),
)
# Keys rhythms: (step, length in steps).
_KEYS_PATTERNS = {
    "sustain": ((0, 16),),
    "halves": ((0, 8), (8, 8)),
    "quarters": ((0, 3), (4, 3), (8, 3), (12, 3)),
    "charleston": ((0, 3), (6, 4), (12, 3)),
    "offbeat": ((2, 2), (6, 2), (10, 2), (14, 2)),
    "pop": ((0, 6), (6, 4), (10, 6)),
}
# Lead rhythm cells per beat (onset step, length in steps); None is a half note over two beats.
_CELLS_SPARSE = (((0, 4),), ((0, 4),), ((2, 2),), (), None, ((0, 2), (2, 2)))
_CELLS_DENSE = (((0, 2), (2, 2)), ((0, 3), (3, 1)), ((0, 1), (1, 1), (2, 2)), ((0, 4),), ((2, 2),), None)


@dataclass(frozen=True)
class SongPlan:
    """The choices a seed makes: key (root pitch class 0-11, mode), tempo (bpm), harmony and style."""

    seed: int
    root: int
    mode: str
    bpm: float
    progression: tuple[int, ...]
    bars_per_chord: int
    sevenths: bool
    drum_style: str
    density: float
    programs: dict[str, int]
    keys_pattern: str
    bass_pattern: str
    arp: bool

    @property
    def key_name(self) -> str:
        """The key as text, e.g. ``"D dorian"``."""
        return f"{_NOTE_NAMES[self.root]} {self.mode}"

    def describe(self) -> str:
        """One line describing the song."""
        progs = ", ".join(f"{p}={PROGRAMS[p][n]}" for p, n in self.programs.items())
        return (
            f"seed {self.seed}: {self.key_name}, {self.bpm:g} bpm, {self.drum_style} drums, "
            f"density {self.density:.2f}, degrees {self.progression}; {progs}"
        )


@dataclass(frozen=True)
class _Note:
    start: int  # ticks
    length: int  # ticks
    pitch: int
    velocity: int


def _rng(*key: object) -> random.Random:
    """A generator seeded by a hash of ``key``: Mersenne Twister's first draws from similar string
    seeds are correlated (seeds 2, 3, 4 gave one tempo), a hash of the key is not."""
    digest = hashlib.sha256("/".join(map(str, ("songgen", *key))).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def plan_song(seed: int, bpm: float | None = None) -> SongPlan:
    """The seeded choices of a song (see the module docstring); ``bpm`` overrides the tempo."""
    rng = _rng("plan", int(seed))
    mode = rng.choices(list(_MODE_WEIGHTS), weights=list(_MODE_WEIGHTS.values()))[0]
    tempo = float(round(rng.uniform(80.0, 140.0))) if bpm is None else float(bpm)
    density = round(rng.uniform(0.2, 0.9), 2)
    programs = {role: rng.choice(sorted(PROGRAMS[role])) for role in ("bass", "keys", "lead", "arp")}
    has_arp = rng.random() < 0.65
    if not has_arp:
        del programs["arp"]
    sustained = programs["keys"] in _SUSTAINED_KEYS
    keys_pattern = rng.choice(
        ("sustain", "halves") if sustained else ("quarters", "charleston", "offbeat", "pop")
    )
    tier = 0 if density < 0.4 else (1 if density < 0.65 else 2)
    return SongPlan(
        seed=int(seed),
        root=rng.randrange(12),
        mode=mode,
        bpm=tempo,
        progression=rng.choice(_PROGS[mode]),
        bars_per_chord=2 if tempo > 120 and rng.random() < 0.5 else 1,
        sevenths=rng.random() < 0.3,
        drum_style=rng.choice(sorted(DRUM_STYLES)),
        density=density,
        programs=programs,
        keys_pattern=keys_pattern,
        bass_pattern=rng.choice(_BASS_BY_DENSITY[tier]),
        arp=has_arp,
    )


def _scale_pitch(plan: SongPlan, degree: int) -> int:
    """Semitones above the key root of scale ``degree`` (any integer; 7 is the octave)."""
    return SCALES[plan.mode][degree % 7] + 12 * (degree // 7)


def _chord(plan: SongPlan, bar: int) -> tuple[int, list[int]]:
    """The chord of ``bar``: its scale degree and its tones in semitones above the key root."""
    degree = plan.progression[(bar // plan.bars_per_chord) % len(plan.progression)]
    steps = (0, 2, 4, 6) if plan.sevenths else (0, 2, 4)
    return degree, [_scale_pitch(plan, degree + s) for s in steps]


def _voicings(plan: SongPlan, bars: int, lo: int = 52, hi: int = 76) -> list[list[int]]:
    """Closed chord voicings per bar (MIDI notes in ``lo..hi``) with smooth voice leading."""
    out: list[list[int]] = []
    prev: list[int] | None = None
    for bar in range(bars):
        tones = _chord(plan, bar)[1]
        candidates = []
        for octave in range(3, 7):
            for inv in range(len(tones)):
                notes = sorted(
                    plan.root + 12 * octave + t + (12 if i < inv else 0) for i, t in enumerate(tones)
                )
                if lo <= notes[0] and notes[-1] <= hi:
                    candidates.append(notes)
        if prev is None:
            best = min(candidates, key=lambda c: abs(sum(c) / len(c) - 62))
        else:
            best = min(candidates, key=lambda c: sum(abs(a - b) for a, b in zip(c, prev, strict=True)))
        out.append(best)
        prev = best
    return out


def _vel(rng: random.Random, base: float, spread: float = 6.0) -> int:
    return max(1, min(127, round(base + rng.gauss(0.0, spread))))


def _jitter(rng: random.Random, tick: int, amount: int) -> int:
    return max(0, tick + rng.randint(-amount, amount)) if amount else tick


def _drums(plan: SongPlan, bars: int, rng: random.Random) -> list[_Note]:
    style = DRUM_STYLES[plan.drum_style]
    notes = []
    for bar in range(bars):
        t0 = bar * BAR
        fill = bars >= 4 and bar % 4 == 3
        crash = bar % 4 == 0 and (bar == 0 or bars >= 4)
        if crash:
            notes.append(_Note(t0, STEP // 2, 49, _vel(rng, 105)))
        for pitch, pattern in style.items():
            lane = pattern
            if pitch == 42 and plan.density > 0.7 and pattern == "x.x." * 4:
                lane = "xgxg" * 4
            for step, ch in enumerate(lane):
                if ch == "." or (fill and step >= 12) or (crash and step == 0 and pitch in (42, 51)):
                    continue
                base = _DRUM_VEL[ch]
                if pitch in (42, 51):  # hats and ride: accent the beats
                    base = base + 8 if step % 4 == 0 else base - 14
                    if ch == "g":
                        base = 50
                notes.append(
                    _Note(
                        _jitter(rng, t0 + step * STEP, 3 if pitch == 42 else 0),
                        STEP // 2,
                        pitch,
                        _vel(rng, base),
                    )
                )
        for step in range(16):  # ghost snares
            if style.get(38, "." * 16)[step] == "." and rng.random() < 0.12 * plan.density and step < 12:
                notes.append(_Note(t0 + step * STEP, STEP // 2, 38, _vel(rng, 36, 4)))
        if fill:
            for k, step in enumerate(range(12, 16)):
                pitch = 38 if rng.random() < 0.4 else _TOMS[min(len(_TOMS) - 1, k + rng.randrange(2))]
                notes.append(_Note(t0 + step * STEP, STEP // 2, pitch, _vel(rng, 88 + 4 * k)))
    return notes


def _bass(plan: SongPlan, bars: int, rng: random.Random) -> list[_Note]:
    pattern = _BASS_PATTERNS[plan.bass_pattern]

    def root_of(bar: int) -> int:
        pc = (plan.root + _chord(plan, bar)[1][0]) % 12
        return 24 + pc + (12 if pc < 7 else 0)  # G1 (31) .. F#2 (42)

    notes = []
    for bar in range(bars):
        root, nxt = root_of(bar), root_of(bar + 1)
        fifth = root + _chord(plan, bar)[1][2] - _chord(plan, bar)[1][0]
        for step, length, what in pattern:
            if bar % 4 == 3 and what == "r" and step == 14:
                what = "a"
            pitch = {"r": root, "5": fifth, "8": root + 12}.get(what)
            if pitch is None:
                pitch = nxt + rng.choice((-1, -2, 2)) if nxt != root else root + 7
            accent = 100 if step % 4 == 0 else 88
            t = _jitter(rng, bar * BAR + step * STEP, 4)
            notes.append(_Note(t, length * STEP - 12, pitch, _vel(rng, accent, 5)))
    return notes


def _keys(plan: SongPlan, bars: int, voicings: list[list[int]], rng: random.Random) -> list[_Note]:
    pattern = _KEYS_PATTERNS[plan.keys_pattern]
    sustained = plan.programs["keys"] in _SUSTAINED_KEYS
    notes = []
    for bar in range(bars):
        for step, length in pattern:
            base = (72 if sustained else 80) + (6 if step == 0 else 0)
            t = _jitter(rng, bar * BAR + step * STEP, 0 if sustained else 5)
            for k, pitch in enumerate(voicings[bar]):
                roll = 0 if sustained else 4 * k * rng.randint(0, 1)  # an occasional rolled chord
                notes.append(_Note(t + roll, length * STEP - 10 - roll, pitch, _vel(rng, base - 3 * k, 5)))
    return notes


def _phrase_rhythm(plan: SongPlan, rng: random.Random) -> list[tuple[int, int]]:
    """Two bars of lead rhythm as (step, length) in 16ths; the last beat is a breath."""
    cells = _CELLS_DENSE if rng.random() < plan.density else _CELLS_SPARSE
    out: list[tuple[int, int]] = []
    beat = 0
    while beat < 7:
        cell = rng.choice(cells)
        if cell is None:
            if beat < 6:
                out.append((beat * 4, 8))
                beat += 2
                continue
            cell = ((0, 4),)
        out.extend((beat * 4 + s, n) for s, n in cell)
        beat += 1
    if not out:
        out = [(0, 8)]
    last_step, _ = out[-1]
    out[-1] = (last_step, max(2, 28 - last_step))
    return out


def _lead(plan: SongPlan, bars: int, active: list[bool], rng: random.Random) -> list[_Note]:
    lo, hi = _LEAD_RANGE[plan.programs["lead"]]
    degrees = [d for d in range(-7, 35) if lo <= plan.root + 48 + _scale_pitch(plan, d) <= hi]
    lo_d, hi_d = degrees[0], degrees[-1]
    notes = []
    degree = (lo_d + hi_d) // 2
    rhythm: list[tuple[int, int]] = []
    moves: list[int] = []
    for phrase in range((bars + 1) // 2):
        if phrase % 2 == 0 or not rhythm:
            rhythm = _phrase_rhythm(plan, rng)
            moves = [rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3, -4)) for _ in rhythm]
        for (step, length), move in zip(rhythm, moves, strict=True):
            bar = phrase * 2 + step // 16
            if bar >= bars or not active[bar]:
                continue
            degree += move
            if degree > hi_d or degree < lo_d:
                degree -= 2 * move
                degree = min(hi_d, max(lo_d, degree))
            if step % 8 == 0:  # strong beats land on a chord tone
                chord_degree = _chord(plan, bar)[0]
                tones = [chord_degree + k for k in (0, 2, 4)]
                options = [d for d in range(lo_d, hi_d + 1) if any((d - t) % 7 == 0 for t in tones)]
                degree = min(options, key=lambda d: (abs(d - degree), d))
            pitch = plan.root + 48 + _scale_pitch(plan, degree)
            accent = 98 if step % 4 == 0 else 86
            t = _jitter(rng, phrase * 2 * BAR + step * STEP, 6)
            notes.append(_Note(t, length * STEP - 15, pitch, _vel(rng, accent, 6)))
    return notes


def _arp(
    plan: SongPlan, bars: int, voicings: list[list[int]], active: list[bool], rng: random.Random
) -> list[_Note]:
    sixteenths = plan.density > 0.6
    every = 1 if sixteenths else 2
    shape = rng.choice(("up", "updown", "pedal"))
    notes = []
    for bar in range(bars):
        if not active[bar]:
            continue
        tones = [p + 12 for p in voicings[bar]]
        tones = tones + [p + 12 for p in tones]
        if shape == "updown":
            tones = tones + tones[-2:0:-1]
        elif shape == "pedal":
            tones = [x for p in tones[1:] for x in (tones[0], p)]
        for i, step in enumerate(range(0, 16, every)):
            accent = 72 if step % 4 == 0 else 60
            t = _jitter(rng, bar * BAR + step * STEP, 3)
            notes.append(_Note(t, every * STEP - 10, tones[i % len(tones)], _vel(rng, accent, 5)))
    return notes


def _track(name: str, program: int, channel: int, notes: list[_Note], end: int, eot: int) -> mido.MidiTrack:
    """A part's track: name, program, dry sends, notes (clipped at ``end``), end of track at ``eot``."""
    instrument = "Standard Kit" if channel == 9 else PROGRAMS[name][program]
    head = [
        mido.MetaMessage("track_name", name=name),
        mido.MetaMessage("instrument_name", name=instrument),
        mido.Message("program_change", channel=channel, program=program),
        mido.Message("control_change", channel=channel, control=7, value=100),
        mido.Message("control_change", channel=channel, control=10, value=64),
        mido.Message("control_change", channel=channel, control=91, value=0),
        mido.Message("control_change", channel=channel, control=93, value=0),
    ]
    events = []
    for n in notes:
        stop = min(n.start + n.length, end)
        if n.start >= end or stop - n.start < 10:
            continue
        events.append(
            (n.start, 1, n.pitch, mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity))
        )
        events.append(
            (stop, 0, n.pitch, mido.Message("note_off", channel=channel, note=n.pitch, velocity=64))
        )
    events.sort(key=lambda e: e[:3])
    track = mido.MidiTrack(head)
    now = 0
    for tick, _, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=eot - now))
    return track


def compose_song(seed: int, seconds: float = 30.0, bpm: float | None = None) -> mido.MidiFile:
    """A procedural arrangement as a type-1 General MIDI file, deterministic per ``seed``.

    Parameters
    ----------
    seed : int
        Picks key, mode, tempo, progression, drum style, density, GM programs and every note.
    seconds : float
        Length of the music in seconds (2-600); notes are cut at this time and the end-of-track
        marker sits `TAIL_S` seconds later so release tails ring out.
    bpm : float, optional
        Tempo in beats per minute (20-300); by default the seed picks 80-140.

    Returns
    -------
    mido.MidiFile
        Track 0 holds tempo, time and key signatures and a text line describing the song; then
        one track per part (``drums`` on channel index 9, ``bass``, ``keys``, ``lead``, maybe ``arp``).

    Raises
    ------
    ParameterError
        For a length or tempo out of range.
    """
    seconds = float(seconds)
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ParameterError(f"song length {seconds:g} s is outside {MIN_SECONDS:g}-{MAX_SECONDS:g} s")
    if bpm is not None and not 20.0 <= float(bpm) <= 300.0:
        raise ParameterError(f"tempo {float(bpm):g} bpm is outside 20-300 bpm")
    plan = plan_song(seed, bpm)
    tempo = mido.bpm2tempo(plan.bpm)  # microseconds per beat
    seconds_per_tick = tempo / 1e6 / TICKS_PER_BEAT
    end = round(seconds / seconds_per_tick)
    eot = end + round(TAIL_S / seconds_per_tick)
    bars = -(-end // BAR)
    sections = [bar // 4 for bar in range(bars)]
    lead_on = [bars < 8 or bar >= 2 for bar in range(bars)]  # a two-bar intro in longer songs
    arp_on = [bars < 8 or s % 2 == 1 or s == sections[-1] for s in sections]
    voicings = _voicings(plan, bars + 1)

    def rng(role: str) -> random.Random:
        return _rng(role, plan.seed)

    parts = {
        "drums": (0, _drums(plan, bars, rng("drums"))),
        "bass": (plan.programs["bass"], _bass(plan, bars, rng("bass"))),
        "keys": (plan.programs["keys"], _keys(plan, bars, voicings, rng("keys"))),
        "lead": (plan.programs["lead"], _lead(plan, bars, lead_on, rng("lead"))),
    }
    if plan.arp:
        parts["arp"] = (plan.programs["arp"], _arp(plan, bars, voicings, arp_on, rng("arp")))
    for name, (program, notes) in parts.items():
        if not any(n.start < end - STEP for n in notes):  # a very short song that missed a part
            held = _Note(0, min(end, BAR), voicings[0][-1] + 12, 90)
            parts[name] = (program, [held])

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    if plan.mode == "minor":
        key = _MINOR_NAMES[plan.root]
    else:
        key = _NOTE_NAMES[(plan.root + _PARENT_SHIFT[plan.mode]) % 12]
    mid.tracks.append(
        mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name=f"plugin-bridge song {plan.seed}"),
                mido.MetaMessage("text", text=plan.describe()),
                mido.MetaMessage("set_tempo", tempo=tempo),
                mido.MetaMessage("time_signature", numerator=4, denominator=4),
                mido.MetaMessage("key_signature", key=key),
                mido.MetaMessage("end_of_track", time=eot),
            ]
        )
    )
    for name, (program, notes) in parts.items():
        mid.tracks.append(_track(name, program, CHANNELS[name], notes, end, eot))
    return mid
