"""The same chain renders alike on every available backend (measured on the audio).

Tolerances (the core issue's): gain, EQ and width within 0.1 dB at 1/3-octave centres; compressor
static curves within 1 dB; reverb T30 within 10 % and level within 0.5 dB; delay echoes at the same
sample with energy within 0.3 dB; the limiter's ceiling holds and latency is compensated.
"""

from __future__ import annotations

import numpy as np
import pytest
from signals import (
    SR,
    impulse,
    magnitude_db_at,
    pink_noise,
    rms_db,
    step_levels_db,
    stepped_sine,
    t30,
)

from plugin_bridge import Effect, render_array
from plugin_bridge.backends import available_backends

BACKENDS = [name for name, why in available_backends().items() if why is None]
REFERENCE = "numpy"


def _render(effects, audio, backend, sr=SR, tail=False):
    return render_array(audio, sr, list(effects), backend=backend, tail=tail)


def _others():
    return [b for b in BACKENDS if b != REFERENCE]


def test_all_three_backends_are_available_here():
    assert {"pedalboard", "numpy"} <= set(BACKENDS)


LINEAR_CHAINS = {
    "gain": [Effect("g", "gain", {"gain_db": -7.5})],
    "eq": [
        Effect("hp", "highpass", {"cutoff_hz": 60.0}),
        Effect("low", "low_shelf", {"cutoff_hz": 120.0, "gain_db": 4.0, "q": 0.707}),
        Effect("mid", "peak", {"cutoff_hz": 1000.0, "gain_db": -6.0, "q": 1.4}),
        Effect("high", "high_shelf", {"cutoff_hz": 6000.0, "gain_db": 5.0, "q": 0.9}),
        Effect("air", "high_shelf", {"cutoff_hz": 12000.0, "gain_db": -3.0, "q": 0.707}),
    ],
}


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("name", list(LINEAR_CHAINS))
@pytest.mark.parametrize("backend", _others())
def test_linear_magnitude_response_agrees(name, backend, sr):
    x = impulse(1 << 16)
    ref = magnitude_db_at(_render(LINEAR_CHAINS[name], x, REFERENCE, sr)[0], sr)
    got = magnitude_db_at(_render(LINEAR_CHAINS[name], x, backend, sr)[0], sr)
    assert np.max(np.abs(ref - got)) < 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_eq_magnitude_matches_the_cookbook_design(backend):
    """Absolute check: a +6 dB peak reaches +6 dB at its centre and ~0 dB far away."""
    fx = [Effect("p", "peak", {"cutoff_hz": 1000.0, "gain_db": 6.0, "q": 1.0})]
    mag = magnitude_db_at(_render(fx, impulse(1 << 16), backend)[0], SR, np.array([30.0, 1000.0, 16000.0]))
    assert abs(mag[1] - 6.0) < 0.05 and abs(mag[0]) < 0.1 and abs(mag[2]) < 0.2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("width", [0.0, 0.5, 1.6])
def test_width_agrees_with_mid_side_math(backend, width):
    x = np.zeros((2, 4096), dtype=np.float32)
    x[0, 0] = 1.0  # left only: L' = (1 + w)/2, R' = (1 - w)/2
    y = _render([Effect("w", "width", {"width": width})], x, backend)
    assert y[0, 0] == pytest.approx((1 + width) / 2, abs=1e-6)
    assert y[1, 0] == pytest.approx((1 - width) / 2, abs=1e-6)


LEVELS = list(range(-50, 1, 5))
COMP = [
    Effect(
        "c",
        "compressor",
        {"threshold_db": -24.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 80.0, "makeup_db": 6.0},
    )
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compressor_static_curve(backend):
    x = stepped_sine(LEVELS)
    got = step_levels_db(_render(COMP, x, backend), len(LEVELS))
    inp = step_levels_db(x, len(LEVELS))
    # theory: above threshold the peak level rises 1/ratio dB per dB (RMS of a sine is peak - 3 dB)
    peak_in = np.array(LEVELS, dtype=float)
    theory_peak = np.where(peak_in > -24, -24 + (peak_in + 24) / 4, peak_in) + 6
    assert np.max(np.abs(got - (inp - peak_in + theory_peak))) < 1.0
    if backend != REFERENCE:
        ref = step_levels_db(_render(COMP, x, REFERENCE), len(LEVELS))
        assert np.max(np.abs(got - ref)) < 1.0


REVERB = [
    Effect(
        "r", "reverb", {"room_size": 0.6, "damping": 0.4, "wet_level": 0.3, "dry_level": 0.0, "width": 1.0}
    )
]


@pytest.mark.parametrize("backend", _others())
def test_reverb_decay_and_level_agree(backend):
    x = impulse(4 * SR)
    ref_ir, ir = _render(REVERB, x, REFERENCE)[0], _render(REVERB, x, backend)[0]
    assert t30(ir) == pytest.approx(t30(ref_ir), rel=0.10)
    noise = pink_noise(3.0)
    assert rms_db(_render(REVERB, noise, backend)) == pytest.approx(
        rms_db(_render(REVERB, noise, REFERENCE)), abs=0.5
    )


DELAY = [Effect("d", "delay", {"delay_ms": 125.0, "feedback": 0.5, "mix": 0.4})]


@pytest.mark.parametrize("backend", BACKENDS)
def test_delay_echoes(backend):
    d = round(0.125 * SR)
    y = _render(DELAY, impulse(SR), backend)[0]
    peaks = np.flatnonzero(np.abs(y) > 1e-4)
    assert list(peaks[:4]) == [0, d, 2 * d, 3 * d]
    assert y[0] == pytest.approx(0.6, abs=1e-6)
    ref = _render(DELAY, impulse(SR), REFERENCE)[0]
    assert rms_db(y) == pytest.approx(rms_db(ref), abs=0.3)


LIMITER = [
    Effect("gain", "gain", {"gain_db": 12.0}),
    Effect("lim", "limiter", {"ceiling_db": -1.0, "release_ms": 50.0, "lookahead_ms": 5.0}),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_limiter_ceiling_and_latency_compensation(backend):
    x = pink_noise(2.0, level_db=-14.0)
    y = _render(LIMITER, x, backend)
    assert np.max(np.abs(y)) <= 10 ** (-1 / 20) + 1e-6
    click = np.zeros((2, SR // 2), dtype=np.float32)
    click[:, 10000] = 0.05  # below the ceiling after +12 dB: passes at the same position
    yc = _render(LIMITER, click, backend)
    assert int(np.argmax(np.abs(yc[0]))) == 10000
    assert yc[0, 10000] == pytest.approx(0.05 * 10 ** (12 / 20), rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_chain_is_deterministic_and_keeps_tails(backend):
    x = pink_noise(1.0)
    vec = [0.5] * 21
    a = render_array(x, SR, "default", vector=vec, backend=backend, tail=True)
    b = render_array(x, SR, "default", vector=vec, backend=backend, tail=True)
    assert np.array_equal(a, b)
    assert a.shape[1] > x.shape[1]  # reverb and delay tails
    assert np.isfinite(a).all()
