"""What a stems mix starts from: a folder of stems, or a session file that leaves decisions to the AI.

A **folder**: every audio file in it (not in sub-folders) is one track, named after the file
without its extension; hidden files and files of other types are skipped.

A **session file** (the schema of `plugin_bridge.session`) says per track what the AI decides: a
field set to ``auto``, or left out, is the AI's; a field with a value is kept as written. The
fields the AI can decide are ``gain_db`` (the fader), ``pan``, ``chain`` (the track's insert
chain: high-pass, corrective EQ, compression) and ``sends`` (reverb and delay send levels)::

    tracks:
      - {name: vocals, file: stems/vox.wav}                 # everything left to the AI
      - {name: bass, file: stems/bass.wav, pan: 0, gain_db: auto, chain: auto}
      - {name: gtr, file: stems/gtr.wav, chain: channel}     # the AI sets fader, pan, sends
    master: {chain: master}                                 # buses and master are kept if given

Every stem is checked before anything is written (`collect_tracks`): a folder with no audio, an
unreadable stem (named), two tracks with the same name, more than `MAX_TRACKS` tracks are errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..audio_io import READ_SUFFIXES, AudioInfo, inspect_audio
from ..chain import read_structured_file
from ..errors import AudioError, ParameterError
from ..session import SessionError

#: At most this many tracks in one stems mix.
MAX_TRACKS = 64
#: The track fields the AI may decide.
AI_FIELDS = ("gain_db", "pan", "chain", "sends")
AUTO = "auto"


@dataclass
class TrackInput:
    """One input track: ``name``, stem ``path``, what the file holds (``info``), the fields the user
    set (``given``, kept as written) and the ones left to the AI (``auto``)."""

    name: str
    path: Path
    info: AudioInfo
    given: dict = field(default_factory=dict)
    auto: tuple[str, ...] = AI_FIELDS


@dataclass
class StemsInput:
    """The tracks of a stems mix, where they came from (``source``: folder or session file), and a
    session file's own ``buses`` and ``master`` (kept as written) and ``sample_rate`` if it set one."""

    source: Path
    tracks: list[TrackInput]
    buses: list = field(default_factory=list)
    master: Mapping | None = None
    sample_rate: int | None = None


def _stem_info(path: Path, name: str) -> AudioInfo:
    try:
        return inspect_audio(path)
    except AudioError as e:
        raise AudioError(f"stem {name!r} is unreadable: {e}") from None


def _check_count(n: int, source: Path) -> None:
    if n == 0:
        raise AudioError(f"{source}: no audio files found (looked for {', '.join(READ_SUFFIXES)})")
    if n > MAX_TRACKS:
        raise ParameterError(f"{source}: {n} tracks; a stems mix takes at most {MAX_TRACKS}")


def _check_unique(names: list[tuple[str, Path]], source: Path) -> None:
    seen: dict[str, Path] = {}
    for name, path in names:
        key = name.casefold()
        if key in seen:
            raise ParameterError(
                f"{source}: two stems are named {name!r} ({seen[key].name} and {path.name}); "
                "rename one so every track has its own name"
            )
        seen[key] = path


def stems_in_folder(folder: str | os.PathLike) -> StemsInput:
    """Every audio file directly in ``folder`` as a track (all fields left to the AI), checked."""
    root = Path(folder)
    if not root.is_dir():
        raise AudioError(f"{root}: not a folder")
    files = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in READ_SUFFIXES
    )
    named = [(p.stem, p) for p in files]
    _check_count(len(named), root)
    _check_unique(named, root)
    return StemsInput(root, [TrackInput(n, p, _stem_info(p, n)) for n, p in named])


def stems_in_session(path: str | os.PathLike) -> StemsInput:
    """The tracks of a session file, with the fields set to ``auto`` or left out left to the AI."""
    src = Path(path)
    data = read_structured_file(src)
    if not isinstance(data, Mapping) or not isinstance(data.get("tracks"), list):
        raise SessionError(f"{src}: a session file needs a 'tracks' list")
    base = src.parent
    named, raws = [], []
    for i, raw in enumerate(data["tracks"]):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw.get("file"):
            raise SessionError(f"{src}: track #{i} needs a 'name' and a 'file'")
        f = Path(str(raw["file"]))
        named.append((raw["name"], f if f.is_absolute() else base / f))
        raws.append(raw)
    _check_count(len(named), src)
    _check_unique(named, src)
    tracks = []
    for (name, p), raw in zip(named, raws, strict=True):
        given = {k: v for k, v in raw.items() if k not in ("name", "file") and v != AUTO}
        auto = tuple(k for k in AI_FIELDS if k not in given)
        tracks.append(TrackInput(name, p, _stem_info(p, name), given, auto))
    rate = data.get("sample_rate")
    return StemsInput(
        src,
        tracks,
        buses=list(data.get("buses") or []),
        master=data.get("master"),
        sample_rate=int(rate) if rate is not None else None,
    )


def collect_tracks(source: str | os.PathLike) -> StemsInput:
    """A folder of stems or a session file (.yaml/.yml/.json), every stem checked readable."""
    p = Path(source)
    if p.is_dir():
        return stems_in_folder(p)
    if p.suffix.lower() in (".yaml", ".yml", ".json") and p.is_file():
        return stems_in_session(p)
    if not p.exists():
        raise AudioError(f"{p}: no such folder or session file")
    raise ParameterError(f"{p}: a stems mix takes a folder of stems or a session file (.yaml, .json)")


def session_rate(stems: StemsInput) -> int:
    """The mix's sample rate (Hz): the session's, else the rate most stems have (the highest on a tie)."""
    if stems.sample_rate:
        return stems.sample_rate
    counts: dict[int, int] = {}
    for t in stems.tracks:
        counts[t.info.sample_rate] = counts.get(t.info.sample_rate, 0) + 1
    return max(counts, key=lambda r: (counts[r], r))
