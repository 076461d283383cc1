"""Sub-commands of the web app and the taste profile (registered by plugin_bridge.cli.main):
``serve`` and ``profile show|reset``."""

from __future__ import annotations

import argparse
import json


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..web.app import serve
    from ..web.safety import Limits

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_duration_s=60.0 * args.max_minutes)
    try:
        serve(
            args.root,
            port=args.port,
            host=args.host,
            profile=args.profile,
            workspace=args.workspace,
            limits=limits,
            model=args.model,
            backend=args.backend,
        )
    except KeyboardInterrupt:
        pass
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from ..ml.preference import Profile

    p = Profile(args.name)
    if args.action == "reset":
        n = p.reset()
        print(f"profile {p.name}: removed {n} accepted mixes ({p.path})")
        return 0
    s = p.summary()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"profile {s['name']}: {s['accepts']} accepted mixes ({s['path']})")
    for name, move in s["mean_moves"].items():
        print(f"  {name:<20} you move it {move:+.3g} from the AI's proposal on average")
    if s["accepts"] and not s["mean_moves"]:
        print("  you accepted the AI's proposals as they were")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
    from ..backends import BACKEND_NAMES
    from ..ml.inference import ALL_NAMES

    s = sub.add_parser(
        "serve", help="the local web app: hear, compare (loudness-matched), adjust, accept, export"
    )
    s.add_argument("--root", default=".", help="the folder whose songs the page may open (default: here)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free one)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface (default 127.0.0.1, this machine only; another one is reachable by others: a warning)",
    )
    s.add_argument(
        "--profile", default="default", help="taste profile accepted mixes teach (default: default)"
    )
    s.add_argument(
        "--workspace", help="folder for uploads, renders and accepted mixes (default ROOT/.plugin-bridge-web)"
    )
    s.add_argument("--model", default="ensemble", choices=ALL_NAMES)
    s.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES))
    s.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload (MB, default 200)")
    s.add_argument("--max-minutes", type=float, default=15.0, help="longest song (minutes, default 15)")
    s.set_defaults(func=_cmd_serve)

    p = sub.add_parser("profile", help="show or clear a taste profile (what the web app's accepts taught)")
    p.add_argument("action", choices=("show", "reset"))
    p.add_argument("name", nargs="?", default="default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_profile)
