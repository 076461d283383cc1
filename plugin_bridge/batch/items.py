"""What a batch works on: songs (audio files) and sessions, from a folder tree or a manifest."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..audio_io import READ_SUFFIXES
from ..errors import FormatError

SESSION_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Item:
    """One unit of work: ``id`` (a relative path, unique in the batch), the input, and its kind."""

    id: str
    path: str
    kind: str  # "song" or "session"

    def output_dir(self, root: str | os.PathLike) -> Path:
        """Where this item's outputs go: the input's relative path, mirrored, without its suffix."""
        rel = Path(self.id)
        return Path(root) / rel.parent / rel.stem


def _is_session(path: Path) -> bool:
    if path.suffix.lower() not in SESSION_SUFFIXES:
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return False
    return "tracks" in head


def _kind(path: Path) -> str | None:
    if path.suffix.lower() in READ_SUFFIXES:
        return "song"
    if _is_session(path):
        return "session"
    return None


def _from_folder(root: Path, out_dir: Path | None) -> list[Item]:
    items = []
    skip = out_dir.resolve() if out_dir is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # a session's stems are part of the session, not songs of their own
        sessions = [f for f in filenames if _is_session(here / f)]
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        if sessions:
            dirnames[:] = []
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = here / name
            kind = "session" if name in sessions else (None if sessions else _kind(p))
            if kind:
                items.append(Item(p.relative_to(root).as_posix(), str(p), kind))
    return items


def _from_manifest(path: Path) -> list[Item]:
    base = path.parent
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("items", data) if isinstance(data, dict) else data
    except (OSError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: cannot read manifest ({e})") from None
    if not isinstance(rows, list):
        raise FormatError(f"{path}: a JSON manifest is a list of items or {{'items': [...]}}")
    items = []
    for i, row in enumerate(rows):
        raw = row.get("path") if isinstance(row, dict) else row
        if not raw:
            raise FormatError(f"{path}: item #{i} has no 'path'")
        p = Path(raw) if Path(raw).is_absolute() else base / raw
        kind = _kind(p) if p.exists() else ("session" if p.suffix.lower() in SESSION_SUFFIXES else "song")
        item_id = (row.get("id") if isinstance(row, dict) else None) or Path(raw).as_posix().lstrip("/")
        items.append(Item(str(item_id), str(p), kind or "song"))
    return items


def find_items(source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Item]:
    """Items of a batch: every song/session under a folder (recursively), or those a CSV/JSON
    manifest lists (a ``path`` column/key, relative to the manifest, optional ``id``)."""
    src = Path(source)
    if src.is_dir():
        items = _from_folder(src, Path(out_dir) if out_dir else None)
    elif src.is_file():
        items = _from_manifest(src)
    else:
        raise FormatError(f"{src}: no such folder or manifest")
    ids = [it.id for it in items]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise FormatError(f"{src}: duplicate item ids {dupes[:5]}")
    return items
