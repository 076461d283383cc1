"""Benchmark of the stems mix: (a) quality on held-out multitracks, (b) speed and memory.

(a) The judge of `plugin_bridge.stems.evaluate` on the test package of the stems corpus (the
planetblupi MIDI songs, never trained on; ``render_scripts/build_stems_corpus.py``): every
multitrack scrambled (faders +-4..10 dB, balance pans, EQ +-6 dB), mixed by each row, measured
against the reference. Prints a Markdown table; JSON to ``bench/results/stems.json``.

(b) 8 stems x 3 minutes (44.1 kHz stereo float WAVs of banded noise, tones and pulses written to
a temporary folder) on one core (the child process is pinned to one CPU, one thread): the seconds
of analysis and prediction, of the whole ``mix_stems`` job (render, master and exports), and the
peak resident memory of each child (``resource.getrusage``). Issue 14's targets: <= 2 s, <= 15 s,
<= 1 GB.

Usage: python bench/bench_stems.py [--corpus /work/stems_corpus] [--limit N] [--skip-quality] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
RESULTS = Path(__file__).resolve().parent / "results" / "stems.json"
TARGETS = {"analysis_predict_s": 2.0, "job_s": 15.0, "peak_rss_mb": 1024.0}


def quality(corpus: Path, limit: int | None, work: Path, seed: int) -> dict:
    """The quality table on the corpus' test multitracks (all rows)."""
    from plugin_bridge.stems.corpus import list_multitracks
    from plugin_bridge.stems.evaluate import ROWS, evaluate_multitracks

    refs = list_multitracks(corpus, "test")[:limit]
    if not refs:
        raise SystemExit(
            f"{corpus}: no test multitracks (build them with render_scripts/build_stems_corpus.py)"
        )
    print(f"{len(refs)} held-out multitracks from {corpus}", flush=True)
    result = evaluate_multitracks(refs, work, seed=seed, rows=ROWS, log=lambda m: print(m, flush=True))
    print(result.table())
    return result.to_dict()


def write_fixture(corpus: Path, path: Path, count: int = 8, seed: int = 0) -> None:
    """The tiny held-out fixture of ``tests/test_stems_model.py``: for ``count`` test multitracks
    (one per song), the features of their scrambled stems and the reference relative levels (LU)."""
    from plugin_bridge.stems.analysis import analyse_track
    from plugin_bridge.stems.corpus import list_multitracks
    from plugin_bridge.stems.evaluate import Reference, read_stems, scramble_multitrack

    refs, songs = [], set()
    for ref in list_multitracks(corpus, "test"):
        song = ref.name.split("__")[1]
        if song not in songs:
            songs.add(song)
            refs.append(ref)
    out = []
    with tempfile.TemporaryDirectory(prefix="stems-fixture-") as tmp:
        for i, ref_dir in enumerate(refs[:count]):
            ref = Reference.read(ref_dir)
            scramble_multitrack(ref_dir, Path(tmp) / ref_dir.name, seed + i)
            stems, sr = read_stems(Path(tmp) / ref_dir.name)
            names = sorted(ref.loudness)
            level = np.array([ref.loudness[k] for k in names])
            feats = [analyse_track(stems[k], sr).features for k in names]
            out.append(
                {
                    "multitrack": ref_dir.name,
                    "names": names,
                    "level_lu": [round(float(v), 3) for v in level - level.mean()],
                    "features": [[round(float(v), 4) for v in f] for f in feats],
                }
            )
    path.write_text(json.dumps({"seed": seed, "multitracks": out}) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(out)} multitracks)")


def write_stems(folder: Path, n: int = 8, minutes: float = 3.0, seed: int = 0) -> None:
    """``n`` stereo stems of ``minutes`` (float32 WAV, written 10 s at a time): banded noise, tones
    and gated pulses at different levels and positions."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = int(minutes * 60 * SR)
    for k in range(n):
        freq = 55.0 * 2 ** (k * 0.8)
        level = 10 ** (rng.uniform(-30, -12) / 20)
        pan = rng.uniform(-0.5, 0.5)
        with sf.SoundFile(folder / f"track{k + 1}.wav", "w", SR, 2, "FLOAT") as f:
            for start in range(0, total, 10 * SR):
                m = min(10 * SR, total - start)
                t = (start + np.arange(m)) / SR
                tone = np.sin(2 * np.pi * freq * t) * (1.0 if k % 2 else (t * (1 + k) % 1.0 < 0.5))
                noise = rng.standard_normal(m) * (0.3 if k % 3 == 0 else 0.05)
                x = level * (tone + noise)
                f.write(np.stack([x * (1 - pan), x * (1 + pan)]).T.astype(np.float32))


def child(task: str, stems: Path, out: Path) -> None:
    """Run one timed task in this (pinned) process and print ``{"seconds", "peak_rss_mb"}`` as JSON."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from plugin_bridge.stems.job import analyse_stem
    from plugin_bridge.stems.model import StemModel

    t0 = time.perf_counter()
    parts: dict[str, float] = {}
    if task == "analysis":
        model = StemModel.load()
        parts["load_model"] = time.perf_counter() - t0
        feats = []
        for path in sorted(stems.glob("*.wav")):  # as mix_stems does: each file analysed as it is read
            t = time.perf_counter()
            feats.append(analyse_stem(path)[0].features)
            parts["read+analyse"] = parts.get("read+analyse", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        model.predict(np.stack(feats))
        parts["predict"] = time.perf_counter() - t
    else:
        from plugin_bridge.stems.job import mix_stems

        mix_stems(stems, out, balance="model")
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    parts = {k: round(v, 3) for k, v in parts.items()}
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1), "parts_s": parts}))


def speed() -> dict:
    """(b): analysis+prediction and the whole job on 8 x 3 min stems, each in a one-core child."""
    try:
        from plugin_bridge.stems.job import mix_stems  # noqa: F401
    except ImportError as e:
        print(f"speed and memory skipped: plugin_bridge.stems.job.mix_stems is not available ({e})")
        return {"skipped": str(e)}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-stems-") as tmp:
        stems = Path(tmp) / "stems"
        write_stems(stems)
        for task in ("analysis", "job"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", task, str(stems), str(Path(tmp) / "out")],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{task} child failed:\n{proc.stderr[-2000:]}")
            out[task] = json.loads(proc.stdout.strip().splitlines()[-1])
    res = {
        "stems": 8,
        "minutes": 3.0,
        "analysis_predict_s": out["analysis"]["seconds"],
        "job_s": out["job"]["seconds"],
        "peak_rss_mb": max(out["analysis"]["peak_rss_mb"], out["job"]["peak_rss_mb"]),
        "peak_rss_mb_by_task": {k: v["peak_rss_mb"] for k, v in out.items()},
        "analysis_parts_s": out["analysis"]["parts_s"],
    }
    res["targets_met"] = {k: res[k] <= v for k, v in TARGETS.items()}
    print(
        f"8 stems x 3 min, one core: analysis+prediction {res['analysis_predict_s']:.2f} s (<= 2), "
        f"whole job {res['job_s']:.1f} s (<= 15), peak memory {res['peak_rss_mb']:.0f} MB (<= 1024)"
    )
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/stems_corpus"))
    ap.add_argument(
        "--work", type=Path, default=None, help="folder for scrambled copies and mixes (default: temporary)"
    )
    ap.add_argument("--limit", type=int, default=None, help="at most this many test multitracks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("TASK", "STEMS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--write-fixture", type=Path, default=None, help="write the held-out test fixture and stop"
    )
    args = ap.parse_args(argv)
    if args.write_fixture is not None:
        write_fixture(args.corpus, args.write_fixture)
        return 0
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if not args.skip_quality:
        if args.work is not None:
            results["quality"] = quality(args.corpus, args.limit, args.work, args.seed)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-stems-q-") as tmp:
                results["quality"] = quality(args.corpus, args.limit, Path(tmp), args.seed)
    if not args.skip_speed:
        results["speed"] = speed()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
