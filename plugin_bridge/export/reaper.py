"""REAPER exports: an .RfxChain per track and a complete .RPP project.

A REAPER ``<VST ...>`` block stores a plugin as base64 (RFC 4648) lines of at most 128 characters,
in three blobs (each line is complete base64: 128 characters = 96 bytes; a blob's last line may
be shorter; a reader decodes line by line and splits the bytes by the sizes in the header)::

    blob 0  header, little-endian: uint32 plugin number (VST2: the 4cc id; VST3: a number REAPER
            also finds by class ID, here a stable CRC-32 of it), uint32 magic 0xFEED5EEE (opaque
            state) or 0xFEED5EEF (VST2 parameter list), uint32 input pins + uint64 channel mask each,
            uint32 output pins + uint64 mask each, uint32 size of blob 1, uint32 1 (0 for a
            parameter list), uint32 0x00100000
    blob 1  the state. VST3: uint32 size + uint32 1 + component ('Comp'), uint32 size + uint32 0 +
            controller ('Cont'). VST2 chunk plugins: the raw chunk (what an FPCh holds). VST2
            parameter plugins: 0xDEADBEEF 0xDEADF00D then one float32 per parameter.
    blob 2  footer: program name NUL, preset name NUL, 0x10 0 0 0

Chain slots a recipe rendered on a real plugin (its stored `PluginState`: VST3 or VST2) are written
in place with that plugin and its full state; a mono-only plugin gets one instance per channel,
pinned like the mapped ZamEQ2 below.

Built-in effects have no DAW plugin of their own. They are mapped onto Debian's zam-plugins VST3s
(whose states pedalboard writes exactly), because REAPER's stock ReaEQ/ReaComp states are
undocumented binary blobs we cannot produce reliably:

| built-in | plugin | notes |
|---|---|---|
| ``compressor`` | ZamCompX2 | knee 0; attack clamped to 0.1-100 ms, release to 1-500 ms |
| ``low_shelf``/``high_shelf``/``peak``, ``gain`` | ZamEQ2 (mono: one instance per channel, pinned by REAPER's pin masks) | shelves have a fixed slope (Q ignored); peak Q -> bandwidth in octaves; frequencies clamped to 20-14000 Hz; gain to +-12 dB (master gain) |
| ``limiter`` | ZaMaximX2 | ceiling, release (clamped to 1-100 ms); a different look-ahead design |
| ``delay`` | ZamDelay (mono, one per channel) | time, feedback, dry/wet |
| ``reverb``, ``width``, ``pan``, ``highpass`` | not exported | listed in the export notes |

Tracks: one per stem with a media item pointing at the stem file, volume (linear) and pan, polarity,
receives (``AUXRECV``) on the buses for sends (pre-fader = mode 3, post-fader = mode 0) and for
outputs routed to a bus (the master send then off). REAPER's default pan law differs from
plugin-bridge's; the mix will not null against our render.
"""

from __future__ import annotations

import base64
import os
import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audio_io import inspect_audio
from ..effects import Effect
from ..errors import FormatError
from ..files import write_atomic
from .fxp import parse_fxp
from .mapped_plugins import MAPPED_PLUGINS, VST3_DIR, builtin_plugin_states
from .names import unique_file_names
from .recipe import PluginState, Recipe, session_of
from .vstpreset import parse_vstpreset

MAGIC_OPAQUE = 0xFEED5EEE
MAGIC_PARAMS = 0xFEED5EEF
PARAM_DUMP_MAGIC = (0xDEADBEEF, 0xDEADF00D)
LINE = 128
#: REAPER media source types by file suffix.
SOURCE_KINDS = {
    ".wav": "WAVE",
    ".flac": "FLAC",
    ".mp3": "MP3",
    ".ogg": "VORBIS",
    ".aif": "WAVE",
    ".aiff": "WAVE",
}


def _q(text: str) -> str:
    """A REAPER string token: double quotes, or single quotes / backticks if it holds quotes."""
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return "`" + text.replace("`", "'") + "`"


def _guid(seed: str) -> str:
    """A stable GUID from ``seed`` (so exports are reproducible and golden files stable)."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "plugin-bridge:" + seed)).upper() + "}"


def _b64_lines(blob: bytes) -> list[str]:
    """One blob as base64 lines of at most 128 characters; every line is complete base64 on its own
    (128 characters = 96 bytes), so a reader decodes line by line and joins the bytes."""
    text = base64.b64encode(blob).decode("ascii")
    return [text[i : i + LINE] for i in range(0, len(text), LINE)]


def _decode_lines(lines: Sequence[str]) -> bytes:
    """Decode base64 lines one by one (each is complete base64) and join the bytes."""
    try:
        return b"".join(base64.b64decode(s.strip(), validate=True) for s in lines if s.strip())
    except ValueError as e:
        raise FormatError(f"REAPER VST block: invalid base64 ({e})") from None


def vst3_number(class_id: str) -> int:
    """The plugin number written for a VST3 (REAPER also looks a VST3 up by its class ID)."""
    return zlib.crc32(class_id.upper().encode("ascii")) & 0x7FFFFFFF


def _header(
    number: int, magic: int, in_masks: Sequence[int], out_masks: Sequence[int], size: int, opaque: bool
):
    b = struct.pack("<II", number & 0xFFFFFFFF, magic)
    b += struct.pack("<I", len(in_masks)) + b"".join(struct.pack("<Q", m) for m in in_masks)
    b += struct.pack("<I", len(out_masks)) + b"".join(struct.pack("<Q", m) for m in out_masks)
    return b + struct.pack("<III", size, 1 if opaque else 0, 0x00100000)


def _footer(program: str = "") -> bytes:
    return program.encode("utf-8") + b"\x00" + b"\x00" + struct.pack("<I", 0x10)


def _masks(pins: int | Sequence[int]) -> list[int]:
    if isinstance(pins, int):
        return [1 << i for i in range(pins)]
    return [1 << c for c in pins]


def vst_block(
    plugin: PluginState,
    in_channels: int | Sequence[int] = 2,
    out_channels: int | Sequence[int] = 2,
    program: str = "",
) -> list[str]:
    """The lines of REAPER's ``<VST ...>`` block for ``plugin`` (VST3 .vstpreset or VST2 .fxp state).

    ``in_channels``/``out_channels`` are a pin count (pin i on track channel i) or the track
    channels of each pin (``[1]``: one pin on the right channel).
    """
    ins, outs = _masks(in_channels), _masks(out_channels)
    name = plugin.display_name
    vendor = f" ({plugin.vendor})" if plugin.vendor else ""
    file = Path(plugin.path).name
    if plugin.format == "vst3":
        preset = parse_vstpreset(plugin.state, plugin.slot)
        comp, cont = preset.component, preset.controller
        state = struct.pack("<II", len(comp), 1) + comp + struct.pack("<II", len(cont), 0) + cont
        head = _header(vst3_number(preset.class_id), MAGIC_OPAQUE, ins, outs, len(state), True)
        ident = f"{vst3_number(preset.class_id)}{{{preset.class_id}}}"
        title = f"VST3: {name}{vendor}"
    else:
        prog = parse_fxp(plugin.state, plugin.slot)
        if prog.chunk is not None:
            state, magic, opaque = prog.chunk, MAGIC_OPAQUE, True
        else:
            state = struct.pack("<II", *PARAM_DUMP_MAGIC) + struct.pack(f"<{len(prog.params)}f", *prog.params)
            magic, opaque = MAGIC_PARAMS, False
        head = _header(prog.fx_id, magic, ins, outs, len(state), opaque)
        tag = (b"VST" + struct.pack(">i", prog.fx_id) + name.lower().encode("ascii", "replace"))[:16]
        padded = tag.ljust(16, b"\x00").hex().upper()
        ident = f"{prog.fx_id & 0xFFFFFFFF}<{padded}>"
        title = f"VST: {name}{vendor}"
        program = program or prog.name
    lines = [f'<VST {_q(title)} {_q(file)} 0 "" {ident} ""']
    for blob in (head, state, _footer(program)):
        lines += ["  " + s for s in _b64_lines(blob)]
    lines.append(">")
    return lines


@dataclass(frozen=True)
class DecodedVst:
    """What `decode_vst_block` reads back from a ``<VST>`` block's base64 body."""

    number: int
    magic: int
    in_masks: tuple[int, ...]
    out_masks: tuple[int, ...]
    component: bytes = b""
    controller: bytes = b""
    chunk: bytes | None = None
    params: tuple[float, ...] = ()
    program: str = ""


def decode_vst_block(body: Sequence[str], vst3: bool) -> DecodedVst:
    """Parse the base64 lines of a ``<VST>`` block (header, state, footer) written by REAPER or us."""
    head = _decode_lines(body)
    if len(head) < 16:
        raise FormatError("REAPER VST block: too short for a header")
    number, magic = struct.unpack_from("<II", head, 0)
    if magic not in (MAGIC_OPAQUE, MAGIC_PARAMS):
        raise FormatError(f"REAPER VST block: bad magic {magic:#x}")
    o = 8
    (n_in,) = struct.unpack_from("<I", head, o)
    ins = struct.unpack_from(f"<{n_in}Q", head, o + 4)
    o += 4 + 8 * n_in
    (n_out,) = struct.unpack_from("<I", head, o)
    outs = struct.unpack_from(f"<{n_out}Q", head, o + 4)
    o += 4 + 8 * n_out
    (size,) = struct.unpack_from("<I", head, o)
    start = o + 12
    if start + size > len(head):
        raise FormatError(
            f"REAPER VST block: header says {size} state bytes, only {len(head) - start} follow"
        )
    state = head[start : start + size]
    program = head[start + size :].split(b"\x00", 1)[0].decode("utf-8", "replace")
    if vst3:
        parts: dict[int, bytes] = {}
        p = 0
        while p + 8 <= len(state):
            n, flag = struct.unpack_from("<II", state, p)
            parts.setdefault(flag, state[p + 8 : p + 8 + n])
            p += 8 + n
        return DecodedVst(number, magic, ins, outs, parts.get(1, b""), parts.get(0, b""), program=program)
    if magic == MAGIC_PARAMS:
        if struct.unpack_from("<II", state, 0) != PARAM_DUMP_MAGIC:
            raise FormatError("REAPER VST block: parameter list without its 0xDEADBEEF 0xDEADF00D marker")
        n = (len(state) - 8) // 4
        return DecodedVst(
            number, magic, ins, outs, params=struct.unpack_from(f"<{n}f", state, 8), program=program
        )
    return DecodedVst(number, magic, ins, outs, chunk=state, program=program)


# --------------------------------------------------------------------------------------------
# Built-in effects onto Debian plugins
# --------------------------------------------------------------------------------------------


@dataclass
class FxChainExport:
    """One track's FX chain for REAPER: ``<VST>`` blocks plus notes on what could not be mapped."""

    blocks: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plugins: list[PluginState] = field(default_factory=list)


def _stored_blocks(plugin: PluginState, program: str) -> list[list[str]]:
    """``<VST>`` blocks of a stored plugin: one, or one per channel for a mono-only plugin."""
    if plugin.channels == 1:
        return [vst_block(plugin, [0], [0], program), vst_block(plugin, [1], [1], program)]
    return [vst_block(plugin, program=program)]


def _mapped_effects(effects: Sequence[Effect], plugins: Sequence[PluginState], prefix: str) -> list[Effect]:
    """The effects of a chain that get their mapped Debian plugin (no stored VST3/VST2 in their slot)."""
    stored = {p.slot: p for p in plugins}
    return [
        e
        for e in effects
        if getattr(stored.get(prefix + e.id), "format", None) not in ("vst3", "vst2")
        and not e.is_neutral()
        and e.type in MAPPED_PLUGINS
    ]


def chain_fx(
    effects: Iterable[Effect],
    track: str,
    plugins: Sequence[PluginState] = (),
    plugin_dir: str = VST3_DIR,
    prefix: str = "",
    states: Mapping[str, PluginState] | None = None,
) -> FxChainExport:
    """Map a track's effects to ``<VST>`` blocks, in chain order.

    A slot with a stored plugin (``plugins`` whose slot is ``prefix + effect id``: a hosted VST3 or
    VST2 with its recipe state) gets that plugin and state; other effects get their mapped Debian
    plugin (`MAPPED_PLUGINS`). LV2 plugins are not written (their REAPER block is not implemented
    here): the slot falls back to the mapped plugin, with a note. Plugins bound to no slot of the
    chain are appended after it. ``states`` (``{"track/effect id": state}``) are the mapped plugins'
    states when the caller read them already (one child process for a whole project).
    """
    out = FxChainExport()
    stored = {p.slot: p for p in plugins}
    bound: set[str] = set()
    effects = list(effects)
    if states is None:
        builtins = _mapped_effects(effects, plugins, prefix)
        slots = [f"{track}/{e.id}" for e in builtins]
        states = dict(
            zip(
                slots, builtin_plugin_states(list(zip(builtins, slots, strict=True)), plugin_dir), strict=True
            )
        )
    for e in effects:
        p = stored.get(prefix + e.id)
        if p is not None:
            bound.add(p.slot)
            if p.format in ("vst3", "vst2"):
                out.plugins.append(p)
                out.blocks += _stored_blocks(p, e.id)
                continue
            out.notes.append(
                f"{track}: {e.id} runs the {p.format.upper()} plugin {p.display_name}, which is not "
                "exported to REAPER; its built-in mapping is written instead"
            )
        if e.is_neutral():  # leaves audio unchanged: nothing to export
            continue
        if e.type not in MAPPED_PLUGINS:
            out.notes.append(f"{track}: {e.id} ({e.type}) has no REAPER plugin here and is not exported")
            continue
        state = states[f"{track}/{e.id}"]
        out.plugins.append(state)
        if MAPPED_PLUGINS[e.type][1]:  # mono plugin: one instance per channel
            out.blocks.append(vst_block(state, [0], [0], program=e.id))
            out.blocks.append(vst_block(state, [1], [1], program=e.id))
        else:
            out.blocks.append(vst_block(state, program=e.id))
    for p in plugins:
        if p.slot not in bound and p.format in ("vst3", "vst2"):
            out.plugins.append(p)
            out.blocks += _stored_blocks(p, "")
    return out


def _fx_entries(fx: FxChainExport, seed: str, indent: str) -> list[str]:
    lines = []
    for i, block in enumerate(fx.blocks):
        lines.append(f"{indent}BYPASS 0 0 0")
        lines += [indent + s for s in block]
        lines.append(f"{indent}FXID {_guid(f'{seed}/fx{i}')}")
        lines.append(f"{indent}WAK 0 0")
    return lines


def rfxchain_text(fx: FxChainExport, seed: str = "chain") -> str:
    """The text of an .RfxChain file (what REAPER's 'Save FX chain' writes)."""
    return "\n".join(_fx_entries(fx, seed, "")) + "\n"


def _fxchain(fx: FxChainExport, seed: str, indent: str, tag: str = "FXCHAIN") -> list[str]:
    lines = [f"{indent}<{tag}", f"{indent}  SHOW 0", f"{indent}  LASTSEL 0", f"{indent}  DOCKED 0"]
    lines += _fx_entries(fx, seed, indent + "  ")
    lines.append(f"{indent}>")
    return lines


def _num(x: float) -> str:
    return repr(float(x))


@dataclass
class ReaperExport:
    """What `export_reaper` wrote: the project, the FX chains, and notes for the user."""

    project: Path
    chains: list[Path]
    notes: list[str]
    plugins: list[PluginState]


def _nodes_from_recipe(recipe: Recipe) -> tuple[list[dict], dict | None, int]:
    """Tracks/buses as dicts (name, file, effects, gain_db, pan, invert, mute, output, sends)."""

    if recipe.kind == "chain":
        if not recipe.input:
            raise FormatError("a REAPER project needs the recipe's input audio file")
        info = inspect_audio(recipe.input)
        node = {
            "name": Path(recipe.input).stem,
            "file": recipe.input,
            "effects": list(recipe.effects),
            "gain_db": 0.0,
            "pan": 0.0,
            "invert": False,
            "mute": False,
            "solo": False,
            "output": "master",
            "sends": [],
        }
        return [node], None, info.sample_rate
    s = session_of(recipe)
    nodes = []
    for n in (*s.tracks, *s.buses):
        nodes.append(
            {
                "name": n.name,
                "file": str(n.file) if n.file else None,
                "effects": list(n.effects),
                "gain_db": n.gain_db,
                "pan": n.pan,
                "invert": n.invert,
                "mute": n.mute,
                "solo": n.solo,
                "output": n.output,
                "sends": [{"bus": x.bus, "level_db": x.level_db, "pre_fader": x.pre_fader} for x in n.sends],
            }
        )
    master = {
        "name": "master",
        "effects": list(s.master.effects),
        "gain_db": s.master.gain_db,
        "pan": s.master.pan,
    }
    return nodes, master, int(recipe.sample_rate or 44100)


def _slot_owner(slot: str, kind: str, nodes: Sequence[dict], master: dict | None) -> str:
    """The track or bus a plugin slot (``track/effect`` in a session) belongs to.

    Track names may contain ``/`` (``dr/ums/comp`` is effect ``comp`` of track ``dr/ums``): the
    slot is matched against every node's ``name/effect id`` first, then the longest name prefix.
    """
    if kind != "session":
        return nodes[0]["name"]
    every = [*nodes, master] if master is not None else list(nodes)
    for n in every:
        if any(slot == f"{n['name']}/{e.id}" for e in n["effects"]):
            return n["name"]
    prefixed = [n["name"] for n in every if slot.startswith(n["name"] + "/")]
    return max(prefixed, key=len) if prefixed else slot.split("/", 1)[0]


def project_text(
    recipe: Recipe, plugin_dir: str = VST3_DIR
) -> tuple[str, dict[str, FxChainExport], list[str]]:
    """The .RPP text of a recipe, the FX chain of every track (``"master"`` too) and the notes."""

    nodes, master, sample_rate = _nodes_from_recipe(recipe)
    extra: dict[str, list[PluginState]] = {}
    for p in recipe.plugins:
        extra.setdefault(_slot_owner(p.slot, recipe.kind, nodes, master), []).append(p)
    index = {n["name"]: i for i, n in enumerate(nodes)}
    wanted: list[tuple[Effect, str]] = []  # every mapped plugin of the project, read in one child
    if master is not None:
        wanted += [
            (e, f"master/{e.id}")
            for e in _mapped_effects(master["effects"], extra.get("master", ()), "master/")
        ]
    for n in nodes:
        prefix = f"{n['name']}/" if recipe.kind == "session" else ""
        wanted += [
            (e, f"{n['name']}/{e.id}")
            for e in _mapped_effects(n["effects"], extra.get(n["name"], ()), prefix)
        ]
    states = dict(zip((slot for _, slot in wanted), builtin_plugin_states(wanted, plugin_dir), strict=True))
    chains: dict[str, FxChainExport] = {}
    notes: list[str] = []
    lines = [
        '<REAPER_PROJECT 0.1 "6.0/plugin-bridge" 0',
        "  TEMPO 120 4 4",
        f"  SAMPLERATE {sample_rate} 0 0",
        "  MASTER_NCH 2 2",
    ]
    if master is not None:
        mfx = chain_fx(master["effects"], "master", extra.get("master", ()), plugin_dir, "master/", states)
        chains["master"] = mfx
        notes += mfx.notes
        lines.append(f"  MASTER_VOLUME {_num(10 ** (master['gain_db'] / 20))} {_num(master['pan'])} -1 -1 1")
        if mfx.blocks:
            lines += _fxchain(mfx, "master", "  ", "MASTERFXLIST")
    for n in nodes:
        name = n["name"]
        prefix = f"{name}/" if recipe.kind == "session" else ""
        fx = chain_fx(n["effects"], name, extra.get(name, ()), plugin_dir, prefix, states)
        chains[name] = fx
        notes += fx.notes
        to_master = n["output"] == "master"
        lines += [
            f"  <TRACK {_guid('track/' + name)}",
            f"    NAME {_q(name)}",
            f"    VOLPAN {_num(10 ** (n['gain_db'] / 20))} {_num(n['pan'])} -1 -1 1",
            f"    MUTESOLO {int(n['mute'])} {2 if n['solo'] else 0} 0",
            f"    IPHASE {int(n['invert'])}",
            "    NCHAN 2",
            f"    MAINSEND {int(to_master)} 0",
        ]
        # receives: outputs routed to this bus (mode 0, unity) and sends (pre-fader 3, post-fader 0)
        for src in nodes:
            if src["output"] == name:
                lines.append(f"    AUXRECV {index[src['name']]} 0 1 0 0 0 0 0 0 -1:U 0 -1 ''")
            for s in src["sends"]:
                if s["bus"] == name:
                    mode = 3 if s["pre_fader"] else 0
                    vol = _num(10 ** (s["level_db"] / 20))
                    lines.append(f"    AUXRECV {index[src['name']]} {mode} {vol} 0 0 0 0 0 0 -1:U 0 -1 ''")
        if fx.blocks:
            lines += _fxchain(fx, "track/" + name, "    ")
        if n["file"]:
            info = inspect_audio(n["file"])
            kind = SOURCE_KINDS.get(Path(n["file"]).suffix.lower(), "WAVE")
            lines += [
                "    <ITEM",
                "      POSITION 0",
                f"      LENGTH {_num(info.frames / info.sample_rate)}",
                f"      NAME {_q(Path(n['file']).name)}",
                f"      IGUID {_guid('item/' + name)}",
                f"      <SOURCE {kind}",
                f"        FILE {_q(str(Path(n['file']).resolve()))}",
                "      >",
                "    >",
            ]
        lines.append("  >")
    lines.append(">")
    return "\n".join(lines) + "\n", chains, notes


def export_reaper(
    recipe: Recipe, out_dir: str | os.PathLike, stem: str = "mix", plugin_dir: str = VST3_DIR
) -> ReaperExport:
    """Write ``<stem>.RPP`` and ``<track>.RfxChain`` for every track with FX into ``out_dir``.

    Effects without a mapped plugin are listed in ``notes`` (also written to ``<stem>.reaper-notes.txt``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text, chains, notes = project_text(recipe, plugin_dir)
    project = write_atomic(out / f"{stem}.RPP", text)
    written = []
    plugins: list[PluginState] = []
    with_fx = [(name, fx) for name, fx in chains.items() if fx.blocks]
    files = unique_file_names([name for name, _ in with_fx], "track")
    for fx in chains.values():
        plugins += fx.plugins
    for file, (name, fx) in zip(files, with_fx, strict=True):
        written.append(write_atomic(out / f"{file}.RfxChain", rfxchain_text(fx, "track/" + name)))
    if notes:
        write_atomic(out / f"{stem}.reaper-notes.txt", "\n".join(notes) + "\n")
    return ReaperExport(project, written, notes, plugins)


def stock_mapping_table() -> Mapping[str, str]:
    """``{built-in type: REAPER plugin}`` for docs."""
    return {
        t: f.removesuffix(".vst3") + (" (one per channel)" if mono else "")
        for t, (f, mono) in MAPPED_PLUGINS.items()
    }
