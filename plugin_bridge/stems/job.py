"""The stems mix job: stems in; a balanced, panned, processed, mastered mix and an editable session out.

``mix_stems(source, out_dir)`` (``plugin-bridge mix STEMS_DIR -o OUT_DIR``, or a session file that
leaves decisions to the AI, see `plugin_bridge.stems.inputs`) runs:

read and check every stem (nothing is written if one is bad) -> analyse each track
(`plugin_bridge.stems.analysis`, one at a time, so memory does not grow with the track count) ->
the model's roles and balance (`plugin_bridge.stems.model`) -> the decisions
(`plugin_bridge.stems.decide`) -> a session (`plugin_bridge.session`) -> render it through the
session graph (the processed stems and the mix, streamed) -> master to the target (streamed) ->
recipe and DAW exports (REAPER project with one track per stem, FX chains, presets) -> report.

Everything is written into a hidden staging folder inside ``out_dir`` and moved into place at the
end, so a failure leaves ``out_dir`` as it was. ``out_dir`` receives:

- ``session.yaml``: the AI's mix as an ordinary session file; ``render-session`` re-renders it to
  the mix before mastering (stem paths are relative to ``out_dir`` where possible);
- ``mix.wav``: the mix, mastered to the target;
- ``stems/NAME.wav``: every processed track (after its chain, pan and fader, before the master
  bus), one per input, named like the input, all the same length;
- ``report.md`` / ``report.json``: per track the role found, fader, pan, EQ, compression and sends,
  and why; the mix's loudness before and after mastering; notes (silent tracks, clipping stems,
  resampled stems);
- ``presets/``: the recipe (``NAME.recipe.json``, re-renders ``mix.wav`` with ``render --recipe``) and
  every DAW export that applies (REAPER project and FX chains, presets, DawDreamer script).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..audio_io import inspect_audio, iter_blocks, read_audio, write_audio
from ..chain import effects_from_dicts
from ..errors import AudioError, ParameterError
from ..export import export_recipe
from ..export.names import safe_name
from ..export.recipe import master_entry, recipe_from_session
from ..files import work_folder_beside, write_atomic
from ..graph import render_session
from ..mastering import MasterSettings
from ..pipeline import apply_master, lufs
from ..progress import Progress, no_progress
from ..render import render_array
from ..session import MASTER, session_from_dict
from .analysis import TrackAnalysis, TrackMeter
from .decide import BALANCES, TrackDecision, bus_dicts, decide_mix
from .inputs import StemsInput, collect_tracks, session_rate
from .model import StemModel

MODEL_ID = "stems"


@dataclass
class StemsMixResult:
    """What `mix_stems` did: the decisions per track, loudness before/after mastering (LUFS), the
    files written, notes and the time of each stage (s)."""

    out_dir: str
    sample_rate: int
    balance: str
    tracks: list[TrackDecision]
    analyses: dict[str, dict]
    premaster_lufs: float
    output_lufs: float
    output_true_peak_dbtp: float
    target: str
    backend: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""

        def num(v: float) -> float | None:
            return round(float(v), 2) if math.isfinite(v) else None

        return {
            "out_dir": self.out_dir,
            "sample_rate": self.sample_rate,
            "balance": self.balance,
            "premaster_lufs": num(self.premaster_lufs),
            "output_lufs": num(self.output_lufs),
            "output_true_peak_dbtp": num(self.output_true_peak_dbtp),
            "target": self.target,
            "backend": self.backend,
            "tracks": [dict(t.to_dict(), measured=self.analyses.get(t.name, {})) for t in self.tracks],
            "files": self.files,
            "notes": self.notes,
            "warnings": self.warnings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


#: Excerpts per track kept to measure what its inserts do to its loudness, and their length (s).
EXCERPTS, EXCERPT_S = 6, 2.0


def analyse_stem(path: Path) -> tuple[TrackAnalysis, np.ndarray, int]:
    """Analyse a stem file while reading it block by block (`TrackMeter`), and keep `EXCERPTS`
    slices of `EXCERPT_S` seconds spread evenly over it (end to end): ``(analysis, excerpt, rate)``."""
    info = inspect_audio(path)
    sr, n = info.sample_rate, info.frames
    size = int(EXCERPT_S * sr)
    starts = [0] if n <= EXCERPTS * size else [int(v) for v in np.linspace(0, n - size, EXCERPTS)]
    size = min(size, n) if len(starts) > 1 else n
    clip = np.zeros((info.channels, size * len(starts)), dtype=np.float32)
    meter = TrackMeter(info.channels, sr)
    offset = 0
    for block in iter_blocks(path):
        meter.add(block)
        m = block.shape[1]
        for k, s0 in enumerate(starts):
            lo, hi = max(s0, offset), min(s0 + size, offset + m)
            if lo < hi:
                clip[:, k * size + lo - s0 : k * size + hi - s0] = block[:, lo - offset : hi - offset]
        offset += m
    return meter.result(), clip, sr


def analyse_stems(
    stems: StemsInput, progress: Progress = no_progress
) -> tuple[list[TrackAnalysis], list[tuple[np.ndarray, int]]]:
    """Analyse every track as its file streams by (memory does not grow with the song); also keep
    a short excerpt of each (`analyse_stem`) with its sample rate."""
    out, parts = [], []
    for t in stems.tracks:
        try:
            a, clip, sr = analyse_stem(t.path)
        except AudioError as e:
            raise AudioError(f"stem {t.name!r}: {e}") from None
        out.append(a)
        parts.append((clip, sr))
        progress(f"analysed {t.name}")
    return out, parts


def measured_insert_gain(
    decisions: list[TrackDecision], parts: list[tuple[np.ndarray, int]], backend: str
) -> None:
    """Correct each fader by what its inserts (high-pass, EQ, compression) really do to the track's
    loudness, measured on its excerpt through the chain on ``backend`` (LU): the rules' estimates
    leave a residual, and the balance is what the faders promise."""
    for d, (clip, sr) in zip(decisions, parts, strict=True):
        if d.silent or not d.effects:
            continue
        before = lufs(clip, sr)
        after = lufs(render_array(clip, sr, effects_from_dicts(d.effects), backend=backend), sr)
        if math.isfinite(before) and math.isfinite(after) and abs(after - before) >= 0.05:
            d.gain_db = float(np.clip(d.gain_db - (after - before), -60.0, 24.0))
            d.reasons.append(
                f"fader {before - after:+.1f} dB: the inserts measured {after - before:+.1f} LU on the track"
            )


def session_data(stems: StemsInput, decisions: list[TrackDecision], out_dir: Path, sample_rate: int) -> dict:
    """The AI's mix as a session dict: the user's fields kept, the AI's decisions for the rest."""
    tracks, used = [], {}
    for t, d in zip(stems.tracks, decisions, strict=True):
        raw: dict = {"name": t.name, "file": _relative(t.path, out_dir)}
        ai = {
            "gain_db": round(d.gain_db, 2),
            "pan": round(d.pan, 3),
            "chain": {"effects": d.effects} if d.effects else None,
            "sends": d.sends or None,
        }
        for k, v in ai.items():
            if k in t.auto and v is not None:
                raw[k] = v
        for k, v in t.given.items():
            raw[k] = v
        for s in raw.get("sends") or []:
            used[s.get("bus")] = True
        tracks.append(raw)
    given_buses = {b.get("name") for b in stems.buses if isinstance(b, dict)}
    buses = list(stems.buses) + [b for b in bus_dicts(used) if b["name"] not in given_buses]
    master = stems.master if stems.master is not None else {"chain": {"chain": "master"}, "gain_db": 0.0}
    return {"sample_rate": int(sample_rate), "tracks": tracks, "buses": buses, "master": master}


def _report_text(label: str, r: StemsMixResult) -> str:
    lines = [
        f"# plugin-bridge stems mix: {label}",
        "",
        f"{len(r.tracks)} tracks at {r.sample_rate} Hz; balance: {r.balance}. Mix before mastering "
        f"{r.premaster_lufs:.1f} LUFS -> mastered {r.output_lufs:.1f} LUFS ({r.target}), true peak "
        f"{r.output_true_peak_dbtp:.1f} dBTP.",
        "",
        "| track | role | fader dB | pan | chain | sends |",
        "|---|---|---|---|---|---|",
    ]
    for t in r.tracks:
        chain = ", ".join(
            f"{e['type']} "
            + " ".join(f"{k}={v:g}" for k, v in e["params"].items() if k in ("cutoff_hz", "gain_db", "ratio"))
            for e in t.effects
        )
        sends = ", ".join(f"{s['bus']} {s['level_db']:+.0f}" for s in t.sends)
        role = "silent" if t.silent else f"{t.role} ({100 * t.role_confidence:.0f} %)"
        lines.append(
            f"| {t.name} | {role} | {t.gain_db:+.1f} | {t.pan:+.2f} | {chain or '-'} | {sends or '-'} |"
        )
    lines += ["", "## Why", ""]
    for t in r.tracks:
        lines.append(f"- **{t.name}**: " + "; ".join(t.reasons))
    if r.notes or r.warnings:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in (*r.notes, *r.warnings)]
    lines += [
        "",
        "## Files",
        "",
        "- `session.yaml`: this mix as a session (`plugin-bridge render-session session.yaml -o x.wav` "
        "re-renders the mix before mastering); edit it and re-render.",
        "- `mix.wav`: the mastered mix; `stems/`: every processed track before the master bus.",
        f"- `presets/`: `{Path(r.files['recipe']).name}` (`plugin-bridge render --recipe` of it re-renders "
        "mix.wav) and the DAW exports (REAPER project with one track per stem).",
        "",
    ]
    return "\n".join(lines)


def _move_into(staging: Path, out: Path) -> None:
    """Move every entry of ``staging`` into ``out``, replacing what was there."""
    for item in staging.iterdir():
        dest = out / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(item, dest)


def mix_stems(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    balance: str = "model",
    target: str | None = None,
    backend: str = "auto",
    intensity: float = 1.0,
    max_limiting_db: float | None = None,
    export_formats: str | tuple[str, ...] = "presets",
    name: str | None = None,
    progress: Progress = no_progress,
) -> StemsMixResult:
    """Mix a folder of stems (or a session file with decisions left to the AI) into ``out_dir``.

    ``balance``: how the faders are set, ``"model"`` (learned), ``"rules"`` (role table) or
    ``"equal"`` (equal loudness); ``target``: the mastering target (None: the default);
    ``intensity`` (0..1) scales every move (0: the stems as given, one common gain, mastered);
    ``max_limiting_db`` caps the master's peak limiting. See the module docstring for the files."""
    if balance not in BALANCES:
        raise ParameterError(f"unknown balance {balance!r}; valid: {', '.join(BALANCES)}")
    t0 = time.perf_counter()
    stems = collect_tracks(source)
    out = Path(out_dir)
    src_dir = stems.source if stems.source.is_dir() else stems.source.parent
    if out.resolve() == src_dir.resolve() and stems.source.is_dir():
        raise ParameterError(f"{out}: the output folder must not be the stems folder")
    settings = MasterSettings.limited_to(max_limiting_db)
    entry = master_entry(target, settings)
    model = StemModel.load()
    seconds = {"read": time.perf_counter() - t0}
    t = time.perf_counter()
    analyses, parts = analyse_stems(stems, progress)
    sr = session_rate(stems)
    names = [tr.name for tr in stems.tracks]
    active = [i for i, a in enumerate(analyses) if not a.silent]
    probs = levels = None
    if active:
        pred = model.predict(np.stack([analyses[i].features for i in active]))
        probs, levels = pred.role_probs, pred.level_db
    decisions = decide_mix(names, analyses, probs, levels, balance, intensity)
    measured_insert_gain(decisions, parts, backend)
    del parts
    seconds["analyse+predict"] = time.perf_counter() - t
    notes = []
    for tr, a in zip(stems.tracks, analyses, strict=True):
        if a.silent:
            notes.append(f"{tr.name}: silent (peak below -90 dBFS); kept silent, not processed")
        if a.clipped_samples:
            notes.append(f"{tr.name}: the stem clips ({a.clipped_samples} samples at full scale)")
        if tr.info.sample_rate != sr:
            notes.append(f"{tr.name}: {tr.info.sample_rate} Hz, resampled to {sr} Hz")
    lengths = {tr.info.frames / tr.info.sample_rate for tr in stems.tracks}
    if max(lengths) - min(lengths) > 0.01:
        notes.append(
            f"stems differ in length ({min(lengths):.2f}-{max(lengths):.2f} s): shorter ones are followed by silence"
        )
    out.mkdir(parents=True, exist_ok=True)
    label = name or (stems.source.stem if stems.source.is_file() else stems.source.name) or "mix"
    data = session_data(stems, decisions, out, sr)
    session = session_from_dict(data, out, str(out / "session.yaml"))
    with work_folder_beside(out / "mix.wav", "stems") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        t = time.perf_counter()
        header = (
            f"# plugin-bridge stems mix of {stems.source} ({balance} balance).\n"
            "# Re-render the mix before mastering: plugin-bridge render-session session.yaml -o mix_raw.wav\n"
        )
        text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
        write_atomic(staging / "session.yaml", text)
        premaster = Path(tmp) / "premaster.wav"
        rendered = render_session(session, premaster, stems_out=staging / "stems", backend=backend)
        seconds["render"] = time.perf_counter() - t
        progress("rendered")
        t = time.perf_counter()
        pre_audio, _ = read_audio(premaster)
        pre_lufs = lufs(pre_audio, sr)
        mastered, mres = apply_master(pre_audio, sr, entry)  # the mix job's master stage
        del pre_audio
        write_audio(staging / "mix.wav", mastered, sr)
        del mastered
        seconds["master"] = time.perf_counter() - t
        progress("mastered")
        t = time.perf_counter()
        recipe = recipe_from_session(session, model_id=MODEL_ID, backend=rendered.backend, master=entry)
        exports = export_recipe(recipe, staging / "presets", export_formats, stem=label)
        if "json" not in exports:  # the recipe goes with the exports whatever formats were asked for
            exports["json"] = [recipe.save(staging / "presets" / f"{safe_name(label)}.recipe.json")]
        seconds["export"] = time.perf_counter() - t
        progress("exported")
        result = StemsMixResult(
            out_dir=str(out),
            sample_rate=sr,
            balance=balance,
            tracks=decisions,
            analyses={tr.name: a.to_dict() for tr, a in zip(stems.tracks, analyses, strict=True)},
            premaster_lufs=pre_lufs,
            output_lufs=mres.output_lufs,
            output_true_peak_dbtp=mres.output_true_peak_dbtp,
            target=mres.target.name,
            backend=rendered.backend,
            notes=notes,
            warnings=list(mres.warnings),
            seconds=seconds,
        )
        result.files = {
            "session": str(out / "session.yaml"),
            "mix": str(out / "mix.wav"),
            "stems": str(out / "stems"),
            "presets": str(out / "presets"),
            "recipe": str(out / "presets" / exports["json"][0].name),
            "report": str(out / "report.md"),
            "report_json": str(out / "report.json"),
        }
        result.notes += [f"exports: {', '.join(sorted(k for k in exports if k != 'notes'))}"]
        write_atomic(staging / "report.md", _report_text(label, result))
        seconds["total"] = time.perf_counter() - t0
        write_atomic(staging / "report.json", json.dumps(result.to_dict(), indent=1))
        _move_into(staging, out)
    return result


__all__ = ["MASTER", "StemsMixResult", "analyse_stems", "mix_stems", "session_data"]
