"""The ``plugin-bridge`` command: parses arguments, calls the API, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..audio_io import SUBTYPES, check_output_location, check_output_path
from ..backends import BACKEND_NAMES, available_backends
from ..chain import list_chains, load_chain, presets_dir
from ..errors import ParameterError, PluginBridgeError
from ..version import __version__


def _parse_vector(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ParameterError(f"--vector must be comma-separated numbers, got {text!r}") from None


def load_params_file(path: str | Path) -> dict:
    """Read a params JSON file: ``{"name": value, ...}``, ``{"values": {...}}`` or ``{"vector": [...]}``.

    Returns ``{"values": dict}`` or ``{"vector": list}``.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ParameterError(f"{p}: cannot read parameters ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ParameterError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{p}: expected a JSON object of parameter values")
    if "vector" in data:
        return {"vector": data["vector"]}
    values = data.get("values", data)
    if not isinstance(values, dict):
        raise ParameterError(f"{p}: 'values' must be an object of name: number")
    return {"values": values}


def _check_outputs(output: str, recipe: str | None, inputs: tuple[str, ...]) -> None:
    """Check every output location of a render before any work, so a mistake writes nothing."""
    check_output_path(output, inputs)
    if recipe:
        check_output_location(recipe, (*inputs, output))


def _cmd_render(args: argparse.Namespace) -> int:
    from ..render import render_file

    if args.recipe:
        if args.params or args.vector or args.chain != "default":
            raise ParameterError(
                "--recipe carries its own chain and parameters: drop --chain/--params/--vector"
            )
        from ..pipeline import render_recipe

        backend = None if args.backend == "auto" else args.backend
        res = render_recipe(args.recipe, args.output, backend=backend, input_path=args.input)
        print(
            f"wrote {res.output}: {res.frames / res.sample_rate:.2f} s, backend {res.backend} (recipe {args.recipe})"
        )
        return 0
    if args.input is None:
        raise ParameterError("render needs an input file (or --recipe FILE)")
    values = vector = None
    if args.params and args.vector:
        raise ParameterError("give --params or --vector, not both")
    if args.params:
        loaded = load_params_file(args.params)
        values, vector = loaded.get("values"), loaded.get("vector")
    elif args.vector:
        vector = _parse_vector(args.vector)
    _check_outputs(args.output, args.save_recipe, inputs=(args.input,))
    result = render_file(
        args.input,
        args.output,
        chain=args.chain,
        values=values,
        vector=vector,
        backend=args.backend,
        tail=not args.no_tail,
        downmix=args.downmix,
        subtype=SUBTYPES[args.bit_depth] if args.bit_depth else None,
        progress=args.progress,
        strict=args.strict,
        float_headroom=args.float_headroom,
    )
    if args.save_recipe:
        from ..export.recipe import recipe_from_chain

        recipe = recipe_from_chain(
            args.chain,
            vector=vector,
            values=values,
            input_path=args.input,
            sample_rate=result.sample_rate,
            backend=result.backend,
            tail=not args.no_tail,
            downmix=args.downmix,
        )
        print(f"wrote recipe {recipe.save(args.save_recipe)}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"wrote {result.output}: {result.frames / result.sample_rate:.2f} s, {result.channels} ch, "
            f"{result.sample_rate} Hz, backend {result.backend}, {result.realtime_factor:.0f}x real time"
        )
    return 0


def _cmd_render_session(args: argparse.Namespace) -> int:
    from ..graph import render_session
    from ..progress import FrameBar

    if args.save_recipe:
        check_output_location(args.save_recipe, (args.session, args.output))
    with FrameBar(None, "render-session", args.quiet or args.json) as bar:
        result = render_session(
            args.session,
            args.output,
            stems_out=args.stems_out,
            backend=args.backend,
            tail=not args.no_tail,
            subtype=SUBTYPES[args.bit_depth] if args.bit_depth else None,
            float_headroom=args.float_headroom,
            progress=bar,
        )
    if args.save_recipe:
        from ..export.recipe import recipe_from_session

        recipe = recipe_from_session(args.session, backend=result.backend, tail=not args.no_tail)
        print(f"wrote recipe {recipe.save(args.save_recipe)}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        rtf = result.to_dict()["realtime_factor"]
        print(
            f"wrote {result.output}: {result.frames / result.sample_rate:.2f} s, {len(result.stems)} stems, "
            f"backend {result.backend}, {rtf:.0f}x real time"
        )
    return 0


def _cmd_chains(args: argparse.Namespace) -> int:
    chains = [load_chain(n) for n in list_chains()]
    if args.json:
        print(json.dumps([c.to_dict() | {"parameters": len(c.space)} for c in chains], indent=2))
        return 0
    for c in chains:
        print(
            f"{c.name:<10} {len(c.slots):>2} effects, {len(c.space):>2} parameters ({c.space.version})  {c.description}"
        )
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    chain = load_chain(args.chain)
    space = chain.space
    if args.json:
        print(json.dumps(space.to_dict(), indent=2))
        return 0
    print(
        f"space {space.version} (fingerprint {space.fingerprint}) of chain {chain.name}: {len(space)} parameters"
    )
    print(f"{'#':>3}  {'name':<22} {'unit':<6} {'min':>8} {'max':>8} {'default':>8}  curve")
    for i, s in enumerate(space):
        print(f"{i:>3}  {s.name:<22} {s.unit:<6} {s.min:>8g} {s.max:>8g} {s.default:>8g}  {s.curve}")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    status = available_backends()
    if args.json:
        print(json.dumps({k: {"available": v is None, "reason": v} for k, v in status.items()}, indent=2))
        return 0
    for name, reason in status.items():
        print(f"{name:<11} {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..audio_io import write_audio
    from ..demo import demo_song
    from ..graph import render_session
    from ..render import render_file
    from ..songgen.multitrack import make_multitrack

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # 1. a stereo song through the default chain, with the factory demo settings
    song = write_audio(out / "demo_song.wav", demo_song(seconds=args.seconds), 44100)
    params = load_params_file(presets_dir() / "factory" / "demo.json")
    single = render_file(
        song, out / "demo_mix.wav", chain="default", values=params.get("values"), backend=args.backend
    )
    print(f"stereo song:      {song}")
    print(
        f"  mixed:          {single.output} (chain default, {single.backend}, {single.realtime_factor:.0f}x real time)"
    )
    # 2. a multitrack song from MIDI: stems (fluidsynth, or the built-in synth), session, mix
    session = make_multitrack(out / "multitrack", seed=args.seed, seconds=args.seconds)
    mix = render_session(
        session, out / "multitrack_mix.wav", stems_out=out / "multitrack" / "processed", backend=args.backend
    )
    print(f"multitrack song:  {session} ({len(mix.stems)} stems)")
    rtf = mix.to_dict()["realtime_factor"]
    print(f"  mixed:          {mix.output} ({mix.backend}, {rtf:.0f}x real time)")
    return 0


#: Modules that add their own sub-commands with ``register(subparsers)`` (each stays thin too).
_COMMAND_MODULES: tuple[str, ...] = ("mastering", "plugins", "models", "export", "batch", "web", "live")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``plugin-bridge`` command."""
    parser = argparse.ArgumentParser(
        prog="plugin-bridge", description="Render audio through AI-predictable effect chains on real plugins."
    )
    parser.add_argument("--version", action="version", version=f"plugin-bridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render an audio file through a chain")
    r.add_argument("input", nargs="?", help="input audio (wav, flac, ogg, mp3); optional with --recipe")
    r.add_argument(
        "--recipe", help="re-render a mix recipe (.json) bit-identically (its input unless IN is given)"
    )
    r.add_argument("-o", "--output", required=True, help="output file (.wav 32-bit float or .flac 24-bit)")
    r.add_argument("--chain", default="default", help="shipped chain name or chain file (default: default)")
    r.add_argument("--params", help="JSON file of real-unit values {name: value} or {'vector': [...]}")
    r.add_argument("--vector", help="normalized values v1,v2,... in the chain's parameter order")
    r.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES))
    r.add_argument("--no-tail", action="store_true", help="cut the output at the input's length")
    r.add_argument("--downmix", action="store_true", help="fold inputs with more than 2 channels to stereo")
    r.add_argument(
        "--float-headroom",
        action="store_true",
        help="keep samples beyond 0 dBFS in a 32-bit float WAV instead of clipping them (with a warning)",
    )
    r.add_argument(
        "--bit-depth", choices=tuple(SUBTYPES), help="output sample format (default: wav 32f, flac 24)"
    )
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal for inputs over 10 s)",
    )
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument(
        "--strict",
        action="store_true",
        help="a chain slot naming a plugin that cannot be hosted is an error (default: built-in fallback)",
    )
    r.add_argument(
        "--save-recipe",
        metavar="FILE",
        help="also write the mix recipe (.json, with hosted plugins' states) that re-renders this output",
    )
    r.set_defaults(func=_cmd_render)

    rs = sub.add_parser("render-session", help="render a multitrack session (tracks, buses, sends, master)")
    rs.add_argument("session", help="session file (YAML or JSON)")
    rs.add_argument("-o", "--output", required=True, help="mix file (.wav or .flac)")
    rs.add_argument("--stems-out", help="also write every processed track to this folder")
    rs.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES))
    rs.add_argument("--no-tail", action="store_true", help="cut the mix at the longest stem's length")
    rs.add_argument("--bit-depth", choices=tuple(SUBTYPES))
    rs.add_argument(
        "--float-headroom",
        action="store_true",
        help="keep samples beyond 0 dBFS in a 32-bit float WAV instead of clipping them (with a warning)",
    )
    rs.add_argument("--save-recipe", metavar="FILE", help="also write the mix recipe (.json) of this render")
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--quiet", action="store_true", help="no progress bar (it shows on a terminal after 5 s)")
    rs.set_defaults(func=_cmd_render_session)

    c = sub.add_parser("chains", help="list the shipped chains")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_chains)

    p = sub.add_parser("params", help="show a chain's parameter space (units, ranges, curves)")
    p.add_argument("--chain", default="default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_params)

    b = sub.add_parser("backends", help="which render backends can run here")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_backends)

    d = sub.add_parser("demo", help="render the built-in demo songs (stereo and multitrack)")
    d.add_argument("-o", "--output-dir", default="demo_output")
    d.add_argument("--seconds", type=float, default=30.0)
    d.add_argument("--seed", type=int, default=0, help="which procedural multitrack song")
    d.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES))
    d.set_defaults(func=_cmd_demo)

    for module in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a reported error, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except PluginBridgeError as e:
        print(f"plugin-bridge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("plugin-bridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m plugin_bridge.cli.main
    sys.exit(main())
