"""`export_recipe`: write a recipe in every export format that applies (the dispatcher)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import FormatError
from ..files import journal, write_atomic
from . import dawdreamer_script, fxp, lv2, midi_cc, reaper, vstpreset
from .names import safe_name, unique_file_names
from .recipe import Recipe

#: The ``--format`` names of ``plugin-bridge export``.
EXPORT_FORMATS = ("json", "vstpreset", "fxp", "reaper", "dawdreamer", "midi", "lv2")
#: What ``"presets"`` selects: every format written in milliseconds (not the LV2 build, which
#: compiles a plugin); the mix jobs export these. ``"all"`` is every format.
PRESET_FORMATS = tuple(f for f in EXPORT_FORMATS if f != "lv2")
#: Selectors that name a set of formats; a format in the set that does not apply is skipped (noted).
SELECTORS = {"all": EXPORT_FORMATS, "presets": PRESET_FORMATS}


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
            if p.is_dir():  # an LV2 bundle
                shutil.rmtree(p)
            else:
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
    """Write ``recipe`` in ``formats`` (names from `EXPORT_FORMATS`, or ``"all"`` / ``"presets"``,
    see `SELECTORS`) into ``out_dir``.

    Returns ``{format: [paths]}`` plus ``"notes"`` (text files of what was skipped or approximated).
    A single format that does not apply (``fxp`` without VST2 plugins, ``midi`` for a session) is a
    `FormatError`, raised before anything is written; with a selector such formats are skipped and
    the reason is kept in the notes. If the export fails, the files it wrote and the folders it
    created are removed.
    """

    if not isinstance(recipe, Recipe):
        raise FormatError("export_recipe needs a Recipe")
    selector = isinstance(formats, str) and formats in SELECTORS
    if selector:
        wanted = SELECTORS[formats]  # type: ignore[index]
    else:
        wanted = (formats,) if isinstance(formats, str) else tuple(formats)
    for f in wanted:
        if f not in EXPORT_FORMATS:
            raise FormatError(
                f"unknown export format {f!r}; valid: {', '.join(EXPORT_FORMATS)}, {', '.join(SELECTORS)}"
            )
    if not selector:
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
                    if not selector:
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
    if fmt == "lv2":
        if recipe.kind != "chain":
            return "LV2 export needs a chain recipe; a session has one chain per track and bus"
        return lv2.missing_tools()
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
    if fmt == "lv2":
        res = lv2.export_lv2(recipe, out, stem)
        notes = [write_atomic(out / f"{stem}.lv2-notes.txt", res.notes)] if res.notes else []
        return [*res.bundles, *notes]
    raise FormatError(f"unknown export format {fmt!r}")
