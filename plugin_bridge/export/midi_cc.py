"""Parameter values as MIDI CC automation in a .mid file (mido), and back into a recipe.

Each predicted parameter of the recipe's space gets one controller on one channel, in space order,
from a fixed mapping table, so a DAW's MIDI learn can bind any of its own plugins to it:

- **7-bit** (default): parameter ``i`` -> channel ``1 + i // 30``, CC ``CC7[i % 30]`` where
  ``CC7 = 20..31, 102..119`` (controllers the MIDI spec leaves undefined). Value
  ``round(n * 127)`` for the normalized position ``n`` in [0, 1]; read back as ``v / 127``
  (error at most 1/254 of the range).
- **14-bit**: parameter ``i`` -> channel ``1 + i // 16``, MSB CC ``CC14[i % 16]`` and LSB CC
  ``MSB + 32``, ``CC14 = 3, 9, 14, 15, 20..31``; value ``round(n * 16383)`` sent as MSB
  ``v >> 7`` then LSB ``v & 127`` (error at most 1/32766 of the range).

The position ``n`` is the space's own normalization (log for frequencies and times, linear for dB),
so a CC sweep follows the same curve the model uses. The file is type 1 with one track named
``plugin-bridge CC``: a text event per parameter (``cc <ch>:<cc> <name> <unit> <min>..<max>
<curve>``), one ``plugin-bridge midi-cc v1 bits=<7|14> space=<version> fingerprint=<hash>`` text
event, and the controller events at tick 0 (a DAW reads them as the automation's start value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..chain import list_chains, load_chain
from ..errors import FormatError
from ..files import write_atomic
from ..params import ParamSpace
from .recipe import Recipe, recipe_from_chain

CC7: tuple[int, ...] = (*range(20, 32), *range(102, 120))
CC14: tuple[int, ...] = (3, 9, 14, 15, *range(20, 32))
MAX_CHANNELS = 16
MAGIC = "plugin-bridge midi-cc v1"


@dataclass(frozen=True)
class CCAssignment:
    """Where one parameter lives: MIDI ``channel`` (1-16), ``cc`` (the MSB for 14-bit) and ``lsb``."""

    index: int
    name: str
    channel: int
    cc: int
    lsb: int | None = None


def cc_table(space: ParamSpace, bits: int = 7) -> list[CCAssignment]:
    """The mapping table for ``space`` at ``bits`` 7 or 14 (see the module docstring)."""
    if bits not in (7, 14):
        raise FormatError(f"MIDI CC resolution must be 7 or 14 bits, got {bits}")
    table = CC7 if bits == 7 else CC14
    if len(space) > MAX_CHANNELS * len(table):
        raise FormatError(
            f"space {space.version!r} has {len(space)} parameters; {bits}-bit CC holds at most "
            f"{MAX_CHANNELS * len(table)}"
        )
    out = []
    for i, spec in enumerate(space):
        cc = table[i % len(table)]
        out.append(CCAssignment(i, spec.name, 1 + i // len(table), cc, cc + 32 if bits == 14 else None))
    return out


def quantize(position: float, bits: int = 7) -> int:
    """Normalized position in [0, 1] (clamped) -> integer CC value (0-127 or 0-16383)."""
    top = 127 if bits == 7 else 16383
    return int(round(min(1.0, max(0.0, float(position))) * top))


def dequantize(value: int, bits: int = 7) -> float:
    """Integer CC value -> normalized position in [0, 1]."""
    return value / (127 if bits == 7 else 16383)


def vector_to_midi(space: ParamSpace, vector: Sequence[float] | np.ndarray, bits: int = 7):
    """A `mido.MidiFile` holding ``vector`` (normalized, in space order) as CC values."""
    import mido

    vec = space.check_vector(vector)
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("track_name", name="plugin-bridge CC", time=0))
    track.append(
        mido.MetaMessage(
            "text", text=f"{MAGIC} bits={bits} space={space.version} fingerprint={space.fingerprint}", time=0
        )
    )
    table = cc_table(space, bits)
    for a, spec in zip(table, space, strict=True):
        label = f"{a.cc}" if bits == 7 else f"{a.cc}+{a.lsb}"
        track.append(
            mido.MetaMessage(
                "text",
                text=f"cc {a.channel}:{label} {spec.name} {spec.unit or '-'} {spec.min:g}..{spec.max:g} {spec.curve}",
                time=0,
            )
        )
    for a, n in zip(table, vec, strict=True):
        v = quantize(n, bits)
        if bits == 7:
            track.append(mido.Message("control_change", channel=a.channel - 1, control=a.cc, value=v, time=0))
        else:
            track.append(
                mido.Message("control_change", channel=a.channel - 1, control=a.cc, value=v >> 7, time=0)
            )
            track.append(
                mido.Message("control_change", channel=a.channel - 1, control=a.lsb, value=v & 127, time=0)
            )
    track.append(mido.MetaMessage("end_of_track", time=480))
    return mid


def midi_bytes(mid) -> bytes:
    """The standard MIDI file bytes of a `mido.MidiFile`."""
    import io

    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def write_midi(
    path: str | os.PathLike, space: ParamSpace, vector: Sequence[float] | np.ndarray, bits: int = 7
) -> Path:
    """Write ``vector`` as a CC .mid file atomically; returns the path."""
    return write_atomic(path, midi_bytes(vector_to_midi(space, vector, bits)))


def read_midi_header(path: str | os.PathLike) -> dict:
    """``{"bits", "space", "fingerprint"}`` from a file written by `write_midi`."""
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError) as e:
        raise FormatError(f"{path}: not a readable MIDI file ({e})") from None
    for track in mid.tracks:
        for msg in track:
            if msg.is_meta and msg.type == "text" and msg.text.startswith(MAGIC):
                fields = dict(re.findall(r"(\w+)=(\S+)", msg.text))
                return {
                    "bits": int(fields.get("bits", 7)),
                    "space": fields.get("space", ""),
                    "fingerprint": fields.get("fingerprint", ""),
                    "file": mid,
                }
    raise FormatError(f"{path}: no '{MAGIC}' header; not written by plugin-bridge export")


def midi_to_vector(path: str | os.PathLike, space: ParamSpace, bits: int | None = None) -> np.ndarray:
    """Read CC values back as a normalized vector for ``space`` (the last value of each CC wins).

    The file's space and fingerprint must match ``space``; a parameter without its CC is an error.
    """
    head = read_midi_header(path)
    if head["space"] != space.version or head["fingerprint"] != space.fingerprint:
        raise FormatError(
            f"{path}: written for space {head['space']!r} fingerprint {head['fingerprint']}, "
            f"not {space.version!r} fingerprint {space.fingerprint}"
        )
    bits = bits or head["bits"]
    last: dict[tuple[int, int], int] = {}
    for track in head["file"].tracks:
        for msg in track:
            if msg.type == "control_change":
                last[(msg.channel + 1, msg.control)] = msg.value
    out = np.empty(len(space), dtype=np.float64)
    for a in cc_table(space, bits):
        if (a.channel, a.cc) not in last or (a.lsb is not None and (a.channel, a.lsb) not in last):
            raise FormatError(f"{path}: no CC {a.cc} on channel {a.channel} for {a.name}")
        v = last[(a.channel, a.cc)]
        if a.lsb is not None:
            v = (v << 7) | last[(a.channel, a.lsb)]
        out[a.index] = dequantize(v, bits)
    return out


def midi_to_recipe(path: str | os.PathLike, chain=None, model_id: str | None = None):
    """Import a CC .mid into a chain `Recipe`.

    ``chain`` is a `Chain`, a chain name/file or a `Recipe` (its chain, input, backend, tail and
    master step are kept; hosted plugins' states are captured again at the imported values);
    without it, the shipped chain whose space version the file names is used.
    """

    base = None
    if isinstance(chain, Recipe):
        base, chain = chain, chain.chain_object()
    if chain is None:
        head = read_midi_header(path)
        for name in list_chains():
            c = load_chain(name)
            if c.space.version == head["space"]:
                chain = c
                break
        else:
            raise FormatError(f"{path}: no shipped chain has space {head['space']!r}; give the chain")
    ch = chain if not isinstance(chain, (str, os.PathLike)) else load_chain(chain)
    vector = midi_to_vector(path, ch.space)
    if base is not None:
        return recipe_from_chain(
            ch,
            vector=vector,
            model_id=base.model_id,
            input_path=base.input,
            sample_rate=base.sample_rate,
            backend=base.backend,
            tail=base.tail,
            master=base.master,
        )  # hosted plugins' states are captured anew: they follow the imported values
    return recipe_from_chain(ch, vector=vector, model_id=model_id)


def mapping_table_markdown(space: ParamSpace, bits: int = 7) -> str:
    """The CC mapping table of ``space`` as a Markdown table (for docs and export notes)."""
    lines = ["| # | parameter | unit | range | curve | channel | CC |", "|---|---|---|---|---|---|---|"]
    for a, s in zip(cc_table(space, bits), space, strict=True):
        cc = f"{a.cc}" if bits == 7 else f"{a.cc} (MSB) + {a.lsb} (LSB)"
        lines.append(
            f"| {a.index} | `{s.name}` | {s.unit or '-'} | {s.min:g} .. {s.max:g} | {s.curve} | {a.channel} | {cc} |"
        )
    return "\n".join(lines) + "\n"
