"""Installed like any package: a wheel built from this tree, installed (not editable) into a fresh
venv, mixes a song with the shipped models and the shipped chains, from a folder outside the tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, f"{cmd}: {run.stderr[-2000:]}"
    return run


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_mixes_with_the_shipped_models(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("plugin_bridge", "presets", "models"):
        shutil.copytree(
            ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")
        )
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        src,
    )
    (wheel,) = wheels.glob("plugin_bridge-*.whl")
    with zipfile.ZipFile(wheel) as z:  # the web app's page travels with the package
        names = set(z.namelist())
    assert {f"plugin_bridge/web/static/{n}" for n in ("index.html", "app.js", "style.css")} <= names
    compiled = shutil.which("cc") is not None or shutil.which("gcc") is not None
    if compiled:  # the optional C kernels are built when a compiler is there
        assert any(n.startswith("plugin_bridge/backends/dsp/_ckernels") for n in names), sorted(names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # the dependencies come from this test's environment (a path entry, so its editable install of
    # plugin_bridge, a .pth hook inside that folder, is not picked up); the package from the wheel
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    t = np.arange(44100 * 6) / 44100
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    sf.write(work / "song.wav", np.stack([x, 0.9 * x], axis=1).astype(np.float32), 44100)
    where = _run(
        [
            str(py),
            "-c",
            "import plugin_bridge, plugin_bridge.ml.inference as i; print(plugin_bridge.__file__); "
            "print(i.models_dir()); from plugin_bridge.backends.dsp import _kernels as k; print(k.compiler())",
        ],
        work,
    ).stdout.split()
    assert all(p.startswith(str(env_dir)) for p in where[:2]), where
    assert where[2] == ("c" if compiled else "numba"), where
    _run([str(env_dir / "bin" / "plugin-bridge"), "mix", "song.wav", "-o", "out", "--backend", "numpy"], work)
    report = json.loads((work / "out" / "report.json").read_text())
    assert report["model"] == "ensemble" and abs(report["output_lufs"] + 14.0) < 0.6
    assert sf.info(str(work / "out" / "mix.wav")).frames >= 44100 * 6
