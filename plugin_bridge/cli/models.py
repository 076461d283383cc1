"""Sub-commands of the models work (registered by plugin_bridge.cli.main): ``mix``, ``eval``, ``train``."""

from __future__ import annotations

import argparse
import json
import sys

from ..backends import BACKEND_NAMES
from .mastering import add_max_limiting, add_target


def _cmd_mix(args: argparse.Namespace) -> int:
    from ..song_mix import mix_song

    result = mix_song(
        args.song,
        args.output_dir,
        model=args.model,
        backend=args.backend,
        target=args.target,
        downmix=args.downmix,
        max_limiting_db=args.max_limiting,
    )
    results = result if isinstance(result, dict) else {args.model: result}
    if args.json:
        print(json.dumps({k: v.to_dict() for k, v in results.items()}, indent=2))
        return 0
    for name, r in results.items():
        print(
            f"{name}: wrote {r.files['mix']} ({r.input_lufs:.1f} LUFS in -> {r.output_lufs:.1f} LUFS out, "
            f"true peak {r.output_true_peak_dbtp:.1f} dBTP) in {sum(r.seconds.values()):.2f} s"
        )
        changed = {k: v for k, v in r.values.items() if k.endswith("gain_db") or k == "width.width"}
        print(
            "  " + ", ".join(f"{k} {v:+.1f}" if "gain" in k else f"{k} {v:.2f}" for k, v in changed.items())
        )
        print(f"  recipe {r.files['recipe']}, DAW presets {r.files['presets']}, report {r.files['report']}")
        for w in r.warnings:
            print(f"  warning: {w}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..ml.evaluate import evaluate_folder

    names = [n for n in args.models.split(",") if n]
    res = evaluate_folder(
        args.data,
        n=args.n,
        seed=args.seed,
        model_names=names,
        models_folder=args.models_dir,
        house_protocol=args.house,
    )
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        print(
            f"{res.n} examples from {args.data} ({100 * res.exact_share:.0f} % exact inverse labels; "
            f"references {'balanced to the house curve' if args.house else 'as they are'}), "
            f"seed {args.seed}, {res.seconds:.1f} s"
        )
        print(res.table())
        print()
        print(res.per_param_table())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "render_scripts" / "train_models.py"
    argv = [
        str(script),
        args.corpus,
        "-o",
        args.output,
        "--n-train",
        str(args.n_train),
        "--seed",
        str(args.seed),
    ]
    if args.tiny:
        argv.append("--tiny")
    old = sys.argv
    try:
        sys.argv = argv
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = old
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
    from ..ml.inference import ALL_NAMES

    m = sub.add_parser("mix", help="analyse a song, predict the mix, render, master and write a report")
    m.add_argument("song")
    m.add_argument("-o", "--output-dir", required=True)
    m.add_argument("--model", default="ensemble", choices=[*ALL_NAMES, "all"])
    m.add_argument("--backend", default="auto", choices=["auto", *BACKEND_NAMES])
    add_target(m)
    m.add_argument(
        "--downmix", action="store_true", help="fold a song with more than 2 channels (5.1) to stereo"
    )
    add_max_limiting(m)
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_mix)

    e = sub.add_parser("eval", help="evaluate the models on mis-mixed examples built from a folder of tracks")
    e.add_argument("--data", required=True, help="folder of reference tracks")
    e.add_argument("--n", type=int, default=40, help="number of examples")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--models", default="cnn,cnn_large,ast,ensemble")
    e.add_argument("--models-dir", default=None)
    e.add_argument(
        "--house",
        action="store_true",
        help="balance the reference clips to the house curve first (the house protocol) instead of "
        "taking them as they are",
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_eval)

    t = sub.add_parser("train", help="train the models from a corpus (needs the torch extra)")
    t.add_argument("corpus", help="corpus folder from render_scripts/build_corpus.py")
    t.add_argument("-o", "--output", default="models")
    t.add_argument("--n-train", type=int, default=16000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--tiny", action="store_true")
    t.set_defaults(func=_cmd_train)
