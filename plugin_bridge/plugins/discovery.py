"""Find third-party plugins (VST3, VST2, LV2; AU on macOS) and cache what probing learned about them.

A plugin is a `PluginRef`: its format (``vst3``, ``vst2``, ``lv2``, ``au``), its name (the bundle or
file name without suffix, e.g. ``ZamCompX2``; for LV2 the URI's last part) and where it is (a path;
for LV2 the URI, which is how DawDreamer loads it). `scan` walks the standard folders of the OS (plus
``$VST3_PATH``, ``$VST_PATH``, ``$LV2_PATH`` and any ``--path``) without loading anything;
`plugin_bridge.plugins.probe` then loads each one in a subprocess.

The cache is JSON at ``$PLUGIN_BRIDGE_CACHE`` (a file path) or ``~/.cache/plugin-bridge/plugins.json``:
``{"version": 1, "plugins": {key: {"ref": {...}, "status": "ok"|"bad", "reason": str, "info": {...}}}}``,
keyed by ``format:location``. A ``bad`` entry (segfault, hang, load failure) is never loaded again
in-process: chains fall back to the built-in effect.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PluginBridgeError

FORMATS = ("vst3", "vst2", "lv2", "au")
CACHE_VERSION = 1


class PluginError(PluginBridgeError):
    """A plugin that is missing, known bad, crashed in a probe, or cannot be hosted by a backend."""


@dataclass(frozen=True)
class PluginRef:
    """Where one plugin is: ``format`` (vst3/vst2/lv2/au), display ``name`` and ``location``.

    ``location`` is the ``.vst3`` bundle folder, the VST2 ``.so``/``.dll``/``.vst``, the LV2 URI or
    the ``.component`` bundle.
    """

    format: str
    name: str
    location: str

    @property
    def key(self) -> str:
        """The cache key ``format:location``."""
        return f"{self.format}:{self.location}"

    def to_dict(self) -> dict:
        """JSON-ready ``{"format", "name", "location"}``."""
        return asdict(self)


def standard_paths(fmt: str, platform: str | None = None) -> list[Path]:
    """The folders a host searches for format ``fmt`` on ``platform`` (``sys.platform`` by default).

    Environment variables (``VST3_PATH``, ``VST_PATH``, ``LV2_PATH``; ``os.pathsep``-separated) come
    first.
    """
    platform = platform or sys.platform
    home = Path.home()
    env = {"vst3": "VST3_PATH", "vst2": "VST_PATH", "lv2": "LV2_PATH"}.get(fmt)
    out = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p] if env else []
    if platform == "darwin":
        lib = [home / "Library/Audio/Plug-Ins", Path("/Library/Audio/Plug-Ins")]
        sub = {"vst3": "VST3", "vst2": "VST", "lv2": "LV2", "au": "Components"}[fmt]
        out += [p / sub for p in lib]
    elif platform.startswith("win"):
        common = Path(os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files"))
        pf = Path(os.environ.get("PROGRAMFILES", r"C:\Program Files"))
        out += {
            "vst3": [common / "VST3"],
            "vst2": [pf / "VSTPlugins", pf / "Steinberg/VSTPlugins", common / "VST2"],
            "lv2": [common / "LV2"],
            "au": [],
        }[fmt]
    else:
        roots = [home / ".", Path("/usr"), Path("/usr/local")]
        sub = {"vst3": ["vst3"], "vst2": ["vst", "lxvst"], "lv2": ["lv2"], "au": []}[fmt]
        for s in sub:
            out.append(home / f".{s}")
            out += [r / "lib" / s for r in roots[1:]]
            out += [r / "lib" / "x86_64-linux-gnu" / s for r in roots[1:]]
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _vst3_bundles(folder: Path) -> Iterator[PluginRef]:
    for p in sorted(folder.rglob("*.vst3")):
        if p.is_dir() or p.is_file():
            if any(parent.suffix == ".vst3" for parent in p.parents):
                continue
            yield PluginRef("vst3", p.stem, str(p))


def _vst2_files(folder: Path, platform: str) -> Iterator[PluginRef]:
    suffix = {"darwin": ".vst", "win32": ".dll"}.get(platform, ".so")
    for p in sorted(folder.rglob(f"*{suffix}")):
        if platform == "darwin" and any(parent.suffix == ".vst" for parent in p.parents):
            continue
        yield PluginRef("vst2", re.sub(r"-vst$", "", p.stem), str(p))


def manifest_plugin_uris(text: str) -> list[str]:
    """URIs of the subjects typed ``lv2:Plugin`` in an LV2 ``manifest.ttl`` (``<uri>`` or ``prefix:name``)."""
    prefixes = dict(re.findall(r"@prefix\s+([\w-]*):\s*<([^>]*)>", text))
    out = []
    for subject in re.findall(r"(<[^>]+>|[\w-]*:[\w.#-]+)\s+a\s+[^;.]*lv2:Plugin\b", text):
        if subject.startswith("<"):
            out.append(subject[1:-1])
        else:
            prefix, _, local = subject.partition(":")
            if prefix in prefixes:
                out.append(prefixes[prefix] + local)
    return out


def lv2_uris(extra_paths: Iterable[Path] = ()) -> list[PluginRef]:
    """LV2 plugins as ``PluginRef`` with their URI: from ``lv2ls`` when installed, else manifests."""
    lv2ls = shutil.which("lv2ls")
    env = dict(os.environ)
    extra = [str(p) for p in extra_paths]
    if extra:
        env["LV2_PATH"] = os.pathsep.join(extra + [str(p) for p in standard_paths("lv2")])
    uris: list[str] = []
    if lv2ls:
        try:
            out = subprocess.run([lv2ls], capture_output=True, text=True, timeout=60, env=env).stdout
            uris = [u.strip() for u in out.splitlines() if u.strip()]
        except (OSError, subprocess.TimeoutExpired):
            uris = []
    if not uris:
        for folder in [*extra_paths, *standard_paths("lv2")]:
            for manifest in sorted(Path(folder).glob("*.lv2/manifest.ttl")):
                try:
                    uris += manifest_plugin_uris(manifest.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    continue
    refs = []
    for uri in dict.fromkeys(uris):
        name = re.split(r"[/#]", uri.rstrip("/#"))[-1] or uri
        refs.append(PluginRef("lv2", name, uri))
    return refs


def scan(paths: Iterable[str | os.PathLike] = (), formats: Iterable[str] = FORMATS) -> list[PluginRef]:
    """Every plugin file/bundle/URI in the standard places and in ``paths`` (not loaded, not probed)."""
    platform = sys.platform
    extra = [Path(p) for p in paths]
    found: dict[str, PluginRef] = {}
    for fmt in formats:
        if fmt == "au" and platform != "darwin":
            continue
        if fmt == "lv2":
            for ref in lv2_uris(extra):
                found.setdefault(ref.key, ref)
            continue
        for folder in [*extra, *standard_paths(fmt, platform)]:
            if not folder.is_dir():
                continue
            if fmt == "vst3":
                refs: Iterable[PluginRef] = _vst3_bundles(folder)
            elif fmt == "vst2":
                refs = _vst2_files(folder, platform)
            else:
                refs = (PluginRef("au", p.stem, str(p)) for p in sorted(folder.glob("*.component")))
            for ref in refs:
                found.setdefault(ref.key, ref)
    return list(found.values())


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def cache_path() -> Path:
    """``$PLUGIN_BRIDGE_CACHE`` or ``~/.cache/plugin-bridge/plugins.json``."""
    env = os.environ.get("PLUGIN_BRIDGE_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "plugin-bridge" / "plugins.json"


def load_cache() -> dict:
    """The cache's ``plugins`` mapping (empty when the file is missing or unreadable)."""
    path = cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    plugins = data.get("plugins")
    return plugins if isinstance(plugins, dict) else {}


def save_cache(plugins: dict) -> Path:
    """Write the ``plugins`` mapping atomically; returns the cache path."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".plugins-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": CACHE_VERSION, "plugins": plugins}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def update_cache(ref: PluginRef, status: str, reason: str = "", info: dict | None = None) -> None:
    """Record what a probe learned about ``ref`` (``status`` ``"ok"`` or ``"bad"``)."""
    plugins = load_cache()
    entry = {"ref": ref.to_dict(), "status": status, "reason": reason}
    if info is not None:
        entry["info"] = info
    elif ref.key in plugins and "info" in plugins[ref.key]:
        entry["info"] = plugins[ref.key]["info"]
    plugins[ref.key] = entry
    save_cache(plugins)


def cached(ref: PluginRef) -> dict | None:
    """The cache entry of ``ref`` or None."""
    return load_cache().get(ref.key)


def find_plugin(name: str, fmt: str | None = None, paths: Iterable[str | os.PathLike] = ()) -> PluginRef:
    """Resolve a plugin by path, LV2 URI, or name (case-insensitive; ``fmt`` narrows the format).

    Names are looked up in the cache first, then by scanning. Raises `PluginError` when nothing
    matches, listing close names.
    """
    if fmt is not None and fmt not in FORMATS:
        raise PluginError(f"unknown plugin format {fmt!r}; valid: {', '.join(FORMATS)}")
    p = Path(name)
    if p.suffix == ".vst3" and p.exists():
        return PluginRef("vst3", p.stem, str(p))
    if p.suffix in (".so", ".dll", ".vst") and p.exists():
        return PluginRef("vst2", re.sub(r"-vst$", "", p.stem), str(p))
    if re.match(r"^[a-z][a-z0-9+.-]*:", name) and not p.exists():
        return PluginRef("lv2", re.split(r"[/#]", name.rstrip("/#"))[-1], name)
    candidates = [PluginRef(**e["ref"]) for e in load_cache().values() if "ref" in e]
    for source in (candidates, None):
        refs = source if source is not None else scan(paths, formats=(fmt,) if fmt else FORMATS)
        matches = [r for r in refs if r.name.lower() == name.lower() and (fmt is None or r.format == fmt)]
        if matches:
            order = {f: i for i, f in enumerate(("vst3", "vst2", "lv2", "au"))}
            return sorted(matches, key=lambda r: order[r.format])[0]
    refs = scan(paths, formats=(fmt,) if fmt else FORMATS)
    close = sorted({r.name for r in refs if name.lower()[:4] in r.name.lower()})[:8]
    hint = f"; similar: {', '.join(close)}" if close else ""
    raise PluginError(f"plugin {name!r} not found (run 'plugin-bridge plugins scan'){hint}")
