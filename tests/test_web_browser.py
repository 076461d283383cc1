"""The page in a real browser: headless Debian chromium, driven by playwright (no browser download:
``executable_path`` is the system's chromium), against a real ``plugin-bridge serve``.

Open a song, switch A/B (loudness-matched gains measured on the page's Web Audio graph), move a
control and measure the preview the page decoded, see a refused value's one-line reason, keep two
tabs on two songs apart, accept, and find the exported files on disk and behind the page's links."""

from __future__ import annotations

import math
import subprocess

import pytest
from web_server import CHROMIUM_ARGS, Server, chromium_path

from plugin_bridge.audio_io import write_audio
from plugin_bridge.chain import default_chain
from plugin_bridge.demo import demo_song

pytestmark = pytest.mark.slow
pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")
CHROMIUM = chromium_path()
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (make test installs it as root)", allow_module_level=True)

SR = 44100
ARGS = CHROMIUM_ARGS


def _system_chromium_version() -> str:
    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    root = base / "songs"
    root.mkdir()
    write_audio(root / "song.wav", demo_song(seconds=6.0, seed=4), SR)
    write_audio(root / "other.wav", 0.5 * demo_song(seconds=5.0, seed=5), SR)
    server = Server(root, base / "ws", base / "home")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        assert browser.version.split(".")[0] in _system_chromium_version()  # Debian's, not a download
        try:
            yield server, base, browser
        finally:
            browser.close()
            server.stop()


def _open(page, url: str, song: str) -> None:
    page.goto(url)
    page.wait_for_function("document.querySelector('#song-list').options.length > 1")
    page.select_option("#song-list", song)
    page.click("#open-btn")
    page.wait_for_function("window.pb.st && window.pb.buffers.b && !window.pb.busy", timeout=60000)


def _settled(page, version: int) -> None:
    page.wait_for_function(f"window.pb.st.version > {version} && !window.pb.busy", timeout=30000)


def test_open_compare_adjust_accept_in_the_browser(setup):
    server, base, browser = setup
    errors: list[str] = []
    page = browser.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    _open(page, server.url, "song.wav")
    assert "opened song.wav" in page.text_content("#status")
    assert page.locator("fieldset").count() == len(default_chain().slots)  # one group per stage
    assert "% sure" in page.text_content("#controls")  # the model's confidence is shown

    # A/B in sync: one clock, every version's source running; the switch opens one gain
    page.click("#play-btn")
    page.wait_for_function("window.pb.playing && Object.keys(window.pb.sources).length === 2")
    page.click("#ver-a")
    page.wait_for_timeout(150)
    st = page.evaluate("window.pb.st.readouts")
    gains = page.evaluate("({a: pb.gains.a.gain.value, b: pb.gains.b.gain.value})")
    quiet = min(st["a"]["lufs"], st["b"]["lufs"])
    assert gains["b"] < 1e-3
    assert 20 * math.log10(gains["a"]) == pytest.approx(quiet - st["a"]["lufs"], abs=0.1)  # loudness-matched
    assert page.text_content("#ro-version") == "A original"
    assert float(page.text_content("#ro-lufs")) == pytest.approx(st["a"]["lufs"], abs=0.05)
    page.uncheck("#matched")
    page.wait_for_timeout(150)
    assert page.evaluate("pb.gains.a.gain.value") == pytest.approx(1.0, abs=1e-3)  # true levels
    page.check("#matched")
    page.click("#ver-b")
    page.wait_for_timeout(150)
    assert page.evaluate("pb.gains.a.gain.value") < 1e-3 and page.evaluate("pb.gains.b.gain.value") > 0.1
    page.click("#play-btn")

    # move a control: the preview the page decodes changes (10 dB of low shelf on a bass-heavy song)
    before = page.evaluate("pb.bufferRmsDb('b')")
    version = page.evaluate("pb.st.version")
    page.fill("#p-low-gain_db-num", "10")
    page.press("#p-low-gain_db-num", "Enter")
    _settled(page, version)
    after = page.evaluate("pb.bufferRmsDb('b')")
    assert after > before + 3.0
    assert "preview rendered in" in page.text_content("#status")
    assert page.locator('.param[data-name="low.gain_db"]').get_attribute("class").endswith("changed")

    # a refused value: its one-line reason in the page, and the server keeps going
    page.fill("#p-low-gain_db-num", "40")
    page.press("#p-low-gain_db-num", "Enter")
    page.wait_for_function("document.querySelector('#status').className === 'error'")
    assert "out of range" in page.text_content("#status")
    assert page.evaluate("pb.st.values['low.gain_db']") == 10.0

    # undo goes back to the proposal's value
    version = page.evaluate("pb.st.version")
    page.click("#undo-btn")
    _settled(page, version)
    assert page.evaluate("pb.st.values['low.gain_db'] === pb.st.proposal['low.gain_db']")
    version = page.evaluate("pb.st.version")
    page.fill("#p-low-gain_db-num", "4")
    page.press("#p-low-gain_db-num", "Enter")
    _settled(page, version)

    # accept: the files are written, listed with links, and downloadable
    page.click("#accept-btn")
    page.wait_for_selector("#outputs .accepted", timeout=60000)
    links = page.eval_on_selector_all("#outputs .accepted a", "els => els.map(e => e.getAttribute('href'))")
    names = {h.rsplit("/", 1)[-1] for h in links}
    assert {"mix.wav", "recipe.json"} <= names and any(n.endswith(".RPP") for n in names)
    folder = base / "ws" / "accepted" / page.evaluate("pb.st.accepted[0].folder")
    assert (folder / "mix.wav").stat().st_size > 6 * SR * 2
    assert any(folder.rglob("*.RPP"))
    mix_link = next(h for h in links if h.endswith("/mix.wav"))
    assert page.request.get(server.url + mix_link).body()[:4] == b"RIFF"
    assert "1 accepted mixes" in page.text_content("#profile-info")
    assert errors == []
    page.close()


def test_two_tabs_on_two_songs_keep_their_own_state(setup):
    server, _, browser = setup
    one, two = browser.new_page(), browser.new_page()
    _open(one, server.url, "song.wav")
    _open(two, server.url, "other.wav")
    assert one.evaluate("pb.sid") != two.evaluate("pb.sid")
    version = one.evaluate("pb.st.version")
    one.fill("#p-air-gain_db-num", "6")
    one.press("#p-air-gain_db-num", "Enter")
    _settled(one, version)
    sid2 = two.evaluate("pb.sid")
    two.reload()  # the second tab gets its own session back from the server (its id is in the URL)
    two.wait_for_function("window.pb.st && window.pb.buffers.b && !window.pb.busy", timeout=30000)
    assert two.evaluate("pb.sid") == sid2 and two.text_content("#song-name") == "other.wav"
    assert two.evaluate("pb.st.values['air.gain_db'] === pb.st.proposal['air.gain_db']")
    assert one.evaluate("pb.st.values['air.gain_db']") == 6.0 and one.text_content("#song-name") == "song.wav"
    one.close()
    two.close()
