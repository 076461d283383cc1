"""Sessions rendered through DawDreamer's native RenderEngine graph agree with the numpy executor."""

from __future__ import annotations

import numpy as np
import pytest
from signals import SR, noise, sine

pytest.importorskip("dawdreamer")

from session_files import tracks as _tracks
from session_files import write_session
from session_files import write_wav as _write

from plugin_bridge.graph.dawdreamer_graph import (  # noqa: E402
    DawDreamerSessionGraph,
    edge_code,
    node_code,
    plan_session,
    render_session_dawdreamer,
)
from plugin_bridge.graph.executor import SessionGraph, _blocks, render_session_array
from plugin_bridge.graph.signal_flow import track_pan_gains  # noqa: E402
from plugin_bridge.session import load_session  # noqa: E402

pytestmark = pytest.mark.dawdreamer

REVERB = {"effects": [{"id": "r", "type": "reverb", "params": {"wet_level": 0.4, "dry_level": 0.0}}]}
LIMITER = {"effects": [{"id": "lim", "type": "limiter", "params": {"ceiling_db": -1, "lookahead_ms": 5}}]}


def _session(tmp_path, data, name="s.yaml"):
    return load_session(write_session(tmp_path, data, name))


@pytest.fixture
def stems(tmp_path):
    a = noise(1.0, seed=1)
    b = sine(330, 1.0, level_db=-10)
    c = noise(0.6, seed=2, level_db=-25)  # shorter: padded
    m = sine(220, 0.8, level_db=-8, channels=1)  # mono
    for name, x in zip("abcm", (a, b, c, m), strict=True):
        _write(tmp_path, f"{name}.wav", x)
    return a, b, c, m


def _residual_db(got: np.ndarray, ref: np.ndarray) -> float:
    err = np.mean((got.astype(np.float64) - ref) ** 2) / np.mean(ref.astype(np.float64) ** 2)
    return float(10 * np.log10(max(err, 1e-30)))


def _executor(session, backend):
    """``session`` rendered by the mixer's Python graph executor (even once the mixer dispatches the
    dawdreamer backend to the native graph)."""
    graph = SessionGraph(session, backend)
    blocks = list(_blocks(graph, graph.length + graph.tail, 65536))
    mix = np.concatenate([m for m, _ in blocks], axis=1)
    return mix, {k: np.concatenate([st[k] for _, st in blocks], axis=1) for k in graph.sources}


def _both(session):
    """(native graph, numpy executor) renders of ``session``: mix, rate and stems of each."""
    return render_session_dawdreamer(session), render_session_array(session, backend="numpy")


def _agree_exactly(session, atol=1e-6):
    (mix, sr, st), (ref, ref_sr, ref_st) = _both(session)
    assert sr == ref_sr and mix.dtype == np.float32 and mix.shape == ref.shape
    np.testing.assert_allclose(mix, ref, atol=atol)
    assert list(st) == list(ref_st)
    for k in st:
        assert st[k].dtype == np.float32 and st[k].shape == ref_st[k].shape
        np.testing.assert_allclose(st[k], ref_st[k], atol=atol)
    return mix, st


def test_unprocessed_stereo_tracks_sum_exactly(tmp_path, stems):
    a, b, c, _ = stems
    mix, _ = _agree_exactly(_session(tmp_path, {"tracks": _tracks("a", "b", "c")}))
    expected = a.astype(np.float64) + b
    expected[:, : c.shape[1]] += c
    np.testing.assert_allclose(mix, expected, atol=1e-6)


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_mono_and_stereo_pan_laws(tmp_path, stems, pan):
    _, b, _, m = stems
    tracks = _tracks("m", "b", m={"pan": pan, "gain_db": -2.0}, b={"pan": -pan})
    mix, st = _agree_exactly(_session(tmp_path, {"tracks": tracks}))
    gl, gr = track_pan_gains(pan, 1)
    np.testing.assert_allclose(st["m"][0, : m.shape[1]], m[0] * gl * 10 ** (-2 / 20), atol=1e-6)
    np.testing.assert_allclose(st["m"][1, : m.shape[1]], m[0] * gr * 10 ** (-2 / 20), atol=1e-6)
    bl, br = track_pan_gains(-pan, 2)
    np.testing.assert_allclose(st["b"], b * np.array([[bl], [br]]), atol=1e-6)


def test_pre_and_post_fader_sends(tmp_path, stems):
    bus = [{"name": "fx", "gain_db": -3.0, "pan": 0.2}]
    sends = [{"bus": "fx", "level_db": -6.0}, {"bus": "fx", "level_db": -9.0, "pre_fader": True}]
    tracks = _tracks("a", "m", a={"gain_db": -120.0, "sends": sends[1:]}, m={"gain_db": -4.0, "sends": sends})
    _agree_exactly(_session(tmp_path, {"tracks": tracks, "buses": bus}))
    # a silenced fader silences a post-fader send, not a pre-fader one
    post = _tracks("a", a={"gain_db": -120.0, "sends": sends[:1]})
    mix, _ = _agree_exactly(_session(tmp_path, {"tracks": post, "buses": bus}, "post.yaml"))
    assert np.max(np.abs(mix)) < 1e-5


def test_faders_polarity_mute_solo(tmp_path, stems):
    tracks = _tracks("a", "b", "m", a={"gain_db": -6.0, "invert": True}, b={"mute": True})
    _, st = _agree_exactly(_session(tmp_path, {"tracks": tracks}))
    assert set(st) == {"a", "m"}
    tracks = _tracks("a", "b", "m", b={"solo": True}, m={"solo": True, "invert": True})
    _, st = _agree_exactly(_session(tmp_path, {"tracks": tracks}, "solo.yaml"))
    assert set(st) == {"b", "m"}
    tracks = _tracks("a", "b", a={"mute": True}, b={"mute": True})
    mix, st = _agree_exactly(_session(tmp_path, {"tracks": tracks}, "silent.yaml"))
    assert st == {} and not mix.any()


def test_reverb_bus(tmp_path, stems):
    bus = [{"name": "verb", "chain": REVERB}]
    tracks = _tracks("a", "m", a={"sends": [{"bus": "verb", "level_db": -10}]}, m={"output": "verb"})
    s = _session(tmp_path, {"tracks": tracks, "buses": bus})
    (mix, _, st), (ref, _, ref_st) = _both(s)
    assert mix.shape == ref.shape and mix.shape[1] > SR and np.max(np.abs(mix[:, SR:])) > 1e-4
    assert _residual_db(mix, ref) < -40
    np.testing.assert_allclose(st["a"], ref_st["a"], atol=1e-6)


def test_chain_per_track_and_master_chain(tmp_path, stems):
    buses = [
        {"name": "verb", "chain": REVERB, "output": "grp"},
        {"name": "grp", "gain_db": -1.0, "invert": True},
    ]
    pan = {"effects": [{"id": "p", "type": "pan", "params": {"pan": 0.5}}]}  # mono in, stereo out
    tracks = _tracks(
        "a",
        "b",
        "c",
        "m",
        a={"chain": {"chain": "default", "vector": [0.6] * 21}, "output": "grp"},
        b={"chain": {"chain": "channel", "vector": [0.4] * 10}, "pan": -0.3},
        c={"chain": {"chain": "channel", "vector": [0.7] * 10}, "sends": [{"bus": "verb", "level_db": -8}]},
        m={"chain": "vocal", "pan": 0.4, "sends": [{"bus": "verb", "level_db": -12, "pre_fader": True}]},
    )
    tracks.append({"name": "mp", "file": "m.wav", "chain": pan, "pan": -0.2, "sends": [{"bus": "master"}]})
    s = _session(tmp_path, {"tracks": tracks, "buses": buses, "master": {"chain": "master"}})
    (mix, _, st), (ref, _, ref_st) = _both(s)
    assert mix.shape == ref.shape
    assert _residual_db(mix, ref) < -40
    for k in ref_st:
        assert st[k].shape == ref_st[k].shape and _residual_db(st[k], ref_st[k]) < -40, k
    # the same Faust programs run by the mixer's executor: nearly identical
    exe, exe_st = _executor(s, "dawdreamer")
    assert _residual_db(mix, exe) < -100
    assert all(_residual_db(st[k], exe_st[k]) < -100 for k in st)


def test_latency_is_compensated(tmp_path):
    click = np.zeros((2, SR // 2), np.float32)
    click[:, 5000] = 0.25
    _write(tmp_path, "c1.wav", click)
    _write(tmp_path, "c2.wav", click)
    _write(tmp_path, "c3.wav", click)
    buses = [{"name": "lim", "chain": LIMITER, "gain_db": -6.0}]
    tracks = _tracks(
        "c1",
        "c2",
        "c3",
        c2={"chain": LIMITER, "sends": [{"bus": "lim", "level_db": -6, "pre_fader": True}]},
        c3={"output": "lim"},
    )
    s = _session(tmp_path, {"tracks": tracks, "buses": buses, "master": {"chain": LIMITER}})
    plan = plan_session(s)
    graph = SessionGraph(s, "numpy")
    assert plan.total == graph.total and plan.latency == graph.latency > 0
    assert (plan.length, plan.tail) == (graph.length, graph.tail)
    mix, _, st = render_session_dawdreamer(s)
    ref, _, ref_st = render_session_array(s, backend="numpy")
    assert mix.shape == ref.shape
    assert int(np.argmax(np.abs(mix[0]))) == int(np.argmax(np.abs(ref[0]))) == 5000
    np.testing.assert_allclose(mix, ref, atol=1e-5)
    for k in ("c1", "c2", "c3"):
        assert int(np.argmax(np.abs(st[k][0]))) == 5000
        np.testing.assert_allclose(st[k], ref_st[k], atol=1e-5)


def test_lengths_and_sample_rates(tmp_path):
    _write(tmp_path, "hi.wav", sine(1000, 1.0, sr=48000, level_db=-6), 48000)
    _write(tmp_path, "lo.wav", noise(0.5, sr=22050, channels=1, seed=3), 22050)
    _write(tmp_path, "sh.wav", noise(0.3, seed=4))
    s = _session(tmp_path, {"sample_rate": 44100, "tracks": _tracks("lo", "hi", "sh", lo={"pan": 0.5})})
    mix, st = _agree_exactly(s)
    assert abs(mix.shape[1] - SR) <= 1 and all(v.shape == mix.shape for v in st.values())
    (mix, sr, _), (ref, _, _) = _both(_session(tmp_path, {"tracks": _tracks("hi", "sh")}, "r48.yaml"))
    assert sr == 48000 and mix.shape == ref.shape
    np.testing.assert_allclose(mix, ref, atol=1e-6)


def test_no_tail_and_no_stems(tmp_path, stems):
    bus = [{"name": "verb", "chain": REVERB}]
    s = _session(tmp_path, {"tracks": _tracks("a", a={"sends": [{"bus": "verb"}]}), "buses": bus})
    mix, _, st = render_session_dawdreamer(s, tail=False, stems=False)
    ref, _, _ = render_session_array(s, backend="numpy", tail=False)
    assert st == {} and mix.shape == ref.shape == (2, SR)
    assert _residual_db(mix, ref) < -40


def test_graph_blocks_for_the_file_writer(tmp_path, stems):
    bus = [{"name": "verb", "chain": REVERB}]
    tracks = _tracks("a", "m", "b", a={"sends": [{"bus": "verb"}]}, b={"mute": True}, m={"chain": "vocal"})
    s = _session(tmp_path, {"tracks": tracks, "buses": bus, "master": {"chain": "master"}})
    mix, sr, st = render_session_dawdreamer(s)
    graph = DawDreamerSessionGraph(s)
    assert (graph.sample_rate, graph.latency, list(graph.sources)) == (
        sr,
        plan_session(s).latency,
        ["a", "m"],
    )
    got = {"mix": [], "a": [], "m": []}
    for block, stem_blocks in graph.blocks(block_size=10000):
        assert set(stem_blocks) == {"a", "m"} and block.shape[0] == 2
        got["mix"].append(block)
        for k, v in stem_blocks.items():
            got[k].append(v)
    assert graph.length + graph.tail == mix.shape[1]
    np.testing.assert_array_equal(np.concatenate(got["mix"], axis=1), mix)
    for k in ("a", "m"):
        np.testing.assert_array_equal(np.concatenate(got[k], axis=1), st[k])


def test_generated_code_shapes():
    from plugin_bridge.backends.faust_codegen import chain_program

    code = node_code(chain_program([], SR, 1), 0.0, 0.0, True, True)
    assert "chain = _;" in code and code.count("process = ") == 1 and "*(-1.0) : chain <: (" in code
    assert edge_code(2, False, 0) == "process = _, _;\n"
    assert edge_code(4, True, 7) == "process = !, !, @(7), @(7);\n"
    assert edge_code(4, False, 0) == "process = _, _, !, !;\n"
