"""Sub-commands of the plugins work (registered by plugin_bridge.cli.main): ``plugins scan|inspect|map-scaffold``.

Thin: every command parses, calls `plugin_bridge.plugins`, prints. Probes run in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import PluginBridgeError

_FORMATS = ("vst3", "vst2", "lv2", "au")


def _cmd_scan(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from ..plugins.discovery import cache_path, load_cache, save_cache, scan
    from ..plugins.probe import probe

    formats = tuple(args.format) if args.format else _FORMATS
    refs = scan(args.path or (), formats)
    cache = load_cache()
    rows: list[dict | None] = []
    todo = []
    for ref in refs:
        entry = cache.get(ref.key)
        if args.no_probe:
            rows.append(
                {"ref": ref.to_dict(), "status": entry["status"] if entry else "unprobed", "reason": ""}
            )
        elif entry and not args.rescan and entry.get("status") in ("ok", "bad"):
            rows.append(entry | {"cached": True})
        else:
            todo.append((len(rows), ref))
            rows.append(None)
    if todo:
        if not args.json:
            print(f"probing {len(todo)} plugins in subprocesses ({args.jobs} at a time)...", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda item: probe(item[1], timeout=args.timeout, record=False), todo))
        cache = load_cache()
        for (k, ref), res in zip(todo, results, strict=True):
            rows[k] = res.to_dict()
            cache[ref.key] = {"ref": ref.to_dict(), "status": rows[k]["status"], "reason": res.reason}
            if res.info:
                cache[ref.key]["info"] = res.info
        save_cache(cache)
    if args.json:
        print(json.dumps({"cache": str(cache_path()), "plugins": rows}, indent=2))
        return 0
    for r in rows:
        info = r.get("info") or {}
        ref = r["ref"]
        extra = (
            f"{len(info.get('parameters', []))} params, {info.get('inputs', '?')}->{info.get('outputs', '?')} ch, "
            f"latency {info.get('latency', '?')}"
            if r["status"] == "ok"
            else r.get("reason", "")
        )
        print(f"{ref['format']:<4} {ref['name']:<32} {r['status']:<8} {extra}")
    bad = sum(r["status"] == "bad" for r in rows)
    print(f"{len(rows)} plugins, {bad} bad; cache {cache_path()}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ..plugins.discovery import PluginError, find_plugin
    from ..plugins.probe import probe

    ref = find_plugin(args.name, args.format, args.path or ())
    result = probe(ref, timeout=args.timeout, curves=args.curves)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.ok else 1
    if not result.ok:
        raise PluginError(f"{ref.name} ({ref.format}, {ref.location}) is bad: {result.reason}")
    info = result.info
    print(f"{ref.name} ({ref.format.upper()}) {ref.location}")
    print(
        f"  host {info['host']}, {info['inputs']} in -> {info['outputs']} out channels, "
        f"latency {info['latency']} samples"
    )
    print(f"  {'#':>3}  {'name':<24} {'value':>7}  {'text':<14} {'min':>10} {'max':>10} {'unit':<6} auto")
    for p in info["parameters"]:
        lo = "" if p["min"] is None else f"{p['min']:g}"
        hi = "" if p["max"] is None else f"{p['max']:g}"
        print(
            f"  {p['index']:>3}  {p['name'][:24]:<24} {p['value']:>7.4f}  {p['text'][:14]:<14} {lo:>10} {hi:>10} "
            f"{p['unit'][:6]:<6} {'yes' if p['automatable'] else 'no (host/meter)'}"
        )
    return 0


def _cmd_scaffold(args: argparse.Namespace) -> int:
    import yaml

    from ..plugins.discovery import PluginError, find_plugin
    from ..plugins.maps import scaffold
    from ..plugins.probe import probe

    ref = find_plugin(args.name, args.format, args.path or ())
    result = probe(ref, timeout=args.timeout, curves=True)
    if not result.ok:
        raise PluginError(f"{ref.name} ({ref.format}) is bad: {result.reason}; no map written")
    data = scaffold(result.info, ref, args.effect)
    data = json.loads(json.dumps(data))  # no shared objects: YAML without &anchors
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    if args.output in (None, "-"):
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        raise PluginBridgeError(f"{out} exists (use --force to overwrite)")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(data['params'])} bound, unmapped {data['unmapped']}; check it by measurement")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
    plugins = sub.add_parser("plugins", help="third-party plugins: scan, inspect, map scaffolds")
    psub = plugins.add_subparsers(dest="plugins_command", required=True)

    s = psub.add_parser("scan", help="find VST3/VST2/LV2 plugins and probe each in a subprocess")
    s.add_argument("--path", action="append", help="also search this folder (repeatable)")
    s.add_argument("--format", action="append", choices=_FORMATS, help="only this format (repeatable)")
    s.add_argument("--no-probe", action="store_true", help="list files only, load nothing")
    s.add_argument("--rescan", action="store_true", help="probe again plugins already in the cache")
    s.add_argument("--timeout", type=float, default=90.0, help="seconds before a probe counts as hung")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="probes run at once")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_scan)

    i = psub.add_parser(
        "inspect", help="a plugin's parameters, channels and latency (probed in a subprocess)"
    )
    i.add_argument("name", help="plugin name (e.g. ZamCompX2), bundle/file path or LV2 URI")
    i.add_argument("--format", choices=_FORMATS)
    i.add_argument("--path", action="append", help="also search this folder")
    i.add_argument("--curves", action="store_true", help="sample each parameter's display text at 21 points")
    i.add_argument("--timeout", type=float, default=90.0)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_inspect)

    m = psub.add_parser("map-scaffold", help="write a starting parameter map from what inspect learns")
    m.add_argument("name", help="plugin name, path or LV2 URI")
    m.add_argument("--effect", required=True, help="canonical effect type (compressor, peak, limiter, ...)")
    m.add_argument("-o", "--output", help="map file to write (default: print to stdout)")
    m.add_argument("--format", choices=_FORMATS)
    m.add_argument("--path", action="append")
    m.add_argument("--force", action="store_true", help="overwrite an existing file")
    m.add_argument("--timeout", type=float, default=90.0)
    m.set_defaults(func=_cmd_scaffold)
