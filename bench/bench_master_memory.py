"""Benchmark: peak resident memory and wall time of ``plugin-bridge master`` and ``mix``, by song length.

Generates 44.1 kHz stereo float WAVs in a temporary folder (pink-ish noise plus tones, a little DC
so the DC high-pass runs too, and a brighter, wider reference of 3 minutes), then runs
``python -m plugin_bridge.cli master IN -o OUT [--reference REF]`` for each case in a child process
and reads its peak resident set size from ``/usr/bin/time -v`` ("Maximum resident set size"), or,
without GNU time, from ``resource.getrusage(RUSAGE_CHILDREN)``. The files are written block by
block, so generating a 60-minute song needs no more memory than the master does. Disk: about
0.6 GB per 60 minutes of input, and up to four times that for the master's temporary stores.

``plugin-bridge mix SONG`` (the whole AI job as a cold process: read, analyse, predict, render,
master, write, recipe, DAW exports) runs on the same songs and, at the shortest length, on a
punchier song whose master needs the limiter (its pass then measures the output again), and, in
the same run on the shortest song, matchering 2's reference master of it (with the brighter 3-minute reference, 16-bit output;
skipped with a hint when matchering is not installed): the issue's yardstick is mix time /
matchering time. Every child runs on one core (the first of this process's affinity); the CPU time
(user + system) is printed beside the wall time, since a shared machine stretches the wall time.
The commands on the shortest song run ``--repeat`` times in interleaved rounds (every command once
per round); the tables give the median and the range, and the ratio comes from the medians.

Before timing, the package's bytecode is compiled (``compileall``), as ``pip install`` does for an
installed package: a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as on these machines) would
otherwise compile about 80 modules from source, ~0.1 s, at every start.

Usage: python bench/bench_master_memory.py [--minutes 3 60] [--no-reference] [--no-mix] [--repeat 3]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import plugin_bridge

SR = 44100
CHUNK_S = 10


def write_song(path: Path, minutes: float, bright: bool = False, seed: int = 0, punchy: bool = False) -> None:
    """Noise and tones, written 10 s at a time (float32 WAV); ``bright`` makes a brighter, wider mix;
    ``punchy`` adds a kick (a decaying 55 Hz burst near full scale) every half second, so that the
    song's peaks stand far above its loudness and mastering it to -14 LUFS needs the limiter."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, 2, "FLOAT") as f:
        for start in range(0, n, CHUNK_S * SR):
            m = min(CHUNK_S * SR, n - start)
            t = (start + np.arange(m)) / SR
            tones = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t) * (t % 2 < 1)
            noise = rng.standard_normal((2, m)) * (0.1 if bright else 0.05)
            if not bright:  # darker: smooth the noise (a two-sample average)
                noise[:, 1:] = 0.5 * (noise[:, 1:] + noise[:, :-1])
            x = tones + noise + (0.0 if bright else 0.002)
            if punchy:
                beat = t % 0.5
                x = x + 0.9 * np.sin(2 * np.pi * 55 * beat) * np.exp(-beat / 0.05)
            if bright:
                x[1] = 0.6 * x[1] - 0.4 * noise[0]
            f.write(x.T.astype(np.float32))


MATCHERING = (
    "import sys, matchering as mg; "
    "mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm16(sys.argv[3])])"
)


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def run(args: list[str]) -> tuple[float, float, float]:
    """Peak RSS (MB), wall time and CPU time (user + system, s) of one child process, on one core."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    t0 = time.perf_counter()
    if gnu_time:
        p = subprocess.run([gnu_time, "-v", *args], capture_output=True, text=True, preexec_fn=_one_core)
        seconds = time.perf_counter() - t0
        if p.returncode:
            sys.exit(f"failed: {' '.join(args)}\n{p.stderr[-2000:]}")
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        cpu = sum(
            float(re.search(rf"{k} time \(seconds\): ([\d.]+)", p.stderr).group(1))
            for k in ("User", "System")
        )
        return kb / 1024, seconds, cpu
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    p = subprocess.run(args, capture_output=True, text=True, preexec_fn=_one_core)
    seconds = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{p.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu0
    if kb <= before:  # the maximum over all children: only trust it when it grew
        print(f"  (getrusage cannot separate this run from a bigger earlier one: >= {kb / 1024:.0f} MB)")
    return kb / 1024, seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 60.0])
    ap.add_argument("--no-reference", action="store_true", help="skip the --reference runs")
    ap.add_argument("--no-mix", action="store_true", help="skip the mix and matchering runs")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the files")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the shortest song's commands")
    a = ap.parse_args()
    compileall.compile_dir(Path(plugin_bridge.__file__).parent, quiet=1)
    folder = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-master-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        ref = folder / "ref.wav"
        if not ref.exists():
            write_song(ref, 3.0, bright=True, seed=1)
        for minutes in a.minutes:
            src = folder / f"song_{minutes:g}min.wav"
            if not src.exists():
                write_song(src, minutes)
            cases = [("master", [])] + (
                [] if a.no_reference else [("master --reference", ["--reference", str(ref)])]
            )
            cli = [sys.executable, "-m", "plugin_bridge.cli"]
            commands = [
                (name, [*cli, "master", str(src), "-o", "{out}.wav", *extra]) for name, extra in cases
            ]
            if not a.no_mix:
                commands.append(("mix (AI job, cold)", [*cli, "mix", str(src), "-o", "{out}", "--quiet"]))
                if minutes == min(a.minutes):
                    punchy = folder / f"song_{minutes:g}min_punchy.wav"
                    if not punchy.exists():
                        write_song(punchy, minutes, punchy=True)
                    commands.append(
                        (
                            "mix, a song the limiter works on",
                            [*cli, "mix", str(punchy), "-o", "{out}", "--quiet"],
                        )
                    )
                if minutes == min(a.minutes) and has_matchering():
                    commands.append(
                        (
                            "matchering reference master",
                            [sys.executable, "-c", MATCHERING, str(src), str(ref), "{out}.wav"],
                        )
                    )
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in commands}
            for _ in range(max(1, a.repeat) if minutes == min(a.minutes) else 1):
                for name, cmd in commands:
                    out = folder / "out"
                    mb, seconds, cpu = run([c.replace("{out}", str(out)) for c in cmd])
                    runs[name].append((mb, seconds, cpu))
                    print(
                        f"{minutes:g} min  {name:<28} {mb:8.0f} MB  {seconds:7.2f} s  (CPU {cpu:.2f} s)",
                        flush=True,
                    )
                    shutil.rmtree(out, ignore_errors=True)
                    Path(f"{out}.wav").unlink(missing_ok=True)
            for name, got in runs.items():
                mb, seconds, cpu = (np.array(v) for v in zip(*got, strict=True))
                rows.append(
                    (
                        minutes,
                        name,
                        mb.max(),
                        np.median(seconds),
                        np.median(cpu),
                        seconds.min(),
                        seconds.max(),
                    )
                )
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n| song | command | peak RSS (MB) | wall (s), median | range | CPU (s), median |")
    print("|---|---|---:|---:|---:|---:|")
    for minutes, name, mb, seconds, cpu, lo, hi in rows:
        print(f"| {minutes:g} min | {name} | {mb:.0f} | {seconds:.2f} | {lo:.2f}-{hi:.2f} | {cpu:.2f} |")
    times = {(m, n): s for m, n, _, s, _, _, _ in rows}
    cpus = {(m, n): c for m, n, _, _, c, _, _ in rows}
    shortest = min(a.minutes)
    mix, ref = (
        times.get((shortest, "mix (AI job, cold)")),
        times.get((shortest, "matchering reference master")),
    )
    if mix and ref:
        cpu = cpus[(shortest, "mix (AI job, cold)")] / cpus[(shortest, "matchering reference master")]
        print(
            f"\n{shortest:g} min: mix / matchering's reference master (same run, one core): "
            f"wall {mix / ref:.2f}, CPU {cpu:.2f}"
        )
    elif not a.no_mix:
        print("\nmatchering is not installed (.venv/bin/pip install matchering): no ratio")


def has_matchering() -> bool:
    """True when matchering 2 imports here."""
    return subprocess.run([sys.executable, "-c", "import matchering"], capture_output=True).returncode == 0


if __name__ == "__main__":
    main()
