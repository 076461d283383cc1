"""plugin-bridge: turn predicted mix parameters into real effect chains and render them headlessly.

The public API::

    from plugin_bridge import load_chain, render_file, render_array
    chain = load_chain("default")                    # presets/chains/default.yaml
    vector = [0.5] * len(chain.space)                 # what a model predicts, in [0, 1]
    render_file("song.wav", "mix.wav", chain, vector=vector, backend="pedalboard")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .chain import Chain, chain_from_dict, list_chains, load_chain
from .effects import EFFECT_TYPES, Effect
from .errors import AudioError, BackendError, ChainError, FormatError, ParameterError, PluginBridgeError
from .params import ParamSpace, ParamSpec, default_space
from .render import RenderResult, render_array, render_file, resolve_effects

__all__ = [
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
