"""Benchmark: 50 songs x 30 s through ``batch`` with 1 and with 2 workers, and a resumed batch.

Prints songs per minute per worker count and the scaling, the peak memory of one worker (the
children's VmHWM, read from the result rows' process), and how long a resumed batch over
already-finished items takes. Usage: python bench/bench_batch.py [--songs 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SR


def make_catalog(folder: Path, songs: int, seconds: float) -> None:
    """Write ``songs`` demo songs of ``seconds`` each (different seeds and levels) as 16-bit WAV."""
    from plugin_bridge.audio_io import write_audio
    from plugin_bridge.demo import demo_song

    for i in range(songs):
        sub = folder / f"album{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        write_audio(
            sub / f"song{i:03d}.wav", demo_song(seconds, SR, seed=i) * (0.15 + 0.015 * i), SR, "PCM_16"
        )


def run(src: Path, out: Path, workers: int) -> tuple[float, int]:
    """Run the batch; returns (wall seconds, items done)."""
    from plugin_bridge.batch import BatchOptions, run_batch
    from plugin_bridge.batch.jobs import JobOptions

    job = JobOptions(out_dir=str(out), vector=tuple([0.5] * 18))
    t0 = time.perf_counter()
    s = run_batch(BatchOptions(str(src), str(out), job, workers=workers, progress=False))
    return time.perf_counter() - t0, s.done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--songs", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make_catalog(Path(args.make), args.songs, args.seconds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        # generated in another process, so this parent (whose pages every forked worker shares) stays small
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--make",
                str(src),
                "--songs",
                str(args.songs),
                "--seconds",
                str(args.seconds),
            ],
            check=True,
        )
        rate = {}
        for workers in (1, 2):
            wall, done = run(src, Path(tmp) / f"out{workers}", workers)
            rate[workers] = done / wall * 60
            print(f"{workers} worker(s): {done} songs in {wall:.1f} s = {rate[workers]:.1f} songs/min")
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"scaling 2 vs 1 worker: {rate[2] / rate[1]:.2f}x")
        print(f"peak RSS of one worker (largest child): {child_peak:.0f} MB")
        wall, _ = run(src, Path(tmp) / "out2", 2)
        print(
            f"resumed batch over {args.songs} finished items: {wall:.2f} s "
            f"({wall / args.songs * 1000:.1f} ms per finished item, reports included)"
        )


if __name__ == "__main__":
    main()
