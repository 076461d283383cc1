"""Batch: mirrored outputs, reports, isolation of crashes and hangs, retries, resume after SIGKILL, Dask."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from plugin_bridge.audio_io import write_audio
from plugin_bridge.batch import BatchOptions, find_items, run_batch
from plugin_bridge.batch.isolate import run_isolated
from plugin_bridge.batch.jobs import JobOptions, clean_partials
from plugin_bridge.batch.ledger import Ledger
from plugin_bridge.batch.report import MAX_LABEL_CHARS, flat_rows, loudness_figure, parameter_figure
from plugin_bridge.chain import load_chain
from plugin_bridge.demo import demo_song
from plugin_bridge.loudness import integrated_loudness

VECTOR = tuple([0.5] * 21)


def _catalog(root, n=4, seconds=4.0):
    for i in range(n):
        sub = "album b/" if i % 2 else ""
        (root / sub).mkdir(parents=True, exist_ok=True)
        write_audio(root / f"{sub}sóng {i}.wav", demo_song(seconds, seed=i) * (0.2 + 0.2 * i), 44100)
    (root / "notes.txt").write_text("not audio")
    return root


def _opts(src, out, **kw):
    job = JobOptions(out_dir=str(out), vector=VECTOR, target=kw.pop("target", "streaming"))
    return BatchOptions(source=str(src), out_dir=str(out), job=job, progress=False, **kw)


def test_batch_mirrors_the_tree_and_masters_every_song(tmp_path):
    src = _catalog(tmp_path / "in")
    (src / "broken.flac").write_bytes(b"fLaC" + b"\0" * 64)
    summary = run_batch(_opts(src, tmp_path / "out", workers=2, retries=1))
    assert (summary.total, summary.done, summary.failed) == (5, 4, 1)
    assert summary.failures[0][0] == "broken.flac" and "cannot decode" in summary.failures[0][1]
    for i in range(4):
        sub = "album b/" if i % 2 else ""
        audio, sr = sf.read(tmp_path / "out" / f"{sub}sóng {i}" / "mix.wav", always_2d=True)
        assert integrated_loudness(audio.T, sr) == pytest.approx(-14.0, abs=0.5)
    rows = json.loads((tmp_path / "out" / "report.json").read_text())
    broken = next(r for r in rows if r["id"] == "broken.flac")
    assert broken["status"] == "failed" and broken["attempts"] == 2  # one retry, bounded
    ok = [r for r in rows if r["status"] == "done"]
    assert all(r["lufs_after"] == pytest.approx(-14, abs=0.5) and r["true_peak_after"] <= -1.0 for r in ok)
    with open(tmp_path / "out" / "report.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_manifest_input(tmp_path):
    src = _catalog(tmp_path / "in", n=2)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,id\nin/sóng 0.wav,first\n")
    items = find_items(manifest)
    assert [(i.id, i.kind) for i in items] == [("first", "song")]
    summary = run_batch(_opts(manifest, tmp_path / "out", workers=1))
    assert summary.done == 1 and (tmp_path / "out" / "first" / "mix.wav").exists()
    assert src.exists()


def _crash(arg):
    if arg == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if arg == "hang":
        time.sleep(60)
    if arg == "raise":
        raise ValueError("bad value")
    return {"arg": arg}


def test_isolation_survives_segfaults_hangs_and_exceptions():
    args = [(a, a) for a in ("ok1", "segv", "hang", "raise", "ok2")]
    start = time.monotonic()
    outcomes = {o.key: o for o in run_isolated(_crash, args, slots=2, timeout=2.0)}
    assert time.monotonic() - start < 20
    assert outcomes["ok1"].ok and outcomes["ok2"].result == {"arg": "ok2"}
    assert "SIGSEGV" in outcomes["segv"].error
    assert "timed out after 2 s" in outcomes["hang"].error
    assert outcomes["raise"].error.startswith("ValueError: bad value")


@pytest.mark.slow
def test_resume_after_sigkill_redoes_nothing_finished(tmp_path):
    src = _catalog(tmp_path / "in", n=6, seconds=8.0)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "plugin_bridge.cli",
        "batch",
        str(src),
        "-o",
        str(out),
        "--workers",
        "1",
        "--vector",
        ",".join(["0.5"] * 21),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "batch.sqlite"
    deadline = time.monotonic() + 120
    done_before: list[str] = []
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if db.exists():
            try:  # the batch may not have started yet (or hold a write lock)
                con = sqlite3.connect(db, timeout=5)
                try:
                    done_before = [r[0] for r in con.execute("SELECT id FROM items WHERE status='done'")]
                finally:
                    con.close()
            except sqlite3.OperationalError:
                continue
            if len(done_before) >= 2:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done_before) < 6, "the batch should be killed half-way"
    mtimes = {i: (out / i.rsplit(".", 1)[0] / "mix.wav").stat().st_mtime_ns for i in done_before}
    summary = run_batch(_opts(src, out, workers=2))
    assert summary.failed == 0 and summary.done == 6 and summary.skipped >= len(done_before)
    with sqlite3.connect(db) as con:
        attempts = dict(con.execute("SELECT id, attempts FROM items"))
    for i in done_before:
        assert attempts[i] == 1
        assert (out / i.rsplit(".", 1)[0] / "mix.wav").stat().st_mtime_ns == mtimes[i]
    assert not list(out.rglob(".*.part*"))
    for wav in out.rglob("mix.wav"):
        assert np.isfinite(sf.read(wav)[0]).all()


def test_clean_partials_removes_left_files_and_work_folders_only(tmp_path):
    """What a killed item leaves (a temporary file, a work folder of the streamed render and
    master with its half-written file) is removed before the item is redone; finished files stay."""
    (tmp_path / ".mix.abc.part.wav").write_bytes(b"half")
    work = tmp_path / ".mix.mix-k2j.part"
    work.mkdir()
    (work / "mixed.wav").write_bytes(b"half")
    (tmp_path / "mix.wav").write_bytes(b"done")
    (tmp_path / "recipe.json").write_text("{}")
    assert clean_partials(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav", "recipe.json"]


def test_report_plots_name_the_songs_and_show_real_units():
    """The loudness plot names each song on its axis (shortened when long); the parameter plot
    shows the real values the songs used, each on an axis in its unit (dB, ms, ratio...)."""
    pytest.importorskip("matplotlib")
    space = load_chain("default").space
    ids = ["sóng 0.wav", "album b/sóng 1.wav", "a very long album name/and an even longer song title.flac"]
    ledger_rows = [
        {
            "id": item_id,
            "status": "done",
            "attempts": 1,
            "result": {
                "chain": "default",
                "lufs_before": -20.0 - i,
                "lufs_after": -14.0,
                "vector": [0.2 + 0.3 * i] * len(space),
                "values": space.to_values([0.2 + 0.3 * i] * len(space)),
            },
        }
        for i, item_id in enumerate(ids)
    ]
    rows = flat_rows(ledger_rows)
    ax = loudness_figure(rows).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:2] == ["sóng 0", "album b/sóng 1"]
    assert len(labels) == 3 and len(labels[2]) <= MAX_LABEL_CHARS and "…" in labels[2]
    assert labels[2].startswith("a very") and labels[2].endswith("song title")
    assert all(t.get_rotation() > 0 for t in ax.get_xticklabels())
    assert ax.get_xlabel() == "song" and ax.get_ylabel() == "integrated loudness (LUFS)"

    axes = {a.get_title(): a for a in parameter_figure(rows).axes if a.get_visible()}
    assert list(axes) == space.names
    for spec in space:
        assert axes[spec.name].get_ylabel() == (spec.unit or "amount")
    thresholds = [r["values"]["comp.threshold_db"] for r in rows]
    drawn = np.concatenate([line.get_ydata() for line in axes["comp.threshold_db"].lines])
    assert drawn.min() == pytest.approx(min(thresholds)) and drawn.max() == pytest.approx(max(thresholds))
    assert min(thresholds) < 0  # real dB, not a normalized 0-1 position


def test_ledger_is_never_visible_without_its_table(tmp_path):
    """A reader that opens batch.sqlite the moment it exists (as the resume test does) finds the
    items table: the ledger appears with its schema or not at all. Twenty races; before the fix
    about half of them saw an empty database."""
    for i in range(20):
        path = tmp_path / f"batch{i}.sqlite"
        errors: list[str] = []
        polling = threading.Event()

        def read_as_soon_as_it_exists(path=path, errors=errors, polling=polling):
            polling.set()
            while not path.exists():
                pass
            try:
                con = sqlite3.connect(path, timeout=5)
                try:
                    con.execute("SELECT COUNT(*) FROM items").fetchone()
                finally:
                    con.close()
            except sqlite3.Error as e:
                errors.append(str(e))

        reader = threading.Thread(target=read_as_soon_as_it_exists)
        reader.start()
        polling.wait()
        Ledger(path).close()
        reader.join(timeout=10)
        assert not errors, f"race {i}: {errors}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
@pytest.mark.parametrize("model", [None, "ensemble"])
def test_dask_local_cluster_gives_the_same_outputs(tmp_path, model):
    """Identical files from both engines, with the AI model too: Dask's workers run numpy with one
    thread, local workers do not, and the features pin their BLAS product to one thread."""
    pytest.importorskip("distributed")
    if model and not (Path(__file__).resolve().parents[1] / "models" / "ensemble.json").is_file():
        pytest.skip("no shipped models")
    src = _catalog(tmp_path / "in", n=3, seconds=3.0)

    def opts(out, **kw):
        o = _opts(src, out, workers=2, **kw)
        if model:
            o = replace(o, job=replace(o.job, job="mix", model=model, vector=None))
        return o

    a = run_batch(opts(tmp_path / "local"))
    b = run_batch(opts(tmp_path / "dask", engine="dask"))
    assert a.done == b.done == 3
    for wav in (tmp_path / "local").rglob("mix.wav"):
        other = tmp_path / "dask" / wav.relative_to(tmp_path / "local")
        np.testing.assert_array_equal(sf.read(wav)[0], sf.read(other)[0])
    if model:
        rows = json.loads((tmp_path / "local" / "report.json").read_text())
        assert all(r["model"] == model for r in rows)


def test_html_report_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    src = _catalog(tmp_path / "in", n=2, seconds=3.0)
    (src / "bad.wav").write_bytes(b"RIFF0000WAVEjunk" * 4)
    summary = run_batch(_opts(src, tmp_path / "out", workers=2, retries=0))
    html_path = summary.reports["html"]
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'prof'}",
            "--dump-dom",
            f"file://{html_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "3 items: 2 done, 1 failed" in dom
    assert "bad.wav" in dom and "cannot decode audio" in dom
    assert dom.count("data:image/png;base64,") == 2  # loudness and parameter plots


def test_batch_exports_and_daw_render_scripts(tmp_path):
    pytest.importorskip("dawdreamer")
    rpp = pytest.importorskip("rpp")
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "render_scripts"))
    import batch_reaper_project
    import rerender_dawdreamer

    src = _catalog(tmp_path / "in", n=2, seconds=3.0)
    out = tmp_path / "out"
    opts = _opts(src, out, workers=2)
    opts.job = JobOptions(out_dir=str(out), vector=VECTOR, export=("midi", "json"))
    assert run_batch(opts).done == 2
    assert sorted(p.name for p in (out / "sóng 0" / "export").iterdir()) == [
        "sóng 0.cc7.mid",
        "sóng 0.recipe.json",
    ]
    assert rerender_dawdreamer.main([str(out)]) == 0
    again, sr = sf.read(out / "sóng 0" / "mix_dawdreamer.wav", always_2d=True)
    assert sr == 44100 and np.isfinite(again).all() and again.shape[0] > 3 * 44100
    assert batch_reaper_project.main([str(out), "-o", str(tmp_path / "catalog.RPP")]) == 0
    project = rpp.loads((tmp_path / "catalog.RPP").read_text())
    tracks = project.findall("TRACK")
    assert len(tracks) == 2
    assert sum(1 for t in tracks for item in t.findall("ITEM")) == 2


def test_batch_with_the_shipped_ai_model(tmp_path):
    from pathlib import Path

    if not (Path(__file__).resolve().parent.parent / "models" / "cnn.onnx").exists():
        pytest.skip("no shipped models")
    src = _catalog(tmp_path / "in", n=2, seconds=3.0)
    opts = _opts(src, tmp_path / "out", workers=2)
    opts.job = JobOptions(out_dir=str(tmp_path / "out"), job="mix", model="cnn")
    summary = run_batch(opts)
    assert summary.done == 2, summary.failures
    rows = json.loads((tmp_path / "out" / "report.json").read_text())
    assert all(r["model"] == "cnn" and len(r["vector"]) == 21 for r in rows)
    assert (
        len({tuple(r["vector"]) for r in rows}) == 2
    )  # the model listened: different songs, different mixes
