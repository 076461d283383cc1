#!/usr/bin/env python3
"""Rebuild the shipped models from a corpus: datasets, training, ONNX export, ensemble, test table, cards.

Usage::

    python render_scripts/build_corpus.py /tmp/corpus          # songs + manifest (split by song)
    python render_scripts/train_models.py /tmp/corpus -o models [--n-train 16000] [--seed 0]
        [--protocol natural|house]

Writes ``OUT/{cnn,cnn_large,ast}.onnx`` with cards ``NAME.json`` / ``NAME.md``, ``ensemble.json`` /
``ensemble.md`` and ``results.json`` (the held-out test-split table). Needs the ``torch`` extra and
``onnx``. ``--tiny`` trains a seconds-long configuration (the test suite's smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # numpy/scipy per worker: threads only contend here
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from plugin_bridge import __version__
from plugin_bridge.audio_io import read_audio
from plugin_bridge.chain import load_chain
from plugin_bridge.ml.corpus import (
    HOUSE_FILE,
    LABELLED,
    ROBUST_SHARE,
    RULE_VALUES,
    THETA_RANGES,
    estimate_house,
    load_house,
    load_manifest,
    make_dataset,
)
from plugin_bridge.ml.evaluate import evaluate_examples, make_examples
from plugin_bridge.ml.export import check_export, export_onnx
from plugin_bridge.ml.features import N_GLOBAL, song_features, to_feature_rate
from plugin_bridge.ml.inference import MODEL_NAMES, load_model
from plugin_bridge.ml.train import TrainConfig, fit_ensemble_weights, train_model

CONFIGS = {
    "cnn": TrainConfig("cnn", epochs=14, lr=2e-3, max_seconds=720),
    "cnn_large": TrainConfig("cnn_large", epochs=9, lr=1.5e-3, max_seconds=900),
    "ast": TrainConfig("ast", epochs=12, lr=1e-3, max_seconds=780),
}
TINY = {
    "cnn": TrainConfig("cnn", epochs=1, batch_size=16, kwargs={"width": 4}),
    "cnn_large": TrainConfig("cnn_large", epochs=1, batch_size=16, kwargs={"width": 4}),
    "ast": TrainConfig("ast", epochs=1, batch_size=16, kwargs={"dim": 16, "depth": 1, "heads": 2}),
}
PROTOCOLS = {
    "natural": (
        "Reference clips (3 s) of the training songs as they are (level set to -20 dBFS mid RMS), mis-mixed by the "
        f"exact inverse of the chain for a random corrective theta over {len(LABELLED)} labelled parameters (label = "
        f"theta); {int(100 * ROBUST_SHARE)} % of examples instead degraded by random shelf/peak EQs (other corners and "
        "Qs), width and level, labelled by the chain values that bring them back to their own reference (least-squares "
        "EQ fit to the reference's long-term spectrum, exact width and level). The model cannot see a song's own "
        "balance, so it learns the correction that is best on average over songs. Other parameters by rule. See "
        "models/README.md."
    ),
    "house": (
        "Reference clips (3 s) balanced to the house balance (house_balance.json: the training songs' median "
        "long-term spectrum, side/mid ratio, mid RMS -20 dBFS) with the chain's own EQ, then mis-mixed by the exact "
        f"inverse of the chain for a random corrective theta over {len(LABELLED)} labelled parameters (label = theta); "
        f"{int(100 * ROBUST_SHARE)} % of examples instead degraded by random shelf/peak EQs (other corners and Qs), "
        "width and level, labelled by the chain values that bring them back to the house balance. Other parameters "
        "by rule. See models/README.md."
    ),
}


def _inference_ms(model, audio_seconds: float = 180.0, repeats: int = 20) -> tuple[float, float]:
    """(features ms, predict ms) per song: features of 4 clips of a 3-min song, then the model."""
    rng = np.random.default_rng(0)
    song = (rng.standard_normal((2, int(audio_seconds * 44100))) * 0.05).astype(np.float32)
    t = time.perf_counter()
    mel, glob = song_features(song, 44100)
    feat_ms = 1000 * (time.perf_counter() - t)
    model.predict(mel, glob)
    t = time.perf_counter()
    for _ in range(repeats):
        model.predict(mel, glob)
    return feat_ms, 1000 * (time.perf_counter() - t) / repeats


def _md_card(card: dict) -> str:
    t = card["test"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- **What**: {card['description']}",
        f"- **Parameter space**: `{card['space_version']}` (fingerprint `{card['space_fingerprint']}`); predicts "
        f"{', '.join(f'`{p}`' for p in card['labelled'])}; the other parameters by rule "
        f"({', '.join(f'`{k}`={v:g}' for k, v in card['rule_values'].items())}).",
        f"- **Protocol**: {card['protocol']}",
        f"- **Data**: {card['data']['summary']}",
        f"- **Size**: {card.get('size_bytes', 0) / 1e6:.2f} MB ONNX"
        + (f", {card['n_params']} parameters" if card.get("n_params") else ""),
        f"- **Inference** (onnxruntime, 1 thread, 4 clips of a song after features): {card['inference_ms']:.1f} ms",
        f"- **Training**: {card.get('training', {}).get('summary', '-')}",
        "",
        f"## Held-out test split ({t['n']} examples from {card['data']['songs']['test']} test songs, "
        f"{100 * t['exact_share']:.0f} % exact labels)",
        "",
        f"mean MAE (normalized) {t['mae']:.4f} (changing nothing: {t['input_mae']:.4f}); render closer to the "
        f"reference than the input on {100 * t['closer']:.0f} % of examples by MR-STFT, "
        f"{100 * t['closer_balance']:.0f} % by 1/3-octave balance, {100 * t['closer_width']:.0f} % by width; "
        f"MR-STFT {t['mrstft']:.3f} (input {t['input_mrstft']:.3f}); balance {t['balance_db']:.2f} dB "
        f"(input {t['input_balance_db']:.2f} dB); width {t['width_db']:.2f} dB (input {t['input_width_db']:.2f} dB).",
        "",
        "| parameter | MAE (normalized) | MAE (real units) |",
        "|---|---|---|",
    ]
    for p in card["labelled"]:
        lines.append(f"| `{p}` | {t['mae_per_param'][p]:.4f} | {t['mae_real'][p]:.3f} |")
    lines += ["", "Rule parameters (not predicted) are reported separately in models/README.md.", ""]
    return "\n".join(lines)


def train_all(args, by_split, counts, sources, house, target, out, space, names):
    """Datasets, training, ONNX export and the ensemble weights; writes the cards' training part.
    Returns ``(histories, dataset seconds)``."""
    import torch

    torch.set_num_threads(2)
    t = time.perf_counter()
    cache = Path(args.corpus_dir) / f"dataset_{args.protocol}_s{args.seed}_n{args.n_train}_{args.n_val}.npz"
    if cache.is_file() and not args.tiny:
        z = np.load(cache)
        train = {k[6:]: z[k] for k in z.files if k.startswith("train_")}
        val = {k[4:]: z[k] for k in z.files if k.startswith("val_")}
    else:
        train = make_dataset(by_split["train"], args.n_train, target, args.seed, workers=args.workers)
        val = make_dataset(by_split["val"], args.n_val, target, args.seed + 1, workers=args.workers)
        if not args.tiny:
            np.savez(
                cache,
                **{f"train_{k}": v for k, v in train.items()},
                **{f"val_{k}": v for k, v in val.items()},
            )
    data_s = time.perf_counter() - t
    print(f"datasets: train {len(train['y'])}, val {len(val['y'])} examples in {data_s:.0f} s", flush=True)
    configs = TINY if args.tiny else CONFIGS
    base_card = {
        "space_version": space.version,
        "space_fingerprint": space.fingerprint,
        "labelled": list(LABELLED),
        "rule_values": RULE_VALUES,
        "theta_ranges": {k: list(v) for k, v in THETA_RANGES.items()},
        "protocol": PROTOCOLS[args.protocol],
        "protocol_id": args.protocol,
        "package_version": __version__,
        "inputs": {"mel": [None, 2, 64, 64], "glob": [None, N_GLOBAL]},
        "house_balance": HOUSE_FILE,
        "data": {
            "songs": counts,
            "sources": sources,
            "n_train": int(len(train["y"])),
            "n_val": int(len(val["y"])),
            "summary": f"{sum(counts.values())} songs ({', '.join(sources)}), split by song "
            f"{counts['train']}/{counts['val']}/{counts['test']} (train/val/test); {len(train['y'])} training and "
            f"{len(val['y'])} validation examples, seed {args.seed}",
        },
    }
    histories = {}
    for name in names:
        cfg = configs[name]
        cfg.seed = args.seed
        model, hist = train_model(cfg, train, val)
        histories[name] = (cfg, hist)
        meta = {
            "name": name,
            "space_version": space.version,
            "space_fingerprint": space.fingerprint,
            "labelled": list(LABELLED),
        }
        path = export_onnx(model, out / f"{name}.onnx", meta)
        diff = check_export(model, path)
        print(
            f"{name}: {hist['n_params']} params, best val MAE {hist['best_val_mae']:.4f}, "
            f"{hist['seconds']:.0f} s; ONNX max |torch - ort| {diff:.2e}",
            flush=True,
        )
        card = dict(
            base_card,
            name=name,
            arch=name,
            description=f"{name} ({type(model).__name__}) mix-parameter model",
        )
        card.update(
            n_params=hist["n_params"],
            onnx_check_max_abs_diff=diff,
            training={
                "config": cfg.to_dict(),
                "history": hist,
                "torch": torch.__version__,
                "machine": f"{platform.machine()}, 2 CPU threads",
                "summary": f"{hist['epochs_run']} epochs (best {hist.get('best_epoch')}), {hist['seconds'] / 60:.1f} min "
                f"on 2 CPU threads, AdamW lr {cfg.lr:g}, batch {cfg.batch_size}, L1 loss",
            },
        )
        (out / f"{name}.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
    # ensemble weights on the validation split, with the ONNX models (what ships)
    members = {n: load_model(n, out, space) for n in names}
    preds = {n: m.predict(val["mel"].astype(np.float32), val["glob"]) for n, m in members.items()}
    weights = fit_ensemble_weights(preds, val["y"])
    ens_card = dict(
        base_card,
        name="ensemble",
        members=names,
        weights=weights.tolist(),
        description="per-parameter weighted average of "
        + ", ".join(names)
        + " (weights fitted on the validation split by grid search over the simplex, step 0.05)",
    )
    ens_card["val_mae"] = {n: float(np.mean(np.abs(p - val["y"]))) for n, p in preds.items()}
    ens_card["val_mae"]["ensemble"] = float(
        np.mean(np.abs(np.einsum("mp,mkp->kp", weights, np.stack(list(preds.values()))) - val["y"]))
    )
    (out / "ensemble.json").write_text(json.dumps(ens_card, indent=1), encoding="utf-8")
    print("validation MAE:", {k: round(v, 4) for k, v in ens_card["val_mae"].items()}, flush=True)
    return histories, data_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("-o", "--out", default="models")
    ap.add_argument("--n-train", type=int, default=16000)
    ap.add_argument("--n-val", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="seconds-long smoke configuration")
    ap.add_argument("--models", default=",".join(MODEL_NAMES))
    ap.add_argument(
        "--eval-only", action="store_true", help="re-run the test evaluation and cards of the models in -o"
    )
    ap.add_argument(
        "--protocol",
        default="natural",
        choices=sorted(PROTOCOLS),
        help="natural: references as they are (shipped); house: references balanced to the house curve",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    songs = load_manifest(args.corpus_dir)
    by_split = {k: [s for s in songs if s.split == k] for k in ("train", "val", "test")}
    if not by_split["val"]:
        by_split["val"] = by_split["train"][:1]
    if not by_split["test"]:
        by_split["test"] = by_split["val"]
    counts = {k: len(v) for k, v in by_split.items()}
    sources = sorted({s.source for s in songs})
    print(f"corpus: {counts} songs from {', '.join(sources)}", flush=True)
    t = time.perf_counter()
    if args.eval_only:
        house = load_house(out)
    else:
        train_audio = [to_feature_rate(*read_audio(s.path)) for s in by_split["train"]]
        house = estimate_house(train_audio, clips_per_song=4 if args.tiny else 12, seed=args.seed)
        del train_audio
        house.save(out / HOUSE_FILE)
    print(
        f"house balance: side/mid {house.side_mid_db:.1f} dB ({house.source}) in {time.perf_counter() - t:.0f} s"
    )
    space = load_chain("default").space
    names = [n for n in args.models.split(",") if n]
    target = house if args.protocol == "house" else None  # what the references are balanced to
    if args.eval_only:  # re-evaluate trained models: timings of the training run are kept
        prev = out / "results.json"
        data_s = (
            json.loads(prev.read_text(encoding="utf-8")).get("dataset_seconds") if prev.is_file() else None
        )
        cards = {n: json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in names}
        train_seconds = {n: c["training"]["history"]["seconds"] for n, c in cards.items()}
    else:
        histories, data_s = train_all(args, by_split, counts, sources, house, target, out, space, names)
        train_seconds = {n: h["seconds"] for n, (_, h) in histories.items()}
    # held-out test split
    models = {n: load_model(n, out, space) for n in [*names, "ensemble"]}
    test_paths = [s.path for s in by_split["test"]]
    examples = make_examples(test_paths, args.n_test, target, args.seed + 2)
    res = evaluate_examples(examples, models, house)
    exact = evaluate_examples([e for e in examples if e.exact], models, house)
    robust = (
        evaluate_examples([e for e in examples if not e.exact], models, house)
        if not all(e.exact for e in examples)
        else None
    )
    # the other protocol on the same test songs, for comparison
    other = evaluate_examples(
        make_examples(test_paths, args.n_test, house if target is None else None, args.seed + 3),
        models,
        house,
    )
    print(res.table(), flush=True)
    print(res.per_param_table(), flush=True)
    timing_args = (10.0, 2) if args.tiny else (180.0, 20)
    timings = {n: _inference_ms(m, *timing_args) for n, m in models.items()}
    results = {
        "test": res.to_dict(),
        "test_exact": exact.to_dict(),
        "test_robust": robust.to_dict() if robust else None,
        "table": res.table(),
        "per_param_table": res.per_param_table(),
        "table_exact": exact.table(),
        "table_robust": robust.table() if robust else None,
        "protocol": args.protocol,
        "test_other_protocol": other.to_dict(),
        "table_other_protocol": other.table(),
        "per_param_table_other_protocol": other.per_param_table(),
        "inference_ms": {n: {"features_ms": f, "predict_ms": p} for n, (f, p) in timings.items()},
        "dataset_seconds": data_s,
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - t_all,
    }
    for n in [*names, "ensemble"]:
        path = out / f"{n}.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        r = res.rows[n]
        card["test"] = {
            "n": res.n,
            "exact_share": res.exact_share,
            "mae": r["mae"],
            "mae_per_param": r["mae_per_param"],
            "mae_real": {
                p: r["mae_per_param"][p] * (space.spec(p).max - space.spec(p).min) for p in LABELLED
            },
            "closer": r["closer"],
            "closer_balance": r["closer_balance"],
            "closer_width": r["closer_width"],
            "input_mae": res.rows["input"]["mae"],
            "input_width_db": res.rows["input"]["width_db"],
            "mrstft": r["mrstft"],
            "balance_db": r["balance_db"],
            "width_db": r["width_db"],
            "input_mrstft": res.rows["input"]["mrstft"],
            "input_balance_db": res.rows["input"]["balance_db"],
        }
        card["inference_ms"] = timings[n][1]
        card["size_bytes"] = (
            sum((out / f"{m}.onnx").stat().st_size for m in names)
            if n == "ensemble"
            else (out / f"{n}.onnx").stat().st_size
        )
        if n == "ensemble":
            card["training"] = {"summary": "no training of its own: weights fitted on the validation split"}
        path.write_text(json.dumps(card, indent=1), encoding="utf-8")
        (out / f"{n}.md").write_text(_md_card(card), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"done in {(time.perf_counter() - t_all) / 60:.1f} min -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
