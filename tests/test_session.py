"""Sessions: routing, faders, pan law, sends, mute/solo, latency compensation, real-world stems."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from session_files import tracks as _tracks
from session_files import write_session as _session
from session_files import write_wav as _write
from signals import SR, noise, sine

from plugin_bridge.backends import available_backends
from plugin_bridge.graph import render_session, render_session_array, track_pan_gains
from plugin_bridge.session import SessionError, load_session

BACKENDS = [name for name, why in available_backends().items() if why is None]


@pytest.fixture
def stems(tmp_path):
    a = noise(1.0, seed=1)
    b = sine(330, 1.0, level_db=-10)
    c = noise(0.6, seed=2, level_db=-25)  # shorter: padded
    _write(tmp_path, "a.wav", a)
    _write(tmp_path, "b.wav", b)
    _write(tmp_path, "c.wav", c)
    return a, b, c


@pytest.mark.parametrize("backend", BACKENDS)
def test_unprocessed_tracks_sum_exactly(tmp_path, stems, backend):
    a, b, c = stems
    s = _session(tmp_path, {"tracks": _tracks("a", "b", "c")})
    mix, sr, _ = render_session_array(s, backend=backend)
    expected = a.astype(np.float64) + b
    expected[:, : c.shape[1]] += c
    assert sr == SR and mix.shape == expected.shape
    np.testing.assert_allclose(mix, expected, atol=1e-6)


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_mono_constant_power_pan_law(tmp_path, pan):
    x = sine(440, 0.5, channels=1)
    _write(tmp_path, "m.wav", x)
    s = _session(tmp_path, {"tracks": [{"name": "m", "file": "m.wav", "pan": pan}]})
    mix, _, _ = render_session_array(s, backend="numpy")
    gl, gr = track_pan_gains(pan, 1)
    assert gl**2 + gr**2 == pytest.approx(1.0)
    np.testing.assert_allclose(mix[0], x[0] * gl, atol=1e-6)
    np.testing.assert_allclose(mix[1], x[0] * gr, atol=1e-6)
    if pan == 0.0:
        assert gl == pytest.approx(math.sqrt(0.5))  # -3 dB at centre


def test_faders_polarity_mute_solo(tmp_path, stems):
    a, b, _ = stems
    tracks = _tracks("a", "b", a={"gain_db": -6.0, "invert": True}, b={"mute": True})
    mix, _, st = render_session_array(_session(tmp_path, {"tracks": tracks}), backend="numpy")
    np.testing.assert_allclose(mix[:, : a.shape[1]], -a * 10 ** (-6 / 20), atol=1e-6)
    assert set(st) == {"a"}
    tracks = _tracks("a", "b", b={"solo": True})
    mix, _, _ = render_session_array(_session(tmp_path, {"tracks": tracks}, "solo.yaml"), backend="numpy")
    np.testing.assert_allclose(mix, b, atol=1e-6)


def test_pre_and_post_fader_sends(tmp_path, stems):
    a, _, _ = stems
    bus = [{"name": "fx", "output": "master"}]
    post = _tracks("a", a={"gain_db": -120.0, "sends": [{"bus": "fx", "level_db": -6.0}]})
    mix, _, _ = render_session_array(_session(tmp_path, {"tracks": post, "buses": bus}), backend="numpy")
    assert np.max(np.abs(mix)) < 1e-5  # post-fader: the fader silences the send too
    pre = _tracks("a", a={"gain_db": -120.0, "sends": [{"bus": "fx", "level_db": -6.0, "pre_fader": True}]})
    mix, _, _ = render_session_array(
        _session(tmp_path, {"tracks": pre, "buses": bus}, "pre.yaml"), backend="numpy"
    )
    np.testing.assert_allclose(mix, a * 10 ** (-6 / 20), atol=1e-5)


def test_reverb_bus_adds_a_tail(tmp_path, stems):
    bus = [
        {
            "name": "verb",
            "chain": {
                "effects": [{"id": "r", "type": "reverb", "params": {"wet_level": 0.5, "dry_level": 0.0}}]
            },
        }
    ]
    tracks = _tracks("a", a={"sends": [{"bus": "verb", "level_db": -10}]})
    mix, _, _ = render_session_array(_session(tmp_path, {"tracks": tracks, "buses": bus}), backend="numpy")
    assert mix.shape[1] > SR and np.max(np.abs(mix[:, SR:])) > 1e-4


def test_cycle_is_an_error_naming_the_buses(tmp_path, stems):
    buses = [{"name": "x", "output": "y"}, {"name": "y", "output": "master", "sends": [{"bus": "x"}]}]
    with pytest.raises(SessionError, match="routing cycle between x, y"):
        load_session(_session(tmp_path, {"tracks": _tracks("a"), "buses": buses}))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"tracks": [{"name": "gtr", "file": "nope.wav"}]}, "track 'gtr': stem file not found"),
        ({"tracks": [{"name": "a", "file": "a.wav", "output": "drums"}]}, "routes to unknown bus 'drums'"),
        ({"tracks": [{"name": "a", "file": "a.wav", "pan": 2}]}, "pan=2 is out of range"),
        ({"tracks": [{"name": "a", "file": "a.wav", "chain": "nonesuch"}]}, "unknown chain 'nonesuch'"),
        ({"tracks": [{"name": "a", "file": "a.wav", "colour": "red"}]}, "unknown keys \\['colour'\\]"),
        ({"tracks": []}, "non-empty list"),
    ],
)
def test_invalid_sessions(tmp_path, stems, data, message):
    with pytest.raises(SessionError, match=message):
        load_session(_session(tmp_path, data))


def test_sample_rates_are_resampled(tmp_path):
    x48 = sine(1000, 1.0, sr=48000, level_db=-6)
    _write(tmp_path, "hi.wav", x48, 48000)
    _write(tmp_path, "lo.wav", np.zeros((2, SR // 2), np.float32))
    s = _session(tmp_path, {"sample_rate": 44100, "tracks": _tracks("lo", "hi")})
    mix, sr, _ = render_session_array(s, backend="numpy")
    assert sr == SR and abs(mix.shape[1] - SR) <= 1
    seg = mix[0, 2000:-2000].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    assert np.fft.rfftfreq(len(seg), 1 / SR)[np.argmax(spec)] == pytest.approx(1000, abs=2)
    assert 20 * np.log10(np.sqrt(2) * np.sqrt(np.mean(seg**2))) == pytest.approx(-6, abs=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_latency_is_compensated_between_tracks(tmp_path, backend):
    click = np.zeros((2, SR // 2), np.float32)
    click[:, 5000] = 0.25
    _write(tmp_path, "c1.wav", click)
    _write(tmp_path, "c2.wav", click)
    lim = {"effects": [{"id": "lim", "type": "limiter", "params": {"ceiling_db": -1, "lookahead_ms": 5}}]}
    s = _session(tmp_path, {"tracks": _tracks("c1", "c2", c2={"chain": lim})})
    mix, _, stems = render_session_array(s, backend=backend)
    assert int(np.argmax(np.abs(mix[0]))) == 5000
    assert mix[0, 5000] == pytest.approx(0.5, abs=1e-5)  # both clicks land on the same sample
    assert int(np.argmax(np.abs(stems["c2"][0]))) == 5000


def test_render_session_files_and_stems(tmp_path, stems):
    tracks = _tracks("a", "b", a={"chain": "vocal"}, b={"pan": 0.4})
    s = _session(tmp_path, {"tracks": tracks, "master": {"chain": {"chain": "master"}}})
    done: list[int] = []
    res = render_session(
        s, tmp_path / "mix.wav", stems_out=tmp_path / "stems", backend="pedalboard", progress=done.append
    )
    mix, sr = sf.read(tmp_path / "mix.wav", always_2d=True)
    assert sum(done) == mix.shape[0] == res.frames  # the progress bar counts every frame written
    assert sr == SR and mix.shape[1] == 2 and np.max(np.abs(mix)) <= 10 ** (-1 / 20) + 1e-6
    for name in ("a", "b"):
        assert sf.info(tmp_path / "stems" / f"{name}.wav").frames == mix.shape[0]
    assert res.latency_samples > 0


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_backends_agree_on_a_session(tmp_path, stems, backend):
    bus = [
        {
            "name": "verb",
            "chain": {
                "effects": [{"id": "r", "type": "reverb", "params": {"wet_level": 0.3, "dry_level": 0.0}}]
            },
        }
    ]
    tracks = _tracks(
        "a",
        "b",
        a={"chain": {"chain": "default", "vector": [0.6] * 21}},
        b={"pan": -0.3, "sends": [{"bus": "verb", "level_db": -12}]},
    )
    s = _session(tmp_path, {"tracks": tracks, "buses": bus, "master": {"chain": "master"}})
    ref, _, _ = render_session_array(s, backend="numpy")
    got, _, _ = render_session_array(s, backend=backend)
    assert got.shape == ref.shape
    err = 10 * np.log10(np.mean((got - ref) ** 2) / np.mean(ref**2))
    assert err < -40, f"residual {err:.1f} dB"


@pytest.mark.parametrize("name", ["bad é.yaml", "bad.json"])
def test_a_non_utf8_session_file_is_a_one_line_error(tmp_path, capsys, name):
    from plugin_bridge.cli import main

    src = tmp_path / name
    src.write_bytes(b"\x00\xff\xfe not text")
    with pytest.raises(SessionError, match="not UTF-8"):
        load_session(src)
    out = tmp_path / "mix.wav"
    assert main(["render-session", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8" in err and not out.exists()
