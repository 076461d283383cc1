"""Export a mix in the formats DAWs load: recipe JSON, .vstpreset, .fxp, REAPER, DawDreamer script, MIDI CC.

Submodules (each format's writer is called through its module):

- `recipe`: the mix recipe (everything needed to re-render bit-identically; `plugin_bridge.pipeline.render_recipe` renders it).
- `vstpreset`: Steinberg .vstpreset files and JUCE state blobs (VST3).
- `fxp`: VST2 .fxp programs (FxCk parameter lists, FPCh opaque chunks) and .fxb banks.
- `reaper`: REAPER .RfxChain and .RPP writers.
- `dawdreamer_script`: a standalone DawDreamer render script.
- `midi_cc`: parameter values as MIDI CC (7- or 14-bit) and back.

Every file is written atomically with `write_atomic` (a temporary file beside the target, renamed
when complete).
"""

from __future__ import annotations

import importlib

#: Served from `plugin_bridge.export.formats` on first use, so that importing one format's module
#: (the child process that reads plugin states imports `mapped_plugins`) does not load every format.
_LAZY = ("EXPORT_FORMATS", "export_recipe")


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(".formats", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
