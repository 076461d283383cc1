"""Zero-latency streaming FFT convolution of one input with one or more long impulse responses.

Uniformly partitioned overlap-add on two levels. The impulse responses are cut into partitions of
``P`` samples whose spectra (FFT size 2P) are computed once; the input into frames of ``P``. With
``X_j`` the spectrum of input frame ``j`` and ``H_k`` that of partition ``k``, the product
``X_j H_k`` lands on output frames ``j+k`` and ``j+k+1``.

- The tail level (partitions ``k >= 1``) only needs complete frames: when frame ``m`` completes,
  ``W_{m+1} = sum_{k>=1} X_{m+1-k} H_k`` gives everything frame ``m+1`` receives from the past.
- The head (the first ``P`` samples of the responses) must answer within the frame being filled. It
  is itself a uniformly partitioned convolver with small partitions ``p``, whose own first partition
  is evaluated on the partial frame (directly for a few samples, by an FFT of 2p otherwise).

So the output is exact at every sample whatever the block sizes, and runs of complete frames are
batched into one set of FFTs. Cost per sample: about 6 real FFTs of sizes 2p and 2P amortised, plus
one complex multiply-add per partition and output.
"""

from __future__ import annotations

import math

import numpy as np

#: Below this many multiply-adds a partial frame is convolved directly instead of by FFT.
_DIRECT_MAX = 1 << 15
#: Complete frames are batched up to about this many samples per set of FFTs (cache-friendly).
_BATCH_SAMPLES = 1 << 16


def choose_partition(ir_length: int) -> int:
    """Tail-level partition size (samples, a power of two) for an ``ir_length``-sample response."""
    target = math.sqrt(max(ir_length, 1) * 2048.0)
    return int(min(32768, max(1024, 2 ** math.ceil(math.log2(target)))))


def _partition_spectra(irs: np.ndarray, p: int) -> np.ndarray:
    """Spectra (FFT size 2p) of the ``p``-sample partitions of ``irs``: ``(outputs, K, p + 1)``."""
    outputs, length = irs.shape
    k = max(1, -(-length // p))
    parts = np.zeros((outputs, k * p))
    parts[:, :length] = irs
    return np.fft.rfft(parts.reshape(outputs, k, p), n=2 * p, axis=-1)


def _mac(xall: np.ndarray, h: np.ndarray, first: int, last: int, offset: int, nj: int) -> np.ndarray:
    """``Z[o, j] = sum_{k=first}^{last-1} xall[offset + j - k] * h[o, k]`` for j < nj (in place)."""
    z = np.zeros((h.shape[0], nj, h.shape[2]), dtype=complex)
    tmp = np.empty((nj, h.shape[2]), dtype=complex)
    for o in range(h.shape[0]):
        for k in range(first, last):
            np.multiply(xall[offset - k : offset - k + nj], h[o, k], out=tmp)
            z[o] += tmp
    return z


class _Head:
    """Uniformly partitioned convolver (partition ``p``) answering within the partial frame."""

    def __init__(self, irs: np.ndarray, p: int) -> None:
        self.outputs = irs.shape[0]
        self.p = p
        self._h = _partition_spectra(irs, p)
        self.parts = self._h.shape[1]
        self._h0 = np.zeros((self.outputs, p))
        n0 = min(p, irs.shape[1])
        self._h0[:, :n0] = irs[:, :n0]
        self._hist = np.zeros((self.parts - 1, p + 1), dtype=complex)  # X_{m-K+1} .. X_{m-1}
        self._cur = np.zeros(p)
        self._fill = 0
        self._spill = np.zeros((self.outputs, p))  # second half of irfft(Z_{m-1})
        self._w = None  # W_m and the frame's known part, computed on the first partial piece

    def process(self, x: np.ndarray) -> np.ndarray:
        n, p = x.shape[0], self.p
        out = np.empty((self.outputs, n))
        i = 0
        while i < n:
            f = self._fill
            if f == 0 and n - i >= p:
                nj = min((n - i) // p, max(1, _BATCH_SAMPLES // p))
                out[:, i : i + nj * p] = self._complete(x[i : i + nj * p].reshape(nj, p))
                i += nj * p
                continue
            k = min(n - i, p - f)
            self._cur[f : f + k] = x[i : i + k]
            if f + k == p:
                out[:, i : i + k] = self._complete(self._cur[None, :])[:, f:]
                self._cur[:] = 0.0
            else:
                out[:, i : i + k] = self._known()[1][:, f : f + k] + self._partial(f, k)
                self._fill = f + k
            i += k
        return out

    def _known(self) -> tuple[np.ndarray, np.ndarray]:
        """(W_m, what frame m receives from earlier frames), computed once per frame."""
        if self._w is None:
            nk = self.parts
            w_spec = _mac(self._hist, self._h, 1, nk, nk - 1, 1)
            base = np.fft.irfft(w_spec[:, 0], n=2 * self.p, axis=-1)[:, : self.p] + self._spill
            self._w = (w_spec, base)
        return self._w

    def _partial(self, f: int, k: int) -> np.ndarray:
        """Samples f..f+k-1 of the partial frame convolved with the first partition."""
        cur = self._cur
        if k * (f + k) * self.outputs <= _DIRECT_MAX:
            y = np.empty((self.outputs, k))
            for t in range(k):
                pos = f + t
                y[:, t] = self._h0[:, : pos + 1] @ cur[pos::-1]
            return y
        spec = np.fft.rfft(cur, n=2 * self.p)
        return np.fft.irfft(spec[None, :] * self._h[:, 0], n=2 * self.p, axis=-1)[:, f : f + k]

    def _complete(self, frames: np.ndarray) -> np.ndarray:
        """Output of ``J`` complete frames ``(J, p)``; the first is the frame being filled."""
        p, nk, nj = self.p, self.parts, frames.shape[0]
        spec = np.fft.rfft(frames, n=2 * p, axis=-1)
        xall = np.concatenate((self._hist, spec))  # X_{m+j} sits at index K-1+j
        if self._w is not None and nj == 1:
            z_spec = self._w[0] + spec[None] * self._h[:, :1]
        else:
            z_spec = _mac(xall, self._h, 0, nk, nk - 1, nj)
        z = np.fft.irfft(z_spec, n=2 * p, axis=-1)  # (out, J, 2p)
        out = z[:, :, :p].copy()
        out[:, 0] += self._spill
        out[:, 1:] += z[:, :-1, p:]
        self._spill = z[:, -1, p:].copy()
        self._hist = xall[nj:]
        self._fill = 0
        self._w = None
        return out.reshape(self.outputs, nj * p)


class _Tail:
    """Partitions ``k >= 1`` of size ``P``: fed complete frames, answers one frame ahead."""

    def __init__(self, irs: np.ndarray, p: int) -> None:
        self.outputs = irs.shape[0]
        self.p = p
        self._h = _partition_spectra(irs, p)
        self.parts = self._h.shape[1]
        self._hist = np.zeros((self.parts - 1, p + 1), dtype=complex)
        self._cur = np.zeros(p)
        self._fill = 0
        self._base = np.zeros((self.outputs, p))  # what the current frame receives from the past
        self._spill = np.zeros((self.outputs, p))

    def process(self, x: np.ndarray) -> np.ndarray:
        n, p = x.shape[0], self.p
        out = np.empty((self.outputs, n))
        i = 0
        while i < n:
            f = self._fill
            if f == 0 and n - i >= p:
                nj = min((n - i) // p, max(1, _BATCH_SAMPLES // p))
                out[:, i : i + nj * p] = self._advance(x[i : i + nj * p].reshape(nj, p))
                i += nj * p
                continue
            k = min(n - i, p - f)
            out[:, i : i + k] = self._base[:, f : f + k]
            self._cur[f : f + k] = x[i : i + k]
            self._fill = f + k
            if f + k == p:
                self._advance(self._cur[None, :])
            i += k
        return out

    def _advance(self, frames: np.ndarray) -> np.ndarray:
        """Consume ``J`` complete frames; returns what they receive from earlier frames."""
        p, nk, nj = self.p, self.parts, frames.shape[0]
        spec = np.fft.rfft(frames, n=2 * p, axis=-1)
        xall = np.concatenate((self._hist, spec))  # X_{m+j} at K-1+j, so W_{m+1+j} uses K+j-k
        w = np.fft.irfft(_mac(xall, self._h, 1, nk, nk, nj), n=2 * p, axis=-1)
        nxt = w[:, :, :p].copy()
        nxt[:, 0] += self._spill
        nxt[:, 1:] += w[:, :-1, p:]
        out = np.concatenate((self._base[:, None], nxt[:, :-1]), axis=1)
        self._base = nxt[:, -1].copy()
        self._spill = w[:, -1, p:].copy()
        self._hist = xall[nj:]
        self._fill = 0
        return out.reshape(self.outputs, nj * p)


class PartitionedConvolver:
    """Streams one input signal through ``irs`` (``(outputs, length)``); returns ``(outputs, n)``."""

    def __init__(
        self, irs: np.ndarray, partition: int | None = None, head_partition: int | None = None
    ) -> None:
        irs = np.atleast_2d(np.asarray(irs, dtype=np.float64))
        self.outputs, length = irs.shape
        self.partition = int(partition or choose_partition(length))
        self.head_partition = int(head_partition or max(256, self.partition // 8))
        self._head = _Head(irs[:, : self.partition], self.head_partition)
        self._tail = _Tail(irs, self.partition) if length > self.partition else None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Convolve the next block ``x`` (1-D, any length) with every impulse response."""
        x = np.asarray(x, dtype=np.float64)
        y = self._head.process(x)
        if self._tail is not None:
            y += self._tail.process(x)
        return y
