"""The Debian VST3 each built-in effect maps to in a DAW export, with its state set to the effect's values.

A REAPER project (`plugin_bridge.export.reaper`) writes the built-in effects of a chain as these
zam-plugins with real states; the states are read from the plugins loaded in a child process
(`plugin_bridge.backends.host_process`). This module imports little, so that child starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..backends.host_process import call_in_host_process, in_host_process
from ..effects import Effect, q_to_octaves
from ..errors import FormatError
from .plugin_state import PluginState
from .vstpreset import plugin_state_from_pedalboard

#: Where Debian installs VST3 bundles.
VST3_DIR = "/usr/lib/vst3"


def _clamp(v: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, float(v)))


#: built-in effect type -> (plugin file, mono?)
MAPPED_PLUGINS = {
    "compressor": ("ZamCompX2.vst3", False),
    "low_shelf": ("ZamEQ2.vst3", True),
    "high_shelf": ("ZamEQ2.vst3", True),
    "peak": ("ZamEQ2.vst3", True),
    "gain": ("ZamEQ2.vst3", True),
    "limiter": ("ZaMaximX2.vst3", False),
    "delay": ("ZamDelay.vst3", True),
}


def _mapped_values(effect: Effect) -> dict[str, float]:
    p = effect.params
    t = effect.type
    if t == "compressor":
        return {
            "threshold_db": _clamp(p["threshold_db"], -80, 0),
            "ratio": _clamp(p["ratio"], 1, 20),
            "attack_ms": _clamp(p["attack_ms"], 0.1, 100),
            "release_ms": _clamp(p["release_ms"], 1, 500),
            "makeup_db": _clamp(p["makeup_db"], 0, 30),
            "knee_db": 0.0,
        }
    if t in ("low_shelf", "high_shelf", "peak", "gain"):
        flat = {"boost_cut_1_db": 0.0, "boost_cut_2_db": 0.0, "boost_cut_l_db": 0.0, "boost_cut_h_db": 0.0}
        if t == "gain":
            return flat | {"master_gain_db": _clamp(p["gain_db"], -12, 12)}
        f = _clamp(p["cutoff_hz"], 20, 14000)
        g = _clamp(p["gain_db"], -50, 20)
        if t == "low_shelf":
            return flat | {"boost_cut_l_db": g, "frequency_l_hz": f}
        if t == "high_shelf":
            return flat | {"boost_cut_h_db": g, "frequency_h_hz": f}
        return flat | {
            "boost_cut_1_db": g,
            "frequency_1_hz": f,
            "bandwidth_1": _clamp(q_to_octaves(p["q"]), 0.1, 6),
        }
    if t == "limiter":
        return {
            "output_ceiling_db": _clamp(p["ceiling_db"], -30, 0),
            "release_ms": _clamp(p["release_ms"], 1, 100),
            "threshold_db": 0.0,
        }
    if t == "delay":
        return {
            "time_ms": _clamp(p["delay_ms"], 1, 8000),
            "feedback": _clamp(p["feedback"], 0, 1),
            "dry_wet": _clamp(p["mix"], 0, 1),
            "sync_bpm": 0.0,
            "lpf_hz": 20000.0,
        }
    raise FormatError(f"effect {effect.id!r}: {t} has no mapped plugin")


def mapped_plugin_path(effect: Effect, plugin_dir: str = VST3_DIR) -> Path:
    """The installed VST3 bundle a built-in effect maps to; a one-line `FormatError` when there is
    none or it is not installed."""
    if effect.type not in MAPPED_PLUGINS:
        raise FormatError(f"effect {effect.id!r}: {effect.type} has no mapped REAPER plugin")
    path = Path(plugin_dir) / MAPPED_PLUGINS[effect.type][0]
    if not path.exists():
        raise FormatError(
            f"effect {effect.id!r}: {path} is missing (apt-get install zam-plugins to export built-ins to REAPER)"
        )
    return path


def builtin_plugin_state(effect: Effect, slot: str, plugin_dir: str = VST3_DIR) -> PluginState:
    """The mapped Debian VST3 of a built-in effect, with its state set through pedalboard (load it
    in a child process: `builtin_plugin_states`)."""
    return _read_states([(effect, slot)], plugin_dir)[0]


def _read_states(items: Sequence[tuple[Effect, str]], plugin_dir: str) -> list[PluginState]:
    """`builtin_plugin_state` of each item, loading each plugin file once (a VST3 load and its first
    parameter write cost ~35 ms each). Before the next slot's values are written, every parameter an
    earlier slot wrote is put back to its value as loaded, so each state holds the values of a freshly
    loaded plugin with that slot's values written; a value written back may differ from the plugin's
    own default by one float32 step of its normalised range (e.g. 1.2e-6 dB for a 0 dB gain)."""
    import pedalboard  # optional: exports without plugins need no plugin host

    loaded: dict[Path, tuple[object, dict[str, float]]] = {}  # file -> (plugin, raw values as loaded)
    states = []
    for effect, slot in items:
        path = mapped_plugin_path(effect, plugin_dir)
        values = _mapped_values(effect)
        if path not in loaded:
            loaded[path] = (pedalboard.load_plugin(str(path)), {})
        plugin, as_loaded = loaded[path]
        for name, raw in as_loaded.items():
            if name not in values:
                plugin.parameters[name].raw_value = raw
        for name, value in values.items():
            as_loaded.setdefault(name, plugin.parameters[name].raw_value)
            setattr(plugin, name, value)
        channels = (1,) if MAPPED_PLUGINS[effect.type][1] else (2,)
        states.append(plugin_state_from_pedalboard(plugin, path, slot, channels))  # resets DPF's FPU flags
    return states


def builtin_plugin_states(
    items: Sequence[tuple[Effect, str]], plugin_dir: str = VST3_DIR
) -> list[PluginState]:
    """`builtin_plugin_state` of each ``(effect, slot)``, with the plugins loaded in one child process
    (`plugin_bridge.backends.host_process`): a plugin that crashes cannot end this process, and what
    the plugins print on unloading (DPF's "asked to delete component") stays out of the user's stderr."""
    if not items:
        return []
    if in_host_process():
        return _read_states(items, plugin_dir)
    for e, _ in items:  # a missing plugin is a one-line error before any child starts
        mapped_plugin_path(e, plugin_dir)
    return call_in_host_process(
        f"{__name__}:builtin_plugin_states",
        list(items),
        plugin_dir,
        what="reading the mapped plugins' states for the REAPER export",
    )
