"""Benchmark: 60 s of stereo 44.1 kHz audio through the default chain on every backend.

Also renders the same chain built by hand in raw pedalboard (with the M/S width written by hand in
numpy, since pedalboard has none), in the same run, and prints real-time factors, the bridge/raw
ratio and each backend's peak memory (every backend runs in its own subprocess so the peak RSS is
its own). The backends run in rounds, interleaved (raw, pedalboard, ... then the reverse order), so
that a shared machine's slow minutes fall on both sides of each ratio; the bridge/raw ratio is
taken within each round and its median over the rounds is printed with its range.
Usage: python bench/bench_render.py [--seconds 60] [--repeats 5] [--rounds 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from _common import SR, peak_rss_mb

# every stage active (no neutral stage the bridge could skip)
VALUES = {
    "input.gain_db": 1.0,
    "comp.threshold_db": -18.0,
    "comp.ratio": 2.5,
    "comp.attack_ms": 20.0,
    "comp.release_ms": 150.0,
    "comp.makeup_db": 3.0,
    "low.gain_db": -2.0,
    "mid.gain_db": -1.0,
    "high.gain_db": 3.0,
    "presence.gain_db": 1.5,
    "air.gain_db": 2.0,
    "reverb.room_size": 0.4,
    "reverb.wet_level": 0.06,
    "delay.delay_ms": 272.7,
    "delay.feedback": 0.25,
    "delay.mix": 0.05,
    "width.width": 1.3,
    "output.gain_db": -1.0,
}


def _audio(seconds: float) -> np.ndarray:
    from plugin_bridge.demo import demo_song

    return demo_song(seconds=seconds, sample_rate=SR)


def _load(path: str) -> np.ndarray:
    return np.load(path)


def _raw_pedalboard(audio: np.ndarray) -> np.ndarray:
    """The default chain written by hand against pedalboard's API."""
    import pedalboard as pb

    v = VALUES
    d = round(v["delay.delay_ms"] * SR / 1000)
    board = pb.Pedalboard(
        [
            pb.Gain(gain_db=v["input.gain_db"]),
            pb.Compressor(
                threshold_db=v["comp.threshold_db"],
                ratio=v["comp.ratio"],
                attack_ms=v["comp.attack_ms"],
                release_ms=v["comp.release_ms"],
            ),
            pb.Gain(gain_db=v["comp.makeup_db"]),
            pb.LowShelfFilter(cutoff_frequency_hz=120, gain_db=v["low.gain_db"], q=0.707),
            pb.PeakFilter(cutoff_frequency_hz=1000, gain_db=v["mid.gain_db"], q=0.9),
            pb.HighShelfFilter(cutoff_frequency_hz=6000, gain_db=v["high.gain_db"], q=0.707),
            pb.PeakFilter(cutoff_frequency_hz=4000, gain_db=v["presence.gain_db"], q=1.2),
            pb.HighShelfFilter(cutoff_frequency_hz=12000, gain_db=v["air.gain_db"], q=0.707),
            pb.Reverb(
                room_size=v["reverb.room_size"],
                damping=0.5,
                wet_level=v["reverb.wet_level"],
                dry_level=0.5,
                width=1.0,
            ),
            pb.Delay(delay_seconds=(d + 0.25) / SR, feedback=v["delay.feedback"], mix=v["delay.mix"]),
        ]
    )
    y = board(audio, SR)
    mid, side = (y[0] + y[1]) * 0.5, (y[0] - y[1]) * 0.5 * v["width.width"]
    y = np.stack([mid + side, mid - side])
    return (y * 10 ** (v["output.gain_db"] / 20)).astype(np.float32)


def run_one(backend: str, audio_path: str, repeats: int) -> dict:
    """Time one backend (or 'raw') in this process; returns times, RTF and peak RSS."""
    from plugin_bridge import render_array

    audio = _load(audio_path)
    seconds = audio.shape[1] / SR
    if backend == "raw":
        fn = lambda: _raw_pedalboard(audio)  # noqa: E731
    else:
        fn = lambda: render_array(audio, SR, "default", values=VALUES, backend=backend)  # noqa: E731
    t0 = time.perf_counter()
    fn()  # warm-up: JIT/compile/plugin load
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "backend": backend,
        "first_call_s": round(first, 3),
        "median_s": round(statistics.median(times), 4),
        "best_s": round(best, 4),
        "rtf_median": round(seconds / statistics.median(times), 1),
        "rtf_best": round(seconds / best, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of every backend (default 4)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.repeats)))
        return
    import tempfile

    audio_file = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)
    np.save(audio_file, _audio(args.seconds))
    audio_file.close()
    from plugin_bridge.backends import available_backends

    names = ["raw"] + [b for b, why in available_backends().items() if why is None]
    rounds: list[dict] = []
    for i in range(max(1, args.rounds)):
        results = {}
        for name in names if i % 2 == 0 else names[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, audio_file.name, "--repeats", str(args.repeats)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        rounds.append(results)
    os.unlink(audio_file.name)
    print(
        f"{args.seconds:g} s stereo {SR} Hz through the default chain, {args.repeats} repeats, {len(rounds)} rounds"
    )
    print(
        f"{'backend':<12}{'median s':>10}{'x real time':>13}{'vs raw (median)':>17}{'range':>16}"
        f"{'first call s':>14}{'peak RSS MB':>13}"
    )
    summary = {}
    for name in names:
        ratios = [r[name]["median_s"] / r["raw"]["median_s"] for r in rounds]
        median_s = statistics.median(r[name]["median_s"] for r in rounds)
        summary[name] = {
            "median_s": round(median_s, 4),
            "rtf_median": round(args.seconds / median_s, 1),
            "ratio_to_raw_median": round(statistics.median(ratios), 3),
            "ratio_to_raw_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "first_call_s": round(statistics.median(r[name]["first_call_s"] for r in rounds), 3),
            "peak_rss_mb": max(r[name]["peak_rss_mb"] for r in rounds),
        }
        m = summary[name]
        span = f"{min(ratios):.3f}-{max(ratios):.3f}x"
        print(
            f"{name:<12}{median_s:>10.3f}{m['rtf_median']:>13.0f}{m['ratio_to_raw_median']:>16.3f}x"
            f"{span:>16}{m['first_call_s']:>14.2f}{m['peak_rss_mb']:>13.0f}"
        )
    results = {"summary": summary, "rounds": rounds}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
