"""The mix as an LV2 plugin, checked in hosts that are not ours.

The bundles are built once per module (faust + g++, a few seconds each) and checked with Debian's
LV2 tools: ``lv2_validate`` (sord_validate against the installed LV2 specifications) validates the
descriptions, ``lv2file`` (a lilv host) renders a file through the plugin, and the result is
compared with ``plugin-bridge render --recipe`` of the same recipe: EQ and gain within 0.1 dB in
1/3-octave bands, the reverb tail's energy within 0.3 dB, and the latency the plugin reports equal
to ours and to the delay lv2file's output shows.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, THIRD_OCTAVES, pink_noise

from plugin_bridge.backends import get_backend
from plugin_bridge.chain import load_chain
from plugin_bridge.errors import FormatError
from plugin_bridge.export import export_recipe, lv2
from plugin_bridge.export.plugin_state import PluginState
from plugin_bridge.export.recipe import recipe_from_chain
from plugin_bridge.render import prepare_processor, render_array

#: An AI-like mix of the default chain: gain, EQ moves, glue compression, reverb, a little delay.
MIX_VALUES = {
    "input.gain_db": -3.0,
    "comp.threshold_db": -26.0,
    "comp.ratio": 2.0,
    "low.gain_db": 4.0,
    "eq500.gain_db": -2.5,
    "presence.gain_db": -5.5,
    "air.gain_db": 3.0,
    "reverb.room_size": 0.6,
    "reverb.wet_level": 0.15,
    "delay.mix": 0.08,
    "width.width": 1.3,
    "output.gain_db": -1.5,
}
#: The mastering chain: its look-ahead limiter gives the plugin a latency.
MASTER_VALUES = {"low.gain_db": 2.0, "limiter.ceiling_db": -2.0}


def _missing_host_tools() -> str | None:
    reason = lv2.missing_tools()
    if reason:
        return reason
    for tool, pkg in (("lv2file", "lv2file"), ("lv2_validate", "lv2-dev"), ("sord_validate", "sordi")):
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install {pkg}"
    return None


pytestmark = pytest.mark.skipif(_missing_host_tools() is not None, reason=str(_missing_host_tools()))


def _uri(bundle: Path) -> str:
    return re.search(r"^<([^>]+)>", (bundle / "manifest.ttl").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Recipes, their bundles and the test input: ``{name: (recipe, bundle)}``, ``"input"``, ``"dir"``."""
    d = tmp_path_factory.mktemp("lv2")
    x = np.concatenate([pink_noise(1.5, level_db=-18.0), np.zeros((2, int(1.5 * SR)), np.float32)], axis=1)
    sf.write(d / "in.wav", x.T, SR, subtype="FLOAT")
    out = {"input": d / "in.wav", "dir": d / "bundles"}
    for name, chain, values in (("song", "default", MIX_VALUES), ("master", "master", MASTER_VALUES)):
        recipe = recipe_from_chain(chain, values=values, sample_rate=SR, backend="pedalboard", plugins=())
        recipe.save(d / f"{name}.recipe.json")
        written = export_recipe(recipe, out["dir"], "lv2", stem=name)
        out[name] = (recipe, written["lv2"][0])
    return out


def _lv2file(built, name: str) -> np.ndarray:
    bundle = built[name][1]
    target = built["dir"].parent / f"lv2file_{name}.wav"
    env = dict(os.environ, LV2_PATH=str(built["dir"]))
    res = subprocess.run(
        ["lv2file", "-i", str(built["input"]), "-o", str(target), _uri(bundle)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return sf.read(target, dtype="float64", always_2d=True)[0].T


def _ours(built, name: str) -> np.ndarray:
    """``plugin-bridge render --recipe`` of the same recipe on the same input (the CLI, in a child)."""
    d = built["dir"].parent
    target = d / f"ours_{name}.wav"
    src = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "plugin_bridge.cli", "render", "--recipe", str(d / f"{name}.recipe.json")]
    res = subprocess.run(
        [*cmd, str(built["input"]), "-o", str(target)], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return sf.read(target, dtype="float64", always_2d=True)[0].T


def _band_db(x: np.ndarray) -> np.ndarray:
    """Energy (dB) of ``x`` (channels, n) in each 1/3-octave band around `THIRD_OCTAVES`."""
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return np.array(
        [
            10 * np.log10(power[:, (f >= fc * 2 ** (-1 / 6)) & (f < fc * 2 ** (1 / 6))].sum())
            for fc in THIRD_OCTAVES
        ]
    )


def _ttl_ports(bundle: Path) -> dict[str, dict[str, str]]:
    """``{symbol: {key: value}}`` of the control input ports in the plugin's .ttl."""
    ttl = next(p for p in bundle.glob("*.ttl") if p.name != "manifest.ttl").read_text()
    ports = {}
    for block in re.findall(r"\[\s*a lv2:InputPort, lv2:ControlPort ;(.*?)\]", ttl, re.S):
        fields = dict(re.findall(r"(lv2:\w+|units:unit) (\S+?)\s*(?:;|$)", block, re.M))
        ports[fields["lv2:symbol"].strip('"')] = fields
    return ports


def _reported_latency(so: Path, uri: str, sample_rate: float) -> int:
    """The value the plugin writes to its latency port after one run (LV2's C interface by ctypes)."""
    handle_t, port_fn = (
        ctypes.c_void_p,
        ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p),
    )

    class Descriptor(ctypes.Structure):
        _fields_ = [
            ("uri", ctypes.c_char_p),
            (
                "instantiate",
                ctypes.CFUNCTYPE(
                    handle_t, ctypes.c_void_p, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p
                ),
            ),
            ("connect_port", port_fn),
            ("activate", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
            ("run", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32)),
            ("deactivate", ctypes.c_void_p),
            ("cleanup", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
            ("extension_data", ctypes.c_void_p),
        ]

    lib = ctypes.CDLL(str(so))
    lib.lv2_descriptor.restype = ctypes.POINTER(Descriptor)
    desc = lib.lv2_descriptor(0).contents
    assert desc.uri.decode() == uri
    features = (ctypes.c_void_p * 1)(None)
    h = desc.instantiate(None, sample_rate, str(so.parent).encode(), ctypes.cast(features, ctypes.c_void_p))
    assert h
    bufs = [np.zeros(64, np.float32) for _ in range(4)]
    latency = np.full(1, -1.0, np.float32)
    for i, b in enumerate(bufs):
        desc.connect_port(h, i, b.ctypes.data)
    desc.connect_port(h, 4, latency.ctypes.data)
    desc.activate(h)
    desc.run(h, 64)
    desc.cleanup(h)
    return int(latency[0])


def test_bundle_has_manifest_description_and_library(built):
    bundle = built["song"][1]
    assert bundle.name == "song.lv2" and bundle.is_dir()
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.ttl", "song.so", "song.ttl"]
    assert not [p for p in built["dir"].iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_lv2_validate_accepts_the_descriptions(built):
    ttls = [str(p) for name in ("song", "master") for p in built[name][1].glob("*.ttl")]
    res = subprocess.run(["lv2_validate", *ttls], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Found 0 errors" in res.stdout + res.stderr


def test_control_ports_carry_the_parameter_space_and_the_mix(built):
    recipe, bundle = built["song"]
    space = load_chain("default").space
    ports = _ttl_ports(bundle)
    assert len(ports) == len(space)
    units = {"dB": "units:db", "Hz": "units:hz", "ms": "units:ms"}
    for spec in space:
        port = ports[spec.name.replace(".", "_")]
        assert port["lv2:name"].strip('"') == spec.name
        assert float(port["lv2:minimum"]) == spec.min and float(port["lv2:maximum"]) == spec.max
        assert float(port["lv2:default"]) == pytest.approx(recipe.values[spec.name], abs=1e-6)
        assert port.get("units:unit") == units.get(spec.unit)
    ttl = (bundle / "song.ttl").read_text()
    assert ttl.count("epp:logarithmic") == sum(s.curve in ("log", "db") for s in space)
    assert _uri(bundle) == f"urn:plugin-bridge:mix:{lv2.mix_id(recipe)}"
    assert "plugin-bridge mix song" in ttl


def test_independent_host_renders_the_mix_like_plugin_bridge(built):
    theirs, ours = _lv2file(built, "song"), _ours(built, "song")
    n = int(1.5 * SR)
    assert theirs.shape[0] == ours.shape[0] == 2
    bands = _band_db(theirs[:, :n]) - _band_db(ours[:, :n])
    assert np.max(np.abs(bands)) < 0.1, np.round(bands, 3)
    # sample by sample too (pedalboard's float32 JUCE DSP against the plugin's float64 Faust)
    residual = 10 * np.log10(np.sum((theirs - ours[:, : theirs.shape[1]]) ** 2) / np.sum(ours**2))
    assert residual < -60.0
    # the reverb (and delay) tail after the input stops: energy within 0.3 dB
    tail = slice(n + int(0.05 * SR), theirs.shape[1])
    tail_db = 10 * np.log10(np.sum(theirs[:, tail] ** 2) / np.sum(ours[:, tail] ** 2))
    assert abs(tail_db) < 0.3
    assert np.sum(ours[:, tail] ** 2) > 1e-3 * np.sum(ours[:, :n] ** 2)  # there is a tail to compare


def test_latency_is_reported_and_equal(built):
    recipe, bundle = built["master"]
    ours_latency = prepare_processor(get_backend("pedalboard"), recipe.effects, SR, 2).latency
    assert ours_latency == 219  # 5 ms look-ahead at 44.1 kHz, less one sample
    assert _reported_latency(bundle / "master.so", _uri(bundle), SR) == ours_latency
    assert _reported_latency(bundle / "master.so", _uri(bundle), 48000.0) == 239
    # lv2file does not compensate latency: its output lags ours by exactly the reported amount
    theirs, ours = _lv2file(built, "master"), _ours(built, "master")
    n = int(1.5 * SR)
    lags = np.arange(0, 1000)
    err = [np.sum((theirs[:, lag : lag + n] - ours[:, :n]) ** 2) for lag in lags]
    assert int(lags[int(np.argmin(err))]) == ours_latency
    aligned = theirs[:, ours_latency : ours_latency + n] - ours[:, :n]
    assert 10 * np.log10(np.sum(aligned**2) / np.sum(ours[:, :n] ** 2)) < -40
    bands = _band_db(theirs[:, ours_latency : ours_latency + n]) - _band_db(ours[:, :n])
    assert np.max(np.abs(bands)) < 0.1


def test_hosted_plugins_split_the_chain_and_the_notes_name_them(built):
    recipe, _ = built["song"]
    comp = PluginState(
        slot="comp", format="vst2", path="/usr/lib/lxvst/ZamCompX2-vst.so", state=b"x", name="ZamCompX2"
    )
    hosted = replace(recipe, plugins=(comp,))
    plugins, notes = lv2.lv2_plugins(hosted, "song")
    assert [p.stem for p in plugins] == ["song-1", "song-2"]
    assert [c.spec.name for c in plugins[0].program.controls] == ["input.gain_db"]
    assert not any(c.spec.name.startswith("comp.") for p in plugins for c in p.program.controls)
    assert "1. song-1.lv2" in notes and "2. ZamCompX2" in notes and "3. song-2.lv2" in notes
    assert ".fxp" in notes
    everything = replace(recipe, plugins=tuple(replace(comp, slot=e.id) for e in recipe.effects))
    with pytest.raises(FormatError, match="every slot of this chain renders on a third-party plugin"):
        lv2.lv2_plugins(everything, "song")


def test_missing_tools_say_which_package_to_install(tmp_path, monkeypatch, built):
    recipe, _ = built["song"]
    monkeypatch.setattr(lv2, "TOOLS", (("faust-not-here", "faust"), ("g++", "g++")))
    with pytest.raises(FormatError, match=r"apt-get install --no-install-recommends faust$"):
        export_recipe(recipe, tmp_path / "one", "lv2")
    assert not (tmp_path / "one").exists()
    written = export_recipe(recipe, tmp_path / "all", "all", stem="m")
    assert "lv2" not in written
    assert "lv2: skipped: LV2 export needs faust" in (tmp_path / "all" / "m.export-notes.txt").read_text()


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch, built):
    recipe, _ = built["song"]

    def broken(*args, **kwargs):
        raise FormatError("LV2 export: g++ failed: boom")

    monkeypatch.setattr(lv2, "compile_plugin", broken)
    with pytest.raises(FormatError, match="boom"):
        export_recipe(recipe, tmp_path / "o", ("json", "lv2"))
    assert not (tmp_path / "o").exists()


def test_a_session_recipe_is_refused_in_one_line(built):
    recipe, _ = built["song"]
    session = replace(recipe, kind="session", session={})
    with pytest.raises(FormatError, match="LV2 export needs a chain recipe"):
        lv2.lv2_plugins(session, "mix")


def test_the_plugin_follows_the_hosts_sample_rate(built):
    recipe, bundle = built["song"]
    sr = 48000
    x = np.concatenate([pink_noise(1.0, sr=sr, level_db=-18.0), np.zeros((2, sr), np.float32)], axis=1)
    src, target = built["dir"].parent / "in48.wav", built["dir"].parent / "lv2file_48.wav"
    sf.write(src, x.T, sr, subtype="FLOAT")
    env = dict(os.environ, LV2_PATH=str(built["dir"]))
    res = subprocess.run(
        ["lv2file", "-i", str(src), "-o", str(target), _uri(bundle)], env=env, capture_output=True
    )
    assert res.returncode == 0, res.stderr
    theirs = sf.read(target, dtype="float64", always_2d=True)[0].T
    ours = render_array(x, sr, list(recipe.effects), backend="pedalboard").astype(np.float64)
    residual = 10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours**2))
    assert residual < -60.0  # filters, compressor, reverb lengths and delay time all at 48 kHz
