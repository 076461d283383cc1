"""Real third-party plugins: discovery, sandboxed probing, parameter maps and slot planning.

- `discovery`: find VST3/VST2/LV2 (AU on macOS) plugins in the standard places; the JSON cache.
- `probe`: load a plugin in a subprocess with a timeout (crashes and hangs are reported, remembered
  as bad, and never take the caller down); parameters, display texts, channels, latency.
- `maps`: `PluginMap` binds a canonical effect to a plugin's parameters (presets/maps/*.yaml).
- `planning`: which slots a backend hosts on a plugin (the built-in effect is the fallback) and
  the values the map sets.
- `vst3_state`, `fpu`: VST3 state byte layouts; the FPU flags plugins leave behind.

Nothing here renders: the processors that host plugins are in `plugin_bridge.backends.hosted`.
Only `discovery` and `maps` are imported here; `probe` and `planning` load lazily (they pull in numpy).
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
