"""`export_recipe`: write a recipe in every export format that applies (the dispatcher)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FormatError
from ..files import journal, write_atomic
from . import dawdreamer_script, fxp, midi_cc, reaper, vstpreset
from .names import safe_name, unique_file_names
from .recipe import Recipe

#: The ``--format`` names of ``plugin-bridge export``.
EXPORT_FORMATS = ("json", "vstpreset", "fxp", "reaper", "dawdreamer", "midi")


def _make_dir(out: Path) -> Path | None:
    """Create ``out`` (and parents); returns the topmost folder created, or None if it existed."""
    top = None
    for d in (out, *out.parents):
        if d.exists():
            break
        top = d
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FormatError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    return top


def _undo(written: list[Path], out: Path, top: Path | None) -> None:
    """Remove the files an export wrote, and the folders it created, after it failed."""
    for p in written:
        try:
            p.unlink()
        except OSError:
            pass
    if top is not None:
        for d in (out, *out.parents):
            try:
                d.rmdir()  # only if empty
            except OSError:
                break
            if d == top:
                break


def export_recipe(
    recipe,
    out_dir: str | os.PathLike,
    formats: str | tuple[str, ...] = "all",
    stem: str | None = None,
    midi_bits: int = 7,
) -> dict[str, list[Path]]:
    """Write ``recipe`` in ``formats`` (names from `EXPORT_FORMATS`, or ``"all"``) into ``out_dir``.

    Returns ``{format: [paths]}`` plus ``"notes"`` (text files of what was skipped or approximated).
    A single format that does not apply (``fxp`` without VST2 plugins, ``midi`` for a session) is a
    `FormatError`, raised before anything is written; with ``"all"`` such formats are skipped and
    the reason is kept in the notes. If the export fails, the files it wrote and the folders it
    created are removed.
    """

    if not isinstance(recipe, Recipe):
        raise FormatError("export_recipe needs a Recipe")
    wanted = EXPORT_FORMATS if formats == "all" else ((formats,) if isinstance(formats, str) else formats)
    for f in wanted:
        if f not in EXPORT_FORMATS:
            raise FormatError(f"unknown export format {f!r}; valid: {', '.join(EXPORT_FORMATS)}, all")
    if formats != "all":
        for f in wanted:
            reason = _not_applicable(recipe, f)
            if reason:
                raise FormatError(reason)
    out = Path(out_dir)
    top = _make_dir(out)
    stem = safe_name(stem or (Path(recipe.input).stem if recipe.input else "mix"))
    written: dict[str, list[Path]] = {}
    skipped: list[str] = []
    with journal() as files_written:
        try:
            for f in wanted:
                try:
                    written[f] = _export_one(recipe, out, f, stem, midi_bits)
                except FormatError as e:
                    if formats != "all":
                        raise
                    skipped.append(f"{f}: skipped: {e}")
            if skipped:
                notes = "\n".join(skipped) + "\n"
                written["notes"] = [write_atomic(out / f"{stem}.export-notes.txt", notes)]
        except BaseException:
            _undo(files_written, out, top)
            raise
    return written


def _not_applicable(recipe, fmt: str) -> str | None:
    """Why ``fmt`` cannot be exported from ``recipe`` (None when it can)."""
    if fmt in ("vstpreset", "fxp"):
        want = "vst3" if fmt == "vstpreset" else "vst2"
        if any(p.format == want for p in recipe.plugins):
            return None
        others = ", ".join(f"{p.slot} ({p.format})" for p in recipe.plugins) or "none"
        if fmt == "fxp":
            return f".fxp applies to VST2 plugins only; this recipe's third-party plugins: {others}"
        return (
            f".vstpreset applies to VST3 plugins only; this recipe's third-party plugins: {others}. "
            "Built-in effects are exported as mapped ZamCompX2/ZamEQ2/... states with --format reaper"
        )
    if fmt in ("reaper", "dawdreamer") and recipe.downmix:
        return (
            f"the {fmt} export plays the input file as it is, and this mix folds a file of more than "
            "two channels to stereo: downmix the file first (plugin-bridge render IN -o OUT.wav --downmix) "
            "and mix that"
        )
    if fmt == "midi" and recipe.kind != "chain":
        return "MIDI CC export needs a chain recipe (a parameter space to map); a session has none"
    return None


def _export_one(recipe, out: Path, fmt: str, stem: str, midi_bits: int) -> list[Path]:
    reason = _not_applicable(recipe, fmt)
    if reason:
        raise FormatError(reason)
    if fmt == "json":
        return [recipe.save(out / f"{stem}.recipe.json")]
    if fmt == "vstpreset":
        vst3 = [p for p in recipe.plugins if p.format == "vst3"]
        names = unique_file_names([p.slot for p in vst3], "plugin")
        return [
            vstpreset.write_vstpreset(out / f"{n}.vstpreset", p.state)
            for n, p in zip(names, vst3, strict=True)
        ]
    if fmt == "fxp":
        vst2 = [p for p in recipe.plugins if p.format == "vst2"]
        names = unique_file_names([p.slot for p in vst2], "plugin")
        return [fxp.write_fxp(out / f"{n}.fxp", p.state) for n, p in zip(names, vst2, strict=True)]
    if fmt == "reaper":
        res = reaper.export_reaper(recipe, out, stem)
        extra = [out / f"{stem}.reaper-notes.txt"] if res.notes else []
        return [res.project, *res.chains, *extra]
    if fmt == "dawdreamer":
        return [dawdreamer_script.write_script(recipe, out / f"render_{stem}.py")]
    if fmt == "midi":
        space = recipe.chain_object().space
        return [midi_cc.write_midi(out / f"{stem}.cc{midi_bits}.mid", space, recipe.vector, midi_bits)]
    raise FormatError(f"unknown export format {fmt!r}")
