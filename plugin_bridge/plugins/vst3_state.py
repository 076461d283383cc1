"""The byte layouts of VST3 plugin states: Steinberg .vstpreset files and JUCE state blobs.

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

Pure functions of bytes (no files, no plugins): the hosting processors (`plugin_bridge.backends.hosted`)
and the exporters (`plugin_bridge.export.vstpreset`) both use them.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..errors import FormatError

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
