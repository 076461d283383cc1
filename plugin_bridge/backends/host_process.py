"""Third-party plugins are hosted in a child process: a plugin that crashes ends the child, not you.

Why: plugins are foreign native code. Some keep process-wide state between instances and hosts
(measured here: a DPF VST3 module loaded by pedalboard's JUCE and then by DawDreamer's JUCE in one
process calls back through pointers the first host freed; whether that segfaults depends on how the
heap happens to be laid out, so an unrelated change such as a bigger plugin cache decided it).
Probing in a subprocess cannot protect against that: the crash happens at render time, after a
clean probe. So every chain with a hosted slot renders in a child: ``python -m
plugin_bridge.backends.host_process FD`` builds the processor there and streams blocks over a
socket; the parent holds a `HostProcessProcessor` with the same `Processor` interface.

- A crash, a hang-up or an error exit in the child is a `HostProcessError` (a `PluginBridgeError`:
  one line on the CLI) naming the slots and the plugins, with the signal and the child's last
  stderr line; the caller's process and its files are untouched.
- Errors raised on purpose in the child (`PluginBridgeError` subclasses) are re-raised as they are.
- The child's stderr (plugins write diagnostics such as DPF's "asked to delete component" there) is
  kept in a temporary file and shown only when the child fails.
- `call_in_host_process` runs any picklable module-level function in a fresh child (state capture
  of a plugin loaded for the purpose, reading a plugin's parameters for an export).

Numerics do not change: the child runs the same backend code on the same float32 blocks.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection

import numpy as np

from ..effects import Effect
from ..errors import PluginBridgeError
from . import get_backend

#: Set in the child's environment: a processor built there is built in-process (no grandchild).
CHILD_ENV = "PLUGIN_BRIDGE_HOST_CHILD"


class HostProcessError(PluginBridgeError):
    """The child process hosting third-party plugins crashed, hung up or failed."""


def in_host_process() -> bool:
    """True inside a plugin host child (processors are then built in this process)."""
    return os.environ.get(CHILD_ENV) == "1"


def hosted_slots(effects: Sequence[Effect]) -> list[Effect]:
    """The effects of ``effects`` that name a third-party plugin."""
    return [e for e in effects if e.plugin]


def _describe(effects: Sequence[Effect]) -> str:
    return ", ".join(f"{e.id} ({e.plugin})" for e in hosted_slots(effects)) or "no plugin slots"


class _Child:
    """One child process and the socket to it; every failure becomes a `HostProcessError`."""

    def __init__(self, what: str) -> None:
        self.what = what
        parent_sock, child_sock = socket.socketpair()
        self._stderr = tempfile.TemporaryFile(prefix="plugin-bridge-host-")
        env = dict(os.environ, **{CHILD_ENV: "1"})
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child_sock.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                pass_fds=(child_sock.fileno(),),
                env=env,
                start_new_session=True,
            )
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())

    def request(self, message: tuple, doing: str) -> object:
        """Send ``message`` and return the child's answer; raise what the child raised or died of."""
        try:
            self.conn.send(message)
            status, payload = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise self._died(doing) from None
        if status == "error":
            self.close()
            raise payload  # type: ignore[misc]
        return payload

    def _died(self, doing: str) -> HostProcessError:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if code < 0:
            try:
                how = f"crashed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        tail = self._stderr_tail()
        self.close()
        detail = f"; its last message: {tail}" if tail else ""
        return HostProcessError(f"the plugin host process {how} while {doing} ({self.what}){detail}")

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            lines = [
                ln.strip()
                for ln in self._stderr.read().decode("utf-8", "replace").splitlines()
                if ln.strip() and not ln.startswith("DPF warning")
            ]
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def close(self) -> None:
        """Ask the child to exit, reap it and release the socket and the stderr file."""
        if self.conn is not None:
            try:
                self.conn.send(("close",))
            except OSError:
                pass
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()


class HostProcessProcessor:
    """A `Processor` whose chain (with its hosted plugins) runs in a child process.

    Built by `prepare_in_host_process`; ``latency`` and ``out_channels`` are the child processor's.
    `plugin_states` returns the hosted plugins' states when the backend's processor offers them.
    The child exits when this object is closed or collected.
    """

    def __init__(
        self,
        backend: str,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        states: Mapping[str, dict] | None = None,
    ) -> None:
        self._child = _Child(f"{backend} backend, plugin slots {_describe(effects)}")
        latency, out_channels = self._child.request(
            ("prepare", backend, list(effects), float(sample_rate), int(channels), dict(states or {})),
            "loading the plugins",
        )
        self.latency = int(latency)
        self.out_channels = int(out_channels)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the next ``(channels, n)`` float32 block in the child."""
        return self._child.request(("process", np.ascontiguousarray(block, dtype=np.float32)), "rendering")

    def plugin_states(self) -> dict[str, dict]:
        """``{effect id: state}`` of the hosted plugins (backends whose processors can tell)."""
        return self._child.request(("states",), "capturing the plugin states")

    def close(self) -> None:
        """End the child process."""
        self._child.close()

    def __del__(self) -> None:
        child = getattr(self, "_child", None)
        if child is not None:
            child.close()


def prepare_in_host_process(
    backend: str,
    effects: Sequence[Effect],
    sample_rate: float,
    channels: int,
    states: Mapping[str, dict] | None = None,
) -> HostProcessProcessor:
    """A processor for ``effects`` on backend ``backend`` (a name) that runs in a child process."""
    return HostProcessProcessor(backend, effects, sample_rate, channels, states)


def call_in_host_process(function: str, *args: object, what: str = "") -> object:
    """Run ``function`` (``"package.module:name"``) with picklable ``args`` in a fresh child process.

    Returns its (picklable) result; what it raises on purpose is re-raised here; a crash is a
    `HostProcessError` naming ``what``.
    """
    module, _, name = function.partition(":")
    child = _Child(what or function)
    try:
        return child.request(("call", module, name, args), f"running {name}")
    finally:
        child.close()


# --------------------------------------------------------------------------------------------
# The child side
# --------------------------------------------------------------------------------------------


def _serve(conn: Connection) -> None:

    proc = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "close":
            return
        try:
            if kind == "prepare":
                _, backend, effects, sample_rate, channels, states = message
                proc = get_backend(backend).prepare(effects, sample_rate, channels, states or None)
                reply: object = (int(proc.latency), int(proc.out_channels))
            elif kind == "process":
                reply = np.asarray(proc.process(message[1]), dtype=np.float32)  # type: ignore[union-attr]
            elif kind == "states":
                states_of = getattr(proc, "plugin_states", None)
                reply = states_of() if states_of is not None else {}
            elif kind == "call":
                _, module, name, args = message
                reply = getattr(importlib.import_module(module), name)(*args)
            else:
                raise HostProcessError(f"plugin host: unknown request {kind!r}")
        except PluginBridgeError as e:
            conn.send(("error", e))
            continue
        except Exception as e:  # a library failing: keep its message, as a PluginBridgeError
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            conn.send(("error", HostProcessError(f"{type(e).__name__}: {msg}")))
            continue
        conn.send(("ok", reply))


def main(argv: Sequence[str] | None = None) -> None:
    """Child entry point: serve requests on the inherited socket ``FD`` until told to close."""
    fd = int((argv if argv is not None else sys.argv[1:])[0])
    conn = Connection(fd)
    try:
        _serve(conn)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip plugin destructors at exit (some DPF plugins complain or crash there)


if __name__ == "__main__":  # pragma: no cover - the child process entry point
    # run the module under its package name, so the errors it sends unpickle in the parent
    importlib.import_module("plugin_bridge.backends.host_process").main()
