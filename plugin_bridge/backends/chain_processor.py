"""A processor made of consecutive stages, shared by the streaming backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Stage(Protocol):
    """One streaming step of a chain: ``process`` a ``(channels, n)`` float32 block."""

    latency: int
    out_channels: int

    def process(self, block: np.ndarray) -> np.ndarray: ...


class StageChain:
    """Runs stages in order; latency is their sum, output channels those of the last stage."""

    def __init__(self, stages: Sequence[Stage], channels: int):
        self.stages = list(stages)
        self.latency = int(sum(s.latency for s in self.stages))
        self.out_channels = self.stages[-1].out_channels if self.stages else channels

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next block through every stage."""
        for stage in self.stages:
            block = stage.process(block)
        return block
