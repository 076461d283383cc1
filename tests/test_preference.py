"""The taste profile: accepted mixes move later proposals toward the user's taste, measured with a
simulated user; an empty profile changes nothing; the profile survives on disk; mix --profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from plugin_bridge.chain import default_space
from plugin_bridge.cli.main import main
from plugin_bridge.demo import demo_song
from plugin_bridge.errors import ParameterError
from plugin_bridge.ml.assistant import analyse
from plugin_bridge.ml.preference import Accept, Profile, taste_features
from plugin_bridge.pipeline import choose, personalize

SR = 44100
#: The simulated user's taste: 2 dB more air and 15 % more width than the AI proposes.
AIR_DB, WIDTH = 2.0, 1.15


def _song(i: int) -> np.ndarray:
    """Short songs of different spectra and widths: the demo song and coloured noise, 3 s each."""
    if i % 2 == 0:
        x = demo_song(seconds=3.0, seed=i)
    else:
        rng = np.random.default_rng(i)
        n = rng.standard_normal((2, 3 * SR))
        n[1] = 0.6 * n[0] + 0.4 * n[1]  # partly correlated
        tilt = -0.2 - 0.1 * (i % 8)  # darker and darker (a one-pole low-pass, pole 0.2 ... 0.9)
        x = lfilter([1.0], [1.0, tilt], n, axis=1)
        x = 0.1 * x / np.abs(x).max()
    return x.astype(np.float32)


def _user(ai: dict[str, float]) -> dict[str, float]:
    """The simulated user's final settings for an AI proposal (inside the parameters' ranges)."""
    space = default_space()
    out = dict(ai)
    air, width = space.spec("air.gain_db"), space.spec("width.width")
    out["air.gain_db"] = float(np.clip(ai["air.gain_db"] + AIR_DB, air.min, air.max))
    out["width.width"] = float(np.clip(ai["width.width"] * WIDTH, width.min, width.max))
    return out


def _error(values: dict[str, float], user: dict[str, float]) -> float:
    """RMS distance (dB) on the parameters the user cares about (width as 20 log10 of its factor)."""
    d_air = values["air.gain_db"] - user["air.gain_db"]
    d_width = 20 * math.log10(values["width.width"] / user["width.width"])
    return math.sqrt((d_air**2 + d_width**2) / 2)


@pytest.fixture(scope="module")
def songs():
    out = []
    for i in range(15):
        x = _song(i)
        ai = choose(x, SR, model="ensemble", analysis=analyse(x, SR))
        out.append((x, ai))
    return out


def test_ten_accepts_halve_the_error_to_a_consistent_users_taste(tmp_path, songs):
    prof = Profile("sim", tmp_path / "sim.sqlite")
    train, held_out = songs[:10], songs[10:]

    def mean_error() -> float:
        taste = prof.model()
        return float(
            np.mean([_error(personalize(ai, taste, x, SR).values, _user(ai.values)) for x, ai in held_out])
        )

    before = mean_error()
    for i, (x, ai) in enumerate(train):
        prof.add(Accept(f"song{i}", tuple(taste_features(x, SR)), ai.values, _user(ai.values)))
    after = mean_error()
    print(f"simulated user: error {before:.2f} dB with an empty profile -> {after:.2f} dB after 10 accepts")
    assert before > 1.0
    assert after <= 0.5 * before
    assert prof.summary()["mean_moves"]["air.gain_db"] == pytest.approx(AIR_DB, abs=0.05)


def test_a_taste_that_depends_on_the_song_is_learned_too(tmp_path, songs):
    """A user who adds more air the duller the song (0.3 dB per dB of missing top end): the ridge
    part of the model follows the song's features."""

    def user(x: np.ndarray, ai: dict[str, float]) -> float:
        high_db = taste_features(x, SR)[4]  # the top band's share of the song's power (dB)
        return float(np.clip(ai["air.gain_db"] + 0.3 * (-20.0 - high_db), -12.0, 12.0))

    prof = Profile("dull", tmp_path / "dull.sqlite")
    train, held_out = songs[:10], songs[10:]

    def mean_error() -> float:
        taste = prof.model()
        return float(
            np.mean(
                [
                    abs(personalize(ai, taste, x, SR).values["air.gain_db"] - user(x, ai.values))
                    for x, ai in held_out
                ]
            )
        )

    before = mean_error()
    for i, (x, ai) in enumerate(train):
        prof.add(
            Accept(
                f"s{i}",
                tuple(taste_features(x, SR)),
                ai.values,
                {**ai.values, "air.gain_db": user(x, ai.values)},
            )
        )
    after = mean_error()
    print(f"song-dependent taste: air error {before:.2f} dB -> {after:.2f} dB after 10 accepts")
    assert after <= 0.5 * before


def test_an_empty_profile_changes_nothing(tmp_path, songs):
    taste = Profile("empty", tmp_path / "empty.sqlite").model()
    for x, ai in songs[:3]:
        same = personalize(ai, taste, x, SR)
        assert same.values == ai.values and same.vector == ai.vector and same.ai_values is None


def test_one_accept_moves_proposals_half_way_and_untouched_parameters_stay_exact(tmp_path, songs):
    prof = Profile("one", tmp_path / "one.sqlite")
    x0, ai0 = songs[0]
    prof.add(Accept("a", tuple(taste_features(x0, SR)), ai0.values, _user(ai0.values)))
    x, ai = songs[3]
    moved = personalize(ai, prof.model(), x, SR)
    assert moved.values["air.gain_db"] - ai.values["air.gain_db"] == pytest.approx(AIR_DB / 2, abs=0.05)
    assert moved.ai_values == ai.values and moved.taste_accepts == 1
    untouched = [n for n in default_space().names if n not in ("air.gain_db", "width.width")]
    assert all(moved.values[n] == ai.values[n] for n in untouched)


def test_profile_is_kept_on_disk_and_reset_clears_it(tmp_path, monkeypatch, capsys, songs):
    monkeypatch.setenv("PLUGIN_BRIDGE_HOME", str(tmp_path / "home"))
    x, ai = songs[0]
    p = Profile("me")
    assert p.path == tmp_path / "home" / "profiles" / "me.sqlite"
    assert p.add(Accept("a", tuple(taste_features(x, SR)), ai.values, _user(ai.values))) == 1
    assert len(Profile("me").accepts()) == 1  # a new object reads the committed row
    assert main(["profile", "show", "me", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["accepts"] == 1 and shown["mean_moves"]["air.gain_db"] == pytest.approx(AIR_DB)
    assert main(["profile", "reset", "me"]) == 0
    assert Profile("me").accepts() == [] and not p.path.exists()
    with pytest.raises(ParameterError):
        Profile("../evil")


@pytest.mark.slow
def test_mix_with_a_profile_moves_the_proposal_and_reports_it(tmp_path, monkeypatch, songs):
    from plugin_bridge.audio_io import write_audio

    monkeypatch.setenv("PLUGIN_BRIDGE_HOME", str(tmp_path / "home"))
    prof = Profile("me")
    for i, (x, ai) in enumerate(songs[:4]):
        prof.add(Accept(f"s{i}", tuple(taste_features(x, SR)), ai.values, _user(ai.values)))
    x, ai = songs[5]
    song = write_audio(tmp_path / "song.wav", x, SR)
    assert main(["mix", str(song), "-o", str(tmp_path / "out"), "--profile", "me", "--backend", "numpy"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["decisions"]["taste"]["accepts"] == 4
    assert report["values"]["air.gain_db"] - ai.values["air.gain_db"] == pytest.approx(0.8 * AIR_DB, abs=0.1)
    assert "your taste (profile me, 4 accepted mixes)" in (tmp_path / "out" / "report.md").read_text()
