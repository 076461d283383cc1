"""Export a mix in the formats DAWs load: recipe JSON, .vstpreset, .fxp, REAPER, DawDreamer script, MIDI CC.

Submodules (imported lazily so ``import plugin_bridge.export`` stays cheap):

- `recipe`: the mix recipe (everything needed to re-render bit-identically) and `render_recipe`.
- `vstpreset`: Steinberg .vstpreset files and JUCE state blobs (VST3).
- `fxp`: VST2 .fxp programs (FxCk parameter lists, FPCh opaque chunks) and .fxb banks.
- `reaper`: REAPER .RfxChain and .RPP writers.
- `dawdreamer_script`: a standalone DawDreamer render script.
- `midi_cc`: parameter values as MIDI CC (7- or 14-bit) and back.

Every file is written atomically with `write_atomic` (a temporary file beside the target, renamed
when complete).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import FormatError

#: The ``--format`` names of ``plugin-bridge export``.
EXPORT_FORMATS = ("json", "vstpreset", "fxp", "reaper", "dawdreamer", "midi")


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` through a temporary file and a rename.

    A crash or an error never leaves a half-written file; the folder must exist.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FormatError(f"{p}: output folder {folder} does not exist")
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, p)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise FormatError(f"{p}: cannot write ({e.strerror or e})") from None
        raise
    return p


def _safe_name(name: str) -> str:
    import re

    return re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .") or "mix"


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
    `FormatError`; with ``"all"`` such formats are skipped and the reason is kept in the notes.
    """
    from .recipe import Recipe

    if not isinstance(recipe, Recipe):
        raise FormatError("export_recipe needs a Recipe")
    wanted = EXPORT_FORMATS if formats == "all" else ((formats,) if isinstance(formats, str) else formats)
    for f in wanted:
        if f not in EXPORT_FORMATS:
            raise FormatError(f"unknown export format {f!r}; valid: {', '.join(EXPORT_FORMATS)}, all")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe_name(stem or (Path(recipe.input).stem if recipe.input else "mix"))
    written: dict[str, list[Path]] = {}
    skipped: list[str] = []
    for f in wanted:
        try:
            written[f] = _export_one(recipe, out, f, stem, midi_bits)
        except FormatError as e:
            if formats != "all":
                raise
            skipped.append(f"{f}: skipped: {e}")
    if skipped:
        written["notes"] = [write_atomic(out / f"{stem}.export-notes.txt", "\n".join(skipped) + "\n")]
    return written


def _export_one(recipe, out: Path, fmt: str, stem: str, midi_bits: int) -> list[Path]:
    if fmt == "json":
        return [recipe.save(out / f"{stem}.recipe.json")]
    if fmt == "vstpreset":
        from .vstpreset import write_vstpreset

        vst3 = [p for p in recipe.plugins if p.format == "vst3"]
        if not vst3:
            others = ", ".join(f"{p.slot} ({p.format})" for p in recipe.plugins) or "none"
            raise FormatError(
                f".vstpreset applies to VST3 plugins only; this recipe's third-party plugins: {others}. "
                "Built-in effects are exported as mapped ZamCompX2/ZamEQ2/... states with --format reaper"
            )
        return [write_vstpreset(out / f"{_safe_name(p.slot)}.vstpreset", p.state) for p in vst3]
    if fmt == "fxp":
        from .fxp import write_fxp

        vst2 = [p for p in recipe.plugins if p.format == "vst2"]
        if not vst2:
            others = ", ".join(f"{p.slot} ({p.format})" for p in recipe.plugins) or "none"
            raise FormatError(
                f".fxp applies to VST2 plugins only; this recipe's third-party plugins: {others}"
            )
        return [write_fxp(out / f"{_safe_name(p.slot)}.fxp", p.state) for p in vst2]
    if fmt == "reaper":
        from .reaper import export_reaper

        res = export_reaper(recipe, out, stem)
        extra = [out / f"{stem}.reaper-notes.txt"] if res.notes else []
        return [res.project, *res.chains, *extra]
    if fmt == "dawdreamer":
        from .dawdreamer_script import write_script

        return [write_script(recipe, out / f"render_{stem}.py")]
    if fmt == "midi":
        from .midi_cc import write_midi

        if recipe.kind != "chain":
            raise FormatError(
                "MIDI CC export needs a chain recipe (a parameter space to map); a session has none"
            )
        space = recipe.chain_object().space
        return [write_midi(out / f"{stem}.cc{midi_bits}.mid", space, recipe.vector, midi_bits)]
    raise FormatError(f"unknown export format {fmt!r}")
