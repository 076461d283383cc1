#!/usr/bin/env python3
"""DawDreamer render script written by plugin-bridge <VERSION> (chain recipe).

Rebuilds the mix in DawDreamer (Faust programs around the chains' real plugins) and renders it:

    python render_chain.py [OUTPUT.wav] [--input FILE]

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
{
 "kind": "chain",
 "input": "<DIR>/in é.wav",
 "sample_rate": 44100,
 "channels": 2,
 "latency": 0,
 "tail_frames": 153102,
 "steps": [
  {
   "faust": "import(\"stdfaust.lib\");\n// plugin-bridge chain: 14 effects, 44100 Hz, 2 -> 2 channels\n\n// Compressor (juce::dsp::Compressor): peak ballistics env = |x| + cte*(env' - |x|),\n// cte = at when |x| > env' else rl; gain = (max(env, thr)/thr)^expo; then make-up.\ncomp(at, rl, thr, expo, makeup) = _ <: (env, _) : apply\nwith {\n  env = abs : (\\(prev, a).(a + select2(a > prev, rl, at) * (prev - a))) ~ _;\n  apply(e, x) = x * pow(max(e, thr) / thr, expo) * makeup;\n};\n\n// Freeverb as juce::Reverb: comb out = buf[i]; last = out*(1-d) + last*d; buf[i] = in + last*fb.\nvcomb(n, fb, d) = (+ ~ (@(n - 1) : lp : *(fb))) : @(n)\nwith { lp = *(1.0 - d) : + ~ *(d); };\n// allpass: b = buf[i]; buf[i] = in + b*0.5; out = b - in.\nvallp(n) = _ <: ((+ ~ (@(n - 1) : *(0.5))) : @(n)), _ : -;\n\n// Feedback delay: w = x + fb*w@D; y = (1-mix)*x + mix*w@D.\nfbdelay(D, fb, dry, wet) = _ <: *(dry), ((+ ~ (@(D - 1) : *(fb))) : @(D) : *(wet)) :> _;\n\n// input: gain\nfx0 = par(i, 2, *(0.10128800125118696));\n// comp: compressor\nfx1 = par(i, 2, comp(0.9902881999523492, 0.9950827805734227, 0.029759183626968787, -0.8110368788660454, 1.819182058343888));\n// low: low_shelf\nfx2 = par(i, 2, fi.tf22t(0.9997084238675806, -1.979560678651076, 0.9800474585823379, -1.9795548624130863, 0.9797616986879081));\n// eq250: peak\nfx3 = par(i, 2, fi.tf22t(0.9878445772383478, -1.9588663223081912, 0.9722650195458051, -1.9588663223081912, 0.9601095967841531));\n// eq500: peak\nfx4 = par(i, 2, fi.tf22t(1.0164638988321106, -1.958914652982622, 0.9474318779368934, -1.958914652982622, 0.9638957767690042));\n// mid: peak\nfx5 = par(i, 2, fi.tf22t(0.9477757759446368, -1.8221569724609845, 0.8930332440180487, -1.8221569724609845, 0.8408090199626855));\n// eq2k: peak\nfx6 = par(i, 2, fi.tf22t(0.9728769043277746, -1.7188063006598595, 0.8181522393879201, -1.7188063006598595, 0.7910291437156948));\n// presence: peak\nfx7 = par(i, 2, fi.tf22t(1.0075014842767018, -1.417082014421605, 0.675587563653448, -1.417082014421605, 0.6830890479301498));\n// high: high_shelf\nfx8 = par(i, 2, fi.tf22t(0.8794554312435446, -0.5550961211689274, 0.21356301059739136, -0.7292071474431358, 0.26712946811514426));\n// air: high_shelf\nfx9 = par(i, 2, fi.tf22t(1.0941092753418376, 0.47499463098401096, 0.22431574261485468, 0.564921604668118, 0.22849804427258538));\n// reverb: reverb\nfx10 = (si.bus(2) <: ((+ : *(0.015) <: (_ <: vcomb(1116, 0.8932756643534439, 0.2), vcomb(1188, 0.8932756643534439, 0.2), vcomb(1277, 0.8932756643534439, 0.2), vcomb(1356, 0.8932756643534439, 0.2), vcomb(1422, 0.8932756643534439, 0.2), vcomb(1491, 0.8932756643534439, 0.2), vcomb(1557, 0.8932756643534439, 0.2), vcomb(1617, 0.8932756643534439, 0.2) :> vallp(556) : vallp(441) : vallp(341) : vallp(225)), (_ <: vcomb(1139, 0.8932756643534439, 0.2), vcomb(1211, 0.8932756643534439, 0.2), vcomb(1300, 0.8932756643534439, 0.2), vcomb(1379, 0.8932756643534439, 0.2), vcomb(1445, 0.8932756643534439, 0.2), vcomb(1514, 0.8932756643534439, 0.2), vcomb(1580, 0.8932756643534439, 0.2), vcomb(1640, 0.8932756643534439, 0.2) :> vallp(579) : vallp(464) : vallp(364) : vallp(248))), si.bus(2)) : \\(wl, wr, l, r).(wl * 0.8606405293524886 + wr * 0.0 + l * 1.0, wr * 0.8606405293524886 + wl * 0.0 + r * 1.0));\n// delay: delay\nfx11 = par(i, 2, fbdelay(5525, 0.389128324247895, 0.7911352009989534, 0.20886479900104662));\n// width: width\nfx12 = (\\(l, r).((l + r) * 0.5 + (l - r) * 0.5 * 0.5628736416255975, (l + r) * 0.5 - (l - r) * 0.5 * 0.5628736416255975));\n// output: gain\nfx13 = par(i, 2, *(0.2522249822890087));\n\nprocess = fx0 : fx1 : fx2 : fx3 : fx4 : fx5 : fx6 : fx7 : fx8 : fx9 : fx10 : fx11 : fx12 : fx13;\n",
   "latency": 0
  }
 ]
}
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
