"""Sub-commands of the export work (registered by plugin_bridge.cli.main): ``export``, ``render-recipe``,
``import-midi``. Each parses arguments, calls `plugin_bridge.export`, prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..backends import BACKEND_NAMES

EXPORT_CHOICES = ("json", "vstpreset", "fxp", "reaper", "dawdreamer", "midi", "lv2", "presets", "all")


def _load_any(path: str, model_id: str | None, backend: str | None):
    """A recipe file as is, or a session file turned into a recipe (a ``.json`` is parsed once to
    tell them apart: an object with ``format_version`` is a recipe)."""
    from ..errors import FormatError
    from ..export.recipe import load_recipe, recipe_from_session

    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{path}: no such recipe or session file")
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable, not JSON, not UTF-8: load_recipe says why
            return load_recipe(path)
        if not isinstance(obj, dict) or "format_version" in obj:
            return load_recipe(path)
    return recipe_from_session(path, model_id=model_id, backend=backend or "pedalboard")


def _cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_recipe

    recipe = _load_any(args.source, args.model_id, None)
    written = export_recipe(recipe, args.output_dir, args.format, stem=args.name, midi_bits=args.bits)
    if args.json:
        print(json.dumps({k: [str(p) for p in v] for k, v in written.items()}, indent=2, ensure_ascii=False))
        return 0
    for fmt, paths in written.items():
        for p in paths:
            print(f"{fmt:<11} {p}")
    return 0


def _cmd_render_recipe(args: argparse.Namespace) -> int:
    from ..pipeline import render_recipe

    result = render_recipe(args.recipe, args.output, backend=args.backend, input_path=args.input)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"wrote {result.output}: {result.frames / result.sample_rate:.2f} s, backend {result.backend}")
    return 0


def _cmd_import_midi(args: argparse.Namespace) -> int:
    from ..export.midi_cc import midi_to_recipe
    from ..export.recipe import load_recipe

    base = load_recipe(args.recipe) if args.recipe else args.chain
    recipe = midi_to_recipe(args.midi, base)
    path = recipe.save(args.output)
    print(f"wrote {path}: {len(recipe.vector)} parameters of space {recipe.space_version}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
    e = sub.add_parser("export", help="export a recipe or session as DAW presets and projects")
    e.add_argument("source", help="mix recipe (.json with format_version) or session file")
    e.add_argument(
        "--format",
        default="all",
        choices=EXPORT_CHOICES,
        help="what to write: one format, presets (all but the LV2 build) or all (default)",
    )
    e.add_argument("-o", "--output-dir", required=True, help="folder to write into (created if missing)")
    e.add_argument("--name", help="base name of the files (default: the input's name or 'mix')")
    e.add_argument("--bits", type=int, choices=(7, 14), default=7, help="MIDI CC resolution")
    e.add_argument("--model-id", help="model id to record when exporting a session")
    e.add_argument("--json", action="store_true", help="print the written files as JSON")
    e.set_defaults(func=_cmd_export)

    r = sub.add_parser("render-recipe", help="re-render a mix recipe (bit-identical on the same backend)")
    r.add_argument("recipe", help="mix recipe .json")
    r.add_argument("-o", "--output", required=True, help="output audio (.wav or .flac)")
    r.add_argument("--backend", choices=("auto", *BACKEND_NAMES), help="default: the recipe's backend")
    r.add_argument("--input", help="chain recipes: render this file instead of the recorded input")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_render_recipe)

    m = sub.add_parser("import-midi", help="read a MIDI CC export back into a recipe")
    m.add_argument("midi", help=".mid written by 'export --format midi'")
    m.add_argument("-o", "--output", required=True, help="recipe .json to write")
    g = m.add_mutually_exclusive_group()
    g.add_argument("--recipe", help="base recipe (its chain, input and backend are kept)")
    g.add_argument("--chain", help="chain name or file (default: the shipped chain of the file's space)")
    m.set_defaults(func=_cmd_import_midi)
