"""The ``numpy`` backend: every canonical effect in pure numpy/scipy (numba-accelerated loops).

Always available. `make_stage` turns one `Effect` into a streaming `Stage` (also used by the
pedalboard backend for the effects pedalboard lacks); `NumpyBackend.prepare` chains the stages of a
whole chain into a processor whose latency is the sum of the stages' latencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..effects import Effect, clamp_to_sample_rate
from ..errors import AudioError, ParameterError
from .base import Backend
from .dsp import (
    Compressor,
    FeedbackDelay,
    Freeverb,
    Gain,
    Identity,
    Limiter,
    Pan,
    SosFilter,
    Stage,
    Width,
    db_to_gain,
    delay_samples,
    first_order_highpass_sos,
    high_shelf_sos,
    low_shelf_sos,
    peak_sos,
)

#: Long blocks are run through the stages in pieces of at most this many samples (cache-friendly;
#: every stage streams, so the result does not depend on it beyond float rounding).
MAX_PIECE = 1 << 16

_SHELVES = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}


def _check_setup(sample_rate: float, channels: int) -> None:
    if not (np.isfinite(sample_rate) and sample_rate > 0):
        raise ParameterError(f"sample rate must be a positive number of Hz, got {sample_rate!r}")
    if channels not in (1, 2):
        raise ParameterError(f"the numpy backend renders mono or stereo audio, got {channels} channels")


def make_stage(effect: Effect, sample_rate: float, channels: int) -> Stage:
    """A streaming `Stage` rendering ``effect`` at ``sample_rate`` (Hz) for ``channels`` (1 or 2) inputs."""
    _check_setup(sample_rate, channels)
    effect = clamp_to_sample_rate(effect, sample_rate)
    p, kind = effect.params, effect.type
    if kind == "pan":
        return Identity(channels) if channels == 2 and p["pan"] == 0.0 else Pan(channels, p["pan"])
    if effect.is_neutral():
        return Identity(channels)
    if kind == "gain":
        return Gain(channels, db_to_gain(p["gain_db"]))
    if kind == "highpass":
        return SosFilter(channels, first_order_highpass_sos(sample_rate, p["cutoff_hz"]))
    if kind in _SHELVES:
        return SosFilter(channels, _SHELVES[kind](sample_rate, p["cutoff_hz"], p["gain_db"], p["q"]))
    if kind == "compressor":
        return Compressor(
            channels,
            sample_rate,
            p["threshold_db"],
            p["ratio"],
            p["attack_ms"],
            p["release_ms"],
            p["makeup_db"],
        )
    if kind == "limiter":
        return Limiter(channels, sample_rate, p["ceiling_db"], p["release_ms"], p["lookahead_ms"])
    if kind == "reverb":
        if p["wet_level"] == 0.0:
            return Gain(channels, 2.0 * p["dry_level"])
        return Freeverb(
            channels, sample_rate, p["room_size"], p["damping"], p["wet_level"], p["dry_level"], p["width"]
        )
    if kind == "delay":
        return FeedbackDelay(channels, delay_samples(p["delay_ms"], sample_rate), p["feedback"], p["mix"])
    if kind == "width":
        return Width(channels, p["width"])
    raise ParameterError(f"effect {effect.id!r}: the numpy backend cannot render type {kind!r}")


class NumpyProcessor:
    """Runs a chain of stages in order on consecutive ``(channels, n)`` blocks (float64 inside)."""

    def __init__(self, stages: Sequence[Stage], channels: int) -> None:
        self.stages = list(stages)
        self.channels = channels
        self.latency = sum(s.latency for s in self.stages)
        self.out_channels = self.stages[-1].out_channels if self.stages else channels

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` block; returns ``(out_channels, n)`` float32."""
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"numpy backend: expected a ({self.channels}, samples) block, got shape {x.shape}"
            )
        n = x.shape[1]
        if n <= MAX_PIECE:
            return self._run(x).astype(np.float32, copy=False)
        out = np.empty((self.out_channels, n), dtype=np.float32)
        for i in range(0, n, MAX_PIECE):
            out[:, i : i + MAX_PIECE] = self._run(x[:, i : i + MAX_PIECE])
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run every stage; float64 between numpy stages, float32 into and out of float32-native ones."""
        y = x
        for stage in self.stages:
            if stage.native_float32:
                y = stage.process(y.astype(np.float32, copy=False))
            else:
                y = stage.process64(y.astype(np.float64, copy=False))
        return y


class NumpyBackend(Backend):
    """Pure numpy/scipy rendering: the reference implementation of every effect."""

    name = "numpy"
    streaming = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Always None: numpy and scipy are hard dependencies."""
        return None

    def prepare(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        states: Mapping[str, dict] | None = None,
    ) -> NumpyProcessor:
        """A processor running ``effects`` in order at ``sample_rate`` Hz for ``channels`` inputs
        (no plugins are hosted here: ``states`` is ignored)."""
        _check_setup(sample_rate, channels)
        stages = []
        for effect in effects:
            stage = make_stage(effect, sample_rate, channels)
            stages.append(stage)
            channels = stage.out_channels
        return NumpyProcessor(_fuse(stages), stages[0].channels if stages else channels)


def _fuse(stages: Sequence[Stage]) -> list[Stage]:
    """Drop identity stages and merge runs of IIR filters into one cascade (one sosfilt call)."""
    out: list[Stage] = []
    for stage in stages:
        if isinstance(stage, Identity):
            continue
        if isinstance(stage, SosFilter) and out and isinstance(out[-1], SosFilter):
            out[-1] = SosFilter(stage.channels, np.vstack((out[-1].sos, stage.sos)))
            continue
        out.append(stage)
    return out
