"""The stems judge (`plugin_bridge.stems.evaluate`): scrambling, metrics, summary and done-when checks.

Multitracks are generated here: 3 s stereo stems of tones and noise at different levels and
positions, 44.1 kHz float WAVs in tmp_path. Tolerances: loudness differences within 0.02 dB
(BS.1770 of a linear gain is exact up to float rounding), positions within 1e-3.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import soundfile as sf

from plugin_bridge.errors import ParameterError
from plugin_bridge.loudness import integrated_loudness
from plugin_bridge.stems.evaluate import (
    Reference,
    done_when,
    evaluate_multitracks,
    gains_to,
    level_error_db,
    multitrack_metrics,
    read_stems,
    scramble_multitrack,
    summarize,
)

SR = 44100


def _stems(seconds: float = 3.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    bass = 0.3 * np.sin(2 * np.pi * 80 * t)
    keys = 0.05 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 554 * t))
    hits = 0.2 * rng.standard_normal(t.size) * ((t * 4) % 1.0 < 0.1)
    pad = 0.02 * rng.standard_normal(t.size)
    return {
        "bass": np.stack([bass, bass]),
        "keys": np.stack([0.6 * keys, 1.2 * keys]),
        "hits": np.stack([hits, hits]),
        "pad": np.stack([pad, 0.5 * rng.standard_normal(t.size) * 0.02]),
    }


@pytest.fixture
def reference(tmp_path):
    """A reference multitrack folder ``ref/stems/*.wav``; returns the folder."""
    folder = tmp_path / "ref"
    (folder / "stems").mkdir(parents=True)
    for name, x in _stems().items():
        sf.write(folder / "stems" / f"{name}.wav", x.T.astype(np.float32), SR, subtype="FLOAT")
    return folder


def _digest(folder) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_scramble_changes_each_level_by_its_drawn_gain(reference, tmp_path):
    info = scramble_multitrack(reference, tmp_path / "s", seed=3, pan=0.0, eq_db=0.0)
    ref, _ = read_stems(reference)
    out, _ = read_stems(tmp_path / "s")
    for name, drawn in info["stems"].items():
        assert 4.0 <= abs(drawn["gain_db"]) <= 10.0
        change = integrated_loudness(out[name], SR) - integrated_loudness(ref[name], SR)
        assert change == pytest.approx(drawn["gain_db"] + info["common_gain_db"], abs=0.02)
    assert max(float(np.max(np.abs(a))) for a in out.values()) <= 10 ** (-1 / 20) + 1e-6
    assert json.loads((tmp_path / "s" / "scramble.json").read_text())["stems"] == info["stems"]


def test_scramble_leaves_the_reference_untouched_and_is_seeded(reference, tmp_path):
    before = _digest(reference)
    a = scramble_multitrack(reference, tmp_path / "a", seed=5)
    b = scramble_multitrack(reference, tmp_path / "b", seed=5)
    c = scramble_multitrack(reference, tmp_path / "c", seed=6)
    assert _digest(reference) == before
    assert a["stems"] == b["stems"] != c["stems"]
    assert all(d["filters"] for d in a["stems"].values())  # an EQ baked into every stem
    assert sorted(p.name for p in (tmp_path / "a" / "stems").iterdir()) == sorted(before)
    with pytest.raises(ParameterError, match="reference"):
        scramble_multitrack(reference, reference, seed=1)


def test_metrics_are_zero_for_a_perfect_copy(reference):
    ref = Reference.read(reference)
    m = multitrack_metrics(dict(ref.stems), None, ref)
    assert m["level_error_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["pan_error"] == pytest.approx(0.0, abs=1e-9)
    assert m["balance_db"] == pytest.approx(0.0, abs=1e-6)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-6)
    # a common gain is no level error, and the mix metrics normalise loudness away
    louder = {k: 2.0 * a for k, a in ref.stems.items()}
    m = multitrack_metrics(louder, None, ref)
    assert m["level_error_db"] == pytest.approx(0.0, abs=1e-6)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-4)


def test_level_error_equals_the_applied_fader_offsets(reference, tmp_path):
    info = scramble_multitrack(reference, tmp_path / "s", seed=11, pan=0.0, eq_db=0.0)
    gains = np.array([d["gain_db"] for d in info["stems"].values()])
    expected = float(np.mean(np.abs(gains - gains.mean())))
    out, _ = read_stems(tmp_path / "s")
    m = multitrack_metrics(out, None, Reference.read(reference))
    assert m["level_error_db"] == pytest.approx(expected, abs=0.02)
    assert m["pan_error"] == pytest.approx(0.0, abs=1e-3)
    assert level_error_db({"a": 1.0, "b": -3.0}, {"a": 0.0, "b": 0.0}) == pytest.approx(2.0)


def test_pan_error_is_the_applied_balance_on_centred_stems(tmp_path):
    folder = tmp_path / "ref"
    (folder / "stems").mkdir(parents=True)
    for name, x in _stems().items():
        mono = x.mean(axis=0)
        sf.write(
            folder / "stems" / f"{name}.wav", np.stack([mono, mono]).T.astype(np.float32), SR, subtype="FLOAT"
        )
    info = scramble_multitrack(folder, tmp_path / "s", seed=2, pan=0.6, eq_db=0.0)
    out, _ = read_stems(tmp_path / "s")
    m = multitrack_metrics(out, None, Reference.read(folder))
    assert m["pan_error"] == pytest.approx(np.mean([abs(d["pan"]) for d in info["stems"].values()]), abs=1e-3)


def test_equal_loudness_gains_bring_every_stem_to_one_loudness(reference):
    stems, sr = read_stems(reference)
    out = gains_to(stems, sr, dict.fromkeys(stems, 0.0))
    loud = [integrated_loudness(a, sr) for a in out.values()]
    assert max(loud) - min(loud) < 0.05
    before = [integrated_loudness(a, sr) for a in stems.values()]
    assert np.mean(loud) == pytest.approx(np.mean(before), abs=0.05)  # the mix keeps its level
    shifted = gains_to(stems, sr, {"bass": 3.0, "keys": -1.0, "hits": -1.0, "pad": -1.0})
    assert integrated_loudness(shifted["bass"], sr) - integrated_loudness(
        shifted["keys"], sr
    ) == pytest.approx(4.0, abs=0.05)


def test_evaluate_rows_and_summary(reference, tmp_path):
    ref = Reference.read(reference)

    def perfect(stems_dir, out_dir):  # a mixer that recovers the reference exactly
        return dict(ref.stems), None

    result = evaluate_multitracks(
        [reference],
        tmp_path / "work",
        seed=1,
        rows=("as given", "equal loudness", "perfect"),
        mixers={"perfect": perfect},
    )
    as_given = result.rows["as given"][0]
    assert as_given["level_error_db"] > 1.0  # faders of 4-10 dB of random sign
    assert result.rows["perfect"][0]["level_error_db"] == pytest.approx(0.0, abs=1e-9)
    assert result.summary["perfect"]["closer"] == 1.0
    assert result.summary["perfect"]["level_improved"] == 1.0
    assert result.checks["perfect"]["pass"]
    assert "| perfect |" in result.table()
    assert _digest(reference) == _digest(reference)  # still readable, untouched
    json.dumps(result.to_dict())


def test_done_when_names_the_targets_missed():
    rows = {
        "as given": [
            {
                "multitrack": f"m{i}",
                "song": "s",
                "level_error_db": 5.0,
                "pan_error": 0.2,
                "balance_db": 2.0,
                "mrstft": 1.0,
                "width_db": 1.0,
            }
            for i in range(10)
        ],  # fmt: skip
        "equal loudness": [
            {
                "multitrack": f"m{i}",
                "song": "s",
                "level_error_db": 3.0,
                "pan_error": 0.2,
                "balance_db": 1.0,
                "mrstft": 0.5,
                "width_db": 1.0,
            }
            for i in range(10)
        ],  # fmt: skip
        "model": [
            {
                "multitrack": f"m{i}",
                "song": "s",
                "level_error_db": 1.5 if i < 8 else 6.0,
                "pan_error": 0.1,
                "balance_db": 0.5 if i < 8 else 3.0,
                "mrstft": 0.4,
                "width_db": 1.0,
            }
            for i in range(10)
        ],  # fmt: skip
    }
    summary, checks = summarize(rows)
    assert summary["model"]["closer"] == pytest.approx(0.8)
    assert summary["model"]["worse"] == pytest.approx(0.2)
    assert summary["model"]["worst"] == "m8"
    assert not checks["model"]["pass"] and "closer on 80%" in checks["model"]["why"]
    assert checks["equal loudness"]["why"].startswith("level error 3.00 dB")
    good = done_when({"level_error_db": 1.0, "closer": 1.0}, {"level_error_db": 3.0})
    assert good == {"pass": True, "why": "all met"}
    assert math.isfinite(summary["model"]["mrstft"])
