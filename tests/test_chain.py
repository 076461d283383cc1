"""Chain files: loading, validation with clear errors, resolution of values and vectors."""

from __future__ import annotations

import json

import pytest

from plugin_bridge.chain import chain_from_dict, list_chains, load_chain
from plugin_bridge.effects import EFFECT_TYPES, Effect, clamp_to_sample_rate
from plugin_bridge.errors import ChainError, ParameterError


def test_shipped_chains_load():
    names = list_chains()
    assert {"channel", "default", "vocal", "master"} <= set(names)
    for name in names:
        chain = load_chain(name)
        assert chain.resolve()  # defaults are valid


def test_default_vector_is_neutral():
    chain = load_chain("default")
    effects = chain.resolve()
    neutral = [e.id for e in effects if e.is_neutral()]
    assert set(neutral) == {e.id for e in effects}


def test_resolve_vector_gives_real_units():
    chain = load_chain("default")
    effects = {e.id: e for e in chain.resolve_vector([1.0] * len(chain.space))}
    assert effects["comp"]["ratio"] == 8.0
    assert effects["low"]["gain_db"] == 12.0 and effects["low"]["cutoff_hz"] == 100.0
    assert effects["width"]["width"] == 4.0
    assert effects["delay"]["delay_ms"] == 800.0


def _chain(effects):
    return {"name": "t", "effects": effects}


def test_unknown_effect_lists_valid_names():
    with pytest.raises(ChainError, match="unknown effect 'fuzz'; valid effects: " + ", ".join(EFFECT_TYPES)):
        chain_from_dict(_chain([{"id": "x", "type": "fuzz"}]))


def test_unknown_parameter_lists_valid_names():
    with pytest.raises(ChainError, match="unknown parameter 'freq'; valid: cutoff_hz, gain_db, q"):
        chain_from_dict(_chain([{"id": "x", "type": "peak", "params": {"freq": 100}}]))


def test_out_of_range_fixed_value_is_an_error():
    with pytest.raises(ChainError, match=r"hp.cutoff_hz=30000 Hz is out of range"):
        chain_from_dict(_chain([{"id": "hp", "type": "highpass", "params": {"cutoff_hz": 30000}}]))


def test_predicted_range_must_stay_inside_the_effect_range():
    with pytest.raises(ChainError, match="leaves the valid range"):
        chain_from_dict(_chain([{"id": "g", "type": "gain", "params": {"gain_db": {"min": -100, "max": 0}}}]))


def test_duplicate_ids_and_empty_chains_are_errors():
    with pytest.raises(ChainError, match="duplicate effect ids"):
        chain_from_dict(_chain([{"id": "a", "type": "gain"}, {"id": "a", "type": "gain"}]))
    with pytest.raises(ChainError, match="non-empty list"):
        chain_from_dict(_chain([]))


def test_chain_files_in_json_and_broken_yaml(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(
        json.dumps(_chain([{"id": "g", "type": "gain", "params": {"gain_db": {"min": -6, "max": 6}}}]))
    )
    chain = load_chain(good)
    assert chain.space.names == ["g.gain_db"]
    bad = tmp_path / "c.yaml"
    bad.write_text("effects: [ {id: g\n")
    with pytest.raises(ChainError, match="not valid YAML"):
        load_chain(bad)
    with pytest.raises(
        ChainError, match="unknown chain 'nope'; shipped chains: channel, default, master, vocal"
    ):
        load_chain("nope")


def test_resolve_rejects_out_of_range_and_unknown_values():
    chain = load_chain("default")
    with pytest.raises(ParameterError, match="low.gain_db=20 dB is out of range"):
        chain.resolve({"low.gain_db": 20})
    with pytest.raises(ParameterError, match="unknown parameter 'low.freq'"):
        chain.resolve({"low.freq": 20})


def test_frequencies_are_clamped_below_nyquist():
    e = Effect("air", "high_shelf", {"cutoff_hz": 12000.0, "gain_db": 3.0})
    lowered = clamp_to_sample_rate(e, 16000)
    assert lowered["cutoff_hz"] == pytest.approx(7200.0)
    assert clamp_to_sample_rate(e, 44100) is e
