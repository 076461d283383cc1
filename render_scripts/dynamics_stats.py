#!/usr/bin/env python3
"""Measure the peak-to-loudness ratio (PLR) of the corpus' finished music and write ``dynamics.json``.

Usage::

    python render_scripts/dynamics_stats.py CORPUS_DIR [-o models] [--all-sources] [--workers 2]

Reads the corpus manifest (`plugin_bridge.ml.corpus.load_manifest`), takes the **train** split
only, measures every song's PLR (`plugin_bridge.ml.dynamics.excerpt_plr_db`: sample peak minus
BS.1770-4 integrated loudness of the loudest 30 s) and writes its 10th, 50th and 90th percentiles
with the song count and a source description to ``OUT/dynamics.json`` (atomically), the
statistics `plugin_bridge.ml.dynamics.compressor_rule` targets. For information it also records
the whole-song PLR and crest factor percentiles and the median PLR per source.

Songs the corpus renders itself (``procedural``, and General MIDI songs rendered by fluidsynth:
any source in `RENDERED_SOURCES` or with "midi" in its name) are left out unless
``--all-sources``: they are not mastered, so they do not show how dense finished music is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from plugin_bridge.audio_io import read_audio  # noqa: E402
from plugin_bridge.errors import PluginBridgeError  # noqa: E402
from plugin_bridge.ml.corpus import load_manifest  # noqa: E402
from plugin_bridge.ml.dynamics import (  # noqa: E402
    DYNAMICS_FILE,
    EXCERPT_S,
    DynamicsStats,
    crest_factor_db,
    excerpt_plr_db,
    plr_db,
)

#: Sources of songs the corpus renders from scores: not mastered music (left out by default).
RENDERED_SOURCES = frozenset({"procedural", "openttd-openmsx", "planetblupi-music-midi", "music21"})


def is_rendered(source: str) -> bool:
    """True for a source of songs the corpus renders itself (see the module docstring)."""
    return source in RENDERED_SOURCES or "midi" in source.lower() or source.startswith("proc")


def measure(path: str) -> tuple[float, float, float, float]:
    """``(excerpt PLR, whole-song PLR, crest factor, seconds)`` of one song (dB, dB, dB, s)."""
    audio, sr = read_audio(path)
    return excerpt_plr_db(audio, sr), plr_db(audio, sr), crest_factor_db(audio), audio.shape[1] / sr


def _percentiles(values: list[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if math.isfinite(x)])
    if v.size == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(v, q)), 3) for q in (10, 50, 90)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("-o", "--out", default="models", help="folder to write dynamics.json to")
    ap.add_argument("--all-sources", action="store_true", help="keep rendered (MIDI, procedural) songs")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        everything = load_manifest(args.corpus_dir)
        manifest = json.loads((Path(args.corpus_dir) / "manifest.json").read_text(encoding="utf-8"))
        total, seed = len(everything), manifest.get("seed", "?")
        songs = [s for s in everything if s.split == "train"]
    except PluginBridgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    left_out = sorted({s.source for s in songs if is_rendered(s.source)}) if not args.all_sources else []
    songs = [s for s in songs if s.source not in left_out]
    if not songs:
        print(f"error: {args.corpus_dir}: no train-split songs to measure", file=sys.stderr)
        return 2
    t0 = time.time()
    paths = [s.path for s in songs]
    if args.workers <= 1:
        results = [measure(p) for p in paths]
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(measure, paths, chunksize=4))
    by_source: dict[str, list[float]] = {}
    for s, (plr, _, _, _) in zip(songs, results, strict=True):
        by_source.setdefault(s.source, []).append(plr)
    excerpt = [r[0] for r in results]
    sources = ", ".join(f"{k} ({len(v)})" for k, v in sorted(by_source.items()))
    description = (
        f"train split of a render_scripts/build_corpus.py corpus ({total} songs, seed {seed}): "
        f"{len(songs)} songs from {sources}"
        + (f"; left out (rendered, not mastered): {', '.join(left_out)}" if left_out else "")
    )
    extra = {
        "excerpt_s": EXCERPT_S,
        "peak": "sample peak (not oversampled)",
        "song_plr": _percentiles([r[1] for r in results]),
        "song_crest_factor": _percentiles([r[2] for r in results]),
        "median_by_source": {
            k: {"count": len(v), "p50": round(float(np.median(v)), 3)} for k, v in sorted(by_source.items())
        },
        "written_by": "render_scripts/dynamics_stats.py",
    }
    try:
        stats = DynamicsStats.from_values(excerpt, description, extra)
        out = Path(args.out)
        path = stats.save(out / DYNAMICS_FILE)
    except PluginBridgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    hours = sum(r[3] for r in results) / 3600
    print(
        f"PLR of the loudest {EXCERPT_S:.0f} s over {stats.count} songs ({hours:.1f} h): "
        f"p10 {stats.p10:.2f}, "
        f"p50 {stats.p50:.2f}, p90 {stats.p90:.2f} dB; whole song {extra['song_plr']} "
        f"in {time.time() - t0:.0f} s -> {path}"
    )
    for k, v in extra["median_by_source"].items():
        print(f"  {k}: {v['count']} songs, median PLR {v['p50']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
