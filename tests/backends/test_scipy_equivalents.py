"""The package's own filters, windows, convolution, resampling and running minimum against the
``scipy.signal`` and ``scipy.ndimage`` functions they stand in for (the mixing and mastering paths
import neither: slow to load).

`sos_filter`, `sos_steady_state`, `sos_response` and `hann_window` give scipy's numbers exactly;
the Butterworth design, the Kaiser low-pass, the FFT convolution and the resampler agree within
float64 rounding (float32 rounding for a float32 signal through the resampler).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import minimum_filter1d

from plugin_bridge.backends.dsp import _kernels
from plugin_bridge.backends.dsp.dynamics import _sliding_min
from plugin_bridge.backends.dsp.filters import (
    butterworth_highpass_sos,
    first_order_highpass_sos,
    high_shelf_sos,
    low_shelf_sos,
    peak_sos,
    sos_filter,
    sos_response,
    sos_steady_state,
)
from plugin_bridge.backends.dsp.fir import fft_convolve, hann_window, kaiser_lowpass, resample_poly
from plugin_bridge.loudness import k_weighting_sos

RATES = (22050.0, 44100.0, 48000.0, 96000.0)


@st.composite
def designed_sections(draw: st.DrawFn) -> np.ndarray:
    """1-4 stable sections from the package's own designs at one sample rate."""
    sr = draw(st.sampled_from(RATES))
    freq = st.floats(20.0, 0.45 * sr)
    gain, q = st.floats(-18.0, 18.0), st.floats(0.3, 8.0)
    one = st.one_of(
        st.builds(lambda f, g, k: low_shelf_sos(sr, f, g, k), freq, gain, q),
        st.builds(lambda f, g, k: high_shelf_sos(sr, f, g, k), freq, gain, q),
        st.builds(lambda f, g, k: peak_sos(sr, f, g, k), freq, gain, q),
        st.builds(lambda f: first_order_highpass_sos(sr, f), freq),
        st.builds(lambda f: butterworth_highpass_sos(sr, f), st.floats(2.0, 0.45 * sr)),
        st.just(k_weighting_sos(sr)),
    )
    return np.vstack(draw(st.lists(one, min_size=1, max_size=3)))


@settings(max_examples=150, deadline=None)
@given(
    sos=designed_sections(),
    lead=st.sampled_from([(), (1,), (2,), (3,), (2, 2)]),
    n=st.integers(0, 700),
    dtype=st.sampled_from([np.float32, np.float64, np.complex128]),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 700), max_size=4),
)
def test_sos_filter_is_scipy_sosfilt_exactly_and_streams(sos, lead, n, dtype, seed, cuts):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, n))
    if dtype is np.complex128:  # e.g. a stereo pair as left + 1j right
        x = x + 1j * rng.standard_normal((*lead, n))
    x = x.astype(dtype)
    zi = rng.standard_normal((sos.shape[0], *lead, 2))
    if n:  # scipy cannot reshape an empty signal
        want, want_zf = ss.sosfilt(sos, x, axis=-1, zi=zi)
        got, zf = sos_filter(sos, x, zi)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(zf, want_zf)
        np.testing.assert_array_equal(sos_filter(sos, x)[0], ss.sosfilt(sos, x, axis=-1))
    # fed in pieces, with the state carried, it computes the whole signal's numbers
    whole, whole_zf = sos_filter(sos, x, zi)
    pieces, z = [], zi
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), n], strict=True):
        y, z = sos_filter(sos, x[..., min(a, n) : min(b, n)], z)
        pieces.append(y)
    np.testing.assert_array_equal(np.concatenate(pieces, axis=-1), whole)
    np.testing.assert_array_equal(z, whole_zf)


def test_sos_filter_float32_sections_compute_in_float32_as_scipy():
    sos = np.vstack([peak_sos(48000.0, 900.0, 7.0, 1.5), high_shelf_sos(48000.0, 6000.0, -4.0, 0.7)])
    x = np.random.default_rng(0).standard_normal((2, 3000)).astype(np.float32)
    got = sos_filter(sos.astype(np.float32), x)[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ss.sosfilt(sos.astype(np.float32), x))


def test_sos_filter_compiled_kernel_equals_its_python_loop():
    sos = np.vstack([k_weighting_sos(44100.0), peak_sos(44100.0, 300.0, -5.0, 2.0)])
    x = np.random.default_rng(1).standard_normal((3, 500))
    zi = np.random.default_rng(2).standard_normal((3, 3, 2))
    y_py, zi_py = x.copy(), zi.copy()
    _kernels._sos_filter(sos, y_py, zi_py)
    y, zf = sos_filter(sos, x, zi)
    np.testing.assert_array_equal(y, y_py)
    np.testing.assert_array_equal(zf, zi_py)


def test_sos_filter_checks_shapes():
    sos = k_weighting_sos(44100.0)
    with pytest.raises(ValueError, match="zi must be"):
        sos_filter(sos, np.zeros((2, 10)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sos must be"):
        sos_filter(sos[:, :5], np.zeros(10))
    with pytest.raises(ValueError, match="a0 = 1"):
        sos_filter(2.0 * sos, np.zeros(10))


@settings(max_examples=60, deadline=None)
@given(sos=designed_sections())
def test_sos_steady_state_is_scipy_sosfilt_zi_exactly(sos):
    np.testing.assert_array_equal(sos_steady_state(sos), ss.sosfilt_zi(sos))


def test_sos_steady_state_with_unnormalised_sections():
    sos = np.vstack([peak_sos(44100.0, 1000.0, 6.0, 1.0), butterworth_highpass_sos(44100.0, 40.0)])
    sos[0] *= 3.0  # a0 = 3
    np.testing.assert_array_equal(sos_steady_state(sos), ss.sosfilt_zi(sos))


@settings(max_examples=60, deadline=None)
@given(sos=designed_sections(), freqs=st.lists(st.floats(0.0, 11000.0), min_size=1, max_size=20))
def test_sos_response_is_scipy_sosfreqz(sos, freqs):
    f = np.array(freqs)
    np.testing.assert_allclose(
        sos_response(sos, f, 22050.0), ss.sosfreqz(sos, worN=f, fs=22050.0)[1], rtol=1e-13
    )


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("cutoff_hz", [1.0, 5.0, 20.0, 1000.0, 9000.0])
def test_butterworth_highpass_is_scipy_butter(sample_rate, cutoff_hz):
    want = ss.butter(2, cutoff_hz, btype="highpass", fs=sample_rate, output="sos")
    np.testing.assert_allclose(butterworth_highpass_sos(sample_rate, cutoff_hz), want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("n", [*range(0, 20), 255, 256, 1024, 4097, 16385])
def test_hann_window_is_scipys_exactly(n):
    np.testing.assert_array_equal(hann_window(n), ss.get_window("hann", n) if n else np.ones(0))
    np.testing.assert_array_equal(hann_window(n, symmetric=True), ss.windows.hann(n, sym=True))


@pytest.mark.parametrize(("numtaps", "cutoff"), [(21, 0.5), (101, 0.3), (3201, 1 / 160), (881, 1 / 44)])
def test_kaiser_lowpass_is_scipy_firwin(numtaps, cutoff):
    want = ss.firwin(numtaps, cutoff, window=("kaiser", 5.0))
    np.testing.assert_allclose(kaiser_lowpass(numtaps, cutoff), want, rtol=0, atol=1e-15 * np.abs(want).max())


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 3),
    n=st.integers(1, 40000),
    m=st.integers(1, 5000),
    seed=st.integers(0, 2**32 - 1),
)
def test_fft_convolve_is_scipy_oaconvolve(channels, n, m, seed):
    rng = np.random.default_rng(seed)
    x, h = rng.standard_normal((channels, n)), rng.standard_normal(m)
    want = ss.oaconvolve(x, h[None, :], mode="full", axes=1)
    got = fft_convolve(x, h)
    assert got.shape == want.shape
    scale = np.abs(x).max() * np.abs(h).sum()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14 * scale)


@settings(max_examples=40, deadline=None)
@given(
    ratio=st.sampled_from([(147, 160), (160, 147), (2, 1), (1, 2), (147, 320), (441, 320), (3, 2), (4, 4)]),
    lead=st.sampled_from([(), (1,), (2,)]),
    n=st.integers(1, 6000),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_resample_poly_is_scipys(ratio, lead, n, dtype, seed):
    up, down = ratio
    x = np.random.default_rng(seed).standard_normal((*lead, n)).astype(dtype)
    want = ss.resample_poly(x, up, down, axis=-1)
    got = resample_poly(x, up, down)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 2e-6 if dtype is np.float32 else 1e-13  # scipy sums a float32 signal in float32
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(x).max())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 90), st.integers(0, 2**32 - 1), st.booleans())
def test_sliding_min_is_scipy_minimum_filter1d_exactly(extra, length, seed, steps):
    """The limiter's trailing-window minimum (by doubling, in numpy) gives
    ``minimum_filter1d``'s numbers on random gains and on runs of equal values (a held gain)."""
    rng = np.random.default_rng(seed)
    n = length + extra - 1
    r = rng.random(n)
    if steps:
        r = np.repeat(r[: -(-n // 8)], 8)[:n]
    expected = minimum_filter1d(r, size=length, origin=(length - 1) // 2, mode="nearest")[length - 1 :]
    got = _sliding_min(r, length)
    assert got.shape == expected.shape and np.array_equal(got, expected)
