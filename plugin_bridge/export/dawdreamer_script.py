"""Write a standalone DawDreamer render script for a recipe.

The script imports only numpy, dawdreamer and soundfile (or scipy, for WAV): it runs anywhere
DawDreamer is installed, without plugin-bridge. Every chain is embedded as the Faust program
`plugin_bridge.backends.faust_codegen.chain_program` generates (all parameters baked in as
constants), and a session's graph (faders, pans, polarity, sends, bus routing and latency
compensation) as plain data, executed in numpy exactly as `plugin_bridge.mixer` does::

    python render_mix.py                 # renders the recipe's input(s) to mix_dawdreamer.wav
    python render_mix.py out.wav --input other.wav    # a chain recipe on another file

Stems must be at the session's sample rate (the script does not resample).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..backends.faust_codegen import chain_program
from ..effects import clamp_to_sample_rate
from ..errors import FormatError
from . import write_atomic
from .recipe import Recipe, session_of


def _script_body(data: dict, version: str, script_name: str) -> str:
    payload = json.dumps(data, indent=1, ensure_ascii=False)
    return f'''#!/usr/bin/env python3
"""DawDreamer render script written by plugin-bridge {version} ({data["kind"]} recipe).

Rebuilds the mix in DawDreamer (each chain is one Faust program) and renders it:

    python {script_name} [OUTPUT.wav] [--input FILE]

Needs numpy, dawdreamer, and soundfile (or scipy for WAV files); it does not import plugin-bridge.
"""

import argparse
import json
import os
import sys

import numpy as np

import dawdreamer

MIX = json.loads(
    r"""
{payload}
"""
)
FAUST_FLAGS = ["-ftz", "2"]
BLOCK_SIZE = 512


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
    """Write (channels, frames) float32 as a 32-bit float WAV, atomically."""
    tmp = path + ".part.wav"
    try:
        import soundfile

        soundfile.write(tmp, audio.T, rate, subtype="FLOAT")
    except ImportError:
        from scipy.io import wavfile

        wavfile.write(tmp, rate, np.ascontiguousarray(audio.T))
    os.replace(tmp, path)


def render_faust(code, x, rate):
    """Run one Faust program over the whole signal x (channels, n); returns (out channels, n)."""
    n = x.shape[1]
    engine = dawdreamer.RenderEngine(rate, BLOCK_SIZE)
    play = engine.make_playback_processor("input", np.ascontiguousarray(x, dtype=np.float32))
    faust = engine.make_faust_processor("chain")
    faust.compile_flags = FAUST_FLAGS
    faust.set_dsp_string(code)
    if not faust.compile():
        sys.exit("the Faust program does not compile")
    engine.load_graph([(play, []), (faust, ["input"])])
    engine.render((n + 0.5) / rate)
    return np.ascontiguousarray(engine.get_audio()[:, :n], dtype=np.float32)


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
        sys.exit("the Faust program was built for %d Hz, %d channel(s)" % (MIX["sample_rate"], MIX["channels"]))
    extra = MIX["tail_frames"] + MIX["latency"]
    x = np.concatenate((x, np.zeros((x.shape[0], extra), dtype=np.float32)), axis=1)
    y = render_faust(MIX["program"], x, rate)
    return y[:, MIX["latency"] :], rate


def render_session():
    rate, frames, latency = MIX["sample_rate"], MIX["frames"], MIX["latency"]
    n = frames + latency
    acc = {{name: np.zeros((2, n), dtype=np.float32) for name in MIX["buses"]}}
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
        if node["program"] is not None:
            x = render_faust(node["program"], x, rate)
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


def script_data(recipe: Recipe, channels: int | None = None) -> dict:
    """The data the script embeds: Faust programs, gains, routing and latencies (plain JSON)."""
    from ..audio_io import inspect_audio

    if recipe.plugins:
        raise FormatError("the DawDreamer script does not host third-party plugins yet")
    if recipe.kind == "chain":
        if recipe.input is None and (recipe.sample_rate is None or channels is None):
            raise FormatError("a chain recipe needs its input file (or a sample rate) for the script")
        sr = recipe.sample_rate or inspect_audio(recipe.input).sample_rate
        ch = channels or min(inspect_audio(recipe.input).channels, 2)
        effects = [clamp_to_sample_rate(e, sr) for e in recipe.effects]
        program = chain_program(effects, sr, ch)
        from ..render import chain_tail_frames

        return {
            "kind": "chain",
            "input": recipe.input,
            "sample_rate": int(sr),
            "channels": ch,
            "latency": program.latency,
            "tail_frames": chain_tail_frames(recipe.effects, sr) if recipe.tail else 0,
            "program": program.code,
        }
    from ..mixer import node_latencies, session_tail_frames, stem_frames, track_pan_gains
    from ..session import MASTER

    s = session_of(recipe)
    sr = int(recipe.sample_rate)
    audible = {t.name for t in s.audible_tracks}
    programs, own, out_ch = {}, {}, {}
    for name in s.order:
        node = s.node(name)
        ch = min(inspect_audio(node.file).channels, 2) if node.is_track else 2
        if node.effects:
            prog = chain_program([clamp_to_sample_rate(e, sr) for e in node.effects], sr, ch)
            programs[name], own[name], out_ch[name] = prog.code, prog.latency, prog.out_channels
        else:
            programs[name], own[name], out_ch[name] = None, 0, ch
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
                "program": programs[name],
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
    from .. import __version__

    return _script_body(script_data(recipe), __version__, script_name)


def write_script(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write the standalone DawDreamer script atomically (executable); returns the path."""
    p = write_atomic(path, script_text(recipe, Path(path).name))
    os.chmod(p, 0o755)
    return p
