"""The package's shape: dependencies point one way (no import circles), imports sit at module top.

The import graph is read from the source (every ``import`` and ``from ... import`` of a
``plugin_bridge`` module, at module level or inside a function), so a circle hidden behind an
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plugin_bridge"

#: Modules allowed to import package modules inside functions, and why:
#: - the CLI imports a command's library when the command runs, so ``plugin-bridge --help`` and a
#:   one-song ``mix`` do not pay for every command's imports;
#: - the package facades serve names on first use (`plugin_bridge`, `plugin_bridge.mastering`);
#: - `ml.train` needs torch (the ``torch`` extra), imported only to train.
LAZY_ALLOWED = {
    "plugin_bridge",
    "plugin_bridge.mastering",
    "plugin_bridge.ml.train",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (f, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, modules) -> list[tuple[str, bool]]:
    """``[(imported package module, at module level?)]`` of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(t, id(node) in top) for t in names if t in modules and t != name]
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    inner = []
    for m, (path, is_pkg) in modules.items():
        for target, at_top in _imports(m, path, is_pkg, modules):
            edges[m].add(target)
            if not at_top:
                inner.append((m, target))
    return edges, inner


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    edges, _ = _graph()
    assert len(edges) > 50  # the walk found the package
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_imports_sit_at_module_top():
    _, inner = _graph()
    lazy = sorted(
        {(m, t) for m, t in inner if m not in LAZY_ALLOWED and not m.startswith("plugin_bridge.cli")}
    )
    assert lazy == []


def test_layers_point_down():
    """The lower layers never import the upper ones (DESIGN.md): core and backends know nothing of
    sessions, mastering, models, the pipeline, exports or the CLI."""
    edges, _ = _graph()
    upper = ("plugin_bridge.graph", "plugin_bridge.mastering", "plugin_bridge.ml", "plugin_bridge.pipeline")
    upper += ("plugin_bridge.export", "plugin_bridge.cli", "plugin_bridge.batch", "plugin_bridge.song_mix")
    lower = ("plugin_bridge.params", "plugin_bridge.effects", "plugin_bridge.chain", "plugin_bridge.audio_io")
    lower += (
        "plugin_bridge.files",
        "plugin_bridge.backends",
        "plugin_bridge.plugins",
        "plugin_bridge.render",
    )
    bad = sorted(
        (m, t) for m, targets in edges.items() if m.startswith(lower) for t in targets if t.startswith(upper)
    )
    assert bad == []
