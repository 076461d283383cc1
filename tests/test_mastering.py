"""Mastering: loudness targets checked by an independent meter, the true-peak limiter, reference
matching, the stated edge-case behaviours, the Python API and the CLI.

The independent meter is ffmpeg's ``ebur128=peak=true`` filter run on the WRITTEN files; its
summary prints one decimal. Tolerances: integrated loudness within 0.5 LU of the target (the
promise) and within 0.2 LU of our own reading; true peak at or below the ceiling + 0.1 dB.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from signals import SR, noise, pink_noise, sine

from plugin_bridge.backends.dsp.dynamics import Limiter
from plugin_bridge.cli import main
from plugin_bridge.cli.mastering import TARGET_NAMES
from plugin_bridge.demo import demo_song
from plugin_bridge.errors import AudioError, ParameterError
from plugin_bridge.loudness import amplitude_to_db, integrated_loudness, short_loudness, true_peak
from plugin_bridge.mastering import (
    TARGETS,
    LoudnessTarget,
    detect_clipping,
    lookahead_gain,
    master_array,
    master_file,
    match_reference,
    resolve_target,
    true_peak_limit,
)

HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(
    not HAVE_FFMPEG, reason="ffmpeg is not installed (apt-get install ffmpeg): no independent loudness meter"
)
LU_TOL = 0.5  # the promise: integrated loudness within 0.5 LU of the target
TP_TOL = 0.1  # true peak at most 0.1 dB over the ceiling on ffmpeg's meter


def ebur128(path, loops: int = 1) -> tuple[float, float]:
    """ffmpeg's integrated loudness (LUFS) and true peak (dBTP) of a file (its summary's I: and Peak:).

    ``loops`` > 1 plays the file that many times in a row (``-stream_loop``).
    """
    cmd = ["ffmpeg", "-hide_banner", "-nostats", "-nostdin"]
    if loops > 1:
        cmd += ["-stream_loop", str(loops - 1)]
    cmd += ["-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    summary = err[err.rindex("Summary:") :]
    i = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return i, peak


def song(seconds: float = 6.0, sr: int = SR) -> np.ndarray:
    return demo_song(seconds, sr)


def tone_bursts(sr: int = SR, level_db: float = -20.0) -> np.ndarray:
    """EBU Tech 3341-style sine bursts: 1 kHz then fs/4 at 45 degrees (true peak 3 dB over its samples).

    Four 1 s bursts at ``level_db`` dBFS peak with 0.5 s of silence after each, 10 ms raised-cosine
    edges, both channels alike.
    """
    n, gap, edge = sr, sr // 2, int(0.01 * sr)
    t = np.arange(n) / sr
    ramp = np.ones(n)
    ramp[:edge] = ramp[-edge:][::-1] = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    a = 10 ** (level_db / 20)
    parts = []
    for freq, phase in ((1000.0, 0.0), (sr / 4, np.pi / 4)) * 2:
        parts += [a * ramp * np.sin(2 * np.pi * freq * t + phase), np.zeros(gap)]
    x = np.concatenate(parts)
    return np.stack([x, x]).astype(np.float32)


def hot_master(seconds: float = 6.0) -> np.ndarray:
    """An already-loud, clipped mix: the demo song driven 12 dB into a hard clip at full scale."""
    return np.clip(song(seconds) * 4.0, -1.0, 1.0).astype(np.float32)


MATERIALS = {
    "pink_quiet": lambda: pink_noise(6.0, level_db=-40.0),
    "pink": lambda: pink_noise(6.0, level_db=-20.0),
    "song": song,
    "song_quiet": lambda: song() * np.float32(0.1),
    "hot_clipped": hot_master,
    "bursts": tone_bursts,
}
#: (material, target) pairs that need more than 6 dB of limiting: stated to stop short, with a warning.
UNREACHABLE = {("song", "club"), ("song_quiet", "club")}
TARGET_CASES = [*TARGETS, (-18.0, -3.0)]


def _target_id(t) -> str:
    return t if isinstance(t, str) else f"custom{t[0]:g}_{t[1]:g}"


@needs_ffmpeg
@pytest.mark.parametrize("target", TARGET_CASES, ids=_target_id)
@pytest.mark.parametrize("material", list(MATERIALS))
def test_written_master_meets_target_on_ffmpeg_meter(material, target, tmp_path):
    x = MATERIALS[material]()
    kwargs = {"target": target} if isinstance(target, str) else {"lufs": target[0], "ceiling_dbtp": target[1]}
    y, res = master_array(x, SR, **kwargs)
    path = tmp_path / "master.wav"
    sf.write(path, y.T, SR, subtype="FLOAT")
    i_ff, tp_ff = ebur128(path)
    goal = res.target
    assert tp_ff <= goal.ceiling_dbtp + TP_TOL
    assert res.output_true_peak_dbtp <= goal.ceiling_dbtp
    assert abs(i_ff - res.output_lufs) <= 0.2  # our meter and ffmpeg's agree
    if (material, target) in UNREACHABLE:
        assert not res.reached and res.output_lufs < goal.lufs - LU_TOL
        assert any("6 dB of peak limiting" in w for w in res.warnings)
        assert res.limiting_db <= 6.0 + 1e-6
    else:
        assert res.reached, res.warnings
        assert abs(i_ff - goal.lufs) <= LU_TOL


@needs_ffmpeg
def test_48k_flac_master_file(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, song(6.0, 48000).T, 48000, subtype="PCM_24")
    res = master_file(src, tmp_path / "out.flac", "apple")
    info = sf.info(tmp_path / "out.flac")
    assert info.samplerate == 48000 and info.subtype == "PCM_24" and res.output == str(tmp_path / "out.flac")
    i_ff, tp_ff = ebur128(tmp_path / "out.flac")
    assert abs(i_ff + 16.0) <= LU_TOL and tp_ff <= -1.0 + TP_TOL


def test_lookahead_gain_is_the_limiter_gain_law():
    """Offline, aligned gain == dynamics.Limiter's output / its delayed input (to float rounding)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 20000)) * np.linspace(0.1, 2.0, 20000)
    lim = Limiter(2, SR, ceiling_db=-1.0, release_ms=50.0, lookahead_ms=3.0)
    latency = lim.length - 1
    y = np.concatenate(
        [lim.process64(x[:, :7000]), lim.process64(x[:, 7000:]), lim.process64(np.zeros((2, latency)))],
        axis=1,
    )[:, latency:]
    coeff = 1 - np.exp(-1 / (50.0 * SR / 1000))
    g = lookahead_gain(np.abs(x).max(axis=0), 10 ** (-1 / 20), lim.length, coeff)
    np.testing.assert_allclose(g * x, y, atol=1e-7)


def test_true_peak_limiter_holds_the_ceiling_and_leaves_quiet_parts():
    x = pink_noise(3.0, level_db=-12.0)
    x[:, : SR // 2] *= 0.05  # a quiet start, far below the ceiling
    y, reduction = true_peak_limit(x, SR, ceiling_dbtp=-1.0, gain_db=6.0)
    assert 3.0 < reduction < 12.0
    assert amplitude_to_db(true_peak(y)) <= -1.0 + 0.05  # smoothing can leave hundredths over
    np.testing.assert_allclose(y[:, : SR // 4], x[:, : SR // 4] * 10 ** (6 / 20), rtol=1e-6)


def test_resolve_target():
    assert resolve_target() == TARGETS["streaming"]
    assert resolve_target("club") == LoudnessTarget("club", -9.0, -0.3)
    assert resolve_target("apple", ceiling_dbtp=-2.0) == LoudnessTarget("apple", -16.0, -2.0)
    assert resolve_target(lufs=-11) == LoudnessTarget("custom", -11.0, -1.0)
    assert resolve_target("ebu_r128", lufs=-20) == LoudnessTarget("custom", -20.0, -1.0)
    assert set(TARGET_NAMES) == set(TARGETS)
    for bad in ({"target": "spotify"}, {"lufs": 2.0}, {"lufs": float("nan")}, {"ceiling_dbtp": 1.0}):
        with pytest.raises(ParameterError):
            resolve_target(**bad)


# ---------------------------------------------------------------------------------------------
# edge cases, each with its stated behaviour


def test_digital_silence_is_left_alone_with_a_warning():
    x = np.zeros((2, SR), dtype=np.float32)
    y, res = master_array(x, SR, "streaming")
    np.testing.assert_array_equal(y, x)
    assert not res.reached and any("digital silence" in w for w in res.warnings)
    assert json.dumps(res.to_dict())  # no NaN/inf leaks into the report


def test_near_silence_makeup_gain_is_capped():
    x = noise(3.0, level_db=-90.0)
    y, res = master_array(x, SR, "streaming")
    assert res.gain_db == pytest.approx(30.0)
    assert integrated_loudness(y, SR) == pytest.approx(res.input_lufs + 30.0, abs=0.1)
    assert np.abs(y).max() < 0.01 and not res.reached
    assert any("make-up gain capped at +30 dB" in w for w in res.warnings)
    assert any("below the -70 LUFS gate" in w for w in res.warnings)


@needs_ffmpeg
def test_file_shorter_than_a_gating_block(tmp_path):
    """0.25 s of 1 kHz (250 whole periods): measured ungated; looped 20x, ffmpeg agrees."""
    x = sine(1000, 0.25, level_db=-30.0)
    assert short_loudness(x, SR) == pytest.approx(-30.0, abs=0.1)  # Tech 3341: -X dBFS sine = -X LUFS
    y, res = master_array(x, SR, "streaming")
    assert any("shorter than one 400 ms" in w for w in res.warnings)
    assert res.reached and short_loudness(y, SR) == pytest.approx(-14.0, abs=0.1)
    path = tmp_path / "short.wav"
    sf.write(path, y.T, SR, subtype="FLOAT")
    i_ff, tp_ff = ebur128(path, loops=20)
    assert abs(i_ff + 14.0) <= LU_TOL and tp_ff <= -1.0 + TP_TOL


@needs_ffmpeg
def test_mono_file_stays_mono(tmp_path):
    src = tmp_path / "mono.wav"
    sf.write(src, song()[0], SR, subtype="FLOAT")
    res = master_file(src, tmp_path / "out.wav", "apple")
    assert sf.info(tmp_path / "out.wav").channels == 1 and res.channels == 1
    assert any("mono" in n for n in res.notes)
    i_ff, tp_ff = ebur128(tmp_path / "out.wav")  # ffmpeg also measures mono as one channel
    assert abs(i_ff + 16.0) <= LU_TOL and tp_ff <= -1.0 + TP_TOL


def test_loud_input_is_turned_down_without_limiting():
    y, res = master_array(hot_master(), SR, "ebu_r128")
    assert res.reached and res.limiting_db == pytest.approx(0.0, abs=1e-9)
    assert res.gain_db == pytest.approx(-23.0 - res.input_lufs, abs=0.01)
    assert any("louder than the target" in n for n in res.notes)


@pytest.mark.parametrize("quiet_db", [-75.0, -40.0])
def test_unlimited_master_reports_what_its_output_measures(quiet_db):
    """When the limiter cannot act (peak + gain under the ceiling) the output is the input times
    the gain and is not measured again: its reported loudness and true peak must still be what
    the written samples measure, also when a quiet passage crosses the -70 LUFS gate with the gain."""
    x = np.concatenate((noise(4.0, level_db=-30.0), noise(4.0, level_db=quiet_db)), axis=1)
    y, res = master_array(x, SR, lufs=-20.0, ceiling_dbtp=-1.0)
    assert res.limiting_db == 0.0 and res.gain_db > 0.0
    assert res.output_lufs == pytest.approx(integrated_loudness(y, SR), abs=1e-4)
    assert res.output_true_peak_dbtp == pytest.approx(amplitude_to_db(true_peak(y)), abs=1e-4)
    assert np.array_equal(y, np.multiply(x.astype(np.float32), np.float32(10 ** (res.gain_db / 20))))


def test_limiting_is_capped_at_6_db_with_a_warning_in_the_report():
    _, res = master_array(song(), SR, lufs=-8.0, ceiling_dbtp=-1.0)
    assert res.limiting_db == pytest.approx(6.0, abs=0.01)
    assert not res.reached and res.output_lufs < -8.5
    assert any("6 dB of peak limiting" in w for w in res.to_dict()["warnings"])


def test_dc_offset_is_removed_and_said(caplog):
    x = song() + np.float32(0.05)
    with caplog.at_level(logging.WARNING, logger="plugin_bridge.mastering"):
        y, res = master_array(x, SR, "streaming")
    assert np.abs(y.mean(axis=1)).max() < 1e-4
    assert any("DC offset of 5." in w for w in res.warnings) and "DC offset" in caplog.text
    assert res.reached
    _, clean = master_array(song(), SR, "streaming")
    assert not any("DC" in w for w in clean.warnings)


def test_clipping_detection():
    x = song()
    assert detect_clipping(x).runs == 0
    assert detect_clipping(sine(30, 1.0, level_db=0.0)).runs == 0  # full scale, but no flat tops
    clip = detect_clipping(hot_master())
    assert clip.runs > 100 and clip.longest >= 4
    _, res = master_array(hot_master(), SR, "streaming")
    assert any("clipping detected" in w for w in res.warnings)


# ---------------------------------------------------------------------------------------------
# reference matching


def reference_track(seconds: float, sr: int) -> np.ndarray:
    """A brighter, wider remix of the demo parts (bench/bench_reference.py's reference)."""
    from scipy.signal import butter, sosfilt

    from plugin_bridge.demo import demo_stems

    st = demo_stems(seconds, sr, bpm=124, seed=5)
    mix = st["drums"] * 1.1 + st["bass"] * 0.6 + st["pad"] + st["lead"] * 1.4
    sos = butter(2, 3000, "highpass", fs=sr, output="sos")
    mix = mix + sosfilt(sos, mix, axis=1)
    mid, side = (mix[0] + mix[1]) / 2, (mix[0] - mix[1]) / 2 * 2
    mix = np.stack([mid + side, mid - side])
    return (mix * 0.9 / np.abs(mix).max()).astype(np.float32)


def test_match_reference_moves_spectrum_width_and_loudness_to_the_reference():
    x = song(8.0)
    x = x + np.float32(0.3) * np.stack([x[1], x[0]]) * np.array([[1.0], [-1.0]], dtype=np.float32)
    ref = reference_track(8.0, 48000)
    y, rep = match_reference(x, SR, ref, 48000)
    assert y.shape == x.shape
    assert rep.distance_before_db > 3.0 and rep.distance_after_db < 1.0
    assert abs(rep.width_output - rep.width_reference) < abs(rep.width_input - rep.width_reference) / 2
    assert integrated_loudness(y, SR) == pytest.approx(rep.reference_lufs, abs=0.05)
    assert max(abs(g) for g in rep.eq_gain_db) <= 12.0
    high = [g for f, g in zip(rep.eq_centers_hz, rep.eq_gain_db, strict=True) if f >= 5000]
    assert min(high) > 3.0  # the reference is brighter


def test_silent_reference_is_an_error():
    with pytest.raises(ParameterError, match="reference: is silent"):
        master_array(song(1.0), SR, reference=np.zeros((2, SR), dtype=np.float32))


def test_tiny_files_do_not_break_anything():
    x = noise(10 / SR, level_db=-20.0)  # 10 samples
    y, res = master_array(x, SR, "streaming")
    assert y.shape == x.shape and np.isfinite(y).all() and res.reached
    assert short_loudness(y, SR) == pytest.approx(-14.0, abs=0.1)


def test_mono_reference_makes_the_output_mono():
    x = noise(3.0)
    ref = pink_noise(3.0, channels=1)
    y, rep = match_reference(x, SR, ref, SR)
    assert rep.side_gain == 0.0 and np.allclose(y[0], y[1])


@needs_ffmpeg
def test_master_to_reference_takes_its_loudness(tmp_path):
    ref_path, src = tmp_path / "ref.wav", tmp_path / "in.wav"
    sf.write(ref_path, reference_track(8.0, 48000).T, 48000, subtype="PCM_24")
    sf.write(src, song(8.0).T, SR, subtype="FLOAT")
    res = master_file(src, tmp_path / "out.wav", reference=ref_path)
    assert res.target.name == "reference" and res.reference is not None
    assert res.reference.distance_after_db < res.reference.distance_before_db / 3
    i_ff, tp_ff = ebur128(tmp_path / "out.wav")
    assert abs(i_ff - res.target.lufs) <= LU_TOL and tp_ff <= -1.0 + TP_TOL
    res2 = master_file(src, tmp_path / "out2.wav", target="streaming", reference=ref_path)
    assert res2.target.lufs == -14.0  # an explicit target wins over the reference's loudness


# ---------------------------------------------------------------------------------------------
# files and the command line


def test_master_file_never_overwrites_inputs(tmp_path):
    src, ref = tmp_path / "in.wav", tmp_path / "ref.wav"
    sf.write(src, song(1.0).T, SR, subtype="FLOAT")
    sf.write(ref, reference_track(1.0, SR).T, SR, subtype="FLOAT")
    before = src.read_bytes(), ref.read_bytes()
    with pytest.raises(AudioError, match="overwrite the input"):
        master_file(src, src)
    with pytest.raises(AudioError, match="overwrite the input"):
        master_file(src, ref, reference=ref)
    assert (src.read_bytes(), ref.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "ref.wav"]


def test_cli_master_and_errors(capsys, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, song(3.0).T, SR, subtype="FLOAT")
    assert main(["master", str(src), "-o", str(tmp_path / "o.wav"), "--target", "apple", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"]["name"] == "apple" and abs(out["output_lufs"] + 16) <= LU_TOL and out["reached"]
    assert main(["master", str(src), "-o", str(tmp_path / "c.wav"), "--lufs", "-12", "--ceiling", "-2"]) == 0
    text = capsys.readouterr().out
    assert "custom -12 LUFS, ceiling -2 dBTP" in text and "wrote" in text
    assert main(["master", str(src), "-o", str(src)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["master", str(src), "-o", str(tmp_path / "x.wav"), "--lufs", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside -50..-3 LUFS" in err
    with pytest.raises(SystemExit) as e:
        main(["master", str(src), "-o", str(tmp_path / "y.wav"), "--target", "club", "--lufs", "-9"])
    assert e.value.code == 2
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


# ---------------------------------------------------------------------------------------------
# the fast implementations keep the guarantees: hard true-peak signals, the sparse limiter gain,
# the in-place zero-phase filter, the predicted loudness, repeat renders


def reference_true_peak(x: np.ndarray) -> float:
    """True peak (linear) by scipy's resample_poly with the meter's 8x Kaiser-sinc prototype (other code)."""
    from scipy.signal import resample_poly

    from plugin_bridge.loudness import HALF_TAPS, KAISER_BETA, OVERSAMPLE

    t = np.arange(-OVERSAMPLE * HALF_TAPS + 1, OVERSAMPLE * HALF_TAPS) / OVERSAMPLE
    w = np.i0(KAISER_BETA * np.sqrt(np.clip(1 - (t / (HALF_TAPS + 0.5)) ** 2, 0, None))) / np.i0(KAISER_BETA)
    up = resample_poly(x.astype(np.float64), OVERSAMPLE, 1, axis=1, window=np.sinc(t) * w / OVERSAMPLE)
    return float(np.abs(up).max())


def hard_true_peak_signals(seconds: float = 1.0, sr: int = SR) -> dict[str, np.ndarray]:
    """Signals whose true peak lies well above their samples (stereo float32, full scale)."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(7)
    square = lambda f: np.sign(np.sin(2 * np.pi * f * t + 0.3))  # noqa: E731 (aliased: Gibbs overshoot)
    sig = {
        "square_fs8": square(sr / 8),  # Nyquist/4: + + + + - - - -
        "square_near_fs8": square(0.97 * sr / 8),
        "square_fs4": square(sr / 4 + 3.0),  # + + - -, drifting phase
        "sine_fs4_45deg": np.sin(2 * np.pi * (sr / 4) * t + np.pi / 4),  # samples at -3 dB of the peak
        "clipped_noise": np.clip(rng.standard_normal(t.size) * 3.0, -1.0, 1.0),
    }
    return {
        k: np.stack([v, -v if k == "sine_fs4_45deg" else v[::-1]]).astype(np.float32) for k, v in sig.items()
    }


HARD = hard_true_peak_signals()


def in_bursts(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """``x`` at -3 dBFS in 10 ms bursts every 125 ms over pink noise at -22 dBFS RMS: peaks far above
    the loudness, so that loud targets need the limiter (up to its 6 dB cap) on exactly these peaks."""
    t = np.arange(x.shape[1]) / sr
    gate = ((t % 0.125) < 0.01).astype(np.float32) * np.float32(0.7)
    return x * gate + pink_noise(x.shape[1] / sr, level_db=-22.0)


@pytest.mark.parametrize(
    "target", [("streaming",), ("club",), (-8.0, -0.1)], ids=lambda t: "_".join(map(str, t))
)
@pytest.mark.parametrize("name", list(HARD))
def test_true_peak_never_exceeds_the_ceiling_on_hard_signals(name, target, tmp_path):
    x = in_bursts(HARD[name])
    kwargs = {"target": target[0]} if len(target) == 1 else {"lufs": target[0], "ceiling_dbtp": target[1]}
    y, res = master_array(x, SR, **kwargs)
    ceiling = res.target.ceiling_dbtp
    assert res.output_true_peak_dbtp <= ceiling
    assert amplitude_to_db(reference_true_peak(y)) <= ceiling + 1e-3  # float32 rounding of the FFT path
    assert res.limiting_db <= 6.0 + 1e-6
    if target[0] != "streaming":
        assert res.limiting_db > 1.0  # the limiter did the work
    if not res.reached:
        assert any("6 dB of peak limiting" in w for w in res.warnings)
    if HAVE_FFMPEG:
        path = tmp_path / "m.wav"
        sf.write(path, y.T, SR, subtype="FLOAT")
        assert ebur128(path)[1] <= ceiling + TP_TOL


@pytest.mark.parametrize("name", list(HARD))
def test_hard_signals_peak_between_their_samples(name):
    x = HARD[name]
    assert amplitude_to_db(reference_true_peak(x)) > amplitude_to_db(np.abs(x).max()) + 2.0


def _dense_lookahead_gain(peak, ceiling, length, coeff):
    """The limiter gain law computed over the whole signal (the reference for the sparse version)."""
    from scipy.ndimage import minimum_filter1d

    from plugin_bridge.backends.dsp._kernels import release_smoother

    n, h = peak.size, length - 1
    r = np.ones(n + h)
    r[:n] = np.minimum(1.0, ceiling / peak)
    ext = np.concatenate((np.ones(h), r))
    m = minimum_filter1d(ext, size=length, origin=h // 2, mode="nearest")[h:]
    cs = np.concatenate(([0.0], np.cumsum(np.concatenate((np.ones(h), m)))))
    s = np.minimum((cs[length:] - cs[:-length]) / length, 1.0)
    return release_smoother(s, 1.0, coeff)[0][h:]


@pytest.mark.parametrize("length", [1, 2, 220])
@pytest.mark.parametrize("density", [0.0, 0.0005, 0.02, 0.5])
def test_sparse_lookahead_gain_equals_the_dense_computation(length, density):
    rng = np.random.default_rng(int(density * 1e4) + length)
    n = 50_000
    peak = rng.uniform(0.1, 0.8, n)
    hits = rng.random(n) < density
    peak[hits] = rng.uniform(0.9, 2.0, int(hits.sum()))
    peak[-3:] = 1.5  # peaks at the very end
    coeff = 1 - np.exp(-1 / 441.0)
    got = lookahead_gain(peak, 0.891, length, coeff)
    np.testing.assert_allclose(got, _dense_lookahead_gain(peak, 0.891, length, coeff), rtol=0, atol=1e-10)
    assert np.all(got * peak <= 0.891 * (1 + 1e-9))  # up to float rounding
    assert np.array_equal(lookahead_gain(peak * 0.1, 0.891, length, coeff), np.ones(n))  # nothing over


@pytest.mark.parametrize("channels", [1, 2])
def test_filtfilt_inplace_is_scipy_sosfiltfilt_exactly(channels):
    from scipy.signal import butter, sosfiltfilt

    from plugin_bridge.mastering import filtfilt_inplace

    rng = np.random.default_rng(channels)
    x = rng.standard_normal((channels, 70_001)) + 0.2
    for sos in (
        butter(2, 5.0, "highpass", fs=SR, output="sos"),
        butter(4, 40.0, "highpass", fs=SR, output="sos"),
    ):
        np.testing.assert_array_equal(
            filtfilt_inplace(sos, x.copy(), block=4096), sosfiltfilt(sos, x, axis=1)
        )


def test_k_weighted_power_stereo_pair_is_per_channel_filtering_exactly():
    from scipy.signal import sosfilt

    from plugin_bridge.loudness import block_powers, k_weighted_power, k_weighting_sos

    x = pink_noise(2.0, level_db=-18.0)
    sos = k_weighting_sos(SR)
    y = sosfilt(sos, x.astype(np.float64), axis=1)
    expected = y[0] * y[0] + y[1] * y[1]
    np.testing.assert_array_equal(k_weighted_power(x, SR, block=3000), expected)
    # block powers from edge-to-edge sums equal the cumulative-sum definition
    p32 = k_weighted_power(x, SR, dtype=np.float32)
    cs = np.concatenate(([0.0], np.cumsum(p32.astype(np.float64))))
    j = np.arange(round((x.shape[1] / SR - 0.4) / 0.1) + 1)
    lo, hi = (0.4 * (j * 0.25) * SR).astype(int), (0.4 * (j * 0.25 + 1) * SR).astype(int)
    np.testing.assert_allclose(block_powers(p32, SR), (cs[hi] - cs[lo]) / (0.4 * SR), rtol=1e-12)


def test_predicted_loudness_is_close_to_the_measured_one():
    from plugin_bridge.loudness import k_weighted_power, true_peak_envelope
    from plugin_bridge.mastering import limiter_gain, predicted_loudness

    x = song(8.0)
    power = k_weighted_power(x, SR, dtype=np.float32)
    env = true_peak_envelope(x, dtype=np.float32)
    for gain_db in (0.0, 6.0, 10.0):
        g, reduction = limiter_gain(env, SR, -1.15, gain_db)
        predicted = predicted_loudness(power, g, SR, np.empty(x.shape[1], np.float32))
        measured = integrated_loudness(np.multiply(x, g, dtype=np.float32), SR)
        assert abs(predicted - measured) < 0.02, (gain_db, reduction)


def test_repeat_renders_are_bit_identical():
    x = np.clip(song(10.0) * np.float32(2.0), -1.2, 1.2) + np.float32(0.002)  # DC, overs, limiting
    y1, r1 = master_array(x, SR, "streaming")
    y2, r2 = master_array(x.copy(), SR, "streaming")
    assert y1.dtype == np.float32 and np.array_equal(y1, y2)
    assert replace(r1, seconds=0.0) == replace(r2, seconds=0.0)
    assert any("DC offset" in w for w in r1.warnings) and r1.limiting_db > 0.5


def test_silence_returns_a_copy_not_the_input():
    x = np.zeros((2, SR), dtype=np.float32)
    y, _ = master_array(x, SR, "streaming")
    assert y is not x and not np.shares_memory(x, y)


def test_block_limiter_equals_true_peak_limit_in_blocks():
    """The streamed limiter (the same gain law, audio held back by the look-ahead) equals the offline one."""
    from plugin_bridge.loudness import true_peak_envelope
    from plugin_bridge.mastering import BlockLimiter

    x = in_bursts(HARD["clipped_noise"])
    env = true_peak_envelope(x, dtype=np.float32)
    y, reduction = true_peak_limit(x, SR, -1.0, gain_db=8.0, envelope=env)
    lim = BlockLimiter(2, SR, -1.0, gain_db=8.0)
    parts = [lim.process(x[:, a : a + 3001], env[a : a + 3001]) for a in range(0, x.shape[1], 3001)]
    z = np.concatenate([*parts, lim.flush()], axis=1)
    assert z.shape == y.shape and reduction > 1.0
    np.testing.assert_allclose(z, y, rtol=0, atol=1e-6)
    assert lim.reduction_db == pytest.approx(reduction, abs=1e-9)


def test_target_names_live_in_one_table():
    from plugin_bridge.mastering.targets import describe_targets

    assert TARGET_NAMES == tuple(TARGETS)
    assert describe_targets().startswith("streaming -14 LUFS/-1 dBTP, apple -16/-1")


# ---------------------------------------------------------------------------------------------
# streamed mastering: master_file reads, measures and writes block by block (65536 samples), its
# intermediate signals in temporary float32 files; master_array runs the same pipeline in memory


def test_streamed_master_file_equals_master_array(tmp_path):
    """Same float32 samples in, the same pipeline cut at the same places: the same master, bit for bit.

    The input is longer than two blocks, has DC (the two-pass zero-phase high-pass through a disk
    store) and clipping runs, and is matched to a reference (FIR across block boundaries).
    """
    from plugin_bridge.mastering.streaming import BLOCK

    x = np.clip(song(4.0) * np.float32(2.5), -1.0, 1.0) + np.float32(0.01)
    assert x.shape[1] > 2 * BLOCK
    ref = reference_track(4.0, SR)
    src, ref_path = tmp_path / "in.wav", tmp_path / "ref.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    sf.write(ref_path, ref.T, SR, subtype="FLOAT")
    for kwargs in ({"target": "club"}, {"reference": ref_path}):
        res = master_file(src, tmp_path / "out.wav", **kwargs)
        got, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
        arr_ref = ref if "reference" in kwargs else None
        y, expected = master_array(x, SR, kwargs.get("target"), arr_ref)
        np.testing.assert_array_equal(got.T, y)  # stated tolerance: none
        assert replace(res, seconds=0.0, output=None) == replace(expected, seconds=0.0)
        assert any("DC offset" in w for w in res.warnings) and any("clipping" in w for w in res.warnings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav", "ref.wav"]  # no leftovers


def test_streamed_pipeline_stays_close_to_the_whole_signal_computations():
    """The streamed meters, DC filter and reference match against the in-memory functions they stream."""
    from plugin_bridge.loudness import true_peak_envelope
    from plugin_bridge.mastering import filtfilt_inplace
    from plugin_bridge.mastering.checks import ClippingCounter
    from plugin_bridge.mastering.streaming import ArraySignal, DiskStore, LoudnessMeter, TruePeakMeter

    x = hot_master(5.0)
    meter, peaks, env = LoudnessMeter(SR, 2, x.shape[1]), TruePeakMeter(2), []
    clip = ClippingCounter(2)
    for block in ArraySignal(x).blocks():
        meter.process(block)
        env.append(peaks.process(block))
        clip.process(block)
    env = np.concatenate([*env, peaks.flush()])
    assert meter.loudness() == pytest.approx(integrated_loudness(x, SR), abs=1e-6)
    np.testing.assert_allclose(env, true_peak_envelope(x, dtype=np.float32), rtol=1e-5, atol=1e-7)
    assert clip.result() == detect_clipping(x)
    for cut in (1, 3, 7):  # clipping runs crossing block ends
        counter = ClippingCounter(2)
        for a in range(0, x.shape[1], 65536 + cut):
            counter.process(x[:, a : a + 65536 + cut])
        assert counter.result() == detect_clipping(x)
    from scipy.signal import butter

    sos = butter(2, 5.0, "highpass", fs=SR, output="sos")
    store = DiskStore(str(pytest.importorskip("tempfile").mktemp()), 2, x.shape[1])
    try:
        store.append(x)
        filtfilt_inplace(sos, store, block=4096)
        np.testing.assert_allclose(store[:, :], filtfilt_inplace(sos, x.astype(np.float64)), atol=2e-6)
    finally:
        store.close()
    y, rep = match_reference(song(8.0), SR, reference_track(8.0, 48000), 48000)
    assert integrated_loudness(y, SR) == pytest.approx(rep.reference_lufs, abs=0.05)


@needs_ffmpeg
def test_streamed_master_of_a_long_file_meets_target_and_ceiling(tmp_path):
    """90 s (60 blocks) of the demo song looped with a quieter passage, the limiter at its 6 dB cap:
    loudness and true peak on our meter and ffmpeg's, within the same tolerances as in memory."""
    part = song(15.0)
    x = np.concatenate([part, part * np.float32(0.5), *([part] * 4)], axis=1)
    src = tmp_path / "long.flac"
    sf.write(src, x.T, SR, subtype="PCM_24")
    res = master_file(src, tmp_path / "out.wav", "streaming")
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert res.reached and res.limiting_db > 0.5 and y.shape == (x.shape[1], 2)
    assert (
        abs(integrated_loudness(y.T, SR) - res.output_lufs) <= 1e-3
    )  # what was measured is what was written
    assert abs(res.output_lufs + 14.0) <= 0.1 and amplitude_to_db(true_peak(y.T)) <= -1.0
    i_ff, tp_ff = ebur128(tmp_path / "out.wav")
    assert abs(i_ff + 14.0) <= LU_TOL and tp_ff <= -1.0 + TP_TOL


def test_master_file_reads_in_blocks(tmp_path):
    """Python-side allocations (tracemalloc) while mastering do not grow with the song.

    A 60 s song is 21 MB as float32; a pass holds a few 65536-sample blocks and the FFT work of
    one block (the reference FIR's the largest, ~14 MB), whether the song lasts 20 s or 60 s.
    """
    import tracemalloc

    ref = tmp_path / "ref.wav"
    sf.write(ref, reference_track(10.0, SR).T, SR, subtype="FLOAT")
    peaks = {}
    for seconds in (20.0, 60.0):
        src = tmp_path / f"in{seconds:g}.wav"
        sf.write(src, song(seconds).T, SR, subtype="FLOAT")
        for kwargs in ({"target": "streaming"}, {"reference": ref}):
            tracemalloc.start()
            try:
                master_file(src, tmp_path / "out.wav", **kwargs)
                peaks[seconds, "reference" in kwargs] = tracemalloc.get_traced_memory()[1] / 1e6
            finally:
                tracemalloc.stop()
    song_mb = 2 * 60 * SR * 4 / 1e6
    for with_reference in (False, True):
        short, long = peaks[20.0, with_reference], peaks[60.0, with_reference]
        assert long < 1.1 * short + 1.0 and long < 0.8 * song_mb, peaks


def test_max_limiting_lets_the_user_through_the_6_db_cap(tmp_path, capsys, caplog):
    """The cap's warning names the option; --max-limiting 14 reaches the target the default misses."""
    src = tmp_path / "song.wav"
    sf.write(src, song().T, SR, subtype="FLOAT")
    assert main(["master", str(src), "-o", str(tmp_path / "a.wav"), "--lufs", "-11", "--json"]) == 0
    capped = json.loads(capsys.readouterr().out)
    assert not capped["reached"] and any("--max-limiting DB" in w for w in capped["warnings"])
    args = [
        "master",
        str(src),
        "-o",
        str(tmp_path / "b.wav"),
        "--lufs",
        "-11",
        "--max-limiting",
        "14",
        "--json",
    ]
    assert main(args) == 0
    freed = json.loads(capsys.readouterr().out)
    assert freed["reached"] and 6.0 < freed["limiting_db"] <= 14.0
    assert abs(integrated_loudness(sf.read(tmp_path / "b.wav", dtype="float32")[0].T, SR) + 11.0) < 0.5
    assert main(["master", str(src), "-o", str(tmp_path / "c.wav"), "--max-limiting", "40"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside 0..20 dB" in err and not (tmp_path / "c.wav").exists()


def test_master_reports_each_stage_to_its_progress_bar(tmp_path):
    """Long masters show a stage bar (`plugin_bridge.progress`): every stage is reported, in order,
    and the command line takes --quiet."""
    src = tmp_path / "in.wav"
    ref = tmp_path / "ref.wav"
    sf.write(src, song(4.0).T, SR, subtype="FLOAT")
    sf.write(ref, pink_noise(4.0, level_db=-14.0).T, SR, subtype="FLOAT")
    seen: list[str] = []
    master_file(src, tmp_path / "out.wav", "streaming", progress=seen.append)
    assert seen == ["checked", "measured", "rendered"]
    seen.clear()
    master_file(src, tmp_path / "out2.wav", reference=ref, progress=seen.append)
    assert seen == ["checked", "measured", "matched to the reference", "rendered"]
    assert main(["master", str(src), "-o", str(tmp_path / "out3.wav"), "--quiet"]) == 0
