"""Build the reference multitrack corpus of the stems balance model from packaged MIDI songs.

    python render_scripts/build_stems_corpus.py -o /work/stems_corpus            # quick plan (~20 min, 2 cores)
    python render_scripts/build_stems_corpus.py -o /work/stems_corpus --plan full

Songs of ``openttd-openmsx`` are split by song into train and validation (seeded); every song of
``planetblupi-music-midi`` is held out as the test package. Each excerpt is rendered per MIDI
channel with fluidsynth (see `plugin_bridge.stems.corpus`). The build is resumable: a folder with
its ``meta.json`` is done and skipped, so re-running after an interruption continues where it
stopped; ``manifest.json`` lists the plan and the split. Same seed, same files.

Plans (soundfonts per excerpt; MuseScore_General_Lite.sf3 takes ~5 s to load per part render, so
the quick plan uses it on the test package only, where it is also a soundfont the model never saw):

- quick: train/val songs: excerpt 0 with TimGM6mb and FluidR3, excerpt 1 with TimGM6mb;
  test songs: excerpt 0 with all three soundfonts, excerpt 1 with TimGM6mb.
- wide: the quick plan, plus excerpt 1 of the train/val songs with FluidR3 (both training
  soundfonts on both excerpts; MuseScore General stays test-only): 22 more training multitracks.
  Its manifest is ``manifest.wide.json`` (the quick plan's ``manifest.json`` is left as it is).
  ``train_stems.py`` reads every train/val folder, so a corpus built with it trains on them too;
  out of fold they did not lower the level error (2.35 against 2.36 dB, two fold splits averaged).
- full: two excerpts of every song with all three soundfonts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import mido
import numpy as np

from plugin_bridge.files import write_atomic
from plugin_bridge.stems.corpus import (
    PACKAGES,
    SOUNDFONTS,
    Excerpt,
    plan_excerpts,
    render_excerpt,
    split_songs,
)

log = logging.getLogger("build_stems_corpus")

#: Soundfonts per excerpt index, by plan and split kind.
PLANS: dict[str, dict[str, dict[int, tuple[str, ...]]]] = {
    "quick": {
        "trainval": {0: ("timgm6mb", "fluidr3"), 1: ("timgm6mb",)},
        "test": {0: ("timgm6mb", "fluidr3", "musescore"), 1: ("timgm6mb",)},
    },
    "wide": {
        "trainval": {0: ("timgm6mb", "fluidr3"), 1: ("timgm6mb", "fluidr3")},
        "test": {0: ("timgm6mb", "fluidr3", "musescore"), 1: ("timgm6mb",)},
    },
    "full": {
        "trainval": {0: tuple(SOUNDFONTS), 1: tuple(SOUNDFONTS)},
        "test": {0: tuple(SOUNDFONTS), 1: tuple(SOUNDFONTS)},
    },
}


def make_plan(plan: str, seed: int, val_share: float) -> list[tuple[Excerpt, str]]:
    """Every ``(excerpt, soundfont)`` job in build order: the cheap soundfont of every song first,
    the training package before the test package."""
    jobs: list[tuple[int, int, Excerpt, str]] = []
    for p_index, (package, (folder, kind)) in enumerate(PACKAGES.items()):
        files = sorted(Path(folder).glob("*.mid"))
        split = split_songs([f.stem for f in files], val_share, seed) if kind == "trainval" else None
        for f in files:
            rng = np.random.default_rng([seed, sum(f.stem.encode())])
            spans = plan_excerpts(mido.MidiFile(f), 2, rng)
            for i, (start, end) in enumerate(spans):
                ex = Excerpt(package, f.stem, i, start, end, split[f.stem] if split else "test", str(f))
                for k, sf in enumerate(PLANS[plan][kind].get(i, ())):
                    jobs.append((p_index, i * 10 + k, ex, sf))
    jobs.sort(key=lambda j: (j[0], j[1]))
    return [(ex, sf) for _, _, ex, sf in jobs]


def main(argv: list[str] | None = None) -> int:
    """Build the corpus; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=Path("/work/stems_corpus"))
    ap.add_argument("--plan", choices=sorted(PLANS), default="quick")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument(
        "--val-share", type=float, default=0.2, help="share of training songs held for validation"
    )
    ap.add_argument("--limit", type=int, default=None, help="stop after this many jobs (for trials)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = make_plan(args.plan, args.seed, args.val_share)
    manifest = {
        "plan": args.plan,
        "seed": args.seed,
        "soundfonts": SOUNDFONTS,
        "packages": {k: v[0] for k, v in PACKAGES.items()},
        "jobs": [
            {"folder": ex.folder_name(sf), "split": ex.split, "start_s": ex.start_s, "end_s": ex.end_s}
            for ex, sf in jobs
        ],
    }
    manifest_name = "manifest.json" if args.plan == "quick" else f"manifest.{args.plan}.json"
    write_atomic(args.out / manifest_name, json.dumps(manifest, indent=1))
    t0 = time.perf_counter()
    done = skipped = 0
    for k, (ex, sf) in enumerate(jobs[: args.limit]):
        folder = args.out / ex.folder_name(sf)
        if (folder / "meta.json").is_file() or (folder / "SKIPPED").is_file():
            continue
        t = time.perf_counter()
        meta = render_excerpt(ex, sf, args.out)
        if meta is None:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / "SKIPPED", "fewer than two parts sound in this excerpt\n")
            skipped += 1
            log.info("[%d/%d] %s: skipped (fewer than two parts sound)", k + 1, len(jobs), folder.name)
            continue
        done += 1
        log.info(
            "[%d/%d] %s (%s): %d stems in %.1f s, %.0f s so far",
            k + 1,
            len(jobs),
            folder.name,
            ex.split,
            len(meta["stems"]),
            time.perf_counter() - t,
            time.perf_counter() - t0,
        )
    log.info("rendered %d multitracks, skipped %d, in %.0f s", done, skipped, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
