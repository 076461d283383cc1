#!/usr/bin/env python3
"""Benchmark of the shipped mixing models: inference per song after features, and an end-to-end
``mix`` of a 3-minute song on one core (read, features, predict, render, master, write).

Targets (issue): inference <= 50 ms per song after features; end-to-end <= 5 s on one core.
Also prints the held-out test-split table recorded by render_scripts/train_models.py
(``models/results.json``: balance and width error per damage tier, share improved and made worse).

Usage: ``python bench/bench_models.py [--seconds 180] [--backend auto]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    from plugin_bridge.audio_io import write_audio
    from plugin_bridge.demo import demo_song
    from plugin_bridge.ml.features import song_features
    from plugin_bridge.ml.inference import ALL_NAMES, load_model, models_dir
    from plugin_bridge.song_mix import mix_song

    song = demo_song(seconds=args.seconds)
    print(f"song: built-in demo, {args.seconds:.0f} s stereo 44.1 kHz; one core")
    t = time.perf_counter()
    mel, glob = song_features(song, 44100)
    print(f"features: {1000 * (time.perf_counter() - t):.0f} ms ({mel.shape[0]} clips)")
    print("| model | inference per song after features (ms) | ONNX size (MB) |")
    print("|---|---|---|")
    for name in ALL_NAMES:
        m = load_model(name)
        m.predict(mel, glob)
        t = time.perf_counter()
        for _ in range(args.repeats):
            m.predict(mel, glob)
        ms = 1000 * (time.perf_counter() - t) / args.repeats
        members = m.members if name == "ensemble" else [m]
        size = sum((models_dir() / f"{x.name}.onnx").stat().st_size for x in members) / 1e6
        print(f"| {name} | {ms:.1f} | {size:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_audio(Path(tmp) / "song.wav", song, 44100)
        for run in ("first", "second"):
            t = time.perf_counter()
            res = mix_song(path, Path(tmp) / "out", "ensemble", backend=args.backend)
            total = time.perf_counter() - t
            stages = ", ".join(f"{k} {v:.2f}" for k, v in res.seconds.items())
            print(f"end-to-end mix ({run} run in this process): {total:.2f} s [{stages}]")
    results = models_dir() / "results.json"
    if results.is_file():
        test = json.loads(results.read_text()).get("test", {})
        print("\nheld-out test split, as recorded by render_scripts/train_models.py (models/results.json):")
        print("| row | tier | balance dB | width dB | improved | worse > 0.5 dB |")
        print("|---|---|---|---|---|---|")
        for row, tiers in test.items():
            for tier, m in tiers.items():
                print(
                    f"| {row} | {tier} | {m['balance_db']:.2f} | {m['width_db']:.2f} | "
                    f"{m['improved']:.0%} | {m['worse']:.0%} |"
                )
    print(f"\npeak memory: {_vmhwm()}")
    return 0


def _vmhwm() -> str:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "n/a"


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
