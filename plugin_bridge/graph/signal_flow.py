"""What every session executor shares: the pan law, stem sources, latency and tail planning.

The Python executor (`plugin_bridge.graph.executor`) and the native DawDreamer graph
(`plugin_bridge.graph.dawdreamer_graph`) both build on these, so a session sounds the same on either;
the exported DawDreamer script (`plugin_bridge.export.dawdreamer_script`) plans with them too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..audio_io import inspect_audio, iter_blocks
from ..backends.dsp import pan_gains
from ..errors import AudioError, BackendError
from ..render import chain_tail_frames
from ..session import MASTER, Node, Session


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


def check_finite_mix(x: np.ndarray, backend: str) -> None:
    """Raise `BackendError` if a rendered mix holds NaN or Inf."""
    if not np.isfinite(x).all():
        raise BackendError(f"backend {backend!r} produced non-finite samples (NaN/Inf) in the mix")
