"""Measured-audio tests of the numpy DSP stages and the ``numpy`` backend.

pedalboard is the reference wherever it has the effect (EQ, high-pass, compressor, reverb, delay);
the limiter, width and pan are checked against their definitions. Tolerances are stated per test.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_bridge.backends import numpy_backend
from plugin_bridge.backends.dsp import _kernels
from plugin_bridge.backends.dsp.convolve import PartitionedConvolver
from plugin_bridge.backends.dsp.delay import delay_samples, pedalboard_delay_seconds
from plugin_bridge.backends.dsp.dynamics import compressor_curve_db
from plugin_bridge.backends.dsp.filters import sos_response_db
from plugin_bridge.backends.numpy_backend import NumpyBackend, make_stage
from plugin_bridge.effects import Effect
from plugin_bridge.errors import AudioError, ParameterError

SAMPLE_RATES = (44100, 48000)
THIRD_OCTAVES = np.array(
    "31.5 40 50 63 80 100 125 160 200 250 315 400 500 630 800 1000 1250 1600 2000 2500 3150 4000 "
    "5000 6300 8000 10000 12500 16000".split(),
    dtype=float,
)


# ---------------------------------------------------------------- signal helpers


def impulse(n: int, channels: int = 1, at: int = 0) -> np.ndarray:
    x = np.zeros((channels, n), dtype=np.float32)
    x[:, at] = 1.0
    return x


def sine(freq: float, seconds: float, sr: int, level_db: float = 0.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (level_db / 20) * np.sin(2 * np.pi * freq * t)
    return np.tile(x, (channels, 1)).astype(np.float32)


def white(seconds: float, sr: int, channels: int = 2, level: float = 0.25, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((channels, int(seconds * sr)))).astype(np.float32)


def pink(seconds: float, sr: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    f = np.fft.rfftfreq(n, 1 / sr)
    spec /= np.sqrt(np.maximum(f, 20.0))
    x = np.fft.irfft(spec, n=n, axis=-1)
    return (0.25 * x / x.std()).astype(np.float32)


def drums(seconds: float, sr: int, channels: int = 2, seed: int = 1) -> np.ndarray:
    """Decaying noise bursts every 250 ms with a low thump: a crude drum loop."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-(t % 0.25) * 30)
    thump = np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) * 12)
    x = 0.3 * env * rng.standard_normal((channels, t.size)) + 0.5 * thump
    return x.astype(np.float32)


def stepped_levels(levels_db: np.ndarray, step_s: float, sr: int, freq: float = 1000.0) -> np.ndarray:
    return np.concatenate([sine(freq, step_s, sr, lv)[0] for lv in levels_db])[None, :]


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def response_db(ir: np.ndarray, sr: int, freqs: np.ndarray) -> np.ndarray:
    """Magnitude (dB) of an impulse response at ``freqs`` (nearest FFT bin of 2^16 points)."""
    n = 1 << 16
    spec = np.abs(np.fft.rfft(np.asarray(ir, dtype=np.float64), n=n))
    bins = np.round(freqs * n / sr).astype(int)
    return 20 * np.log10(spec[bins])


def t30(ir: np.ndarray, sr: int) -> float:
    """T30 (s) from the Schroeder energy decay curve: the -5..-35 dB slope, extrapolated to -60 dB."""
    e = np.cumsum((np.asarray(ir, dtype=np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(np.maximum(e / e[0], 1e-30))
    i5, i35 = np.argmax(edc <= -5), np.argmax(edc <= -35)
    slope = np.polyfit(np.arange(i5, i35) / sr, edc[i5:i35], 1)[0]
    return -60.0 / slope


def run(effect: Effect, x: np.ndarray, sr: int, blocks: int | list[int] | None = None) -> np.ndarray:
    """``effect`` via `make_stage` on ``x``, whole or in blocks of ``blocks`` samples."""
    stage = make_stage(effect, sr, x.shape[0])
    if blocks is None:
        return stage.process(x)
    sizes = blocks if isinstance(blocks, list) else None
    out, i, j = [], 0, 0
    while i < x.shape[1]:
        b = sizes[j % len(sizes)] if sizes else blocks
        out.append(stage.process(x[:, i : i + b]))
        i, j = i + b, j + 1
    return np.concatenate(out, axis=1)


def pb():
    return pytest.importorskip("pedalboard")


# ---------------------------------------------------------------- EQ and high-pass

EQ_CASES = [
    ("low_shelf", 120.0, 6.0, 0.707),
    ("low_shelf", 400.0, -12.0, 2.0),
    ("peak", 1000.0, 8.0, 0.9),
    ("peak", 4000.0, -10.0, 4.0),
    ("peak", 80.0, 12.0, 0.3),
    ("high_shelf", 6000.0, 6.0, 0.707),
    ("high_shelf", 12000.0, -8.0, 1.5),
]


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("kind,cutoff,gain,q", EQ_CASES)
def test_eq_matches_pedalboard_within_0_1_db(kind, cutoff, gain, q, sr):
    pedalboard = pb()
    plugin = {
        "low_shelf": pedalboard.LowShelfFilter,
        "peak": pedalboard.PeakFilter,
        "high_shelf": pedalboard.HighShelfFilter,
    }[kind]
    x = impulse(1 << 16)
    ours = run(Effect("eq", kind, {"cutoff_hz": cutoff, "gain_db": gain, "q": q}), x, sr)[0]
    ref = plugin(cutoff_frequency_hz=cutoff, gain_db=gain, q=q)(x, sr)[0]
    diff = np.abs(response_db(ours, sr, THIRD_OCTAVES) - response_db(ref, sr, THIRD_OCTAVES))
    assert diff.max() < 0.1, f"max {diff.max():.4f} dB"


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("kind,cutoff,gain,q", EQ_CASES)
def test_eq_hits_its_design_gain(kind, cutoff, gain, q, sr):
    ours = run(Effect("eq", kind, {"cutoff_hz": cutoff, "gain_db": gain, "q": q}), impulse(1 << 16), sr)[0]
    if kind == "peak":
        at = response_db(ours, sr, np.array([cutoff]))[0]
        assert abs(at - gain) < 0.05
    else:  # plateau: far below (low shelf) or near Nyquist (high shelf), mid-point at half the gain
        far = 10.0 if kind == "low_shelf" else 0.5 * sr - 1
        assert abs(response_db(ours, sr, np.array([far]))[0] - gain) < 0.3
        assert abs(response_db(ours, sr, np.array([cutoff]))[0] - gain / 2) < 0.05


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("cutoff", [20.0, 80.0, 500.0, 2000.0])
def test_highpass_matches_pedalboard_and_is_3db_down_at_cutoff(cutoff, sr):
    pedalboard = pb()
    x = impulse(1 << 16)
    ours = run(Effect("hp", "highpass", {"cutoff_hz": cutoff}), x, sr)[0]
    ref = pedalboard.HighpassFilter(cutoff_frequency_hz=cutoff)(x, sr)[0]
    diff = np.abs(response_db(ours, sr, THIRD_OCTAVES) - response_db(ref, sr, THIRD_OCTAVES))
    assert diff.max() < 0.1
    stage = make_stage(Effect("hp", "highpass", {"cutoff_hz": cutoff}), sr, 1)
    assert abs(sos_response_db(stage.sos, np.array([cutoff]), sr)[0] + 3.0103) < 0.01


# ---------------------------------------------------------------- compressor

COMP_CASES = [
    (-30.0, 4.0, 1.0, 100.0, 6.0),
    (-20.0, 2.83, 10.0, 141.0, 6.0),
    (-10.0, 8.0, 5.0, 300.0, 0.0),
    (-40.0, 20.0, 0.5, 50.0, 12.0),
]


def _comp(th, ratio, att, rel, makeup):
    return Effect(
        "comp",
        "compressor",
        {"threshold_db": th, "ratio": ratio, "attack_ms": att, "release_ms": rel, "makeup_db": makeup},
    )


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("th,ratio,att,rel,makeup", COMP_CASES)
def test_compressor_matches_pedalboard_sample_by_sample(th, ratio, att, rel, makeup, sr):
    pedalboard = pb()
    x = drums(1.0, sr)
    ours = run(_comp(th, ratio, att, rel, makeup), x, sr)
    ref = pedalboard.Compressor(threshold_db=th, ratio=ratio, attack_ms=att, release_ms=rel)(x, sr)
    ref = ref * 10 ** (makeup / 20)
    assert np.abs(ours - ref).max() < 2e-5  # float32 rounding inside pedalboard


@pytest.mark.parametrize("th,ratio,att,rel,makeup", COMP_CASES)
def test_compressor_static_curve(th, ratio, att, rel, makeup):
    """Stepped sines -50..0 dBFS: steady output level within 1 dB of pedalboard and of theory."""
    sr = 44100
    levels = np.arange(-50.0, 0.1, 5.0)
    step = int(0.4 * sr)
    x = stepped_levels(levels, 0.4, sr)
    y = run(_comp(th, ratio, att, rel, makeup), x, sr)[0].astype(np.float64)
    tails = y[: levels.size * step].reshape(levels.size, step)[:, -step // 4 :]
    out_db = 10 * np.log10((tails**2).mean(axis=1)) + 10 * np.log10(2)  # sine peak level
    assert np.abs(out_db - compressor_curve_db(levels, th, ratio, makeup)).max() < 1.0
    pedalboard = pytest.importorskip("pedalboard")
    ref = pedalboard.Compressor(threshold_db=th, ratio=ratio, attack_ms=att, release_ms=rel)(x, sr)[0]
    ref_tails = ref[: levels.size * step].astype(np.float64).reshape(levels.size, step)[:, -step // 4 :]
    ref_db = 10 * np.log10((ref_tails**2).mean(axis=1)) + 10 * np.log10(2) + makeup
    assert np.abs(out_db - ref_db).max() < 1.0


def test_compressor_ratio_one_is_only_makeup():
    x = drums(0.2, 44100)
    y = run(_comp(-40.0, 1.0, 1.0, 50.0, 6.0), x, 44100)
    np.testing.assert_allclose(y, x * 10 ** (6 / 20), rtol=1e-6)


def test_kernels_pure_python_equals_compiled():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(500)
    env_py = np.empty(500)
    last_py = _kernels._peak_envelope(x, 0.1, 0.9, 0.999, env_py)
    env, last = _kernels.peak_envelope(x, 0.1, 0.9, 0.999)
    np.testing.assert_allclose(env, env_py, rtol=1e-12)
    assert last == pytest.approx(last_py, rel=1e-12)
    s = rng.random(500)
    g_py = np.empty(500)
    _kernels._release_smoother(s, 1.0, 0.01, g_py)
    np.testing.assert_allclose(_kernels.release_smoother(s, 1.0, 0.01)[0], g_py, rtol=1e-12)


# ---------------------------------------------------------------- limiter


def _lim(ceiling=-1.0, release=100.0, lookahead=5.0):
    return Effect("lim", "limiter", {"ceiling_db": ceiling, "release_ms": release, "lookahead_ms": lookahead})


def _loud_signals(sr):
    clicks = np.zeros((2, sr // 2), dtype=np.float32)
    clicks[:, ::1000] = 4.0
    clicks[1, 500::1000] = -3.0
    return {
        "noise": white(0.5, sr, level=1.5),
        "sine": sine(100, 0.5, sr, 12.0, channels=2),
        "clicks": clicks,
        "drums": drums(0.5, sr) * 4,
    }


@pytest.mark.parametrize(
    "ceiling,release,lookahead",
    [(-1.0, 100.0, 5.0), (-6.0, 10.0, 0.1), (-0.1, 1000.0, 20.0), (-24.0, 1.0, 1.0)],
)
def test_limiter_never_exceeds_ceiling(ceiling, release, lookahead):
    sr = 44100
    c = 10 ** (ceiling / 20)
    for name, x in _loud_signals(sr).items():
        y = run(_lim(ceiling, release, lookahead), x, sr)
        assert np.abs(y).max() <= c, name
        assert np.abs(y).max() > 0.9 * c, name  # and it does not just mute


def test_limiter_passes_quiet_signals_unchanged_after_latency():
    sr = 48000
    x = white(0.5, sr, level=0.1)
    x = np.clip(x, -0.8, 0.8)  # below the -1 dBFS ceiling (0.891)
    stage = make_stage(_lim(-1.0, 100.0, 5.0), sr, 2)
    lat = stage.latency
    assert lat == round(5.0 * sr / 1000) - 1
    y = stage.process(np.concatenate((x, np.zeros((2, lat), np.float32)), axis=1))
    np.testing.assert_array_equal(y[:, lat:], x)


@pytest.mark.parametrize("lookahead,sr", [(5.0, 44100), (0.1, 44100), (20.0, 96000), (0.1, 8000)])
def test_limiter_latency_is_reported_exactly(lookahead, sr):
    stage = make_stage(_lim(-1.0, 50.0, lookahead), sr, 1)
    expected = max(1, round(lookahead * sr / 1000)) - 1
    assert stage.latency == expected
    x = impulse(4000, at=100) * 0.5
    y = stage.process(x)[0]
    assert int(np.argmax(np.abs(y))) == 100 + expected
    assert y[100 + expected] == pytest.approx(0.5)


@settings(max_examples=25, deadline=None)
@given(
    ceiling=st.floats(-24.0, 0.0),
    release=st.floats(1.0, 2000.0),
    lookahead=st.floats(0.1, 20.0),
    gain=st.floats(0.5, 30.0),
    seed=st.integers(0, 1000),
)
def test_limiter_ceiling_property(ceiling, release, lookahead, gain, seed):
    x = white(0.05, 44100, level=gain, seed=seed)
    y = run(_lim(ceiling, release, lookahead), x, 44100, blocks=[37, 512, 5])
    assert np.abs(y).max() <= 10 ** (ceiling / 20)


# ---------------------------------------------------------------- reverb

REVERB_CASES = [(0.5, 0.5, 0.33, 1.0), (0.9, 0.2, 0.5, 0.5), (0.1, 0.9, 0.3, 0.0), (0.7, 0.5, 0.2, 1.0)]


def _rev(room, damp, wet, width, dry=0.0):
    return Effect(
        "rev",
        "reverb",
        {"room_size": room, "damping": damp, "wet_level": wet, "dry_level": dry, "width": width},
    )


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("room,damp,wet,width", REVERB_CASES)
def test_reverb_impulse_response_matches_pedalboard(room, damp, wet, width, sr):
    """IR within 1e-5 absolute (measured 3e-7); T30 within 10 %; pink-noise level within 0.5 dB."""
    pedalboard = pb()
    x = impulse((8 if room > 0.8 else 4) * sr, channels=2)  # T30 fits need the decay well inside
    x[1] = 0.0
    ours = run(_rev(room, damp, wet, width), x, sr)
    ref = pedalboard.Reverb(room_size=room, damping=damp, wet_level=wet, dry_level=0.0, width=width)(x, sr)
    assert np.abs(ours - ref).max() < 1e-5
    assert t30(ours[0], sr) == pytest.approx(t30(ref[0], sr), rel=0.10)
    noise = pink(2.0, sr)
    ours_n = run(_rev(room, damp, wet, width, dry=0.4), noise, sr)
    ref_n = pedalboard.Reverb(room_size=room, damping=damp, wet_level=wet, dry_level=0.4, width=width)(
        noise, sr
    )
    for ch in range(2):
        assert abs(level_db(ours_n[ch]) - level_db(ref_n[ch])) < 0.5


def test_reverb_mono_matches_pedalboard_process_mono():
    pedalboard = pb()
    sr = 44100
    x = drums(1.0, sr, channels=1)
    ours = run(_rev(0.6, 0.4, 0.3, 0.8, dry=0.3), x, sr)
    ref = pedalboard.Reverb(room_size=0.6, damping=0.4, wet_level=0.3, dry_level=0.3, width=0.8)(x, sr)
    assert ours.shape == (1, x.shape[1])
    assert np.abs(ours - ref).max() < 1e-5


def test_reverb_t30_grows_with_room_size():
    sr = 44100
    times = [t30(run(_rev(r, 0.5, 0.3, 1.0), impulse(3 * sr, 2), sr)[0], sr) for r in (0.1, 0.5, 0.9)]
    assert times[0] < times[1] < times[2]


def test_reverb_dry_only_is_a_gain():
    x = white(0.1, 44100)
    np.testing.assert_allclose(run(_rev(0.5, 0.5, 0.0, 1.0, dry=0.25), x, 44100), 0.5 * x, rtol=1e-6)


# ---------------------------------------------------------------- delay

DELAY_CASES = [(250.0, 0.3, 0.5), (1.0, 0.0, 1.0), (60.0, 0.95, 0.2), (800.0, 0.6, 0.3), (12.345, 0.5, 0.5)]


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("delay_ms,feedback,mix", DELAY_CASES)
def test_delay_matches_pedalboard(delay_ms, feedback, mix, sr):
    """Echo positions exact, amplitudes within 1e-6; energy on noise within 0.3 dB."""
    pedalboard = pb()
    d = delay_samples(delay_ms, sr)
    plugin = pedalboard.Delay(delay_seconds=pedalboard_delay_seconds(d, sr), feedback=feedback, mix=mix)
    fx = Effect("dly", "delay", {"delay_ms": delay_ms, "feedback": feedback, "mix": mix})
    n = 6 * d + 10
    x = impulse(n)
    ours, ref = run(fx, x, sr)[0], plugin(x, sr)[0]
    expected = np.zeros(n)
    expected[0] = 1 - mix
    for k in range(1, 7):
        if k * d < n:
            expected[k * d] = mix * feedback ** (k - 1)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    np.testing.assert_allclose(ref, expected, atol=1e-6)
    noise = white(1.0, sr)
    ours_n, ref_n = run(fx, noise, sr), plugin.process(noise, sr)
    assert abs(level_db(ours_n) - level_db(ref_n)) < 0.3


def test_delay_seconds_for_pedalboard_give_exact_samples():
    pedalboard = pb()
    for sr in (22050, 44100, 48000, 96000):
        for d in (1, 2, 44, 441, 11025, int(1.9 * sr)):
            y = pedalboard.Delay(delay_seconds=pedalboard_delay_seconds(d, sr), feedback=0.0, mix=1.0)(
                impulse(d + 10), sr
            )[0]
            assert int(np.argmax(y)) == d


# ---------------------------------------------------------------- width and pan


def test_width_mid_side():
    x = white(0.1, 44100)
    for w in (0.0, 0.5, 1.5, 2.0):
        y = run(Effect("w", "width", {"width": w}), x, 44100).astype(np.float64)
        mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
        np.testing.assert_allclose((y[0] + y[1]) / 2, mid, atol=1e-6)
        np.testing.assert_allclose((y[0] - y[1]) / 2, w * side, atol=1e-6)
    mono = white(0.1, 44100, channels=1)
    np.testing.assert_array_equal(run(Effect("w", "width", {"width": 0.0}), mono, 44100), mono)


def test_width_zero_is_mono():
    y = run(Effect("w", "width", {"width": 0.0}), white(0.1, 44100), 44100)
    np.testing.assert_allclose(y[0], y[1], atol=1e-7)


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_pan_constant_power_unity_at_centre(pan):
    t = (pan + 1) * math.pi / 4
    gl, gr = math.sqrt(2) * math.cos(t), math.sqrt(2) * math.sin(t)
    mono = white(0.1, 44100, channels=1)
    stage = make_stage(Effect("p", "pan", {"pan": pan}), 44100, 1)
    assert stage.out_channels == 2
    y = stage.process(mono)
    np.testing.assert_allclose(y[0], mono[0] * gl, atol=1e-6)
    np.testing.assert_allclose(y[1], mono[0] * gr, atol=1e-6)
    assert gl**2 + gr**2 == pytest.approx(2.0)
    stereo = white(0.1, 44100)
    ys = run(Effect("p", "pan", {"pan": pan}), stereo, 44100)
    np.testing.assert_allclose(ys, stereo * np.array([[gl], [gr]]), atol=1e-6)


# ---------------------------------------------------------------- streaming and the backend

STREAM_EFFECTS = [
    Effect("g", "gain", {"gain_db": -6.0}),
    Effect("hp", "highpass", {"cutoff_hz": 120.0}),
    Effect("ls", "low_shelf", {"cutoff_hz": 150.0, "gain_db": 4.0, "q": 0.8}),
    Effect("pk", "peak", {"cutoff_hz": 2000.0, "gain_db": -5.0, "q": 2.0}),
    Effect("hs", "high_shelf", {"cutoff_hz": 9000.0, "gain_db": 3.0, "q": 0.707}),
    _comp(-25.0, 4.0, 2.0, 80.0, 4.0),
    _lim(-3.0, 30.0, 2.0),
    _rev(0.3, 0.5, 0.3, 1.0, dry=0.5),
    Effect("dly", "delay", {"delay_ms": 7.0, "feedback": 0.5, "mix": 0.4}),
    Effect("w", "width", {"width": 1.4}),
    Effect("p", "pan", {"pan": -0.4}),
]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("effect", STREAM_EFFECTS, ids=lambda e: e.type)
def test_blocks_equal_whole(effect, channels):
    sr = 44100
    x = drums(0.25, sr, channels=channels)
    whole = run(effect, x, sr)
    for blocks in (1, 7, 1000, 4096, [3, 0, 1, 2500, 17, 64, 5000]):
        xb = x[:, :2000] if blocks == 1 else x
        got = run(effect, xb, sr, blocks)
        assert got.shape == (whole.shape[0], xb.shape[1])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, whole[:, : xb.shape[1]], atol=1e-6, err_msg=f"blocks={blocks}")


@pytest.mark.parametrize("effect", STREAM_EFFECTS, ids=lambda e: e.type)
def test_empty_block(effect):
    stage = make_stage(effect, 48000, 1)
    y = stage.process(np.zeros((1, 0), np.float32))
    assert y.shape == (stage.out_channels, 0) and y.dtype == np.float32


def test_convolver_equals_direct_convolution_for_any_blocks():
    rng = np.random.default_rng(5)
    irs = rng.standard_normal((2, 30000)) * np.exp(-np.arange(30000) / 5000)
    x = rng.standard_normal(40000)
    ref = np.stack([np.convolve(x, h)[: x.size] for h in irs])
    for sizes in ([40000], [1] * 50 + [39950], [4096], [1000], [5, 3000, 17, 12000]):
        conv = PartitionedConvolver(irs, partition=4096, head_partition=512)
        out, i, j = [], 0, 0
        while i < x.size:
            b = sizes[j % len(sizes)]
            out.append(conv.process(x[i : i + b]))
            i, j = i + b, j + 1
        np.testing.assert_allclose(np.concatenate(out, axis=1), ref, atol=1e-9)


def _default_chain(value: float = 0.5):
    from plugin_bridge.chain import load_chain

    chain = load_chain("default")
    return chain.resolve_vector([value] * len(chain.space))


def _render(proc, x, block):
    if block is None:
        return proc.process(x)
    return np.concatenate([proc.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)], axis=1)


@pytest.mark.parametrize("value", [0.5, 0.8])
def test_default_chain_blocks_equal_whole(value):
    sr = 44100
    x = np.concatenate((drums(4.0, sr), pink(4.0, sr)), axis=1)
    backend = NumpyBackend()
    whole = _render(backend.prepare(_default_chain(value), sr, 2), x, None)
    for block in (4096, 1000):
        got = _render(backend.prepare(_default_chain(value), sr, 2), x, block)
        assert np.abs(got - whole).max() < 1e-6
    again = _render(backend.prepare(_default_chain(value), sr, 2), x, None)
    np.testing.assert_array_equal(again, whole)  # deterministic


@pytest.mark.slow
def test_default_chain_speed_report(capsys):
    """Prints the real-time factor on 60 s of stereo 44.1 kHz (not asserted: machines differ)."""
    sr = 44100
    x = white(60.0, sr)
    backend = NumpyBackend()
    backend.prepare(_default_chain(), sr, 2).process(x[:, :2048])  # JIT warm-up
    for block in (None, 4096):
        t0 = time.perf_counter()
        _render(backend.prepare(_default_chain(), sr, 2), x, block)
        factor = 60.0 / (time.perf_counter() - t0)
        with capsys.disabled():
            print(f"\nnumpy backend, default chain at mid settings, blocks={block}: {factor:.0f}x real time")


def test_backend_interface():
    assert NumpyBackend.name == "numpy" and NumpyBackend.streaming is True
    assert NumpyBackend.unavailable_reason() is None
    effects = [_lim(-1.0, 100.0, 5.0), _lim(-2.0, 100.0, 1.0), Effect("p", "pan", {"pan": 0.5})]
    proc = NumpyBackend().prepare(effects, 48000, 1)
    assert proc.latency == (240 - 1) + (48 - 1)
    assert proc.out_channels == 2
    y = proc.process(white(0.1, 48000, channels=1))
    assert y.shape == (2, 4800) and y.dtype == np.float32
    assert proc.process(np.zeros((1, 0), np.float32)).shape == (2, 0)
    with pytest.raises(AudioError):
        proc.process(np.zeros((2, 10), np.float32))
    with pytest.raises(ParameterError):
        NumpyBackend().prepare(effects, 48000, 3)
    with pytest.raises(ParameterError):
        numpy_backend.make_stage(effects[0], 0.0, 1)


def test_default_chain_at_defaults_is_identity():
    from plugin_bridge.chain import load_chain

    x = drums(0.3, 44100)
    proc = NumpyBackend().prepare(load_chain("default").resolve({}), 44100, 2)
    np.testing.assert_array_equal(proc.process(x), x)


def test_frequencies_above_nyquist_are_clamped():
    y = run(
        Effect("hs", "high_shelf", {"cutoff_hz": 20000.0, "gain_db": 6.0, "q": 0.7}), white(0.1, 22050), 22050
    )
    assert np.isfinite(y).all()
