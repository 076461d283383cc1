"""`MasterSettings`: how hard mastering may work (make-up and limiting caps, limiter times, tolerances)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError

#: The most peak limiting a user may allow (dB): beyond it a limiter only destroys transients.
MAX_LIMITING_CAP_DB = 20.0


@dataclass(frozen=True)
class MasterSettings:
    """How hard mastering may work (units in the names).

    ``max_makeup_db`` caps the gain added to quiet input; ``max_limiting_db`` caps the limiter's
    gain reduction (a target that needs more is not reached, with a warning); the limiter's
    ``lookahead_ms`` (its attack) and ``release_ms``; ``aim_lu`` is the tolerance the iteration
    aims at (tighter than the promised 0.5 LU, so that other meters agree); the limiter holds the
    true peak ``safety_margin_db`` under the ceiling (meters with other interpolation filters read
    a few hundredths of a dB apart on bright, limited material); DC above
    ``dc_threshold`` (linear, -60 dBFS) is removed; ``clip_run`` identical full-scale samples in a
    row count as clipping.
    """

    max_makeup_db: float = 30.0
    max_limiting_db: float = 6.0
    lookahead_ms: float = 5.0
    release_ms: float = 100.0
    aim_lu: float = 0.1
    safety_margin_db: float = 0.15
    max_iterations: int = 10
    dc_threshold: float = 1e-3
    clip_run: int = 4

    @classmethod
    def limited_to(cls, max_limiting_db: float | None) -> MasterSettings:
        """Default settings, with the limiting cap ``max_limiting_db`` (dB) when given."""
        return cls() if max_limiting_db is None else cls(max_limiting_db=max_limiting_db)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_limiting_db <= MAX_LIMITING_CAP_DB:
            raise ParameterError(
                f"max limiting {self.max_limiting_db:g} dB is outside 0..{MAX_LIMITING_CAP_DB:g} dB"
            )
        if not 0.0 <= self.max_makeup_db <= 60.0:
            raise ParameterError(f"max make-up gain {self.max_makeup_db:g} dB is outside 0..60 dB")
