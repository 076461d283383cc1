"""Steinberg .vstpreset files (VST3): read, write, and capture from live plugins.

The byte layouts (.vstpreset chunks, JUCE state blobs) are in `plugin_bridge.plugins.vst3_state`
and re-exported here; both hosts load a .vstpreset back: pedalboard with ``load_preset(path)``,
DawDreamer with ``load_vst3_preset(path)`` (no editor window, safe headless).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..files import write_atomic
from ..plugins.fpu import reset_fpu_environment
from ..plugins.vst3_state import (  # noqa: F401  (the codecs, re-exported with the files they write)
    HEADER_SIZE,
    JUCE_B64,
    Vst3Preset,
    build_vstpreset,
    build_vstpreset_chunks,
    check_class_id,
    decode_juce_state,
    encode_juce_state,
    juce_base64_decode,
    juce_base64_encode,
    parse_vstpreset,
)
from .plugin_state import PluginState


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
# From live plugins
# --------------------------------------------------------------------------------------------


def settle_pedalboard(plugin, sample_rate: float = 44100.0, channels: tuple[int, ...] = (2, 1)) -> None:
    """Process one short silent buffer so a pedalboard VST3's saved state catches up with
    parameter writes (otherwise ``preset_data`` still holds the previous values).

    ``channels``: the channel counts to try, in turn (stereo first; mono-only plugins such as ZamEQ2
    refuse two). A refused call drops the parameter writes pending since the plugin last ran, so
    pass ``(1,)`` for a mono plugin that already ran once."""
    last: Exception | None = None
    for n in channels:
        try:
            plugin.process(np.zeros((n, 64), dtype=np.float32), sample_rate, reset=False)
            return
        except (ValueError, RuntimeError) as e:
            last = e
    raise FormatError(f"could not run the plugin to settle its state: {last}")


def from_pedalboard(plugin, settle: bool = True, channels: tuple[int, ...] = (2, 1)) -> bytes:
    """The .vstpreset bytes of a loaded pedalboard ``VST3Plugin`` with its current parameters
    (``channels``: see `settle_pedalboard`)."""
    if settle:
        settle_pedalboard(plugin, channels=channels)
    data = bytes(plugin.preset_data)
    parse_vstpreset(data, "pedalboard preset_data")
    return data


def class_id_of(path: str | os.PathLike) -> str:
    """The processor class ID of the VST3 bundle at ``path`` (read through pedalboard)."""
    import pedalboard

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


def plugin_state_from_pedalboard(
    plugin, path: str | os.PathLike, slot: str, channels: tuple[int, ...] = (2, 1)
):
    """A `PluginState` (recipe entry) for a loaded pedalboard VST3 plugin at ``path`` (``channels``:
    see `settle_pedalboard`)."""

    try:
        data = from_pedalboard(plugin, channels=channels)
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
