"""The compressor rule (plugin_bridge.ml.dynamics) and its corpus statistics, on generated signals.

Every PLR asserted here is measured: the rule's own result, and the chain rendered by the numpy
backend with the chosen values.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, pink_noise, sine

from plugin_bridge.chain import default_space
from plugin_bridge.errors import ParameterError
from plugin_bridge.loudness import integrated_loudness
from plugin_bridge.ml import dynamics as D
from plugin_bridge.render import render_array

#: Made up for the tests (not the shipped file): the bursts below measure 12.3 dB.
STATS = D.DynamicsStats(p10=5.0, p50=7.5, p90=10.0, count=50, source="test")


def bursts(
    seconds: float = 4.0,
    bed_db: float = -16.0,
    burst_db: float = -1.0,
    every_s: float = 0.6,
    length_s: float = 0.03,
    ramp_s: float = 0.005,
    sr: int = SR,
) -> np.ndarray:
    """A very dynamic signal: a steady 440 Hz bed with short loud bursts (5 ms ramps), stereo float32."""
    n = int(seconds * sr)
    amp = np.full(n, 10 ** (bed_db / 20))
    k, r = int(length_s * sr), int(ramp_s * sr)
    shape = np.ones(k)
    shape[:r] = np.linspace(0, 1, r)
    shape[-r:] = np.linspace(1, 0, r)
    for s in np.arange(0.3, seconds - length_s, every_s):
        i = int(s * sr)
        amp[i : i + k] = np.maximum(amp[i : i + k], 10 ** (burst_db / 20) * shape)
    x = (amp * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
    return np.tile(x, (2, 1))


def dense() -> np.ndarray:
    """An already dense signal: steady pink noise saturated by tanh (PLR ~1 dB)."""
    return np.tanh(3 * pink_noise(4.0, level_db=-10)).astype(np.float32)


def in_ranges(values: dict[str, float]) -> bool:
    space = default_space()
    return set(values) == set(D.PARAMS) and all(
        space.spec(n).min <= v <= space.spec(n).max for n, v in values.items()
    )


def chain_plr(x: np.ndarray, values: dict[str, float]) -> tuple[float, float]:
    """(PLR, loudness change) of ``x`` through the default chain (numpy backend) with ``values``."""
    y = render_array(x, SR, "default", values=values, backend="numpy")
    return D.plr_db(y, SR), integrated_loudness(y, SR) - integrated_loudness(x, SR)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return bursts()


def test_plr_is_sample_peak_minus_loudness_and_scale_free():
    x = sine(1000, 2.0, level_db=-6.0)
    expected = -6.0 - integrated_loudness(x, SR)
    assert D.plr_db(x, SR) == pytest.approx(expected, abs=1e-3)
    assert D.plr_db(x * 0.1, SR) == pytest.approx(expected, abs=1e-3)
    assert D.plr_db(x[0], SR) == pytest.approx(-6.0 - integrated_loudness(x[:1], SR), abs=1e-3)
    assert D.crest_factor_db(x) == pytest.approx(10 * math.log10(2), abs=0.01)  # a sine: 3.01 dB
    assert math.isnan(D.plr_db(np.zeros((2, SR)), SR))


@pytest.mark.parametrize("block", [1000, 4410, 65536])
def test_loudest_excerpt_fed_block_by_block_is_the_whole_signals(block):
    sr = 8000
    x = 0.01 * np.random.default_rng(1).standard_normal((2, 70 * sr)).astype(np.float32)
    x[:, 33 * sr : 47 * sr] *= 10
    scan = D.LoudestExcerpt(x.shape[1], sr, 10.0)
    for i in range(0, x.shape[1], block):
        scan.feed(x[:, i : i + block])
    start, stop = scan.span()
    assert (start, stop) == D.loudest_excerpt(x, sr, 10.0) and 33 * sr <= start and stop <= 47 * sr


def test_loudest_excerpt_finds_the_loud_part():
    sr = 8000
    x = 0.01 * np.random.default_rng(0).standard_normal((2, 70 * sr))
    x[:, 40 * sr : 55 * sr] *= 20
    start, stop = D.loudest_excerpt(x, sr, 10.0)
    assert stop - start == 10 * sr and 40 * sr <= start and stop <= 55 * sr
    assert D.loudest_excerpt(x[:, : 5 * sr], sr, 10.0) == (0, 5 * sr)


def test_dynamic_signal_is_compressed_to_the_target(signal):
    choice = D.compressor_rule(signal, SR, 0.0, STATS)
    assert choice.plr_before > STATS.p90 + 2
    assert choice.target == pytest.approx(STATS.p90)
    assert choice.plr_after < choice.plr_before - 1.0
    assert abs(choice.plr_after - choice.target) <= 1.0
    assert choice.plr_after >= STATS.p10
    assert choice.values["comp.ratio"] > 1.0 and not choice.bypassed
    assert in_ranges(choice.values)
    assert "\n" not in choice.reason
    # measured, not assumed: the chain rendered with these values has that PLR and the same loudness
    plr, loudness_change = chain_plr(signal, choice.values)
    assert plr == pytest.approx(choice.plr_after, abs=0.05)
    assert abs(loudness_change) < 0.1


def test_intensity_scales_the_move(signal):
    half = D.compressor_rule(signal, SR, 0.0, STATS, intensity=0.5)
    full = D.compressor_rule(signal, SR, 0.0, STATS, intensity=1.0)
    assert half.target == pytest.approx(half.plr_before - 0.5 * (half.plr_before - STATS.p90))
    assert abs(half.plr_after - half.target) <= 1.0
    assert full.plr_after < half.plr_after < half.plr_before
    assert half.values["comp.threshold_db"] > full.values["comp.threshold_db"]
    assert in_ranges(half.values)


def test_mono_is_measured_as_dual_mono(signal):
    stereo = D.compressor_rule(signal, SR, 0.0, STATS, 0.5)
    mono = D.compressor_rule(signal[0], SR, 0.0, STATS, 0.5)
    assert mono.plr_before == pytest.approx(stereo.plr_before, abs=1e-6)
    assert mono.values == pytest.approx(stereo.values)
    assert D.excerpt_plr_db(signal[0], SR) == pytest.approx(D.excerpt_plr_db(signal, SR), abs=1e-6)


def test_intensity_zero_bypasses(signal):
    choice = D.compressor_rule(signal, SR, 0.0, STATS, intensity=0.0)
    assert choice.bypassed and choice.values == D.bypass_values()
    assert choice.values["comp.ratio"] == 1.0 and choice.values["comp.threshold_db"] == 0.0
    assert choice.plr_after == choice.plr_before
    assert in_ranges(choice.values)


def test_dense_signal_is_left_alone():
    x = dense()
    choice = D.compressor_rule(x, SR, 0.0, STATS)
    assert choice.plr_before < STATS.p90
    assert choice.values["comp.ratio"] == 1.0 and choice.bypassed
    assert "90th percentile" in choice.reason
    assert in_ranges(choice.values)


def test_silence_is_left_alone():
    choice = D.compressor_rule(np.zeros((2, 2 * SR), np.float32), SR, 0.0, STATS)
    assert choice.bypassed and "silent" in choice.reason


@pytest.mark.parametrize("p10", [9.0, 9.9])
def test_never_below_p10(signal, p10):
    stats = D.DynamicsStats(p10=p10, p50=p10 + 0.2, p90=p10 + 0.5, count=50)  # the rule acts (PLR 12.3)
    for intensity in (0.7, 1.0):
        choice = D.compressor_rule(signal, SR, 0.0, stats, intensity)
        assert choice.plr_after >= p10
        assert chain_plr(signal, choice.values)[0] >= p10 - 0.05


@pytest.mark.parametrize("input_gain_db", [-20.0, 12.0])
def test_input_gain_moves_the_threshold_with_the_level(signal, input_gain_db):
    ref = D.compressor_rule(signal, SR, 0.0, STATS, 0.5)
    choice = D.compressor_rule(signal, SR, input_gain_db, STATS, 0.5)
    assert in_ranges(choice.values)
    assert choice.plr_before == pytest.approx(ref.plr_before, abs=1e-3)
    assert abs(choice.plr_after - choice.target) <= 1.0
    moved = choice.values["comp.threshold_db"] - ref.values["comp.threshold_db"]
    assert moved == pytest.approx(input_gain_db, abs=1.5)


def test_stats_round_trip_and_percentiles(tmp_path):
    stats = D.DynamicsStats.from_values(list(range(1, 12)) + [math.nan], "songs", {"song_plr": {"p50": 7}})
    assert (stats.p10, stats.p50, stats.p90, stats.count) == (2.0, 6.0, 10.0, 11)
    stats.save(tmp_path / D.DYNAMICS_FILE)
    loaded = D.load_dynamics(tmp_path)
    assert loaded == stats and loaded.extra == {"song_plr": {"p50": 7}}
    assert D.DynamicsStats.from_dict(loaded.to_dict()) == stats


@pytest.mark.parametrize(
    "content",
    [
        None,  # no file
        "{not json",
        json.dumps({"p10": 1, "p50": 2}),
        json.dumps({"p10": 9, "p50": 2, "p90": 12, "count": 3}),
        json.dumps({"p10": "x", "p50": 2, "p90": 12, "count": 3}),
        json.dumps([1, 2, 3]),
    ],
)
def test_bad_stats_file_is_a_one_line_error(tmp_path, content):
    if content is not None:
        (tmp_path / D.DYNAMICS_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(ParameterError) as err:
        D.load_dynamics(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / D.DYNAMICS_FILE) in message


def test_stats_script_measures_the_train_songs(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "render_scripts"))
    try:
        import dynamics_stats
    finally:
        sys.path.pop(0)

    songs = []
    for i, (name, source, split, audio) in enumerate(
        [
            ("a", "pkg-music", "train", bursts(3.0)),
            ("b", "pkg-music", "train", dense()[:, : 3 * SR]),
            ("c", "pkg-music", "test", bursts(3.0, bed_db=-30)),
            ("d", "procedural", "train", sine(440, 3.0)),
        ]
    ):
        path = tmp_path / f"{i}.flac"
        sf.write(path, audio.T, SR, subtype="PCM_24")
        songs.append({"name": name, "source": source, "path": str(path), "split": split})
    (tmp_path / "manifest.json").write_text(json.dumps({"songs": songs}), encoding="utf-8")
    out = tmp_path / "models"
    out.mkdir()
    assert dynamics_stats.main([str(tmp_path), "-o", str(out)]) == 0
    stats = D.load_dynamics(out)
    assert stats.count == 2 and "procedural" in stats.source
    expected = [D.excerpt_plr_db(sf.read(tmp_path / f"{i}.flac", always_2d=True)[0].T, SR) for i in (0, 1)]
    assert stats.p50 == pytest.approx(np.median(expected), abs=0.01)
    assert stats.p10 <= stats.p50 <= stats.p90
