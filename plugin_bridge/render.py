"""Render audio through a chain on a backend: in memory or file to file, streaming in blocks.

The renderer owns what every backend shares: input validation, clamping frequencies below
Nyquist, feeding silence for effect tails and for latency, trimming latency off the front, fixed
block sizes (so the same input gives bit-identical output) and atomic writes.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_io import (
    DEFAULT_BLOCK,
    AtomicAudioWriter,
    check_audio_array,
    check_output_path,
    inspect_audio,
    iter_blocks,
)
from .backends import Backend, Processor, get_backend
from .backends.host_process import hosted_slots, in_host_process, prepare_in_host_process
from .chain import Chain, load_chain
from .effects import Effect, clamp_to_sample_rate, tail_seconds
from .errors import BackendError, ParameterError, PluginBridgeError
from .plugins.planning import plan_effects

ProgressFn = Callable[[int], None]
log = logging.getLogger(__name__)


class ClipGuard:
    """The last stage of every written render: samples beyond 0 dBFS are clipped to full scale.

    A mix chain ends in an anti-clipping stage, so a written file never holds samples beyond
    +-1.0 unless the caller asks for float headroom (``enabled=False``: a 32-bit float WAV keeps
    them). Either way the peak (dBFS) and the number of clipped samples are kept for `message`.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.peak = 0.0
        self.clipped = 0
        self.samples = 0

    @classmethod
    def for_output(cls, path: str | os.PathLike, subtype: str | None, float_headroom: bool) -> ClipGuard:
        """The guard of a render written to ``path`` in ``subtype``; float headroom (samples beyond
        0 dBFS kept) needs a 32-bit float WAV, else `ParameterError` before any work."""
        if float_headroom and (Path(path).suffix.lower() != ".wav" or subtype not in (None, "FLOAT")):
            raise ParameterError(f"{path}: float headroom needs a 32-bit float .wav output")
        return cls(enabled=not float_headroom)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """``block`` with samples beyond +-1.0 clipped (when enabled); counts what it did."""
        self.samples += block.size
        peak = float(np.max(np.abs(block))) if block.size else 0.0
        self.peak = max(self.peak, peak)
        if peak > 1.0:
            over = int(np.count_nonzero(np.abs(block) > 1.0))
            self.clipped += over
            if self.enabled:
                block = np.clip(block, -1.0, 1.0)
        return block

    def message(self, where: str) -> str | None:
        """One line for the user when the render went beyond 0 dBFS; None when it did not."""
        if self.clipped == 0:
            return None
        peak_db = 20.0 * math.log10(self.peak)
        share = 100.0 * self.clipped / max(self.samples, 1)
        if self.enabled:
            return (
                f"{where}: the render peaked at {peak_db:+.1f} dBFS; {self.clipped} samples ({share:.3g} %) "
                "were clipped to 0 dBFS. Lower the input or the chain's gain, or keep them with "
                "--float-headroom (32-bit float WAV)"
            )
        return (
            f"{where}: the render peaks at {peak_db:+.1f} dBFS ({self.clipped} samples above 0 dBFS, kept "
            "as float headroom): lower it before playback or export to a fixed-point format"
        )


@dataclass(frozen=True)
class RenderResult:
    """What a file render produced: where, how long, how fast."""

    output: str
    sample_rate: int
    channels: int
    frames: int
    backend: str
    seconds: float
    latency_samples: int
    tail_frames: int
    effects: tuple[Effect, ...]
    peak_dbfs: float = -math.inf
    clipped_samples: int = 0

    @property
    def realtime_factor(self) -> float:
        """Audio seconds rendered per wall-clock second."""
        return (self.frames / self.sample_rate) / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "output": self.output,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frames": self.frames,
            "duration_s": self.frames / self.sample_rate,
            "backend": self.backend,
            "render_seconds": round(self.seconds, 4),
            "realtime_factor": round(self.realtime_factor, 1),
            "latency_samples": self.latency_samples,
            "tail_frames": self.tail_frames,
            "peak_dbfs": round(self.peak_dbfs, 2) if math.isfinite(self.peak_dbfs) else None,
            "clipped_samples": self.clipped_samples,
            "effects": [e.to_dict() for e in self.effects],
        }


def resolve_effects(
    chain: Chain | str | os.PathLike | Sequence[Effect] = "default",
    values: Mapping[str, float] | None = None,
    vector: Sequence[float] | np.ndarray | None = None,
) -> list[Effect]:
    """Concrete effects from a chain (object, shipped name or file) and its parameters.

    Give either real-unit ``values`` (``{"comp.threshold_db": -18, ...}``) or a normalized model
    ``vector``, or neither for the chain's defaults. A list of `Effect` is returned as is.
    """
    if (
        isinstance(chain, Sequence)
        and not isinstance(chain, str)
        and all(isinstance(e, Effect) for e in chain)
    ):
        if values is not None or vector is not None:
            raise ParameterError("values/vector apply to a chain, not to a list of effects")
        return list(chain)
    ch = chain if isinstance(chain, Chain) else load_chain(chain)  # type: ignore[arg-type]
    if values is not None and vector is not None:
        raise ParameterError("give parameter values or a vector, not both")
    if vector is not None:
        return ch.resolve_vector(vector)
    return ch.resolve(values)


def chain_tail_frames(effects: Sequence[Effect], sample_rate: float) -> int:
    """Frames of silence to feed after the input so reverb and delay tails ring out (~-60 dB)."""
    return int(math.ceil(sum(tail_seconds(e) for e in effects) * sample_rate))


def _backend(backend: str | Backend) -> Backend:
    return backend if isinstance(backend, Backend) else get_backend(backend)


def prepare_processor(
    backend: Backend,
    effects: Sequence[Effect],
    sample_rate: float,
    channels: int,
    strict: bool = False,
    states: Mapping[str, dict] | None = None,
) -> Processor:
    """A processor for ``effects`` on ``backend``: frequencies clamped below Nyquist, plugin slots
    the backend will not host replaced by their built-ins (warned; an error when ``strict``), and
    a chain that still hosts a third-party plugin built in a child process
    (`plugin_bridge.backends.host_process`), so that a crashing plugin cannot take this one down."""
    effects = [clamp_to_sample_rate(e, sample_rate) for e in effects]
    if any(e.plugin for e in effects):
        # slots this backend will not host lose their plugin here, with a warning (or an error if strict)
        effects = plan_effects(effects, backend.name, strict)
    try:
        if hosted_slots(effects) and not in_host_process():
            return prepare_in_host_process(backend.name, effects, sample_rate, channels, states)
        return backend.prepare(effects, sample_rate, channels, states)
    except PluginBridgeError:
        raise
    except Exception as e:  # a backend library failing to build the chain
        raise BackendError(f"backend {backend.name!r} could not build the chain: {e}") from e


def _zeros(channels: int, frames: int, block_size: int) -> Iterator[np.ndarray]:
    while frames > 0:
        n = min(block_size, frames)
        yield np.zeros((channels, n), dtype=np.float32)
        frames -= n


def _run(
    processor: Processor,
    backend: Backend,
    blocks: Iterable[np.ndarray],
    channels: int,
    extra: int,
    block_size: int,
    progress: ProgressFn | None = None,
) -> Iterator[np.ndarray]:
    """Feed blocks plus ``extra`` frames of silence; yield output with ``latency`` trimmed off."""
    latency = processor.latency
    source = itertools.chain(blocks, _zeros(channels, extra + latency, block_size))
    if not backend.streaming:
        whole = np.concatenate(list(source), axis=1)
        source = iter([whole])
    to_skip = latency
    for block in source:
        try:
            out = processor.process(block)
        except PluginBridgeError:
            raise
        except Exception as e:
            raise BackendError(f"backend {backend.name!r} failed while rendering: {e}") from e
        if out.shape[1] != block.shape[1]:
            raise BackendError(
                f"backend {backend.name!r} returned {out.shape[1]} frames for a {block.shape[1]}-frame block"
            )
        if progress:
            progress(block.shape[1])
        if to_skip:
            cut = min(to_skip, out.shape[1])
            out = out[:, cut:]
            to_skip -= cut
        if out.shape[1]:
            if not np.isfinite(out).all():
                raise BackendError(f"backend {backend.name!r} produced non-finite samples (NaN/Inf)")
            yield out


def render_array(
    audio: np.ndarray,
    sample_rate: float,
    chain: Chain | str | os.PathLike | Sequence[Effect] = "default",
    values: Mapping[str, float] | None = None,
    vector: Sequence[float] | np.ndarray | None = None,
    backend: str | Backend = "auto",
    tail: bool = False,
    block_size: int = DEFAULT_BLOCK,
    *,
    strict: bool = False,
    plugin_states: Mapping[str, dict] | None = None,
) -> np.ndarray:
    """Render an in-memory signal through a chain; returns ``(channels, samples)`` float32.

    ``audio`` is ``(channels, samples)`` or 1-D mono at ``sample_rate`` Hz. The output has the
    input's length, plus the effects' tails when ``tail`` is true. Latency is compensated.
    Slots naming a plugin the backend cannot host fall back to the built-in with a warning, or
    raise `PluginError` when ``strict``. ``plugin_states`` (``{effect id: state}``, see
    `plugin_bridge.backends.hosted`) are restored into the hosted plugins.
    """
    arr = check_audio_array(audio, sample_rate)
    effects = resolve_effects(chain, values, vector)
    be = _backend(backend)
    proc = prepare_processor(be, effects, sample_rate, arr.shape[0], strict, plugin_states)
    extra = chain_tail_frames(effects, sample_rate) if tail else 0
    blocks = (arr[:, i : i + block_size] for i in range(0, arr.shape[1], block_size))
    return _collect(_run(proc, be, blocks, arr.shape[0], extra, block_size), arr.shape[1] + extra)


def _collect(blocks: Iterable[np.ndarray], frames: int) -> np.ndarray:
    """Copy rendered blocks into one ``(channels, frames)`` float32 array, created at the first
    block (its channel count is the processor's): no list of blocks and no concatenation, so the
    output's pages are touched once."""
    out: np.ndarray | None = None
    at = 0
    for block in blocks:
        n = block.shape[1]
        if out is None and n == frames:  # a whole-signal backend: keep its array as it is
            out = np.ascontiguousarray(block, dtype=np.float32)
            at = n
            continue
        if out is None:
            out = np.empty((block.shape[0], frames), dtype=np.float32)
        if at + n > frames:
            raise BackendError(f"the render returned more than the {frames} frames expected")
        out[:, at : at + n] = block
        at += n
    if out is None or at != frames:
        raise BackendError(f"the render returned {at} frames, {frames} expected")
    return out


def _progress_bar(total: int, enabled: bool | None, duration: float):
    if enabled is None:
        enabled = duration > 10.0 and sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, desc="render", leave=False, file=sys.stderr)


def render_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    chain: Chain | str | os.PathLike | Sequence[Effect] = "default",
    values: Mapping[str, float] | None = None,
    vector: Sequence[float] | np.ndarray | None = None,
    backend: str | Backend = "auto",
    tail: bool = True,
    downmix: bool = False,
    subtype: str | None = None,
    block_size: int = DEFAULT_BLOCK,
    progress: bool | None = None,
    *,
    strict: bool = False,
    plugin_states: Mapping[str, dict] | None = None,
    float_headroom: bool = False,
) -> RenderResult:
    """Render an audio file through a chain and write the result atomically.

    Reads wav/flac/ogg/mp3 in blocks (memory stays bounded on the streaming backends), writes
    wav (32-bit float) or flac (24-bit). The output keeps effect tails unless ``tail`` is false.
    Everything is validated before any audio is processed; the input is never overwritten.
    ``strict`` makes a plugin slot that cannot be hosted an error instead of a built-in fallback;
    ``plugin_states`` (``{effect id: state}``) are restored into the hosted plugins.
    The chain ends in an anti-clipping stage (`ClipGuard`): samples beyond 0 dBFS are clipped, with a
    warning saying by how much, unless ``float_headroom`` keeps them (32-bit float WAV only).
    """
    guard = ClipGuard.for_output(output_path, subtype, float_headroom)
    info = inspect_audio(input_path, downmix)
    out = check_output_path(output_path, (input_path,))
    effects = resolve_effects(chain, values, vector)
    be = _backend(backend)
    channels = min(info.channels, 2)
    proc = prepare_processor(be, effects, info.sample_rate, channels, strict, plugin_states)
    extra = chain_tail_frames(effects, info.sample_rate) if tail else 0
    bar = _progress_bar(info.frames + extra + proc.latency, progress, info.duration)
    start = time.perf_counter()
    try:
        with AtomicAudioWriter(out, info.sample_rate, proc.out_channels, subtype) as writer:
            blocks = iter_blocks(input_path, block_size, downmix)
            for block in _run(proc, be, blocks, channels, extra, block_size, bar.update if bar else None):
                writer.write(guard(block))
    finally:
        if bar:
            bar.close()
    elapsed = time.perf_counter() - start
    warning = guard.message(str(out))
    if warning:
        log.warning("%s", warning)
    return RenderResult(
        str(Path(out)),
        info.sample_rate,
        proc.out_channels,
        writer.frames,
        be.name,
        elapsed,
        proc.latency,
        extra,
        tuple(effects),
        20.0 * math.log10(guard.peak) if guard.peak > 0 else -math.inf,
        guard.clipped,
    )
