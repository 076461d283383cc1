"""plugin-bridge: turn predicted mix parameters into real effect chains and render them headlessly.

The public API::

    from plugin_bridge import load_chain, render_file, render_array
    chain = load_chain("default")                    # presets/chains/default.yaml
    vector = [0.5] * len(chain.space)                 # what a model predicts, in [0, 1]
    render_file("song.wav", "mix.wav", chain, vector=vector, backend="pedalboard")
"""

from __future__ import annotations

from .chain import Chain, chain_from_dict, default_space, list_chains, load_chain
from .effects import EFFECT_TYPES, Effect
from .errors import AudioError, BackendError, ChainError, FormatError, ParameterError, PluginBridgeError
from .params import ParamSpace, ParamSpec
from .render import RenderResult, render_array, render_file, resolve_effects
from .version import __version__

#: Names served lazily (their modules load the DSP code and numba, ~0.35 s), so `import plugin_bridge`
#: stays fast.
_LAZY = {
    "analyze": "analysis",
    "plot_analysis": "analysis",
    "TARGETS": "mastering",
    "LoudnessTarget": "mastering",
    "MasterResult": "mastering",
    "master_array": "mastering",
    "master_file": "mastering",
    "match_reference": "mastering",
    "render_session": "graph",
    "render_session_array": "graph",
    "Session": "session",
    "load_session": "session",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'plugin_bridge' has no attribute {name!r}")


__all__ = [
    "TARGETS",
    "LoudnessTarget",
    "MasterResult",
    "Session",
    "analyze",
    "load_session",
    "master_array",
    "master_file",
    "match_reference",
    "plot_analysis",
    "render_session",
    "render_session_array",
    "EFFECT_TYPES",
    "AudioError",
    "BackendError",
    "Chain",
    "ChainError",
    "Effect",
    "FormatError",
    "ParamSpace",
    "ParamSpec",
    "ParameterError",
    "PluginBridgeError",
    "RenderResult",
    "__version__",
    "chain_from_dict",
    "default_space",
    "list_chains",
    "load_chain",
    "render_array",
    "render_file",
    "resolve_effects",
]
