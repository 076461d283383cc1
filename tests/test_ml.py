"""Models work: band features (numpy and torch alike), damage and correction in the band domain against
real audio and the real chain, the confidence rule, splits, a tiny end-to-end training with ONNX
export, the parameter-space check, the eval and mix commands, and the shipped models."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_bridge.chain import load_chain
from plugin_bridge.ml import corpus as C
from plugin_bridge.ml.degrade import TIERS, Damage, Filter, apply_damage, draw_damage
from plugin_bridge.ml.eqresponse import eq_band_power, eq_bin_power, eq_names, pool_bands, rbj_power
from plugin_bridge.ml.features import (
    CLIP_FRAMES,
    N_BANDS,
    N_FRAMES,
    N_GLOBAL,
    balance_db,
    band_frames,
    clip_features,
    features_from_bands,
    scale_bands,
    side_mid_ratio_db,
    song_features,
)
from plugin_bridge.ml.inference import confident_moves
from plugin_bridge.render import render_array

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def _music(seconds: float, seed: int) -> np.ndarray:
    """A crude stereo 'song': a few panned harmonic tones with envelopes plus noise hits."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.zeros((2, n))
    for _ in range(6):
        f = 55 * 2 ** rng.uniform(0, 6)
        pan = rng.uniform(-0.8, 0.8)
        env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t + rng.uniform(0, 6))
        tone = env * sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 5))
        out += np.stack([(1 - pan) * tone, (1 + pan) * tone]) * 0.05
    hits = rng.standard_normal((2, n)) * (np.sin(2 * np.pi * 2 * t) > 0.95) * 0.1
    return (out + hits).astype(np.float32)


def _pink(seconds: float, seed: int, side: float = 0.5) -> np.ndarray:
    """Stereo pink noise (1/f power) with a given side/mid amplitude ratio."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = []
    for _ in range(2):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        out.append(np.fft.irfft(spec, n))
    mid, sid = out[0], out[1] * side
    x = np.stack([mid + sid, mid - sid])
    return (0.1 * x / np.std(x)).astype(np.float32)


# ----------------------------------------------------------------------------- features


def test_features_shapes_finite_and_level_free():
    patch, glob = clip_features(_music(6.0, 0))
    assert patch.shape == (2, N_BANDS, N_FRAMES) and glob.shape == (N_GLOBAL,)
    assert np.isfinite(patch).all() and np.isfinite(glob).all()
    p2, g2 = clip_features(_music(6.0, 0) * 0.1)  # -20 dB: the features do not move
    assert np.max(np.abs(g2 - glob)) < 1e-3 and np.max(np.abs(p2 - patch)) < 1e-3
    patches, globs = song_features(_music(20.0, 1), SR, n_clips=3)
    assert patches.shape == (3, 2, N_BANDS, N_FRAMES) and globs.shape == (3, N_GLOBAL)
    p3, _ = song_features(_music(5.0, 2)[0], 22050, n_clips=2)  # mono and other rates are accepted
    assert p3.shape[1:] == (2, N_BANDS, N_FRAMES)


@pytest.mark.parametrize(("sr", "channels"), [(SR, 2), (48000, 1), (22050, 2)])
def test_song_clips_fed_block_by_block_are_the_whole_songs(sr, channels):
    """A file is analysed block by block (`SongClips`): the same clips as the whole song's, at any rate."""
    from plugin_bridge.ml.features import SongClips, song_clips

    x = np.random.default_rng(3).standard_normal((channels, 40 * sr)).astype(np.float32) * 0.1
    x[:, : 10 * sr] *= 0.001  # a near-silent intro: its clips are skipped
    whole = song_clips(x, sr, n_clips=4)
    fed = SongClips(x.shape[1], sr, n_clips=4)
    for i in range(0, x.shape[1], 65536):
        fed.feed(x[:, i : i + 65536])
    assert len(whole) == len(fed.clips()) == 4
    for a, b in zip(whole, fed.clips(), strict=True):
        assert a.shape == (2, CLIP_FRAMES) and np.array_equal(a, b)


def test_torch_features_equal_numpy_features():
    torch = pytest.importorskip("torch")
    frames = band_frames(_music(6.0, 3)).astype(np.float64)
    patch, glob = features_from_bands(frames)
    tp, tg = features_from_bands(torch.from_numpy(frames))
    assert np.max(np.abs(tp.numpy() - patch)) < 1e-3 and np.max(np.abs(tg.numpy() - glob)) < 1e-3


def test_features_tell_width_and_coherence():
    """Side/mid and coherence features follow the stereo image: mono reads coherent and side-less,
    decorrelated noise reads wide and incoherent."""
    wide = _pink(6.0, 1, side=1.0)
    mono = np.stack([wide[0], wide[0]])
    _, gw = clip_features(wide)
    _, gm = clip_features(mono)
    assert gm[-2] < -60 and gw[-2] > -3  # overall side/mid ratio (dB)
    assert gm[-1] > 0.999 and gw[-1] < 0.3  # overall L/R coherence


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_damage_in_bands_matches_damaged_audio(seed):
    """Damage applied to band frames (what training does) reads like damage applied to the audio
    (what a user's file carries): long-term balance within 0.5 dB per band, width within 0.2 dB."""
    rng = np.random.default_rng(seed)
    clip = _pink(6.5, seed)
    damage = draw_damage(rng, TIERS[seed])
    audio = apply_damage(clip, SR, damage)[:, SR // 2 :]  # past the filters' start-up
    ref = band_frames(clip[:, SR // 2 :]).astype(np.float64)
    h, w, g = C.damage_bands(damage)
    bands = scale_bands(ref, h, w, g)
    real = band_frames(audio).astype(np.float64)
    assert np.max(np.abs(balance_db(bands) - balance_db(real))[3:]) < 0.5
    assert abs(side_mid_ratio_db(bands) - side_mid_ratio_db(real)) < 0.2


@pytest.mark.parametrize("backend", ["numpy", "pedalboard"])
def test_eq_model_matches_the_real_chain(backend):
    """The differentiable EQ model is the chain: pink noise rendered through the default chain with
    random EQ gains changes band by band as `eq_band_power` says (within 0.4 dB)."""
    if backend == "pedalboard":
        pytest.importorskip("pedalboard")
    rng = np.random.default_rng(4)
    x = _pink(7.0, 4)
    gains = rng.uniform(-12, 12, len(eq_names()))
    values = dict(zip(eq_names(), gains, strict=True))
    y = render_array(x, SR, "default", values=values, backend=backend)
    before = band_frames(x[:, SR:]).astype(np.float64)[0].mean(-1)
    after = band_frames(y[:, SR:]).astype(np.float64)[0].mean(-1)
    measured = 10 * np.log10(after / before)
    model = 10 * np.log10(eq_band_power(gains))
    assert np.max(np.abs(measured - model)[2:]) < 0.4, np.abs(measured - model)


def test_eq_model_three_points_agree_with_every_bin_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    g = rng.uniform(-12, 12, (50, len(eq_names())))
    fast = 10 * np.log10(eq_band_power(g))
    full = 10 * np.log10(pool_bands(eq_bin_power(g)))
    assert np.max(np.abs(fast - full)) < 0.35
    gt = torch.tensor(g, requires_grad=True)
    out = eq_band_power(gt)
    out.sum().backward()
    assert np.max(np.abs(out.detach().numpy() - eq_band_power(g))) < 1e-9 and torch.isfinite(gt.grad).all()
    from plugin_bridge.backends.dsp.filters import peak_sos
    from plugin_bridge.ml.degrade import sos_power

    f = np.geomspace(20, 20000, 40)
    assert np.allclose(
        rbj_power("peak", 1000, 1.4, np.array(5.0), f, SR), sos_power(peak_sos(SR, 1000, 5.0, 1.4), f, SR)
    )


def test_correction_loss_is_zero_for_the_exact_inverse():
    """Damage by the chain's own EQ at -g and width 1/w: the moves (g, 20 log10 w) correct it exactly
    (the RBJ cookbook shelves and peaks invert by negating the gain), and doing nothing does not."""
    torch = pytest.importorskip("torch")
    from plugin_bridge.ml.train import audio_losses

    rng = np.random.default_rng(2)
    ref = band_frames(_pink(6.0, 2)).astype(np.float64)[None]
    g = rng.uniform(-8, 8, len(eq_names()))
    w = 1.7
    dmg = scale_bands(ref, eq_band_power(-g)[None], np.array([1 / w]))
    moves = torch.tensor(np.concatenate([g, [20 * np.log10(w)]])[None])
    bal, wid = audio_losses(torch, moves, torch.from_numpy(dmg), torch.from_numpy(ref))
    assert float(bal[0]) < 0.05 and float(wid[0]) < 0.01  # 3-point band means: not bit-exact
    bal0, wid0 = audio_losses(torch, torch.zeros_like(moves), torch.from_numpy(dmg), torch.from_numpy(ref))
    assert float(bal0[0]) > 1.0 and float(wid0[0]) > 4.0


def test_oracle_moves_undo_foreign_damage():
    rng = np.random.default_rng(8)
    ref = band_frames(_pink(6.0, 8)).astype(np.float64)
    for tier in TIERS:
        h, w, g = C.damage_bands(draw_damage(rng, tier))
        dmg = scale_bands(ref, h, w, g)
        moves = C.oracle_moves(dmg, ref)
        fixed = scale_bands(dmg, eq_band_power(moves[:-1]), 10 ** (moves[-1] / 20))
        before = np.mean(np.abs(balance_db(dmg) - balance_db(ref)))
        after = np.mean(np.abs(balance_db(fixed) - balance_db(ref)))
        assert after < 0.5 * before + 0.05, (tier, before, after)
        assert abs(side_mid_ratio_db(fixed) - side_mid_ratio_db(ref)) < 0.1  # width set before the EQ


# ----------------------------------------------------------------------------- damage and confidence


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tier=st.sampled_from(TIERS))
def test_damage_tiers_stay_in_their_ranges(seed, tier):
    d = draw_damage(np.random.default_rng(seed), tier)
    assert -12.0 <= d.level_db <= -3.0 and d.tier == tier and 1 <= len(d.filters) <= 3
    gains = [abs(f.gain_db) for f in d.filters]
    if tier == "clear":
        assert all(7.0 <= g <= 12.0 for g in gains) and (0.25 <= d.width <= 0.5 or 1.8 <= d.width <= 2.5)
    elif tier == "middle":
        assert all(g <= (4.0 if f.kind == "peak" else 6.0) for f, g in zip(d.filters, gains, strict=True))
        assert 0.5 <= d.width <= 1.5
    else:
        assert all(g <= 3.0 for g in gains) and 0.8 <= d.width <= 1.25


def test_apply_damage_refuses_mono_and_unknown_filters():
    with pytest.raises(C.ParameterError, match="stereo"):
        apply_damage(np.zeros(100, np.float32), SR, Damage())
    with pytest.raises(C.ParameterError, match="unknown damage filter"):
        apply_damage(np.zeros((2, 100), np.float32), SR, Damage((Filter("notch", 100, 1, 3),)))


@settings(max_examples=100, deadline=None)
@given(
    mu=st.floats(-12, 12),
    sigma=st.floats(0.05, 10),
    shrink=st.floats(0, 3),
    intensity=st.floats(0, 1),
)
def test_confident_moves_never_overshoot(mu, sigma, shrink, intensity):
    """A move is cut by shrink x its uncertainty: never larger than proposed, never of the other
    sign, zero when no larger than its doubt, and scaled by intensity."""
    conf, applied = confident_moves(np.array([mu]), np.array([sigma]), shrink, intensity)
    assert 0.0 <= conf[0] <= 1.0
    assert abs(applied[0]) <= abs(mu) * intensity + 1e-12 and applied[0] * mu >= 0
    if abs(mu) <= shrink * sigma:
        assert abs(applied[0]) <= 1e-9
    else:
        assert applied[0] == pytest.approx(np.sign(mu) * (abs(mu) - shrink * sigma) * intensity)


def test_splits_are_by_song_and_deterministic():
    names = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(20)], "c": ["c0"]}
    s1, s2 = C.assign_splits(names, 0), C.assign_splits(names, 0)
    assert s1 == s2
    assert set(s1) == {n for v in names.values() for n in v}  # every song in exactly one split
    assert {s1[n] for n in names["a"]} == {"train", "val", "test"}
    assert s1["c0"] == "train"


# ----------------------------------------------------------------------------- tiny end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 4-song corpus of generated music, tiny models trained on it and exported to ONNX."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("ml")
    (root / "songs").mkdir()
    songs = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        path = root / "songs" / f"s{i}.flac"
        sf.write(path, _music(8.0, 10 + i).T, SR, subtype="PCM_24")
        songs.append({"name": f"s{i}", "source": "generated", "path": str(path), "split": split})
    (root / "manifest.json").write_text(json.dumps({"seed": 0, "songs": songs}))
    sys.path.insert(0, str(ROOT / "render_scripts"))
    try:
        import train_models
    finally:
        sys.path.pop(0)
    out = root / "models"
    assert train_models.main([str(root), "-o", str(out), "--tiny", "--workers", "1"]) == 0
    shutil.copy(ROOT / "models" / "dynamics.json", out / "dynamics.json")
    return root, out


@pytest.mark.slow
def test_tiny_training_exports_onnx_with_cards(tiny):
    from plugin_bridge.ml.inference import load_model, song_moves

    _, out = tiny
    for name in ("cnn", "cnn_large", "ast"):
        assert (out / f"{name}.onnx").is_file() and (out / f"{name}.md").is_file()
        card = json.loads((out / f"{name}.json").read_text())
        assert card["onnx_check_max_abs_diff"] < 1e-2  # torch and onnxruntime agree (outputs in dB, up to 12)
        assert card["space_version"] == "mix-v2" and card["moves"] == [*eq_names(), "width.width"]
        chosen = json.loads((out / "results.json").read_text())["shrink"][name]["chosen"]
        assert set(card["test"]) <= set(TIERS) and card["shrink"] == chosen and min(chosen) >= 0
    ens = load_model("ensemble", out)
    w = np.asarray(json.loads((out / "ensemble.json").read_text())["weights"])
    assert w.shape == (3,) and np.isclose(w.sum(), 1.0)
    patch, glob = song_features(_music(8.0, 1), SR, n_clips=2)
    p = ens.predict(patch, glob)
    assert p.shape == (2, 2 * len(ens.moves)) and (np.abs(p[:, : len(ens.moves)]) <= 12).all()
    assert (p[:, len(ens.moves) :] > 0).all()
    mv = song_moves(ens, patch, glob, intensity=0.5)
    assert all(abs(a) <= abs(q) * 0.5 + 1e-9 for a, q in zip(mv.applied_db, mv.proposed_db, strict=True))


@settings(max_examples=200, deadline=None)
@given(
    ens=st.floats(-12, 12),
    est=st.floats(-12, 12),
    dead=st.floats(0, 3),
    k=st.floats(0, 2),
)
def test_width_rule_never_overshoots_and_waits_for_agreement(ens, est, dead, k):
    """The width rule's move is the two estimates' mean cut by the dead zone plus k x their
    disagreement: never larger than the mean, never of the other sign, none within the dead zone."""
    from plugin_bridge.ml.width_rule import width_rule_move

    mean, spread, applied = (float(v[0]) for v in width_rule_move(np.array([ens]), np.array([est]), dead, k))
    assert mean == pytest.approx((ens + est) / 2) and spread == pytest.approx(abs(ens - est))
    assert abs(applied) <= abs(mean) + 1e-12 and applied * mean >= 0
    if abs(mean) <= dead + k * spread:  # at the boundary itself, the two sides round differently
        assert abs(applied) <= 1e-12


@pytest.mark.slow
def test_tiny_width_model_and_rule_load_into_the_ensemble(tiny, tmp_path):
    from plugin_bridge.ml.inference import load_model, song_moves

    root, out = tiny
    models = tmp_path / "models"
    shutil.copytree(out, models)
    sys.path.insert(0, str(ROOT / "render_scripts"))
    try:
        import train_width
    finally:
        sys.path.pop(0)
    assert train_width.main([str(root), "-o", str(models), "--tiny", "--workers", "1", "--enable"]) == 0
    card = json.loads((models / "width.json").read_text())
    assert card["onnx_check_max_abs_diff"] < 1e-3 and set(card["tables"]["test"]["do nothing"]) <= set(TIERS)
    ens_card = json.loads((models / "ensemble.json").read_text())
    if "width_rule" not in ens_card:
        # no setting met the criterion on the tiny split: exercise the rule anyway
        ens_card["width_rule"] = {"model": "width", "dead_zone_db": 0.5, "disagreement": 0.5}
        (models / "ensemble.json").write_text(json.dumps(ens_card))
    ens = load_model("ensemble", models)
    assert ens.width_model is not None and ens.width_rule["model"] == "width"
    patch, glob = song_features(_music(8.0, 1), SR, n_clips=2)
    mv = song_moves(ens, patch, glob, intensity=0.5)
    assert abs(mv.applied_db[-1]) <= abs(mv.proposed_db[-1]) * 0.5 + 1e-9
    assert 0.0 <= mv.confidence[-1] <= 1.0 and mv.sigma_db[-1] >= 0.0


@pytest.mark.slow
def test_other_space_version_is_a_clear_error(tiny, tmp_path):
    from plugin_bridge.ml.inference import ModelError, load_model

    _, out = tiny
    bad = tmp_path / "models"
    shutil.copytree(out, bad)
    card = json.loads((bad / "cnn.json").read_text())
    card["space_version"] = "mix-v0"
    (bad / "cnn.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="mix-v0"):
        load_model("cnn", bad)
    card["space_version"], card["space_fingerprint"] = "mix-v2", "0000000000000000"
    (bad / "cnn.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="fingerprint"):
        load_model("cnn", bad)
    with pytest.raises(ModelError, match="mix-v0|fingerprint"):
        load_model("ensemble", bad)
    with pytest.raises(ModelError, match="unknown model"):
        load_model("nope", bad)


@pytest.mark.slow
def test_eval_cli_on_two_files(tiny, tmp_path, capsys):
    from plugin_bridge.cli import main

    _, out = tiny
    data = tmp_path / "refs"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"t{i}.wav", _music(5.0, 30 + i).T, SR)
    args = ["eval", "--data", str(data), "--per-tier", "1", "--seconds", "4", "--models-dir", str(out)]
    assert main([*args, "--models", "cnn,ensemble", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["summary"]) == {"do nothing", "chain LSQ fit", "cnn", "ensemble"}
    for tier in TIERS:
        fit, none = res["summary"]["chain LSQ fit"][tier], res["summary"]["do nothing"][tier]
        assert fit["balance_db"] < none["balance_db"]  # the chain can undo much of the damage
        assert 0 <= res["summary"]["ensemble"][tier]["improved"] <= 1


@pytest.mark.slow
def test_mix_cli_all_models_and_intensity(tiny, tmp_path, monkeypatch, capsys):
    from plugin_bridge.cli import main

    _, out = tiny
    monkeypatch.setenv("PLUGIN_BRIDGE_MODELS", str(out))
    song = tmp_path / "song.wav"
    sf.write(song, _music(6.0, 7).T, SR)
    assert main(["mix", str(song), "-o", str(tmp_path / "mix"), "--model", "all", "--backend", "numpy"]) == 0
    for name in ("ensemble", "cnn", "cnn_large", "ast"):
        rec = json.loads((tmp_path / "mix" / f"recipe_{name}.json").read_text())
        assert rec["space"]["version"] == "mix-v2" and rec["model_id"] == name and len(rec["vector"]) == 21
        rep = json.loads((tmp_path / "mix" / f"report_{name}.json").read_text())
        assert abs(rep["output_lufs"] - (-14.0)) < 0.6
        assert [m["parameter"] for m in rep["decisions"]["moves"]] == [*eq_names(), "width.width"]
        assert all(0 <= m["confidence"] <= 1 for m in rep["decisions"]["moves"])
        assert "confidence" in (tmp_path / "mix" / f"report_{name}.md").read_text()
    capsys.readouterr()
    assert (
        main(["mix", str(song), "-o", str(tmp_path / "zero"), "--backend", "numpy", "--intensity", "0"]) == 0
    )
    rec = json.loads((tmp_path / "zero" / "recipe.json").read_text())
    assert all(rec["values"][n] == 0.0 for n in eq_names()) and rec["values"]["width.width"] == 1.0
    assert rec["values"]["comp.ratio"] == 1.0
    assert main(["mix", str(song), "-o", str(tmp_path / "bad"), "--intensity", "1.5"]) == 1
    assert "intensity must be from 0 to 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the shipped models

SHIPPED = ROOT / "models"
needs_shipped = pytest.mark.skipif(not (SHIPPED / "ensemble.json").is_file(), reason="no shipped models")


@needs_shipped
def test_shipped_models_load_and_are_fast():
    from plugin_bridge.ml.inference import load_model

    patch, glob = song_features(_music(30.0, 4), SR)
    for name in ("cnn", "cnn_large", "ast", "ensemble"):
        m = load_model(name, SHIPPED)
        m.predict(patch, glob)
        t = time.perf_counter()
        p = m.predict(patch, glob)
        dt = time.perf_counter() - t
        assert p.shape == (patch.shape[0], 2 * len(m.moves))
        assert dt < 0.5  # the target is 50 ms per song; generous for loaded CI machines
    assert sum(f.stat().st_size for f in SHIPPED.glob("*.onnx")) <= 20e6


@needs_shipped
def test_seed_api_on_the_demo_song():
    from plugin_bridge.demo import demo_song
    from plugin_bridge.song_mix import apply_mixing_parameters, predict_mixing_parameters

    song = demo_song(seconds=8.0)
    params = predict_mixing_parameters(song, SR)
    assert set(load_chain("default").space.names) == set(params)
    assert params["reverb.wet_level"] == 0.0 and params["delay.mix"] == 0.0  # off unless asked for
    out = apply_mixing_parameters(song, SR, params, backend="numpy")
    assert out.shape == song.shape and np.isfinite(out).all()
    assert CLIP_FRAMES == 6 * SR


@needs_shipped
@pytest.mark.slow
def test_demo_song_is_never_made_duller_or_narrower(tmp_path):
    """`make demo`'s song is dull and narrow on purpose. Issue 13 asks for it to come out brighter and
    wider; the shipped models are not sure enough of that to move the top (models/README.md), but
    the AI's decisions must never make the wrong move the previous models made: against the same
    song mastered alone (``--intensity 0``: mastering's limiter darkens this quiet song by itself),
    no cut of the high or air shelf, no narrowing, and a measured high-band share and side/mid
    ratio no lower."""
    from plugin_bridge.cli import main
    from plugin_bridge.demo import demo_song
    from plugin_bridge.ml.evaluate import side_mid_db, third_octave_db

    path = tmp_path / "demo_song.wav"
    sf.write(path, demo_song().T, SR, subtype="FLOAT")
    for name, intensity in (("ai", "1"), ("master", "0")):
        args = ["mix", str(path), "-o", str(tmp_path / name), "--backend", "numpy", "--intensity", intensity]
        assert main(args) == 0
    rec = json.loads((tmp_path / "ai" / "recipe.json").read_text())
    assert rec["values"]["high.gain_db"] >= 0.0 and rec["values"]["air.gain_db"] >= 0.0
    assert rec["values"]["width.width"] >= 1.0
    ai, master = (
        sf.read(tmp_path / n / "mix.wav", dtype="float32", always_2d=True)[0].T for n in ("ai", "master")
    )
    top = slice(-7, None)  # 1/3-octave bands from 4 kHz up, share of the total (dB)
    assert np.mean(third_octave_db(ai)[top]) > np.mean(third_octave_db(master)[top]) - 0.3
    assert side_mid_db(ai) >= side_mid_db(master) - 0.1


@needs_shipped
@pytest.mark.slow
def test_shipped_ensemble_narrows_clear_width_faults_and_harms_no_balance(tmp_path):
    """Stand-ins the models never heard in this form (openttd-openmsx songs rendered with the CI
    soundfont TimGM6mb, not the corpus' FluidR3), damaged in the benchmark's tiers: the width of
    clear faults is much reduced, and no clip's balance is made worse by more than 0.5 dB. (Issue
    13's balance targets for clear faults are not met by the shipped models: models/README.md.)"""
    import mido

    from plugin_bridge.ml.evaluate import evaluate_folder
    from plugin_bridge.songgen.fluid import render_fluidsynth

    sf2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    songs = sorted(Path("/usr/share/games/openttd/baseset/openmsx").glob("*.mid"))[:2]
    if not (shutil.which("fluidsynth") and sf2.is_file() and songs):
        pytest.skip("needs fluidsynth, timgm6mb-soundfont and openttd-openmsx")
    (tmp_path / "songs").mkdir()
    for p in songs:
        audio = render_fluidsynth(mido.MidiFile(p), SR, sf2, timeout_s=120)[:, : 40 * SR]
        sf.write(tmp_path / "songs" / f"{p.stem}.flac", audio.T, SR, subtype="PCM_24")
    res = evaluate_folder(tmp_path / "songs", per_tier=4, seconds=10.0, model_names=("ensemble",))
    print(res.table())
    ens, none = res.summary["ensemble"], res.summary["do nothing"]
    assert ens["clear"]["width_db"] < 0.7 * none["clear"]["width_db"]
    assert all(ens[t]["worse"] == 0.0 for t in TIERS)
    assert ens["clear"]["balance_db"] <= none["clear"]["balance_db"] + 0.05


@pytest.mark.slow
@needs_shipped
@pytest.mark.skipif(
    not Path("/usr/lib/vst3/ZamCompX2.vst3").exists(), reason="zam-plugins is not installed (REAPER export)"
)
def test_mix_stderr_holds_only_what_the_user_must_know(tmp_path):
    """The REAPER export reads the mapped zam plugins' states; what the plugins print when they are
    unloaded (DPF's 'asked to delete component ...') must not reach the user's stderr."""
    import subprocess

    song = tmp_path / "song.wav"
    sf.write(song, _music(6.0, 11).T, SR)
    run = subprocess.run(
        [sys.executable, "-m", "plugin_bridge.cli", "mix", str(song), "-o", str(tmp_path / "mix")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "mix" / "presets").is_dir() and any((tmp_path / "mix" / "presets").glob("*.RPP"))
    assert run.stderr.strip() == ""


@pytest.mark.slow
@needs_shipped
def test_mix_and_batch_take_downmix_for_a_5_1_file(tmp_path, capsys):
    """The 5.1 refusal says 'use --downmix'; mix and batch have it, and the recipe re-renders the mix."""
    from plugin_bridge.cli import main

    x = _music(5.0, 21)
    six = np.vstack([x, x[:1] * 0.7, np.zeros_like(x[:1]), x * 0.5])  # L R C LFE Ls Rs
    song = tmp_path / "five one.wav"
    sf.write(song, six.T, SR, subtype="FLOAT")
    assert main(["mix", str(song), "-o", str(tmp_path / "no"), "--backend", "numpy"]) == 1
    err = capsys.readouterr().err
    assert "use --downmix" in err and err.count("\n") == 1
    assert main(["mix", str(song), "-o", str(tmp_path / "m"), "--backend", "numpy", "--downmix"]) == 0
    mix, sr = sf.read(tmp_path / "m" / "mix.wav", dtype="float32")
    assert mix.shape == (x.shape[1], 2) and sr == SR
    rec = json.loads((tmp_path / "m" / "recipe.json").read_text())
    assert rec["downmix"] is True
    assert (
        main(["render", "--recipe", str(tmp_path / "m" / "recipe.json"), "-o", str(tmp_path / "re.wav")]) == 0
    )
    np.testing.assert_array_equal(sf.read(tmp_path / "re.wav", dtype="float32")[0], mix)
    src = tmp_path / "songs"
    src.mkdir()
    shutil.copy(song, src / "a.wav")
    args = ["batch", str(src), "-o", str(tmp_path / "b"), "--backend", "numpy", "--workers", "1"]
    assert main([*args, "--downmix"]) == 0
    assert sf.info(str(next((tmp_path / "b").rglob("mix.wav")))).channels == 2


@needs_shipped
def test_cli_mix_says_each_master_warning_once(tmp_path, capsys, caplog):
    """A song with a DC offset: the master's warning is printed once, in the mix summary, not
    also logged to stderr by the mastering stage."""
    from plugin_bridge.cli import main

    song = tmp_path / "song.wav"
    sf.write(song, (_music(6.0, 3) + 0.01).T, SR)
    with caplog.at_level(logging.WARNING):
        assert main(["mix", str(song), "-o", str(tmp_path / "m"), "--backend", "numpy", "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out.count("warning: DC offset") == 1
    assert "DC offset" not in out.err and not [r for r in caplog.records if "DC offset" in r.getMessage()]
    assert logging.getLogger("plugin_bridge.mastering").level == logging.NOTSET  # put back


@pytest.mark.slow
@needs_shipped
@pytest.mark.parametrize("rate", [SR, 48000])
def test_mix_and_master_do_not_import_scipy_signal(tmp_path, rate):
    """``scipy.signal`` (and the ``scipy.stats`` it loads) takes over half a second to import,
    ``scipy.ndimage`` and ``scipy.fft`` (with scipy's array-API layer) about 0.15 s, numba about
    0.35 s before its first kernel returns: a cold ``mix`` or ``master`` (with a reference) of a
    song must import none of them (numba only where the C kernels are not built). ``-X importtime``
    lists every module a process imports; at 48 kHz the features are resampled."""
    import subprocess

    from plugin_bridge.backends.dsp import _kernels

    song, reference = tmp_path / "song.wav", tmp_path / "reference.wav"
    sf.write(song, _music(6.0, 12).T, rate)
    sf.write(reference, _music(6.0, 13).T, rate)
    commands = (
        ["mix", str(song), "-o", str(tmp_path / "mix"), "--quiet"],
        ["master", str(song), "-o", str(tmp_path / "master.wav"), "--reference", str(reference), "--quiet"],
    )
    for command in commands:
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "plugin_bridge.cli", *command],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
        assert "plugin_bridge.cli" in imported
        slow = {"scipy.signal", "scipy.stats", "scipy.ndimage", "scipy.fft", "pyloudnorm"}
        if _kernels.HAVE_C:  # numba's start-up (~0.35 s) is paid only without the compiled kernels
            slow.add("numba")
        assert slow & imported == set(), command[0]
