"""Sample-recursive loops that cannot be vectorised: written as plain Python over numpy arrays.

Three ways to run them, the same numbers from each: the C extension `_ckernels` (the IIR sections
in float32/float64 and the two envelopes, built by ``pip install`` when a C compiler is there); else
each loop compiled by ``numba.njit(cache=True)`` at its first call (numba is imported only then: its
start-up costs ~0.35 s per process); else the Python code as is (correct, but far slower).
``HAVE_C`` says whether the extension is built; `compiler` which one runs a loop.
Every kernel takes and returns its running state so that callers can stream block by block.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

log = logging.getLogger(__name__)

try:  # optional: built by setup.py when a C compiler is there
    from ._ckernels import peak_envelope as _c_peak_envelope
    from ._ckernels import release_smoother as _c_release_smoother
    from ._ckernels import sos_filter as _c_sos_filter

    HAVE_C = True
except ImportError:  # pragma: no cover - depends on the build
    HAVE_C = False


@functools.cache
def _numba():
    """numba, imported at the first call of a loop that needs it; None when it does not import."""
    try:
        import numba
    except Exception:  # pragma: no cover - depends on the environment
        return None
    return numba


def _jit(func):
    """``func`` compiled by numba (at its first call) when numba imports; ``func`` itself otherwise,
    or if compiling fails."""
    state = {}

    def call(*args):
        run = state.get("run")
        if run is None:
            numba = _numba()
            run = state["run"] = func if numba is None else numba.njit(cache=True, nogil=True)(func)
        try:
            return run(*args)
        except Exception as e:  # a numba failure (not a data error): keep going in pure Python
            if run is func:
                raise
            log.warning("numba could not compile %s (%s); using the pure-Python loop", func.__name__, e)
            state["run"] = func
            return func(*args)

    return call


def _peak_envelope(x, env0, cte_attack, cte_release, out):  # pragma: no cover - compiled
    env = env0
    for i in range(x.shape[0]):
        v = abs(x[i])
        cte = cte_attack if v > env else cte_release
        env = v + cte * (env - v)
        out[i] = env
    return env


def _release_smoother(s, g0, coeff, out):  # pragma: no cover - compiled
    g = g0
    for i in range(s.shape[0]):
        v = s[i]
        if v <= g:
            g = v
        else:
            g = g + coeff * (v - g)
        out[i] = g
    return g


def _sos_filter(sos, y, zi):  # pragma: no cover - compiled
    # Transposed direct form II in scipy's operation order (``scipy.signal.sosfilt``), so the same
    # numbers: y = b0 x + z0; z0 = b1 x - a1 y + z1; z1 = b2 x - a2 y. Section after section over
    # the whole block (each section's state in registers), two channels at a time: two independent
    # recursions in flight.
    channels, n = y.shape
    for s in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        for c in range(0, channels - 1, 2):
            p0, p1, q0, q1 = zi[s, c, 0], zi[s, c, 1], zi[s, c + 1, 0], zi[s, c + 1, 1]
            for i in range(n):
                u = y[c, i]
                v = y[c + 1, i]
                yu = b0 * u + p0
                yv = b0 * v + q0
                p0 = b1 * u - a1 * yu + p1
                q0 = b1 * v - a1 * yv + q1
                p1 = b2 * u - a2 * yu
                q1 = b2 * v - a2 * yv
                y[c, i] = yu
                y[c + 1, i] = yv
            zi[s, c, 0], zi[s, c, 1], zi[s, c + 1, 0], zi[s, c + 1, 1] = p0, p1, q0, q1
        if channels % 2:
            c = channels - 1
            p0, p1 = zi[s, c, 0], zi[s, c, 1]
            for i in range(n):
                u = y[c, i]
                yu = b0 * u + p0
                p0 = b1 * u - a1 * yu + p1
                p1 = b2 * u - a2 * yu
                y[c, i] = yu
            zi[s, c, 0], zi[s, c, 1] = p0, p1


def _freeverb(inp, fb, damp, cbuf, clen, coff, cpos, clast, abuf, alen, aoff, apos, out):  # pragma: no cover
    n_comb = clen.shape[0] // out.shape[0]
    n_all = alen.shape[0] // out.shape[0]
    for i in range(inp.shape[0]):
        x = inp[i]
        for s in range(out.shape[0]):
            acc = 0.0
            for c in range(n_comb):
                k = s * n_comb + c
                j = coff[k] + cpos[k]
                o = cbuf[j]
                clast[k] = o * (1.0 - damp[i]) + clast[k] * damp[i]
                cbuf[j] = x + clast[k] * fb[i]
                cpos[k] = cpos[k] + 1 if cpos[k] + 1 < clen[k] else 0
                acc += o
            for a in range(n_all):
                k = s * n_all + a
                j = aoff[k] + apos[k]
                b = abuf[j]
                abuf[j] = acc + b * 0.5
                apos[k] = apos[k] + 1 if apos[k] + 1 < alen[k] else 0
                acc = b - acc
            out[s, i] = acc


_peak_envelope_k = _jit(_peak_envelope)
_freeverb_k = _jit(_freeverb)
_release_smoother_k = _jit(_release_smoother)
_sos_filter_k = _jit(_sos_filter)


_C_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_C_KERNELS = ("sos_filter", "peak_envelope", "release_smoother")


def compiler(kernel: str = "sos_filter", dtype: type = np.float64) -> str:
    """Which implementation runs ``kernel`` (``sos_filter``, ``peak_envelope``, ``release_smoother``
    or ``freeverb``) for ``dtype`` data (float64 for all but ``sos_filter``): ``"c"``, ``"numba"``
    or ``"python"``."""
    if HAVE_C and kernel in _C_KERNELS and np.dtype(dtype) in _C_FLOATS:
        return "c"
    return "python" if _numba() is None else "numba"


def sos_filter_inplace(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """Filter ``y`` ``(channels, n)`` in place by the sections ``sos`` ``(sections, 6)`` from the state
    ``zi`` ``(sections, channels, 2)``, updated in place; all three of one dtype and C-contiguous
    (`filters.sos_filter` prepares them)."""
    if (
        HAVE_C
        and y.dtype in _C_FLOATS
        and sos.dtype == y.dtype == zi.dtype
        and all(a.flags.c_contiguous for a in (sos, y, zi))
        and y.flags.writeable
        and zi.flags.writeable
    ):
        _c_sos_filter(sos, y, zi, sos.shape[0], y.shape[0], y.shape[1], y.itemsize)
    else:
        _sos_filter_k(sos, y, zi)


def peak_envelope(
    x: np.ndarray, env0: float, cte_attack: float, cte_release: float
) -> tuple[np.ndarray, float]:
    """Peak ballistics (JUCE ``BallisticsFilter``, peak mode) of one channel ``x`` (linear amplitude).

    ``env[n] = |x[n]| + cte * (env[n-1] - |x[n]|)`` with ``cte = cte_attack`` while ``|x[n]|`` is
    above ``env[n-1]`` and ``cte_release`` otherwise. Returns the envelope (float64, same length)
    and its last value, the ``env0`` of the next block.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    run = _c_peak_envelope if HAVE_C else _peak_envelope_k
    last = run(x, float(env0), float(cte_attack), float(cte_release), out)
    return out, float(last)


def release_smoother(s: np.ndarray, g0: float, coeff: float) -> tuple[np.ndarray, float]:
    """Instant-attack, one-pole-release smoothing of a gain curve ``s`` (linear gain).

    ``g[n] = s[n]`` when ``s[n] <= g[n-1]``, else ``g[n-1] + coeff * (s[n] - g[n-1])``; ``g0`` is
    ``g[-1]``. Returns the smoothed gain (float64) and its last value.
    """
    s = np.ascontiguousarray(s, dtype=np.float64)
    out = np.empty_like(s)
    run = _c_release_smoother if HAVE_C else _release_smoother_k
    last = run(s, float(g0), float(coeff), out)
    return out, float(last)


class FreeverbState:
    """The comb and allpass delay lines of a Freeverb (JUCE's ``juce::Reverb``), one bank per side.

    ``comb_lengths`` and ``allpass_lengths`` are ``(sides, 8)`` and ``(sides, 4)`` lengths in
    samples; `freeverb` runs them sample by sample (constant work per sample, any block size).
    """

    def __init__(self, comb_lengths: np.ndarray, allpass_lengths: np.ndarray) -> None:
        self.sides = int(np.shape(comb_lengths)[0])
        self.clen = np.ascontiguousarray(np.ravel(comb_lengths), dtype=np.int64)
        self.alen = np.ascontiguousarray(np.ravel(allpass_lengths), dtype=np.int64)
        self.coff = np.concatenate(([0], np.cumsum(self.clen)[:-1])).astype(np.int64)
        self.aoff = np.concatenate(([0], np.cumsum(self.alen)[:-1])).astype(np.int64)
        self.reset()

    def reset(self) -> None:
        """Silence: every delay line and damping filter back to zero."""
        self.cbuf = np.zeros(int(self.clen.sum()))
        self.abuf = np.zeros(int(self.alen.sum()))
        self.cpos = np.zeros_like(self.clen)
        self.apos = np.zeros_like(self.alen)
        self.clast = np.zeros(self.clen.shape[0])


def freeverb(state: FreeverbState, x: np.ndarray, feedback: np.ndarray, damp: np.ndarray) -> np.ndarray:
    """The wet outputs ``(sides, n)`` of Freeverb for the (already scaled) mono input ``x``: per
    side, 8 lowpass-feedback combs summed, then 4 allpasses; ``feedback`` and ``damp`` are
    per-sample arrays (JUCE: 0.7 + 0.28 room size, 0.4 damping). ``state`` is updated in place."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    fb = np.ascontiguousarray(np.broadcast_to(feedback, (n,)), dtype=np.float64)
    dm = np.ascontiguousarray(np.broadcast_to(damp, (n,)), dtype=np.float64)
    out = np.empty((state.sides, n))
    _freeverb_k(
        x,
        fb,
        dm,
        state.cbuf,
        state.clen,
        state.coff,
        state.cpos,
        state.clast,
        state.abuf,
        state.alen,
        state.aoff,
        state.apos,
        out,
    )
    return out
