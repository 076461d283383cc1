"""Block-by-block signals, stores and meters: what lets `master_file` master a file it never holds whole.

A *signal* is anything with ``channels``, ``frames`` and ``blocks()`` (consecutive ``(channels, m)``
blocks of `BLOCK` samples, the last shorter), readable as many times as a stage needs: an array
(`ArraySignal`), a file (`FileSignal`), a block-wise function of another signal (`MappedSignal`) or
a `Store`. A store is a ``(channels, frames)`` float32 signal that can also be written, appended to
and sliced like an array (``store[:, a:b]``): in memory (`MemoryStore`, for `master_array`) or in
a temporary file (`DiskStore`, for `master_file`: a 60-minute stereo song is 1.3 GB on disk and one
block in memory). Both paths cut the signal at the same places, so they compute the same numbers.

Meters, fed block by block: `LoudnessMeter` (ITU-R BS.1770-4 integrated loudness from the power
summed between gating-block edges: one number per 100 ms), `TruePeakMeter` (the 8x-oversampled
true-peak envelope, `plugin_bridge.loudness.true_peak_envelope`, with its 512-tap context carried
across blocks), `SpectrumMeter` (Welch's average spectrum, `plugin_bridge.analysis.average_spectrum`,
frames carried across blocks); and `BlockFIR`, a linear-phase FIR with its delay removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..analysis import average_spectrum, welch_segment
from ..audio_io import inspect_audio, iter_blocks
from ..backends.dsp.fir import fft_convolve, hann_window
from ..loudness import (
    HALF_TAPS,
    KWeighting,
    gated_loudness,
    gating_edges,
    interval_peaks,
    is_shorter_than_block,
    power_to_lufs,
    powers_from_segments,
)

#: Samples per block of every streamed pass (the K-weighting's own block: same numbers as in memory).
BLOCK = 1 << 16


class ArraySignal:
    """A ``(channels, frames)`` array as a signal (blocks are views)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.atleast_2d(array)
        self.channels, self.frames = self.array.shape

    def blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.frames, BLOCK):
            yield self.array[:, start : start + BLOCK]


class FileSignal:
    """An audio file as a signal: float32 blocks read by `plugin_bridge.audio_io.iter_blocks`."""

    def __init__(self, path: str | os.PathLike, downmix: bool = False) -> None:
        info = inspect_audio(path, downmix)
        self.path, self.downmix, self.sample_rate = path, downmix, info.sample_rate
        self.channels, self.frames = min(info.channels, 2), info.frames

    def blocks(self) -> Iterator[np.ndarray]:
        return iter_blocks(self.path, BLOCK, self.downmix)


class MappedSignal:
    """``fn(block)`` of every block of ``source`` (same length; ``channels`` when it changes them)."""

    def __init__(self, source, fn: Callable[[np.ndarray], np.ndarray], channels: int | None = None) -> None:
        self.source, self.fn = source, fn
        self.channels = source.channels if channels is None else channels
        self.frames = source.frames

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self.source.blocks():
            yield self.fn(block)


def to_array(signal) -> np.ndarray:
    """The whole signal as one float32 ``(channels, frames)`` array."""
    if isinstance(signal, MemoryStore):
        return signal.array
    out = np.empty((signal.channels, signal.frames), dtype=np.float32)
    start = 0
    for block in signal.blocks():
        out[:, start : start + block.shape[1]] = block
        start += block.shape[1]
    return out


def read_span(signal, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of a signal as a float32 ``(channels, stop - start)`` array: a view
    of an array signal, else read block by block up to ``stop`` (only that span is kept)."""
    if isinstance(signal, ArraySignal):
        return signal.array[:, start:stop]
    out = np.empty((signal.channels, max(0, stop - start)), dtype=np.float32)
    position = 0
    for block in signal.blocks():
        a, b = position, position + block.shape[1]
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            out[:, lo - start : hi - start] = block[:, lo - a : hi - a]
        position = b
        if position >= stop:
            break
    return out


class MemoryStore(ArraySignal):
    """A float32 store in memory: an array with `append` (and array slicing)."""

    def __init__(self, channels: int, frames: int) -> None:
        super().__init__(np.zeros((channels, frames), dtype=np.float32))
        self.shape = self.array.shape
        self.filled = 0

    def append(self, block: np.ndarray) -> None:
        self.array[:, self.filled : self.filled + block.shape[1]] = block
        self.filled += block.shape[1]

    def __getitem__(self, key):
        return self.array[key]

    def __setitem__(self, key, value) -> None:
        self.array[key] = value


class DiskStore:
    """A float32 store in a file (frames interleaved): written and read a block at a time.

    ``store[:, a:b]`` (also with negative indices and step -1) reads, ``store[:, a:b] = x``
    writes; `append` writes after the last appended frame. The file is removed by `close`.
    """

    def __init__(self, path: str | os.PathLike, channels: int, frames: int) -> None:
        self.path = str(path)
        self.channels, self.frames = channels, frames
        self.shape = (channels, frames)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, 4 * channels * frames)
        self.filled = 0

    def _read(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start) * self.channels
        buf = np.empty(count, dtype=np.float32)
        view, offset, pos = memoryview(buf).cast("B"), 4 * start * self.channels, 0
        while pos < view.nbytes:
            got = os.preadv(self._fd, [view[pos:]], offset + pos)
            if got <= 0:
                raise OSError(f"{self.path}: short read")
            pos += got
        return buf.reshape(-1, self.channels).T

    def _write(self, start: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(np.asarray(block, dtype=np.float32).T)
        view, pos = memoryview(data).cast("B"), 0
        while pos < view.nbytes:
            pos += os.pwritev(self._fd, [view[pos:]], 4 * start * self.channels + pos)

    def _columns(self, key) -> tuple[int, int, int]:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("DiskStore takes [:, slice] only")
        start, stop, step = key[1].indices(self.frames)
        if step not in (1, -1):
            raise TypeError("DiskStore slices step 1 or -1 only")
        return start, stop, step

    def __getitem__(self, key) -> np.ndarray:
        start, stop, step = self._columns(key)
        if step == 1:
            return self._read(start, stop)
        return self._read(stop + 1, start + 1)[:, ::-1]

    def __setitem__(self, key, value) -> None:
        start, stop, step = self._columns(key)
        value = np.broadcast_to(value, (self.channels, len(range(start, stop, step))))
        if step == 1:
            self._write(start, value)
        else:
            self._write(stop + 1, value[:, ::-1])

    def append(self, block: np.ndarray) -> None:
        self._write(self.filled, block)
        self.filled += block.shape[1]

    def blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.frames, BLOCK):
            yield self._read(start, min(start + BLOCK, self.frames))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            os.unlink(self.path)


class LoudnessMeter:
    """ITU-R BS.1770-4 integrated loudness of a signal fed block by block (`plugin_bridge.loudness`'s rules).

    ``process(block)`` K-weights the next block and returns its per-sample power (float32);
    ``add_power(power)`` takes per-sample K-weighted power directly. Only the power summed between
    gating-block edges is kept (one float64 per 100 ms), so ``loudness()`` equals
    `plugin_bridge.loudness.loudness_from_power` of the whole power to float64 rounding.
    """

    def __init__(self, sample_rate: float, channels: int, frames: int) -> None:
        self.sample_rate, self.frames = sample_rate, frames
        self.edges, self.lo, self.hi = gating_edges(frames, sample_rate)
        self.sums = np.zeros(max(0, self.edges.size - 1))
        self.total = 0.0
        self.position = 0
        self._weighting = KWeighting(sample_rate, channels, np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        power = self._weighting.process(block)
        self.add_power(power)
        return power

    def add_power(self, power: np.ndarray) -> None:
        a, b = self.position, self.position + power.shape[0]
        self.position = b
        self.total += float(np.sum(power, dtype=np.float64))
        if not self.sums.size or b == a:
            return
        inner = self.edges[(self.edges > a) & (self.edges < b)] - a
        pieces = np.add.reduceat(power, np.concatenate(([0], inner)), dtype=np.float64)
        index = int(np.searchsorted(self.edges, a, side="right")) - 1 + np.arange(pieces.size)
        keep = (index >= 0) & (index < self.sums.size)
        self.sums[index[keep]] += pieces[keep]

    def ungated(self) -> float:
        """Loudness (LUFS) of the mean power of the whole signal, ungated (`short_loudness`'s rule)."""
        return float(power_to_lufs(self.total / max(1, self.frames)))

    def loudness(self) -> float:
        """Integrated loudness (LUFS): gated, or `ungated` for less than one 400 ms block."""
        if is_shorter_than_block(self.frames, self.sample_rate):
            return self.ungated()
        return gated_loudness(powers_from_segments(self.sums, self.edges, self.lo, self.hi, self.sample_rate))


class TruePeakMeter:
    """The true-peak envelope (`plugin_bridge.loudness.true_peak_envelope`) of a signal fed block by block.

    ``process(block)`` returns the envelope (float32) of the samples whose interpolation context
    (256 samples ahead) has now arrived; ``flush()`` the rest. ``peak`` is the largest value so far
    (linear). The values equal the whole-signal envelope's to float32 rounding of the FFTs.
    """

    def __init__(self, channels: int) -> None:
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._left = 0  # samples of left context at the start of _buf (at most HALF_TAPS - 1)
        self._last = None  # the last interval peak (env[n] = max(group[n - 1], group[n]))
        self.peak = 0.0

    def _envelope(self, group: np.ndarray) -> np.ndarray:
        env = np.empty_like(group)
        if group.size:
            env[0] = group[0] if self._last is None else max(self._last, group[0])
            np.maximum(group[1:], group[:-1], out=env[1:])
            self._last = group[-1]
            self.peak = max(self.peak, float(env.max()))
        return env

    def _run(self, count: int, window: np.ndarray) -> np.ndarray:
        group = interval_peaks(window)[self._left : self._left + count]
        lead = HALF_TAPS - 1
        keep = min(lead, self._left + count)
        self._buf = self._buf[:, self._left + count - keep :]
        self._left = keep
        return self._envelope(group)

    def process(self, block: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate((self._buf, np.asarray(block, dtype=np.float32)), axis=1)
        count = self._buf.shape[1] - self._left - HALF_TAPS
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        return self._run(count, self._buf)

    def flush(self) -> np.ndarray:
        count = self._buf.shape[1] - self._left
        return self._run(count, self._buf) if count > 0 else np.zeros(0, dtype=np.float32)


class SpectrumMeter:
    """Welch's average spectrum (`plugin_bridge.analysis.average_spectrum`) of a signal fed block by block.

    The same segments (`welch_segment` of the whole length, Hann, half overlap) carried across
    blocks; ``result()`` returns ``(freqs_hz, psd)``. Signals shorter than a segment are measured
    whole (zero-padded) by `average_spectrum` itself.
    """

    def __init__(self, sample_rate: float, channels: int, frames: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self.nper = welch_segment(sample_rate, frames)
        self.hop = self.nper // 2
        self.window = hann_window(self.nper)
        self.acc = np.zeros(self.nper // 2 + 1)
        self.count = 0
        self._buf = np.zeros((channels, 0))

    def process(self, block: np.ndarray) -> None:
        self._buf = np.concatenate((self._buf, np.asarray(block, dtype=np.float64)), axis=1)
        m = self._buf.shape[1]
        if m < self.nper:
            return
        count = 1 + (m - self.nper) // self.hop
        for ch in self._buf:
            spec = np.fft.rfft(sliding_window_view(ch, self.nper)[:: self.hop][:count] * self.window, axis=1)
            self.acc += np.sum(spec.real**2 + spec.imag**2, axis=0)
        self.count += count
        self._buf = self._buf[:, count * self.hop :]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count == 0:
            return average_spectrum(self._buf, self.sample_rate)
        w2 = np.sum(self.window**2)
        psd = self.acc / (self.sample_rate * w2 * self.count * self.channels)
        psd[1 : (self.nper + 1) // 2] *= 2.0
        return np.fft.rfftfreq(self.nper, 1.0 / self.sample_rate), psd


class BlockFIR:
    """A linear-phase FIR ``h`` with its delay ``(len(h) - 1) / 2`` removed, block by block (float64).

    ``process(block)`` returns the output that is complete so far, ``flush()`` the rest: in all,
    as many samples as went in (`plugin_bridge.mastering.reference.apply_fir`, by overlap-add).
    """

    def __init__(self, h: np.ndarray, channels: int) -> None:
        self.h = np.asarray(h, dtype=np.float64)
        self._tail = np.zeros((channels, self.h.shape[0] - 1))
        self._skip = (self.h.shape[0] - 1) // 2
        self._pending = 0  # input samples whose output is not yet returned

    def _emit(self, y: np.ndarray) -> np.ndarray:
        k = min(self._skip, y.shape[1])
        self._skip -= k
        return y[:, k:]

    def process(self, block: np.ndarray) -> np.ndarray:
        m = block.shape[1]
        y = fft_convolve(block, self.h)
        y[:, : self._tail.shape[1]] += self._tail
        self._tail = y[:, m:]
        self._pending += m
        out = self._emit(y[:, :m])
        self._pending -= out.shape[1]
        return out

    def flush(self) -> np.ndarray:
        out = self._emit(self._tail)[:, : self._pending]
        self._pending = 0
        return out


class FilteredSignal:
    """``source`` through a `BlockFIR` ``h`` (float64 blocks of `BLOCK` samples, the FIR's delay removed)."""

    def __init__(self, source, h: np.ndarray) -> None:
        self.source, self.h = source, h
        self.channels, self.frames = source.channels, source.frames

    def blocks(self) -> Iterator[np.ndarray]:
        fir, pending = BlockFIR(self.h, self.channels), np.zeros((self.channels, 0))
        for block in self.source.blocks():
            pending = np.concatenate((pending, fir.process(block)), axis=1)
            while pending.shape[1] >= BLOCK:
                yield pending[:, :BLOCK]
                pending = pending[:, BLOCK:]
        pending = np.concatenate((pending, fir.flush()), axis=1)
        for start in range(0, pending.shape[1], BLOCK):
            yield pending[:, start : start + BLOCK]
