"""The AI mix of a stereo song: ``plugin-bridge mix SONG`` and the seed system's Python API.

`mix_song` runs the job of `plugin_bridge.pipeline` (read -> analyse -> predict -> render -> master
-> write -> recipe -> exports) once per model and writes, beside the mix, a report a musician can
read. The seed system's API is kept: `predict_mixing_parameters`, `apply_mixing_parameters` and
`mix_song_with_all_models`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chain import DEFAULT_CHAIN, default_space
from .files import write_atomic
from .mastering.settings import MasterSettings
from .ml.assistant import INPUT_TARGET_LUFS, analyse_signal
from .ml.inference import ALL_NAMES, check_intensity, load_model
from .ml.preference import Profile
from .pipeline import choose, load_song, open_song, personalize, predict_vector, run_mix
from .progress import Progress, no_progress
from .render import render_array


@dataclass
class MixResult:
    """What `mix_song` did: the model, the vector and real values it chose, loudness before/after
    (LUFS), output files and timings (s)."""

    model: str
    vector: list[float]
    values: dict[str, float]
    sample_rate: int
    input_lufs: float
    mixed_lufs: float
    output_lufs: float
    output_true_peak_dbtp: float
    target: str
    backend: str
    files: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    decisions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""

        def num(v: float) -> float | None:
            return round(float(v), 2) if math.isfinite(v) else None

        return {
            "model": self.model,
            "vector": self.vector,
            "values": self.values,
            "sample_rate": self.sample_rate,
            "input_lufs": num(self.input_lufs),
            "mixed_lufs": num(self.mixed_lufs),
            "output_lufs": num(self.output_lufs),
            "output_true_peak_dbtp": num(self.output_true_peak_dbtp),
            "target": self.target,
            "backend": self.backend,
            "files": self.files,
            "presets": self.presets,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "warnings": self.warnings,
            "decisions": self.decisions,
        }


def predict_mixing_parameters(
    song: str | os.PathLike | np.ndarray,
    sample_rate: int | None = None,
    model: str = "ensemble",
    intensity: float = 1.0,
) -> dict[str, float]:
    """Seed API: the mix parameters (real units, ``{"comp.ratio": 1.0, "low.gain_db": -1.5, ...}``)
    a model proposes for ``song`` (a path, or a ``(channels, samples)`` array with ``sample_rate`` Hz)
    at ``intensity`` (0..1: how far every corrective move goes; 0 = mastering only)."""
    audio, sr = load_song(song, sample_rate)
    return default_space().to_values(predict_vector(audio, sr, model, intensity))


def apply_mixing_parameters(
    audio: np.ndarray,
    sample_rate: int,
    params: Mapping[str, float] | Sequence[float] | np.ndarray,
    backend: str = "auto",
) -> np.ndarray:
    """Seed API: render ``audio`` ``(channels, samples)`` at ``sample_rate`` Hz through the default
    chain set by ``params`` (real values by name, or the normalized vector). Returns float32 audio
    of the same length (no master stage; see `mix_song`)."""
    if isinstance(params, Mapping):
        return render_array(audio, sample_rate, DEFAULT_CHAIN, values=dict(params), backend=backend)
    return render_array(
        audio, sample_rate, DEFAULT_CHAIN, vector=np.asarray(params, dtype=np.float64), backend=backend
    )


def _set_by(name: str, decisions: Mapping) -> str:
    """Who set a parameter, for the report: a model move (with its confidence), a measurement or a rule."""
    for mv in decisions.get("moves", []):
        if mv["parameter"] == name:
            return (
                f"model: proposed {mv['proposed_db']:+.1f} dB +- {mv['uncertainty_db']:.1f}, "
                f"confidence {100 * mv['confidence']:.0f} %"
            )
    if name == "input.gain_db":
        return f"measured: brings the song to {INPUT_TARGET_LUFS:g} LUFS before the compressor"
    if name.startswith("comp.") and decisions.get("compressor"):
        return "rule: the compressor rule (below)"
    if name.startswith(("reverb.", "delay.")):
        return "off unless asked for"
    return "rule"


def _report_text(song: str, r: MixResult, space_names: Sequence[str]) -> str:
    lines = [
        f"# Mix report: {song}",
        "",
        f"- model: {r.model}; intensity {r.decisions.get('intensity', 1.0):g}; backend: {r.backend}; "
        f"target: {r.target}",
        f"- loudness: input {r.input_lufs:.1f} LUFS -> after the chain {r.mixed_lufs:.1f} LUFS -> master "
        f"{r.output_lufs:.1f} LUFS, true peak {r.output_true_peak_dbtp:.1f} dBTP",
        f"- time: {sum(r.seconds.values()):.2f} s ("
        + ", ".join(f"{k} {v:.2f}" for k, v in r.seconds.items())
        + ")",
        "",
        "| parameter | value | set by |",
        "|---|---|---|",
    ]
    for n in space_names:
        lines.append(f"| {n} | {r.values[n]:.3g} | {_set_by(n, r.decisions)} |")
    lines.append("")
    if r.decisions.get("compressor"):
        lines.append(f"- compressor: {r.decisions['compressor']['reason']}")
    taste = r.decisions.get("taste")
    if taste:
        moved = ", ".join(f"{k} {v:+.2f}" for k, v in taste["moved"].items()) or "nothing"
        lines.append(
            f"- your taste (profile {taste['profile']}, {taste['accepts']} accepted mixes) moved: {moved}"
        )
    lines += [f"- note: {n}" for n in r.decisions.get("notes", [])]
    lines += [f"- warning: {w}" for w in r.warnings]
    if r.files.get("presets"):
        lines.append(
            f"DAW presets in {Path(r.files['presets']).name}/: {', '.join(r.presets) or 'none'} "
            f"(re-render: plugin-bridge render --recipe {Path(r.files['recipe']).name} -o mix.wav)."
        )
    return "\n".join(lines) + "\n"


def mix_song(
    song: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    model: str = "ensemble",
    backend: str = "auto",
    target: str | None = None,
    sample_rate: int | None = None,
    name: str | None = None,
    downmix: bool = False,
    max_limiting_db: float | None = None,
    intensity: float = 1.0,
    profile: str | None = None,
    progress: Progress = no_progress,
) -> MixResult | dict[str, MixResult]:
    """Analyse ``song``, predict with ``model`` (``ensemble``, ``cnn``, ``cnn_large``, ``ast`` or ``all``),
    render through the default chain on ``backend``, master to ``target`` (None: the default target)
    and write to ``out_dir``: ``mix[_MODEL].wav``, ``recipe[_MODEL].json`` (re-renders
    ``mix[_MODEL].wav``, mastering included), ``presets[_MODEL]/`` (every export format that
    applies) and ``report[_MODEL].md`` / ``.json``; every file is written atomically.
    ``downmix`` folds a file of more than two channels to stereo first; ``max_limiting_db`` caps the
    master's peak limiting (default 6 dB; a target that needs more is not reached, with a warning).
    ``intensity`` (0..1) scales every corrective move and the compression (0 = mastering only).
    ``profile`` names a taste profile (`plugin_bridge.ml.preference`, filled by the web app's
    accepts) that moves the AI's proposal toward the user's taste; an empty one changes nothing.
    ``model="all"`` writes one mix per model (A/B) and returns ``{model: MixResult}``."""
    taste = Profile(profile).model() if profile is not None else None
    settings = MasterSettings.limited_to(max_limiting_db)
    intensity = check_intensity(intensity)
    names = list(ALL_NAMES) if model == "all" else [model]
    for m in names:
        load_model(m)  # an unknown or missing model is an error before any work
    t0 = time.perf_counter()
    audio = open_song(song, sample_rate, downmix)  # a file is read block by block, never whole
    sr = audio.sample_rate
    label = name or (Path(song).stem if not isinstance(song, np.ndarray) else "song")
    source = None if isinstance(song, np.ndarray) else song
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_read = time.perf_counter() - t0
    progress("read")
    t = time.perf_counter()
    analysis = analyse_signal(audio, sr, intensity)  # once for every model
    in_lufs = analysis.input_lufs
    t_analyse = time.perf_counter() - t
    progress("analyse")
    results: dict[str, MixResult] = {}
    for m in names:
        t = time.perf_counter()
        choice = personalize(
            choose(audio, sr, model=m, intensity=intensity, analysis=analysis), taste, audio, sr
        )
        t_choose = t_analyse + time.perf_counter() - t
        suffix = "" if model != "all" else f"_{m}"
        done = run_mix(
            audio,
            sr,
            choice,
            out / f"mix{suffix}.wav",
            out / f"recipe{suffix}.json",
            source=source,
            backend=backend,
            target=target,
            export_dir=out / f"presets{suffix}",
            stem=label,
            input_lufs=in_lufs,
            downmix=downmix,
            master_settings=settings,
        )
        res = MixResult(
            model=m,
            vector=list(done.recipe.vector),
            values=dict(done.recipe.values),
            sample_rate=sr,
            input_lufs=in_lufs,
            mixed_lufs=done.mixed_lufs,
            output_lufs=done.master.output_lufs,
            output_true_peak_dbtp=done.master.output_true_peak_dbtp,
            target=done.master.target.name,
            backend=done.backend,
            warnings=list(done.master.warnings),
            presets=[f for f in done.exports if f != "notes"],
            decisions=choice.proposal.to_dict() if choice.proposal is not None else {},
        )
        if choice.ai_values is not None:
            res.decisions["taste"] = {
                "profile": profile,
                "accepts": choice.taste_accepts,
                "ai_values": choice.ai_values,
                "moved": {
                    k: round(choice.values[k] - v, 3)
                    for k, v in choice.ai_values.items()
                    if abs(choice.values[k] - v) > 1e-9
                },
            }
        res.seconds = {"read": t_read, "analyse+predict": t_choose, **done.seconds}
        rep_md, rep_json = out / f"report{suffix}.md", out / f"report{suffix}.json"
        res.files = {
            **done.files,
            "presets": str(out / f"presets{suffix}"),
            "report": str(rep_md),
            "report_json": str(rep_json),
        }
        write_atomic(rep_md, _report_text(label, res, default_space().names))
        write_atomic(rep_json, json.dumps(res.to_dict(), indent=1))
        results[m] = res
        progress(f"{m} written")
    return results if model == "all" else results[model]


def mix_song_with_all_models(
    song: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    backend: str = "auto",
    target: str | None = None,
    sample_rate: int | None = None,
) -> dict[str, MixResult]:
    """Seed API: one mastered mix per model (ensemble and each single model) for A/B listening."""
    return mix_song(song, out_dir, "all", backend, target, sample_rate)
