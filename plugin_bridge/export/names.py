"""File names for exported files: safe on every filesystem, distinct per slot or track."""

from __future__ import annotations

import re
from collections.abc import Iterable


def safe_name(name: str, default: str = "mix") -> str:
    """``name`` with characters that no filesystem takes replaced by ``_`` (``default`` if empty)."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .") or default


def unique_file_names(names: Iterable[str], default: str = "mix") -> list[str]:
    """`safe_name` of each of ``names``, made distinct (case-insensitively) with ``-2``, ``-3``...

    Different slots or tracks (``a/b`` and ``a_b``, ``Drums`` and ``drums``) must not overwrite
    each other's file.
    """
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = safe_name(name, default)
        cand, n = base, 1
        while cand.casefold() in seen:
            n += 1
            cand = f"{base}-{n}"
        seen.add(cand.casefold())
        out.append(cand)
    return out
