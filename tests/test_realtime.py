"""Real-time block processing: equal to the offline render at any block size, smooth under changes."""

from __future__ import annotations

import numpy as np
import pytest
from session_files import tracks, write_session, write_wav
from signals import SR, pink_noise, sine

from plugin_bridge import realtime
from plugin_bridge.cli import main
from plugin_bridge.errors import AudioError, ParameterError
from plugin_bridge.export.recipe import recipe_from_chain
from plugin_bridge.graph import render_session_array
from plugin_bridge.realtime import BlockProcessor, SessionBlockProcessor
from plugin_bridge.render import render_array

#: A mix of the default chain with every kind of stage active (gain, compressor, EQ, reverb, delay, width).
MIX = {
    "input.gain_db": -3.0,
    "comp.threshold_db": -26.0,
    "comp.ratio": 2.0,
    "low.gain_db": 4.0,
    "presence.gain_db": -5.5,
    "air.gain_db": 3.0,
    "reverb.wet_level": 0.15,
    "delay.mix": 0.08,
    "width.width": 1.3,
    "output.gain_db": -1.5,
}
MASTER = {"low.gain_db": 2.0, "limiter.ceiling_db": -3.0}


def _blockwise(proc: BlockProcessor, x: np.ndarray, size: int) -> np.ndarray:
    """``x`` through ``proc`` in blocks of ``size``, plus ``latency`` samples of silence, latency removed."""
    xx = np.concatenate([x, np.zeros((x.shape[0], proc.latency), np.float32)], axis=1)
    out = np.concatenate([proc.process(xx[:, i : i + size]) for i in range(0, xx.shape[1], size)], axis=1)
    return out[:, proc.latency :]


def _error_db(got: np.ndarray, ref: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)) + 1e-30))


@pytest.mark.parametrize("size", [32, 37, 128, 4096])
@pytest.mark.parametrize("backend", ["numpy", "pedalboard"])
@pytest.mark.parametrize(("chain", "values"), [("default", MIX), ("master", MASTER)])
def test_block_by_block_equals_the_offline_render(chain, values, backend, size):
    x = pink_noise(0.25, level_db=-12.0)
    ref = render_array(x, SR, chain, values=values, backend=backend)
    proc = BlockProcessor(chain, SR, backend=backend, values=values)
    assert proc.latency == (219 if chain == "master" else 0)  # fixed: 5 ms look-ahead less one sample
    assert _error_db(_blockwise(proc, x, size), ref) < -100.0
    assert proc.latency == (219 if chain == "master" else 0)


def _discontinuity_db(y: np.ndarray) -> float:
    """The largest sample-to-sample discontinuity: max |second difference| (dBFS) over channels."""
    return float(20 * np.log10(np.max(np.abs(np.diff(y.astype(np.float64), n=2, axis=1))) + 1e-30))


RAMP_FROM = {"comp.threshold_db": -6.0, "comp.ratio": 3.0}
RAMP_TO = {
    "input.gain_db": -12.0,
    "comp.threshold_db": -20.0,
    "low.gain_db": 8.0,
    "mid.gain_db": -6.0,
    "reverb.wet_level": 0.2,
    "delay.mix": 0.2,
    "width.width": 2.0,
    "output.gain_db": 6.0,
}


def _test_sine(seconds: float = 0.6) -> np.ndarray:
    """A 100 Hz sine at -6 dBFS (right channel -12 dBFS: some side signal for the width), faded in
    over 20 ms so that its start (and the echo of its start) has no kink of its own."""
    x = sine(100.0, seconds, level_db=-6.0)
    x[1] *= 0.5
    fade = int(0.02 * SR)
    x[:, :fade] *= (0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)).astype(np.float32)
    return x


def _ramped(smoothing_ms: float, block: int = 128, seconds: float = 0.6) -> np.ndarray:
    """The test sine through the default chain while every parameter of `RAMP_TO` is moved a little
    every block (a fader move over ``seconds / 2``)."""
    x = _test_sine(seconds)
    proc = BlockProcessor("default", SR, values=RAMP_FROM, smoothing_ms=smoothing_ms)
    start = {k: proc.values[k] for k in RAMP_TO}
    blocks = range(0, x.shape[1], block)
    moves = len(blocks) // 2
    out = []
    for k, i in enumerate(blocks):
        out.append(proc.process(x[:, i : i + block]))
        t = min(1.0, (k + 1) / moves)
        proc.set_values({name: start[name] + t * (RAMP_TO[name] - start[name]) for name in RAMP_TO})
    return np.concatenate(out, axis=1)


def test_a_parameter_ramp_has_no_step_above_minus_60_db():
    smooth = _ramped(smoothing_ms=20.0)
    # the smooth references: the same sine through the chain at the ramp's start and end, no change
    for values in (RAMP_FROM, {**RAMP_FROM, **RAMP_TO}):
        still = BlockProcessor("default", SR, values=values).process(_test_sine())
        assert _discontinuity_db(still) < -63.0
    assert _discontinuity_db(smooth) < -60.0
    # the measure sees zipper noise: the same moves applied as steps at block boundaries
    assert _discontinuity_db(_ramped(smoothing_ms=0.0)) > -45.0


def test_the_room_changes_without_a_step_and_the_tail_rings_on():
    x = _test_sine(0.5)
    fade = int(0.02 * SR)  # the input stops (faded out): what follows is the reverb's tail
    x[:, SR // 4 - fade : SR // 4] *= (0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)).astype(np.float32)
    x[:, SR // 4 :] = 0.0
    proc = BlockProcessor("default", SR, values={"reverb.wet_level": 0.3, "reverb.room_size": 0.3})
    head = proc.process(x[:, : SR // 5])
    proc.set_values({"reverb.room_size": 0.9, "reverb.damping": 0.2, "reverb.width": 0.5})
    rest = np.concatenate([proc.process(x[:, i : i + 256]) for i in range(SR // 5, x.shape[1], 256)], axis=1)
    y = np.concatenate([head, rest], axis=1)
    assert _discontinuity_db(y) < -60.0
    tail = y[:, SR // 4 + 2000 :]
    assert 10 * np.log10(np.mean(tail.astype(np.float64) ** 2)) > -60.0  # a long room still sounding


def test_changes_glide_to_their_target_and_state_is_kept():
    proc = BlockProcessor("default", SR, smoothing_ms=10.0)
    x = sine(1000.0, 0.2, level_db=-20.0)
    proc.process(x[:, :4410])
    proc.set_values({"output.gain_db": -6.0})
    y = proc.process(x[:, 4410:8820])
    assert proc.values["output.gain_db"] == -6.0
    ratio = np.max(np.abs(y[:, -1000:])) / np.max(np.abs(x[:, -1000:]))
    assert 20 * np.log10(ratio) == pytest.approx(-6.0, abs=0.01)
    first = np.max(np.abs(y[:, :20])) / np.max(np.abs(x[:, 4410:4430]))
    assert 20 * np.log10(first) > -0.5  # not there at once


def test_a_recipe_runs_at_its_values():
    recipe = recipe_from_chain("default", values=MIX, sample_rate=SR, plugins=())
    proc = BlockProcessor(recipe, SR)
    assert proc.values["comp.threshold_db"] == -26.0
    x = pink_noise(0.2)
    ref = render_array(x, SR, "default", values=MIX, backend="numpy")
    assert _error_db(_blockwise(proc, x, 256), ref) < -100.0


def test_bad_input_is_one_clear_error():
    proc = BlockProcessor("master", SR)
    with pytest.raises(ParameterError, match="unknown parameter 'comp.nope'; valid: low.gain_db"):
        proc.set_values({"comp.nope": 1.0})
    with pytest.raises(ParameterError, match=r"low.gain_db=40 dB is out of range \[-4, 4\]"):
        proc.set_values({"low.gain_db": 40.0})
    with pytest.raises(ParameterError, match="lookahead_ms sets the processor's latency"):
        BlockProcessor(list(proc.effects), SR).set_values({"limiter.lookahead_ms": 2.0})
    with pytest.raises(AudioError, match=r"expected a \(2, samples\) block, got shape \(128,\)"):
        proc.process(np.zeros(128, np.float32))
    with pytest.raises(ParameterError, match="live parameter changes need backend 'numpy'"):
        BlockProcessor("default", SR, backend="pedalboard").set_values({"output.gain_db": -1.0})
    with pytest.raises(ParameterError, match="sample rate"):
        BlockProcessor("default", 0)


def test_live_says_in_one_line_when_the_machine_has_no_audio_device(capsys, monkeypatch):
    monkeypatch.setattr(realtime, "audio_devices", lambda: ([], []))
    assert main(["live", "--in", "Mic", "--out", "Speakers"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "plugin-bridge: error: this machine has no audio input or output devices (pedalboard's "
        "AudioStream lists none): live processing needs an audio interface"
    ]
    monkeypatch.setattr(realtime, "audio_devices", lambda: (["USB In"], ["USB Out"]))
    assert main(["live", "--in", "Mic", "--out", "USB Out"]) == 1
    assert "no input device 'Mic'; input devices here: USB In" in capsys.readouterr().err


def test_a_session_mixes_block_by_block_like_the_offline_render(tmp_path):
    write_wav(tmp_path, "a.wav", pink_noise(0.3, seed=2))
    write_wav(tmp_path, "b.wav", sine(220.0, 0.3, level_db=-9.0, channels=1))
    data = {
        "tracks": tracks(
            "a", "b", b={"pan": -0.4, "gain_db": -2.0, "sends": [{"bus": "room", "level_db": -6}]}
        ),
        "buses": [{"name": "room", "chain": "default"}],
        "master": {"chain": "master"},
    }
    path = write_session(tmp_path, data)
    ref, sr, _ = render_session_array(path, backend="numpy", tail=False)
    proc = SessionBlockProcessor(path, backend="numpy")
    assert proc.latency == 219 and proc.tracks == {"a": 2, "b": 1}
    total = ref.shape[1] + proc.latency
    out = np.concatenate([proc.process(min(100, total - i)) for i in range(0, total, 100)], axis=1)
    assert _error_db(out[:, proc.latency :], ref) < -100.0
    # live input replaces a track's stem file
    live = SessionBlockProcessor(path, backend="numpy")
    with pytest.raises(AudioError, match=r"track 'b': expected a \(1, 64\) block"):
        live.process(64, {"b": np.zeros((2, 64), np.float32)})
    silent_b = live.process(64, {"b": np.zeros((1, 64), np.float32)})
    assert silent_b.shape == (2, 64)
