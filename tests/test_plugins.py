"""Real third-party plugins (Debian zam-plugins, x42-plugins, dragonfly-reverb-vst, dpf-plugins-vst):
discovery, sandboxed probing, parameter maps, hosted rendering, fallback and plugin state.

The packages are installed by ``make test`` (apt); each test that needs one skips with the package's
name when it is missing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from signals import SR, THIRD_OCTAVES, impulse, magnitude_db_at, noise, step_levels_db, stepped_sine

from plugin_bridge import render_array
from plugin_bridge.chain import chain_from_dict
from plugin_bridge.effects import Effect
from plugin_bridge.errors import ChainError
from plugin_bridge.plugins import maps as maps_mod
from plugin_bridge.plugins.discovery import PluginError, PluginRef, load_cache, scan
from plugin_bridge.plugins.probe import probe

pytestmark = pytest.mark.plugins

ZAM_COMP = "/usr/lib/vst3/ZamCompX2.vst3"
ZAM_EQ = "/usr/lib/vst3/ZamEQ2.vst3"
ZAM_MAX = "/usr/lib/vst3/ZaMaximX2.vst3"
DRAGONFLY = "/usr/lib/lxvst/DragonflyRoomReverb-vst.so"
DPL_URI = "http://gareus.org/oss/lv2/dpl#stereo"
XFADE_URI = "http://gareus.org/oss/lv2/xfade"

needs_zam = pytest.mark.skipif(
    not Path(ZAM_COMP).exists(), reason="zam-plugins is not installed (apt-get install zam-plugins)"
)
needs_dragonfly = pytest.mark.skipif(
    not Path(DRAGONFLY).exists(),
    reason="dragonfly-reverb-vst is not installed (apt-get install dragonfly-reverb-vst)",
)
needs_x42 = pytest.mark.skipif(
    not Path("/usr/lib/lv2/dpl.lv2").exists(),
    reason="x42-plugins is not installed (apt-get install x42-plugins)",
)


def _has_dawdreamer() -> bool:
    try:
        import dawdreamer  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


needs_dd = pytest.mark.skipif(not _has_dawdreamer(), reason="dawdreamer is not installed")


@pytest.fixture(autouse=True, scope="module")
def plugin_cache(tmp_path_factory):
    """Every test in this module shares one fresh plugin cache (probes run once per plugin)."""
    path = tmp_path_factory.mktemp("plugin-cache") / "plugins.json"
    old = os.environ.get("PLUGIN_BRIDGE_CACHE")
    os.environ["PLUGIN_BRIDGE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PLUGIN_BRIDGE_CACHE", None)
    else:
        os.environ["PLUGIN_BRIDGE_CACHE"] = old


# --------------------------------------------------------------------------------------------
# maps (no plugin needed)
# --------------------------------------------------------------------------------------------


def test_shipped_maps_load_and_cover_four_effects_and_three_formats():
    maps = maps_mod.list_maps()
    assert {"compressor", "peak", "limiter", "reverb"} <= {m.effect for m in maps}
    assert {"vst3", "vst2", "lv2"} <= {m.plugin.format for m in maps}
    for m in maps:
        values = m.plugin_values(Effect("x", m.effect, {}))
        assert all(0.0 <= v <= 1.0 for v in values.values()), m.name


def test_map_rejects_host_parameters_and_bad_curves():
    base = {
        "effect": "compressor",
        "plugin": {"name": "X", "format": "vst3", "location": "/x.vst3"},
        "params": {"threshold_db": {"param": "Threshold", "range": [-80, 0]}},
        "unmapped": ["ratio", "attack_ms", "release_ms", "makeup_db"],
    }
    assert maps_mod.map_from_dict(base).bindings[0].normalized(-40.0) == pytest.approx(0.5)
    bad = dict(base, params={"threshold_db": {"param": "Gain Reduction", "range": [0, 20]}})
    with pytest.raises(ChainError, match="host/meter"):
        maps_mod.map_from_dict(bad)
    bad = dict(base, params={"threshold_db": {"param": "T", "curve": [[-80, 0], [-40, 0.8], [0, 0.5]]}})
    with pytest.raises(ChainError, match="monotone"):
        maps_mod.map_from_dict(bad)
    with pytest.raises(ChainError, match="neither mapped"):
        maps_mod.map_from_dict(dict(base, unmapped=[]))


def test_measured_curve_interpolates_monotonically_and_clamps(caplog):
    m = maps_mod.load_map(maps_mod.maps_dir() / "peak.ZamEQ2.yaml")
    q = next(b for b in m.bindings if b.canonical == "q")
    qs = np.geomspace(0.2, 10, 200)
    ys = [q.normalized(v) for v in qs]
    assert all(b <= a for a, b in zip(ys, ys[1:], strict=False))  # decreasing: wider Q, narrower band
    assert q.normalized(0.707) == pytest.approx(0.5856)
    with caplog.at_level(logging.WARNING):
        assert q.normalized(0.1) == pytest.approx(0.8608)
    assert "outside its range" in caplog.text


def test_chain_slot_names_a_plugin_and_round_trips():
    chain = chain_from_dict(
        {
            "name": "t",
            "effects": [{"id": "comp", "type": "compressor", "plugin": "ZamCompX2", "params": {"ratio": 4}}],
        }
    )
    (effect,) = chain.resolve()
    assert effect.plugin == "ZamCompX2" and effect.to_dict()["plugin"] == "ZamCompX2"
    assert chain.to_dict()["effects"][0]["plugin"] == "ZamCompX2"
    assert "plugin" not in Effect("g", "gain", {}).to_dict()
    with pytest.raises(ChainError, match="plugin"):
        chain_from_dict({"effects": [{"type": "gain", "plugin": 3}]})


# --------------------------------------------------------------------------------------------
# discovery and the sandboxed probe
# --------------------------------------------------------------------------------------------


def test_a_segfaulting_probe_is_isolated_reported_and_remembered():
    ref = PluginRef("selftest-crash", "crasher", "nowhere")
    result = probe(ref, timeout=30)
    assert not result.ok and "SIGSEGV" in result.reason
    assert load_cache()[ref.key]["status"] == "bad"


def test_a_hanging_probe_times_out():
    result = probe(PluginRef("selftest-hang", "sleeper", "nowhere"), timeout=2)
    assert not result.ok and result.reason.startswith("hung")


@needs_x42
def test_real_crashing_plugin_x42_xfade_is_isolated():
    result = probe(PluginRef("lv2", "xfade", XFADE_URI), timeout=60)
    assert not result.ok and "crashed" in result.reason


@needs_x42
def test_known_bad_plugin_falls_back_with_warning_and_strict_errors(tmp_path, caplog):
    path = tmp_path / "gain.xfade.yaml"
    path.write_text(
        "effect: gain\nplugin: {name: xfade, format: lv2, location: 'http://gareus.org/oss/lv2/xfade'}\n"
        "params: {gain_db: {param: Gain, range: [-48, 24]}}\n"
    )
    effect = Effect("g", "gain", {"gain_db": -6.0}, plugin=str(path))
    x = noise(0.2)
    with caplog.at_level(logging.WARNING):
        y = render_array(x, SR, [effect], backend="dawdreamer" if _has_dawdreamer() else "numpy")
    np.testing.assert_allclose(y, x * 10 ** (-6 / 20), atol=1e-5)
    assert "xfade" in caplog.text and "built-in gain" in caplog.text
    with pytest.raises(PluginError, match="strict"):
        render_array(x, SR, [effect], backend="numpy", strict=True)


@needs_zam
def test_scan_finds_the_zam_plugins_without_loading_them():
    refs = scan(formats=("vst3", "vst2"))
    names = {(r.format, r.name) for r in refs}
    assert ("vst3", "ZamCompX2") in names and ("vst2", "ZamCompX2") in names


@needs_zam
def test_inspect_lists_parameters_ranges_and_host_meters():
    result = probe(PluginRef("vst3", "ZamCompX2", ZAM_COMP), timeout=60)
    assert result.ok, result.reason
    params = {p["name"]: p for p in result.info["parameters"]}
    assert params["Threshold"]["min"] == -80 and params["Threshold"]["max"] == 0
    assert params["Threshold"]["unit"] == "dB" and params["Threshold"]["automatable"]
    assert not params["Gain Reduction"]["automatable"]
    assert result.info["inputs"] == 2 and result.info["latency"] == 0


# --------------------------------------------------------------------------------------------
# hosted rendering
# --------------------------------------------------------------------------------------------

LEVELS = list(range(-50, 1, 5))


def _comp(thr: float, ratio: float, plugin: str | None) -> Effect:
    return Effect(
        "comp",
        "compressor",
        {"threshold_db": thr, "ratio": ratio, "attack_ms": 5.0, "release_ms": 100.0, "makeup_db": 2.0},
        plugin=plugin,
    )


@needs_zam
@pytest.mark.parametrize(
    "backend,plugin",
    [
        ("pedalboard", "ZamCompX2"),
        pytest.param("dawdreamer", "compressor.ZamCompX2-vst2", marks=needs_dd),
    ],
)
def test_zamcompx2_map_reproduces_the_builtin_static_curve(backend, plugin):
    x = stepped_sine(LEVELS)
    worst = 0.0
    for thr, ratio in [(-30.0, 4.0), (-20.0, 2.0), (-40.0, 8.0)]:
        ref = step_levels_db(render_array(x, SR, [_comp(thr, ratio, None)], backend="numpy"), len(LEVELS))
        got = step_levels_db(render_array(x, SR, [_comp(thr, ratio, plugin)], backend=backend), len(LEVELS))
        worst = max(worst, float(np.max(np.abs(got - ref))))
    assert worst < 1.5  # measured 0.35 dB
    assert worst > 0.0  # it really was the plugin, not the built-in


def _peak(f: float, g: float, q: float, plugin: str | None) -> Effect:
    return Effect("mid", "peak", {"cutoff_hz": f, "gain_db": g, "q": q}, plugin=plugin)


@needs_zam
@pytest.mark.parametrize("backend", ["pedalboard", pytest.param("dawdreamer", marks=needs_dd)])
def test_zameq2_map_matches_the_builtin_peak_at_band_centres(backend):
    """Mono-only ZamEQ2 runs per channel on stereo audio; both channels match the built-in."""
    for f, g, q in [(250.0, 6.0, 1.0), (1000.0, -9.0, 0.707), (4000.0, 12.0, 2.0)]:
        ref = render_array(impulse(16384), SR, [_peak(f, g, q, None)], backend="numpy")
        got = render_array(impulse(16384), SR, [_peak(f, g, q, "ZamEQ2")], backend=backend)
        freqs = np.array([f / 2, f / np.sqrt(2), f, f * np.sqrt(2), f * 2])
        for ch in (0, 1):
            diff = magnitude_db_at(got[ch], SR, freqs) - magnitude_db_at(ref[0], SR, freqs)
            assert np.max(np.abs(diff)) < 1.0, (f, g, q, ch, diff)
        assert abs(magnitude_db_at(got[0], SR, np.array([f]))[0] - g) < 1.0


@needs_zam
def test_zameq2_whole_spectrum_within_1db_at_third_octaves():
    ref = render_array(impulse(16384), SR, [_peak(1000.0, 6.0, 1.0, None)], backend="numpy")
    got = render_array(impulse(16384), SR, [_peak(1000.0, 6.0, 1.0, "ZamEQ2")], backend="pedalboard")
    f = THIRD_OCTAVES[THIRD_OCTAVES <= 12500]
    assert np.max(np.abs(magnitude_db_at(got[0], SR, f) - magnitude_db_at(ref[0], SR, f))) < 1.0


@needs_zam
@pytest.mark.parametrize(
    "backend,plugin",
    [
        ("pedalboard", "ZaMaximX2"),
        pytest.param("dawdreamer", "ZaMaximX2", marks=needs_dd),
        pytest.param("dawdreamer", "dpl", marks=[needs_dd, needs_x42]),
    ],
)
def test_limiter_maps_hold_the_ceiling_with_latency_compensated(backend, plugin):
    x = noise(1.0, level_db=-6.0)
    lim = Effect("lim", "limiter", {"ceiling_db": -3.0, "release_ms": 50.0}, plugin=plugin)
    y = render_array(x, SR, [lim], backend=backend)
    assert y.shape == x.shape
    assert 20 * np.log10(np.abs(y[:, 2000:]).max()) < -2.9  # ZaMaximX2 overshoots by < 0.1 dB
    # aligned: the plugin's look-ahead is trimmed (cross-correlation peaks at lag 0)
    c = np.correlate(y[0, 20000:21000], x[0, 20000:21000], "full")
    assert int(np.argmax(c)) - 999 == 0


@needs_zam
def test_same_chain_renders_identically_twice(tmp_path):
    chain = {
        "name": "hosted",
        "effects": [
            {
                "id": "comp",
                "type": "compressor",
                "plugin": "ZamCompX2",
                "params": {"threshold_db": -24, "ratio": 3},
            },
            {"id": "mid", "type": "peak", "plugin": "ZamEQ2", "params": {"cutoff_hz": 2000, "gain_db": 4}},
            {"id": "out", "type": "gain", "params": {"gain_db": -1}},
            {"id": "lim", "type": "limiter", "plugin": "ZaMaximX2", "params": {"ceiling_db": -1}},
        ],
    }
    ch = chain_from_dict(chain)
    x = noise(1.0, level_db=-12.0)
    for backend in ["pedalboard"] + (["dawdreamer"] if _has_dawdreamer() else []):
        a = render_array(x, SR, ch, backend=backend)
        b = render_array(x, SR, ch, backend=backend)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, render_array(x, SR, ch, backend="numpy"), atol=1e-4)


@needs_zam
def test_numpy_backend_falls_back_with_a_warning_naming_the_substitution(caplog):
    x = stepped_sine([-20.0, -10.0])
    with caplog.at_level(logging.WARNING):
        y = render_array(x, SR, [_comp(-30, 4, "ZamCompX2")], backend="numpy")
    np.testing.assert_array_equal(y, render_array(x, SR, [_comp(-30, 4, None)], backend="numpy"))
    assert "ZamCompX2" in caplog.text and "built-in compressor" in caplog.text
    with pytest.raises(PluginError, match="cannot be hosted by the numpy backend"):
        render_array(x, SR, [_comp(-30, 4, "ZamCompX2")], backend="numpy", strict=True)


def test_unknown_map_falls_back_and_strict_errors(caplog):
    x = noise(0.1)
    with caplog.at_level(logging.WARNING):
        render_array(x, SR, [_comp(-30, 4, "NoSuchPlugin")], backend="numpy")
    assert "NoSuchPlugin" in caplog.text
    with pytest.raises(PluginError, match="no plugin map"):
        render_array(x, SR, [_comp(-30, 4, "NoSuchPlugin")], backend="numpy", strict=True)


@needs_zam
def test_cli_render_strict_is_an_error(stereo_wav, tmp_path, capsys):
    from plugin_bridge.cli import main

    chain = tmp_path / "c.yaml"
    chain.write_text("effects: [{id: comp, type: compressor, plugin: ZamCompX2, params: {ratio: 2}}]\n")
    out = tmp_path / "o.wav"
    args = ["render", str(stereo_wav), "-o", str(out), "--chain", str(chain), "--backend", "numpy"]
    assert main([*args, "--strict"]) == 1
    assert "ZamCompX2" in capsys.readouterr().err
    assert main(args) == 0 and out.exists()


@needs_zam
def test_cli_plugins_inspect_and_scaffold(tmp_path, capsys):
    from plugin_bridge.cli import main

    assert main(["plugins", "inspect", "ZamCompX2", "--format", "vst3"]) == 0
    text = capsys.readouterr().out
    assert "Threshold" in text and "no (host/meter)" in text
    out = tmp_path / "eq.yaml"
    assert (
        main(["plugins", "map-scaffold", "ZamEQ2", "--format", "vst3", "--effect", "peak", "-o", str(out)])
        == 0
    )
    m = maps_mod.load_map(out)
    assert {b.param for b in m.bindings} == {"Frequency 1", "Boost/Cut 1", "Bandwidth 1"}


# --------------------------------------------------------------------------------------------
# plugin state
# --------------------------------------------------------------------------------------------


# States are captured (`capture_slot_states`) and restored (``plugin_states``) through the public
# paths, which host the plugins in a child process: nothing here loads a plugin in the test process.


@needs_zam
def test_pedalboard_state_round_trips():
    from plugin_bridge.backends.hosted import capture_slot_states
    from plugin_bridge.plugins.planning import plan_slot

    slot = _peak(3000.0, 9.0, 2.0, "ZamEQ2")
    other = _peak(200.0, -3.0, 0.5, "ZamEQ2")
    (state,) = capture_slot_states([plan_slot(slot, "pedalboard")], "pedalboard", SR)
    assert state["kind"] == "vstpreset" and len(state["data"]) == 1  # mono plugin: one state, every channel
    x = impulse(8192)
    want = render_array(x, SR, [slot], backend="pedalboard")
    restored = render_array(x, SR, [other], backend="pedalboard", plugin_states={"mid": state})
    np.testing.assert_array_equal(restored, want)
    assert np.max(np.abs(render_array(x, SR, [other], backend="pedalboard") - want)) > 1e-2


@needs_dragonfly
@needs_dd
def test_dawdreamer_vst2_state_round_trips_through_fxb():
    from plugin_bridge.backends.hosted import capture_slot_states
    from plugin_bridge.plugins.planning import plan_slot

    rev = Effect("rev", "reverb", {"room_size": 0.8, "wet_level": 0.4}, plugin="DragonflyRoomReverb")
    (state,) = capture_slot_states([plan_slot(rev, "dawdreamer")], "dawdreamer", SR)
    assert state["kind"] == "fxb"
    other = Effect("rev", "reverb", {"room_size": 0.1, "wet_level": 0.9}, plugin="DragonflyRoomReverb")
    # Dragonfly's reverb is not sample-deterministic even between two fresh instances (measured
    # ~1e-3 differences), so the audio is compared by tail energy
    x = impulse(SR)

    def tail_energy(effect: Effect, states: dict | None = None) -> float:
        y = render_array(x, SR, [effect], backend="dawdreamer", plugin_states=states)
        return float(np.sum(y[:, 4000:].astype(np.float64) ** 2))

    ea, eb = tail_energy(rev), tail_energy(other, {"rev": state})
    assert ea > 1e-6 and abs(10 * np.log10(eb / ea)) < 0.5
    assert abs(10 * np.log10(tail_energy(other) / ea)) > 1.0  # without the state it sounds different


@needs_zam
@needs_dd
def test_dawdreamer_vst3_state_is_a_vstpreset_and_restores_across_hosts():
    from plugin_bridge.backends.hosted import capture_slot_states
    from plugin_bridge.plugins.planning import plan_slot

    comp = _comp(-30.0, 5.0, "compressor.ZamCompX2")
    other = _comp(-5.0, 2.0, "compressor.ZamCompX2")
    (state,) = capture_slot_states([plan_slot(comp, "dawdreamer")], "dawdreamer", SR)
    assert state["kind"] == "vstpreset"
    (pb_state,) = capture_slot_states([plan_slot(comp, "pedalboard")], "pedalboard", SR)
    x = noise(0.5, level_db=-6.0)
    want = render_array(x, SR, [comp], backend="dawdreamer")
    for st in (state, pb_state):  # DawDreamer's own and pedalboard's .vstpreset
        got = render_array(x, SR, [other], backend="dawdreamer", plugin_states={"comp": st})
        np.testing.assert_array_equal(got, want)


@needs_zam
@needs_dd
def test_dawdreamer_graph_two_mono_plugins_and_a_stereo_plugin_on_mono_match_pedalboard():
    """Faust segments around plugin nodes: per-channel splits for each mono plugin, mono -> stereo plugin."""
    chain = [
        _peak(500.0, 6.0, 1.0, "ZamEQ2"),
        Effect("g", "gain", {"gain_db": -2.0}),
        Effect("hi", "peak", {"cutoff_hz": 3000.0, "gain_db": -4.0, "q": 2.0}, plugin="ZamEQ2"),
        _comp(-20.0, 3.0, "ZamCompX2"),
    ]
    for channels in (2, 1):
        x = noise(0.5, level_db=-12.0, channels=channels)
        a = render_array(x, SR, chain, backend="dawdreamer")
        b = render_array(x, SR, chain, backend="pedalboard")
        assert a.shape == b.shape == x.shape
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_lv2_manifest_parsing_without_lv2ls():
    from plugin_bridge.plugins.discovery import manifest_plugin_uris

    text = (
        "@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n@prefix dpl: <http://gareus.org/oss/lv2/dpl#> .\n"
        "dpl:stereo\n\ta lv2:Plugin ;\n\tlv2:binary <dpl.so> .\n"
        "<urn:zamaudio:ZamComp> a lv2:Plugin, lv2:CompressorPlugin ; lv2:binary <z.so> .\n"
        "dpl:ui_gl a ui:X11UI .\n"
    )
    assert manifest_plugin_uris(text) == ["http://gareus.org/oss/lv2/dpl#stereo", "urn:zamaudio:ZamComp"]


@needs_zam
@needs_dd
def test_sessions_host_plugin_slots_on_dawdreamer_too(tmp_path):
    """A session with a plugin slot renders the hosted plugin on dawdreamer (not the built-in)."""
    import soundfile as sf
    import yaml
    from signals import noise

    from plugin_bridge.graph import render_session_array

    sf.write(tmp_path / "a.wav", noise(1.0, level_db=-10).T, SR, subtype="FLOAT")
    comp = {"id": "c", "type": "compressor", "params": {"threshold_db": -30, "ratio": 8, "attack_ms": 5}}
    session = tmp_path / "s.yaml"
    session.write_text(
        yaml.safe_dump(
            {
                "tracks": [
                    {"name": "a", "file": "a.wav", "chain": {"effects": [{**comp, "plugin": "ZamCompX2"}]}}
                ]
            }
        )
    )
    hosted_dd, _, _ = render_session_array(session, backend="dawdreamer")
    hosted_pb, _, _ = render_session_array(session, backend="pedalboard")
    builtin, _, _ = render_session_array(session, backend="numpy")
    assert np.max(np.abs(hosted_dd - hosted_pb)) < 1e-3
    assert np.max(np.abs(hosted_dd - builtin)) > 1e-3  # really the plugin, not the built-in
