"""The web app's batch view: the `plugin-bridge batch` runs under the served folder, read-only.

A batch output folder holds its ledger, ``batch.sqlite`` (`plugin_bridge.batch.ledger`), and when
the run ends ``report.html`` / ``.csv`` / ``.json``. `find_batches` lists the ones under the root
with their progress; `batch_jobs` gives one batch's jobs (status, attempts, time, error, the files
each wrote) with paths relative to the root, which `resolve_under` accepts, so the page links to
them. The ledger is opened read-only (SQLite ``mode=ro``): a batch that is still running keeps
writing it, and the page shows its progress as it goes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from .safety import AccessError, resolve_under

LEDGER = "batch.sqlite"
REPORTS = ("report.html", "report.csv", "report.json")
#: Folders deeper than this under the root are not searched for batches.
MAX_DEPTH = 4
STATUSES = ("pending", "running", "done", "failed")


def _read_ledger(path: Path) -> list[dict]:
    """Every item row of a ledger, read-only (``result`` decoded); `AccessError` if unreadable."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        raise AccessError(f"{path.name}: cannot read the batch ledger ({e})") from None
    try:
        cur = db.execute("SELECT id, status, attempts, error, seconds, result FROM items ORDER BY id")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except sqlite3.Error as e:
        raise AccessError(f"{path.name}: cannot read the batch ledger ({e})") from None
    finally:
        db.close()
    for r in rows:
        try:
            r["result"] = json.loads(r["result"]) if r["result"] else None
        except json.JSONDecodeError:
            r["result"] = None
    return rows


def _progress(rows: list[dict]) -> dict:
    counts = {s: 0 for s in STATUSES}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    total = len(rows)
    finished = counts["done"] + counts["failed"]
    return {
        "total": total,
        "counts": counts,
        "finished": finished,
        "share": finished / total if total else 1.0,
    }


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def find_batches(root: Path) -> list[dict]:
    """The batch output folders under ``root`` (not following links, skipping hidden folders, at
    most `MAX_DEPTH` deep): ``[{path, total, counts, finished, share, running, reports}]``."""
    root = root.resolve()
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d))
        )
        if depth >= MAX_DEPTH:
            dirs[:] = []
        if LEDGER in files and not (here / LEDGER).is_symlink():
            try:
                rows = _read_ledger(here / LEDGER)
            except AccessError:
                continue
            prog = _progress(rows)
            out.append(
                {
                    "path": _rel(here, root) if here != root else ".",
                    **prog,
                    "running": prog["counts"]["running"] + prog["counts"]["pending"] > 0,
                    "reports": [_rel(here / r, root) for r in REPORTS if (here / r).is_file()],
                }
            )
    return out


def batch_jobs(root: Path, relative: str) -> dict:
    """One batch's jobs: ``{path, total, counts, ..., jobs: [{id, status, attempts, seconds, error,
    lufs_after, files}]}``, every file a path relative to ``root`` that exists."""
    root = root.resolve()
    folder = root if relative in (".", "") else resolve_under(root, relative)
    ledger = folder / LEDGER
    if not folder.is_dir() or not ledger.is_file() or ledger.is_symlink():
        raise AccessError(f"{relative!r}: not a batch output folder (no {LEDGER})")
    rows = _read_ledger(ledger)
    jobs = []
    for r in rows:
        res = r["result"] or {}
        item_dir = folder / Path(r["id"]).parent / Path(r["id"]).stem
        files = []
        for name in res.get("outputs", []) if r["status"] == "done" else []:
            p = item_dir / name
            if p.is_file() and not p.is_symlink() and (root in p.resolve().parents):
                files.append(_rel(p, root))
        jobs.append(
            {
                "id": r["id"],
                "status": r["status"],
                "attempts": r["attempts"],
                "seconds": round(r["seconds"], 2) if r["seconds"] is not None else None,
                "error": r["error"],
                "lufs_after": res.get("lufs_after"),
                "files": files,
            }
        )
    return {
        "path": relative,
        **_progress(rows),
        "reports": [_rel(folder / n, root) for n in REPORTS if (folder / n).is_file()],
        "jobs": jobs,
    }
