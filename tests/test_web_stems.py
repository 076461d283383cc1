"""The web app's stems view on a real socket and in headless chromium: open a folder of stems, get
one strip per track with the AI's decisions, move a fader and measure the preview change, mute,
undo, accept, and find the mastered mix and a session that keeps the user's settings."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml
from web_server import Server, system_chromium

from plugin_bridge.loudness import integrated_loudness
from plugin_bridge.songgen.multitrack import make_multitrack

pytestmark = pytest.mark.slow
pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("webstems")
    root = base / "root"
    song = make_multitrack(base / "song", seed=5, seconds=10.0, synth="builtin")
    shutil.copytree(song.parent / "stems", root / "band")
    t = np.arange(int(10.0 * 48000)) / 48000  # a stem at another rate: resampled for A and B
    sf.write(root / "band" / "pad48.wav", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    server = Server(root, base / "ws", base / "home")
    yield server, base
    server.stop()


def _b(server, st) -> np.ndarray:
    status, data = server.request("GET", f"/api/stems/{st['id']}/audio/b")
    assert status == 200
    x, _ = sf.read(io.BytesIO(data), always_2d=True)
    return x.T


def test_open_adjust_undo_accept(env):
    server, base = env
    status, d = server.request("GET", "/api/stem-folders")
    assert status == 200 and d["folders"] == ["band"]
    status, st = server.request("POST", "/api/stems/open", {"path": "band"})
    assert status == 200, st
    names = {t["name"] for t in st["tracks"]}
    assert names == {p.stem for p in (base / "root" / "band").iterdir()}
    assert all(t["role"] and t["reasons"] for t in st["tracks"])
    # solo one track, then lower its fader: the preview follows the fader
    bass = next(t for t in st["tracks"] if t["name"] == "bass")
    status, st1 = server.request("PUT", f"/api/stems/{st['id']}/tracks", {"tracks": {"bass": {"solo": True}}})
    assert status == 200 and st1["version"] == st["version"] + 1
    l1 = integrated_loudness(_b(server, st1), 44100)
    status, st2 = server.request(
        "PUT", f"/api/stems/{st['id']}/tracks", {"tracks": {"bass": {"gain_db": bass["gain_db"] - 6.0}}}
    )
    assert status == 200
    l2 = integrated_loudness(_b(server, st2), 44100)
    assert 4.0 < l1 - l2 < 7.0  # the master bus's glue compressor takes a little of the 6 dB
    status, st3 = server.request("POST", f"/api/stems/{st['id']}/undo")
    assert next(t for t in st3["tracks"] if t["name"] == "bass")["gain_db"] == pytest.approx(bass["gain_db"])
    status, bad = server.request("PUT", f"/api/stems/{st['id']}/tracks", {"tracks": {"bass": {"pan": 3}}})
    assert status == 403 and "outside" in bad["error"]
    status, bad = server.request("PUT", f"/api/stems/{st['id']}/tracks", {"tracks": {"nope": {"pan": 0}}})
    assert status == 403 and "no track" in bad["error"]
    # accept: keeps the user's settings (bass soloed, the AI's fader)
    status, acc = server.request("POST", f"/api/stems/{st['id']}/accept")
    assert status == 200, acc
    entry = acc["just_accepted"]
    folder = base / "ws" / "accepted" / entry["folder"]
    session = yaml.safe_load((folder / "mix" / "session.yaml").read_text())
    by = {t["name"]: t for t in session["tracks"]}
    assert by["bass"]["solo"] is True and by["bass"]["gain_db"] == pytest.approx(bass["gain_db"], abs=0.01)
    mix, sr = sf.read(folder / "mix" / "mix.wav", always_2d=True)
    assert integrated_loudness(mix.T, sr) == pytest.approx(entry["output_lufs"], abs=0.05)
    f = next(x for x in entry["files"] if x.endswith("mix/mix.wav"))
    status, data = server.request("GET", f"/api/stems/{st['id']}/download/{f}")
    assert status == 200 and len(data) > 1000
    status, bad = server.request("POST", "/api/stems/open", {"path": "../"})
    assert status == 403


def test_the_page_shows_strips_and_follows_a_fader(env):
    server, _ = env
    with system_chromium() as browser:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_function("document.querySelector('#stems-list').options.length > 1")
        page.select_option("#stems-list", "band")
        page.click("#stems-open-btn")
        page.wait_for_function("window.sv.st && !window.pb.busy", timeout=60000)
        rows = page.locator("#strips tbody tr")
        assert rows.count() == 6
        version = page.evaluate("window.sv.st.version")
        gain = page.evaluate("window.sv.st.tracks.find(t => t.name === 'drums').gain_db")
        fader = page.locator("tr[data-track='drums'] input.fader")
        fader.fill(str(gain - 3.0))
        fader.dispatch_event("change")
        page.wait_for_function(f"window.sv.st.version > {version} && !window.pb.busy", timeout=30000)
        got = page.evaluate("window.sv.st.tracks.find(t => t.name === 'drums').gain_db")
        assert got == pytest.approx(gain - 3.0)
        page.click("#stems-accept")
        page.wait_for_selector("a.stems-file", timeout=60000)
        hrefs = page.eval_on_selector_all("a.stems-file", "links => links.map(a => a.getAttribute('href'))")
        assert any(h.endswith("mix.wav") for h in hrefs)
