"""What limits the stems model's level error: out-of-fold experiments on the training songs only.

    python render_scripts/stems_level_study.py spread                      # soundfont spread, no training
    python render_scripts/stems_level_study.py oof --steps 1500            # out of fold, by soundfont
    python render_scripts/stems_level_study.py oof --train-sf timgm6mb     # FluidR3 never heard

Reads the OpenMSX (train/val) multitracks of the stems corpus and their cached features
(``CORPUS/_features``, written by ``train_stems.py``); the Planet Blupi test package is never read.

- ``spread``: the same excerpt rendered with two soundfonts: how far the same MIDI part's level
  relative to the others moves between soundfonts (a floor no soundfont-blind model can pass).
- ``oof``: `train_stems.cross_validate` (5 folds by song) with the given settings; prints the
  out-of-fold level error on the mis-mixed copies per soundfont, the model's raw and shrunk and
  equal loudness. ``--train-sf`` trains every member on one soundfont's multitracks only, while the
  scores still cover both: the other soundfont is then one the model never heard, as MuseScore
  General is on the held-out bench. ``--quick-only`` keeps the 84 multitracks of the quick plan.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_stems as ts  # noqa: E402

SOUNDFONTS = ("timgm6mb", "fluidr3")


def spread(corpus: Path) -> dict:
    """Per excerpt rendered with both training soundfonts: mean |relative level (soundfont A) -
    relative level (soundfont B)| of the parts they share (LU), overall and per role."""
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for meta_path in sorted(corpus.glob("openmsx__*/meta.json")):
        _, song, sf, ex = meta_path.parent.name.split("__")
        groups.setdefault((song, ex), {})[sf] = json.loads(meta_path.read_text())
    per_excerpt, by_role = [], {}
    for sfs in groups.values():
        if not all(sf in sfs for sf in SOUNDFONTS):
            continue
        common = sorted(set(sfs[SOUNDFONTS[0]]["stems"]) & set(sfs[SOUNDFONTS[1]]["stems"]))
        if len(common) < 2:
            continue
        lv = np.array([[sfs[sf]["stems"][c]["loudness_lufs"] for c in common] for sf in SOUNDFONTS])
        rel = lv - lv.mean(axis=1, keepdims=True)
        diff = np.abs(rel[0] - rel[1])
        per_excerpt.append(float(diff.mean()))
        for c, d in zip(common, diff, strict=True):
            by_role.setdefault(sfs[SOUNDFONTS[0]]["stems"][c]["role"], []).append(float(d))
    return {
        "excerpts": len(per_excerpt),
        "mean_abs_difference_lu": float(np.mean(per_excerpt)),
        "by_role": {r: round(float(np.mean(v)), 2) for r, v in sorted(by_role.items())},
    }


def load_songs(corpus: Path, quick_only: bool) -> list[dict]:
    """The cached features of the OpenMSX multitracks (``train_stems.extract`` items plus
    ``soundfont``); only those of the quick plan's ``manifest.json`` with ``quick_only``."""
    quick = {j["folder"] for j in json.loads((corpus / "manifest.json").read_text())["jobs"]}
    out = []
    for f in sorted((corpus / "_features").glob("openmsx__*.npz")):
        if quick_only and f.stem not in quick:
            continue
        z = np.load(f)
        item = {k: (str(z[k]) if z[k].ndim == 0 else z[k]) for k in z.files}
        item["soundfont"] = f.stem.split("__")[2]
        out.append(item)
    return out


def out_of_fold(songs: list[dict], args: argparse.Namespace) -> dict:
    """Cross-validate with ``args`` (``args.train_sf``: members see only that soundfont) and score
    the out-of-fold predictions per soundfont at the shrink fitted out of fold."""
    if args.train_sf:
        inner = ts.train_one

        def train_one_sf(tr: list[dict], va: list[dict], a: argparse.Namespace, seed: int) -> tuple:
            return inner([s for s in tr if s["soundfont"] == args.train_sf], va, a, seed)

        ts.train_one = train_one_sf
    members, shrink, metrics, fold_of, _ = ts.cross_validate(songs, args)
    preds: list = [None] * len(songs)
    for k, model in enumerate(members):
        idx = [i for i, s in enumerate(songs) if fold_of[s["song"]] == k]
        for i, p in zip(idx, ts.predict_songs(model, [songs[i] for i in idx]), strict=True):
            preds[i] = p
    by_sf = {}
    for sf in SOUNDFONTS:
        idx = [i for i, s in enumerate(songs) if s["soundfont"] == sf]
        sub, sub_p = [songs[i] for i in idx], [preds[i] for i in idx]
        by_sf[sf] = {
            "model_shrunk": round(ts.level_metrics(sub, sub_p, shrink)["level_error_mis_mixed_db"], 3),
            "model_raw": round(ts.level_metrics(sub, sub_p, 1.0)["level_error_mis_mixed_db"], 3),
            "equal_loudness": round(ts.level_metrics(sub, sub_p, 0.0)["level_error_mis_mixed_db"], 3),
        }
    return {
        "multitracks": len(songs),
        "shrink": shrink,
        "all_shrunk": round(metrics["out_of_fold_shrunk"]["level_error_mis_mixed_db"], 3),
        "all_raw": round(metrics["out_of_fold"]["level_error_mis_mixed_db"], 3),
        "by_soundfont": by_sf,
    }


def main(argv: list[str] | None = None) -> int:
    """Run one study; prints JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=("spread", "oof"))
    ap.add_argument("--corpus", type=Path, default=Path("/work/stems_corpus"))
    ap.add_argument("--train-sf", choices=SOUNDFONTS, default=None)
    ap.add_argument("--quick-only", action="store_true")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=ts.HIDDEN)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--select", choices=("last", "best"), default="last")
    ap.add_argument("--seed", type=int, default=14, help="also draws the folds")
    args = ap.parse_args(argv)
    if args.study == "spread":
        result = spread(args.corpus)
    else:
        result = out_of_fold(load_songs(args.corpus, args.quick_only), args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
