"""Real third-party plugins: discovery, sandboxed probing, parameter maps and hosting.

- `discovery`: find VST3/VST2/LV2 (AU on macOS) plugins in the standard places; the JSON cache.
- `probe`: load a plugin in a subprocess with a timeout (crashes and hangs are reported, remembered
  as bad, and never take the caller down); parameters, display texts, channels, latency.
- `maps`: `PluginMap` binds a canonical effect to a plugin's parameters (presets/maps/*.yaml).
- `hosting`: render mapped slots on pedalboard (VST3) and DawDreamer (VST2/VST3/LV2), with the
  built-in effect as the fallback; save and restore plugin state with headless-safe calls.

Only `discovery` and `maps` are imported here; `probe` and `hosting` load lazily (they pull in numpy
and the plugin hosts).
"""

from __future__ import annotations

from .discovery import PluginError, PluginRef, cache_path, find_plugin, scan
from .maps import PluginMap, find_map, list_maps, load_map

__all__ = [
    "PluginError",
    "PluginMap",
    "PluginRef",
    "cache_path",
    "find_map",
    "find_plugin",
    "list_maps",
    "load_map",
    "scan",
]
