"""The ``plugin-bridge`` command: thin modules that parse arguments, call the library and print.

`main` builds the parser (`main.build_parser`); the core commands (render, render-session, chains,
params, backends, demo) live in `main`, the others in one module per area (`mastering`, `plugins`,
`models`, `export`, `batch`), each adding its sub-commands with ``register(subparsers)`` and
importing the library it calls when the command runs, so that ``plugin-bridge --help`` stays fast.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
