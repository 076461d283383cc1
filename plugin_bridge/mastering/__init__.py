"""Mastering: loudness targets, true-peak limiting, loudness search, reference matching, the pipeline.

Modules by what they hold (each imports only the ones listed before it):

- `targets`: `LoudnessTarget`, the one table of shipped `TARGETS`, `resolve_target` (no DSP imports);
- `settings`: `MasterSettings`, how hard mastering may work;
- `streaming`: block-by-block signals, float32 stores (in memory or in temporary files) and
  meters (loudness, true peak, spectrum), the streamed FIR;
- `checks`: clipping detection (also block by block) and DC removal (a zero-phase high-pass, in place);
- `limiter`: the true-peak limiter (the `limiter` effect's gain law on an 8x-oversampled envelope),
  in memory and block by block;
- `loudness_search`: the gain search under the limiter (`normalize_loudness`);
- `reference`: matching a reference track's width, spectrum and loudness;
- `pipeline`: one pipeline on signals; `master_array` runs it with its stores in memory,
  `master_file` with them on disk (the same numbers), `MasterResult`, the messages.

Every public name is importable from here (``from plugin_bridge.mastering import master_file``).
They are loaded on first use, so that ``plugin_bridge.mastering.targets`` (what the command line
needs to build its parser) does not load scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "LOUDNESS_TOLERANCE_LU": "targets",
    "LUFS_RANGE": "targets",
    "CEILING_RANGE_DBTP": "targets",
    "DEFAULT_TARGET": "targets",
    "LoudnessTarget": "targets",
    "TARGETS": "targets",
    "describe_targets": "targets",
    "resolve_target": "targets",
    "MasterSettings": "settings",
    "Clipping": "checks",
    "detect_clipping": "checks",
    "remove_dc": "checks",
    "filtfilt_inplace": "checks",
    "BlockLimiter": "limiter",
    "limiter_constants": "limiter",
    "lookahead_gain": "limiter",
    "limiter_gain": "limiter",
    "true_peak_limit": "limiter",
    "LoudnessStep": "loudness_search",
    "gain_loop": "loudness_search",
    "search_gain": "loudness_search",
    "predicted_loudness": "loudness_search",
    "normalize_loudness": "loudness_search",
    "MatchReport": "reference",
    "apply_fir": "reference",
    "linear_phase_fir": "reference",
    "match_curve_db": "reference",
    "match_reference": "reference",
    "MasterResult": "pipeline",
    "master_array": "pipeline",
    "master_file": "pipeline",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what static tools see; at run time the names come from __getattr__
    from .checks import Clipping, detect_clipping, filtfilt_inplace, remove_dc  # noqa: F401
    from .limiter import BlockLimiter, limiter_constants, limiter_gain, lookahead_gain, true_peak_limit  # noqa: F401
    from .loudness_search import (  # noqa: F401
        LoudnessStep,
        gain_loop,
        normalize_loudness,
        predicted_loudness,
        search_gain,  # noqa: F401
    )
    from .pipeline import MasterResult, master_array, master_file  # noqa: F401
    from .reference import MatchReport, apply_fir, linear_phase_fir, match_curve_db, match_reference  # noqa: F401
    from .settings import MasterSettings  # noqa: F401
    from .targets import (  # noqa: F401  # noqa: F401
        CEILING_RANGE_DBTP,
        DEFAULT_TARGET,
        LOUDNESS_TOLERANCE_LU,
        LUFS_RANGE,
        TARGETS,
        LoudnessTarget,
        describe_targets,
        resolve_target,
    )


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
