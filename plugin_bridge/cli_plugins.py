"""Sub-commands of the plugins work (registered by plugin_bridge.cli)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
