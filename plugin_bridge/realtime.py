"""Real-time block processing: a chain run on small blocks at a fixed latency, adjustable while it runs.

`BlockProcessor` takes consecutive blocks of any size (32 to 4096 samples is what live audio
uses), keeps every effect's state between them, reports a fixed ``latency`` (the look-ahead
limiters' delay, in samples) and applies `BlockProcessor.set_values` between blocks without
zipper noise::

    proc = BlockProcessor("default", 44100, values={"comp.threshold_db": -18.0})
    for block in blocks:                      # (2, n) float32
        out = proc.process(block)             # (2, n) float32, delayed by proc.latency samples
        proc.set_values({"output.gain_db": -3.0})   # glides there over smoothing_ms

With settings left alone the output equals the offline render (`plugin_bridge.render.render_array`
on the same backend) delayed by ``latency``, whatever the block sizes.

Changes are smoothed on the numpy backend (float64 inside) by `plugin_bridge.backends.live`:
gains, mixes and every reverb control glide sample by sample over ``smoothing_ms``; filters and
delay lines crossfade their input to a new instance while the old one rings out; the limiter's
look-ahead (the latency) cannot change. `SessionBlockProcessor` mixes a session block by block.

The pedalboard backend runs fixed settings only (its plugins cannot be retuned with their state
kept here): `set_values` on it is an error that says so.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from .backends import get_backend
from .backends.live import LiveEffect
from .chain import Chain, load_chain
from .effects import Effect, effect_specs
from .errors import AudioError, ParameterError
from .export.recipe import Recipe, session_of
from .graph import SessionGraph
from .render import prepare_processor
from .session import Session, load_session

log = logging.getLogger(__name__)

#: Default glide time (ms) of a parameter change.
SMOOTHING_MS = 20.0


def _effects_and_space(source, values: Mapping[str, float] | None) -> tuple[list[Effect], Chain | None]:
    """Concrete effects and the chain (None for a plain effect list) of a block processor's source."""
    if isinstance(source, Recipe):
        if source.kind != "chain":
            raise ParameterError(
                "BlockProcessor runs a chain recipe; a session recipe has one chain per node"
            )
        chain = source.chain_object()
        merged = {**source.values, **(values or {})}
        return (chain.resolve(merged) if chain else list(source.effects)), chain
    if isinstance(source, Sequence) and not isinstance(source, str):
        effects = list(source)
        if not all(isinstance(e, Effect) for e in effects):
            raise ParameterError("BlockProcessor: a list source must hold Effect objects")
        if values:
            return _apply(effects, None, values), None
        return effects, None
    chain = source if isinstance(source, Chain) else load_chain(source)
    return chain.resolve(values or {}), chain


def _apply(effects: Sequence[Effect], chain: Chain | None, values: Mapping[str, float]) -> list[Effect]:
    """``effects`` with ``{"effect_id.param": value}`` applied (validated: space range, else effect range)."""
    by_id = {e.id: dict(e.params) for e in effects}
    for name, v in values.items():
        eid, _, pname = str(name).rpartition(".")
        if eid not in by_id or pname not in by_id[eid]:
            valid = ", ".join(chain.space.names) if chain else ", ".join(f"{e.id}.<param>" for e in effects)
            raise ParameterError(f"unknown parameter {name!r}; valid: {valid}")
        if chain is not None and name in chain.space.names:
            by_id[eid][pname] = chain.space.spec(name).check(v)
        else:
            spec = {s.name: s for s in effect_specs(next(e.type for e in effects if e.id == eid))}[pname]
            by_id[eid][pname] = spec.check(v, where=f"{eid}.")
    return [Effect(e.id, e.type, by_id[e.id], e.plugin) for e in effects]


class BlockProcessor:
    """A chain (name, file, `Chain`, chain `Recipe` or list of `Effect`) processing live blocks.

    ``sample_rate`` in Hz; ``channels`` (1 or 2) of the input blocks; ``values`` sets parameters
    (``{"comp.threshold_db": -18.0}``; a recipe's own values are the starting point);
    ``backend`` ``"numpy"`` (adjustable while running) or ``"pedalboard"`` (fixed settings);
    ``smoothing_ms`` is how long a change takes. ``latency`` (samples) is fixed for the
    processor's life; ``out_channels`` is 2 after a ``pan``.
    """

    def __init__(
        self,
        source: Chain | Recipe | Sequence[Effect] | str | os.PathLike = "default",
        sample_rate: float = 44100.0,
        backend: str = "numpy",
        channels: int = 2,
        values: Mapping[str, float] | None = None,
        smoothing_ms: float = SMOOTHING_MS,
    ) -> None:
        try:
            sample_rate = float(sample_rate)
        except (TypeError, ValueError):
            sample_rate = math.nan
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ParameterError(
                f"BlockProcessor: sample rate must be a positive number of Hz, got {sample_rate!r}"
            )
        if channels not in (1, 2):
            raise ParameterError(f"BlockProcessor: blocks must be mono or stereo, got {channels} channels")
        if not (math.isfinite(smoothing_ms) and 0.0 <= smoothing_ms <= 1000.0):
            raise ParameterError(
                f"BlockProcessor: smoothing_ms must be in [0, 1000] ms, got {smoothing_ms!r}"
            )
        effects, self.chain = _effects_and_space(source, values)
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.smoothing_ms = float(smoothing_ms)
        self.backend = get_backend(backend).name
        self.effects = effects
        if any(e.plugin for e in effects):
            log.warning("BlockProcessor: plugin slots run their built-in effects live")
            effects = [Effect(e.id, e.type, e.params) for e in effects]
        if self.backend == "numpy":
            self._live: list[LiveEffect] | None = []
            ch = channels
            fade = max(1, int(round(self.smoothing_ms * self.sample_rate / 1000.0)))
            for e in effects:
                stage = LiveEffect(e, self.sample_rate, ch, fade)
                self._live.append(stage)
                ch = stage.out_channels
            self.out_channels = ch
            self.latency = sum(s.latency for s in self._live)
            self._fixed = None
        else:
            self._live = None
            self._fixed = prepare_processor(get_backend(self.backend), effects, self.sample_rate, channels)
            self.out_channels = self._fixed.out_channels
            self.latency = int(self._fixed.latency)

    @property
    def values(self) -> dict[str, float]:
        """The current target value of every parameter, ``{"effect_id.param": value}``."""
        return {f"{e.id}.{k}": float(v) for e in self.effects for k, v in e.params.items()}

    def set_values(self, values: Mapping[str, float]) -> None:
        """Change parameters (``{"effect_id.param": value}``, validated) from the next block on,
        gliding over ``smoothing_ms``; a bad name or value raises `ParameterError` and changes nothing."""
        new = _apply(self.effects, self.chain, values)
        if self._live is None:
            raise ParameterError(
                f"the {self.backend} backend runs fixed settings; live parameter changes need backend 'numpy'"
            )
        for live, e in zip(self._live, new, strict=True):
            if e.type == "limiter" and e["lookahead_ms"] != live.effect["lookahead_ms"]:
                raise ParameterError(
                    f"{e.id}.lookahead_ms sets the processor's latency and cannot change while it runs"
                )
        fade = int(round(self.smoothing_ms * self.sample_rate / 1000.0))
        for live, e in zip(self._live, new, strict=True):
            if e.params != live.effect.params:
                live.set(e, fade)
        self.effects = new

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` block (any n >= 0); returns ``(out_channels, n)``
        float32, delayed by ``latency`` samples."""
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"BlockProcessor: expected a ({self.channels}, samples) block, got shape {x.shape}"
            )
        if x.shape[1] == 0:
            return np.zeros((self.out_channels, 0), dtype=np.float32)
        if self._fixed is not None:
            return np.asarray(self._fixed.process(x.astype(np.float32, copy=False)), dtype=np.float32)
        y = x.astype(np.float64)
        for live in self._live or ():
            y = live.process(y)
        return y.astype(np.float32)


class SessionBlockProcessor:
    """A multitrack session (file, `Session` or session `Recipe`) mixed block by block.

    Each call renders the next ``n`` frames of the master mix; tracks read their stem files unless
    ``inputs`` hands them live blocks. ``latency`` (samples) is the session's compensated latency
    (every track aligned to the slowest path), fixed for the processor's life. Settings are fixed
    (`BlockProcessor` changes a chain's settings while it runs). Backends: numpy or pedalboard.
    """

    def __init__(self, session: Session | Recipe | str | os.PathLike, backend: str = "numpy") -> None:
        if isinstance(session, Recipe):
            session = session_of(session)
        s = session if isinstance(session, Session) else load_session(session)
        be = get_backend(backend)
        if not be.streaming:
            raise ParameterError(
                f"the {be.name} backend renders whole buffers; live blocks need numpy or pedalboard"
            )
        self.graph = SessionGraph(s, be)
        self.sample_rate = float(self.graph.sample_rate)
        self.latency = int(self.graph.latency)
        self.out_channels = 2
        self.tracks = {name: src.channels for name, src in self.graph.sources.items()}

    def process(self, n: int, inputs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The next ``n`` frames of the master mix, ``(2, n)`` float32, delayed by ``latency``;
        ``inputs`` maps track names to ``(channels, n)`` live blocks (checked)."""
        if not (isinstance(n, int | np.integer) and n >= 0):
            raise ParameterError(
                f"SessionBlockProcessor: block length must be a whole number >= 0, got {n!r}"
            )
        blocks = {}
        for name, block in (inputs or {}).items():
            if name not in self.tracks:
                raise ParameterError(f"no audible track {name!r}; tracks: {', '.join(self.tracks)}")
            x = np.asarray(block, dtype=np.float32)
            if x.shape != (self.tracks[name], n):
                raise AudioError(
                    f"track {name!r}: expected a ({self.tracks[name]}, {n}) block, got shape {x.shape}"
                )
            blocks[name] = x
        if n == 0:
            return np.zeros((2, 0), dtype=np.float32)
        mix, _ = self.graph.process(int(n), blocks)
        return np.asarray(mix, dtype=np.float32)


def audio_devices() -> tuple[list[str], list[str]]:
    """``(input device names, output device names)`` as pedalboard's AudioStream sees them."""
    from pedalboard.io import AudioStream

    return list(AudioStream.input_device_names), list(AudioStream.output_device_names)


def check_devices(input_device: str, output_device: str) -> None:
    """Raise `AudioError` in one line when the machine has no audio device, or when a device name
    is not one of those it lists (the valid names are given)."""
    inputs, outputs = audio_devices()
    if not inputs or not outputs:
        raise AudioError(
            "this machine has no audio "
            + (
                "input or output devices"
                if not inputs and not outputs
                else "input device"
                if not inputs
                else "output device"
            )
            + " (pedalboard's AudioStream lists none): live processing needs an audio interface"
        )
    for name, names, kind in ((input_device, inputs, "input"), (output_device, outputs, "output")):
        if name not in names:
            raise AudioError(f"no {kind} device {name!r}; {kind} devices here: {', '.join(names)}")


def run_live(
    input_device: str,
    output_device: str,
    processor: BlockProcessor,
    block_size: int = 128,
    seconds: float | None = None,
) -> int:
    """Play ``input_device`` through ``processor`` to ``output_device`` in blocks of ``block_size``
    samples (pedalboard's AudioStream: one stream reads, the other plays) until interrupted or
    ``seconds`` have passed; returns the number of blocks processed.

    Raises `AudioError` in one line when the machine has no audio device, or when a device name is
    not one of those it lists (the valid names are given).
    """
    from pedalboard.io import AudioStream

    if not 16 <= block_size <= 8192:
        raise ParameterError(f"block size must be 16-8192 samples, got {block_size}")
    check_devices(input_device, output_device)
    sr = processor.sample_rate
    blocks = 0
    limit = None if seconds is None else int(seconds * sr / block_size)
    with (
        AudioStream(
            input_device_name=input_device,
            sample_rate=sr,
            buffer_size=block_size,
            num_input_channels=processor.channels,
        ) as source,
        AudioStream(
            output_device_name=output_device,
            sample_rate=sr,
            buffer_size=block_size,
            num_output_channels=processor.out_channels,
        ) as sink,
    ):
        while limit is None or blocks < limit:
            sink.write(processor.process(np.asarray(source.read(block_size), dtype=np.float32)), sr)
            blocks += 1
    return blocks
