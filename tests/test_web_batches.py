"""The web app's batch view, on a real batch run: the API on a real socket lists the runs under the
root with their progress and each job's files, serves only mixes, reports and exports, and the page
in headless chromium shows the runs and links to the files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from web_server import Server, system_chromium, wait_until

from plugin_bridge.audio_io import write_audio
from plugin_bridge.batch.items import Item
from plugin_bridge.batch.ledger import Ledger
from plugin_bridge.cli.main import main
from plugin_bridge.demo import demo_song
from plugin_bridge.loudness import integrated_loudness

pytestmark = pytest.mark.slow
pytest.importorskip("starlette")
SR = 44100


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("batches")
    songs, root = base / "in", base / "root"
    songs.mkdir()
    root.mkdir()
    write_audio(songs / "one.wav", demo_song(seconds=4.0, seed=1), SR)
    write_audio(songs / "two.wav", demo_song(seconds=3.0, seed=2), SR)
    (songs / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code = main(
        [
            "batch",
            str(songs),
            "-o",
            str(root / "run1"),
            "--workers",
            "1",
            "--retries",
            "0",
            "--backend",
            "pedalboard",
        ]
    )
    assert code in (0, 1)  # one item fails on purpose
    (root / "later").mkdir()
    ledger = Ledger(root / "later" / "batch.sqlite")  # a batch that has not started yet
    ledger.add([Item(f"s{i}.wav", f"/nowhere/s{i}.wav", "song") for i in range(3)])
    ledger.close()
    server = Server(root, base / "ws", base / "home")
    yield server, root
    server.stop()


def test_batches_are_listed_with_their_progress(env):
    server, root = env
    status, d = server.request("GET", "/api/batches")
    assert status == 200
    by = {b["path"]: b for b in d["batches"]}
    assert (
        by["run1"]["total"] == 3 and by["run1"]["counts"]["done"] == 2 and by["run1"]["counts"]["failed"] == 1
    )
    assert by["run1"]["share"] == 1.0 and not by["run1"]["running"]
    assert "run1/report.html" in by["run1"]["reports"]
    assert by["later"]["total"] == 3 and by["later"]["finished"] == 0 and by["later"]["running"]


def test_a_batch_lists_its_jobs_and_serves_their_files(env):
    server, root = env
    status, d = server.request("GET", "/api/batch?path=run1")
    assert status == 200
    jobs = {j["id"]: j for j in d["jobs"]}
    assert jobs["bad.wav"]["status"] == "failed" and "bad.wav" in jobs["bad.wav"]["error"]
    mix = next(f for f in jobs["one.wav"]["files"] if f.endswith("mix.wav"))
    status, data = server.request("GET", "/api/file?path=" + mix)
    assert status == 200
    x, sr = sf.read(io.BytesIO(data), always_2d=True)
    assert integrated_loudness(x.T, sr) == pytest.approx(jobs["one.wav"]["lufs_after"], abs=0.05)
    status, page = server.request("GET", "/api/file?path=run1/report.html")
    assert status == 200 and b"<html" in page.lower()


@pytest.mark.parametrize("path", ["run1/batch.sqlite", "../in/one.wav", "/etc/passwd", "nothing/here.wav"])
def test_only_mixes_reports_and_exports_under_the_root_are_served(env, path):
    server, _ = env
    status, d = server.request("GET", "/api/file?path=" + path)
    assert status in (403, 422) and isinstance(d, dict) and d["error"]


def test_a_folder_without_a_ledger_is_one_line(env):
    server, _ = env
    status, d = server.request("GET", "/api/batch?path=run1/one")
    assert status == 403 and "not a batch output folder" in d["error"]


def test_the_page_shows_the_runs_and_links_to_the_files(env):
    server, _ = env
    with system_chromium() as browser:
        page = browser.new_page()
        page.goto(server.url)
        page.click("#batches-btn")
        page.wait_for_selector("a.batch-open")
        assert page.locator("#batch-list tbody tr").count() == 2
        page.locator("a.batch-open", has_text="run1").click()
        page.wait_for_selector("table.jobs tbody tr")
        statuses = page.eval_on_selector_all("table.jobs tbody tr", "rows => rows.map(r => r.dataset.status)")
        assert sorted(statuses) == ["done", "done", "failed"]
        hrefs = page.eval_on_selector_all("table.jobs a", "links => links.map(a => a.getAttribute('href'))")
        assert any(h.endswith("mix.wav") for h in hrefs)
        got = wait_until(lambda: page.request.get(server.url + hrefs[0]))
        assert got.status == 200 and len(got.body()) > 100


def test_progress_of_a_running_batch_is_read_while_it_writes(env):
    server, root = env
    ledger = Ledger(root / "later" / "batch.sqlite")
    try:
        ledger.started("s0.wav")
        ledger.finished("s0.wav", {"outputs": []}, 1.0)
        status, d = server.request("GET", "/api/batch?path=later")
        assert status == 200 and d["counts"]["done"] == 1 and d["finished"] == 1
        assert np.isclose(d["share"], 1 / 3)
    finally:
        ledger.close()
