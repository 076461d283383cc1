"""The width rule at run time: how the ensemble's width move and the stereo-only estimate combine.

`plugin_bridge.ml.width` trains the estimate and fits the rule's two numbers; this module is what
inference needs of it, kept apart so that mixing a song does not import the training code (the
damage corpus and its filters).
"""

from __future__ import annotations

import numpy as np


def width_rule_move(
    ensemble_db: np.ndarray, estimate_db: np.ndarray, dead_zone_db: float, disagreement: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(proposed, spread, applied)`` width moves (dB): the mean of the two estimates, their |difference|,
    and the mean cut by ``dead_zone_db + disagreement x spread`` (soft threshold, never past zero)."""
    e, s = np.asarray(ensemble_db, dtype=np.float64), np.asarray(estimate_db, dtype=np.float64)
    mean, spread = 0.5 * (e + s), np.abs(e - s)
    applied = np.sign(mean) * np.maximum(np.abs(mean) - dead_zone_db - disagreement * spread, 0.0)
    return mean, spread, applied
