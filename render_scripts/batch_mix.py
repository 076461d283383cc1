#!/usr/bin/env python3
"""Batch-apply AI mixes to a folder or manifest of songs: the same as ``plugin-bridge batch``.

    python render_scripts/batch_mix.py IN_DIR_OR_MANIFEST -o OUT_DIR [--model ensemble] [--target streaming]
        [--workers N] [--engine local|dask] [--export FORMATS]

Resumable: run it again with the same OUT_DIR after an interruption and finished songs are skipped.
"""

import sys

from plugin_bridge.cli import main

if __name__ == "__main__":
    sys.exit(main(["batch", *sys.argv[1:]]))
