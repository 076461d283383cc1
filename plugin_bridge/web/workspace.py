"""The web app's state: one `SongSession` per opened song, kept apart by random session ids.

A session holds the song, the AI's proposal (moved toward the user's taste when the profile has
learned one), the current settings with their undo history, the loop region and an optional
reference track. Everything audible goes through `plugin_bridge.pipeline`:

- **preview**: the loop region (plus `PRE_ROLL_S` before it, so the compressor has settled) through
  the chain with `pipeline.render_choice`, cut to the loop. It is the chain's output before
  mastering; the page plays every version at the same integrated loudness by default, so the
  mastering gain is not what you hear change;
- **full render**: the whole song through the chain and the master stage (`pipeline.apply_master`),
  written to the session's folder;
- **accept**: `pipeline.run_mix` writes the mastered mix, its recipe and every DAW export (REAPER
  project, presets, MIDI CC, DawDreamer script) into a staging folder that is renamed into
  ``accepted/`` only when complete, and the accept is committed to the taste profile
  (`plugin_bridge.ml.preference`) before the response goes out.

Files are read only from the served root (`safety.resolve_under`) and the workspace; written only
in the workspace (``uploads/``, ``sessions/<id>/``, ``accepted/``).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio_io import write_audio
from ..backends import get_backend
from ..chain import DEFAULT_CHAIN, default_chain, default_space
from ..errors import ParameterError
from ..export.recipe import master_entry
from ..files import temporary_file_beside
from ..ml.assistant import analyse
from ..ml.preference import Accept, Profile, taste_features
from ..pipeline import Choice, apply_master, choose, load_song, personalize, render_choice, run_mix
from .readouts import Readout, finite_or_none, measure
from .safety import AccessError, Limits, check_audio_name, check_duration, new_session_id, safe_file_name
from .stems_view import StemsView, open_stems_view

#: Seconds rendered before the loop region so that the compressor's state has settled (s).
PRE_ROLL_S = 0.5
#: Default loop length (s).
DEFAULT_LOOP_S = 8.0
#: Sessions kept in memory; opening one more forgets the least recently opened.
MAX_SESSIONS = 16
#: Undo steps kept per session.
MAX_HISTORY = 200


def _who_set(name: str, choice: Choice) -> dict:
    """Who set a parameter and how sure it was: a model move (confidence 0..1), a measurement, a rule."""
    prop = choice.proposal
    if prop is not None:
        for n, p, s, c, a in zip(
            prop.moves.names,
            prop.moves.proposed_db,
            prop.moves.sigma_db,
            prop.moves.confidence,
            prop.moves.applied_db,
            strict=True,
        ):
            if n == name:
                return {
                    "by": "model",
                    "confidence": round(c, 3),
                    "proposed_db": round(p, 2),
                    "uncertainty_db": round(s, 2),
                    "applied_db": round(a, 2),
                }
    if name == "input.gain_db":
        return {"by": "measured", "note": "brings the song to -18 LUFS before the compressor"}
    if name.startswith("comp.") and prop is not None and prop.compressor is not None:
        return {"by": "rule", "note": "the compressor rule (above)"}
    if name.startswith(("reverb.", "delay.")):
        return {"by": "off", "note": "a corrective mix adds no time effects"}
    return {"by": "default"}


def controls(choice: Choice, ai_values: Mapping[str, float]) -> list[dict]:
    """Every parameter of the default chain as a control, grouped by stage (chain slot), in real
    units, with the AI's value, the proposal (AI + taste) and who set it."""
    groups = []
    for slot in default_chain().slots:
        params = []
        for spec in slot.predicted.values():
            params.append(
                {
                    "name": spec.name,
                    "label": spec.name.split(".", 1)[1],
                    "unit": spec.unit,
                    "min": spec.min,
                    "max": spec.max,
                    "default": spec.default,
                    "curve": spec.curve,
                    "step": spec.step,
                    "ai": ai_values[spec.name],
                    "proposal": choice.values[spec.name],
                    "set_by": _who_set(spec.name, choice),
                }
            )
        note = ""
        if slot.id == "comp" and choice.proposal is not None and choice.proposal.compressor is not None:
            note = choice.proposal.compressor.reason
        groups.append(
            {"stage": slot.id, "type": slot.type, "fixed": dict(slot.fixed), "note": note, "params": params}
        )
    return groups


@dataclass
class SongSession:
    """One opened song (see the module docstring); all changes go through its lock."""

    id: str
    name: str
    source: Path
    audio: np.ndarray
    sample_rate: int
    folder: Path
    choice: Choice
    ai_values: dict[str, float]
    features: np.ndarray
    model: str
    backend: str
    values: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    loop: tuple[float, float] = (0.0, DEFAULT_LOOP_S)
    reference: tuple[np.ndarray, int, str] | None = None
    version: int = 0
    preview: np.ndarray | None = None
    preview_ms: float = 0.0
    readouts: dict[str, Readout] = field(default_factory=dict)
    accepted: list[dict] = field(default_factory=list)
    full_render: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def duration_s(self) -> float:
        """The song's length (s)."""
        return self.audio.shape[1] / self.sample_rate

    def _frames(self) -> tuple[int, int]:
        a, b = self.loop
        return int(round(a * self.sample_rate)), int(round(b * self.sample_rate))

    def loop_audio(self) -> np.ndarray:
        """The original's loop region (version A)."""
        a, b = self._frames()
        return self.audio[:, a:b]

    def reference_audio(self) -> np.ndarray | None:
        """The reference's part at the loop's position (from its start when it is shorter)."""
        if self.reference is None:
            return None
        ref, sr, _ = self.reference
        length = int(round((self.loop[1] - self.loop[0]) * sr))
        start = int(round(self.loop[0] * sr))
        if start + length > ref.shape[1]:
            start = max(0, ref.shape[1] - length)
        return ref[:, start : start + length]

    def current_choice(self) -> Choice:
        """The current settings as a `Choice` on the default chain (the AI's model and proposal kept)."""
        space = default_space()
        vec = space.to_vector(self.values)
        return Choice(
            DEFAULT_CHAIN, dict(self.values), [float(v) for v in vec], self.model, self.choice.proposal
        )

    def render_preview(self) -> None:
        """Render the loop region with the current settings (version B) and measure it."""
        a, b = self._frames()
        pre = min(a, int(round(PRE_ROLL_S * self.sample_rate)))
        t = time.perf_counter()
        out = render_choice(self.audio[:, a - pre : b], self.sample_rate, self.current_choice(), self.backend)
        self.preview = np.ascontiguousarray(out[:, pre : pre + (b - a)])
        self.preview_ms = 1000.0 * (time.perf_counter() - t)
        self.readouts["b"] = measure(self.preview, self.sample_rate)
        self.version += 1

    def measure_sources(self) -> None:
        """Measure versions A and REF of the loop region."""
        self.readouts["a"] = measure(self.loop_audio(), self.sample_rate)
        ref = self.reference_audio()
        if ref is not None:
            self.readouts["ref"] = measure(ref, self.reference[1])
        else:
            self.readouts.pop("ref", None)

    def set_values(self, changes: Mapping[str, object]) -> None:
        """Change parameters (real units; checked against their ranges), keep the old settings for undo."""
        space = default_space()
        new = dict(self.values)
        for name, v in changes.items():
            try:
                spec = space.spec(str(name))
            except ParameterError:
                raise ParameterError(f"unknown parameter {name!r}") from None
            new[spec.name] = spec.check(v)  # type: ignore[arg-type]
        self._push(new)

    def _push(self, new: dict[str, float]) -> None:
        self.history.append(dict(self.values))
        del self.history[:-MAX_HISTORY]
        self.values = new
        self.render_preview()

    def undo(self) -> bool:
        """Go back to the settings before the last change; False when there is nothing to undo."""
        if not self.history:
            return False
        self.values = self.history.pop()
        self.render_preview()
        return True

    def reset(self) -> None:
        """Back to the proposal (the AI's, moved by the taste profile); undoable."""
        self._push(dict(self.choice.values))

    def set_loop(self, start_s: float, end_s: float, limits: Limits) -> None:
        """Move the loop region to ``[start_s, end_s)`` (s; at least 0.5 s, at most ``limits.max_loop_s``)."""
        try:
            a, b = float(start_s), float(end_s)
        except (TypeError, ValueError):
            raise ParameterError("loop start and end must be numbers of seconds") from None
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ParameterError("loop start and end must be finite")
        a = min(max(0.0, a), max(0.0, self.duration_s - 0.5))
        b = min(max(a + 0.5, b), self.duration_s, a + limits.max_loop_s)
        self.loop = (a, b)
        self.measure_sources()
        self.render_preview()

    def state(self) -> dict:
        """Everything the page shows, JSON-ready."""
        return {
            "id": self.id,
            "name": self.name,
            "sample_rate": self.sample_rate,
            "channels": int(self.audio.shape[0]),
            "duration_s": round(self.duration_s, 3),
            "model": self.model,
            "backend": self.backend,
            "loop": [round(self.loop[0], 3), round(self.loop[1], 3)],
            "values": self.values,
            "proposal": self.choice.values,
            "ai_values": self.ai_values,
            "taste_accepts": self.choice.taste_accepts,
            "can_undo": bool(self.history),
            "version": self.version,
            "preview_ms": round(self.preview_ms, 1),
            "readouts": {k: r.to_dict() for k, r in self.readouts.items()},
            "reference": self.reference[2] if self.reference else None,
            "notes": list(self.choice.proposal.notes) if self.choice.proposal else [],
            "full_render": self.full_render,
            "accepted": self.accepted,
        }


class Workspace:
    """The sessions of one server, its served ``root``, its working ``folder`` and taste ``profile``."""

    def __init__(
        self,
        root: Path,
        folder: Path,
        profile: Profile,
        limits: Limits | None = None,
        model: str = "ensemble",
        backend: str = "auto",
    ) -> None:
        self.root = Path(root).resolve()
        self.folder = Path(folder).resolve()
        self.profile = profile
        self.limits = limits or Limits()
        self.model = model
        self.backend = get_backend(backend).name
        self.sessions: dict[str, SongSession] = {}
        self.stems: dict[str, StemsView] = {}
        self._lock = threading.Lock()
        for sub in ("uploads", "sessions", "accepted"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)

    def get(self, sid: str) -> SongSession:
        """The session ``sid`` or `AccessError`."""
        with self._lock:
            s = self.sessions.get(sid)
        if s is None:
            raise AccessError("unknown session; open the song again")
        return s

    def get_stems(self, sid: str) -> StemsView:
        """The stems view ``sid`` or `AccessError`."""
        with self._lock:
            v = self.stems.get(sid)
        if v is None:
            raise AccessError("unknown stems session; open the folder again")
        return v

    def open_stems(self, path: Path, name: str) -> StemsView:
        """Mix the stems folder ``path`` (inside the root) with the AI and open it (`StemsView`)."""
        sid = new_session_id()
        folder = self.folder / "sessions" / sid
        folder.mkdir(parents=True)
        v = open_stems_view(sid, path, name, folder, self.backend)
        with self._lock:
            self.stems[sid] = v
            while len(self.stems) > MAX_SESSIONS:
                self.stems.pop(next(iter(self.stems)))
        return v

    def open_path(self, path: Path, name: str) -> SongSession:
        """Open the audio file ``path`` (already checked to be inside the root or the workspace)."""
        check_audio_name(path.name)
        check_duration(path, self.limits, name)
        audio, sr = load_song(path)
        analysis = analyse(audio, sr)
        ai = choose(audio, sr, model=self.model, analysis=analysis)
        taste = self.profile.model()
        choice = personalize(ai, taste, audio, sr)
        sid = new_session_id()
        s = SongSession(
            id=sid,
            name=name,
            source=path,
            audio=audio,
            sample_rate=sr,
            folder=self.folder / "sessions" / sid,
            choice=choice,
            ai_values=dict(ai.values),
            features=taste_features(audio, sr),
            model=self.model,
            backend=self.backend,
            values=dict(choice.values),
        )
        s.folder.mkdir(parents=True)
        start = max(0.0, min(s.duration_s / 2 - DEFAULT_LOOP_S / 2, s.duration_s - DEFAULT_LOOP_S))
        s.set_loop(start, start + DEFAULT_LOOP_S, self.limits)
        with self._lock:
            self.sessions[sid] = s
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.pop(next(iter(self.sessions)))
        return s

    def save_upload(self, name: str, chunks: Iterable[bytes]) -> Path:
        """Write an upload (streamed ``chunks``) to ``uploads/`` under a safe name, refusing it as
        soon as it passes ``limits.max_upload_bytes``; returns the file."""
        check_audio_name(name)
        target = self.folder / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_file_name(name)}"
        tmp = Path(temporary_file_beside(target))
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.limits.max_upload_bytes:
                        raise AccessError(
                            f"{safe_file_name(name)}: the upload is larger than this server takes "
                            f"({self.limits.max_upload_bytes / 1e6:g} MB)"
                        )
                    f.write(chunk)
            if size == 0:
                raise AccessError(f"{safe_file_name(name)}: the upload is empty")
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def full_render(self, s: SongSession) -> dict:
        """Render the whole song with the current settings, master it and write ``render.wav`` in
        the session's folder; returns its measurements."""
        t = time.perf_counter()
        mixed = render_choice(s.audio, s.sample_rate, s.current_choice(), s.backend)
        mastered, res = apply_master(mixed, s.sample_rate, master_entry(None, None))
        path = write_audio(s.folder / "render.wav", mastered, s.sample_rate)
        s.full_render = {
            "file": Path(path).name,
            "seconds": round(time.perf_counter() - t, 2),
            "lufs": finite_or_none(res.output_lufs),
            "true_peak_dbtp": finite_or_none(res.output_true_peak_dbtp),
            "warnings": list(res.warnings),
        }
        return s.full_render

    def accept(self, s: SongSession) -> dict:
        """Write the mix, its recipe and the DAW exports into ``accepted/`` (staged, then moved into
        place) and store the accept in the taste profile; returns the folder and its files."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        stem = Path(safe_file_name(s.name)).stem or "song"
        final = self.folder / "accepted" / f"{stem}-{stamp}-{s.id[:6]}"
        n = 1
        while final.exists():
            n += 1
            final = final.with_name(f"{stem}-{stamp}-{s.id[:6]}-{n}")
        staging = final.with_name(f".{final.name}.part")
        staging.mkdir(parents=True)
        try:
            done = run_mix(
                s.audio,
                s.sample_rate,
                s.current_choice(),
                staging / "mix.wav",
                staging / "recipe.json",
                source=s.source,
                backend=s.backend,
                export_dir=staging / "presets",
                stem=stem,
            )
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        count = self.profile.add(
            Accept(s.name, tuple(float(v) for v in s.features), dict(s.ai_values), dict(s.values))
        )
        files = sorted(p.relative_to(final).as_posix() for p in final.rglob("*") if p.is_file())
        entry = {
            "folder": final.name,
            "files": files,
            "lufs": finite_or_none(done.master.output_lufs),
            "true_peak_dbtp": finite_or_none(done.master.output_true_peak_dbtp),
            "profile": self.profile.name,
            "profile_accepts": count,
        }
        s.accepted.append(entry)
        return entry
