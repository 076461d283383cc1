"""Render a `Session` graph: tracks -> buses (sends) -> master, streaming in blocks, latency-compensated.

Stems are read in lockstep, block by block: shorter stems are padded with silence up to the longest
(and through the effect tails), stems at another sample rate are resampled on the fly with soxr's
"HQ" (high-quality, linear-phase) streaming resampler, mono stems are panned into stereo.

Latency compensation: every node's chain reports its latency; at each bus the inputs are delayed so
they all arrive as late as the latest, and the master's total latency is trimmed off the front of the
mix. A track with a look-ahead limiter therefore stays sample-aligned with the others.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio_io import DEFAULT_BLOCK, AtomicAudioWriter, check_output_path
from ..backends import Backend, get_backend
from ..backends.dsp import PlainDelay
from ..errors import BackendError, PluginBridgeError
from ..render import ClipGuard, prepare_processor
from ..session import MASTER, Session, SessionError, load_session
from .dawdreamer_graph import DawDreamerSessionGraph, render_session_dawdreamer
from .signal_flow import (
    StemSource,
    check_finite_mix,
    node_latencies,
    pan_to_stereo,
    session_sample_rate,
    session_tail_frames,
    stem_frames,
)


class _Edge:
    """A connection carrying stereo audio to a bus, with its gain and latency-compensation delay."""

    def __init__(self, target: str, gain: float, delay: int, pre_fader: bool):
        self.target, self.gain, self.pre_fader = target, gain, pre_fader
        self.delay = PlainDelay(2, delay) if delay > 0 else None

    def carry(self, x: np.ndarray) -> np.ndarray:
        y = x * self.gain if self.gain != 1.0 else x
        return self.delay.process(y) if self.delay is not None else y


def _db(db: float) -> float:
    return 10.0 ** (db / 20.0)


log = logging.getLogger(__name__)


class SessionGraph:
    """A session prepared for rendering on one backend: processors, sources, edges, latencies.

    ``plugin_states`` (``{node name: {effect id: state}}``) are restored into hosted plugins.
    """

    def __init__(
        self,
        session: Session,
        backend: str | Backend = "auto",
        plugin_states: Mapping[str, Mapping[str, dict]] | None = None,
    ):
        self.session = session
        self.backend = backend if isinstance(backend, Backend) else get_backend(backend)
        self.sample_rate = session_sample_rate(session)
        audible = {t.name for t in session.audible_tracks}
        self.sources = {t.name: StemSource(t, self.sample_rate) for t in session.tracks if t.name in audible}
        self.length = max(stem_frames(t, self.sample_rate) for t in session.tracks)
        self.processors = {}
        for name in session.order:
            node = session.node(name)
            channels = self.sources[name].channels if name in self.sources else (1 if node.is_track else 2)
            if node.effects:
                try:
                    states = (plugin_states or {}).get(name)
                    self.processors[name] = prepare_processor(
                        self.backend, node.effects, self.sample_rate, channels, states=states
                    )
                except PluginBridgeError as e:
                    raise SessionError(f"{session.source}: {name!r}: {e}") from None
        self.total = node_latencies(session, {n: self._own_latency(n) for n in session.order})
        self.edges = self._edges()
        self.latency = self.total[MASTER]
        self.tail = session_tail_frames(session, self.sample_rate)

    def _own_latency(self, name: str) -> int:
        proc = self.processors.get(name)
        return int(proc.latency) if proc is not None else 0

    def _arrival(self, name: str) -> int:
        return self.total[name] - self._own_latency(name)

    def _edges(self) -> dict[str, list[_Edge]]:
        out: dict[str, list[_Edge]] = {}
        for name in self.session.order:
            node = self.session.node(name)
            edges = []
            for s in node.sends:
                edges.append(
                    _Edge(s.bus, _db(s.level_db), self._arrival(s.bus) - self.total[name], s.pre_fader)
                )
            if node.output:
                edges.append(_Edge(node.output, 1.0, self._arrival(node.output) - self.total[name], False))
            out[name] = edges
        return out

    def process(
        self, n: int, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Render the next ``n`` frames: the master block ``(2, n)`` and each audible track's stem.

        ``inputs`` (``{track: (channels, n) block}``, live input) replaces the stem file of the
        tracks it names; the others read their files."""
        acc = {b.name: np.zeros((2, n), dtype=np.float32) for b in (*self.session.buses, self.session.master)}
        stems = {}
        master_out = acc[MASTER]
        for name in self.session.order:
            node = self.session.node(name)
            if node.is_track:
                if name not in self.sources:
                    continue
                x = inputs[name] if inputs and name in inputs else self.sources[name].read(n)
            else:
                x = acc[name]
            if node.invert:
                x = -x
            proc = self.processors.get(name)
            if proc is not None:
                try:
                    x = np.asarray(proc.process(x), dtype=np.float32)
                except PluginBridgeError:
                    raise
                except Exception as e:
                    raise BackendError(f"{self.backend.name}: {name!r} failed while rendering: {e}") from e
            pre = pan_to_stereo(x, node.pan) if any(s.pre_fader for s in node.sends) else None
            post = pan_to_stereo(x, node.pan, _db(node.gain_db))
            if node.is_track:
                stems[name] = post
            elif name == MASTER:
                master_out = post
            for edge in self.edges[name]:
                acc[edge.target] += edge.carry(pre if edge.pre_fader else post)
        return master_out, stems


@dataclass(frozen=True)
class SessionResult:
    """What a session render wrote and how fast."""

    output: str
    stems: dict
    sample_rate: int
    frames: int
    backend: str
    seconds: float
    latency_samples: int

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "output": self.output,
            "stems": self.stems,
            "sample_rate": self.sample_rate,
            "frames": self.frames,
            "duration_s": self.frames / self.sample_rate,
            "backend": self.backend,
            "render_seconds": round(self.seconds, 4),
            "realtime_factor": round(self.frames / self.sample_rate / self.seconds, 1)
            if self.seconds
            else None,
            "latency_samples": self.latency_samples,
        }


def _blocks(graph: SessionGraph, frames: int, block_size: int) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield ``(mix, stems)`` blocks covering ``frames`` output frames, latency trimmed per node."""
    if not graph.backend.streaming:
        block_size = frames + graph.latency
    skip = {MASTER: graph.latency, **{t: graph.total[t] for t in graph.sources}}
    left = {MASTER: frames, **{t: frames for t in graph.sources}}
    fed = 0
    while left[MASTER] > 0:
        n = min(block_size, frames + graph.latency - fed)
        mix, stems = graph.process(n)
        fed += n
        out = {}
        for key, block in ((MASTER, mix), *stems.items()):
            cut = min(skip[key], n)
            skip[key] -= cut
            block = block[:, cut : cut + left[key]]
            left[key] -= block.shape[1]
            out[key] = block
        yield out.pop(MASTER), out


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.\- ]+", "_", name).strip() or "track"


def _native_dawdreamer(session: Session, backend: str | Backend) -> bool:
    """True when a session renders through one native DawDreamer graph: the dawdreamer backend and
    no hosted-plugin slot (those go through the per-node executor, whose chains host plugins)."""
    if getattr(backend, "name", backend) != "dawdreamer":
        return False
    nodes = (*session.tracks, *session.buses, session.master)
    return not any(e.plugin for n in nodes for e in n.effects)


def render_session_array(
    session: Session | str | os.PathLike,
    backend: str | Backend = "auto",
    tail: bool = True,
    block_size: int = DEFAULT_BLOCK,
    plugin_states: Mapping[str, Mapping[str, dict]] | None = None,
) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
    """Render a session in memory: ``(mix (2, n) float32, sample_rate, {track: stem (2, n) float32})``.

    ``plugin_states`` (``{node name: {effect id: state}}``) are restored into hosted plugins.
    """
    s = session if isinstance(session, Session) else load_session(session)
    if _native_dawdreamer(s, backend):  # one native RenderEngine graph
        return render_session_dawdreamer(s, tail)
    graph = SessionGraph(s, backend, plugin_states)
    frames = graph.length + (graph.tail if tail else 0)
    mixes, stems = [], {t: [] for t in graph.sources}
    for mix, st in _blocks(graph, frames, block_size):
        mixes.append(mix)
        for k, v in st.items():
            stems[k].append(v)
    out = np.concatenate(mixes, axis=1).astype(np.float32)
    check_finite_mix(out, graph.backend.name)
    return out, graph.sample_rate, {k: np.concatenate(v, axis=1).astype(np.float32) for k, v in stems.items()}


def render_session(
    session: Session | str | os.PathLike,
    output: str | os.PathLike,
    stems_out: str | os.PathLike | None = None,
    backend: str | Backend = "auto",
    tail: bool = True,
    subtype: str | None = None,
    block_size: int = DEFAULT_BLOCK,
    plugin_states: Mapping[str, Mapping[str, dict]] | None = None,
    float_headroom: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SessionResult:
    """Render a session file (or `Session`) to a stereo mix file, and each processed track to
    ``stems_out/<track>.wav`` when given. Files are written atomically; inputs are never overwritten.
    ``plugin_states`` (``{node name: {effect id: state}}``) are restored into hosted plugins.
    The mix ends in the anti-clipping stage (`plugin_bridge.render.ClipGuard`) unless
    ``float_headroom`` keeps samples beyond 0 dBFS (32-bit float WAV). ``progress`` is called with
    the frames of each block written."""
    guard = ClipGuard.for_output(output, subtype, float_headroom)
    s = session if isinstance(session, Session) else load_session(session)
    out = check_output_path(output, tuple(t.file for t in s.tracks))
    stem_dir = Path(stems_out) if stems_out else None
    if stem_dir is not None:
        stem_dir.mkdir(parents=True, exist_ok=True)
    native = _native_dawdreamer(s, backend)
    if native:  # one native RenderEngine graph, the whole session in one block
        graph = DawDreamerSessionGraph(s)
    else:
        graph = SessionGraph(s, backend, plugin_states)
    frames = graph.length + (graph.tail if tail else 0)
    start = time.perf_counter()
    writers = {}
    if stem_dir is not None:
        for t in graph.sources:
            path = check_output_path(stem_dir / f"{_safe_name(t)}.wav", tuple(x.file for x in s.tracks))
            writers[t] = AtomicAudioWriter(path, graph.sample_rate, 2, subtype)
    mix_writer = AtomicAudioWriter(out, graph.sample_rate, 2, subtype)
    opened = []
    try:
        for w in (mix_writer, *writers.values()):
            opened.append(w.__enter__())
        blocks = (
            graph.blocks(tail, bool(writers), block_size) if native else _blocks(graph, frames, block_size)
        )
        for mix, stems in blocks:
            check_finite_mix(mix, graph.backend.name)
            mix_writer.write(guard(mix))
            for k, w in writers.items():
                w.write(stems[k])
            if progress is not None:
                progress(mix.shape[1])
    except BaseException as e:
        for w in opened:
            w.__exit__(type(e), e, None)
        raise
    for w in opened:
        w.__exit__(None, None, None)
    warning = guard.message(str(out))
    if warning:
        log.warning("%s", warning)
    return SessionResult(
        str(out),
        {k: str(w.path) for k, w in writers.items()},
        graph.sample_rate,
        mix_writer.frames,
        graph.backend.name,
        time.perf_counter() - start,
        graph.latency,
    )
