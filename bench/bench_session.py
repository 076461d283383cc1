"""Benchmark: an 8-stem x 3-minute session (a chain per track, a reverb bus, a master chain).

Prints the real-time factor of `render-session` per backend (file to file, stems written as
24-bit WAV to keep the disk small) and each backend's peak RSS (each backend runs in its own
subprocess). Targets: >= 30x real time on one core with pedalboard, peak RSS <= 1 GB.
Usage: python bench/bench_session.py [--seconds 180] [--backends pedalboard,numpy,dawdreamer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _common import SR, peak_rss_mb


def make_session(folder: Path, seconds: float) -> Path:
    """Write 8 stems (two demo songs' parts) and a session file; returns the session path."""
    from plugin_bridge.audio_io import write_audio
    from plugin_bridge.demo import demo_stems

    tracks = []
    chains = [{"chain": "channel", "vector": [0.6] * 10}, {"chain": "channel", "vector": [0.4] * 10}]
    for seed in (0, 1):
        for i, (name, audio) in enumerate(demo_stems(seconds, SR, seed=seed).items()):
            stem = f"{name}{seed}"
            write_audio(folder / f"{stem}.wav", audio, SR, subtype="PCM_24")
            tracks.append(
                {
                    "name": stem,
                    "file": f"{stem}.wav",
                    "chain": chains[(i + seed) % 2],
                    "gain_db": -3.0,
                    "pan": float(np.linspace(-0.6, 0.6, 4)[i]),
                    "sends": [{"bus": "verb", "level_db": -14.0}],
                }
            )
    session = {
        "sample_rate": SR,
        "tracks": tracks,
        "buses": [
            {
                "name": "verb",
                "chain": {
                    "effects": [
                        {
                            "id": "rev",
                            "type": "reverb",
                            "params": {"room_size": 0.7, "wet_level": 0.4, "dry_level": 0.0},
                        }
                    ]
                },
            }
        ],
        "master": {"chain": {"chain": "master"}},
    }
    path = folder / "session.yaml"
    path.write_text(yaml.safe_dump(session, sort_keys=False))
    return path


def run_one(session: str, backend: str, stems: bool) -> dict:
    """Render the session once on ``backend`` in this process; returns timing and peak RSS."""
    from plugin_bridge.graph import render_session

    out = Path(session).parent / f"mix_{backend}.wav"
    stems_out = Path(session).parent / f"stems_{backend}" if stems else None
    t0 = time.perf_counter()
    res = render_session(session, out, stems_out=stems_out, backend=backend, subtype="PCM_24")
    wall = time.perf_counter() - t0
    audio_s = res.frames / res.sample_rate
    return {
        "backend": backend,
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 2),
        "rtf": round(audio_s / wall, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--backends", default="pedalboard,numpy,dawdreamer")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.one[2] == "stems")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(Path(tmp), args.seconds)
        print(f"8 stems x {args.seconds:g} s, chain per track, reverb bus, master chain; one core each")
        print(f"{'backend':<12}{'output':<12}{'wall s':>8}{'x real time':>13}{'peak RSS MB':>13}")
        for backend, what in [(b, w) for b in args.backends.split(",") for w in ("mix", "stems")]:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            proc = subprocess.run(
                ["taskset", "-c", "0", sys.executable, __file__, "--one", str(session), backend, what],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode:
                print(f"{backend:<12}{what:<12} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            label = "mix" if what == "mix" else "mix+8 stems"
            print(f"{backend:<12}{label:<12}{r['wall_s']:>8.2f}{r['rtf']:>13.1f}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
