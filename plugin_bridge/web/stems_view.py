"""The web app's stems view: a folder of stems mixed by the AI, one strip per track to adjust.

Opening a folder runs the stems mix (`plugin_bridge.stems.job.mix_stems`) into the workspace and
keeps its session: per track the role, fader, pan, mute, solo, the AI's insert chain and sends,
and why. The loop region of every stem is cut once into the view's folder; a change re-renders
only the loop through the session graph (`render_session_array`, before mastering): **A** is the
stems as given (summed at unity), **B** the mix with the strips' settings. Accepting writes the
session with every field set, so the stems mix keeps them all, and renders, masters and exports
it (`mix_stems` of that session file) into ``accepted/``, staged and renamed when complete.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import yaml

from ..audio_io import READ_SUFFIXES, write_audio
from ..graph import render_session_array
from ..graph.signal_flow import pan_to_stereo
from ..session import session_from_dict
from ..stems.job import mix_stems
from .readouts import Readout, measure
from .safety import AccessError

LOOP_S = 8.0
GAIN_DB = (-60.0, 24.0)
FIELDS = ("gain_db", "pan", "mute", "solo")


def stem_folders(root: Path, limit: int = 500) -> list[str]:
    """Folders under ``root`` (relative ``/`` paths) holding two or more audio files directly: the
    stems folders the page can open (not following links, skipping hidden folders)."""
    root = root.resolve()
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d))
        )
        audio = [f for f in files if not f.startswith(".") and Path(f).suffix.lower() in READ_SUFFIXES]
        if len(audio) >= 2 and Path(folder) != root:
            out.append(Path(folder).relative_to(root).as_posix())
            if len(out) >= limit:
                break
    return sorted(out)


@dataclass
class StemsView:
    """One opened stems folder: the session (``data``, stem paths absolute), the AI's version of
    its tracks (``ai_tracks``, for reset), the decisions' report rows, the loop and the previews."""

    id: str
    name: str
    source: Path
    folder: Path
    data: dict
    ai_tracks: list[dict]
    report: dict[str, dict]
    backend: str
    loop: tuple[float, float] = (0.0, LOOP_S)
    history: list[list[dict]] = field(default_factory=list)
    version: int = 0
    preview_ms: float = 0.0
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    readouts: dict[str, Readout] = field(default_factory=dict)
    accepted: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sample_rate(self) -> int:
        """The session's rate (Hz)."""
        return int(self.data["sample_rate"])

    def cut_loop(self) -> None:
        """Write every stem's loop region (at its own rate) into ``folder/loop`` and measure A."""
        loop_dir = self.folder / "loop"
        loop_dir.mkdir(parents=True, exist_ok=True)
        start, end = self.loop
        total = np.zeros((2, int(round((end - start) * self.sample_rate))), dtype=np.float32)
        for t in self.data["tracks"]:
            with sf.SoundFile(t["file"]) as f:
                sr = f.samplerate
                f.seek(min(int(start * sr), f.frames))
                x = f.read(int(round((end - start) * sr)), dtype="float32", always_2d=True).T
            write_audio(loop_dir / f"{t['name']}.wav", x if x.shape[1] else np.zeros((x.shape[0], 1)), sr)
            if sr != self.sample_rate and x.shape[1]:  # as the session graph does: soxr, HQ
                x = np.ascontiguousarray(soxr.resample(x.T, sr, self.sample_rate, "HQ").T, dtype=np.float32)
            if x.shape[1]:
                y = pan_to_stereo(x, 0.0)
                total[:, : y.shape[1]] += y[:, : total.shape[1]]
        self.audio["a"] = total
        self.readouts["a"] = measure(total, self.sample_rate)

    def render_preview(self) -> None:
        """The loop through the session with the strips' settings (before mastering): version B."""
        loop = copy.deepcopy(self.data)
        for t in loop["tracks"]:
            t["file"] = str(self.folder / "loop" / f"{t['name']}.wav")
        t0 = time.perf_counter()
        mix, _, _ = render_session_array(session_from_dict(loop, self.folder), self.backend, tail=False)
        self.preview_ms = 1000.0 * (time.perf_counter() - t0)
        self.audio["b"] = mix
        self.readouts["b"] = measure(mix, self.sample_rate)
        self.version += 1

    def set_tracks(self, changes: Mapping[str, Mapping[str, object]]) -> None:
        """Apply ``{track: {gain_db, pan, mute, solo}}`` (checked) and re-render the preview."""
        tracks = {t["name"]: t for t in self.data["tracks"]}
        new = copy.deepcopy(self.data["tracks"])
        by = {t["name"]: t for t in new}
        for name, fields in changes.items():
            if name not in tracks:
                raise AccessError(f"no track {name!r} in this mix")
            if not isinstance(fields, Mapping):
                raise AccessError(f"track {name!r}: give {{field: value}}")
            for k, v in fields.items():
                if k not in FIELDS:
                    raise AccessError(
                        f"track {name!r}: {k!r} cannot be set here (valid: {', '.join(FIELDS)})"
                    )
                if k in ("mute", "solo"):
                    if not isinstance(v, bool):
                        raise AccessError(f"track {name!r}: {k} must be true or false")
                    by[name][k] = v
                    continue
                lo, hi = GAIN_DB if k == "gain_db" else (-1.0, 1.0)
                if (
                    isinstance(v, bool)
                    or not isinstance(v, int | float)
                    or not math.isfinite(v)
                    or not lo <= v <= hi
                ):
                    raise AccessError(f"track {name!r}: {k} {v!r} is outside {lo:g}..{hi:g}")
                by[name][k] = float(v)
        self.history.append(self.data["tracks"])
        self.data["tracks"] = new
        self.render_preview()

    def undo(self) -> bool:
        """Back to the tracks before the last change; False when there is none."""
        if not self.history:
            return False
        self.data["tracks"] = self.history.pop()
        self.render_preview()
        return True

    def reset(self) -> None:
        """Back to the AI's proposal."""
        self.history.append(self.data["tracks"])
        self.data["tracks"] = copy.deepcopy(self.ai_tracks)
        self.render_preview()

    def state(self) -> dict:
        """JSON-ready state for the page."""
        tracks = []
        for t in self.data["tracks"]:
            rep = self.report.get(t["name"], {})
            tracks.append(
                {
                    "name": t["name"],
                    "role": rep.get("role"),
                    "role_confidence": rep.get("role_confidence"),
                    "silent": rep.get("silent", False),
                    "gain_db": t.get("gain_db", 0.0),
                    "pan": t.get("pan", 0.0),
                    "mute": bool(t.get("mute", False)),
                    "solo": bool(t.get("solo", False)),
                    "chain": [
                        {"type": e["type"], "params": e["params"]}
                        for e in (t.get("chain") or {}).get("effects", [])
                    ],
                    "sends": t.get("sends") or [],
                    "reasons": rep.get("reasons", []),
                }
            )
        return {
            "kind": "stems",
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "loop": list(self.loop),
            "preview_ms": round(self.preview_ms, 1),
            "readouts": {k: r.to_dict() for k, r in self.readouts.items()},
            "tracks": tracks,
            "accepted": self.accepted,
        }

    def session_file_data(self) -> dict:
        """The session with every field the AI could decide set explicitly (so it keeps them)."""
        data = copy.deepcopy(self.data)
        for t in data["tracks"]:
            t.setdefault("gain_db", 0.0)
            t.setdefault("pan", 0.0)
            t["chain"] = t.get("chain") or {"effects": []}
            t["sends"] = t.get("sends") or []
        return data

    def accept(self, accepted_root: Path) -> dict:
        """Write, render, master and export this mix into ``accepted_root/<name>-<time>-<id>/``."""
        label = f"{self.name.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}-{self.id[:6]}"
        staging = accepted_root / f".{label}.part"
        final = accepted_root / label
        staging.mkdir(parents=True)
        try:
            session_path = staging / "session_in.yaml"
            session_path.write_text(
                yaml.safe_dump(self.session_file_data(), sort_keys=False), encoding="utf-8"
            )
            result = mix_stems(
                session_path, staging / "mix", backend=self.backend, name=self.name.split("/")[-1]
            )
            session_path.unlink()
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        files = sorted(p.relative_to(accepted_root).as_posix() for p in final.rglob("*") if p.is_file())
        entry = {"folder": label, "files": files, "output_lufs": round(result.output_lufs, 2)}
        self.accepted.append(entry)
        return entry


def open_stems_view(
    sid: str, path: Path, name: str, folder: Path, backend: str, start_s: float | None = None
) -> StemsView:
    """Mix the stems folder ``path`` with the AI into ``folder/ai`` and open it as a `StemsView`."""
    result = mix_stems(path, folder / "ai", backend=backend, export_formats="json", name=name.split("/")[-1])
    data = yaml.safe_load((folder / "ai" / "session.yaml").read_text(encoding="utf-8"))
    for t in data["tracks"]:
        t["file"] = str((folder / "ai" / t["file"]).resolve())
    report = {t.name: t.to_dict() for t in result.tracks}
    view = StemsView(sid, name, path, folder, data, copy.deepcopy(data["tracks"]), report, backend)
    length = max(sf.info(t["file"]).duration for t in data["tracks"])
    start = max(0.0, length / 2 - LOOP_S / 2) if start_s is None else start_s
    view.loop = (start, min(length, start + LOOP_S))
    view.cut_loop()
    view.render_preview()
    return view
