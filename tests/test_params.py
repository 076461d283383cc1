"""ParamSpec / ParamSpace: exact round trips, clamping, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_bridge.chain import default_space
from plugin_bridge.errors import ParameterError
from plugin_bridge.params import ParamSpace, ParamSpec

SPECS = [
    ParamSpec("g", "dB", -12.0, 12.0, 0.0, "linear"),
    ParamSpec("f", "Hz", 20.0, 20000.0, 1000.0, "log"),
    ParamSpec("a", "ratio", 0.01, 1.0, 0.5, "db"),
    ParamSpec("m", "", 0.0, 4.0, 1.0, "discrete", step=1.0),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.curve)
@given(u=st.floats(0.0, 1.0))
def test_value_round_trip_is_exact_on_the_range(spec, u):
    value = spec.denormalize(u)
    assert spec.min <= value <= spec.max
    assert math.isclose(spec.denormalize(spec.normalize(value)), value, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: s.curve)
@given(u=st.floats(0.0, 1.0))
def test_position_round_trip(spec, u):
    assert math.isclose(spec.normalize(spec.denormalize(u)), u, abs_tol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.curve)
def test_endpoints_map_exactly(spec):
    assert spec.denormalize(0.0) == spec.min and spec.denormalize(1.0) == spec.max
    assert spec.normalize(spec.min) == 0.0 and spec.normalize(spec.max) == 1.0


def test_log_curve_is_geometric():
    f = SPECS[1]
    assert math.isclose(f.denormalize(0.5), math.sqrt(20.0 * 20000.0), rel_tol=1e-12)


def test_discrete_snaps_to_steps():
    m = SPECS[3]
    assert m.denormalize(0.3) == 1.0 and m.denormalize(0.4) == 2.0
    with pytest.raises(ParameterError, match="step grid"):
        m.check(1.5)


def test_out_of_range_value_is_an_error_naming_it():
    with pytest.raises(ParameterError, match=r"g=13 dB is out of range \[-12, 12\] dB"):
        SPECS[0].normalize(13.0)


def test_bad_specs_are_rejected():
    with pytest.raises(ParameterError, match="min > 0"):
        ParamSpec("x", "Hz", 0.0, 10.0, 1.0, "log")
    with pytest.raises(ParameterError, match="below max"):
        ParamSpec("x", "dB", 5.0, 5.0, 5.0)
    with pytest.raises(ParameterError, match="unknown curve"):
        ParamSpec("x", "dB", 0.0, 1.0, 0.5, "cubic")


def test_space_vector_dict_round_trip_and_clamping():
    space = ParamSpace(tuple(SPECS), "t-v1")
    values = space.to_values([-0.5, 0.5, 1.5, 0.25])
    assert values["g"] == -12.0 and values["a"] == 1.0 and values["m"] == 1.0
    vec = space.to_vector(values)
    np.testing.assert_allclose(space.to_values(vec)["f"], values["f"], rtol=1e-12)


@pytest.mark.parametrize(
    "vector, message",
    [
        ([0.1, 0.2, 0.3], "has 3 entries, space 't-v1' needs 4"),
        ([0.1, float("nan"), 0.3, 0.4], r"entry 1 \(f\) is nan"),
        ([0.1, 0.2, float("inf"), 0.4], r"entry 2 \(a\) is inf"),
    ],
)
def test_bad_vectors_name_the_entry(vector, message):
    with pytest.raises(ParameterError, match=message):
        ParamSpace(tuple(SPECS), "t-v1").to_values(vector)


def test_unknown_name_lists_valid_ones():
    space = ParamSpace(tuple(SPECS), "t-v1")
    with pytest.raises(ParameterError, match="unknown parameter 'q'.*valid: g, f, a, m"):
        space.to_vector({"q": 1.0})


def test_default_space_covers_the_seed_chain():
    space = default_space()
    assert space.version == "mix-v2"
    expected = {
        "input.gain_db",
        "comp.threshold_db",
        "comp.ratio",
        "comp.attack_ms",
        "comp.release_ms",
        "comp.makeup_db",
        "low.gain_db",
        "eq250.gain_db",
        "eq500.gain_db",
        "mid.gain_db",
        "eq2k.gain_db",
        "high.gain_db",
        "presence.gain_db",
        "air.gain_db",
        "reverb.room_size",
        "reverb.wet_level",
        "delay.delay_ms",
        "delay.feedback",
        "delay.mix",
        "width.width",
        "output.gain_db",
    }
    assert set(space.names) == expected
    for s in space:
        if s.unit in ("Hz", "ms"):
            assert s.curve == "log", s.name
        if s.unit == "dB" and s.name.endswith("gain_db"):  # gains: linear in dB, musically sane
            # (the input gain spans 48 dB: it brings any song to the compressor's working level)
            assert s.curve == "linear" and s.max - s.min <= (48 if s.name == "input.gain_db" else 24), s.name
    assert len(space.fingerprint) == 16
