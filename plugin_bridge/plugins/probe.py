"""Probe plugins in a subprocess: a plugin that segfaults or hangs is reported, never fatal.

`probe` runs ``python -m plugin_bridge.plugins.probe FORMAT LOCATION`` with a timeout. The child
loads the plugin (VST3 with pedalboard, VST2 and LV2 with DawDreamer), lists its parameters, processes
a short buffer of quiet noise (where some plugins crash: HOSTING.md trap 7), optionally samples each
parameter's display text at normalized points (``--curves``), and prints one JSON object on stdout.
The parent records the outcome in the plugin cache: ``ok`` with the info, or ``bad`` with the reason
(``crashed: SIGSEGV``, ``hung: no answer in 60 s``, the load error). Nothing here ever loads a
plugin in the calling process.

Parameter info (one dict per parameter): ``index``, ``name``, ``value`` (normalized 0-1), ``text``
(display text), ``min``/``max`` (real range as the plugin reports it, None when it does not),
``unit``, ``automatable``, ``discrete``, ``steps`` and, with curves, ``curve``: ``[[normalized,
text], ...]`` at ``CURVE_POINTS`` points.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .discovery import PluginError, PluginRef, cached, update_cache

#: Seconds a probe may take before it counts as hung (ZamVerb's VST3 takes ~46 s to load).
DEFAULT_TIMEOUT = 90.0
#: Normalized points at which ``--curves`` samples every parameter's display text.
CURVE_POINTS = tuple(round(i / 20, 2) for i in range(21))
PROBE_SAMPLE_RATE = 44100
_MARK = "PLUGIN_BRIDGE_PROBE_JSON:"


@dataclass
class ProbeResult:
    """Outcome of one probe: ``ok`` with ``info``, or not ok with ``reason`` (crash, hang, error)."""

    ref: PluginRef
    ok: bool
    reason: str = ""
    info: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "ref": self.ref.to_dict(),
            "status": "ok" if self.ok else "bad",
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "info": self.info,
        }


def parse_number(text: str) -> float | None:
    """The first number in a display text (``"-12.5 dB"`` -> -12.5); None when there is none."""
    m = re.search(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text or "")
    if not m:
        return None
    try:
        return float(m.group(0))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# The child side (runs inside the subprocess)
# --------------------------------------------------------------------------------------------


def _inspect_pedalboard(location: str, curves: bool) -> dict:
    import pedalboard

    plugin = pedalboard.load_plugin(location)
    params = []
    for p in plugin._parameters:
        entry = {
            "index": int(p.index),
            "name": str(p.name),
            "value": float(p.raw_value),
            "text": str(p.string_value),
            "unit": str(p.label).strip(),
            "automatable": bool(p.is_automatable),
            "discrete": bool(p.is_discrete),
            "steps": int(p.num_steps),
            "min": None,
            "max": None,
        }
        lo, hi = parse_number(p.get_text_for_raw_value(0.0)), parse_number(p.get_text_for_raw_value(1.0))
        if lo is not None and hi is not None:
            entry["min"], entry["max"] = lo, hi
        if curves:
            entry["curve"] = [[x, str(p.get_text_for_raw_value(x))] for x in CURVE_POINTS]
        params.append(entry)
    noise = (np.random.default_rng(0).standard_normal((2, 4096)) * 0.05).astype(np.float32)
    channels = 2
    try:
        out = plugin.process(noise, PROBE_SAMPLE_RATE)
    except Exception:  # a mono-only plugin refuses stereo
        channels = 1
        out = plugin.process(noise[:1], PROBE_SAMPLE_RATE)
    class_id = ""
    try:  # a .vstpreset starts with 'VST3', int32 version, then the 32-char processor class ID
        preset = bytes(plugin.preset_data)
        if preset[:4] == b"VST3":
            class_id = preset[8:40].decode("ascii")
    except Exception:  # not a VST3 or no preset support
        class_id = ""
    return {
        "host": "pedalboard",
        "vst3_class_id": class_id,
        "parameters": params,
        "inputs": channels,
        "outputs": int(out.shape[0]),
        "latency": int(getattr(plugin, "reported_latency_samples", 0) or 0),
        "finite_output": bool(np.isfinite(out).all()),
    }


def _inspect_dawdreamer(location: str, curves: bool) -> dict:
    import dawdreamer

    engine = dawdreamer.RenderEngine(PROBE_SAMPLE_RATE, 512)
    proc = engine.make_plugin_processor("probe", location)
    params = []
    for d in proc.get_parameters_description():
        i = int(d["index"])
        entry = {
            "index": i,
            "name": str(d["name"]),
            "value": float(proc.get_parameter(i)),
            "text": str(d.get("text", "")),
            "unit": str(d.get("label", "")).strip(),
            "automatable": bool(d.get("isAutomatable", True)),
            "discrete": bool(d.get("isDiscrete", False)),
            "steps": int(d.get("numSteps", 0)),
            "min": parse_number(str(d.get("min", ""))),
            "max": parse_number(str(d.get("max", ""))),
        }
        if entry["automatable"]:  # VST2/LV2 descriptions carry no real range: read the texts at 0 and 1
            start = proc.get_parameter(i)
            curve = []
            for x in CURVE_POINTS if curves else (0.0, 1.0):
                proc.set_parameter(i, x)
                curve.append([x, str(proc.get_parameter_text(i))])
            proc.set_parameter(i, start)
            if curves:
                entry["curve"] = curve
            lo, hi = parse_number(curve[0][1]), parse_number(curve[-1][1])
            if lo is not None and hi is not None:
                entry["min"], entry["max"] = lo, hi
        params.append(entry)
    n_in, n_out = int(proc.get_num_input_channels()), int(proc.get_num_output_channels())
    noise = (np.random.default_rng(0).standard_normal((max(n_in, 1), 4096)) * 0.05).astype(np.float32)
    play = engine.make_playback_processor("in", noise)
    graph = [(play, []), (proc, ["in"])] if n_in else [(proc, [])]
    if not engine.load_graph(graph):
        raise RuntimeError("could not load a render graph")
    engine.render(4096 / PROBE_SAMPLE_RATE)
    out = engine.get_audio()
    return {
        "host": "dawdreamer",
        "parameters": params,
        "inputs": n_in,
        "outputs": n_out,
        "latency": int(proc.get_latency_samples()),
        "finite_output": bool(np.isfinite(out).all()),
    }


def inspect_in_this_process(fmt: str, location: str, curves: bool = False) -> dict:
    """Load and inspect a plugin HERE (only ever call it in a probe subprocess)."""
    if fmt == "vst3" or fmt == "au":
        return _inspect_pedalboard(location, curves)
    if fmt in ("vst2", "lv2"):
        return _inspect_dawdreamer(location, curves)
    raise PluginError(f"cannot probe plugin format {fmt!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the probe subprocess: prints ``PLUGIN_BRIDGE_PROBE_JSON:{...}`` on stdout."""
    ap = argparse.ArgumentParser(prog="python -m plugin_bridge.plugins.probe")
    ap.add_argument("format", choices=("vst3", "vst2", "lv2", "au", "selftest-crash", "selftest-hang"))
    ap.add_argument("location")
    ap.add_argument("--curves", action="store_true")
    args = ap.parse_args(argv)
    if args.format == "selftest-crash":  # used by the tests: a probe that dies of SIGSEGV
        os.kill(os.getpid(), signal.SIGSEGV)
    if args.format == "selftest-hang":
        time.sleep(3600)
    try:
        info = inspect_in_this_process(args.format, args.location, args.curves)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(_MARK + json.dumps({"error": f"{type(e).__name__}: {msg}"}), flush=True)
        return 3
    print(_MARK + json.dumps(info), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip plugin destructors at exit (some DPF plugins complain or crash there)


# --------------------------------------------------------------------------------------------
# The parent side
# --------------------------------------------------------------------------------------------


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def probe(
    ref: PluginRef,
    timeout: float = DEFAULT_TIMEOUT,
    curves: bool = False,
    record: bool = True,
) -> ProbeResult:
    """Probe ``ref`` in a subprocess with a ``timeout`` (s); record the outcome in the cache.

    Never raises for a misbehaving plugin: a crash, hang, error exit or unreadable answer is a
    `ProbeResult` with ``ok=False`` and the reason.
    """
    cmd = [sys.executable, "-m", "plugin_bridge.plugins.probe", ref.format, ref.location]
    if curves:
        cmd.append("--curves")
    start = time.perf_counter()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        result = ProbeResult(
            ref, False, f"hung: no answer in {timeout:g} s", seconds=time.perf_counter() - start
        )
    else:
        elapsed = time.perf_counter() - start
        payload = None
        for line in proc.stdout.splitlines():
            if line.startswith(_MARK):
                try:
                    payload = json.loads(line[len(_MARK) :])
                except ValueError:
                    payload = None
        if proc.returncode < 0 and payload is None:
            result = ProbeResult(ref, False, f"crashed: {_signal_name(proc.returncode)}", seconds=elapsed)
        elif payload is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
            result = ProbeResult(ref, False, f"failed (exit {proc.returncode}): {tail}", seconds=elapsed)
        elif "error" in payload:
            result = ProbeResult(ref, False, f"failed to load: {payload['error']}", seconds=elapsed)
        elif not payload.get("finite_output", True):
            result = ProbeResult(ref, False, "produced non-finite output", payload, elapsed)
        else:
            result = ProbeResult(ref, True, "", payload, elapsed)
    if record:
        update_cache(ref, "ok" if result.ok else "bad", result.reason, result.info or None)
    return result


def ensure_probed(ref: PluginRef, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """The cached probe result of ``ref``, probing it (in a subprocess) when it is not cached yet."""
    entry = cached(ref)
    if entry and entry.get("status") in ("ok", "bad") and (entry.get("info") or entry["status"] == "bad"):
        return ProbeResult(ref, entry["status"] == "ok", entry.get("reason", ""), entry.get("info") or {})
    return probe(ref, timeout=timeout)


if __name__ == "__main__":  # pragma: no cover - the subprocess entry point
    sys.exit(main())
