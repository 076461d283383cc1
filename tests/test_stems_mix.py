"""The stems mix: inputs, measurements, decision rules and the whole job, measured on the audio."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import butter, sosfilt
from signals import SR, noise

from plugin_bridge.audio_io import read_audio
from plugin_bridge.cli.main import main
from plugin_bridge.errors import AudioError, ParameterError
from plugin_bridge.graph import render_session
from plugin_bridge.graph.signal_flow import track_pan_gains
from plugin_bridge.loudness import integrated_loudness
from plugin_bridge.songgen.multitrack import make_multitrack
from plugin_bridge.stems.analysis import analyse_track, stereo_position
from plugin_bridge.stems.decide import (
    CENTRE_ROLES,
    MIX_LUFS,
    RULE_LEVELS_LU,
    balance_pan,
    fader_gains,
    pan_targets,
    role_from_name,
)
from plugin_bridge.stems.inputs import collect_tracks
from plugin_bridge.stems.job import mix_stems


def _wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, np.atleast_2d(x).T, sr, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """A procedural 8 s multitrack (5 stems, built-in synth) plus a silent stem, a mono 48 kHz stem
    shorter than the rest and a stem that clips."""
    root = tmp_path_factory.mktemp("stems")
    session = make_multitrack(root / "song", seed=3, seconds=8.0, synth="builtin")
    stems = root / "in"
    shutil.copytree(session.parent / "stems", stems)
    n = read_audio(stems / "bass.wav")[0].shape[1]
    _wav(stems / "silence.wav", np.zeros((2, n), np.float32))
    t = np.arange(int(5.0 * 48000)) / 48000
    _wav(
        stems / "vox.wav",
        (0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
        48000,
    )
    loud = np.clip(3.0 * noise(6.0, seed=5), -1.0, 1.0).astype(np.float32)
    _wav(stems / "hot noise.wav", loud)
    return stems


@pytest.fixture(scope="module")
def mixed(song, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed") / "out"
    return out, mix_stems(song, out, balance="rules", backend="pedalboard")


# ---------------------------------------------------------------------------- measurements


def test_spectral_loudness_agrees_with_the_bs1770_meter():
    x = noise(10.0, seed=1)
    sos = butter(2, [200, 3000], "bandpass", fs=SR, output="sos")
    for sig in (x, sosfilt(sos, x).astype(np.float32), 0.01 * x):
        assert analyse_track(sig, SR).loudness_lufs == pytest.approx(integrated_loudness(sig, SR), abs=0.3)


@settings(max_examples=25, deadline=None)
@given(st.floats(-0.95, 0.95))
def test_stereo_position_inverts_the_mono_pan_law(pan):
    gl, gr = track_pan_gains(pan, 1)
    assert stereo_position(gl * gl, gr * gr) == pytest.approx(pan, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.8, 0.8), st.floats(-0.9, 0.9))
def test_balance_pan_moves_a_stereo_stem_to_the_target_position(position, target):
    gl0, gr0 = track_pan_gains(position, 1)  # a stem whose energy sits at `position`
    el, er = gl0 * gl0, gr0 * gr0
    gl, gr = track_pan_gains(balance_pan(position, target), 2)
    assert stereo_position(el * gl * gl, er * gr * gr) == pytest.approx(target, abs=1e-6)


def test_analysis_flags_silence_clipping_and_finds_the_low_cut():
    x = noise(4.0, seed=2)
    hp = sosfilt(butter(8, 400, "highpass", fs=SR, output="sos"), x).astype(np.float32)
    a = analyse_track(hp, SR)
    # white noise holds 0.5 % of its power in the first ~110 Hz above its lowest frequency
    assert 400 < a.low_cut_hz < 600 and not a.silent and a.clipped_samples == 0
    assert analyse_track(x, SR).low_cut_hz < 150
    assert analyse_track(np.zeros((2, SR)), SR).silent
    assert analyse_track(np.clip(4 * x, -1, 1), SR).clipped_samples > 100
    assert analyse_track(0.25 * x, SR).features == pytest.approx(analyse_track(x, SR).features, abs=1e-3)


# ---------------------------------------------------------------------------- decision rules


def test_name_hints():
    assert role_from_name("Kick In") == "drums"
    assert role_from_name("bass_DI") == "bass"
    assert role_from_name("lead vox") == "vocals"
    assert role_from_name("rhodes") == "keys"
    assert role_from_name("track 7") is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-36, -10), min_size=1, max_size=12), st.data())
def test_faders_put_tracks_at_their_targets(loudness, data):
    loud = np.array(loudness)
    targets = np.array(data.draw(st.lists(st.floats(-6, 6), min_size=len(loud), max_size=len(loud))))
    targets -= targets.mean()
    g = fader_gains(loud, targets, 1.0)
    after = loud + g
    assert after - after.mean() == pytest.approx(targets, abs=1e-6)
    mix = 10 * math.log10(np.sum(10 ** (after / 10)))
    assert mix == pytest.approx(MIX_LUFS, abs=1e-6)
    g0 = fader_gains(loud, targets, 0.0)  # intensity 0: one common gain
    assert np.ptp(g0) == pytest.approx(0.0, abs=1e-9)


def test_pan_targets_centre_the_low_and_lead_roles_and_balance_the_rest():
    roles = ["drums", "bass", "keys", "guitar", "pad/synth", "vocals", "keys"]
    pans = pan_targets(roles, [5.0, 2.0, 6.0, 7.0, 8.0, 6.5, 6.2])
    for r, p in zip(roles, pans, strict=True):
        assert (p == 0.0) == (r in CENTRE_ROLES)
    side = [p for r, p in zip(roles, pans, strict=True) if r not in CENTRE_ROLES]
    assert sum(1 for p in side if p < 0) - sum(1 for p in side if p > 0) in (0, 1)
    assert max(abs(p) for p in side) <= 0.6


# ---------------------------------------------------------------------------- the job


def test_stems_mix_writes_every_output(mixed, song):
    out, r = mixed
    names = sorted(p.stem for p in song.iterdir())
    assert sorted(p.stem for p in (out / "stems").iterdir()) == names
    lengths = {sf.info(p).frames for p in (out / "stems").iterdir()}
    assert len(lengths) == 1  # all the same length
    assert (out / "mix.wav").is_file() and (out / "session.yaml").is_file()
    rep = json.loads((out / "report.json").read_text())
    assert {t["name"] for t in rep["tracks"]} == set(names)
    assert rep["output_lufs"] == pytest.approx(-14.0, abs=0.5)
    assert integrated_loudness(read_audio(out / "mix.wav")[0], SR) == pytest.approx(
        rep["output_lufs"], abs=0.05
    )
    text = (out / "report.md").read_text()
    for word in (
        "silence: silent",
        "vox: 48000 Hz, resampled",
        "hot noise: the stem clips",
        "differ in length",
    ):
        assert word in text
    assert not list(out.glob(".mix.stems-*"))  # staging removed


def test_silent_stem_stays_silent_and_unprocessed(mixed):
    out, r = mixed
    x, _ = read_audio(out / "stems" / "silence.wav")
    assert np.max(np.abs(x)) == 0.0
    d = next(t for t in r.tracks if t.name == "silence")
    assert d.silent and d.effects == [] and d.sends == []


def test_processed_stems_sit_at_the_rule_balance(mixed):
    """Measured on the written stems: each track's loudness relative to the others is the rule
    table's offset for its role (within what compression and EQ move)."""
    out, r = mixed
    active = [t for t in r.tracks if not t.silent]
    loud = np.array([integrated_loudness(read_audio(out / "stems" / f"{t.name}.wav")[0], SR) for t in active])
    want = np.array([RULE_LEVELS_LU[t.role] for t in active])
    err = (loud - loud.mean()) - (want - want.mean())
    assert np.max(np.abs(err)) < 1.5, dict(zip([t.name for t in active], np.round(err, 2), strict=True))


def test_session_re_renders_the_stems_and_recipe_the_mix(mixed, tmp_path):
    out, r = mixed
    res = render_session(
        out / "session.yaml", tmp_path / "raw.wav", stems_out=tmp_path / "st", backend="pedalboard"
    )
    for p in (out / "stems").iterdir():
        assert np.array_equal(read_audio(p)[0], read_audio(tmp_path / "st" / p.name)[0]), p.name
    assert res.frames == sf.info(out / "mix.wav").frames
    assert main(["render", "--recipe", r.files["recipe"], "-o", str(tmp_path / "again.wav")]) == 0
    assert np.array_equal(read_audio(tmp_path / "again.wav")[0], read_audio(out / "mix.wav")[0])


def test_reaper_project_has_a_track_per_stem_and_the_sends(mixed):
    out, r = mixed
    rpp = next((out / "presets").glob("*.RPP")).read_text()
    for t in r.tracks:
        assert f'NAME "{t.name}"' in rpp
    sends = sum(len(t.sends) for t in r.tracks)
    assert sends > 0 and rpp.count("AUXRECV") == sends


def test_session_file_keeps_what_the_user_set(song, tmp_path):
    session = {
        "tracks": [
            {"name": "bass", "file": str(song / "bass.wav"), "gain_db": -7.5, "pan": "auto"},
            {"name": "drums", "file": str(song / "drums.wav"), "pan": 0.4, "chain": "auto"},
            {"name": "keys", "file": str(song / "keys.wav")},
        ]
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(session))
    r = mix_stems(path, tmp_path / "out", balance="equal")
    data = yaml.safe_load((tmp_path / "out" / "session.yaml").read_text())
    by = {t["name"]: t for t in data["tracks"]}
    assert by["bass"]["gain_db"] == -7.5 and by["drums"]["pan"] == 0.4
    assert by["keys"]["gain_db"] == pytest.approx(
        next(t for t in r.tracks if t.name == "keys").gain_db, abs=0.01
    )


def test_bad_input_is_one_line_and_writes_nothing(song, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(AudioError, match="no audio files"):
        collect_tracks(empty)
    bad = tmp_path / "bad"
    shutil.copytree(song, bad)
    (bad / "broken gtr.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "out"
    assert main(["mix", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "broken gtr" in err and len(err.splitlines()) == 1
    assert not out.exists()
    dup = tmp_path / "dup"
    shutil.copytree(song, dup)
    data, sr = sf.read(dup / "bass.wav")
    sf.write(dup / "bass.flac", data, sr)
    with pytest.raises(ParameterError, match="two stems are named 'bass'"):
        mix_stems(dup, out)
    assert not out.exists()


def test_cli_mixes_a_folder(song, tmp_path, capsys):
    assert (
        main(["mix", str(song), "-o", str(tmp_path / "o"), "--balance", "rules", "--backend", "numpy"]) == 0
    )
    text = capsys.readouterr().out
    assert "stems mix: wrote" in text and "silent (kept silent)" in text


def test_a_stem_streamed_from_its_file_measures_as_the_whole_array(song, tmp_path):
    from plugin_bridge.stems.job import EXCERPT_S, EXCERPTS, analyse_stem

    short = song / "keys.wav"  # shorter than the excerpts together: kept whole
    audio, sr = read_audio(short)
    streamed, clip, rate = analyse_stem(short)
    assert rate == sr and np.array_equal(clip, audio)
    assert streamed.loudness_lufs == pytest.approx(analyse_track(audio, sr).loudness_lufs, abs=1e-6)
    long = _wav(
        tmp_path / "long.wav", noise(20.0, seed=9) * np.linspace(0.1, 1.0, int(20.0 * SR), dtype=np.float32)
    )
    audio, sr = read_audio(long)
    whole = analyse_track(audio, sr)
    streamed, clip, _ = analyse_stem(long)  # several 65536-frame blocks
    assert streamed.loudness_lufs == pytest.approx(whole.loudness_lufs, abs=1e-6)
    assert streamed.features == pytest.approx(whole.features, abs=1e-4)
    size = int(EXCERPT_S * sr)
    starts = np.linspace(0, audio.shape[1] - size, EXCERPTS).astype(int)
    assert np.array_equal(clip, np.concatenate([audio[:, s : s + size] for s in starts], axis=1))


def test_progress_reports_every_stage_and_the_bar_stays_off_when_quiet(song, tmp_path, capsys):
    from plugin_bridge.progress import StageBar, stage_bar

    seen: list[str] = []
    mix_stems(song, tmp_path / "p", balance="equal", progress=seen.append)
    n = len(list(song.iterdir()))
    assert seen[:n] == [f"analysed {p.stem}" for p in sorted(song.iterdir())]
    assert seen[n:] == ["rendered", "mastered", "exported"]
    assert stage_bar(5, "x", quiet=True).bar is None
    bar = StageBar(2, "shown", enabled=True)
    bar.bar.delay = bar.bar.mininterval = 0  # what a job over 5 s sees
    bar("one")
    bar.close()
    assert "shown" in capsys.readouterr().err
