"""Writing stems and session files for session tests."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import yaml
from signals import SR


def write_wav(tmp_path, name, audio, sr=SR):
    """Write ``(channels, n)`` audio as a float WAV in ``tmp_path``; returns the path."""
    path = tmp_path / name
    sf.write(path, np.asarray(audio).T, sr, subtype="FLOAT")
    return path


def write_session(tmp_path, data, name="s.yaml"):
    """Write a session dict as YAML in ``tmp_path``; returns the path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def tracks(*names, **extra):
    """Track entries ``{"name": n, "file": "n.wav", **extra[n]}`` for each name."""
    return [{"name": n, "file": f"{n}.wav", **extra.get(n, {})} for n in names]
