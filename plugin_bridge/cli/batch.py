"""Sub-command ``batch``: apply mixes to a whole catalog (thin: parse, call plugin_bridge.batch, print)."""

from __future__ import annotations

import argparse
import sys

from ..backends import BACKEND_NAMES
from .mastering import add_target


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, run_batch
    from ..batch.jobs import JobOptions
    from .main import _parse_vector, load_params_file

    values, vector = {}, None
    if args.params:
        loaded = load_params_file(args.params)
        values, vector = loaded.get("values") or {}, loaded.get("vector")
    elif args.vector:
        vector = _parse_vector(args.vector)
    job = JobOptions(
        out_dir=args.output,
        job="mix" if args.model else "chain",
        model=args.model or "ensemble",
        chain=args.chain,
        values=values,
        vector=tuple(vector) if vector is not None else None,
        backend=args.backend,
        target=args.target,
        export=tuple(args.export.split(",")) if args.export else (),
        downmix=args.downmix,
    )
    summary = run_batch(
        BatchOptions(
            source=args.input,
            out_dir=args.output,
            job=job,
            workers=args.workers,
            engine=args.engine,
            scheduler=args.scheduler,
            retries=args.retries,
            timeout=args.timeout,
            progress=args.progress,
            retry_failed=args.retry_failed,
        )
    )
    print(
        f"batch: {summary.total} items, {summary.done} done, {summary.failed} failed, "
        f"{summary.skipped} already finished; {summary.seconds:.1f} s"
    )
    for item_id, reason in summary.failures:
        print(f"  FAILED {item_id}: {reason}", file=sys.stderr)
    print(f"reports: {summary.reports.get('html')}")
    return 0 if summary.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``batch`` to the ``plugin-bridge`` parser."""
    b = sub.add_parser("batch", help="mix a whole folder or manifest of songs/sessions (resumable)")
    b.add_argument(
        "input", help="a folder (searched recursively) or a CSV/JSON manifest with a 'path' column"
    )
    b.add_argument("-o", "--output", required=True, help="output folder (mirrors the input tree)")
    b.add_argument(
        "--model",
        help="AI model to choose parameters (ensemble|cnn|cnn_large|ast); "
        "without it the chain's values are applied",
    )
    b.add_argument("--chain", default="default", help="chain for songs (default: default)")
    b.add_argument("--params", help="JSON of real values or {'vector': [...]} for the chain")
    b.add_argument("--vector", help="normalized vector for the chain")
    add_target(b)
    b.add_argument(
        "--downmix", action="store_true", help="fold songs with more than 2 channels (5.1) to stereo"
    )
    b.add_argument("--export", help="comma-separated export formats per item")
    b.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES))
    b.add_argument("--workers", type=int, default=0, help="parallel items (default: all cores)")
    b.add_argument("--engine", default="local", choices=("local", "dask"))
    b.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    b.add_argument("--retries", type=int, default=1, help="extra attempts for a failing item (default 1)")
    b.add_argument("--timeout", type=float, default=600.0, help="seconds per item before it is killed")
    b.add_argument(
        "--retry-failed", action="store_true", help="give items that failed in a previous run another go"
    )
    b.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    b.set_defaults(func=_cmd_batch)
