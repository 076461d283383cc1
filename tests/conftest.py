"""Shared fixtures: generated test files (no downloads)."""

from __future__ import annotations

import pytest
import soundfile as sf
from signals import SR, noise, sine


@pytest.fixture
def stereo_wav(tmp_path):
    """A 2 s stereo 44.1 kHz float WAV of noise plus a sine; returns its path."""
    path = tmp_path / "in put é.wav"
    x = noise(2.0) + sine(440, 2.0)
    sf.write(path, x.T, SR, subtype="FLOAT")
    return path


def pytest_configure(config):
    """The suite's own plugin cache: never the user's (a user's full scan must not change a test run)."""
    import os
    import tempfile

    if not os.environ.get("PLUGIN_BRIDGE_TEST_KEEP_CACHE"):
        folder = tempfile.mkdtemp(prefix="plugin-bridge-test-cache-")
        os.environ["PLUGIN_BRIDGE_CACHE"] = os.path.join(folder, "plugins.json")
