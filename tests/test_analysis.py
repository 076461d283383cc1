"""Loudness meter and analysis: EBU test signals, agreement with pyloudnorm and ffmpeg, spectra,
stereo measures, the plot.

Tolerances are the EBU's where they exist (Tech 3341: loudness +-0.1 LU, true peak +0.2/-0.4 dB;
Tech 3342: LRA +-1 LU) and stated per test otherwise.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from signals import SR, noise, pink_noise, sine
from test_mastering import ebur128, needs_ffmpeg

from plugin_bridge.analysis import (
    analyze,
    band_balance_db,
    correlation,
    plot_analysis,
    spectral_distance_db,
    spectral_profile,
    stereo_width,
)
from plugin_bridge.cli import main
from plugin_bridge.demo import demo_song
from plugin_bridge.errors import ParameterError
from plugin_bridge.loudness import (
    amplitude_to_db,
    integrated_loudness,
    k_weighted_power,
    loudness_curve,
    loudness_range,
    true_peak,
)

EBU_SR = 48000


def stepped(levels_db, seconds, sr: int = EBU_SR, freq: float = 1000.0) -> np.ndarray:
    """Stereo 1 kHz sine stepping through ``levels_db`` (dBFS peak per channel), ``seconds`` each."""
    parts = []
    phase = 0.0
    for level, dur in zip(levels_db, seconds, strict=True):
        n = int(round(dur * sr))
        t = np.arange(n) / sr
        parts.append(10 ** (level / 20) * np.sin(2 * np.pi * freq * t + phase))
        phase += 2 * np.pi * freq * n / sr
    x = np.concatenate(parts)
    return np.stack([x, x])


# ---------------------------------------------------------------------------------------------
# the meter


@pytest.mark.parametrize(
    ("levels", "seconds", "expected"),
    [
        ([-23], [20], -23.0),  # Tech 3341 case 1
        ([-33], [20], -33.0),  # case 2
        ([-36, -23, -36], [10, 60, 10], -23.0),  # case 3
        ([-72, -36, -23, -36, -72], [10, 10, 60, 10, 10], -23.0),  # case 4
        ([-26, -20, -26], [20, 20.1, 20], -23.0),  # case 5
    ],
)
def test_ebu_tech_3341_integrated_loudness(levels, seconds, expected):
    assert integrated_loudness(stepped(levels, seconds), EBU_SR) == pytest.approx(expected, abs=0.1)


def test_ebu_tech_3341_momentary_and_short_term():
    power = k_weighted_power(stepped([-23], [20]), EBU_SR)
    for window in (0.4, 3.0):
        _, lufs = loudness_curve(power, EBU_SR, window)
        assert np.all(np.abs(lufs + 23.0) <= 0.1)


@pytest.mark.parametrize(
    ("levels", "expected"),
    [([-20, -30], 10.0), ([-20, -15], 5.0), ([-40, -20], 20.0), ([-50, -35, -20, -35, -50], 15.0)],
)
def test_ebu_tech_3342_loudness_range(levels, expected):
    x = stepped(levels, [20] * len(levels))
    assert loudness_range(x, EBU_SR) == pytest.approx(expected, abs=1.0)


def test_true_peak_finds_inter_sample_peaks():
    """fs/4 at 45 degrees: every sample at 0.707 of the peak, so the sample peak reads 3 dB low."""
    t = np.arange(EBU_SR) / EBU_SR
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    x = 0.5 * np.sin(2 * np.pi * 12000 * t + np.pi / 4) * fade
    assert amplitude_to_db(np.abs(x).max()) == pytest.approx(-9.03, abs=0.01)
    assert amplitude_to_db(true_peak(x)) == pytest.approx(-6.02, abs=0.05)  # EBU allows +0.2/-0.4
    assert amplitude_to_db(true_peak(sine(1000, 1.0, level_db=-6.0))) == pytest.approx(-6.0, abs=0.05)


def test_meter_equals_pyloudnorm():
    import pyloudnorm as pyln

    for x in (demo_song(8.0), noise(5.0), pink_noise(3.0, channels=1)):
        ours = integrated_loudness(x, SR)
        ref = pyln.Meter(SR, filter_class="DeMan").integrated_loudness(x.T.astype(np.float64))
        assert ours == pytest.approx(ref, abs=1e-6)
        assert ours == pytest.approx(pyln.Meter(SR).integrated_loudness(x.T.astype(np.float64)), abs=0.1)


def test_silence_and_short_audio():
    assert integrated_loudness(np.zeros((2, SR)), SR) == -math.inf
    a = analyze(sine(1000, 0.2, level_db=-23.0), SR)
    assert a.integrated_lufs == pytest.approx(-23.0, abs=0.1)  # the ungated short-file rule
    assert a.short_term_max_lufs == -math.inf and a.momentary_max_lufs == -math.inf
    d = analyze(np.zeros((2, SR), dtype=np.float32), SR).to_dict()
    assert d["integrated_lufs"] is None and json.dumps(d)


@needs_ffmpeg
def test_analysis_agrees_with_ffmpeg(tmp_path):
    """ffmpeg prints 0.1 steps: loudness within 0.15 LU, true peak within 0.15 dB, LRA within 0.5 LU."""
    x = np.concatenate([demo_song(10.0) * 0.3, demo_song(10.0)], axis=1)
    path = tmp_path / "song.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    a = analyze(x, SR)
    i_ff, tp_ff = ebur128(path)
    assert a.integrated_lufs == pytest.approx(i_ff, abs=0.15)
    assert a.true_peak_dbtp == pytest.approx(tp_ff, abs=0.15)
    assert a.loudness_range_lu == pytest.approx(ebur128_lra(path), abs=0.5)


def ebur128_lra(path) -> float:
    import re
    import subprocess

    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-nostats",
        "-nostdin",
        "-i",
        str(path),
        "-af",
        "ebur128",
        "-f",
        "null",
        "-",
    ]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return float(re.search(r"LRA:\s+(-?[\d.]+) LU", err[err.rindex("Summary:") :]).group(1))


# ---------------------------------------------------------------------------------------------
# analysis


def test_peaks_and_crest_factor():
    a = analyze(sine(997, 2.0, level_db=-6.0), SR)
    assert a.sample_peak_dbfs == pytest.approx(-6.0, abs=0.01)
    assert a.rms_dbfs == pytest.approx(-9.01, abs=0.01)
    assert a.crest_factor_db == pytest.approx(3.01, abs=0.01)
    assert a.channels == 2 and a.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("freq", "band"), [(60, "low"), (300, "low_mid"), (1000, "mid"), (4000, "high_mid"), (10000, "high")]
)
def test_band_balance_puts_a_sine_in_its_band(freq, band):
    bands = band_balance_db(sine(freq, 2.0), SR)
    assert bands[band] == pytest.approx(0.0, abs=0.1)
    assert all(v < -30.0 for k, v in bands.items() if k != band)


def test_band_balance_of_pink_noise_follows_band_widths():
    """Pink noise has equal power per octave: each band's share is its width in octaves / the total (+-0.5 dB)."""
    bands = band_balance_db(pink_noise(10.0), SR)
    widths = {"low": math.log2(150 / 20), "low_mid": math.log2(500 / 150), "mid": 2.0}
    total = math.log2(SR / 2 / 20)
    for name, octaves in widths.items():
        assert bands[name] == pytest.approx(10 * math.log10(octaves / total), abs=0.5)


def test_stereo_width_and_correlation():
    x = noise(3.0, channels=1)[0]
    same, inverted = np.stack([x, x]), np.stack([x, -x])
    assert stereo_width(same) == 0.0 and correlation(same) == pytest.approx(1.0)
    assert correlation(inverted) == pytest.approx(-1.0) and stereo_width(inverted) == math.inf
    independent = noise(3.0)
    assert stereo_width(independent) == pytest.approx(1.0, abs=0.02)
    assert correlation(independent) == pytest.approx(0.0, abs=0.01)
    assert stereo_width(x) == 0.0 and correlation(x) == 1.0  # mono


def test_spectral_distance():
    x = demo_song(6.0)
    assert spectral_distance_db(x, SR, x * 0.1, SR) == pytest.approx(0.0, abs=1e-6)  # level only
    bright = x + np.diff(x, axis=1, prepend=0.0) * 4
    d = spectral_distance_db(x, SR, bright, SR)
    assert d > 2.0 and d == pytest.approx(spectral_distance_db(bright, SR, x, SR), abs=1e-9)
    p = spectral_profile(x, SR)
    assert p.levels_db.shape == p.centers_hz.shape
    assert math.isnan(spectral_distance_db(x, SR, np.zeros_like(x), SR))


def test_plot_analysis(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot_analysis(tmp_path / "a.png", demo_song(4.0), SR, demo_song(4.0) * 0.5, SR)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind
    with pytest.raises(ParameterError):
        plot_analysis(tmp_path / "a.jpg", demo_song(1.0), SR)


def test_cli_analyze(capsys, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, demo_song(4.0).T, SR, subtype="FLOAT")
    sf.write(b, (demo_song(4.0) * 0.5).T, SR, subtype="FLOAT")
    assert main(["analyze", str(a), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"][0]["integrated_lufs"] == pytest.approx(integrated_loudness(demo_song(4.0), SR))
    assert out["spectral_distance_db"] is None
    args = ["analyze", str(a), str(b)]
    if _has_matplotlib():
        args += ["--plot", str(tmp_path / "p.png")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "integrated (LUFS)" in text and "spectral distance: 0.00 dB" in text
    assert main(["analyze", str(a), "--plot", str(a)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_cli_analyze_plot_into_a_missing_folder_is_a_one_line_error(capsys, tmp_path):
    """The plot's folder is checked before the audio is read: exit 1, one line, nothing written."""
    a = tmp_path / "a.wav"
    sf.write(a, demo_song(2.0).T, SR, subtype="FLOAT")
    assert main(["analyze", str(a), "--plot", str(tmp_path / "missing_folder" / "plot.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("plugin-bridge: error: ") and "missing_folder" in err and "does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_average_spectrum_is_welch():
    from scipy.signal import welch

    from plugin_bridge.analysis import average_spectrum, welch_segment

    x = noise(2.0)
    freqs, psd = average_spectrum(x, SR)
    f_ref, p_ref = welch(x, fs=SR, nperseg=welch_segment(SR, x.shape[1]), detrend=False, axis=1)
    np.testing.assert_allclose(freqs, f_ref)
    np.testing.assert_allclose(psd, p_ref.mean(axis=0), rtol=1e-5)  # scipy works in float32 here


def test_true_peak_envelope_is_resample_poly_with_its_filter():
    """The FFT polyphase oversampler equals resample_poly(x, 8, 1) with the same windowed-sinc prototype."""
    from scipy.signal import resample_poly

    from plugin_bridge.loudness import HALF_TAPS, KAISER_BETA, OVERSAMPLE, true_peak_envelope

    x = noise(0.5, level_db=-6.0)
    t = np.arange(-OVERSAMPLE * HALF_TAPS + 1, OVERSAMPLE * HALF_TAPS) / OVERSAMPLE
    window = np.i0(KAISER_BETA * np.sqrt(np.clip(1 - (t / (HALF_TAPS + 0.5)) ** 2, 0, None))) / np.i0(
        KAISER_BETA
    )
    up = resample_poly(x.astype(np.float64), OVERSAMPLE, 1, axis=1, window=np.sinc(t) * window / OVERSAMPLE)
    group = np.abs(up).reshape(2, -1, OVERSAMPLE).max(axis=2).max(axis=0)
    expected = np.maximum(group, np.concatenate(([0.0], group[:-1])))
    np.testing.assert_allclose(true_peak_envelope(x, block=4096), expected, rtol=1e-4)
