"""Third-party plugins are hosted in a child process (`plugin_bridge.backends.host_process`).

Issue: a ZamEQ2 VST3 hosted by pedalboard and then by DawDreamer in one process segfaulted in the
second host, depending on heap layout (a full plugin cache decided it). These tests check that the
calling process never maps a plugin's code, that a crash in the child is a one-line error, and that
hosted renders give the same audio as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_bridge.backends.host_process import HostProcessError, call_in_host_process
from plugin_bridge.errors import ChainError

ZAM_EQ = Path("/usr/lib/vst3/ZamEQ2.vst3")
ZAM_COMP_VST2 = Path("/usr/lib/vst/ZamCompX2-vst.so")


def _has_dawdreamer() -> bool:
    try:
        import dawdreamer  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def test_a_crash_in_the_child_is_one_error_and_the_caller_lives():
    with pytest.raises(HostProcessError) as err:
        call_in_host_process("os:abort", what="a plugin that aborts")
    msg = str(err.value)
    assert "\n" not in msg
    assert "crashed (SIGABRT)" in msg and "a plugin that aborts" in msg


def test_errors_raised_on_purpose_in_the_child_come_back_as_they_are():
    with pytest.raises(ChainError, match="no-such-chain"):
        call_in_host_process("plugin_bridge.chain:load_chain", "no-such-chain")
    # a library error becomes a one-line HostProcessError with the library's message
    with pytest.raises(HostProcessError, match="ValueError: invalid literal"):
        call_in_host_process("builtins:int", "not a number")


MAPPED = """
import json, os, sys
import numpy as np
from plugin_bridge import render_array
from plugin_bridge.effects import Effect
x = (np.random.default_rng(3).standard_normal((2, 22050)) * 0.2).astype(np.float32)
eq = [Effect("mid", "peak", {"cutoff_hz": 1000.0, "gain_db": 6.0, "q": 1.0}, plugin="ZamEQ2")]
outs = {be: render_array(x, 44100, eq, backend=be, strict=True) for be in sys.argv[1:]}
maps = open(f"/proc/{os.getpid()}/maps").read().splitlines()
libs = sorted({ln.split()[-1] for ln in maps if "/usr/lib/vst" in ln or "/usr/lib/lv2" in ln})
gain = {be: float(10 * np.log10(np.mean(y**2) / np.mean(x**2))) for be, y in outs.items()}
diff = float(np.max(np.abs(outs[sys.argv[1]] - outs[sys.argv[-1]])))
print(json.dumps({"mapped": libs, "gain": gain, "diff": diff}))
"""


@pytest.mark.plugins
@pytest.mark.skipif(not ZAM_EQ.exists(), reason="zam-plugins is not installed (apt-get install zam-plugins)")
def test_hosted_render_maps_no_plugin_into_the_calling_process():
    """The same VST3 through pedalboard, then DawDreamer, in a fresh process: the audio is right and
    no plugin library was ever loaded into that process."""
    backends = ["pedalboard"] + (["dawdreamer"] if _has_dawdreamer() else [])
    run = subprocess.run([sys.executable, "-c", MAPPED, *backends], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["mapped"] == []
    # a +6 dB bell at 1 kHz on white noise: louder than the input (the plugin ran), well under +6 dB
    for gain in got["gain"].values():
        assert 0.3 < gain < 6.0
    assert got["diff"] < 1e-4  # pedalboard and DawDreamer host the same plugin to the same audio


SCENARIO = """
import sys
import numpy as np
from plugin_bridge import render_array
from plugin_bridge.effects import Effect
x = (np.random.default_rng(0).standard_normal((2, 22050)) * 0.2).astype(np.float32)
eq = [Effect("mid", "peak", {"cutoff_hz": 1000.0, "gain_db": 6.0, "q": 1.0}, plugin="ZamEQ2")]
comp = [Effect("comp", "compressor", {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 5.0,
        "release_ms": 100.0, "makeup_db": 0.0}, plugin="ZamCompX2")]
render_array(x, 44100, eq + comp, backend="pedalboard", strict=True)
render_array(x, 44100, eq + comp, backend="dawdreamer", strict=True)
print("ok")
"""


@pytest.mark.plugins
@pytest.mark.slow
@pytest.mark.skipif(
    not (ZAM_EQ.exists() and ZAM_COMP_VST2.exists() and _has_dawdreamer()),
    reason="needs zam-plugins (VST3 and VST2) and dawdreamer",
)
def test_a_full_plugin_cache_no_longer_crashes_the_pedalboard_then_dawdreamer_pair(tmp_path):
    """The reported crash: pedalboard hosts ZamEQ2/ZamCompX2, then DawDreamer hosts them, with a big
    plugin cache. Five fresh processes, each with a cache padded to the size of a full scan."""
    cache = tmp_path / "plugins.json"
    padding = {
        f"vst2:/nowhere/pad{i}.so": {
            "ref": {"format": "vst2", "name": f"pad{i}", "location": f"/nowhere/pad{i}.so"},
            "status": "ok",
            "reason": "",
            "info": {"parameters": [{"index": k, "name": f"p{k}", "value": 0.5} for k in range(30)]},
        }
        for i in range(400)
    }
    from plugin_bridge.plugins.discovery import CACHE_VERSION

    cache.write_text(json.dumps({"version": CACHE_VERSION, "plugins": padding}), encoding="utf-8")
    env = dict(os.environ, PLUGIN_BRIDGE_CACHE=str(cache))
    for _ in range(5):
        run = subprocess.run([sys.executable, "-c", SCENARIO], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip() == "ok"
