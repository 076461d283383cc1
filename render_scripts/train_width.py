#!/usr/bin/env python3
"""Train the stereo-only width estimate (`plugin_bridge.ml.width`), export it and fit the ensemble's width rule.

Usage (after ``train_models.py`` has built the clip banks and the ensemble)::

    python render_scripts/train_width.py /work/corpus -o models [--rounds 10] [--epochs 5] [--seed 0]

Writes ``OUT/width.onnx`` with its card ``width.json`` / ``width.md`` (the dead zone and the
disagreement multiple fitted on the validation split in ``width_rule``); with ``--enable`` it also
adds ``width_rule`` to ``OUT/ensemble.json``, which switches the rule on for ``mix`` (without it,
any ``width_rule`` there is removed: the ensemble keeps its own width threshold). Prints the validation and test tables (width error per tier) of doing nothing,
the ensemble's own width rule, the width estimate alone and the combined rule. ``--tiny`` is the
test suite's seconds-long configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from train_models import _banks  # noqa: E402

from plugin_bridge import __version__  # noqa: E402
from plugin_bridge.chain import default_space  # noqa: E402
from plugin_bridge.files import write_atomic  # noqa: E402
from plugin_bridge.ml.degrade import TIERS  # noqa: E402
from plugin_bridge.ml.features import features_from_bands, side_mid_ratio_db  # noqa: E402
from plugin_bridge.ml.inference import confident_moves, load_model  # noqa: E402
from plugin_bridge.ml.width import (  # noqa: E402
    N_STEREO,
    export_width_onnx,
    fit_width_rule,
    predict_width,
    train_width_net,
    width_error_db,
    width_examples,
)
from plugin_bridge.ml.width_rule import width_rule_move  # noqa: E402


def _examples(data: dict) -> dict:
    """Width examples of a fixed `train.damaged_set` (validation or test)."""
    return {
        "glob": features_from_bands(data["damaged"])[1],
        "sm_dmg": np.asarray(side_mid_ratio_db(data["damaged"])),
        "sm_ref": np.asarray(side_mid_ratio_db(data["ref"])),
        "tier": data["tier"],
    }


def _rows(ex: dict, ens_out: np.ndarray, shrink: np.ndarray, est: np.ndarray, rule: dict) -> dict:
    """Width moves (dB) of each row of the tables."""
    p = ens_out.shape[1] // 2
    shipped = confident_moves(ens_out[:, :p], ens_out[:, p:], shrink)[1][:, -1]
    rows = {
        "do nothing": np.zeros(len(est)),
        "ensemble (its own threshold)": shipped,
        "width estimate alone": est,
    }
    if rule:
        rows["width rule"] = width_rule_move(
            ens_out[:, p - 1], est, rule["dead_zone_db"], rule["disagreement"]
        )[2]
    return rows


def _table(ex: dict, rows: dict) -> dict:
    """Per row and tier: mean width error (dB), share improved, share worse by > 0.5 dB, worst increase."""
    base = width_error_db(rows["do nothing"], ex["sm_dmg"], ex["sm_ref"])
    out: dict = {}
    for row, mv in rows.items():
        err = width_error_db(mv, ex["sm_dmg"], ex["sm_ref"])
        for t in TIERS:
            s = ex["tier"] == t
            if not s.any():
                continue
            d = err[s] - base[s]
            out.setdefault(row, {})[t] = {
                "width_db": float(err[s].mean()),
                "improved": float(np.mean(d < 0)),
                "worse": float(np.mean(d > 0.5)),
                "worst_db": float(d.max()),
            }
    return out


def _md(table: dict, title: str) -> str:
    lines = [f"**{title}** (width error, dB: |side/mid - the original's|)", ""]
    lines += [
        "| tier | row | width dB | improved | worse > 0.5 dB | worst (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for t in TIERS:
        for row, v in table.items():
            if t not in v:
                continue
            r = v[t]
            lines.append(
                f"| {t} | {row} | {r['width_db']:.2f} | {r['improved'] * 100:.0f} % | "
                f"{r['worse'] * 100:.0f} % | {r['worst_db']:+.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("-o", "--out", default="models")
    ap.add_argument("--clips", type=int, default=40, help="reference clips per training song (the bank's)")
    ap.add_argument("--rounds", type=int, default=10, help="fresh damages per training clip")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="seconds-long smoke configuration")
    ap.add_argument("--enable", action="store_true", help="switch the width rule on in ensemble.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    t0 = time.perf_counter()
    train_b, val, test, info = _banks(args)
    rounds, epochs = (1, 1) if args.tiny else (args.rounds, args.epochs)
    tr = width_examples(train_b["frames"], np.random.default_rng(args.seed + 7), rounds)
    ex_val, ex_test = _examples(val), _examples(test)
    print(f"width: {len(tr['glob'])} training examples in {time.perf_counter() - t0:.0f} s", flush=True)
    model, hist = train_width_net(tr, ex_val, epochs=epochs, seed=args.seed, hidden=8 if args.tiny else 64)
    space = default_space()
    meta = {"name": "width", "space_version": space.version, "space_fingerprint": space.fingerprint}
    diff = export_width_onnx(model, out / "width.onnx", meta)
    ens = load_model("ensemble", out, space)
    ens_card = json.loads((out / "ensemble.json").read_text(encoding="utf-8"))
    ens_card.pop("width_rule", None)  # fit against the ensemble's own rule, whatever was there before
    ens_val, ens_test = (ens.predict(*features_from_bands(d["damaged"])) for d in (val, test))
    p = ens_val.shape[1] // 2
    shrink = np.asarray(ens_card["shrink"], dtype=np.float64)
    est_val, est_test = predict_width(model, ex_val["glob"]), predict_width(model, ex_test["glob"])
    base_val = confident_moves(ens_val[:, :p], ens_val[:, p:], shrink)[1][:, -1]
    rule, tried = fit_width_rule(
        ens_val[:, p - 1], est_val, base_val, ex_val["sm_dmg"], ex_val["sm_ref"], ex_val["tier"]
    )
    tables = {
        "validation": _table(ex_val, _rows(ex_val, ens_val, shrink, est_val, rule)),
        "test": _table(ex_test, _rows(ex_test, ens_test, shrink, est_test, rule)),
    }
    if rule and args.enable:
        ens_card["width_rule"] = {"model": "width", **rule}
    write_atomic(out / "ensemble.json", json.dumps(ens_card, indent=1))
    card = {
        "name": "width",
        "space_version": space.version,
        "space_fingerprint": space.fingerprint,
        "moves": ["width.width"],
        "move_units": "dB (20 log10 width)",
        "package_version": __version__,
        "inputs": {"glob": [None, len(ex_val["glob"][0])]},
        "stereo_features": N_STEREO,
        "description": "stereo-only width estimate (plugin_bridge.ml.width): per-band side-mid and coherence "
        "-> width move; used only through the ensemble's width rule",
        "data": info,
        "training": {
            "rounds": rounds,
            "n_examples": int(len(tr["glob"])),
            "seed": args.seed,
            "history": hist,
            "torch": torch.__version__,
        },
        "onnx_check_max_abs_diff": diff,
        "width_rule": rule,
        "width_rule_enabled": bool(rule and args.enable),
        "width_rule_search": tried,
        "tables": tables,
        "size_bytes": (out / "width.onnx").stat().st_size,
    }
    write_atomic(out / "width.json", json.dumps(card, indent=1))
    md = [
        "# width (stereo-only width estimate)",
        "",
        card["description"] + ".",
        "",
        f"Training: {len(tr['glob'])} damaged clips ({rounds} fresh damages of each of "
        f"{info['n_train_clips']} training clips), {hist['n_params']} parameters, best validation width "
        f"error {hist['best_val_db']:.2f} dB, {hist['seconds'] / 60:.1f} min on one CPU thread; "
        f"ONNX max |torch - ort| {diff:.1e}.",
        "",
        f"Rule fitted on the validation split: dead zone {rule.get('dead_zone_db', float('nan')):g} dB, "
        f"disagreement multiple {rule.get('disagreement', float('nan')):g}; "
        + (
            "switched on in ensemble.json"
            if card["width_rule_enabled"]
            else "**not switched on** (ensemble.json "
            "keeps its own width threshold; `--enable` switches it on)"
        )
        + " (models/README.md, 'A stereo-only width estimate').",
        "",
        _md(tables["validation"], "Validation split"),
        "",
        _md(tables["test"], "Test split"),
        "",
    ]
    write_atomic(out / "width.md", "\n".join(md))
    print("\n".join(md[6:]), flush=True)
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
