"""The web server on a real socket (``plugin-bridge serve`` in a child process): what it refuses
(paths outside the root, links, other formats, uploads over the limits, foreign Host headers),
what it does (open, preview, undo/reset, two sessions apart, full render, accept -> files on disk
and a profile row) and that a failure answers one line and leaves the server running."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from web_server import Server

from plugin_bridge.analysis import band_balance_db
from plugin_bridge.audio_io import write_audio
from plugin_bridge.demo import demo_song
from plugin_bridge.loudness import integrated_loudness

pytestmark = pytest.mark.slow  # a server in a child process (about 5 s to start)
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
SR = 44100


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    root, outside = base / "songs", base / "outside"
    (root / "album").mkdir(parents=True)
    outside.mkdir()
    write_audio(root / "song.wav", demo_song(seconds=6.0, seed=1), SR)
    write_audio(root / "album" / "other.flac", demo_song(seconds=5.0, seed=2), SR)
    write_audio(outside / "secret.wav", demo_song(seconds=2.0), SR)
    os.symlink(outside / "secret.wav", root / "link.wav")
    os.symlink(outside, root / "linkdir")
    (root / "notes.txt").write_text("not audio")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    server = Server(root, base / "ws", base / "home", "--max-upload-mb", "1", "--max-minutes", "0.15")
    yield server, base
    server.stop()


def _open(server, path="song.wav") -> dict:
    status, st = server.request("POST", "/api/open", {"path": path})
    assert status == 200, st
    return st


def _wav(server, sid: str, which: str) -> np.ndarray:
    status, data = server.request("GET", f"/api/s/{sid}/audio/{which}")
    assert status == 200
    x, sr = sf.read(io.BytesIO(data), always_2d=True)
    return x.T


def test_serves_the_page_and_lists_only_audio_under_the_root(env):
    server, _ = env
    assert server.first_line.startswith("plugin-bridge web app: http://127.0.0.1:")
    status, page = server.request("GET", "/")
    assert status == 200 and b"plugin-bridge" in page and b"/static/app.js" in page
    for name in ("app.js", "style.css"):
        status, text = server.request("GET", f"/static/{name}")
        assert (
            status == 200 and b"http://" not in text and b"https://" not in text
        )  # nothing from the internet
    assert b"https://" not in page
    status, files = server.request("GET", "/api/files")
    assert files["files"] == ["album/other.flac", "broken.wav", "song.wav"]  # no links, no .txt


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.wav",
        "/etc/passwd",
        "album/../../outside/secret.wav",
        "link.wav",
        "linkdir/secret.wav",
        "~/x.wav",
    ],
)
def test_paths_outside_the_root_and_links_are_refused(env, path):
    server, _ = env
    status, answer = server.request("POST", "/api/open", {"path": path})
    assert status == 403
    assert "\n" not in answer["error"] and any(w in answer["error"] for w in ("'..'", "absolute", "link"))


def test_other_formats_and_broken_files_answer_one_line_and_the_server_keeps_running(env):
    server, _ = env
    status, answer = server.request("POST", "/api/open", {"path": "notes.txt"})
    assert status == 403 and "not an audio format" in answer["error"]
    status, answer = server.request("POST", "/api/open", {"path": "broken.wav"})
    assert status == 422 and "broken.wav" in answer["error"] and "\n" not in answer["error"]
    status, answer = server.request(
        "POST", "/api/open", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 403 and "JSON" in answer["error"]
    assert server.request("GET", "/api/info")[0] == 200
    assert server.proc.poll() is None


def test_a_foreign_host_header_is_refused(env):
    server, _ = env
    status, _ = server.request("GET", "/api/info", headers={"Host": "evil.example:80"})
    assert status == 400


def test_uploads_within_the_limits_open_and_others_are_refused_with_the_reason(env):
    server, base = env
    buf = io.BytesIO()
    sf.write(buf, demo_song(seconds=3.0, sample_rate=22050, seed=3).T, 22050, format="WAV", subtype="PCM_16")
    status, st = server.request("POST", "/api/upload?name=../../my%20song.wav", raw=buf.getvalue())
    assert status == 200 and st["duration_s"] == pytest.approx(3.0)
    uploads = list((base / "ws" / "uploads").iterdir())
    assert [p.name.endswith("-my_song.wav") for p in uploads] == [True]  # a safe name, inside the workspace
    big = np.zeros(600_000, dtype=np.float32)  # 2.4 MB of float WAV > 1 MB
    buf = io.BytesIO()
    sf.write(buf, big, 44100, format="WAV", subtype="FLOAT")
    status, answer = server.request("POST", "/api/upload?name=big.wav", raw=buf.getvalue())
    assert status == 413 and "larger than this server takes (1 MB)" in answer["error"]
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000 * 12, dtype=np.int16), 8000, format="WAV", subtype="PCM_16")  # 12 s > 9 s
    status, answer = server.request("POST", "/api/upload?name=long.wav", raw=buf.getvalue())
    assert status == 403 and "longer than this server takes" in answer["error"]
    status, answer = server.request("POST", "/api/upload?name=x.exe", raw=b"MZ")
    assert status == 403 and "not an audio format" in answer["error"]
    assert len(list((base / "ws" / "uploads").iterdir())) == 1  # nothing kept of the refused ones


def test_a_change_rerenders_the_preview_and_undo_reset_go_back(env):
    server, _ = env
    st = _open(server)
    sid = st["id"]
    assert st["loop"][1] - st["loop"][0] == pytest.approx(6.0)  # the whole 6 s song (loop <= song)
    a, b0 = _wav(server, sid, "a"), _wav(server, sid, "b")
    assert a.shape == b0.shape
    high0 = band_balance_db(b0, SR)["high"]
    status, st2 = server.request("PUT", f"/api/s/{sid}/values", {"values": {"air.gain_db": 10.0}})
    assert status == 200 and st2["version"] == st["version"] + 1 and st2["values"]["air.gain_db"] == 10.0
    b1 = _wav(server, sid, "b")
    assert band_balance_db(b1, SR)["high"] > high0 + 3.0  # the air shelf is heard in the preview
    assert st2["readouts"]["b"]["spectrum_db"] != st["readouts"]["b"]["spectrum_db"]
    assert 0 < st2["preview_ms"] < 2000
    status, answer = server.request("PUT", f"/api/s/{sid}/values", {"values": {"low.gain_db": 40}})
    assert status == 422 and "out of range" in answer["error"]
    status, answer = server.request("PUT", f"/api/s/{sid}/values", {"values": {"nope.gain_db": 1}})
    assert status == 422 and "unknown parameter" in answer["error"]
    status, st3 = server.request("POST", f"/api/s/{sid}/undo", {})
    assert st3["values"]["air.gain_db"] == st["values"]["air.gain_db"]
    assert np.allclose(_wav(server, sid, "b"), b0, atol=1e-4)
    server.request("PUT", f"/api/s/{sid}/values", {"values": {"air.gain_db": 4.0}})
    status, st4 = server.request("POST", f"/api/s/{sid}/reset", {})
    assert st4["values"] == st4["proposal"] and st4["can_undo"]
    status, st5 = server.request("POST", f"/api/s/{sid}/loop", {"start_s": 1.0, "end_s": 3.0})
    assert st5["loop"] == [1.0, 3.0] and _wav(server, sid, "b").shape[1] == 2 * SR


def test_two_sessions_keep_their_own_state(env):
    server, _ = env
    one, two = _open(server), _open(server, "album/other.flac")
    assert one["id"] != two["id"]
    server.request("PUT", f"/api/s/{one['id']}/values", {"values": {"width.width": 2.0}})
    _, two_now = server.request("GET", f"/api/s/{two['id']}")
    assert two_now["values"] == two["values"] and two_now["name"] == "album/other.flac"
    _, one_now = server.request("GET", f"/api/s/{one['id']}")
    assert one_now["values"]["width.width"] == 2.0
    assert server.request("GET", "/api/s/not-a-session-id-at-all")[0] == 403


def test_reference_plays_at_the_loop_position_and_is_measured(env):
    server, _ = env
    sid = _open(server)["id"]
    status, st = server.request("POST", f"/api/s/{sid}/reference", {"path": "album/other.flac"})
    assert status == 200 and st["reference"] == "album/other.flac" and st["readouts"]["ref"]["lufs"] < 0
    assert _wav(server, sid, "ref").shape[0] == 2
    assert server.request("POST", f"/api/s/{sid}/reference", {"path": "link.wav"})[0] == 403


def test_full_render_and_accept_write_the_mix_recipe_and_exports(env):
    server, base = env
    st = _open(server)
    sid = st["id"]
    server.request("PUT", f"/api/s/{sid}/values", {"values": {"air.gain_db": 3.0}})
    status, st = server.request("POST", f"/api/s/{sid}/render", {})
    assert status == 200 and st["full_render"]["lufs"] == pytest.approx(-14.0, abs=0.6)
    status, st = server.request("POST", f"/api/s/{sid}/accept", {})
    assert status == 200, st
    acc = st["accepted"][-1]
    folder = base / "ws" / "accepted" / acc["folder"]
    assert {"mix.wav", "recipe.json"} <= set(acc["files"])
    assert any(f.endswith(".RPP") for f in acc["files"]) and any(
        f.startswith("presets/") for f in acc["files"]
    )
    mix, sr = sf.read(folder / "mix.wav", always_2d=True)
    assert integrated_loudness(mix.T, sr) == pytest.approx(-14.0, abs=0.6)
    import json

    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["values"]["air.gain_db"] == pytest.approx(3.0)
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".part")]
    status, data = server.request("GET", f"/api/s/{sid}/download/{acc['folder']}/mix.wav")
    assert status == 200 and data[:4] == b"RIFF"
    assert server.request("GET", f"/api/s/{sid}/download/{acc['folder']}/../../uploads")[0] in (403, 404)
    assert server.request("GET", f"/api/s/{sid}/download/render.wav")[0] == 200
    with sqlite3.connect(base / "home" / "profiles" / "default.sqlite") as con:
        (n,) = con.execute("SELECT COUNT(*) FROM accepts").fetchone()
    assert n >= 1  # committed before the answer


def test_another_interface_takes_an_explicit_host_and_warns(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin_bridge.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
        + ["--root", str(tmp_path), "--workspace", str(tmp_path / "ws")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLUGIN_BRIDGE_HOME": str(tmp_path / "home")},
    )
    try:
        assert "http://0.0.0.0:" in proc.stdout.readline()
        assert "WARNING: listening on 0.0.0.0" in proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(10)
