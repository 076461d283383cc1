"""Exports: recipe, .vstpreset, .fxp, REAPER, DawDreamer script, MIDI CC (round trips and golden files).

Golden files live in tests/golden/export/; regenerate them with PLUGIN_BRIDGE_UPDATE_GOLDEN=1.
Real-plugin tests need Debian's zam-plugins (VST3), dragonfly-reverb-vst and dpf-plugins-vst
(VST2), and skip with the package name when they are missing.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin_bridge.chain import load_chain
from plugin_bridge.cli import main
from plugin_bridge.errors import FormatError
from plugin_bridge.export import export_recipe, midi_cc, reaper, vstpreset
from plugin_bridge.export import fxp as fxpmod
from plugin_bridge.export.recipe import (
    PluginState,
    load_recipe,
    recipe_from_chain,
    recipe_from_dict,
    recipe_from_session,
    render_recipe,
)

GOLDEN = Path(__file__).parent / "golden" / "export"
UPDATE = os.environ.get("PLUGIN_BRIDGE_UPDATE_GOLDEN") == "1"
SR = 44100
ZAM_COMP = Path("/usr/lib/vst3/ZamCompX2.vst3")
ZAM_EQ = Path("/usr/lib/vst3/ZamEQ2.vst3")
DRAGONFLY = Path("/usr/lib/lxvst/DragonflyRoomReverb-vst.so")
DPF_EQ = Path("/usr/lib/vst/3BandEQ-vst.so")
FAKE_CLASS = "0123456789ABCDEF0123456789ABCDEF"


def golden(name: str, data: bytes | str) -> None:
    """Compare ``data`` with tests/golden/export/<name> (or write it when updating).

    Text has the package version replaced by ``<VERSION>`` so a release does not break the files.
    """
    if isinstance(data, str):
        from plugin_bridge import __version__

        data = data.replace(f'"package_version": "{__version__}"', '"package_version": "<VERSION>"')
        data = data.replace(f"plugin-bridge {__version__} ", "plugin-bridge <VERSION> ")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"golden file {path} is missing; run with PLUGIN_BRIDGE_UPDATE_GOLDEN=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    assert raw == path.read_bytes(), f"{name} differs from its golden file"


@pytest.fixture(autouse=True)
def _fpu_reset():
    """DPF plugins (zam, Dragonfly, 3BandEQ) leave flush-to-zero set on the thread; reset it after
    each test so later tests (hypothesis floats, Faust compiles) see the default FPU environment."""
    yield
    from plugin_bridge.backends.dawdreamer_backend import reset_fpu_environment

    reset_fpu_environment()


def assert_same_audio(a: Path, b: Path) -> None:
    """Bit-identical samples, rate and format (file bytes differ: libsndfile's PEAK chunk holds a timestamp)."""
    xa, ra = sf.read(a, dtype="float32", always_2d=True)
    xb, rb = sf.read(b, dtype="float32", always_2d=True)
    assert (ra, sf.info(a).subtype) == (rb, sf.info(b).subtype)
    assert xa.shape == xb.shape and np.array_equal(xa, xb)


def _dawdreamer():
    try:
        import dawdreamer
    except ImportError:
        pytest.skip("dawdreamer is not installed (pip install dawdreamer)")
    return dawdreamer


def _need(path: Path, package: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} missing: apt-get install {package}")


def _wav(path: Path, channels: int = 2, seconds: float = 0.5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((int(SR * seconds), channels)) * 0.1).astype(np.float32)
    sf.write(path, x, SR, subtype="FLOAT")
    return path


def _vector(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(len(load_chain("default").space))


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    """A session with a mono and a stereo stem, a reverb bus, a group bus and sends (paths with spaces/é)."""
    d = tmp_path / "stems é"
    d.mkdir()
    _wav(d / "vox é.wav", 1, seed=1)
    _wav(d / "drums.wav", 2, seed=2)
    session = {
        "tracks": [
            {
                "name": "vox é",
                "file": "stems é/vox é.wav",
                "chain": {"chain": "vocal"},
                "gain_db": -2,
                "pan": 0.2,
                "sends": [{"bus": "verb", "level_db": -12}],
            },
            {
                "name": "drums",
                "file": "stems é/drums.wav",
                "chain": {"chain": "default", "values": {"comp.threshold_db": -20, "comp.ratio": 4}},
                "output": "grp",
                "invert": True,
            },
        ],
        "buses": [
            {
                "name": "verb",
                "chain": {
                    "effects": [
                        {"id": "rev", "type": "reverb", "params": {"wet_level": 0.4, "dry_level": 0.0}}
                    ]
                },
            },
            {"name": "grp", "gain_db": -1, "sends": [{"bus": "verb", "level_db": -20, "pre_fader": True}]},
        ],
        "master": {"chain": {"chain": "master", "values": {"limiter.ceiling_db": -2.0}}},
    }
    path = tmp_path / "my session.json"
    path.write_text(json.dumps(session), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=18, max_size=18))
def test_recipe_json_round_trip_property(vector):
    r = recipe_from_chain("default", vector=vector, sample_rate=SR)
    back = recipe_from_dict(json.loads(r.to_json()))
    assert back.vector == r.vector
    assert back.values == r.values
    assert [e.to_dict() for e in back.effects] == [e.to_dict() for e in r.effects]
    assert back.to_dict() == r.to_dict()


def test_recipe_golden():
    r = recipe_from_chain("default", vector=_vector(), model_id="cnn-mix-v1", sample_rate=SR)
    golden("recipe_default.json", r.to_json())


@pytest.mark.parametrize("backend", ["pedalboard", "numpy"])
def test_render_recipe_bit_identical(tmp_path, backend):
    src = _wav(tmp_path / "in put é.wav")
    vec = _vector(2)
    from plugin_bridge.render import render_file

    render_file(src, tmp_path / "a.wav", "default", vector=vec, backend=backend)
    r = recipe_from_chain("default", vector=vec, input_path=src, backend=backend)
    r.save(tmp_path / "r é.json")
    assert main(["render-recipe", str(tmp_path / "r é.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert_same_audio(tmp_path / "a.wav", tmp_path / "b.wav")


def test_session_recipe_bit_identical(tmp_path, session_file):
    from plugin_bridge.mixer import render_session

    render_session(session_file, tmp_path / "a.wav", backend="numpy")
    recipe_from_session(session_file, backend="numpy").save(tmp_path / "s.json")
    render_recipe(load_recipe(tmp_path / "s.json"), tmp_path / "b.wav")
    assert_same_audio(tmp_path / "a.wav", tmp_path / "b.wav")


def test_recipe_rejects_newer_and_mismatched_spaces():
    d = recipe_from_chain("default", vector=_vector(), sample_rate=SR).to_dict()
    newer = dict(d, format_version=99)
    with pytest.raises(FormatError, match="format_version 99 is newer"):
        recipe_from_dict(newer)
    space2 = dict(d, space={"version": "mix-v2", "fingerprint": d["space"]["fingerprint"]})
    with pytest.raises(FormatError, match="'mix-v2' is newer than.*mix-v1"):
        recipe_from_dict(space2)
    fp = dict(d, space={"version": "mix-v1", "fingerprint": "0000000000000000"})
    with pytest.raises(FormatError, match=f"0000000000000000.*{d['space']['fingerprint']}"):
        recipe_from_dict(fp)
    tampered = dict(d, values=dict(d["values"], **{"comp.ratio": 7.99}))
    with pytest.raises(FormatError, match="comp.ratio.*disagrees with the vector"):
        recipe_from_dict(tampered)


# --------------------------------------------------------------------------------------------
# MIDI CC
# --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(0.0, 1.0), min_size=18, max_size=18), st.sampled_from([7, 14]))
def test_midi_cc_round_trip_property(tmp_path, vector, bits):
    space = load_chain("default").space
    path = tmp_path / f"cc {bits}.mid"
    midi_cc.write_midi(path, space, vector, bits)
    back = midi_cc.midi_to_vector(path, space)
    step = 1 / 127 if bits == 7 else 1 / 16383
    assert np.max(np.abs(back - np.asarray(vector))) <= step / 2 + 1e-12
    r = midi_cc.midi_to_recipe(path)  # the shipped chain of the file's space
    assert np.allclose(r.vector, back)


def test_midi_cc_table_and_golden():
    space = load_chain("default").space
    t7 = midi_cc.cc_table(space, 7)
    assert [(a.channel, a.cc) for a in t7[:3]] == [(1, 20), (1, 21), (1, 22)]
    assert t7[12].cc == 102
    t14 = midi_cc.cc_table(space, 14)
    assert t14[0].cc == 3 and t14[0].lsb == 35 and t14[16].channel == 2
    vec = _vector()
    golden("default.cc7.mid", midi_cc.midi_bytes(midi_cc.vector_to_midi(space, vec, 7)))
    golden("default.cc14.mid", midi_cc.midi_bytes(midi_cc.vector_to_midi(space, vec, 14)))
    golden("default.cc-table.md", midi_cc.mapping_table_markdown(space, 7))


def test_midi_cli_round_trip(tmp_path):
    src = _wav(tmp_path / "song ü.wav")
    r = recipe_from_chain("default", vector=_vector(), input_path=src)
    r.save(tmp_path / "r.json")
    out = tmp_path / "out dir ß"
    assert main(["export", str(tmp_path / "r.json"), "--format", "midi", "--bits", "14", "-o", str(out)]) == 0
    mid = out / "song ü.cc14.mid"
    assert (
        main(["import-midi", str(mid), "--recipe", str(tmp_path / "r.json"), "-o", str(tmp_path / "i.json")])
        == 0
    )
    back = load_recipe(tmp_path / "i.json")
    assert np.max(np.abs(np.array(back.vector) - r.vector)) <= 0.5 / 16383 + 1e-12
    assert back.input == r.input


def test_midi_wrong_space(tmp_path):
    space = load_chain("default").space
    midi_cc.write_midi(tmp_path / "a.mid", space, _vector())
    with pytest.raises(FormatError, match="written for space 'mix-v1'"):
        midi_cc.midi_to_vector(tmp_path / "a.mid", load_chain("vocal").space)


# --------------------------------------------------------------------------------------------
# .vstpreset and JUCE state
# --------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=100), st.text(max_size=40))
def test_vstpreset_round_trip_property(comp, cont, info):
    data = vstpreset.build_vstpreset(FAKE_CLASS, comp, cont, info)
    p = vstpreset.parse_vstpreset(data)
    assert (p.class_id, p.component, p.controller) == (FAKE_CLASS, comp, cont)
    assert p.chunk("Info") == info.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_juce_base64_round_trip_property(data):
    text = vstpreset.juce_base64_encode(data)
    assert set(text.split(".", 1)[1]) <= set(vstpreset.JUCE_B64)
    assert vstpreset.juce_base64_decode(text) == data
    comp, cont = vstpreset.decode_juce_state(vstpreset.encode_juce_state(data, b"ctl"))
    assert (comp, cont) == (data, b"ctl")


def test_vstpreset_golden_and_errors(tmp_path):
    data = vstpreset.build_vstpreset(FAKE_CLASS, b"component \x00\x01", b"controller")
    assert data[:4] == b"VST3" and struct.unpack_from("<i", data, 4)[0] == 1
    golden("synthetic.vstpreset", data)
    with pytest.raises(FormatError, match="no 'VST3' header"):
        vstpreset.parse_vstpreset(b"nope" + data[4:])
    with pytest.raises(FormatError, match="runs past the end"):
        vstpreset.parse_vstpreset(data[:-10])
    with pytest.raises(FormatError, match="32 hex digits"):
        vstpreset.build_vstpreset("xyz", b"")


ZAM_CASES = [
    (
        ZAM_COMP,
        {"threshold_db": -23.5, "ratio": 6.0, "attack_ms": 3.0, "release_ms": 220.0, "makeup_db": 4.0},
    ),
    (ZAM_EQ, {"boost_cut_l_db": 5.0, "frequency_l_hz": 140.0, "boost_cut_1_db": -3.5, "bandwidth_1": 1.4}),
]


@pytest.mark.plugins
@pytest.mark.parametrize("path,values", ZAM_CASES, ids=["ZamCompX2", "ZamEQ2"])
def test_vstpreset_real_plugins_round_trip(tmp_path, path, values):
    _need(path, "zam-plugins")
    import pedalboard

    plugin = pedalboard.load_plugin(str(path))
    for k, v in values.items():
        setattr(plugin, k, v)
    state = vstpreset.plugin_state_from_pedalboard(plugin, path, "slot")
    out = vstpreset.write_vstpreset(tmp_path / f"{path.stem} é.vstpreset", state.state)
    parsed = vstpreset.read_vstpreset(out)
    # rebuilt from its chunks, the file is byte-identical to pedalboard's own preset_data
    assert vstpreset.build_vstpreset(parsed.class_id, parsed.component, parsed.controller) == state.state
    fresh = pedalboard.load_plugin(str(path))
    fresh.load_preset(str(out))
    used = {k: getattr(plugin, k) for k in values}  # what the plugin holds (its own quantization)
    for k, v in values.items():
        spec = plugin.parameters[k]  # pedalboard writes on the parameter's step grid (< 0.1 % of range)
        assert used[k] == pytest.approx(v, abs=1e-3 * (spec.max_value - spec.min_value)), k
        assert getattr(fresh, k) == pytest.approx(used[k], abs=1e-5), k
    daw = _dawdreamer()
    engine = daw.RenderEngine(SR, 512)
    proc = engine.make_plugin_processor("p", str(path))
    assert proc.load_vst3_preset(str(out))
    dd = {d["index"]: d for d in proc.get_parameters_description()}
    names = list(fresh.parameters)
    for k in values:
        # pedalboard parameter order matches the plugin's (after Buffer Size, Sample Rate)
        i = names.index(k)
        assert float(proc.get_parameter_text(i)) == pytest.approx(used[k], abs=1e-4), (k, dd[i]["name"])
    # DawDreamer's JUCE state blob decodes to the same component state
    comp = vstpreset.parse_vstpreset(vstpreset.from_dawdreamer(proc, parsed.class_id)).component
    assert comp == parsed.component


# --------------------------------------------------------------------------------------------
# .fxp
# --------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, width=32), max_size=40),
    st.binary(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=27),
    st.integers(-(2**31), 2**31 - 1),
)
def test_fxp_round_trip_property(params, chunk, name, fx_id):
    p = fxpmod.parse_fxp(fxpmod.build_fxp(fxpmod.FxProgram(fx_id, 3, name, tuple(params))))
    assert (p.fx_id, p.fx_version, p.name, p.params, p.kind) == (fx_id, 3, name, tuple(params), "FxCk")
    c = fxpmod.parse_fxp(fxpmod.build_fxp(fxpmod.FxProgram(fx_id, 1, name, chunk=chunk, num_params=5)))
    assert (c.chunk, c.kind, c.num_params) == (chunk, "FPCh", 5)


def test_fxp_golden_and_errors():
    fxck = fxpmod.build_fxp(fxpmod.FxProgram(fxpmod.fourcc_to_int("D3EQ"), 1, "mix", (0.25, 0.5, 1.0)))
    assert fxck[:4] == b"CcnK" and fxck[8:12] == b"FxCk" and fxck[16:20] == b"D3EQ"
    golden("synthetic_fxck.fxp", fxck)
    fpch = fxpmod.build_fxp(fxpmod.FxProgram(fxpmod.fourcc_to_int("dfr2"), 1, "mix", chunk=b"state\x00"))
    golden("synthetic_fpch.fxp", fpch)
    with pytest.raises(FormatError, match="normalized"):
        fxpmod.build_fxp(fxpmod.FxProgram(1, 1, "x", (1.5,)))
    with pytest.raises(FormatError, match="unknown program type"):
        fxpmod.parse_fxp(fxck[:8] + b"XXXX" + fxck[12:])


@pytest.mark.plugins
@pytest.mark.parametrize(
    "path,package,indices,kind",
    [(DRAGONFLY, "dragonfly-reverb-vst", (0, 4, 7), "FPCh"), (DPF_EQ, "dpf-plugins-vst", (0, 1, 4), "FxCk")],
    ids=["DragonflyRoomReverb", "3BandEQ"],
)
def test_fxp_real_plugins_round_trip(tmp_path, path, package, indices, kind):
    _need(path, package)
    daw = _dawdreamer()
    engine = daw.RenderEngine(SR, 512)
    proc = engine.make_plugin_processor("p", str(path))
    for k, i in enumerate(indices):
        proc.set_parameter(i, 0.2 + 0.25 * k)
    engine.load_graph([(proc, [])])
    engine.render(0.05)  # plugins refresh their chunk in the audio callback
    state = fxpmod.plugin_state_from_dawdreamer(proc, path, "slot")
    assert fxpmod.parse_fxp(state.state).kind == kind
    out = fxpmod.write_fxp(tmp_path / "preset é.fxp", state.state)
    engine2 = daw.RenderEngine(SR, 512)
    fresh = engine2.make_plugin_processor("q", str(path))
    before = [fresh.get_parameter(i) for i in indices]
    assert fresh.load_preset(str(out))
    n = len(proc.get_parameters_description())
    a = np.array([proc.get_parameter(i) for i in range(n)])
    b = np.array([fresh.get_parameter(i) for i in range(n)])
    assert np.max(np.abs(a - b)) < 1e-6
    assert not np.allclose(before, [fresh.get_parameter(i) for i in indices])  # the preset changed it
    from plugin_bridge.backends.dawdreamer_backend import reset_fpu_environment

    reset_fpu_environment()


# --------------------------------------------------------------------------------------------
# REAPER
# --------------------------------------------------------------------------------------------


def _synthetic_plugins() -> tuple[PluginState, ...]:
    vst3 = PluginState(
        "vox é/ext",
        "vst3",
        "/usr/lib/vst3/Fake Plugin.vst3",
        vstpreset.build_vstpreset(FAKE_CLASS, bytes(range(200)), b"ctl"),
        name="Fake",
        vendor="Acme",
        class_id=FAKE_CLASS,
    )
    chunk = PluginState(
        "verb/room",
        "vst2",
        "/usr/lib/lxvst/DragonflyRoomReverb-vst.so",
        fxpmod.build_fxp(
            fxpmod.FxProgram(fxpmod.fourcc_to_int("dfr2"), 1, "room", chunk=b"dry_level\x0080\x00")
        ),
        name="DragonflyRoomReverb",
        unique_id=fxpmod.fourcc_to_int("dfr2"),
    )
    params = PluginState(
        "master/eq",
        "vst2",
        "/usr/lib/vst/3BandEQ-vst.so",
        fxpmod.build_fxp(fxpmod.FxProgram(fxpmod.fourcc_to_int("D3EQ"), 1, "eq", (0.25, 0.5, 0.75))),
        name="3BandEQ",
        unique_id=fxpmod.fourcc_to_int("D3EQ"),
    )
    return vst3, chunk, params


def test_reaper_vst_blocks_decode():
    vst3, chunk, params = _synthetic_plugins()
    lines = reaper.vst_block(vst3)
    assert (
        lines[0].startswith('<VST "VST3: Fake (Acme)" "Fake Plugin.vst3" 0 "" ')
        and "{" + FAKE_CLASS + "}" in lines[0]
    )
    body = [s.strip() for s in lines[1:-1]]
    assert all(len(s) <= 128 for s in body)
    d = reaper.decode_vst_block(body, vst3=True)
    assert (d.component, d.controller, d.magic) == (bytes(range(200)), b"ctl", reaper.MAGIC_OPAQUE)
    assert d.in_masks == (1, 2) and d.out_masks == (1, 2)
    d2 = reaper.decode_vst_block([s.strip() for s in reaper.vst_block(chunk)[1:-1]], vst3=False)
    assert d2.chunk == b"dry_level\x0080\x00" and d2.number == fxpmod.fourcc_to_int("dfr2")
    d3 = reaper.decode_vst_block([s.strip() for s in reaper.vst_block(params, [1], [1])[1:-1]], vst3=False)
    assert d3.params == (0.25, 0.5, 0.75) and d3.magic == reaper.MAGIC_PARAMS and d3.in_masks == (2,)


def _normalize(text: str, root: Path) -> str:
    return text.replace(str(root.resolve()), "<DIR>")


def test_reaper_project_synthetic_golden(tmp_path, session_file):
    """A project whose built-ins are all unmapped or neutral, plus synthetic third-party plugins:
    independent of installed plugins; parsed with the independent `rpp` parser."""
    rpp = pytest.importorskip("rpp", reason="pip install rpp (independent RPP parser)")
    r = recipe_from_session(session_file, plugins=_synthetic_plugins())
    # only unmapped effects -> no plugin needed: strip mapped ones from the stored session
    for node in [*r.session["tracks"], *r.session["buses"], r.session["master"]]:
        if "chain" in node:
            node["chain"]["effects"] = [
                e for e in node["chain"]["effects"] if e["type"] not in reaper.MAPPED_PLUGINS
            ]
    res = reaper.export_reaper(r, tmp_path / "out", "mix")
    text = res.project.read_text(encoding="utf-8")
    golden("synthetic.RPP", _normalize(text, tmp_path))
    golden("synthetic_verb.RfxChain", (tmp_path / "out" / "verb.RfxChain").read_text(encoding="utf-8"))
    project = rpp.loads(text)
    tracks = project.findall("TRACK")
    assert [t.find("NAME")[1] for t in tracks] == ["vox é", "drums", "verb", "grp"]
    files = [t.find(".//SOURCE").find("FILE")[1] for t in tracks[:2]]
    assert files == [str((tmp_path / "stems é" / n).resolve()) for n in ("vox é.wav", "drums.wav")]
    assert tracks[0].find("VOLPAN")[1:3] == [repr(10 ** (-2 / 20)), "0.2"]
    assert tracks[1].find("IPHASE")[1] == "1" and tracks[1].find("MAINSEND")[1] == "0"
    recv = [x for x in tracks[2].children if isinstance(x, list) and x[0] == "AUXRECV"]
    assert [(x[1], x[2]) for x in recv] == [("0", "0"), ("3", "3")]  # vox post-fader, grp pre-fader
    grp_in = [x for x in tracks[3].children if isinstance(x, list) and x[0] == "AUXRECV"]
    assert [(x[1], x[2], x[3]) for x in grp_in] == [("1", "0", "1")]  # drums -> grp
    vst = tracks[0].find(".//VST")
    assert vst.attrib[0] == "VST3: Fake (Acme)" and vst.attrib[4].endswith("{" + FAKE_CLASS + "}")
    assert reaper.decode_vst_block(vst.children, vst3=True).component == bytes(range(200))
    mvst = project.find("MASTERFXLIST").find("VST")
    assert reaper.decode_vst_block(mvst.children, vst3=False).params == (0.25, 0.5, 0.75)
    assert any("rev (reverb)" in n for n in res.notes)


@pytest.mark.plugins
def test_reaper_builtins_map_to_zam_plugins(tmp_path):
    _need(ZAM_COMP, "zam-plugins")
    rpp = pytest.importorskip("rpp", reason="pip install rpp")
    import pedalboard

    src = _wav(tmp_path / "song é.wav")
    values = {"comp.threshold_db": -18.0, "comp.ratio": 3.0, "low.gain_db": 4.0, "mid.gain_db": -2.0}
    r = recipe_from_chain("default", values=values, input_path=src)
    res = reaper.export_reaper(r, tmp_path, "mix")
    golden("default_zam.RfxChain", (tmp_path / "song é.RfxChain").read_text(encoding="utf-8"))
    project = rpp.loads(res.project.read_text(encoding="utf-8"))
    vsts = project.find("TRACK").find("FXCHAIN").findall("VST")
    assert [v.attrib[0] for v in vsts] == ["VST3: ZamCompX2 (Damien Zammit)"] + [
        "VST3: ZamEQ2 (Damien Zammit)"
    ] * 4
    # the ZamEQ2 pair is pinned to the left and right channels
    masks = [reaper.decode_vst_block(v.children, vst3=True).in_masks for v in vsts[1:3]]
    assert masks == [(1,), (2,)]
    # each stored component state loads into the real plugin with the mapped values
    comp = reaper.decode_vst_block(vsts[0].children, vst3=True)
    path = tmp_path / "c.vstpreset"
    vstpreset.write_vstpreset(
        path, vstpreset.build_vstpreset(vsts[0].attrib[4].split("{")[1][:32], comp.component)
    )
    plugin = pedalboard.load_plugin(str(ZAM_COMP))
    plugin.load_preset(str(path))
    assert plugin.threshold_db == pytest.approx(-18.0, abs=1e-4) and plugin.ratio == pytest.approx(
        3.0, abs=1e-4
    )


# --------------------------------------------------------------------------------------------
# DawDreamer script and CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.dawdreamer
def test_dawdreamer_script_chain_matches_backend(tmp_path):
    _dawdreamer()
    from plugin_bridge.export.dawdreamer_script import script_text, write_script

    src = _wav(tmp_path / "in é.wav")
    r = recipe_from_chain("default", vector=_vector(3), input_path=src, backend="dawdreamer")
    golden("render_chain.py", _normalize(script_text(r, "render_chain.py"), tmp_path))
    (tmp_path / "out dir").mkdir()
    script = write_script(r, tmp_path / "out dir" / "render é.py")
    assert "plugin_bridge" not in script.read_text(encoding="utf-8").replace("plugin-bridge", "")
    subprocess.run([sys.executable, str(script), str(tmp_path / "dd.wav")], check=True, capture_output=True)
    render_recipe(r, tmp_path / "ref.wav")
    a, _ = sf.read(tmp_path / "dd.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "ref.wav", dtype="float32")
    assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.dawdreamer
def test_dawdreamer_script_session_matches_mixer(tmp_path, session_file):
    _dawdreamer()
    from plugin_bridge.export.dawdreamer_script import write_script
    from plugin_bridge.export.recipe import session_of
    from plugin_bridge.mixer import SessionGraph, _blocks

    r = recipe_from_session(session_file, backend="dawdreamer")
    script = write_script(r, tmp_path / "render.py")
    subprocess.run([sys.executable, str(script), str(tmp_path / "dd.wav")], check=True, capture_output=True)
    y, _ = sf.read(tmp_path / "dd.wav", dtype="float32", always_2d=True)
    g = SessionGraph(session_of(r), "dawdreamer")
    ref = np.concatenate([m for m, _ in _blocks(g, g.length + g.tail, 65536)], axis=1)
    assert y.T.shape == ref.shape
    assert np.max(np.abs(y.T - ref)) < 1e-6  # same programs; float32 sums may differ in the last bit


def test_cli_export_all_and_errors(tmp_path, session_file, capsys):
    out = tmp_path / "exports ü ö"
    assert main(["export", str(session_file), "--format", "all", "-o", str(out), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert {"json", "reaper", "dawdreamer", "notes"} <= set(written)
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    assert load_recipe(written["json"][0]).kind == "session"
    notes = Path(written["notes"][0]).read_text(encoding="utf-8")
    assert "fxp: skipped" in notes and "midi: skipped" in notes
    assert main(["export", str(session_file), "--format", "fxp", "-o", str(out)]) == 1
    assert ".fxp applies to VST2 plugins only" in capsys.readouterr().err
    assert main(["export", str(session_file), "--format", "midi", "-o", str(out)]) == 1
    assert "needs a chain recipe" in capsys.readouterr().err


def test_export_plugins_vstpreset_and_fxp(tmp_path):
    vst3, chunk, params = _synthetic_plugins()
    r = recipe_from_chain("default", vector=_vector(), sample_rate=SR, plugins=(vst3, chunk, params))
    back = recipe_from_dict(json.loads(r.to_json()))
    assert back.plugins == r.plugins
    assert base64.b64decode(json.loads(r.to_json())["plugins"][0]["state"]) == vst3.state
    w = export_recipe(back, tmp_path / "o", ("vstpreset", "fxp"))
    assert [p.name for p in w["vstpreset"]] == ["vox é_ext.vstpreset"]
    assert vstpreset.read_vstpreset(w["vstpreset"][0]).component == bytes(range(200))
    assert sorted(p.name for p in w["fxp"]) == ["master_eq.fxp", "verb_room.fxp"]
    with pytest.raises(FormatError, match="hosted plugins"):
        render_recipe(back, tmp_path / "x.wav")
