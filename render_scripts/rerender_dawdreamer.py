#!/usr/bin/env python3
"""Re-render every mix of a batch (or any folder of exported recipes) with DawDreamer.

    python render_scripts/rerender_dawdreamer.py BATCH_OUT_DIR [--name mix_dawdreamer.wav]

Each ``recipe.json`` found (recursively) is rendered through DawDreamer's engine (the chain compiled
to Faust; sessions through one native RenderEngine graph) next to the recipe, then mastered as the
recipe's ``master`` entry says, like the batch's own ``mix.wav`` (recipes without one: the mix as
rendered). Exits non-zero if any recipe fails, after trying them all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plugin_bridge.errors import PluginBridgeError
from plugin_bridge.export.recipe import is_recipe_file
from plugin_bridge.pipeline import render_recipe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a batch output folder, or any folder holding recipe.json files")
    ap.add_argument("--name", default="mix_dawdreamer.wav", help="file name of each re-render")
    args = ap.parse_args(argv)
    recipes = sorted(
        p for p in Path(args.folder).rglob("*.json") if p.name == "recipe.json" and is_recipe_file(p)
    )
    if not recipes:
        print(f"no recipe.json under {args.folder}", file=sys.stderr)
        return 1
    failed = 0
    for path in recipes:
        try:
            res = render_recipe(path, path.parent / args.name, backend="dawdreamer")
            print(f"{path.parent}: {res.output}")
        except PluginBridgeError as e:
            failed += 1
            print(f"{path.parent}: FAILED: {e}", file=sys.stderr)
    print(f"{len(recipes) - failed} rendered, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
