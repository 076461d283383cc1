"""Benchmark: how long the web app takes to re-render the loop preview after a parameter change.

A stereo 44.1 kHz song (the demo song, 3 minutes) is opened in the web app's `Workspace` in this
process, pinned to one core with one thread per library. Then, for ``--changes`` changes of the air
and low shelves: the **render** (the loop region plus its pre-roll through the chain, what the
target is about) and the **request** (the whole ``PUT /values`` over HTTP on a real server: render,
the readouts of the new preview (loudness, true peak, range, width, spectrum), the JSON answer).
Target: the render within 300 ms for the default 8 s loop.
Usage: python bench/bench_web_preview.py [--seconds 180] [--loop 8] [--changes 20] [--backend auto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def _one_core() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--loop", type=float, default=8.0)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    _one_core()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import uvicorn

    from plugin_bridge.audio_io import write_audio
    from plugin_bridge.demo import demo_song
    from plugin_bridge.ml.preference import Profile
    from plugin_bridge.web.app import create_app
    from plugin_bridge.web.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "songs").mkdir()
        write_audio(base / "songs" / "song.wav", demo_song(seconds=args.seconds), 44100)
        ws = Workspace(
            base / "songs", base / "ws", Profile("bench", base / "bench.sqlite"), backend=args.backend
        )
        t = time.perf_counter()
        s = ws.open_path(base / "songs" / "song.wav", "song.wav")
        open_s = time.perf_counter() - t
        s.set_loop(60.0, 60.0 + args.loop, ws.limits)
        renders = []
        for i in range(args.changes):
            s.set_values({"air.gain_db": float(i % 7 - 3), "low.gain_db": float(i % 5 - 2)})
            renders.append(s.preview_ms)

        config = uvicorn.Config(create_app(ws), host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        requests = []
        for i in range(args.changes):
            body = json.dumps({"values": {"air.gain_db": float(i % 7 - 3)}}).encode()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/s/{s.id}/values",
                data=body,
                method="PUT",
                headers={"Content-Type": "application/json"},
            )
            t = time.perf_counter()
            with urllib.request.urlopen(req) as r:
                r.read()
            requests.append(1000 * (time.perf_counter() - t))
        server.should_exit = True
        thread.join(5)

    def stats(v: list[float]) -> str:
        return f"median {statistics.median(v):.0f} ms, max {max(v):.0f} ms"

    print(
        f"web preview: a {args.seconds:g} s stereo 44.1 kHz song, {args.loop:g} s loop, one core, "
        f"backend {ws.backend}, {args.changes} changes"
    )
    print(f"  open (analyse + propose + first preview): {open_s:.2f} s")
    print(f"  re-render of the loop after a change:     {stats(renders)}  (target 300 ms)")
    print(f"  whole PUT /values request (+ readouts):   {stats(requests)}")
    print(f"  within target: {'yes' if statistics.median(renders) <= 300 else 'NO'}")


if __name__ == "__main__":
    main()
