"""Run items in forked child processes with a timeout: a crash or a hang costs one item, not the batch.

A single-threaded scheduler (no threads, so forking is safe) keeps up to ``slots`` children; each
child runs one job, sends its pickled result through a pipe and exits with ``os._exit``. A child
killed by a signal (a segfaulting plugin), one that exits without a result, and one that exceeds the
timeout (it is killed) all come back as failures with a one-line reason. Plain ``os.fork`` is used so
it also works inside daemonic worker processes (Dask's).
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..errors import PluginBridgeError

Job = Callable[[object], dict]


@dataclass
class Outcome:
    """How one job ended: ``ok`` with ``result``, or not with ``error``; wall ``seconds``."""

    key: object
    ok: bool
    result: dict | None
    error: str | None
    seconds: float


def _child(job: Job, arg: object, wfd: int) -> None:
    faulthandler.disable()  # a crash is reported by the parent in one line, not as a stack dump
    try:
        try:
            payload = ("ok", job(arg))
        except PluginBridgeError as e:
            payload = ("error", str(e))
        except BaseException as e:  # everything else, with where it happened
            tb = traceback.extract_tb(e.__traceback__)
            where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            payload = ("error", f"{type(e).__name__}: {e}{where}")
        data = pickle.dumps(payload)
        view = memoryview(data)
        while view:
            n = os.write(wfd, view)
            view = view[n:]
    finally:
        os._exit(0)


@dataclass
class _Running:
    key: object
    pid: int
    fd: int
    start: float
    buf: bytearray


def _reap(r: _Running, timed_out: float | None) -> Outcome:
    seconds = time.monotonic() - r.start
    if timed_out is not None:
        os.kill(r.pid, signal.SIGKILL)
    _, status = os.waitpid(r.pid, 0)
    os.close(r.fd)
    if timed_out is not None:
        return Outcome(r.key, False, None, f"timed out after {timed_out:g} s (killed)", seconds)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return Outcome(r.key, False, None, f"crashed: worker killed by {signal.Signals(sig).name}", seconds)
    if not r.buf:
        return Outcome(
            r.key, False, None, f"worker exited with status {os.WEXITSTATUS(status)} and no result", seconds
        )
    kind, payload = pickle.loads(bytes(r.buf))
    if kind == "ok":
        return Outcome(r.key, True, payload, None, seconds)
    return Outcome(r.key, False, None, str(payload), seconds)


def run_isolated(
    job: Job, args: Iterable[tuple[object, object]], slots: int, timeout: float | None = None
) -> Iterator[Outcome]:
    """Run ``job(arg)`` for each ``(key, arg)`` in forked children, at most ``slots`` at a time.

    Yields an `Outcome` per job as they finish (not in order). ``timeout`` is seconds per job.
    """
    todo = iter(args)
    running: dict[int, _Running] = {}
    exhausted = False
    while True:
        while not exhausted and len(running) < max(1, slots):
            try:
                key, arg = next(todo)
            except StopIteration:
                exhausted = True
                break
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                os.close(rfd)
                _child(job, arg, wfd)
            os.close(wfd)
            running[rfd] = _Running(key, pid, rfd, time.monotonic(), bytearray())
        if not running:
            return
        now = time.monotonic()
        wait = 0.5
        if timeout is not None:
            wait = max(0.0, min(wait, min(r.start + timeout - now for r in running.values())))
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            r = running[fd]
            chunk = os.read(fd, 1 << 20)
            if chunk:
                r.buf.extend(chunk)
            else:  # EOF: the child has exited (or is about to)
                del running[fd]
                yield _reap(r, None)
        if timeout is not None:
            now = time.monotonic()
            for fd, r in list(running.items()):
                if now - r.start > timeout:
                    del running[fd]
                    yield _reap(r, timeout)
