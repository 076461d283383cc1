#!/usr/bin/env python3
"""Rebuild the shipped models from a corpus: clip banks, training, ONNX export, confidence, ensemble, cards.

Usage::

    python render_scripts/build_corpus.py /work/corpus            # songs + manifest (split by song)
    python render_scripts/train_models.py /work/corpus -o models [--models cnn,ast] [--seed 0]
    python render_scripts/train_models.py /work/corpus -o models --finish   # ensemble, shrink, tables, cards

Writes ``OUT/{cnn,cnn_large,ast}.onnx`` with cards ``NAME.json`` / ``NAME.md``, ``ensemble.json`` /
``ensemble.md`` and ``results.json`` (the validation and test-split tables). Training one model per
process (``--models cnn``) lets two run side by side; ``--finish`` then fits the ensemble weights,
each model's confidence threshold (``shrink``) and writes the tables and cards. If
``bench/results/blind.json`` exists (``bench/bench_blind.py``), its figures go into the cards too.
Needs the ``torch`` extra and ``onnx``. ``--tiny`` trains a seconds-long configuration (the test
suite's smoke test).
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

from plugin_bridge import __version__  # noqa: E402
from plugin_bridge.chain import default_space  # noqa: E402
from plugin_bridge.files import write_atomic  # noqa: E402
from plugin_bridge.ml.corpus import TIER_SHARES, clip_bank, fixed_damages, load_manifest  # noqa: E402
from plugin_bridge.ml.degrade import TIERS  # noqa: E402
from plugin_bridge.ml.eqresponse import eq_names  # noqa: E402
from plugin_bridge.ml.export import check_export, export_onnx  # noqa: E402
from plugin_bridge.ml.features import N_BANDS, N_FRAMES, N_GLOBAL, features_from_bands, song_features  # noqa: E402
from plugin_bridge.ml.inference import MODEL_NAMES, confident_moves, load_model  # noqa: E402
from plugin_bridge.ml.train import (  # noqa: E402
    TrainConfig,
    audio_losses,
    damaged_set,
    fit_ensemble_weights,
    train_model,
)

CONFIGS = {
    "cnn": TrainConfig("cnn", steps=4000, batch_size=128, lr=2e-3, max_seconds=840, eval_every=250),
    "cnn_large": TrainConfig(
        "cnn_large", steps=3000, batch_size=128, lr=1.5e-3, max_seconds=840, eval_every=250
    ),
    "ast": TrainConfig("ast", steps=4000, batch_size=128, lr=1e-3, max_seconds=840, eval_every=250),
}
TINY = {
    "cnn": TrainConfig("cnn", steps=4, batch_size=8, eval_every=2, pool_size=64, kwargs={"width": 4}),
    "cnn_large": TrainConfig(
        "cnn_large", steps=4, batch_size=8, eval_every=2, pool_size=64, kwargs={"width": 4}
    ),
    "ast": TrainConfig(
        "ast", steps=4, batch_size=8, eval_every=2, pool_size=64, kwargs={"dim": 16, "depth": 1, "heads": 2}
    ),
}
#: Confidence thresholds tried (multiples of the predicted uncertainty a move is cut by).
SHRINK_GRID = tuple(round(0.25 * i, 2) for i in range(13))
#: On validation, no matters-of-taste clip may get worse by more than this (dB, band balance).
TASTE_MARGIN_DB = 0.3
RULE_VALUES = {
    "reverb.room_size": 0.5,
    "reverb.wet_level": 0.0,
    "delay.delay_ms": 250.0,
    "delay.feedback": 0.3,
    "delay.mix": 0.0,
    "output.gain_db": 0.0,
}
PROTOCOL = (
    "Reference clips (6 s) of the training songs as they are, analysed into sixth-octave band frames; every step "
    "damages each with a fresh draw from the tiers clear / middle / taste / none "
    f"({', '.join(f'{k} {int(100 * v)} %' for k, v in TIER_SHARES.items())}; foreign shelves, peaks and tilts at "
    "random corners and Qs, width and level) in the band domain, and the loss is the balance (sixth-octave shape, "
    "dB) and width (side/mid, dB) error of the damaged clip corrected through an exact model of the chain's EQ and "
    "width, against the reference. No parameter labels; a Laplace likelihood of the least-squares chain setting "
    "trains the uncertainty. See models/README.md."
)


def _bank(corpus: Path, songs, clips: int, seed: int, workers: int, tag: str, tiny: bool) -> dict:
    cache = corpus / f"bank_{tag}_c{clips}_s{seed}.npz"
    if cache.is_file() and not tiny:
        z = np.load(cache)
        return {k: z[k] for k in z.files}
    t = time.perf_counter()
    bank = clip_bank(songs, clips, seed, workers)
    print(
        f"bank {tag}: {len(bank['frames'])} clips of {len(songs)} songs in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    if not tiny:
        np.savez(cache, **bank)
    return bank


def _banks(args) -> tuple[dict, dict, dict, dict]:
    corpus = Path(args.corpus_dir)
    songs = load_manifest(corpus)
    by = {k: [s for s in songs if s.split == k] for k in ("train", "val", "test")}
    if not by["val"]:
        by["val"] = by["train"][:1]
    if not by["test"]:
        by["test"] = by["val"]
    counts = {k: len(v) for k, v in by.items()}
    sources = sorted({s.source for s in songs})
    print(f"corpus: {counts} songs from {', '.join(sources)}", flush=True)
    tiny = args.tiny
    train = _bank(corpus, by["train"], 2 if tiny else args.clips, args.seed, args.workers, "train", tiny)
    val_b = _bank(corpus, by["val"], 2 if tiny else 12, args.seed + 1, args.workers, "val", tiny)
    test_b = _bank(corpus, by["test"], 2 if tiny else 12, args.seed + 2, args.workers, "test", tiny)
    val = damaged_set(val_b["frames"], fixed_damages(len(val_b["frames"]), args.seed + 1))
    test = damaged_set(test_b["frames"], fixed_damages(len(test_b["frames"]), args.seed + 2))
    info = {"songs": counts, "sources": sources, "n_train_clips": int(len(train["frames"]))}
    return train, val, test, info


def _base_card(space, info: dict, args) -> dict:
    return {
        "space_version": space.version,
        "space_fingerprint": space.fingerprint,
        "moves": [*eq_names(), "width.width"],
        "move_units": "dB (EQ gains; the width as 20 log10 width)",
        "rule_values": RULE_VALUES,
        "rules": {
            "input.gain_db": "measured: brings the song to -18 LUFS (plugin_bridge.ml.assistant)",
            "comp.*": "plugin_bridge.ml.dynamics.compressor_rule (corpus PLR percentiles, models/dynamics.json)",
        },
        "protocol": PROTOCOL,
        "package_version": __version__,
        "inputs": {"patch": [None, 2, N_BANDS, N_FRAMES], "glob": [None, N_GLOBAL]},
        "data": {
            **info,
            "summary": f"{sum(info['songs'].values())} songs ({', '.join(info['sources'])}), split by song "
            f"{info['songs']['train']}/{info['songs']['val']}/{info['songs']['test']} (train/val/test); "
            f"{info['n_train_clips']} training clips, each damaged afresh every step; seed {args.seed}",
        },
    }


def train_one(name: str, args, train, val, info, out: Path, space) -> None:
    """Train, export and write the training part of ``name``'s card."""
    import torch

    torch.set_num_threads(args.threads)
    cfg = (TINY if args.tiny else CONFIGS)[name]
    cfg.seed = args.seed
    if args.minutes and not args.tiny:
        cfg.max_seconds = 60.0 * args.minutes
        cfg.steps = max(cfg.steps, int(cfg.steps * args.minutes / 14.0))
    n_moves = len(eq_names()) + 1
    model, hist = train_model(cfg, train, val, n_moves)
    meta = {"name": name, "space_version": space.version, "space_fingerprint": space.fingerprint}
    path = export_onnx(model, out / f"{name}.onnx", meta)
    diff = check_export(model, path)
    print(
        f"{name}: {hist['n_params']} params, best val score {hist['best_val_score']:.3f}, "
        f"{hist['seconds']:.0f} s; ONNX max |torch - ort| {diff:.2e}",
        flush=True,
    )
    card = dict(
        _base_card(space, info, args),
        name=name,
        arch=name,
        description=f"{name} ({type(model).__name__}): corrective EQ and width moves with their uncertainty",
    )
    card.update(
        n_params=hist["n_params"],
        onnx_check_max_abs_diff=diff,
        shrink=1.0,
        training={
            "config": cfg.to_dict(),
            "history": hist,
            "torch": torch.__version__,
            "machine": f"{platform.machine()}, {args.threads} CPU thread(s)",
            "summary": f"{hist['steps_run']} steps of {cfg.batch_size} clips (best at {hist.get('best_step')}), "
            f"{hist['seconds'] / 60:.1f} min on {args.threads} CPU thread(s), AdamW lr {cfg.lr:g}, audio loss",
        },
    )
    write_atomic(out / f"{name}.json", json.dumps(card, indent=1))


def _outputs(model, data: dict) -> np.ndarray:
    patch, glob = features_from_bands(data["damaged"])
    return model.predict(patch, glob)


def _scores(moves: np.ndarray, data: dict) -> tuple[np.ndarray, np.ndarray]:
    import torch

    bal, wid = audio_losses(
        torch,
        torch.from_numpy(moves.astype(np.float64)),
        torch.from_numpy(data["damaged"]),
        torch.from_numpy(data["ref"]),
    )
    return bal.numpy(), wid.numpy()


def tier_table(out_by_row: dict[str, np.ndarray], data: dict) -> dict:
    """Band-domain balance/width error per row and tier, share improved / made worse (> 0.5 dB)."""
    p = len(eq_names()) + 1
    base_bal, base_wid = _scores(np.zeros((len(data["ref"]), p)), data)
    table = {}
    for row, moves in {"do nothing": np.zeros((len(data["ref"]), p)), **out_by_row}.items():
        bal, wid = _scores(moves, data)
        for tier in TIERS:
            sel = data["tier"] == tier
            if not sel.any():
                continue
            d = bal[sel] - base_bal[sel]
            table.setdefault(row, {})[tier] = {
                "balance_db": float(bal[sel].mean()),
                "width_db": float(wid[sel].mean()),
                "improved": float(np.mean(d < 0)),
                "worse": float(np.mean(d > 0.5)),
                "worst_db": float(d.max()),
            }
    return table


def fit_shrink(out: np.ndarray, data: dict) -> tuple[list[float], dict]:
    """Per-move confidence thresholds from `SHRINK_GRID`: one for the EQ moves, chosen by the
    balance error, one for the width, chosen by the width error; each the lowest-error threshold
    among those that make no matters-of-taste clip worse by more than `TASTE_MARGIN_DB` in its own
    measure (the largest if none does). Returns the ``P`` thresholds and what was tried."""
    p = out.shape[1] // 2
    zero = np.zeros((len(data["ref"]), p))
    base_bal, base_wid = _scores(zero, data)
    taste = data["tier"] == "taste"
    tried: dict = {"eq": {}, "width": {}}
    for k in SHRINK_GRID:
        _, applied = confident_moves(out[:, :p], out[:, p:], k)
        eq_only, width_only = applied.copy(), applied.copy()
        eq_only[:, -1] = 0.0
        width_only[:, :-1] = 0.0
        bal, _ = _scores(eq_only, data)
        _, wid = _scores(width_only, data)
        worst_bal = float((bal - base_bal)[taste].max()) if taste.any() else 0.0
        worst_wid = float((wid - base_wid)[taste].max()) if taste.any() else 0.0
        tried["eq"][k] = {"score": float(bal.mean()), "worst_taste_db": worst_bal}
        tried["width"][k] = {
            "score": float(wid.mean()),
            "worst_taste_db": worst_wid,
        }
    chosen = {}
    for part, t in tried.items():
        ok = [k for k in SHRINK_GRID if t[k]["worst_taste_db"] <= TASTE_MARGIN_DB]
        chosen[part] = float(min(ok, key=lambda k: t[k]["score"]) if ok else SHRINK_GRID[-1])
    return [chosen["eq"]] * (p - 1) + [chosen["width"]], tried


def _md_card(card: dict) -> str:
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- **What**: {card['description']}",
        f"- **Parameter space**: `{card['space_version']}` (fingerprint `{card['space_fingerprint']}`); proposes "
        f"{', '.join(f'`{p}`' for p in card['moves'])} ({card['move_units']}) and the uncertainty of each; "
        f"input gain and compressor by rule ({card['rules']['input.gain_db']}; {card['rules']['comp.*']}); "
        f"{', '.join(f'`{k}`={v:g}' for k, v in card['rule_values'].items())}.",
        f"- **Confidence**: an EQ move is cut by {card['shrink'][0]:g} x its uncertainty and the width move by "
        f"{card['shrink'][-1]:g} x its uncertainty (soft thresholds, fitted on the validation split so that no "
        "matters-of-taste clip gets worse by more than 0.3 dB), then scaled by `--intensity`.",
        f"- **Protocol**: {card['protocol']}",
        f"- **Data**: {card['data']['summary']}",
        f"- **Size**: {card.get('size_bytes', 0) / 1e6:.2f} MB ONNX"
        + (f", {card['n_params']} parameters" if card.get("n_params") else ""),
        f"- **Inference** (onnxruntime, 1 thread, 6 clips of a song after features): {card.get('inference_ms', 0):.1f} ms",
        f"- **Training**: {card.get('training', {}).get('summary', '-')}",
        "",
        "## Held-out test split (songs never trained on, band-domain measure: sixth-octave balance and side/mid, dB)",
        "",
        "| tier | balance dB (do nothing) | width dB (do nothing) | improved | worse > 0.5 dB | worst clip |",
        "|---|---|---|---|---|---|",
    ]
    for tier, r in card.get("test", {}).items():
        z = card["test_nothing"][tier]
        lines.append(
            f"| {tier} | {r['balance_db']:.2f} ({z['balance_db']:.2f}) | {r['width_db']:.2f} ({z['width_db']:.2f}) | "
            f"{100 * r['improved']:.0f} % | {100 * r['worse']:.0f} % | {r['worst_db']:+.2f} dB |"
        )
    if card.get("blind"):
        lines += [
            "",
            "## Blind benchmark (bench/bench_blind.py: unseen packages, `plugin-bridge mix` as a user runs it)",
            "",
        ]
        lines.append(card["blind"])
    return "\n".join(lines) + "\n"


def _inference_ms(model, audio_seconds: float = 180.0, repeats: int = 10) -> float:
    rng = np.random.default_rng(0)
    song = (rng.standard_normal((2, int(audio_seconds * 44100))) * 0.05).astype(np.float32)
    patch, glob = song_features(song, 44100)
    model.predict(patch, glob)
    t = time.perf_counter()
    for _ in range(repeats):
        model.predict(patch, glob)
    return 1000 * (time.perf_counter() - t) / repeats


def _blind_rows(name: str) -> str | None:
    """The blind benchmark's rows for ``name`` (``bench/results/blind.json``), as a Markdown table."""
    path = Path(__file__).resolve().parents[1] / "bench" / "results" / "blind.json"
    if not path.is_file():
        return None
    summ = json.loads(path.read_text(encoding="utf-8")).get("summary", {})
    lines = [
        "| tier | balance dB (do nothing) | width dB (do nothing) | improved | worse > 0.5 dB | issue 13 target |",
        "|---|---|---|---|---|---|",
    ]
    for tier, rows in summ.items():
        if tier not in TIERS:
            continue
        if name not in rows:
            return None
        r, z = rows[name], rows["do nothing"]
        check = r.get("checks", {})
        lines.append(
            f"| {tier} | {r['balance_db']:.2f} ({z['balance_db']:.2f}) | {r['width_db']:.2f} ({z['width_db']:.2f}) | "
            f"{100 * r['improved']:.0f} % | {100 * r['worse']:.0f} % | "
            f"{'met' if check.get('pass') else 'not met: ' + check.get('why', '')} |"
        )
    return "\n".join(lines)


def finish(args, val, test, info, out: Path, space, names: list[str]) -> None:
    """Ensemble weights, confidence thresholds, test tables, timings and the cards."""
    members = {n: load_model(n, out, space) for n in names}
    val_out = {n: _outputs(m, val) for n, m in members.items()}
    p = len(eq_names()) + 1
    weights = fit_ensemble_weights({n: o[:, :p] for n, o in val_out.items()}, val)
    ens_card = dict(
        _base_card(space, info, args),
        name="ensemble",
        members=names,
        weights=weights.tolist(),
        description="weighted average of " + ", ".join(names) + " (weights fitted on the validation "
        "split); uncertainty = the members' weighted uncertainty plus their disagreement",
    )
    write_atomic(out / "ensemble.json", json.dumps(dict(ens_card, shrink=1.0), indent=1))
    models = {**members, "ensemble": load_model("ensemble", out, space)}
    val_out["ensemble"] = _outputs(models["ensemble"], val)
    results: dict = {"shrink": {}, "validation": {}, "test": {}}
    applied_test = {}
    for n, m in models.items():
        k, tried = fit_shrink(val_out[n], val)
        results["shrink"][n] = {"chosen": k, "tried": tried}
        k_eq, k_w = k[0], k[-1]
        o = _outputs(m, test)
        applied_test[n] = confident_moves(o[:, :p], o[:, p:], k)[1]
        path = out / f"{n}.json"
        card = json.loads(path.read_text(encoding="utf-8")) if n != "ensemble" else ens_card
        card["shrink"] = k
        write_atomic(path, json.dumps(card, indent=1))
        print(
            f"{n}: shrink EQ {k_eq:g} (validation balance {tried['eq'][k_eq]['score']:.2f} dB, worst taste clip "
            f"{tried['eq'][k_eq]['worst_taste_db']:+.2f} dB), width {k_w:g} (validation width "
            f"{tried['width'][k_w]['score']:.2f} dB, worst taste clip {tried['width'][k_w]['worst_taste_db']:+.2f} dB)",
            flush=True,
        )
    table = tier_table(applied_test, test)
    results["test"] = table
    results["inference_ms"] = {}
    timing = (10.0, 2) if args.tiny else (180.0, 10)
    for n in [*names, "ensemble"]:
        m = load_model(n, out, space)
        path = out / f"{n}.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        card["test"] = table[n]
        card["test_nothing"] = table["do nothing"]
        card["inference_ms"] = results["inference_ms"][n] = _inference_ms(m, *timing)
        card["size_bytes"] = (
            sum((out / f"{x}.onnx").stat().st_size for x in names)
            if n == "ensemble"
            else (out / f"{n}.onnx").stat().st_size
        )
        if n == "ensemble":
            card["training"] = {
                "summary": "no training of its own: weights and threshold fitted on the validation split"
            }
        card["blind"] = _blind_rows(n)
        write_atomic(path, json.dumps(card, indent=1))
        write_atomic(out / f"{n}.md", _md_card(card))
    for tier in TIERS:
        if tier in table["do nothing"]:
            print(
                f"test {tier}: " + ", ".join(f"{r} {table[r][tier]['balance_db']:.2f}" for r in table),
                flush=True,
            )
    write_atomic(out / "results.json", json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("-o", "--out", default="models")
    ap.add_argument("--clips", type=int, default=40, help="reference clips per training song")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--minutes", type=float, default=None, help="training time cap per model (default 14)")
    ap.add_argument("--tiny", action="store_true", help="seconds-long smoke configuration")
    ap.add_argument("--models", default=",".join(MODEL_NAMES), help="models to train in this process")
    ap.add_argument("--finish", action="store_true", help="only the ensemble, thresholds, tables and cards")
    ap.add_argument("--no-finish", action="store_true", help="train only (another process finishes)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, val, test, info = _banks(args)
    space = default_space()
    names = [n for n in args.models.split(",") if n]
    if not args.finish:
        for n in names:
            train_one(n, args, train, val, info, out, space)
    if not args.no_finish:
        finish(args, val, test, info, out, space, list(MODEL_NAMES) if args.finish else names)
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
