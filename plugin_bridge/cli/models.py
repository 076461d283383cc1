"""Sub-commands of the models work (registered by plugin_bridge.cli.main): ``mix``, ``eval``, ``train``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from ..backends import BACKEND_NAMES
from .mastering import add_max_limiting, add_target


def _is_stems(source: str) -> bool:
    p = Path(source)
    return p.is_dir() or p.suffix.lower() in (".yaml", ".yml", ".json")


def _cmd_mix_stems(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..progress import stage_bar
    from ..stems.inputs import collect_tracks
    from ..stems.job import mix_stems

    if args.profile is not None:
        raise ParameterError(
            "--profile applies to a stereo song; a stems mix does not use a taste profile yet"
        )

    stages = len(collect_tracks(args.song).tracks) + 3
    with stage_bar(stages, "stems mix", args.quiet or args.json) as bar:
        r = mix_stems(
            args.song,
            args.output_dir,
            balance=args.balance,
            target=args.target,
            backend=args.backend,
            intensity=args.intensity,
            max_limiting_db=args.max_limiting,
            progress=bar,
        )
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0
    print(
        f"stems mix: wrote {r.files['mix']} ({len(r.tracks)} tracks, {r.premaster_lufs:.1f} LUFS before "
        f"mastering -> {r.output_lufs:.1f} LUFS, true peak {r.output_true_peak_dbtp:.1f} dBTP) in "
        f"{r.seconds.get('total', 0.0):.2f} s"
    )
    for t in r.tracks:
        if t.silent:
            print(f"  {t.name:<16} silent (kept silent)")
            continue
        fx = ", ".join(e["type"] for e in t.effects) or "no inserts"
        print(f"  {t.name:<16} {t.role:<9} fader {t.gain_db:+6.1f} dB  pan {t.pan:+.2f}  {fx}")
    print(
        f"  session {r.files['session']}, stems {r.files['stems']}, presets {r.files['presets']}, report {r.files['report']}"
    )
    for n in (*r.notes, *r.warnings):
        print(f"  note: {n}")
    return 0


@contextmanager
def _master_warnings_in_summary():
    """The master's warnings come back in the result of a mix (of a song or of stems), which the
    summary (or the JSON) prints: while the job runs, the mastering logger keeps them to itself, so
    none is shown twice. Also a decorator (`_cmd_mix`, which runs both jobs)."""
    logger = logging.getLogger("plugin_bridge.mastering")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@_master_warnings_in_summary()
def _cmd_mix(args: argparse.Namespace) -> int:
    from ..ml.inference import ALL_NAMES
    from ..progress import stage_bar
    from ..song_mix import mix_song

    if _is_stems(args.song):
        return _cmd_mix_stems(args)
    stages = 2 + (len(ALL_NAMES) if args.model == "all" else 1)
    with stage_bar(stages, "mix", args.quiet or args.json) as bar:
        result = mix_song(
            args.song,
            args.output_dir,
            model=args.model,
            backend=args.backend,
            target=args.target,
            downmix=args.downmix,
            max_limiting_db=args.max_limiting,
            intensity=args.intensity,
            profile=args.profile,
            progress=bar,
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


def _multitrack_dirs(data: Path) -> list[Path]:
    """The reference multitracks of ``data``: the folder itself if it holds stems, else its sub-folders
    that hold stems (directly or in ``stems/``)."""
    from ..errors import ParameterError
    from ..stems.evaluate import stem_files

    def holds(d: Path) -> bool:
        try:
            return bool(stem_files(d))
        except (ParameterError, OSError):
            return False

    if holds(data):
        return [data]
    return sorted(d for d in data.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and holds(d))


def _cmd_eval_stems(args: argparse.Namespace) -> int:
    import tempfile

    from ..errors import ParameterError
    from ..stems.evaluate import ROWS, evaluate_multitracks

    data = Path(args.data)
    if not data.is_dir():
        raise ParameterError(f"{data}: not a folder of reference multitracks")
    dirs = _multitrack_dirs(data)[: args.limit or None]
    if not dirs:
        raise ParameterError(f"{data}: no multitrack found (a folder of stems, or sub-folders of stems)")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        if r not in ROWS:
            raise ParameterError(f"unknown row {r!r}; valid: {', '.join(ROWS)}")
    log = None if args.json else (lambda line: print(line, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="plugin-bridge-eval-stems-") as tmp:
        res = evaluate_multitracks(dirs, args.work or tmp, seed=args.seed, rows=rows, log=log)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        print(
            f"{len(dirs)} multitracks from {data}, faders, pans and EQs scrambled (seed {args.seed}): {res.seconds:.1f} s"
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

    m = sub.add_parser(
        "mix",
        help="analyse a song (or a folder of stems, or a session file), predict the mix, render, master, report",
    )
    m.add_argument(
        "song", help="a song file, a folder of stems, or a session file (.yaml) with 'auto' fields"
    )
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
    m.add_argument(
        "--balance",
        default="model",
        choices=("model", "rules", "equal"),
        help="stems: how the faders are set (default model; rules = role table; equal = equal loudness)",
    )
    m.add_argument(
        "--profile",
        metavar="NAME",
        default=None,
        help="move the AI's proposal toward the taste learned in this profile (web app accepts; see 'profile show')",
    )
    m.add_argument("--json", action="store_true")
    m.add_argument("--quiet", action="store_true", help="no progress bar (it shows on a terminal after 5 s)")
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

    es = sub.add_parser(
        "eval-stems",
        help="scramble reference multitracks (faders, pans, EQ), mix them, measure each track's level against the reference",
    )
    es.add_argument("--data", required=True, help="a multitrack (folder of stems) or a folder of multitracks")
    es.add_argument(
        "--rows", default="as given,equal loudness,rules,model", help="rows to run, comma-separated"
    )
    es.add_argument("--seed", type=int, default=0)
    es.add_argument("--limit", type=int, default=0, help="at most this many multitracks (0: all)")
    es.add_argument(
        "--work", default=None, help="keep the scrambled stems and mixes here (default: a temp folder)"
    )
    es.add_argument("--json", action="store_true")
    es.set_defaults(func=_cmd_eval_stems)

    t = sub.add_parser("train", help="train the models from a corpus (needs the torch extra)")
    t.add_argument("corpus", help="corpus folder from render_scripts/build_corpus.py")
    t.add_argument("-o", "--output", default="models")
    t.add_argument("--clips", type=int, default=40, help="reference clips per training song")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--tiny", action="store_true")
    t.set_defaults(func=_cmd_train)
