"""Benchmark: live processing, 128-sample blocks at 44.1 kHz stereo through the default chain.

For the numpy path (adjustable while running) and the pedalboard path (fixed settings) of
`plugin_bridge.realtime.BlockProcessor`, times every block with ``time.perf_counter`` and prints
the median, 99th percentile and worst block as a share of the block's duration (128 / 44100 s =
2.90 ms), in wall-clock time and in the thread's CPU time; live use wants the 99th percentile
well under 100 % (the issue's target: <= 10 %), on one core (BLAS/FFT thread pools are limited to
one thread). The machine's load average is printed with the figures: on a busy machine the
wall-clock tail measures the other processes too, the CPU time does not.
Usage: python bench/bench_live.py [--seconds 20] [--block 128] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import SR
from threadpoolctl import threadpool_limits

from plugin_bridge.realtime import BlockProcessor

# every stage of the default chain active (none is neutral)
VALUES = {
    "input.gain_db": 1.0,
    "comp.threshold_db": -18.0,
    "comp.ratio": 2.5,
    "comp.attack_ms": 20.0,
    "comp.release_ms": 150.0,
    "comp.makeup_db": 3.0,
    "low.gain_db": -2.0,
    "eq250.gain_db": 1.0,
    "eq500.gain_db": -1.5,
    "mid.gain_db": -1.0,
    "eq2k.gain_db": 0.5,
    "presence.gain_db": 1.5,
    "high.gain_db": 3.0,
    "air.gain_db": 2.0,
    "reverb.room_size": 0.4,
    "reverb.wet_level": 0.06,
    "delay.delay_ms": 272.7,
    "delay.feedback": 0.25,
    "delay.mix": 0.05,
    "width.width": 1.3,
    "output.gain_db": -1.0,
}


def _signal(seconds: float) -> np.ndarray:
    """Pink-ish noise plus a 110 Hz tone, stereo, about -18 dBFS RMS."""
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((2, n)), axis=1)
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0))
    x = np.fft.irfft(spec, n, axis=1)
    x = 0.125 * x / np.sqrt(np.mean(x**2)) + 0.1 * np.sin(2 * np.pi * 110 * np.arange(n) / SR)
    return x.astype(np.float32)


def bench(backend: str, audio: np.ndarray, block: int) -> dict:
    """Per-block processing times of ``audio`` in blocks of ``block`` on ``backend`` (after a warm-up)."""
    proc = BlockProcessor("default", SR, backend=backend, values=VALUES)
    for i in range(0, 100 * block, block):  # warm-up: numba kernels, FFT plans, caches
        proc.process(audio[:, i : i + block])
    wall, cpu = [], []
    for i in range(0, audio.shape[1] - block + 1, block):
        x = audio[:, i : i + block]
        t, c = time.perf_counter(), time.thread_time()
        proc.process(x)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    budget = block / SR
    out = {
        "backend": backend,
        "blocks": len(wall),
        "block_ms": round(1000 * budget, 3),
        "latency_samples": proc.latency,
    }
    for clock, values in (("wall", wall), ("cpu", cpu)):
        t = np.array(values)
        for name, v in (("median", np.median(t)), ("p99", np.percentile(t, 99)), ("max", t.max())):
            out[f"{clock}_{name}_ms"] = round(1000 * float(v), 4)
            out[f"{clock}_{name}_pct"] = round(100 * float(v) / budget, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="audio to process per backend")
    ap.add_argument("--block", type=int, default=128, help="block size (samples)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    audio = _signal(args.seconds + 100 * args.block / SR)
    load = os.getloadavg()[0]
    rows = []
    with threadpool_limits(1):
        for backend in ("numpy", "pedalboard"):
            rows.append(bench(backend, audio, args.block))
    print(
        f"live: {args.block}-sample blocks at {SR} Hz stereo, default chain (every stage active), "
        f"{args.seconds:g} s per backend, one thread; load average {load:.2f} on {os.cpu_count()} cores"
    )
    print(f"share of the {rows[0]['block_ms']} ms block: wall clock (what a live callback sees) and the")
    print("thread's CPU time (the work itself, without time lost to other processes)")
    print(f"{'backend':<11} {'clock':<5} {'median':>17} {'99th pct':>17} {'worst':>17}")
    for r in rows:
        for clock in ("wall", "cpu"):
            cells = [
                f"{r[f'{clock}_{k}_ms']:>7.3f} ms {r[f'{clock}_{k}_pct']:>5.1f}%"
                for k in ("median", "p99", "max")
            ]
            print(f"{r['backend']:<11} {clock:<5} " + " ".join(f"{c:>17}" for c in cells))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"load_average": load, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
