"""Render a `Session` graph: tracks -> buses (sends) -> master, streaming in blocks, latency-compensated.

Stems are read in lockstep, block by block: shorter stems are padded with silence up to the longest
(and through the effect tails), stems at another sample rate are resampled on the fly with soxr's
"HQ" (high-quality, linear-phase) streaming resampler, mono stems are panned into stereo.

Latency compensation: every node's chain reports its latency; at each bus the inputs are delayed so
they all arrive as late as the latest, and the master's total latency is trimmed off the front of the
mix. A track with a look-ahead limiter therefore stays sample-aligned with the others.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_io import DEFAULT_BLOCK, AtomicAudioWriter, check_output_path, inspect_audio, iter_blocks
from .backends import Backend, get_backend
from .backends.dsp import PlainDelay, pan_gains
from .errors import AudioError, BackendError, PluginBridgeError
from .render import chain_tail_frames, prepare_processor
from .session import MASTER, Node, Session, SessionError, load_session


def track_pan_gains(pan: float, channels: int) -> tuple[float, float]:
    """Left/right gains of a track's pan: constant-power sin/cos for mono (-3 dB each at centre),
    balance normalised to unity at centre for stereo (see `plugin_bridge.session`)."""
    if channels == 1:
        t = (pan + 1.0) * math.pi / 4.0
        return math.cos(t), math.sin(t)
    return pan_gains(pan)


def pan_to_stereo(x: np.ndarray, pan: float, gain: float = 1.0) -> np.ndarray:
    """``(1 or 2, n)`` audio panned to ``(2, n)`` by `track_pan_gains`, times a linear ``gain``.

    Keeps the input's dtype (float32 in the mixer)."""
    gl, gr = track_pan_gains(pan, x.shape[0])
    gain = x.dtype.type(gain)
    if x.shape[0] == 1:
        return np.vstack((x * x.dtype.type(gain * gl), x * x.dtype.type(gain * gr)))
    if gl == gr == 1.0:
        return x * gain if gain != 1.0 else x
    return np.vstack((x[0:1] * x.dtype.type(gain * gl), x[1:2] * x.dtype.type(gain * gr)))


class StemSource:
    """A stem file read in blocks of any size: resampled if needed, silence after its end."""

    def __init__(self, track: Node, sample_rate: int):
        self.frames = stem_frames(track, sample_rate)
        info = inspect_audio(track.file)
        self.name = track.name
        self.channels = info.channels
        self._blocks = iter_blocks(track.file)
        self._resampler = None
        if info.sample_rate != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(
                info.sample_rate, sample_rate, info.channels, "float32", "HQ"
            )
        self._fifo: list[np.ndarray] = []
        self._have = 0
        self._done = False

    def _pull(self) -> None:
        try:
            block = next(self._blocks)
        except StopIteration:
            self._done = True
            if self._resampler is None:
                return
            block = self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True).T
        except AudioError as e:
            raise AudioError(f"track {self.name!r}: {e}") from None
        else:
            if self._resampler is not None:
                block = self._resampler.resample_chunk(np.ascontiguousarray(block.T), last=False).T
        if block.shape[1]:
            self._fifo.append(np.ascontiguousarray(block, dtype=np.float32))
            self._have += block.shape[1]

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` frames as ``(channels, n)`` float32 (zeros once the file has ended)."""
        while self._have < n and not self._done:
            self._pull()
        out = np.zeros((self.channels, n), dtype=np.float32)
        filled = 0
        while filled < n and self._fifo:
            head = self._fifo[0]
            take = min(n - filled, head.shape[1])
            out[:, filled : filled + take] = head[:, :take]
            filled += take
            if take == head.shape[1]:
                self._fifo.pop(0)
            else:
                self._fifo[0] = head[:, take:]
        self._have -= filled
        return out


def stem_frames(track: Node, sample_rate: int) -> int:
    """Length of a track's stem in frames at ``sample_rate`` (after resampling)."""
    try:
        info = inspect_audio(track.file)
    except AudioError as e:
        raise AudioError(f"track {track.name!r}: {e}") from None
    return math.ceil(info.frames * sample_rate / info.sample_rate)


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


def node_latencies(session: Session, own: Mapping[str, int]) -> dict[str, int]:
    """Total latency (samples) at each node's output: inputs aligned to the latest arrival, plus the
    node's ``own`` chain latency (missing names count 0)."""
    total: dict[str, int] = {}
    incoming: dict[str, list[str]] = {}
    for a, b in session.edges():
        incoming.setdefault(b, []).append(a)
    for name in session.order:
        arrival = max((total[a] for a in incoming.get(name, [])), default=0)
        total[name] = arrival + int(own.get(name, 0))
    return total


def session_tail_frames(session: Session, sample_rate: int) -> int:
    """Frames of tail after the longest stem: the longest track tail + the longest bus tail + the
    master's."""
    tails = {n: chain_tail_frames(session.node(n).effects, sample_rate) for n in session.order}
    track_tail = max((tails[t.name] for t in session.tracks), default=0)
    bus_tail = max((tails[b.name] for b in session.buses), default=0)
    return track_tail + bus_tail + tails[MASTER]


def session_sample_rate(session: Session) -> int:
    """The session's sample rate, or the first track's."""
    if session.sample_rate is not None:
        return int(session.sample_rate)
    return int(inspect_audio(session.tracks[0].file).sample_rate)


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

    def process(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Render the next ``n`` frames: the master block ``(2, n)`` and each audible track's stem."""
        acc = {b.name: np.zeros((2, n), dtype=np.float32) for b in (*self.session.buses, self.session.master)}
        stems = {}
        master_out = acc[MASTER]
        for name in self.session.order:
            node = self.session.node(name)
            if node.is_track:
                if name not in self.sources:
                    continue
                x = self.sources[name].read(n)
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
        from .dawdreamer_session import render_session_dawdreamer

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


def check_finite_mix(x: np.ndarray, backend: str) -> None:
    """Raise `BackendError` if a rendered mix holds NaN or Inf."""
    if not np.isfinite(x).all():
        raise BackendError(f"backend {backend!r} produced non-finite samples (NaN/Inf) in the mix")


def render_session(
    session: Session | str | os.PathLike,
    output: str | os.PathLike,
    stems_out: str | os.PathLike | None = None,
    backend: str | Backend = "auto",
    tail: bool = True,
    subtype: str | None = None,
    block_size: int = DEFAULT_BLOCK,
    plugin_states: Mapping[str, Mapping[str, dict]] | None = None,
) -> SessionResult:
    """Render a session file (or `Session`) to a stereo mix file, and each processed track to
    ``stems_out/<track>.wav`` when given. Files are written atomically; inputs are never overwritten.
    ``plugin_states`` (``{node name: {effect id: state}}``) are restored into hosted plugins."""
    s = session if isinstance(session, Session) else load_session(session)
    out = check_output_path(output, tuple(t.file for t in s.tracks))
    stem_dir = Path(stems_out) if stems_out else None
    if stem_dir is not None:
        stem_dir.mkdir(parents=True, exist_ok=True)
    native = _native_dawdreamer(s, backend)
    if native:  # one native RenderEngine graph, the whole session in one block
        from .dawdreamer_session import DawDreamerSessionGraph

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
            mix_writer.write(mix)
            for k, w in writers.items():
                w.write(stems[k])
    except BaseException as e:
        for w in opened:
            w.__exit__(type(e), e, None)
        raise
    for w in opened:
        w.__exit__(None, None, None)
    return SessionResult(
        str(out),
        {k: str(w.path) for k, w in writers.items()},
        graph.sample_rate,
        mix_writer.frames,
        graph.backend.name,
        time.perf_counter() - start,
        graph.latency,
    )
