"""VST2 .fxp programs and .fxb banks (big-endian), as every VST2 host reads them.

.fxp layout::

    'CcnK'  int32 byte size of the rest  'FxCk' | 'FPCh'  int32 version (1)  int32 plugin 4cc id
    int32 plugin version  int32 numParams  char[28] program name (NUL padded)
    'FxCk': numParams float32 normalized parameter values
    'FPCh': int32 chunk size, then the plugin's opaque chunk

.fxb (bank): 'CcnK', size, 'FxBk' | 'FBCh', version, id, plugin version, numPrograms, 128 reserved
bytes (version 2: int32 current program + 124), then numPrograms FxCk programs, or int32 size +
chunk. DawDreamer's ``save_state`` writes an .fxb (with a zero byte size, as JUCE does);
`program_from_bank` turns it into the .fxp that DawDreamer's ``load_preset`` loads back.
Plugins that keep state in a chunk (Dragonfly reverbs) need FPCh; plain parameter plugins
(DPF's 3BandEQ, MVerb) use FxCk.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError
from ..files import write_atomic
from ..plugins.fpu import reset_fpu_environment
from .plugin_state import PluginState

NAME_SIZE = 28


def fourcc_to_int(code: str | bytes) -> int:
    """A four-character plugin id (``"dfr2"``) as the signed int32 VST2 uses."""
    raw = code.encode("latin-1") if isinstance(code, str) else bytes(code)
    if len(raw) != 4:
        raise FormatError(f"VST2 unique id must be 4 characters, got {code!r}")
    return struct.unpack(">i", raw)[0]


def int_to_fourcc(value: int) -> str:
    """The four characters of a VST2 unique id."""
    return struct.pack(">i", value if value < 2**31 else value - 2**32).decode("latin-1")


@dataclass(frozen=True)
class FxProgram:
    """One VST2 program: ``FxCk`` with ``params`` (normalized floats) or ``FPCh`` with ``chunk``."""

    fx_id: int
    fx_version: int = 1
    name: str = ""
    params: tuple[float, ...] = ()
    chunk: bytes | None = None
    num_params: int | None = None

    @property
    def kind(self) -> str:
        """``"FPCh"`` (opaque chunk) or ``"FxCk"`` (parameter list)."""
        return "FPCh" if self.chunk is not None else "FxCk"


def _name_bytes(name: str) -> bytes:
    raw = name.encode("ascii", "replace")[: NAME_SIZE - 1]
    return raw + b"\x00" * (NAME_SIZE - len(raw))


def build_fxp(program: FxProgram) -> bytes:
    """Serialize an `FxProgram` as .fxp bytes."""
    if program.chunk is not None:
        n = program.num_params if program.num_params is not None else len(program.params)
        body = struct.pack(">i", len(program.chunk)) + program.chunk
    else:
        for i, v in enumerate(program.params):
            if not 0.0 <= float(v) <= 1.0:
                raise FormatError(f"fxp parameter {i} = {v}: VST2 values are normalized to [0, 1]")
        n = len(program.params)
        body = struct.pack(f">{n}f", *program.params)
    head = program.kind.encode("ascii") + struct.pack(">iiii", 1, program.fx_id, program.fx_version, n)
    rest = head + _name_bytes(program.name) + body
    return b"CcnK" + struct.pack(">i", len(rest)) + rest


def parse_fxp(data: bytes, where: str = "fxp") -> FxProgram:
    """Parse .fxp bytes (FxCk or FPCh); a malformed file is a `FormatError`."""
    if len(data) < 56 or data[:4] != b"CcnK":
        raise FormatError(f"{where}: not an .fxp (no 'CcnK' header)")
    kind = data[8:12]
    _version, fx_id, fx_version, n = struct.unpack_from(">iiii", data, 12)
    name = data[28:56].split(b"\x00", 1)[0].decode("ascii", "replace")
    if kind == b"FxCk":
        if n < 0 or 56 + 4 * n > len(data):
            raise FormatError(f"{where}: {n} parameters run past the end of the file")
        return FxProgram(fx_id, fx_version, name, tuple(struct.unpack_from(f">{n}f", data, 56)))
    if kind == b"FPCh":
        (size,) = struct.unpack_from(">i", data, 56)
        if size < 0 or 60 + size > len(data):
            raise FormatError(f"{where}: chunk of {size} bytes runs past the end of the file")
        return FxProgram(fx_id, fx_version, name, chunk=bytes(data[60 : 60 + size]), num_params=n)
    raise FormatError(f"{where}: unknown program type {kind!r} (expected FxCk or FPCh)")


def program_from_bank(data: bytes, program_name: str = "", where: str = "fxb") -> FxProgram:
    """The current program of an .fxb bank: an FBCh bank's chunk, or an FxBk bank's first program."""
    if len(data) < 160 or data[:4] != b"CcnK":
        raise FormatError(f"{where}: not an .fxb (no 'CcnK' header)")
    kind = data[8:12]
    version, fx_id, fx_version, num_programs = struct.unpack_from(">iiii", data, 12)
    if kind == b"FBCh":
        (size,) = struct.unpack_from(">i", data, 156)
        if size < 0 or 160 + size > len(data):
            raise FormatError(f"{where}: bank chunk of {size} bytes runs past the end")
        return FxProgram(fx_id, fx_version, program_name, chunk=bytes(data[160 : 160 + size]), num_params=0)
    if kind == b"FxBk":
        if num_programs < 1:
            raise FormatError(f"{where}: bank holds no programs")
        prog = parse_fxp(data[156:], where)
        return FxProgram(prog.fx_id, prog.fx_version, program_name or prog.name, prog.params)
    raise FormatError(f"{where}: unknown bank type {kind!r} (expected FxBk or FBCh)")


def read_fxp(path: str | os.PathLike) -> FxProgram:
    """Read and parse an .fxp file."""
    p = Path(path)
    try:
        return parse_fxp(p.read_bytes(), str(p))
    except OSError as e:
        raise FormatError(f"{p}: cannot read ({e.strerror or e})") from None


def write_fxp(path: str | os.PathLike, program: FxProgram | bytes) -> Path:
    """Write an .fxp atomically (bytes are validated by parsing first); returns the path."""
    raw = build_fxp(program) if isinstance(program, FxProgram) else bytes(program)
    parse_fxp(raw, str(path))
    return write_atomic(path, raw)


def from_dawdreamer(processor, name: str = "plugin-bridge", params: Sequence[float] | None = None) -> bytes:
    """The .fxp bytes of a DawDreamer VST2 plugin processor's current state.

    The state comes from ``save_state`` (an .fxb): a chunk plugin gives an FPCh program, a plain
    one an FxCk program whose values are read from ``get_parameter`` (or ``params`` when given).
    Render a short buffer after ``set_parameter`` before calling this: plugins update their chunk
    in the audio callback.
    """
    fd, tmp = tempfile.mkstemp(suffix=".fxb")
    os.close(fd)
    try:
        processor.save_state(tmp)
        bank = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    prog = program_from_bank(bank, name)
    if prog.chunk is None:
        n = len(prog.params)
        values = params if params is not None else [processor.get_parameter(i) for i in range(n)]
        prog = FxProgram(prog.fx_id, prog.fx_version, name, tuple(float(v) for v in values))
    return build_fxp(prog)


def plugin_state_from_dawdreamer(processor, path: str | os.PathLike, slot: str, name: str = ""):
    """A `PluginState` (recipe entry) for a DawDreamer VST2 processor loaded from ``path``."""

    try:
        data = from_dawdreamer(processor)
    finally:
        reset_fpu_environment()  # DPF plugins leave flush-to-zero set on the calling thread
    prog = parse_fxp(data)
    params = {}
    for d in processor.get_parameters_description():
        params[str(d["name"])] = float(processor.get_parameter(int(d["index"])))
    return PluginState(
        slot=slot,
        format="vst2",
        path=str(path),
        state=data,
        name=name or Path(path).name.split(".")[0].removesuffix("-vst"),
        unique_id=prog.fx_id,
        parameters=params,
    )
