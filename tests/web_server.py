"""A real ``plugin-bridge serve`` in a child process on a free port, for the web tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


class Server:
    """``plugin-bridge serve`` running on 127.0.0.1 (``url``), stopped by `stop`."""

    def __init__(self, root: Path, workspace: Path, home: Path, *extra: str) -> None:
        env = {**os.environ, "PLUGIN_BRIDGE_HOME": str(home), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin_bridge.cli", "serve", "--port", "0", "--root", str(root)]
            + ["--workspace", str(workspace), "--backend", "pedalboard", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"http://[^/]+:(\d+)/", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.first_line = line

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        raw: bytes | None = None,
        headers: dict | None = None,
    ) -> tuple[int, dict | bytes]:
        """``(status, JSON answer or bytes)`` of one request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, payload, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, (json.loads(payload) if "json" in ctype else payload)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(check, timeout: float = 30.0, every: float = 0.1):
    """Call ``check`` until it returns a truthy value (returned) or ``timeout`` s pass (AssertionError)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("condition not met in time")


#: How the tests start Debian's chromium headless (no sandbox as root; no background networking:
#: this machine's closed network refuses it).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str | None:
    """Debian's chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def system_chromium():
    """A headless browser on Debian's chromium through playwright (no browser download); the
    calling test is skipped, with the reason, when either is missing."""
    import pytest

    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the test extra's playwright is not installed"
    )
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
