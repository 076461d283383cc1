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
        intensity=args.intensity,
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
        moves = r.decisions.get("moves", [])
        made = [mv for mv in moves if abs(mv["applied_db"]) >= 0.05]
        print(
            "  moves: "
            + (
                ", ".join(
                    (
                        f"width x{10 ** (mv['applied_db'] / 20):.2f}"
                        if mv["parameter"] == "width.width"
                        else f"{mv['parameter'].split('.')[0]} {mv['applied_db']:+.1f} dB"
                    )
                    + f" ({100 * mv['confidence']:.0f} % sure)"
                    for mv in made
                )
                or "none (nothing the models are sure is wrong)"
            )
        )
        comp = r.decisions.get("compressor")
        if comp:
            print(f"  compressor: {comp['reason']}")
        print(f"  recipe {r.files['recipe']}, DAW presets {r.files['presets']}, report {r.files['report']}")
        for w in r.warnings:
            print(f"  warning: {w}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..ml.evaluate import evaluate_folder

    names = [n for n in args.models.split(",") if n]
    res = evaluate_folder(
        args.data,
        per_tier=args.per_tier,
        seconds=args.seconds,
        seed=args.seed,
        model_names=names,
        models_folder=args.models_dir,
        intensity=args.intensity,
    )
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        print(
            f"{args.per_tier} clips of {args.seconds:g} s per damage tier from {args.data}, seed {args.seed}, "
            f"intensity {args.intensity:g}: {res.seconds:.1f} s"
        )
        print(res.table())
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
        "--clips",
        str(args.clips),
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
    m.add_argument(
        "--intensity",
        type=float,
        default=1.0,
        help="how far the corrective moves and the compression go, 0..1 (default 1; 0 = mastering only)",
    )
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_mix)

    e = sub.add_parser(
        "eval",
        help="mis-mix clips of a folder of finished tracks in three damage tiers and measure each model",
    )
    e.add_argument("--data", required=True, help="folder of reference tracks")
    e.add_argument("--per-tier", type=int, default=8, help="clips per damage tier (clear, middle, taste)")
    e.add_argument("--seconds", type=float, default=12.0, help="clip length (s)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--models", default="cnn,cnn_large,ast,ensemble")
    e.add_argument("--models-dir", default=None)
    e.add_argument("--intensity", type=float, default=1.0, help="as mix --intensity")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_eval)

    t = sub.add_parser("train", help="train the models from a corpus (needs the torch extra)")
    t.add_argument("corpus", help="corpus folder from render_scripts/build_corpus.py")
    t.add_argument("-o", "--output", default="models")
    t.add_argument("--clips", type=int, default=40, help="reference clips per training song")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--tiny", action="store_true")
    t.set_defaults(func=_cmd_train)
