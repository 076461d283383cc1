"""What a batch does to one item: choose parameters, render, master, write; returns the item's report row.

Two ways to choose parameters (`plugin_bridge.pipeline.choose`): ``mix`` asks the AI models for a vector;
``chain`` applies a fixed chain with given values or vector (or its defaults). Sessions render
through their own graph. Every file is written atomically; partial files left by a killed run are
removed before an item is redone.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio_io import write_audio
from ..backends import get_backend
from ..export import export_recipe
from ..export.recipe import master_entry, recipe_from_session
from ..files import write_atomic
from ..graph import render_session_array
from ..loudness import amplitude_to_db, true_peak
from ..mastering.targets import DEFAULT_TARGET
from ..pipeline import apply_master, choose, lufs, measure_song, open_song, run_mix
from .items import Item


@dataclass(frozen=True)
class JobOptions:
    """How every item of a batch is processed (picklable: sent to worker processes)."""

    out_dir: str
    job: str = "chain"  # "mix" (AI models) or "chain" (fixed chain)
    model: str = "ensemble"
    chain: str = "default"
    values: dict = field(default_factory=dict)
    vector: tuple | None = None
    backend: str = "auto"
    target: str = DEFAULT_TARGET
    export: tuple = ()
    downmix: bool = False


def clean_partials(folder: Path) -> int:
    """Remove temporary files and work folders (``.*.part*``) a killed run left in ``folder``;
    returns how many."""
    n = 0
    for p in folder.glob(".*.part*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (`plugin_bridge.files.write_atomic`)."""
    write_atomic(path, json.dumps(data, indent=2))


def _db(x: float) -> float | None:
    return round(float(x), 2) if np.isfinite(x) else None


def process_item(item: Item, opts: JobOptions) -> dict:
    """Render, master and write one item (the job of `plugin_bridge.pipeline`); returns its report
    row (LUFS/true peak before and after, the choice, the files written)."""
    out = item.output_dir(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    start = time.perf_counter()
    export_dir = out / "export" if opts.export else None
    formats = tuple(opts.export)
    if item.kind == "session":
        before, sr, _ = render_session_array(item.path, backend=opts.backend)
        entry = master_entry(opts.target)
        mastered, res = apply_master(before, sr, entry)
        write_audio(out / "mix.wav", mastered, sr)
        backend = get_backend(opts.backend).name
        recipe = recipe_from_session(item.path, backend=backend, master=entry)
        recipe.save(out / "recipe.json")
        exports = export_recipe(recipe, export_dir, formats) if export_dir else {}
        row = {"chain": None, "model": None, "vector": None, "values": None}
        lufs_before, tp_before = lufs(before, sr), amplitude_to_db(true_peak(before))
    else:
        song = open_song(item.path, downmix=opts.downmix)  # read block by block, never whole
        sr = song.sample_rate
        lufs_before, tp_before = measure_song(song, sr)
        model = opts.model if opts.job == "mix" else None
        choice = choose(song, sr, model, opts.chain, opts.values or None, opts.vector)
        done = run_mix(
            song,
            sr,
            choice,
            out / "mix.wav",
            out / "recipe.json",
            source=item.path,
            backend=opts.backend,
            target=opts.target,
            export_dir=export_dir,
            export_formats=formats,
            input_lufs=lufs_before,
            downmix=opts.downmix,
        )
        res, exports, row = done.master, done.exports, choice.to_dict()
    written = sorted(str(Path(p).relative_to(out)) for paths in exports.values() for p in paths)
    return {
        "id": item.id,
        "kind": item.kind,
        **row,
        "target": opts.target,
        "lufs_before": _db(lufs_before),
        "true_peak_before": _db(tp_before),
        "lufs_after": _db(res.output_lufs),
        "true_peak_after": _db(res.output_true_peak_dbtp),
        "render_seconds": round(time.perf_counter() - start, 3),
        "duration_s": round(res.frames / sr, 3),
        "warnings": list(res.warnings),
        "outputs": ["mix.wav", "recipe.json", *written],
    }
