"""The job ledger: one SQLite row per item, so a killed batch resumes where it stopped.

Rows move pending -> running -> done | failed. A row left ``running`` by a killed batch is reset to
pending on the next start. Only the batch's parent process writes (one writer, WAL journal).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from ..files import temporary_file_beside
from .items import Item

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    started REAL,
    finished REAL,
    seconds REAL,
    result TEXT
);
"""


def _create(path: Path) -> None:
    """Create the ledger at ``path`` with its schema, never visible without it.

    The database is built under a temporary name beside ``path`` and hard-linked into place (which,
    unlike a rename, never replaces a ledger another process created meanwhile), so a reader that
    opens ``path`` as soon as it exists always finds the ``items`` table.
    """
    tmp = temporary_file_beside(path, ".part.sqlite")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.executescript(_SCHEMA)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first, with the same schema
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Ledger:
    """The SQLite ledger of one batch output folder (``<out>/batch.sqlite``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            _create(self.path)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def add(self, items: list[Item]) -> None:
        """Register items not yet in the ledger (finished ones stay finished)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO items (id, path, kind) VALUES (?, ?, ?)",
            [(i.id, i.path, i.kind) for i in items],
        )

    def recover(self) -> int:
        """Reset rows a killed batch left 'running' to 'pending'; returns how many."""
        return self.db.execute("UPDATE items SET status='pending' WHERE status='running'").rowcount

    def retry_failed(self) -> int:
        """Put failed rows back to pending with their attempt count reset; returns how many."""
        return self.db.execute("UPDATE items SET status='pending', attempts=0 WHERE status='failed'").rowcount

    def status(self, item_id: str) -> str | None:
        """The status of an item, or None when unknown."""
        row = self.db.execute("SELECT status FROM items WHERE id=?", (item_id,)).fetchone()
        return row[0] if row else None

    def started(self, item_id: str) -> None:
        """Mark an item running (one more attempt)."""
        self.db.execute(
            "UPDATE items SET status='running', attempts=attempts+1, started=? WHERE id=?",
            (time.time(), item_id),
        )

    def finished(self, item_id: str, result: dict, seconds: float) -> None:
        """Mark an item done with its result."""
        self.db.execute(
            "UPDATE items SET status='done', error=NULL, finished=?, seconds=?, result=? WHERE id=?",
            (time.time(), seconds, json.dumps(result), item_id),
        )

    def failed(self, item_id: str, error: str, seconds: float, final: bool) -> None:
        """Record a failure; ``final`` marks it failed, otherwise it goes back to pending for a retry."""
        self.db.execute(
            "UPDATE items SET status=?, error=?, finished=?, seconds=? WHERE id=?",
            ("failed" if final else "pending", error, time.time(), seconds, item_id),
        )

    def attempts(self, item_id: str) -> int:
        """How many times an item has been started."""
        row = self.db.execute("SELECT attempts FROM items WHERE id=?", (item_id,)).fetchone()
        return int(row[0]) if row else 0

    def rows(self) -> list[dict]:
        """Every row as a dict (``result`` decoded)."""
        cur = self.db.execute(
            "SELECT id, path, kind, status, attempts, error, started, finished, seconds, result "
            "FROM items ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            d = dict(zip(names, row, strict=True))
            d["result"] = json.loads(d["result"]) if d["result"] else None
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        """``{status: count}``."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
