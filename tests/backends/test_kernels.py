"""The sample-recursive loops run three ways (`plugin_bridge.backends.dsp._kernels`): the optional C
extension, numba, and the Python reference both compile. All three give the same numbers, bit for
bit, in float32 and float64, including the state carried from block to block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_bridge.backends.dsp import _kernels
from plugin_bridge.backends.dsp.filters import high_shelf_sos, low_shelf_sos, peak_sos
from plugin_bridge.loudness import k_weighting_sos


def _c(name: str):
    if not _kernels.HAVE_C:
        pytest.skip("the C kernels are not built (no C compiler at install)")
    return getattr(_kernels, f"_c_{name}")


def _numba(func):
    numba = pytest.importorskip("numba")
    return numba.njit(cache=False)(func)


def _sections(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    designs = [
        lambda: low_shelf_sos(44100.0, rng.uniform(30, 2000), rng.uniform(-15, 15), rng.uniform(0.3, 3)),
        lambda: high_shelf_sos(44100.0, rng.uniform(1000, 18000), rng.uniform(-15, 15), rng.uniform(0.3, 3)),
        lambda: peak_sos(44100.0, rng.uniform(30, 18000), rng.uniform(-15, 15), rng.uniform(0.3, 8)),
        lambda: k_weighting_sos(44100.0),
    ]
    return np.vstack([designs[int(rng.integers(len(designs)))]() for _ in range(count)])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sections=st.integers(1, 3),
    channels=st.integers(1, 5),
    n=st.integers(0, 400),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_sos_filter_c_numba_and_python_give_the_same_numbers(seed, sections, channels, n, dtype):
    rng = np.random.default_rng(seed)
    sos = _sections(seed, sections).astype(dtype)
    x = rng.standard_normal((channels, n)).astype(dtype)
    zi = rng.standard_normal((sos.shape[0], channels, 2)).astype(dtype)
    results = {}
    for name, run in (
        ("python", _kernels._sos_filter),
        ("numba", _numba(_kernels._sos_filter)),
        ("c", lambda s, y, z: _c("sos_filter")(s, y, z, s.shape[0], y.shape[0], y.shape[1], y.itemsize)),
    ):
        y, z = x.copy(), zi.copy()
        run(sos, y, z)
        results[name] = (y, z)
    y0, z0 = results["python"]
    assert y0.dtype == dtype
    for name, (y, z) in results.items():
        np.testing.assert_array_equal(y, y0, err_msg=name)
        np.testing.assert_array_equal(z, z0, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 2000), attack=st.floats(0.0, 0.9999))
def test_envelopes_c_numba_and_python_give_the_same_numbers(seed, n, attack):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * rng.uniform(0.01, 4.0)
    s = rng.random(n)
    for name, env, smooth in (
        ("numba", _numba(_kernels._peak_envelope), _numba(_kernels._release_smoother)),
        ("c", _c("peak_envelope"), _c("release_smoother")),
    ):
        want, got = np.empty(n), np.empty(n)
        assert env(x, 0.3, attack, 0.999, got) == _kernels._peak_envelope(x, 0.3, attack, 0.999, want), name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert smooth(s, 0.8, 0.01, got) == _kernels._release_smoother(s, 0.8, 0.01, want), name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_the_package_runs_the_c_kernels_when_they_are_built():
    """`compiler` names what runs each loop: the C extension for float data when it is built, numba
    otherwise (and always for the Freeverb loop and complex data, which have no C version)."""
    fallback = "numba" if _kernels._numba() is not None else "python"
    assert _kernels.compiler("freeverb") == fallback
    assert _kernels.compiler("sos_filter", np.complex128) == fallback
    expected = "c" if _kernels.HAVE_C else fallback
    assert _kernels.compiler("sos_filter", np.float32) == expected
    assert _kernels.compiler("release_smoother") == expected
    # a non-contiguous or mixed-dtype call still gives the reference numbers (through numba)
    sos = k_weighting_sos(44100.0)
    y = np.random.default_rng(0).standard_normal((2, 300))
    want = y.copy()
    _kernels._sos_filter(sos, want, np.zeros((2, 2, 2)))
    got = np.asfortranarray(y)
    _kernels.sos_filter_inplace(sos, got, np.zeros((2, 2, 2)))
    np.testing.assert_array_equal(got, want)


def test_c_kernels_refuse_buffers_too_small_for_the_shape():
    sos_filter = _c("sos_filter")
    sos = k_weighting_sos(44100.0)
    with pytest.raises(ValueError, match="too small"):
        sos_filter(sos, np.zeros((2, 10)), np.zeros((2, 2, 2)), 2, 2, 11, 8)
    with pytest.raises(ValueError, match="float32/64"):
        sos_filter(sos, np.zeros((2, 10)), np.zeros((2, 2, 2)), 2, 2, 10, 2)
    with pytest.raises(TypeError):
        sos_filter(sos, np.zeros((2, 10))[:, ::2], np.zeros((2, 2, 2)), 2, 2, 5, 8)  # not contiguous
