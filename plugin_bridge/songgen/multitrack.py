"""Procedural multitrack songs: a seeded MIDI arrangement, one dry stem per part, and a session file.

    compose_song(seed) -> mido.MidiFile            # plugin_bridge.songgen.compose
    render_stems(midi, out_dir) -> StemSet         # {part: Path} of equal-length stereo WAVs
    stem_sum_check(stems) -> residual dB           # stems summed vs a full render of the MIDI
    make_multitrack(out_dir, seed) -> session.yaml # all of it: stems/, song.mid, session.yaml

Stems come from fluidsynth when it and a GM soundfont are installed (argument, $PLUGIN_BRIDGE_SOUNDFONT,
then FluidR3_GM, TimGM6mb, default-GM in /usr/share/sounds/sf2), else from the built-in numpy synth
(`plugin_bridge.songgen.voices`), so the material exists everywhere without downloads. With
fluidsynth each part is rendered inside the whole song (its channel alone in the written voice
group), so stems sum to the full render to float precision. Same seed and same synth give
bit-identical samples on one machine and software stack (the WAV files' bytes differ: libsndfile
stamps the time into a float WAV's PEAK chunk; numpy's SIMD sin may differ between CPUs).

Licence: TimGM6mb.sf2 (Debian ``timgm6mb-soundfont``, (c) 2004 Tim Brechbill, 2010 David Bolton) is
GPL-2, see /usr/share/doc/timgm6mb-soundfont/copyright.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mido
import numpy as np
import pyloudnorm
import yaml

from ..audio_io import read_audio, write_audio
from ..errors import AudioError, BackendError, ParameterError
from ..files import replacing
from .compose import TAIL_S, compose_song
from .fluid import find_soundfont, fluidsynth_path, isolation_plan, render_fluidsynth
from .parts import channels_of, note_events, remap_channels, split_parts
from .voices import render_notes

__all__ = [
    "MIX_DEFAULTS",
    "StemSet",
    "compose_song",
    "make_multitrack",
    "render_mix",
    "render_parts",
    "render_stems",
    "resolve_synth",
    "session_dict",
    "stem_sum_check",
]

SYNTHS = ("auto", "fluidsynth", "builtin")
#: Samples quieter than this (linear, -100 dBFS) count as silence when trimming tails.
SILENCE = 1e-5
END_FADE_S = 0.01

#: Starting mix per part: target loudness (LUFS, the fader level-matches each stem to it), pan,
#: chain and reverb send. Parts not listed get the ``"*"`` entry.
MIX_DEFAULTS: dict[str, dict] = {
    "drums": {
        "lufs": -26.0,
        "pan": 0.0,
        "chain": {
            "chain": "default",
            "values": {"comp.threshold_db": -12, "comp.ratio": 3, "comp.makeup_db": 2},
        },
        "send_db": -18.0,
    },
    "bass": {"lufs": -27.0, "pan": 0.0},
    "keys": {"lufs": -29.0, "pan": -0.3, "send_db": -15.0},
    "lead": {"lufs": -27.0, "pan": 0.25, "send_db": -12.0},
    "arp": {"lufs": -31.0, "pan": 0.45, "send_db": -14.0},
    "*": {"lufs": -29.0, "pan": 0.0},
}
VERB_BUS = {
    "name": "verb",
    "chain": {
        "effects": [
            {
                "id": "rev",
                "type": "reverb",
                "params": {
                    "room_size": 0.7,
                    "damping": 0.5,
                    "wet_level": 0.35,
                    "dry_level": 0.0,
                    "width": 1.0,
                },
            }
        ]
    },
    "gain_db": 0.0,
}


class StemSet(dict):
    """``{part name: stem Path}`` plus how the stems were made: ``midi``, ``sample_rate`` (Hz),
    ``synth`` ("fluidsynth" or "builtin"), ``soundfont`` (Path or None) and ``frames`` per stem."""

    def __init__(
        self,
        paths: Mapping[str, Path],
        midi: mido.MidiFile,
        sample_rate: int,
        synth: str,
        soundfont,
        frames: int,
    ):
        super().__init__(paths)
        self.midi, self.sample_rate, self.synth = midi, int(sample_rate), synth
        self.soundfont, self.frames = soundfont, int(frames)


def resolve_synth(synth: str = "auto", soundfont: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """Which synth renders: ``("fluidsynth", soundfont path)`` or ``("builtin", None)``.

    ``"auto"`` takes fluidsynth when its executable and a soundfont (see `find_soundfont`) exist;
    ``"fluidsynth"`` raises `BackendError` when either is missing.
    """
    if synth not in SYNTHS:
        raise ParameterError(f"synth must be one of {', '.join(SYNTHS)}, not {synth!r}")
    if synth == "builtin":
        return "builtin", None
    sf2 = find_soundfont(soundfont)
    if fluidsynth_path() and sf2 is not None:
        return "fluidsynth", sf2
    if synth == "fluidsynth":
        missing = "the fluidsynth executable" if not fluidsynth_path() else "a GM soundfont"
        raise BackendError(
            f"synth='fluidsynth' but {missing} is missing (apt-get install fluidsynth timgm6mb-soundfont)"
        )
    return "builtin", None


def _song_span(midi: mido.MidiFile, sample_rate: int) -> tuple[int, int]:
    """Shortest and longest stem length (samples): the last note-off, and it plus `TAIL_S`."""
    notes = note_events(midi)
    if not notes:
        raise ParameterError("the MIDI file holds no notes")
    last = max(n.end_s for n in notes)
    return round(last * sample_rate) + 1, round((last + TAIL_S) * sample_rate)


def _fit(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Trim or zero-pad to ``n`` samples and fade the last `END_FADE_S` out (float32)."""
    out = np.zeros((2, n), dtype=np.float32)
    m = min(n, audio.shape[1])
    out[:, :m] = audio[:, :m]
    fade = min(n, round(END_FADE_S * sample_rate))
    out[:, n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def _last_audible(audio: np.ndarray) -> int:
    loud = np.nonzero(np.abs(audio).max(axis=0) > SILENCE)[0]
    return int(loud[-1]) + 1 if loud.size else 0


def _render_fluid_parts(
    midi: mido.MidiFile, parts: dict[str, mido.MidiFile], sr: int, sf2: Path
) -> dict[str, np.ndarray]:
    used = channels_of(midi)
    chans = {name: channels_of(p, notes_only=True) for name, p in parts.items()}
    disjoint = sum(len(c) for c in chans.values()) == len(set().union(*chans.values()))

    def one(name: str) -> np.ndarray:
        plan = isolation_plan(used, chans[name]) if disjoint else None
        if plan is None:  # parts sharing channels: render each alone (sums to about -45 dB)
            return render_fluidsynth(parts[name], sr, sf2)
        mapping, groups = plan
        return render_fluidsynth(remap_channels(midi, mapping), sr, sf2, groups=groups)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return dict(zip(parts, pool.map(one, parts), strict=True))


def render_parts(
    midi: mido.MidiFile,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike | None = None,
    synth: str = "auto",
) -> tuple[dict[str, np.ndarray], str, Path | None]:
    """Render every part of ``midi`` in memory: ``({name: (2, n) float32}, synth, soundfont)``.

    All parts have the same length n: the longest release tail (sound above -100 dBFS), at least
    the last note-off and at most `TAIL_S` seconds after it; the last 10 ms fade out.
    """
    sr = int(sample_rate)
    kind, sf2 = resolve_synth(synth, soundfont)
    parts = split_parts(midi)
    shortest, longest = _song_span(midi, sr)
    if kind == "fluidsynth":
        raw = _render_fluid_parts(midi, parts, sr, sf2)
    else:
        raw = {name: render_notes(note_events(p), sr, longest) for name, p in parts.items()}
    n = min(longest, max(shortest, *(_last_audible(a) for a in raw.values())))
    return {name: _fit(a, n, sr) for name, a in raw.items()}, kind, sf2


def render_mix(
    midi: mido.MidiFile,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike | None = None,
    synth: str = "auto",
    frames: int | None = None,
) -> np.ndarray:
    """The whole of ``midi`` rendered at once as ``(2, frames)`` float32 (length as `render_parts`
    unless ``frames`` is given), for checking that stems sum to it."""
    sr = int(sample_rate)
    kind, sf2 = resolve_synth(synth, soundfont)
    shortest, longest = _song_span(midi, sr)
    if kind == "fluidsynth":
        audio = render_fluidsynth(midi, sr, sf2)
    else:
        audio = render_notes(note_events(midi), sr, longest)
    n = frames if frames is not None else min(longest, max(shortest, _last_audible(audio)))
    return _fit(audio, n, sr)


def render_stems(
    midi: mido.MidiFile,
    out_dir: str | os.PathLike,
    sample_rate: int = 44100,
    soundfont: str | None = None,
    synth: str = "auto",
) -> StemSet:
    """Render one stereo 32-bit float WAV per part of ``midi`` into ``out_dir`` (created if needed).

    Parameters
    ----------
    midi : mido.MidiFile
        A song; parts are its tracks with notes, named by ``track_name`` (see `split_parts`).
    out_dir : path
        Folder for ``<part>.wav``; files are written atomically.
    sample_rate : int
        Hz (fluidsynth: 8000-96000).
    soundfont : str, optional
        A .sf2 file; default $PLUGIN_BRIDGE_SOUNDFONT, then the Debian GM soundfonts.
    synth : {"auto", "fluidsynth", "builtin"}
        ``auto`` uses fluidsynth when it and a soundfont exist, else the built-in numpy synth.

    Returns
    -------
    StemSet
        ``{part: Path}``; all stems have the same length and are dry (no reverb or chorus).

    Raises
    ------
    BackendError
        fluidsynth asked for but missing, or failing. `ParameterError` for a file without notes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio, kind, sf2 = render_parts(midi, sample_rate, soundfont, synth)
    paths = {name: write_audio(out / f"{name}.wav", a, int(sample_rate)) for name, a in audio.items()}
    frames = next(iter(audio.values())).shape[1]
    return StemSet(paths, midi, int(sample_rate), kind, sf2, frames)


def residual_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """RMS of ``estimate - reference`` relative to the RMS of ``reference``, in dB."""
    n = min(estimate.shape[-1], reference.shape[-1])
    ref = np.asarray(reference[..., :n], dtype=np.float64)
    err = np.asarray(estimate[..., :n], dtype=np.float64) - ref
    ref_rms = float(np.sqrt(np.mean(ref**2)))
    if ref_rms == 0.0:
        raise AudioError("the reference render is silent")
    err_rms = float(np.sqrt(np.mean(err**2)))
    return 20.0 * math.log10(max(err_rms, 1e-15) / ref_rms)


def stem_sum_check(
    stems: Mapping[str, str | os.PathLike],
    midi: mido.MidiFile | None = None,
    soundfont: str | os.PathLike | None = None,
    synth: str | None = None,
) -> float:
    """How closely the stems sum to a full render of the whole MIDI file: residual in dB.

    ``stems`` is what `render_stems` returned (it knows its MIDI, synth and soundfont), or any
    ``{name: wav path}`` together with ``midi`` and ``synth``. The full render uses the same synth,
    soundfont, sample rate and length. With fluidsynth the parts are rendered voice for voice as
    in the full render, so the residual is float rounding (about -145 dB); the built-in synth is
    linear (the same). A part that shares MIDI channels with another is rendered alone instead:
    about -45 dB, or far worse when the parts set different programs on their shared channel.
    """
    midi = midi if midi is not None else getattr(stems, "midi", None)
    if midi is None:
        raise ParameterError("stem_sum_check needs the MIDI file the stems were rendered from")
    synth = synth or getattr(stems, "synth", "auto")
    soundfont = soundfont if soundfont is not None else getattr(stems, "soundfont", None)
    total, sr = None, None
    for path in stems.values():
        audio, sr = read_audio(path)
        total = audio.astype(np.float64) if total is None else total + audio
    if total is None:
        raise ParameterError("no stems to check")
    mix = render_mix(midi, sr, soundfont, synth, frames=total.shape[1])
    return residual_db(total, mix)


def _loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770 via pyloudnorm); -inf for silence."""
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64)))


def session_dict(
    stem_files: Mapping[str, str], sample_rate: int, gains_db: Mapping[str, float] | None = None
) -> dict:
    """A session (the schema of `plugin_bridge.session`) for stems ``{part: path relative to the
    session file}``: faders from ``gains_db`` (dB, default 0), pans, chains and reverb sends from
    `MIX_DEFAULTS`, a ``verb`` bus and the ``master`` chain."""
    tracks = []
    for name, file in stem_files.items():
        mix = MIX_DEFAULTS.get(name, MIX_DEFAULTS["*"])
        track: dict = {"name": name, "file": str(file)}
        if "chain" in mix:
            track["chain"] = copy.deepcopy(mix["chain"])
        track["gain_db"] = float((gains_db or {}).get(name, 0.0))
        track["pan"] = float(mix["pan"])
        if "send_db" in mix:
            track["sends"] = [{"bus": "verb", "level_db": float(mix["send_db"]), "pre_fader": False}]
        tracks.append(track)
    return {
        "sample_rate": int(sample_rate),
        "tracks": tracks,
        "buses": [copy.deepcopy(VERB_BUS)],
        "master": {"chain": {"chain": "master"}, "gain_db": 0.0},
    }


def _write_atomic(path: Path, write) -> None:
    """Call ``write(temporary path)`` and rename the result over ``path`` only if it succeeds."""
    with replacing(path) as tmp:
        write(tmp)


def make_multitrack(
    out_dir: str | os.PathLike,
    seed: int = 0,
    seconds: float = 30.0,
    sample_rate: int = 44100,
    synth: str = "auto",
    soundfont: str | None = None,
    bpm: float | None = None,
) -> Path:
    """Compose a song, render its stems to ``out_dir/stems/``, write ``out_dir/song.mid`` and
    ``out_dir/session.yaml``; returns the session file's path.

    Faders level-match each stem to its part's target loudness in `MIX_DEFAULTS` (rounded to 0.5
    dB, within +-12 dB), so the starting mix is balanced whatever the soundfont.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    midi = compose_song(seed, seconds, bpm)
    stems = render_stems(midi, out / "stems", sample_rate, soundfont, synth)
    _write_atomic(out / "song.mid", midi.save)
    gains = {}
    for name, path in stems.items():
        lufs = _loudness(read_audio(path)[0], sample_rate)
        target = MIX_DEFAULTS.get(name, MIX_DEFAULTS["*"])["lufs"]
        gains[name] = (
            float(np.clip(round(2 * (target - lufs)) / 2, -12.0, 12.0)) if math.isfinite(lufs) else 0.0
        )
    session = session_dict({name: f"stems/{p.name}" for name, p in stems.items()}, sample_rate, gains)
    how = f"fluidsynth with {stems.soundfont.name}" if stems.soundfont else "the built-in synth"
    header = (
        f"# plugin-bridge procedural song: {midi.tracks[0][1].text}\n"
        f"# stems rendered by {how} at {sample_rate} Hz, dry; faders level-match each part.\n"
    )
    path = out / "session.yaml"
    text = header + yaml.safe_dump(session, sort_keys=False, default_flow_style=None)
    _write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
