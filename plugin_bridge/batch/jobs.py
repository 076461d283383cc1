"""What a batch does to one item: choose parameters, render, master, write; returns the item's report row.

Two ways to choose parameters: ``mix`` asks the AI models (`plugin_bridge.mixing`) for a vector;
``chain`` applies a fixed chain with given values or vector (or its defaults). Sessions render
through their own graph. Every file is written atomically; partial files left by a killed run are
removed before an item is redone.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio_io import read_audio, write_audio
from ..errors import PluginBridgeError
from ..loudness import amplitude_to_db, integrated_loudness, true_peak
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
    target: str = "streaming"
    export: tuple = ()


def clean_partials(folder: Path) -> int:
    """Remove temporary files (``.*.part*``) a killed run left in ``folder``; returns how many."""
    n = 0
    for p in folder.glob(".*.part*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (`plugin_bridge.export.write_atomic`)."""
    from ..export import write_atomic

    write_atomic(path, json.dumps(data, indent=2))


def _db(x: float) -> float | None:
    return round(float(x), 2) if np.isfinite(x) else None


def _choose(audio: np.ndarray, sr: int, opts: JobOptions) -> dict:
    """The chain and its parameters for one song: from the AI models or from the options."""
    from ..chain import load_chain

    if opts.job == "mix":
        try:
            mixing = importlib.import_module("plugin_bridge.mixing")
        except ImportError:
            raise PluginBridgeError("the AI models are not installed in this version ('--job mix')") from None
        vector = mixing.predict_vector(audio, sr, opts.model)
        chain = load_chain(mixing.CHAIN)
        return {
            "chain": mixing.CHAIN,
            "model": opts.model,
            "vector": [float(v) for v in vector],
            "values": chain.space.to_values(vector),
        }
    chain = load_chain(opts.chain)
    if opts.vector is not None:
        values = chain.space.to_values(opts.vector)
    else:
        values = {**chain.space.defaults(), **opts.values}
    return {
        "chain": opts.chain,
        "model": None,
        "vector": [float(v) for v in chain.space.to_vector(values)],
        "values": values,
    }


def process_item(item: Item, opts: JobOptions) -> dict:
    """Render, master and write one item; returns its report row (LUFS/true peak before and after)."""
    from ..export.recipe import master_entry
    from ..mastering import master_array
    from ..mixer import render_session_array
    from ..render import render_array

    out = item.output_dir(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    start = time.perf_counter()
    if item.kind == "session":
        mixed, sr, _ = render_session_array(item.path, backend=opts.backend)
        before = mixed
        choice = {"chain": None, "model": None, "vector": None, "values": None}
    else:
        before, sr = read_audio(item.path)
        choice = _choose(before, sr, opts)
        mixed = render_array(
            before, sr, choice["chain"], values=choice["values"], backend=opts.backend, tail=True
        )
    mastered, res = master_array(mixed, sr, target=opts.target)
    write_audio(out / "mix.wav", mastered, sr)
    master = master_entry(res.target)
    outputs = ["mix.wav", "recipe.json", *_write_recipe(item, opts, choice, sr, out, master)]
    return {
        "id": item.id,
        "kind": item.kind,
        **choice,
        "target": opts.target,
        "lufs_before": _db(integrated_loudness(before, sr)),
        "true_peak_before": _db(amplitude_to_db(true_peak(before))),
        "lufs_after": _db(res.output_lufs),
        "true_peak_after": _db(res.output_true_peak_dbtp),
        "render_seconds": round(time.perf_counter() - start, 3),
        "duration_s": round(mastered.shape[1] / sr, 3),
        "warnings": list(res.warnings),
        "outputs": outputs,
    }


def _write_recipe(
    item: Item, opts: JobOptions, choice: dict, sample_rate: int, out: Path, master: dict
) -> list[str]:
    """Write the item's mix recipe (what re-renders mix.wav, mastering included) and its exports.

    The recipe holds the real values the render used (its vector is their normalized form) and
    the ``master`` entry (`plugin_bridge.export.recipe.master_entry`)."""
    from ..backends import get_backend
    from ..export import export_recipe
    from ..export.recipe import recipe_from_chain, recipe_from_session

    backend = get_backend(opts.backend).name
    if item.kind == "session":
        recipe = recipe_from_session(item.path, backend=backend, master=master)
    else:
        recipe = recipe_from_chain(
            choice["chain"],
            values=choice["values"],
            model_id=choice["model"],
            input_path=item.path,
            sample_rate=sample_rate,
            backend=backend,
            master=master,
        )
    recipe.save(out / "recipe.json")
    written: list[str] = []
    if opts.export:
        files = export_recipe(recipe, out / "export", tuple(opts.export))
        written = sorted(str(Path(p).relative_to(out)) for paths in files.values() for p in paths)
    return written
