"""The one interface every render backend implements.

A backend turns a list of concrete `Effect` (validated real-unit values, frequencies already
clamped below Nyquist) into a `Processor` for a given sample rate and channel count. A processor
is stateful and streaming: `process` takes consecutive blocks of ``(channels, samples)`` float32
audio and returns blocks of the same length (the channel count may grow from 1 to 2 at a ``pan``).
Latency that a processor adds (a look-ahead limiter) is reported in ``latency`` samples; the
renderer feeds that many extra samples of silence and trims the front, so output stays aligned.

Backends whose engine cannot keep state between calls (DawDreamer renders a whole buffer) set
``streaming = False``; the renderer then hands them the whole signal in one block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from ..effects import Effect


class Processor(Protocol):
    """A stateful, streaming renderer of one chain at one sample rate."""

    latency: int
    out_channels: int

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` float32 block; returns ``(out_channels, n)`` float32."""
        ...


class Backend(ABC):
    """A way of rendering chains: pedalboard built-ins, numpy/scipy DSP, DawDreamer/Faust."""

    name: str = ""
    streaming: bool = True

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run here; otherwise one line saying what is missing."""

    @abstractmethod
    def prepare(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        states: Mapping[str, dict] | None = None,
    ) -> Processor:
        """Build a processor for ``effects`` at ``sample_rate`` Hz for ``channels`` (1 or 2) inputs.

        ``states`` maps effect ids of hosted-plugin slots to plugin states to restore
        (`plugin_bridge.backends.hosted`); backends that host no plugins ignore it.
        """


def output_channels(effects: Sequence[Effect], channels: int) -> int:
    """Channels after the chain: a ``pan`` turns mono into stereo, nothing else changes the count."""
    return 2 if any(e.type == "pan" for e in effects) else channels
