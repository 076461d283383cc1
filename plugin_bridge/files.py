"""Writing files so that nothing half-written is ever seen: one atomic writer for the package.

Every output (audio through `plugin_bridge.audio_io.AtomicAudioWriter`, recipes, presets, reports,
plots, ledgers) is written to a hidden temporary file beside its target and renamed over it only
when complete; an error or an interrupt removes the temporary file and leaves the target as it was.
Written files get the mode any other program's output gets (0o666 less the umask), not
`tempfile.mkstemp`'s 0600. `journal` collects what `write_atomic` wrote, so a multi-file job (an
export) can remove its files again when it fails.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import FormatError

#: While a `journal` is open: the files `write_atomic` has written.
_WRITTEN: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("files_written", default=None)


def process_umask() -> int:
    """The process umask (read from /proc on Linux: `os.umask` would change it for other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits a newly created file gets: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~process_umask()


def temporary_file_beside(path: str | os.PathLike, suffix: str = ".part") -> str:
    """Create an empty hidden temporary file in ``path``'s folder and return its name.

    `tempfile.mkstemp` creates it 0600; it is given the umask's usual mode (`new_file_mode`) so
    that the file renamed over ``path`` can be read like any other program's output.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=suffix, dir=p.parent if str(p.parent) else ".")
    try:
        os.fchmod(fd, new_file_mode())
    finally:
        os.close(fd)
    return tmp


def work_folder_beside(path: str | os.PathLike, label: str) -> tempfile.TemporaryDirectory:
    """A hidden temporary folder beside ``path`` for a job's intermediate files, removed when its
    ``with`` block ends: ``.STEM.LABEL-XXXXXXXX.part``, marked ``.part`` like `temporary_file_beside`'s
    files, so that what a killed run leaves is found by the same pattern (`batch.jobs.clean_partials`)."""
    p = Path(path)
    return tempfile.TemporaryDirectory(
        prefix=f".{p.stem}.{label}-", suffix=".part", dir=p.parent if str(p.parent) else "."
    )


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".part") -> Iterator[str]:
    """Yield a temporary file beside ``path`` (`temporary_file_beside`) to write; rename it over
    ``path`` when the block ends normally, remove it when the block raises."""
    tmp = temporary_file_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` through a temporary file and a rename.

    A crash or an error never leaves a half-written file; the folder must exist (`FormatError`
    naming the file otherwise, or when the disk refuses the write).
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FormatError(f"{p}: output folder {folder} does not exist")
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        with replacing(p) as tmp:
            with open(tmp, "wb") as f:
                f.write(payload)
    except OSError as e:
        raise FormatError(f"{p}: cannot write ({e.strerror or e})") from None
    record_written(p)
    return p


def record_written(path: Path) -> None:
    """Add ``path`` (a file, or a folder moved into place whole) to the open `journal`, if any."""
    written = _WRITTEN.get()
    if written is not None:
        written.append(path)


@contextmanager
def journal() -> Iterator[list[Path]]:
    """Collect the paths `write_atomic` writes inside the ``with`` block (in this context)."""
    written: list[Path] = []
    token = _WRITTEN.set(written)
    try:
        yield written
    finally:
        _WRITTEN.reset(token)
