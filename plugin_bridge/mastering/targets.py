"""Loudness targets: where a master will be played, as integrated loudness (LUFS) and true-peak ceiling (dBTP).

The one table of shipped targets (`TARGETS`): streaming -14/-1, apple -16/-1, ebu_r128 -23/-1,
club -9/-0.3, plus any custom pair within -50..-3 LUFS and -12..0 dBTP (`resolve_target`). This
module imports no DSP, so the command line can list the names without loading scipy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import ParameterError

#: What the result promises: integrated loudness within this many LU of the target.
LOUDNESS_TOLERANCE_LU = 0.5
LUFS_RANGE = (-50.0, -3.0)
CEILING_RANGE_DBTP = (-12.0, 0.0)


@dataclass(frozen=True)
class LoudnessTarget:
    """Where the master will be played: integrated loudness (LUFS) and true-peak ceiling (dBTP)."""

    name: str
    lufs: float
    ceiling_dbtp: float

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


#: The shipped loudness targets, by name.
TARGETS: dict[str, LoudnessTarget] = {
    "streaming": LoudnessTarget("streaming", -14.0, -1.0),
    "apple": LoudnessTarget("apple", -16.0, -1.0),
    "ebu_r128": LoudnessTarget("ebu_r128", -23.0, -1.0),
    "club": LoudnessTarget("club", -9.0, -0.3),
}
#: The name used when none is given.
DEFAULT_TARGET = "streaming"


def describe_targets() -> str:
    """The shipped targets in one line: ``streaming -14 LUFS/-1 dBTP, apple -16/-1, ...``."""
    parts = [f"{t.name} {t.lufs:g}/{t.ceiling_dbtp:g}" for t in TARGETS.values()]
    parts[0] = parts[0].replace("/", " LUFS/") + " dBTP"
    return ", ".join(parts)


def resolve_target(
    target: str | LoudnessTarget | None = None, lufs: float | None = None, ceiling_dbtp: float | None = None
) -> LoudnessTarget:
    """A `LoudnessTarget` from a preset name (or object) and/or custom values.

    ``lufs`` makes a custom target (ceiling ``ceiling_dbtp``, else the preset's, else -1 dBTP);
    ``ceiling_dbtp`` alone overrides a preset's ceiling; nothing at all gives "streaming".
    Raises `ParameterError` for an unknown name or values outside -50..-3 LUFS / -12..0 dBTP.
    """
    if isinstance(target, LoudnessTarget):
        base: LoudnessTarget | None = target
    elif target is None:
        base = None
    elif str(target) in TARGETS:
        base = TARGETS[str(target)]
    else:
        raise ParameterError(f"unknown loudness target {target!r}; choose one of {', '.join(TARGETS)}")
    if lufs is not None:
        ceiling = ceiling_dbtp if ceiling_dbtp is not None else (base.ceiling_dbtp if base else -1.0)
        result = LoudnessTarget("custom", float(lufs), float(ceiling))
    else:
        result = base or TARGETS[DEFAULT_TARGET]
        if ceiling_dbtp is not None:
            result = replace(result, ceiling_dbtp=float(ceiling_dbtp))
    lo, hi = LUFS_RANGE
    if not (math.isfinite(result.lufs) and lo <= result.lufs <= hi):
        raise ParameterError(f"loudness target {result.lufs} LUFS is outside {lo:g}..{hi:g} LUFS")
    lo, hi = CEILING_RANGE_DBTP
    if not (math.isfinite(result.ceiling_dbtp) and lo <= result.ceiling_dbtp <= hi):
        raise ParameterError(f"true-peak ceiling {result.ceiling_dbtp} dBTP is outside {lo:g}..{hi:g} dBTP")
    return result
