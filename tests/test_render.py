"""Rendering files and arrays: tails, latency, streaming, and the CLI's behaviour on bad input."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from signals import SR, noise, sine

from plugin_bridge import Effect, render_array, render_file
from plugin_bridge.cli import main
from plugin_bridge.errors import BackendError, ParameterError


def test_render_file_keeps_tail_and_metadata(stereo_wav, tmp_path):
    out = tmp_path / "mix ü.wav"
    res = render_file(stereo_wav, out, "default", vector=[0.5] * 21, backend="numpy")
    data, sr = sf.read(out, always_2d=True)
    assert sr == SR and data.shape[1] == 2
    assert res.tail_frames > 0 and data.shape[0] == 2 * SR + res.tail_frames
    res2 = render_file(
        stereo_wav, tmp_path / "cut.wav", "default", vector=[0.5] * 21, backend="numpy", tail=False
    )
    assert res2.frames == 2 * SR
    np.testing.assert_array_equal(sf.read(tmp_path / "cut.wav")[0], data[: 2 * SR])


def test_file_render_equals_array_render(stereo_wav, tmp_path):
    """A file render is the in-memory render, then the anti-clipping stage (the in-memory render keeps
    its headroom for mastering): equal with --float-headroom, equal to the clipped array without."""
    x, _ = sf.read(stereo_wav, dtype="float32", always_2d=True)
    for backend in ("numpy", "pedalboard"):
        y = render_array(x.T, SR, "default", vector=[0.7] * 21, backend=backend, tail=True)
        assert np.max(np.abs(y)) > 1.0  # this chain setting drives the file past full scale
        render_file(
            stereo_wav, tmp_path / "f.wav", "default", vector=[0.7] * 21, backend=backend, float_headroom=True
        )
        np.testing.assert_array_equal(sf.read(tmp_path / "f.wav", dtype="float32")[0].T, y)
        render_file(stereo_wav, tmp_path / "g.wav", "default", vector=[0.7] * 21, backend=backend)
        np.testing.assert_array_equal(sf.read(tmp_path / "g.wav", dtype="float32")[0].T, np.clip(y, -1, 1))


@pytest.mark.parametrize("backend", ["numpy", "pedalboard"])
def test_block_size_does_not_change_the_sound(backend):
    x = noise(1.5) + sine(220, 1.5)
    a = render_array(x, SR, "default", vector=[0.6] * 21, backend=backend, block_size=1 << 16)
    b = render_array(x, SR, "default", vector=[0.6] * 21, backend=backend, block_size=3001)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_mono_stays_mono_and_pan_makes_stereo():
    x = sine(440, 0.5, channels=1)
    assert render_array(x, SR, "vocal", backend="numpy").shape[0] == 1
    y = render_array(x, SR, [Effect("p", "pan", {"pan": -1.0})], backend="pedalboard")
    assert y.shape[0] == 2 and np.allclose(y[1], 0) and np.allclose(y[0], x[0] * np.sqrt(2), atol=1e-6)


def test_neutral_chain_is_bit_transparent():
    x = noise(0.5)
    for backend in ("numpy", "pedalboard"):
        np.testing.assert_array_equal(render_array(x, SR, "default", backend=backend), x)


@pytest.mark.parametrize("gain_db", [-48.0, -1.0, 0.1, 24.0])
def test_lone_gain_after_width_matches_pedalboards_gain_bit_for_bit(gain_db):
    """The pedalboard backend runs a lone gain between numpy stages as a numpy multiply by the
    plugin's own coefficient: the samples are pedalboard's."""
    import pedalboard as pb

    x = noise(0.5)
    width = Effect("w", "width", {"width": 1.3})
    widened = render_array(x, SR, [width], backend="pedalboard")
    y = render_array(x, SR, [width, Effect("g", "gain", {"gain_db": gain_db})], backend="pedalboard")
    np.testing.assert_array_equal(y, pb.Gain(gain_db=gain_db).process(widened, SR))


def test_filter_above_nyquist_never_reaches_the_plugin():
    x = noise(0.5, sr=16000)
    y = render_array(x, 16000, "default", values={"air.gain_db": 6.0}, backend="pedalboard")
    assert np.isfinite(y).all() and np.max(np.abs(y)) < 1.0


def test_api_errors():
    with pytest.raises(ParameterError, match="has 3 entries"):
        render_array(noise(0.1), SR, "default", vector=[0.5] * 3)
    with pytest.raises(BackendError, match="unknown backend 'juce'"):
        render_array(noise(0.1), SR, "default", backend="juce")


@pytest.mark.slow
def test_long_files_stream_with_bounded_memory(tmp_path):
    seconds = 300
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", SR, 2, "PCM_16") as f:
        block = (noise(10.0, level_db=-20) * 0.5).T
        for _ in range(seconds // 10):
            f.write(block)
    tracemalloc.start()
    render_file(path, tmp_path / "long_out.flac", "default", vector=[0.5] * 21, backend="numpy")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole = seconds * SR * 2 * 4  # the file as float32: 106 MB
    assert peak < whole / 3, f"peak {peak / 1e6:.0f} MB"
    assert sf.info(tmp_path / "long_out.flac").frames >= seconds * SR


# ---- the command line -----------------------------------------------------------------------


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("bad", ["recipe", "audio"])
def test_cli_render_checks_every_output_before_any_work(capsys, stereo_wav, tmp_path, bad):
    """A missing folder for --save-recipe (or for the audio) is a one-line error, exit 1, and
    nothing is written: not the audio, not the recipe."""
    out = tmp_path / ("missing_folder/out.wav" if bad == "audio" else "out.wav")
    recipe = tmp_path / ("missing_folder/r.json" if bad == "recipe" else "r.json")
    before = sorted(tmp_path.rglob("*"))
    code, out_text, err = _cli(
        capsys, "render", stereo_wav, "-o", out, "--backend", "numpy", "--save-recipe", recipe
    )
    assert code == 1 and out_text == ""
    assert err.count("\n") == 1 and err.startswith("plugin-bridge: error: ")
    assert "missing_folder" in err and "does not exist" in err
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_render_json(capsys, stereo_wav, tmp_path):
    code, out, err = _cli(
        capsys,
        "render",
        stereo_wav,
        "-o",
        tmp_path / "o.wav",
        "--vector",
        ",".join(["0.5"] * 21),
        "--backend",
        "numpy",
        "--json",
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["backend"] == "numpy" and info["channels"] == 2 and len(info["effects"]) == 14


def test_cli_params_file(capsys, stereo_wav, tmp_path):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"low.gain_db": 3.0, "comp.ratio": 2.0}))
    code, _, err = _cli(capsys, "render", stereo_wav, "-o", tmp_path / "o.flac", "--params", params)
    assert code == 0, err and sf.info(tmp_path / "o.flac").subtype == "PCM_24"


def test_cli_listings(capsys):
    code, out, _ = _cli(capsys, "params", "--json")
    assert code == 0 and json.loads(out)["version"] == "mix-v2"
    code, out, _ = _cli(capsys, "chains")
    assert code == 0 and "default" in out
    code, out, _ = _cli(capsys, "backends", "--json")
    assert code == 0 and json.loads(out)["numpy"]["available"]


@pytest.fixture
def bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEjunk" * 8)
    nan = tmp_path / "nan.wav"
    x = noise(0.2)
    x[0, 100] = np.inf
    sf.write(nan, x.T, SR, subtype="FLOAT")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    return {"corrupt": corrupt, "nan": nan, "empty": empty}


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing", [], "file not found"),
        ("corrupt", [], "cannot decode audio"),
        ("nan", [], "non-finite sample"),
        ("empty", [], "file is empty"),
        ("good", ["--vector", "0.1,0.2"], "has 2 entries, space 'mix-v2' needs 21"),
        ("good", ["--vector", "0.1,x"], "comma-separated numbers"),
        ("good", ["--chain", "nonesuch"], "unknown chain 'nonesuch'"),
        ("good", ["--params", "BADPARAMS"], "unknown parameter 'low.freq'"),
        ("good", ["-o", "NOFOLDER/x.wav"], "does not exist"),
        ("good", ["-o", "INPUT"], "refusing to overwrite the input"),
    ],
)
def test_cli_bad_input_one_line_nonzero_nothing_written(
    capsys, tmp_path, stereo_wav, bad_inputs, case, extra, message
):
    src = stereo_wav if case == "good" else bad_inputs.get(case, tmp_path / "missing.wav")
    bad_params = tmp_path / "bad.json"
    bad_params.write_text(json.dumps({"low.freq": 3}))
    out = tmp_path / "out.wav"
    replace = {"BADPARAMS": bad_params, "NOFOLDER": tmp_path / "nofolder", "INPUT": stereo_wav}
    extra = [str(replace.get(a, a)).replace("NOFOLDER", str(tmp_path / "nofolder")) for a in extra]
    args = ["render", src, *(extra if "-o" in extra else ["-o", out, *extra])]
    before = stereo_wav.read_bytes()
    code, _, err = _cli(capsys, *args)
    assert code == 1
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
    assert stereo_wav.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_cli_unknown_backend_is_a_usage_error(capsys, stereo_wav, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["render", str(stereo_wav), "-o", str(tmp_path / "o.wav"), "--backend", "juce"])
    assert e.value.code == 2 and "invalid choice: 'juce'" in capsys.readouterr().err


def test_cli_render_recipe_is_bit_identical(capsys, stereo_wav, tmp_path):
    from plugin_bridge.export.recipe import recipe_from_chain

    recipe = recipe_from_chain("default", vector=[0.6] * 21, input_path=stereo_wav, backend="numpy")
    path = recipe.save(tmp_path / "r.json")
    render_file(stereo_wav, tmp_path / "first.wav", "default", vector=[0.6] * 21, backend="numpy")
    code, _, err = _cli(capsys, "render", "--recipe", path, "-o", tmp_path / "again.wav")
    assert code == 0, err
    np.testing.assert_array_equal(sf.read(tmp_path / "first.wav")[0], sf.read(tmp_path / "again.wav")[0])
    code, _, err = _cli(capsys, "render", "--recipe", path, "--vector", "0.1", "-o", tmp_path / "x.wav")
    assert code == 1 and "drop --chain/--params/--vector" in err


def test_a_render_never_writes_beyond_full_scale_and_says_by_how_much(tmp_path, caplog):
    """The issue's case: a float WAV with samples at +-1000 rendered to a file peaking at +74 dBFS.
    The chain now ends in an anti-clipping stage; --float-headroom keeps the samples, with a warning."""
    src = tmp_path / "loud.wav"
    x = np.random.default_rng(1).uniform(-1000.0, 1000.0, (44100, 2)).astype(np.float32)
    sf.write(src, x, 44100, subtype="FLOAT")
    assert main(["render", str(src), "-o", str(tmp_path / "a.wav"), "--backend", "numpy"]) == 0
    y = sf.read(tmp_path / "a.wav", dtype="float32")[0]
    assert np.max(np.abs(y)) <= 1.0
    (err,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "\n" not in err and "clipped to 0 dBFS" in err and "--float-headroom" in err
    peak_db = float(err.split("peaked at ")[1].split(" dBFS")[0])
    assert 55.0 < peak_db < 61.0  # +60 dBFS in, the default chain at its defaults changes little
    assert (
        main(["render", str(src), "-o", str(tmp_path / "b.wav"), "--backend", "numpy", "--float-headroom"])
        == 0
    )
    assert "kept as float headroom" in caplog.records[-1].getMessage()
    assert np.max(np.abs(sf.read(tmp_path / "b.wav", dtype="float32")[0])) > 100.0
    # a quiet render: no warning, nothing touched
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, x * 1e-4, 44100, subtype="FLOAT")
    caplog.clear()
    assert main(["render", str(quiet), "-o", str(tmp_path / "q.wav"), "--backend", "numpy"]) == 0
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


def test_float_headroom_needs_a_float_wav(tmp_path, stereo_wav, capsys):
    out = tmp_path / "x.flac"
    assert main(["render", str(stereo_wav), "-o", str(out), "--float-headroom"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "32-bit float .wav" in err and not out.exists()


def test_a_session_mix_is_clipped_at_full_scale(tmp_path, capsys):
    from plugin_bridge.graph import render_session

    stem = tmp_path / "hot.wav"
    sf.write(
        stem, np.random.default_rng(2).uniform(-50, 50, (22050, 2)).astype(np.float32), 44100, subtype="FLOAT"
    )
    session = {"tracks": [{"name": "hot", "file": str(stem)}]}
    (tmp_path / "s.json").write_text(json.dumps(session), encoding="utf-8")
    res = render_session(tmp_path / "s.json", tmp_path / "mix.wav", backend="numpy")
    assert np.max(np.abs(sf.read(res.output, dtype="float32")[0])) <= 1.0
    kept = render_session(tmp_path / "s.json", tmp_path / "mix2.wav", backend="numpy", float_headroom=True)
    assert np.max(np.abs(sf.read(kept.output, dtype="float32")[0])) > 10.0
