"""Sub-command ``live``: a chain or recipe on an audio interface, block by block (thin: parse,
call `plugin_bridge.realtime`, print)."""

from __future__ import annotations

import argparse
import sys


def _cmd_live(args: argparse.Namespace) -> int:
    from ..export.recipe import load_recipe
    from ..realtime import BlockProcessor, audio_devices, check_devices, run_live

    if args.list:
        inputs, outputs = audio_devices()
        print("inputs:  " + (", ".join(inputs) or "none"))
        print("outputs: " + (", ".join(outputs) or "none"))
        return 0
    if not args.input or not args.output:
        print(
            "plugin-bridge: error: live needs --in DEVICE and --out DEVICE (--list shows them)",
            file=sys.stderr,
        )
        return 2
    check_devices(args.input, args.output)
    source = load_recipe(args.recipe) if args.recipe else args.chain
    proc = BlockProcessor(source, args.sample_rate, backend=args.backend)
    print(
        f"live: {args.input} -> {args.output}, {args.block} samples at {args.sample_rate} Hz, "
        f"latency {proc.latency} samples + the interface's; Ctrl-C stops",
        file=sys.stderr,
    )
    blocks = run_live(args.input, args.output, proc, args.block, args.seconds)
    print(f"live: {blocks} blocks processed", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``live`` to the ``plugin-bridge`` parser."""
    p = sub.add_parser(
        "live", help="run a chain or recipe live on an audio interface (pedalboard AudioStream)"
    )
    p.add_argument("--in", dest="input", metavar="DEVICE", help="input device name (see --list)")
    p.add_argument("--out", dest="output", metavar="DEVICE", help="output device name (see --list)")
    p.add_argument("--recipe", help="mix recipe (.json) whose chain and values to run")
    p.add_argument("--chain", default="default", help="chain name or file when no recipe (default: default)")
    p.add_argument("--backend", default="pedalboard", choices=("numpy", "pedalboard"))
    p.add_argument("--sample-rate", type=int, default=44100, help="Hz (default 44100)")
    p.add_argument("--block", type=int, default=128, help="block size in samples (default 128)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--list", action="store_true", help="list the audio devices and exit")
    p.set_defaults(func=_cmd_live)
