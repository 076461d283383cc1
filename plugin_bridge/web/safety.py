"""What the web app may touch: files under ``--root`` and its own workspace, audio within limits.

Every path that comes from a browser is checked here, once, before anything opens it:

- a path is *relative* to the root; absolute paths, ``..`` components, NUL bytes and symbolic links
  (anywhere on the way, the file itself included) are refused, and the resolved file must lie inside
  the root;
- only the audio formats the command line reads (`plugin_bridge.audio_io.READ_SUFFIXES`) open;
- an upload is limited in size (`Limits.max_upload_bytes`, counted while it streams in) and every
  song in duration (`Limits.max_duration_s`);
- session ids are random tokens of a fixed alphabet (`new_session_id`, `check_session_id`).

A refusal is an `AccessError` with one line a user can act on.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..audio_io import READ_SUFFIXES, inspect_audio
from ..errors import PluginBridgeError

_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class AccessError(PluginBridgeError):
    """A path, file or upload the web app refuses (outside the root, a link, too large, not audio)."""


@dataclass(frozen=True)
class Limits:
    """How much the web app takes: upload size (bytes), song duration (s), loop length (s)."""

    max_upload_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 15 * 60.0
    max_loop_s: float = 30.0


def check_audio_name(name: str) -> str:
    """``name`` if its suffix is an audio format the CLI reads, else `AccessError`."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise AccessError(
            f"{PurePosixPath(name).name or name!r}: not an audio format plugin-bridge reads "
            f"(valid: {', '.join(READ_SUFFIXES)})"
        )
    return name


def resolve_under(root: Path, relative: str) -> Path:
    """The file ``relative`` (a path with ``/`` separators) inside ``root``, or `AccessError`.

    Refuses absolute paths, ``..``, empty parts, NUL bytes and any symbolic link on the way."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise AccessError("give a file path relative to the served folder")
    rel = PurePosixPath(relative)
    if rel.is_absolute() or relative.startswith("~"):
        raise AccessError(
            f"{relative!r}: absolute paths are refused; give a path relative to the served folder"
        )
    if any(part in ("..", "") for part in relative.split("/")) or ".." in rel.parts:
        raise AccessError(f"{relative!r}: '..' is refused; the file must be inside the served folder")
    root = root.resolve()
    current = root
    for part in rel.parts:
        if part == ".":
            continue
        current = current / part
        if current.is_symlink():
            raise AccessError(f"{relative!r}: symbolic links are refused")
    resolved = current.resolve()
    if resolved != root and root not in resolved.parents:
        raise AccessError(f"{relative!r}: outside the served folder")
    return resolved


def list_audio(root: Path, limit: int = 2000) -> list[str]:
    """Audio files under ``root`` (relative ``/`` paths, sorted), without following links or
    entering hidden folders; at most ``limit``."""
    root = root.resolve()
    out: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d))
        )
        for f in sorted(files):
            p = Path(folder, f)
            if f.startswith(".") or p.is_symlink() or p.suffix.lower() not in READ_SUFFIXES:
                continue
            out.append(p.relative_to(root).as_posix())
            if len(out) >= limit:
                return sorted(out)
    return sorted(out)


def check_duration(path: Path, limits: Limits, label: str | None = None) -> float:
    """The duration (s) of the audio file ``path`` (`inspect_audio`: readable, stereo or mono), or
    `AccessError` when it is longer than ``limits.max_duration_s``."""
    info = inspect_audio(path)
    if info.duration > limits.max_duration_s:
        raise AccessError(
            f"{label or path.name}: {info.duration / 60:.1f} min is longer than this server takes "
            f"({limits.max_duration_s / 60:g} min)"
        )
    return info.duration


def safe_file_name(name: str) -> str:
    """A file name made of safe characters from a user-given ``name`` (its last component only)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME_RE.sub("_", base).strip("._") or "upload"
    return cleaned[:100]


def new_session_id() -> str:
    """A new random session id (URL-safe, 22 characters)."""
    return secrets.token_urlsafe(16)


def check_session_id(sid: str) -> str:
    """``sid`` if it has a session id's form, else `AccessError`."""
    if not isinstance(sid, str) or not _SESSION_RE.match(sid):
        raise AccessError("unknown session; open the song again")
    return sid
