"""plugin-bridge: turn predicted mix parameters into real effect chains and render them headlessly.

The public API::

    from plugin_bridge import load_chain, render_file, render_array
    chain = load_chain("default")                    # presets/chains/default.yaml
    vector = [0.5] * len(chain.space)                 # what a model predicts, in [0, 1]
    render_file("song.wav", "mix.wav", chain, vector=vector, backend="pedalboard")
"""

from __future__ import annotations

from .errors import AudioError, BackendError, ChainError, FormatError, ParameterError, PluginBridgeError
from .version import __version__

#: Names served lazily, so that `import plugin_bridge` (and so every submodule import, such as the
#: plugin host child's) stays fast: the mastering and analysis modules load the DSP code (~0.1 s, and
#: numba's ~0.35 s where the C kernels are not built), the chain and render modules numpy, soundfile
#: and the plugin maps (~0.05 s).
_LAZY = {
    "Chain": "chain",
    "chain_from_dict": "chain",
    "default_space": "chain",
    "list_chains": "chain",
    "load_chain": "chain",
    "EFFECT_TYPES": "effects",
    "Effect": "effects",
    "ParamSpace": "params",
    "ParamSpec": "params",
    "RenderResult": "render",
    "render_array": "render",
    "render_file": "render",
    "resolve_effects": "render",
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
