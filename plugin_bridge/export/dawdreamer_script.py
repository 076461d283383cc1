"""Write a standalone DawDreamer render script for a recipe.

The script imports only numpy, dawdreamer and soundfile (or scipy, for WAV): it runs anywhere
DawDreamer is installed, without plugin-bridge. Every chain is embedded as the graph
`plugin_bridge.backends.hosted.DawDreamerGraphProcessor` builds: Faust programs
(`plugin_bridge.backends.faust_codegen.chain_program`, all parameters baked in as constants) around
the real plugins of hosted slots, which the script loads from their paths (LV2: URIs), sets to
their mapped values and restores to the recipe's stored state (.vstpreset with
``load_vst3_preset``, .fxp with ``load_preset``, LV2 port values with ``set_parameter``); a
mono-only plugin gets one instance per channel. A session's graph (faders, pans, polarity, sends,
bus routing and latency compensation) is plain data, executed in numpy exactly as
`plugin_bridge.graph` does::

    python render_mix.py                 # renders the recipe's input(s) to mix_dawdreamer.wav
    python render_mix.py out.wav --input other.wav    # a chain recipe on another file

The plugins must be installed at the same paths. Stems must be at the session's sample rate (the
script does not resample). The recipe's ``master`` step (plugin-bridge's own mastering) is not
part of the script: it renders the mix before mastering.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..audio_io import inspect_audio
from ..backends.faust_codegen import chain_program
from ..backends.hosted import FaustSegment, graph_steps
from ..effects import Effect, clamp_to_sample_rate
from ..errors import FormatError
from ..files import write_atomic
from ..graph.signal_flow import node_latencies, session_tail_frames, stem_frames, track_pan_gains
from ..plugins.planning import HostPlan, indexed_values, plan_slot
from ..render import chain_tail_frames
from ..session import MASTER
from ..version import __version__
from .plugin_slots import restore_slots
from .recipe import Recipe, session_of

_SCRIPT = r'''#!/usr/bin/env python3
"""DawDreamer render script written by plugin-bridge @@VERSION@@ (@@KIND@@ recipe).

Rebuilds the mix in DawDreamer (Faust programs around the chains' real plugins) and renders it:

    python @@SCRIPT@@ [OUTPUT.wav] [--input FILE]

Needs numpy, dawdreamer, and soundfile (or scipy for WAV files); it does not import plugin-bridge.
Plugins load from the paths below (the same machine setup as the recipe's).
"""

import argparse
import base64
import ctypes
import json
import os
import sys
import tempfile

import numpy as np

import dawdreamer

MIX = json.loads(
    r"""
@@PAYLOAD@@
"""
)
FAUST_FLAGS = ["-ftz", "2"]
BLOCK_SIZE = 512
PRESET_LOADERS = {"vstpreset": ("load_vst3_preset", ".vstpreset"), "fxp": ("load_preset", ".fxp")}


def reset_fpu():
    """Undo flush-to-zero that DPF plugins leave set on this thread (as plugin-bridge does)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libm.so.6").fesetenv(ctypes.c_void_p(-1))
        except OSError:
            pass


def read_audio(path):
    """(channels, frames) float32 and the sample rate."""
    try:
        import soundfile

        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), int(rate)
    except ImportError:
        from scipy.io import wavfile

        rate, data = wavfile.read(path)
        if data.dtype.kind == "i":
            data = data / float(np.iinfo(data.dtype).max)
        data = np.atleast_2d(np.asarray(data, dtype=np.float32).T) if data.ndim > 1 else data[None, :]
        return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def write_audio(path, audio, rate):
    """Write (channels, frames) float32 as a 32-bit float WAV, atomically; like plugin-bridge's own
    renders, samples beyond 0 dBFS are clipped, with a warning."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        db = 20 * np.log10(peak)
        print(f"warning: the render peaked at {db:+.1f} dBFS; clipped to 0 dBFS", file=sys.stderr)
        audio = np.clip(audio, -1.0, 1.0)
    tmp = path + ".part.wav"
    try:
        import soundfile

        soundfile.write(tmp, audio.T, rate, subtype="FLOAT")
    except ImportError:
        from scipy.io import wavfile

        wavfile.write(tmp, rate, np.ascontiguousarray(audio.T))
    os.replace(tmp, path)


def faust_node(engine, name, code, flags):
    proc = engine.make_faust_processor(name)
    if flags:
        proc.compile_flags = flags
    proc.set_dsp_string(code)
    if not proc.compile():
        sys.exit("a Faust program does not compile: " + name)
    return proc


def restore(inst, plugin):
    """Load the stored state into one plugin instance (never load_state: it opens the editor)."""
    state = plugin["state"]
    if state is None:
        return
    blob = state["data"][0]
    if state["kind"] == "parameters":
        for i, v in blob.items():
            inst.set_parameter(int(i), float(v))
        return
    method, suffix = PRESET_LOADERS[state["kind"]]
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(blob))
        if not getattr(inst, method)(path):
            sys.exit("%s could not load its stored state" % plugin["location"])
    finally:
        os.unlink(path)


class Chain:
    """One chain as a DawDreamer graph: playback -> Faust segments and plugins -> output."""

    def __init__(self, steps, channels, rate):
        self.rate, self.channels = rate, channels
        self.engine = engine = dawdreamer.RenderEngine(rate, BLOCK_SIZE)
        self.play = engine.make_playback_processor("input", np.zeros((channels, BLOCK_SIZE), dtype=np.float32))
        # every Faust program compiles before any plugin exists (plugins may leave flush-to-zero set)
        reset_fpu()
        fausts, adapters = {}, {}
        for k, st in enumerate(steps):
            if "faust" in st:
                fausts[k] = faust_node(engine, "faust%d" % k, st["faust"], FAUST_FLAGS)
        for k, st in enumerate(steps):
            for code in st.get("plugin", {}).get("adapters", []):
                name = "adapt%d" % len(adapters)
                adapters[(k, code)] = faust_node(engine, name, 'import("stdfaust.lib");\nprocess = %s;' % code, None)
        graph, last, self.latency, self.reapply = [(self.play, [])], "input", 0, []
        for k, st in enumerate(steps):
            if "faust" in st:
                graph.append((fausts[k], [last]))
                last = fausts[k].get_name()
                self.latency += st["latency"]
                continue
            pl = st["plugin"]

            def make(tag, pl=pl):
                p = engine.make_plugin_processor(pl["id"] + tag, pl["location"])
                for i, v in pl["values"].items():
                    p.set_parameter(int(i), float(v))
                return p

            codes = pl["adapters"]
            if len(codes) == 3:  # a mono-only plugin on stereo: one instance per channel
                left, right = make("_L"), make("_R")
                pick_l, pick_r, merge = (adapters[(k, c)] for c in codes)
                graph += [(pick_l, [last]), (left, [pick_l.get_name()])]
                graph += [(pick_r, [last]), (right, [pick_r.get_name()])]
                graph.append((merge, [left.get_name(), right.get_name()]))
                last, insts = merge.get_name(), [left, right]
            elif len(codes) == 2:  # a stereo plugin on mono: duplicate, then average
                p = make("")
                up, down = (adapters[(k, c)] for c in codes)
                graph += [(up, [last]), (p, [up.get_name()]), (down, [p.get_name()])]
                last, insts = down.get_name(), [p]
            else:
                p = make("")
                graph.append((p, [last]))
                last, insts = p.get_name(), [p]
            for inst in insts:
                restore(inst, pl)
            self.latency += int(insts[0].get_latency_samples())
            for inst in insts:  # LV2 plugins drop parameter values at render preparation: set them again
                if pl["reapply"]:
                    self.reapply.append((inst, {i: float(inst.get_parameter(i)) for i in pl["reapply"]}))
        reset_fpu()
        if not engine.load_graph(graph):
            sys.exit("could not load the render graph")
        self.play.set_data(np.zeros((channels, 1), dtype=np.float32))
        engine.render(0.5 / rate)

    def render(self, x):
        """Render the whole signal x (channels, n); returns (out channels, n), latency not trimmed."""
        n = x.shape[1]
        for inst, values in self.reapply:
            for i, v in values.items():
                inst.set_parameter(i, v)
        self.play.set_data(np.ascontiguousarray(x, dtype=np.float32))
        self.engine.render((n + 0.5) / self.rate)
        return np.ascontiguousarray(self.engine.get_audio()[:, :n], dtype=np.float32)


def find(path):
    """The stem file, or a file of the same name beside this script."""
    if os.path.exists(path):
        return path
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.path.basename(path))
    if os.path.exists(here):
        return here
    sys.exit("stem not found: " + path)


def pan(x, gains, gain=1.0):
    """Pan (1 or 2, n) to stereo with precomputed [left, right] gains, times a fader gain."""
    gl, gr = gains
    t = x.dtype.type
    if x.shape[0] == 1:
        return np.vstack((x * t(gain * gl), x * t(gain * gr)))
    if gl == gr == 1.0:
        return x * t(gain) if gain != 1.0 else x
    return np.vstack((x[0:1] * t(gain * gl), x[1:2] * t(gain * gr)))


def delayed(x, d):
    if d <= 0:
        return x
    return np.concatenate((np.zeros((x.shape[0], d), dtype=x.dtype), x[:, : x.shape[1] - d]), axis=1)


def render_chain(input_path):
    x, rate = read_audio(find(input_path))
    if rate != MIX["sample_rate"] or x.shape[0] != MIX["channels"]:
        sys.exit("the chain was built for %d Hz, %d channel(s)" % (MIX["sample_rate"], MIX["channels"]))
    chain = Chain(MIX["steps"], MIX["channels"], rate)
    x = np.concatenate((x, np.zeros((x.shape[0], MIX["tail_frames"] + chain.latency), dtype=np.float32)), axis=1)
    y = chain.render(x)
    return y[:, chain.latency :], rate


def render_session():
    rate, frames, latency = MIX["sample_rate"], MIX["frames"], MIX["latency"]
    n = frames + latency
    acc = {name: np.zeros((2, n), dtype=np.float32) for name in MIX["buses"]}
    master = None
    for node in MIX["nodes"]:
        if node["file"] is not None:
            if not node["audible"]:
                continue
            x, r = read_audio(find(node["file"]))
            if r != rate:
                sys.exit("%s is at %d Hz; this script needs %d Hz stems" % (node["file"], r, rate))
            x = x[:, :n]
            x = np.concatenate((x, np.zeros((x.shape[0], n - x.shape[1]), dtype=np.float32)), axis=1)
        else:
            x = acc[node["name"]]
        if node["invert"]:
            x = -x
        if node["steps"] is not None:
            chain = Chain(node["steps"], x.shape[0], rate)
            if chain.latency != node["latency"]:
                sys.exit("%s: the plugins report %d samples of latency, the mix was built for %d"
                         % (node["name"], chain.latency, node["latency"]))
            x = chain.render(x)
        pre = pan(x, node["pan_gains"]) if any(s[2] for s in node["sends"]) else None
        post = pan(x, node["pan_gains"], node["gain"])
        if node["name"] == "master":
            master = post
        for bus, gain, pre_fader, delay in node["edges"]:
            y = pre if pre_fader else post
            y = y * gain if gain != 1.0 else y
            acc[bus] += delayed(y, delay)
    return master[:, latency : latency + frames], rate


def main():
    parser = argparse.ArgumentParser(description="Render the exported mix with DawDreamer.")
    parser.add_argument("output", nargs="?", default="mix_dawdreamer.wav")
    parser.add_argument("--input", help="chain recipes: the audio file to render (default: the recipe's)")
    args = parser.parse_args()
    if MIX["kind"] == "chain":
        audio, rate = render_chain(args.input or MIX["input"])
    else:
        audio, rate = render_session()
    if not np.isfinite(audio).all():
        sys.exit("the render produced NaN or infinite samples")
    write_audio(args.output, audio, rate)
    print("wrote %s: %.2f s at %d Hz" % (args.output, audio.shape[1] / rate, rate))


if __name__ == "__main__":
    main()
'''


def _script_body(data: dict, version: str, script_name: str) -> str:
    payload = json.dumps(data, indent=1, ensure_ascii=False)
    text = _SCRIPT.replace("@@VERSION@@", version).replace("@@KIND@@", data["kind"])
    return text.replace("@@SCRIPT@@", script_name).replace("@@PAYLOAD@@", payload)


def chain_steps(
    recipe: Recipe, effects: Sequence[Effect], sample_rate: int, channels: int, prefix: str = ""
) -> tuple[list[dict], int, int]:
    """One chain of ``recipe`` as the script's steps, its output channels and its latency (samples).

    Steps are ``{"faust": code, "latency": n}`` or ``{"plugin": {...}}`` (id, name, format, location,
    adapters, the map's ``values`` by parameter index, the stored ``state``, the LV2 parameters to
    ``reapply``), split as `plugin_bridge.backends.hosted.graph_steps` does for the dawdreamer
    backend; slots ``prefix + effect id`` get the recipe's stored states and fallbacks. Plugin
    latency is the probed one (the script checks it where a session's routing depends on it).
    """

    effects = [clamp_to_sample_rate(e, sample_rate) for e in effects]
    effects, states = restore_slots(effects, recipe.plugins, recipe.fallbacks, "dawdreamer", prefix)
    plans: dict[str, HostPlan] = {}
    plain: list[Effect] = []
    for e in effects:
        planned = plan_slot(e, "dawdreamer") if e.plugin else e
        if isinstance(planned, HostPlan):
            plans[e.id] = planned
            plain.append(e)
        else:
            plain.append(planned)
    if not plans:  # the plain dawdreamer backend: one Faust program for the whole chain
        prog = chain_program(plain, sample_rate, channels)
        return [{"faust": prog.code, "latency": prog.latency}], prog.out_channels, prog.latency
    steps, out_channels = graph_steps(plain, plans, sample_rate, channels)
    data: list[dict] = []
    latency = 0
    for st in steps:
        if isinstance(st, FaustSegment):
            data.append({"faust": st.code, "latency": st.latency})
            latency += st.latency
            continue
        plan, ref = st.plan, st.plan.map.plugin
        reapply = []
        if ref.format == "lv2":
            reapply = [int(p["index"]) for p in plan.info.get("parameters", []) if p.get("automatable", True)]
        data.append(
            {
                "plugin": {
                    "id": plan.effect.id,
                    "name": ref.name,
                    "format": ref.format,
                    "location": ref.location,
                    "adapters": list(st.adapters),
                    "values": {str(i): float(v) for i, v in indexed_values(plan).items()},
                    "state": states.get(plan.effect.id),
                    "reapply": reapply,
                }
            }
        )
        latency += int(plan.info.get("latency", 0))
    return data, out_channels, latency


def script_data(recipe: Recipe, channels: int | None = None) -> dict:
    """The data the script embeds: chain steps (Faust programs, plugins and their states), gains,
    routing and latencies (plain JSON)."""

    if recipe.kind == "chain":
        if recipe.input is None and (recipe.sample_rate is None or channels is None):
            raise FormatError("a chain recipe needs its input file (or a sample rate) for the script")
        sr = recipe.sample_rate or inspect_audio(recipe.input).sample_rate
        ch = channels or min(inspect_audio(recipe.input).channels, 2)
        steps, _, latency = chain_steps(recipe, recipe.effects, sr, ch)

        return {
            "kind": "chain",
            "input": recipe.input,
            "sample_rate": int(sr),
            "channels": ch,
            "latency": latency,
            "tail_frames": chain_tail_frames(recipe.effects, sr) if recipe.tail else 0,
            "steps": steps,
        }

    s = session_of(recipe)
    sr = int(recipe.sample_rate)
    audible = {t.name for t in s.audible_tracks}
    node_steps, own, out_ch = {}, {}, {}
    for name in s.order:
        node = s.node(name)
        ch = min(inspect_audio(node.file).channels, 2) if node.is_track else 2
        if node.effects:
            node_steps[name], out_ch[name], own[name] = chain_steps(recipe, node.effects, sr, ch, f"{name}/")
        else:
            node_steps[name], own[name], out_ch[name] = None, 0, ch
    total = node_latencies(s, own)

    def arrival(name: str) -> int:
        return total[name] - own[name]

    nodes = []
    for name in s.order:
        node = s.node(name)
        edges = [
            [x.bus, 10.0 ** (x.level_db / 20.0), x.pre_fader, arrival(x.bus) - total[name]]
            for x in node.sends
        ]
        if node.output:
            edges.append([node.output, 1.0, False, arrival(node.output) - total[name]])
        nodes.append(
            {
                "name": name,
                "file": str(node.file) if node.file else None,
                "audible": name in audible,
                "invert": node.invert,
                "steps": node_steps[name],
                "latency": own[name],
                "pan_gains": list(track_pan_gains(node.pan, out_ch[name])),
                "gain": 10.0 ** (node.gain_db / 20.0),
                "sends": [[x.bus, x.level_db, x.pre_fader] for x in node.sends],
                "edges": edges,
            }
        )
    length = max(stem_frames(t, sr) for t in s.tracks)
    tail = session_tail_frames(s, sr) if recipe.tail else 0
    return {
        "kind": "session",
        "sample_rate": sr,
        "frames": length + tail,
        "latency": total[MASTER],
        "buses": [b.name for b in s.buses] + [MASTER],
        "nodes": nodes,
    }


def script_text(recipe: Recipe, script_name: str = "render_mix.py") -> str:
    """The source of the standalone script for ``recipe``."""
    return _script_body(script_data(recipe), __version__, script_name)


def write_script(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write the standalone DawDreamer script atomically (executable); returns the path."""
    p = write_atomic(path, script_text(recipe, Path(path).name))
    os.chmod(p, 0o755)
    return p
