#!/usr/bin/env python3
"""Write REAPER projects for a whole batch: one project per song, or one project with a track per song.

    python render_scripts/batch_reaper_project.py BATCH_OUT_DIR --per-song
    python render_scripts/batch_reaper_project.py BATCH_OUT_DIR -o catalog.RPP

``--per-song`` writes ``<song>/reaper/<song>.RPP`` (+ RfxChains) beside each song's recipe. Without
it, one project holds a track per song: the original file as the media item and the song's chain
as the track's FX (built-ins mapped onto the zam-plugins as in ``plugin-bridge export``); every
track but the first is muted, so solo the song you want to hear. Only chain recipes (songs) go in
the combined project; sessions get their own per-song projects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plugin_bridge.export.reaper import export_reaper
from plugin_bridge.export.recipe import is_recipe_file, load_recipe, recipe_from_session
from plugin_bridge.session import session_from_dict


def _recipes(folder: Path):
    for p in sorted(folder.rglob("recipe.json")):
        if is_recipe_file(p):
            yield p, load_recipe(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a batch output folder")
    ap.add_argument("-o", "--output", help="the combined project (.RPP)")
    ap.add_argument("--per-song", action="store_true", help="one project per song instead")
    args = ap.parse_args(argv)
    found = list(_recipes(Path(args.folder)))
    if not found:
        print(f"no recipe.json under {args.folder}", file=sys.stderr)
        return 1
    if args.per_song:
        for path, recipe in found:
            res = export_reaper(recipe, path.parent / "reaper", stem=path.parent.name)
            print(res.project)
        return 0
    if not args.output:
        ap.error("give -o catalog.RPP, or --per-song")
    songs = [(p, r) for p, r in found if r.kind == "chain" and r.input]
    tracks = []
    for i, (path, recipe) in enumerate(songs):
        effects = [e.to_dict() for e in recipe.effects]
        tracks.append(
            {
                "name": path.parent.name,
                "file": recipe.input,
                "mute": i > 0,
                **({"chain": {"effects": effects}} if effects else {}),
            }
        )
    session = session_from_dict({"tracks": tracks}, ".", "batch")
    out = Path(args.output)
    res = export_reaper(recipe_from_session(session), out.parent, stem=out.stem)
    print(f"{res.project}: {len(tracks)} songs, one track each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
