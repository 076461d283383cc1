"""Stage progress of long jobs: a bar on stderr that appears only if the job runs over ~5 s.

A job takes ``progress``, a callable it calls with a short label after each stage (`Progress.step`);
the command line builds one with `stage_bar`, which shows a tqdm bar on stderr once `DELAY_S`
seconds have passed, and never when stderr is not a terminal or ``--quiet`` is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

#: A job shorter than this (s) shows no bar.
DELAY_S = 5.0

#: What a job calls after each stage: ``progress("render")``.
Progress = Callable[[str], None]


def no_progress(label: str) -> None:
    """The default `Progress`: nothing."""


class StageBar:
    """A tqdm bar of ``total`` stages on stderr, shown after `DELAY_S` s (see the module docstring)."""

    def __init__(self, total: int, desc: str, enabled: bool | None = None) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="stage", delay=DELAY_S, leave=False, file=sys.stderr)

    def __call__(self, label: str) -> None:
        """One more stage done, ``label`` shown beside the bar."""
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_bar(total: int, desc: str, quiet: bool = False) -> StageBar:
    """A `StageBar` for the command line: off with ``quiet``, else only on a terminal."""
    return StageBar(total, desc, False if quiet else None)


class FrameBar:
    """A tqdm bar of ``total`` audio frames (None: a count without an end) on stderr, shown after
    `DELAY_S` s, only on a terminal (never with ``quiet``); call it with the frames just done."""

    def __init__(self, total: int | None, desc: str, quiet: bool = False) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=desc,
                unit="frame",
                unit_scale=True,
                delay=DELAY_S,
                leave=False,
                file=sys.stderr,
            )

    def __call__(self, frames: int) -> None:
        """``frames`` more frames done."""
        if self.bar is not None:
            self.bar.update(frames)

    def __enter__(self) -> FrameBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
