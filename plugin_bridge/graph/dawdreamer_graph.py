"""Render a `Session` through ONE DawDreamer ``RenderEngine`` graph (the native-graph path).

`render_session_dawdreamer` builds the whole session as a DawDreamer processor graph and renders it
in one call, instead of `plugin_bridge.graph.executor`'s Python executor running one engine per node. The
graph (DawDreamer processor names in brackets; ``i`` is a node's index in the session order)::

    track:  [src_i] playback (1 or 2 ch, resampled/padded as the mixer does)
              -> [node_i] Faust: polarity : chain : fader*pan  -> 2 ch post-fader
                                                  (+ 2 ch pre-fader, i.e. 4 ch, if it has pre-fader sends)
    edge:   [edge_i_k] Faust, only when needed: picks the post or pre pair and delays it @(D)
            (latency compensation); a 2-ch node with D = 0 feeds its bus directly
    bus:    [sum_i] add processor (gain levels = send levels, 1 for outputs) over its edges
              -> [node_i] Faust: polarity : chain : fader*pan
    master: [sum_m] -> [node_m] (master chain, fader, pan), last in the graph

``chain`` is `faust_codegen.chain_program`'s program, with its ``process`` renamed; the pan law is
`signal_flow.track_pan_gains` on the chain's output channel count (constant power for mono, balance for
stereo). Latency compensation is planned exactly as `executor.SessionGraph` does (`plan_session`):
every input of a bus arrives as late as the latest; the master's total latency is trimmed off the
front of the mix and each track's own latency off its stem. Muted tracks and buses without any
sounding input are left out of the graph (their output is silence) but still count for latency, as
in the mixer. Stems are the tracks' post-fader outputs, read back from the recorded node outputs.

Memory: DawDreamer renders whole buffers, so the WHOLE session is held in memory while it renders:
every stem's playback copy (4 bytes x channels x n; our own copy is dropped as soon as DawDreamer has
taken it) plus the recorded output of the master and, with ``stems=True``, of every track node (8 x n
bytes each; 16 for tracks with pre-fader sends). After the render the playback copies are released;
each output read back is one more copy (``get_audio`` copies) until the engine is dropped.
`render_session_dawdreamer` returns every stem, so it peaks at about twice the recorded outputs;
`DawDreamerSessionGraph.blocks` (the file writer's path) reads one output back at a time. Measured,
8 stereo stems x 182 s at 44.1 kHz: 0.81 GB peak RSS for the mix alone, 1.34 GB writing mix + 8
stems, 1.42 GB returning them all in memory (the Python executor: 1.11 GB either way). Long or
high-rate sessions are better rendered by the streaming backends (pedalboard, numpy).

DawDreamer traps handled (see `plugin_bridge.backends.dawdreamer_engine`): every processor is
created and compiled before ``load_graph``; the engine is built (and rendered) in the one thread
that owns DawDreamer (`claim_build_thread`); the FPU environment is reset before compiling; the
programs run in float32 with ``-ftz 2``; we render ``(n + 0.5) / sample_rate`` seconds (DawDreamer
truncates ``seconds * sample_rate``) and check the length.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio_io import DEFAULT_BLOCK, inspect_audio
from ..backends import get_backend
from ..backends.dawdreamer_engine import FAUST_FLAGS, claim_build_thread
from ..backends.faust_codegen import FaustProgram, chain_program, faust_number
from ..effects import clamp_to_sample_rate
from ..errors import BackendError, PluginBridgeError
from ..plugins.fpu import reset_fpu_environment
from ..session import MASTER, Session, SessionError, load_session
from .signal_flow import (
    StemSource,
    check_finite_mix,
    node_latencies,
    session_sample_rate,
    session_tail_frames,
    stem_frames,
    track_pan_gains,
)

log = logging.getLogger(__name__)

#: Frames DawDreamer processes per internal block.
BLOCK_SIZE = 512


# --------------------------------------------------------------------------------------------
# Planning (pure: reads file headers, compiles nothing)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendEdge:
    """One connection into a bus: from ``source``, pre- or post-fader, at linear ``gain``, delayed
    ``delay`` samples so it arrives with the bus's other inputs."""

    source: str
    target: str
    gain: float
    delay: int
    pre_fader: bool


@dataclass(frozen=True)
class SessionPlan:
    """Everything about a session render that does not need audio: rate, lengths, chain programs,
    latencies and the latency-compensated edges (in the mixer's summing order)."""

    session: Session
    sample_rate: int
    length: int
    tail: int
    channels: dict[str, int]
    programs: dict[str, FaustProgram]
    own: dict[str, int]
    total: dict[str, int]
    edges: tuple[SendEdge, ...]

    @property
    def latency(self) -> int:
        """Samples of latency at the master's output (trimmed off the front of the mix)."""
        return self.total[MASTER]

    def frames(self, tail: bool = True) -> int:
        """Output frames: the longest stem, plus the effect tails when ``tail``."""
        return self.length + (self.tail if tail else 0)


def _db(db: float) -> float:
    return 10.0 ** (db / 20.0)


def plan_session(session: Session) -> SessionPlan:
    """Plan ``session`` for the native graph: one Faust chain program per node, latencies, edges.

    Channels into a chain: a sounding track's file channels; 1 for a silent track (as the mixer);
    2 for buses and the master. Raises `SessionError` when a chain cannot be expressed in Faust.
    """
    sr = session_sample_rate(session)
    audible = {t.name for t in session.audible_tracks}
    channels: dict[str, int] = {}
    programs: dict[str, FaustProgram] = {}
    for name in session.order:
        node = session.node(name)
        if node.is_track:
            channels[name] = inspect_audio(node.file).channels if name in audible else 1
        else:
            channels[name] = 2
        fx = [clamp_to_sample_rate(e, sr) for e in node.effects]
        try:
            programs[name] = chain_program(fx, sr, channels[name])
        except PluginBridgeError as e:
            raise SessionError(f"{session.source}: {name!r}: {e}") from None
    own = {n: p.latency for n, p in programs.items() if session.node(n).effects}
    total = node_latencies(session, own)

    def arrival(bus: str) -> int:
        return total[bus] - own.get(bus, 0)

    edges = []
    for name in session.order:
        node = session.node(name)
        for s in node.sends:
            edges.append(SendEdge(name, s.bus, _db(s.level_db), arrival(s.bus) - total[name], s.pre_fader))
        if node.output:
            edges.append(SendEdge(name, node.output, 1.0, arrival(node.output) - total[name], False))
    length = max(stem_frames(t, sr) for t in session.tracks)
    return SessionPlan(
        session, sr, length, session_tail_frames(session, sr), channels, programs, own, total, tuple(edges)
    )


# --------------------------------------------------------------------------------------------
# Faust code of the graph's processors
# --------------------------------------------------------------------------------------------


def node_code(program: FaustProgram, pan: float, gain_db: float, invert: bool, pre_fader: bool) -> str:
    """The Faust program of a track/bus node: polarity : chain : fader and pan.

    Outputs the post-fader stereo pair and, when ``pre_fader``, the pre-fader (panned, no fader)
    pair after it. The chain is ``program`` itself with its ``process`` renamed ``chain``.
    """
    head, sep, body = program.code.rpartition("\nprocess = ")
    if not sep or "\nprocess = " in head or "\nchain = " in program.code:
        raise BackendError("dawdreamer: unexpected chain program layout (one 'process = ' line expected)")
    gl, gr = track_pan_gains(pan, program.out_channels)
    g = _db(gain_db)
    gains = [g * gl, g * gr] + ([gl, gr] if pre_fader else [])
    c = program.in_channels
    polarity = ("*(-1.0)" if c == 1 else f"par(i, {c}, *(-1.0))") + " : " if invert else ""
    outs = ", ".join(f"*({faust_number(x)})" for x in gains)
    return f"{head}\nchain = {body}\nprocess = {polarity}chain <: ({outs});\n"


def edge_code(node_outputs: int, pre_fader: bool, delay: int) -> str:
    """Faust program taking a node's outputs (2, or 4 = post + pre) to one delayed stereo pair."""
    d = "_" if delay <= 0 else f"@({int(delay)})"
    pair = f"{d}, {d}"
    if node_outputs == 2:
        return f"process = {pair};\n"
    return f"process = {'!, !, ' + pair if pre_fader else pair + ', !, !'};\n"


# --------------------------------------------------------------------------------------------
# The render
# --------------------------------------------------------------------------------------------


def _faust(engine, name: str, code: str):

    proc = engine.make_faust_processor(name)
    reset_fpu_environment()
    try:
        proc.compile_flags = list(FAUST_FLAGS)
        proc.set_dsp_string(code)
        ok = proc.compile()
    except RuntimeError as e:
        raise BackendError(f"dawdreamer: a generated Faust program does not compile ({name}): {e}") from None
    if not ok:
        raise BackendError(f"dawdreamer: a generated Faust program does not compile ({name})")
    return proc


def _live_nodes(session: Session) -> set[str]:
    """Nodes that can carry sound: sounding tracks and buses with at least one live input."""
    live = {t.name for t in session.audible_tracks}
    incoming: dict[str, list[str]] = {}
    for a, b in session.edges():
        incoming.setdefault(b, []).append(a)
    for name in session.order:
        if not session.node(name).is_track and any(a in live for a in incoming.get(name, [])):
            live.add(name)
    return live


def render_session_dawdreamer(
    session: Session | str | os.PathLike, tail: bool = True, stems: bool = True
) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
    """Render ``session`` through one DawDreamer graph: ``(mix (2, n) float32, sample_rate,
    {track: processed stem (2, n) float32})``, the same as `mixer.render_session_array`.

    The whole session is held in memory (DawDreamer renders whole buffers; see the module
    docstring). ``stems=False`` skips recording the track outputs (returns ``{}``), saving
    ``8 * n`` bytes per track. Must run in the thread that owns DawDreamer (the first one that
    built an engine in this process); raises `BackendError` otherwise.
    """
    s = session if isinstance(session, Session) else load_session(session)
    return render_plan(plan_session(s), tail, stems)


def render_plan(
    plan: SessionPlan, tail: bool = True, stems: bool = True
) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
    """Build the DawDreamer graph of a planned session and render it (see `render_session_dawdreamer`)."""
    rendered = RenderedSession(plan, tail, stems)
    mix = rendered.mix()
    out = {t: rendered.stem(t) for t in rendered.stem_names}
    return mix, plan.sample_rate, out


class DawDreamerSessionGraph:
    """Stand-in for `executor.SessionGraph` in `mixer.render_session`: the same planning attributes
    (``sample_rate``, ``length``, ``tail``, ``latency``, ``total``, ``sources``, ``backend``),
    nothing compiled until `blocks` renders the whole session."""

    def __init__(self, session: Session):

        self.session = session
        self.backend = get_backend("dawdreamer")  # a clear BackendError when it is not installed
        self.plan = plan_session(session)
        self.sample_rate = self.plan.sample_rate
        self.length, self.tail, self.latency = self.plan.length, self.plan.tail, self.plan.latency
        self.total = self.plan.total
        self.sources = {t.name: None for t in session.audible_tracks}

    def blocks(
        self, tail: bool = True, stems: bool = True, block_size: int = DEFAULT_BLOCK
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Render the whole session, then yield ``(mix, {track: stem})`` blocks for
        `mixer.render_session`'s writer loop: first the mix in ``block_size`` views (every stem
        block empty), then each stem in turn (mix and other stems empty). One output is read back
        from DawDreamer at a time, so only one copy of one output exists besides DawDreamer's
        recordings. Consumers must skip empty (``(2, 0)``) blocks, as `AtomicAudioWriter` does."""
        rendered = RenderedSession(self.plan, tail, stems)
        empty = np.zeros((2, 0), np.float32)
        names = rendered.stem_names
        mix = rendered.mix()
        for a in range(0, mix.shape[1], block_size):
            yield mix[:, a : a + block_size], dict.fromkeys(names, empty)
        del mix
        for name in names:
            stem = rendered.stem(name)
            for a in range(0, stem.shape[1], block_size):
                yield empty, {k: stem[:, a : a + block_size] if k == name else empty for k in names}
            del stem


class RenderedSession:
    """A session built as one DawDreamer graph and rendered; `mix` and `stem` read the outputs back.

    Holds the engine (and its recorded outputs) until it is garbage collected.
    """

    def __init__(self, plan: SessionPlan, tail: bool = True, stems: bool = True):

        get_backend("dawdreamer")  # a clear BackendError when dawdreamer is not installed
        import dawdreamer

        s = plan.session
        self.plan = plan
        self.frames = plan.frames(tail)
        self.n_total = self.frames + plan.latency
        live = _live_nodes(s)
        self.silent = MASTER not in live  # nothing sounds: no graph at all
        self.stem_names = tuple(t.name for t in s.audible_tracks) if stems else ()
        self._index = {name: i for i, name in enumerate(s.order)}
        self._engine = None
        if self.silent:
            return
        sr, n_total, index = plan.sample_rate, self.n_total, self._index
        claim_build_thread()
        t0 = time.perf_counter()
        t_read = 0.0
        engine = dawdreamer.RenderEngine(float(sr), BLOCK_SIZE)
        pre_sends = {n: any(x.pre_fader for x in s.node(n).sends) for n in s.order}
        graph: list[tuple[object, list[str]]] = []
        playbacks = []
        for name in s.order:
            if name not in live:
                continue
            node, i = s.node(name), index[name]
            if node.is_track:
                t = time.perf_counter()
                data = StemSource(node, sr).read(n_total)
                playbacks.append((engine.make_playback_processor(f"src{i}", data), data.shape[0]))
                del data  # DawDreamer keeps its own copy
                t_read += time.perf_counter() - t
                inputs = [f"src{i}"]
                graph.append((playbacks[-1][0], []))
            else:
                names, gains = [], []
                for k, e in enumerate(plan.edges):
                    if e.target != name or e.source not in live:
                        continue
                    src = f"node{index[e.source]}"
                    if pre_sends[e.source] or e.pre_fader or e.delay > 0:
                        code = edge_code(4 if pre_sends[e.source] else 2, e.pre_fader, e.delay)
                        graph.append((_faust(engine, f"edge{i}_{k}", code), [src]))
                        src = f"edge{i}_{k}"
                    names.append(src)
                    gains.append(float(e.gain))
                graph.append((engine.make_add_processor(f"sum{i}", gains), names))
                inputs = [f"sum{i}"]
            code = node_code(plan.programs[name], node.pan, node.gain_db, node.invert, pre_sends[name])
            try:
                proc = _faust(engine, f"node{i}", code)
            except BackendError as e:
                raise SessionError(f"{s.source}: {name!r}: {e}") from None
            proc.record = name == MASTER or name in self.stem_names
            graph.append((proc, inputs))
        if not engine.load_graph(graph):
            raise BackendError("dawdreamer: could not load the session graph")
        t1 = time.perf_counter()
        if not engine.render((n_total + 0.5) / sr):
            raise BackendError("dawdreamer: session render failed")
        t2 = time.perf_counter()
        for pb, ch in playbacks:  # release the playback copies (set_data frees them) before reading back
            pb.set_data(np.zeros((ch, 1), np.float32))
        self._engine = engine
        log.debug(
            "dawdreamer session graph: %d processors; read %.2f s, build %.2f s, render %.2f s",
            len(graph),
            t_read,
            t1 - t0 - t_read,
            t2 - t1,
        )

    def _take(self, name: str, skip: int) -> np.ndarray:
        if self.silent:
            return np.zeros((2, self.frames), np.float32)
        rec = self._engine.get_audio(f"node{self._index[name]}")  # a copy of the recorded output
        if rec.shape[0] < 2 or rec.shape[1] < self.n_total:
            raise BackendError(
                f"dawdreamer: {name!r} rendered shape {rec.shape}, expected (2, {self.n_total})"
            )
        return np.ascontiguousarray(rec[:2, skip : skip + self.frames], dtype=np.float32)

    def mix(self) -> np.ndarray:
        """The master output ``(2, frames)`` float32, its latency trimmed; `BackendError` if not finite."""
        mix = self._take(MASTER, self.plan.latency)
        check_finite_mix(mix, "dawdreamer")
        return mix

    def stem(self, track: str) -> np.ndarray:
        """A sounding track's post-fader output ``(2, frames)`` float32, its own latency trimmed."""
        if track not in self.stem_names:
            raise KeyError(f"no recorded stem for track {track!r}")
        return self._take(track, self.plan.total[track])
