"""The main job: listen to a song, predict the mix chain's parameters, render, master, report.

Stages (each a plain function): read -> features (`plugin_bridge.ml.features`) -> predict (ONNX
models via `plugin_bridge.ml.inference`) -> render through the ``default`` chain (any backend) ->
master to a loudness target (`plugin_bridge.mastering.master_array`) -> write the mix, the recipe
(`plugin_bridge.export.recipe`: ``plugin-bridge render --recipe`` re-renders the mastered mix
sample-identically), the DAW presets (`plugin_bridge.export.export_recipe`: REAPER project and FX
chain on the mapped plugins, MIDI CC, a DawDreamer script) and a short report. The seed system's
API is kept: `predict_mixing_parameters`, `apply_mixing_parameters` and `mix_song_with_all_models`.
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

from .audio_io import check_audio_array, read_audio, write_audio
from .chain import load_chain
from .errors import ParameterError
from .loudness import integrated_loudness

CHAIN = "default"


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
        }


def _load_song(song: str | os.PathLike | np.ndarray, sample_rate: int | None) -> tuple[np.ndarray, int]:
    if isinstance(song, np.ndarray):
        if sample_rate is None:
            raise ParameterError("an audio array needs its sample_rate")
        return check_audio_array(song, sample_rate), int(sample_rate)
    return read_audio(song)


def predict_vector(
    song: str | os.PathLike | np.ndarray, sample_rate: int | None = None, model: str = "ensemble"
) -> np.ndarray:
    """The full normalized ``mix-v1`` vector a model proposes for a song (file or ``(ch, n)`` array)."""
    from .ml.features import song_features
    from .ml.inference import load_model, predict_features

    audio, sr = _load_song(song, sample_rate)
    mel, glob = song_features(audio, sr)
    return predict_features(load_model(model), mel, glob)


def predict_mixing_parameters(
    song: str | os.PathLike | np.ndarray, sample_rate: int | None = None, model: str = "ensemble"
) -> dict[str, float]:
    """Seed API: the mix parameters (real units, ``{"comp.ratio": 1.0, "low.gain_db": -1.5, ...}``)
    a model proposes for ``song`` (a path, or a ``(channels, samples)`` array with ``sample_rate`` Hz)."""
    return load_chain(CHAIN).space.to_values(predict_vector(song, sample_rate, model))


def apply_mixing_parameters(
    audio: np.ndarray,
    sample_rate: int,
    params: Mapping[str, float] | Sequence[float] | np.ndarray,
    backend: str = "auto",
) -> np.ndarray:
    """Seed API: render ``audio`` ``(channels, samples)`` at ``sample_rate`` Hz through the default
    chain set by ``params`` (real values by name, or the normalized vector). Returns float32 audio
    of the same length (no master stage; see `mix_song`)."""
    from .render import render_array

    if isinstance(params, Mapping):
        return render_array(audio, sample_rate, CHAIN, values=dict(params), backend=backend)
    return render_array(
        audio, sample_rate, CHAIN, vector=np.asarray(params, dtype=np.float64), backend=backend
    )


def _lufs(x: np.ndarray, sr: int) -> float:
    try:
        return float(integrated_loudness(x, sr))
    except Exception:  # too short for a gated measurement
        return -math.inf


def _report_text(song: str, r: MixResult, space_names: Sequence[str], labelled: Sequence[str]) -> str:
    lines = [
        f"# Mix report: {song}",
        "",
        f"- model: {r.model}; backend: {r.backend}; target: {r.target}",
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
        lines.append(f"| {n} | {r.values[n]:.3g} | {'model' if n in labelled else 'rule'} |")
    lines += [""] + [f"- warning: {w}" for w in r.warnings]
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
    target: str = "streaming",
    sample_rate: int | None = None,
    name: str | None = None,
) -> MixResult | dict[str, MixResult]:
    """Analyse ``song``, predict with ``model`` (``ensemble``, ``cnn``, ``cnn_large``, ``ast`` or ``all``),
    render through the default chain on ``backend``, master to ``target`` and write to ``out_dir``:
    ``mix[_MODEL].wav``, ``recipe[_MODEL].json`` (re-renders ``mix[_MODEL].wav``, mastering
    included), ``presets[_MODEL]/`` (`export_recipe` in every format that applies) and
    ``report[_MODEL].md`` / ``.json``; every file is written atomically.
    ``model="all"`` writes one mix per model (A/B) and returns ``{model: MixResult}``."""
    from .backends import get_backend
    from .export import export_recipe, write_atomic
    from .export.recipe import master_entry, recipe_from_chain
    from .mastering import master_array
    from .ml.features import song_features
    from .ml.inference import ALL_NAMES, load_model, predict_features
    from .render import render_array

    t0 = time.perf_counter()
    audio, sr = _load_song(song, sample_rate)
    label = name or (Path(song).stem if not isinstance(song, np.ndarray) else "song")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_read = time.perf_counter() - t0
    t = time.perf_counter()
    mel, glob = song_features(audio, sr)
    t_feat = time.perf_counter() - t
    in_lufs = _lufs(audio, sr)
    names = list(ALL_NAMES) if model == "all" else [model]
    space = load_chain(CHAIN).space
    backend_name = get_backend(backend).name
    source = None if isinstance(song, np.ndarray) else song
    results: dict[str, MixResult] = {}
    for m in names:
        t = time.perf_counter()
        mdl = load_model(m)
        vec = predict_features(mdl, mel, glob)
        t_pred = time.perf_counter() - t
        t = time.perf_counter()
        mixed = render_array(audio, sr, CHAIN, vector=vec, backend=backend_name)
        t_render = time.perf_counter() - t
        mixed_lufs = _lufs(mixed, sr)
        t = time.perf_counter()
        mastered, mres = master_array(mixed, sr, target)
        t_master = time.perf_counter() - t
        suffix = "" if model != "all" else f"_{m}"
        t = time.perf_counter()
        wav = write_audio(out / f"mix{suffix}.wav", mastered, sr)
        rec = recipe_from_chain(
            CHAIN,
            vector=vec,
            model_id=m,
            input_path=source,
            sample_rate=sr,
            backend=backend_name,
            tail=False,
            master=master_entry(mres.target),
        )
        rec_path = rec.save(out / f"recipe{suffix}.json")
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        presets = export_recipe(rec, out / f"presets{suffix}", "all", stem=label)
        t_export = time.perf_counter() - t
        res = MixResult(
            model=m,
            vector=list(rec.vector),
            values=dict(rec.values),
            sample_rate=sr,
            input_lufs=in_lufs,
            mixed_lufs=mixed_lufs,
            output_lufs=mres.output_lufs,
            output_true_peak_dbtp=mres.output_true_peak_dbtp,
            target=mres.target.name,
            backend=backend_name,
            warnings=list(mres.warnings),
            presets=[f for f in presets if f != "notes"],
        )
        res.seconds = {
            "read": t_read,
            "features": t_feat,
            "predict": t_pred,
            "render": t_render,
            "master": t_master,
            "write": t_write,
            "export": t_export,
        }
        rep_md, rep_json = out / f"report{suffix}.md", out / f"report{suffix}.json"
        res.files = {
            "mix": str(wav),
            "recipe": str(rec_path),
            "presets": str(out / f"presets{suffix}"),
            "report": str(rep_md),
            "report_json": str(rep_json),
        }
        write_atomic(rep_md, _report_text(label, res, space.names, mdl.labelled))
        write_atomic(rep_json, json.dumps(res.to_dict(), indent=1))
        results[m] = res
    return results if model == "all" else results[model]


def mix_song_with_all_models(
    song: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    backend: str = "auto",
    target: str = "streaming",
    sample_rate: int | None = None,
) -> dict[str, MixResult]:
    """Seed API: one mastered mix per model (ensemble and each single model) for A/B listening."""
    return mix_song(song, out_dir, "all", backend, target, sample_rate)
