"""Steinberg .vstpreset files (VST3) and JUCE state blobs.

.vstpreset layout (little-endian)::

    'VST3'  int32 version (1)  char[32] processor class ID (ASCII hex)  int64 offset of the chunk list
    chunk payloads ...
    'List'  int32 count  then per chunk: char[4] id ('Comp' component state, 'Cont' controller
            state, 'Info' XML metadata), int64 offset (from the file start), int64 size

pedalboard's ``VST3Plugin.preset_data`` is exactly such a file; DawDreamer's ``save_state`` writes
JUCE's own state blob instead (``'VC2!'``, uint32 length, XML ``<VST3PluginState>`` with the
``IComponent``/``IEditController`` streams in JUCE's base64 variant), which `decode_juce_state`
turns into the same Comp/Cont chunks. Both hosts load a .vstpreset back: pedalboard with
``load_preset(path)``, DawDreamer with ``load_vst3_preset(path)`` (no editor window, safe headless).
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import write_atomic

HEADER_SIZE = 48
#: JUCE MemoryBlock::toBase64Encoding's alphabet (not RFC 4648's).
JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
_JUCE_INDEX = {c: i for i, c in enumerate(JUCE_B64)}


@dataclass(frozen=True)
class Vst3Preset:
    """A parsed .vstpreset: the processor ``class_id`` (32 hex digits) and its chunks in file order."""

    class_id: str
    chunks: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)

    def chunk(self, chunk_id: str) -> bytes:
        """The payload of chunk ``chunk_id`` (``"Comp"``, ``"Cont"``, ``"Info"``); b"" when absent."""
        for cid, data in self.chunks:
            if cid == chunk_id:
                return data
        return b""

    @property
    def component(self) -> bytes:
        """The component (processor) state: what a DAW's 'Comp' chunk holds."""
        return self.chunk("Comp")

    @property
    def controller(self) -> bytes:
        """The edit-controller state ('Cont'; often empty)."""
        return self.chunk("Cont")


def check_class_id(class_id: str) -> str:
    """Upper-case ``class_id`` if it is 32 hex digits; raise `FormatError` otherwise."""
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", class_id or ""):
        raise FormatError(f"VST3 class ID must be 32 hex digits, got {class_id!r}")
    return class_id.upper()


def build_vstpreset(class_id: str, component: bytes, controller: bytes = b"", info_xml: str = "") -> bytes:
    """The bytes of a .vstpreset with 'Comp', 'Cont' (always written, may be empty) and optional 'Info'."""
    chunks = [("Comp", bytes(component)), ("Cont", bytes(controller))]
    if info_xml:
        chunks.append(("Info", info_xml.encode("utf-8")))
    return build_vstpreset_chunks(Vst3Preset(check_class_id(class_id), tuple(chunks)))


def build_vstpreset_chunks(preset: Vst3Preset) -> bytes:
    """Serialize a `Vst3Preset` (any chunks, in order)."""
    cid = check_class_id(preset.class_id).encode("ascii")
    body = bytearray()
    entries = []
    for chunk_id, data in preset.chunks:
        if len(chunk_id) != 4:
            raise FormatError(f"vstpreset chunk id must be 4 characters, got {chunk_id!r}")
        entries.append((chunk_id, HEADER_SIZE + len(body), len(data)))
        body += data
    list_offset = HEADER_SIZE + len(body)
    out = bytearray(b"VST3" + struct.pack("<i", 1) + cid + struct.pack("<q", list_offset))
    out += body
    out += b"List" + struct.pack("<i", len(entries))
    for chunk_id, offset, size in entries:
        out += chunk_id.encode("ascii") + struct.pack("<qq", offset, size)
    return bytes(out)


def parse_vstpreset(data: bytes, where: str = "vstpreset") -> Vst3Preset:
    """Parse .vstpreset bytes; a malformed file is a `FormatError` saying what is wrong."""
    if len(data) < HEADER_SIZE or data[:4] != b"VST3":
        raise FormatError(f"{where}: not a .vstpreset (no 'VST3' header)")
    (version,) = struct.unpack_from("<i", data, 4)
    if version != 1:
        raise FormatError(f"{where}: unsupported .vstpreset version {version}")
    class_id = data[8:40].decode("ascii", "replace")
    (list_offset,) = struct.unpack_from("<q", data, 40)
    if not HEADER_SIZE <= list_offset <= len(data) - 8 or data[list_offset : list_offset + 4] != b"List":
        raise FormatError(f"{where}: chunk list offset {list_offset} does not point at a 'List'")
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    if count < 0 or list_offset + 8 + 20 * count > len(data):
        raise FormatError(f"{where}: chunk list of {count} entries runs past the end of the file")
    chunks = []
    for k in range(count):
        pos = list_offset + 8 + 20 * k
        cid = data[pos : pos + 4].decode("ascii", "replace")
        offset, size = struct.unpack_from("<qq", data, pos + 4)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise FormatError(f"{where}: chunk {cid!r} ({offset}+{size}) runs past the end of the file")
        chunks.append((cid, bytes(data[offset : offset + size])))
    return Vst3Preset(check_class_id(class_id), tuple(chunks))


def read_vstpreset(path: str | os.PathLike) -> Vst3Preset:
    """Read and parse a .vstpreset file."""
    p = Path(path)
    try:
        return parse_vstpreset(p.read_bytes(), str(p))
    except OSError as e:
        raise FormatError(f"{p}: cannot read ({e.strerror or e})") from None


def write_vstpreset(path: str | os.PathLike, data: bytes | Vst3Preset) -> Path:
    """Write a .vstpreset atomically (bytes are validated by parsing first); returns the path."""
    raw = build_vstpreset_chunks(data) if isinstance(data, Vst3Preset) else bytes(data)
    parse_vstpreset(raw, str(path))
    return write_atomic(path, raw)


# --------------------------------------------------------------------------------------------
# JUCE state blobs
# --------------------------------------------------------------------------------------------


def juce_base64_encode(data: bytes) -> str:
    """JUCE ``MemoryBlock::toBase64Encoding``: ``"<size>."`` then 6-bit groups, LSB first, JUCE alphabet."""
    n = int.from_bytes(data, "little")
    chars = ((len(data) * 8) + 5) // 6
    return f"{len(data)}." + "".join(JUCE_B64[(n >> (6 * i)) & 63] for i in range(chars))


def juce_base64_decode(text: str) -> bytes:
    """Inverse of `juce_base64_encode` (``MemoryBlock::fromBase64Encoding``)."""
    text = text.strip()
    size_text, dot, payload = text.partition(".")
    if not dot or not size_text.isdigit():
        raise FormatError("JUCE base64: expected '<size>.<data>'")
    size = int(size_text)
    n = 0
    for i, c in enumerate(payload):
        try:
            n |= _JUCE_INDEX[c] << (6 * i)
        except KeyError:
            raise FormatError(f"JUCE base64: invalid character {c!r}") from None
    if len(payload) * 6 < size * 8:
        raise FormatError(f"JUCE base64: {len(payload)} characters cannot hold {size} bytes")
    return (n & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def decode_juce_state(blob: bytes) -> tuple[bytes, bytes]:
    """``(component, controller)`` streams from a JUCE VST3 state blob (``'VC2!'`` + XML)."""
    if blob[:4] != b"VC2!":
        raise FormatError("JUCE state: no 'VC2!' header (not a JUCE VST3 plugin state)")
    (size,) = struct.unpack_from("<I", blob, 4)
    xml = blob[8 : 8 + size].split(b"\x00", 1)[0].decode("utf-8", "replace")

    def stream(tag: str) -> bytes:
        m = re.search(rf"<{tag}>(.*?)</{tag}>", xml, re.S)
        return juce_base64_decode(m.group(1)) if m else b""

    if "<VST3PluginState" not in xml:
        raise FormatError("JUCE state: no <VST3PluginState> element")
    return stream("IComponent"), stream("IEditController")


def encode_juce_state(component: bytes, controller: bytes = b"") -> bytes:
    """A JUCE VST3 state blob from Comp/Cont streams (what pedalboard's ``raw_state`` accepts)."""
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n\n<VST3PluginState>'
    xml += f"<IComponent>{juce_base64_encode(component)}</IComponent>"
    if controller:
        xml += f"<IEditController>{juce_base64_encode(controller)}</IEditController>"
    xml += "</VST3PluginState>\n"
    body = xml.encode("utf-8") + b"\x00"
    return b"VC2!" + struct.pack("<I", len(body)) + body


# --------------------------------------------------------------------------------------------
# From live plugins
# --------------------------------------------------------------------------------------------


def settle_pedalboard(plugin, sample_rate: float = 44100.0) -> None:
    """Process one short silent buffer so a pedalboard VST3's saved state catches up with
    parameter writes (otherwise ``preset_data`` still holds the previous values)."""
    last: Exception | None = None
    for channels in (2, 1):  # stereo plugins first; mono-only ones (ZamEQ2) refuse two channels
        try:
            plugin.process(np.zeros((channels, 64), dtype=np.float32), sample_rate, reset=False)
            return
        except (ValueError, RuntimeError) as e:
            last = e
    raise FormatError(f"could not run the plugin to settle its state: {last}")


def from_pedalboard(plugin, settle: bool = True) -> bytes:
    """The .vstpreset bytes of a loaded pedalboard ``VST3Plugin`` with its current parameters."""
    if settle:
        settle_pedalboard(plugin)
    data = bytes(plugin.preset_data)
    parse_vstpreset(data, "pedalboard preset_data")
    return data


def class_id_of(path: str | os.PathLike) -> str:
    """The processor class ID of the VST3 bundle at ``path`` (read through pedalboard)."""
    import pedalboard

    from ..backends.dawdreamer_backend import reset_fpu_environment

    try:
        plugin = pedalboard.load_plugin(str(path))
        return parse_vstpreset(bytes(plugin.preset_data), str(path)).class_id
    finally:
        reset_fpu_environment()


def from_dawdreamer(processor, class_id: str) -> bytes:
    """The .vstpreset bytes of a DawDreamer VST3 plugin processor.

    DawDreamer's ``save_state`` writes JUCE's state blob; it carries no class ID, so give the one
    of the plugin (`class_id_of`).
    """
    fd, tmp = tempfile.mkstemp(suffix=".bin")
    os.close(fd)
    try:
        processor.save_state(tmp)
        blob = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    component, controller = decode_juce_state(blob)
    return build_vstpreset(class_id, component, controller)


def plugin_state_from_pedalboard(plugin, path: str | os.PathLike, slot: str):
    """A `PluginState` (recipe entry) for a loaded pedalboard VST3 plugin at ``path``."""
    from ..backends.dawdreamer_backend import reset_fpu_environment
    from .recipe import PluginState

    try:
        data = from_pedalboard(plugin)
    finally:
        reset_fpu_environment()  # DPF plugins leave flush-to-zero set (breaks Faust compiles, hypothesis)
    params = {}
    for name, p in plugin.parameters.items():
        if getattr(p, "is_automatable", True):
            params[name] = float(p.raw_value)
    return PluginState(
        slot=slot,
        format="vst3",
        path=str(path),
        state=data,
        name=str(getattr(plugin, "name", "") or Path(path).stem),
        vendor=str(getattr(plugin, "manufacturer_name", "") or ""),
        class_id=parse_vstpreset(data).class_id,
        parameters=params,
    )
