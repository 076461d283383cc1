"""Input checks and repairs: clipping (runs of identical full-scale samples) and DC offset removal.

DC is removed by a zero-phase (forward-backward) 2nd-order Butterworth high-pass at 5 Hz
(`remove_dc`), computed in place block by block (`filtfilt_inplace`), so only content below about
10 Hz changes and transients keep their shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.dsp.filters import butterworth_highpass_sos, sos_filter, sos_steady_state


@dataclass(frozen=True)
class Clipping:
    """Runs of identical full-scale samples: how many runs, the longest (samples), samples in runs."""

    runs: int
    longest: int
    samples: int


def detect_clipping(audio: np.ndarray, min_run: int = 4, level: float = 0.999) -> Clipping:
    """Find clipping: runs of at least ``min_run`` consecutive identical samples with ``|x| >= level``.

    ``level`` is linear (0.999 = -0.009 dBFS). Identical values are what a clipper leaves; an
    unclipped waveform passing near full scale changes from sample to sample.
    """
    x = np.atleast_2d(np.asarray(audio))
    runs = longest = samples = 0
    for ch in x:
        loud = np.flatnonzero((ch >= level) | (ch <= -level))  # few: only these can be clipped
        loud = loud[loud > 0]
        same = loud[ch[loud] == ch[loud - 1]]  # sample i full scale and equal to sample i - 1
        if not same.size:
            continue
        breaks = np.flatnonzero(np.diff(same) != 1)  # consecutive i make one run of len + 1 samples
        lengths = np.diff(np.concatenate(([0], breaks + 1, [same.size]))) + 1
        lengths = lengths[lengths >= min_run]
        runs += int(lengths.size)
        samples += int(lengths.sum())
        longest = max(longest, int(lengths.max()) if lengths.size else 0)
    return Clipping(runs, longest, samples)


class ClippingCounter:
    """`detect_clipping` block by block: runs that cross a block boundary are carried into the next block."""

    def __init__(self, channels: int, min_run: int = 4, level: float = 0.999) -> None:
        self.min_run, self.level = min_run, level
        self._prev = np.full(channels, np.nan, dtype=np.float32)  # the last sample of the previous block
        self._open = np.zeros(channels, dtype=np.int64)  # repeats in the run reaching the block's end
        self.runs = self.longest = self.samples = 0

    def _close(self, repeats: np.ndarray) -> None:
        lengths = repeats[repeats + 1 >= self.min_run] + 1  # a run of k repeats is k + 1 samples
        if lengths.size:
            self.runs += int(lengths.size)
            self.samples += int(lengths.sum())
            self.longest = max(self.longest, int(lengths.max()))

    def process(self, block: np.ndarray) -> None:
        for c, ch in enumerate(np.atleast_2d(block)):
            loud = np.flatnonzero((ch >= self.level) | (ch <= -self.level))
            before = np.where(loud > 0, ch[np.maximum(loud - 1, 0)], self._prev[c])
            same = loud[ch[loud] == before]  # equal to the sample before (NaN: no sample before)
            self._prev[c] = ch[-1] if ch.size else self._prev[c]
            if not same.size:
                self._close(self._open[c : c + 1])
                self._open[c] = 0
                continue
            breaks = np.flatnonzero(np.diff(same) != 1) + 1
            repeats = np.diff(np.concatenate(([0], breaks, [same.size])))
            if same[0] == 0:
                repeats[0] += self._open[c]
            else:
                self._close(self._open[c : c + 1])
            self._open[c] = 0
            if same[-1] == ch.size - 1:
                self._open[c], repeats = repeats[-1], repeats[:-1]
            self._close(repeats)

    def result(self) -> Clipping:
        """The runs counted, including those still open at the end."""
        self._close(self._open)
        self._open[:] = 0
        return Clipping(self.runs, self.longest, self.samples)


def remove_dc(audio: np.ndarray, sample_rate: float, cutoff_hz: float = 5.0) -> np.ndarray:
    """Remove DC: subtract each channel's mean, then a zero-phase 2nd-order Butterworth high-pass at ``cutoff_hz``.

    Zero-phase (forward-backward) so transients keep their shape; only content below about 10 Hz
    changes. Returns float64 (`filtfilt_inplace`: scipy's ``sosfiltfilt``, computed in place).
    """
    x = np.array(np.atleast_2d(audio), dtype=np.float64)
    x -= x.mean(axis=1, keepdims=True)
    if x.shape[1] <= 30:
        return x
    return filtfilt_inplace(butterworth_highpass_sos(sample_rate, cutoff_hz), x)


def remove_dc_into(source, sample_rate: float, means: np.ndarray, store, cutoff_hz: float = 5.0):
    """`remove_dc` of a signal (`plugin_bridge.mastering.streaming`) into a float32 ``store``; returns the store.

    ``means`` are the channels' means (measured beforehand, float64). The forward-backward
    filter runs in place in the store (`filtfilt_inplace`), so its intermediate values are
    float32 (not float64 as in `remove_dc`: the two differ by float32 rounding, ~1e-7 of full scale).
    """
    offset = np.asarray(means, dtype=np.float64)[:, None]
    for block in source.blocks():
        store.append(block - offset)
    if store.shape[1] > 30:
        filtfilt_inplace(butterworth_highpass_sos(sample_rate, cutoff_hz), store)
    return store


def filtfilt_inplace(sos: np.ndarray, x: np.ndarray, block: int = 1 << 15) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=1)`` (default odd padding), written over float64 ``x``.

    The same numbers (the same recursions on the same values, with the state carried from block to
    block), but ``block`` samples at a time in place instead of several full-length copies (for a
    3-minute song the fresh memory costs more than the filtering). ``x`` is ``(channels, samples)``
    with more samples than the padding (``3 (2 sections + 1)``). Returns ``x``.
    """
    sections = sos.shape[0]
    pad = 3 * (2 * sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    n = x.shape[1]
    if n <= pad:
        raise ValueError(f"filtfilt_inplace: {n} samples, need more than {pad}")
    zi = sos_steady_state(sos)[:, None, :]

    def run(signal: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Filter along the last axis from ``state``, by default scipy's steady state for the first sample."""
        if state is None:
            state = zi * signal[:, :1]
        return sos_filter(sos, signal, state)

    right = 2.0 * x[:, -1:] - x[:, -2 : -pad - 2 : -1]  # scipy's odd extension at both ends
    _, z = run(2.0 * x[:, :1] - x[:, pad:0:-1])
    for start in range(0, n, block):
        y, z = run(x[:, start : start + block], z)
        x[:, start : start + block] = y
    tail, _ = run(right, z)
    _, z = run(tail[:, ::-1])
    for stop in range(n, 0, -block):
        start = max(0, stop - block)
        y, z = run(x[:, start:stop][:, ::-1], z)
        x[:, start:stop] = y[:, ::-1]
    return x
