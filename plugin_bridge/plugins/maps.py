"""Parameter maps: bind one canonical effect to one real plugin (presets/maps/*.yaml).

A map says which plugin parameter each canonical real-unit parameter drives and how a real value
becomes the plugin's normalized (0-1) value::

    effect: compressor                 # a canonical effect type (plugin_bridge.effects)
    plugin: {name: ZamCompX2, format: vst3, location: /usr/lib/vst3/ZamCompX2.vst3}
    channels: 2                        # 1 = a mono-only plugin: run one instance per channel
    params:                            # canonical name -> plugin parameter
      threshold_db: {param: Threshold, range: [-80, 0]}           # linear over the reported range
      ratio: {param: Ratio, range: [1, 20]}
      release_ms: {param: Release, curve: [[1, 0.0], [80, 0.158], [500, 1.0]]}   # measured points
      q: {param: Bandwidth 1, transform: q_to_octaves, range: [0.1, 6]}
      wet_level: {param: Mix, transform: {scale: 100}, range: [0, 100]}
    set:                               # other plugin parameters held fixed while this map is used
      Knee: {value: 0}                 # in the plugin's real units (through its range)
      Stereo Detection: {normalized: 0}
    unmapped: [lookahead_ms]           # canonical parameters the plugin has no equivalent for

``range: [lo, hi]`` is the real range the plugin reports for normalized 0..1 (linear); ``curve`` is a
list of ``[real, normalized]`` points measured by probing the plugin's display text, interpolated
monotonically (PCHIP; ``log: true`` interpolates over log10 of the real value). A value outside the
plugin's range is clamped to it (with a warning). ``transform`` converts the canonical value into the
plugin's unit first: ``q_to_octaves`` (RBJ peak Q -> bandwidth in octaves), ``{scale: a, offset: b}``
(a * x + b) or ``db_to_percent``. Host and meter parameters (not automatable) are refused.

Parameters are named as the plugin reports them (DawDreamer's ``get_parameters_description`` and
pedalboard's ``_parameters[i].name`` agree for VST3); ``index`` may be given as well and is checked.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..chain import presets_dir, read_structured_file
from ..effects import Effect, effect_specs, q_to_octaves
from ..errors import ChainError
from .discovery import PluginError, PluginRef
from .probe import parse_number

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".yaml", ".yml", ".json")
#: Names of the plugin parameters that are host or meter values and never belong in a map.
HOST_PARAMETER_NAMES = {"buffer size", "sample rate", "latency", "gain reduction", "output level", "bypass"}


_NAMED_TRANSFORMS = {
    "q_to_octaves": q_to_octaves,
    "db_to_percent": lambda db: 100.0 * 10.0 ** (db / 20.0),
    "unit_to_percent": lambda x: 100.0 * x,
}


@dataclass(frozen=True)
class ParamBinding:
    """How one canonical parameter drives one plugin parameter.

    ``points`` are ``(real, normalized)`` pairs in increasing real order (two points = linear range).
    """

    canonical: str
    param: str
    points: tuple[tuple[float, float], ...]
    transform: str | Mapping[str, float] | None = None
    log_scale: bool = False
    index: int | None = None

    def plugin_real(self, value: float) -> float:
        """The canonical real ``value`` converted to the plugin's unit (the transform)."""
        t = self.transform
        if t is None:
            return float(value)
        if isinstance(t, str):
            return float(_NAMED_TRANSFORMS[t](value))
        return float(t.get("scale", 1.0)) * float(value) + float(t.get("offset", 0.0))

    @property
    def real_range(self) -> tuple[float, float]:
        """The plugin's real range covered by the points (plugin units)."""
        return self.points[0][0], self.points[-1][0]

    def normalized(self, value: float, where: str = "") -> float:
        """The plugin's normalized value (0-1) for canonical real ``value`` (clamped, with a warning)."""
        real = self.plugin_real(value)
        lo, hi = self.real_range
        if real < lo or real > hi:
            clamped = min(max(real, lo), hi)
            log.warning(
                "%s%s=%g is %g in %s's units, outside its range [%g, %g]; using %g",
                where,
                self.canonical,
                value,
                real,
                self.param,
                lo,
                hi,
                clamped,
            )
            real = clamped
        xs = np.array([p[0] for p in self.points], dtype=float)
        ys = np.array([p[1] for p in self.points], dtype=float)
        if self.log_scale:
            xs, real = np.log10(xs), math.log10(real)
        if len(xs) == 2:
            y = float(np.interp(real, xs, ys))
        else:
            from scipy.interpolate import PchipInterpolator

            y = float(PchipInterpolator(xs, ys)(real))
        return min(max(y, 0.0), 1.0)


@dataclass(frozen=True)
class PluginMap:
    """A canonical effect bound to a plugin: bindings, fixed settings and channel layout."""

    name: str
    effect: str
    plugin: PluginRef
    channels: int
    bindings: tuple[ParamBinding, ...]
    fixed: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    unmapped: tuple[str, ...] = ()
    latency: int | None = None
    source: str = ""
    notes: str = ""

    @property
    def mono(self) -> bool:
        """True for a mono-only plugin (run one instance per channel)."""
        return self.channels == 1

    def plugin_values(self, effect: Effect) -> dict[str, float]:
        """``{plugin parameter name: normalized value}`` for ``effect``'s real-unit parameters.

        Fixed ``set:`` entries given in real units go through the parameter's probed range when the
        map lists one (``value`` with ``range``), else they are taken as normalized.
        """
        if effect.type != self.effect:
            raise PluginError(f"map {self.name!r} is for {self.effect}, not {effect.type} ({effect.id})")
        out: dict[str, float] = {}
        for pname, (kind, v) in self.fixed.items():
            out[pname] = v if kind == "normalized" else float(v)
        for b in self.bindings:
            out[b.param] = b.normalized(effect.params[b.canonical], where=f"{effect.id}.")
        return out

    def to_dict(self) -> dict:
        """The map in file form."""
        params = {}
        for b in self.bindings:
            entry: dict = {"param": b.param}
            if b.index is not None:
                entry["index"] = b.index
            if len(b.points) == 2 and b.points[0][1] == 0.0 and b.points[1][1] == 1.0 and not b.log_scale:
                entry["range"] = [b.points[0][0], b.points[1][0]]
            else:
                entry["curve"] = [list(p) for p in b.points]
                if b.log_scale:
                    entry["log"] = True
            if b.transform is not None:
                entry["transform"] = b.transform if isinstance(b.transform, str) else dict(b.transform)
            params[b.canonical] = entry
        out: dict = {
            "name": self.name,
            "effect": self.effect,
            "plugin": self.plugin.to_dict(),
            "channels": self.channels,
            "params": params,
        }
        if self.fixed:
            out["set"] = {k: {kind: v} for k, (kind, v) in self.fixed.items()}
        if self.unmapped:
            out["unmapped"] = list(self.unmapped)
        if self.latency is not None:
            out["latency"] = self.latency
        if self.notes:
            out["notes"] = self.notes
        return out


def _binding(canonical: str, raw: object, where: str) -> ParamBinding:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("param"), str):
        raise ChainError(f"{where}: params.{canonical} needs 'param' (the plugin parameter's name)")
    pname = raw["param"]
    if pname.strip().lower() in HOST_PARAMETER_NAMES:
        raise ChainError(f"{where}: params.{canonical}: {pname!r} is a host/meter parameter, not automatable")
    transform = raw.get("transform")
    if isinstance(transform, str) and transform not in _NAMED_TRANSFORMS:
        raise ChainError(
            f"{where}: params.{canonical}: unknown transform {transform!r}; "
            f"valid: {', '.join(_NAMED_TRANSFORMS)} or {{scale, offset}}"
        )
    if transform is not None and not isinstance(transform, (str, Mapping)):
        raise ChainError(f"{where}: params.{canonical}: 'transform' must be a name or {{scale, offset}}")
    if "curve" in raw:
        try:
            points = tuple((float(a), float(b)) for a, b in raw["curve"])
        except (TypeError, ValueError):
            raise ChainError(
                f"{where}: params.{canonical}: 'curve' must be [[real, normalized], ...]"
            ) from None
    elif "range" in raw:
        try:
            lo, hi = (float(v) for v in raw["range"])
        except (TypeError, ValueError):
            raise ChainError(f"{where}: params.{canonical}: 'range' must be [low, high]") from None
        points = ((lo, 0.0), (hi, 1.0)) if lo < hi else ((hi, 1.0), (lo, 0.0))
    else:
        raise ChainError(f"{where}: params.{canonical}: give 'range' or 'curve'")
    points = tuple(sorted(points))
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if len(points) < 2 or any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise ChainError(f"{where}: params.{canonical}: needs 2+ points with distinct real values")
    if any(not 0.0 <= y <= 1.0 for y in ys):
        raise ChainError(f"{where}: params.{canonical}: normalized values must be within [0, 1]")
    inc = all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    dec = all(b <= a for a, b in zip(ys, ys[1:], strict=False))
    if not (inc or dec):
        raise ChainError(f"{where}: params.{canonical}: the curve is not monotone")
    log_scale = bool(raw.get("log", False))
    if log_scale and xs[0] <= 0:
        raise ChainError(f"{where}: params.{canonical}: 'log: true' needs positive real values")
    index = raw.get("index")
    return ParamBinding(
        canonical, pname, points, transform, log_scale, int(index) if index is not None else None
    )


def map_from_dict(data: Mapping, source: str = "<dict>") -> PluginMap:
    """Build and validate a `PluginMap` from its file form (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ChainError(f"{source}: a plugin map must be a mapping")
    effect = data.get("effect")
    if not isinstance(effect, str):
        raise ChainError(f"{source}: 'effect' (a canonical effect type) is required")
    try:
        specs = {s.name for s in effect_specs(effect)}
    except ChainError as e:
        raise ChainError(f"{source}: {e}") from None
    plug = data.get("plugin")
    if not isinstance(plug, Mapping) or not all(isinstance(plug.get(k), str) for k in ("name", "format")):
        raise ChainError(f"{source}: 'plugin' must be {{name, format, location}}")
    if plug["format"] not in ("vst3", "vst2", "lv2", "au"):
        raise ChainError(f"{source}: plugin format {plug['format']!r} is not vst3, vst2, lv2 or au")
    ref = PluginRef(plug["format"], plug["name"], str(plug.get("location") or plug["name"]))
    raw_params = data.get("params")
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise ChainError(f"{source}: 'params' must map canonical parameters to plugin parameters")
    bindings = []
    for canonical, raw in raw_params.items():
        if canonical not in specs:
            raise ChainError(
                f"{source}: {canonical!r} is not a parameter of {effect}; valid: {', '.join(sorted(specs))}"
            )
        bindings.append(_binding(canonical, raw, source))
    unmapped = tuple(str(u) for u in data.get("unmapped") or ())
    missing = specs - {b.canonical for b in bindings} - set(unmapped)
    if missing:
        raise ChainError(
            f"{source}: canonical parameters {sorted(missing)} are neither mapped nor 'unmapped'"
        )
    fixed: dict[str, tuple[str, float]] = {}
    for pname, raw in (data.get("set") or {}).items():
        if str(pname).strip().lower() in HOST_PARAMETER_NAMES - {"bypass"}:
            raise ChainError(f"{source}: set.{pname}: a host/meter parameter cannot be set")
        if isinstance(raw, Mapping) and "normalized" in raw:
            v = float(raw["normalized"])
            if not 0.0 <= v <= 1.0:
                raise ChainError(f"{source}: set.{pname}: normalized value {v} is outside [0, 1]")
            fixed[str(pname)] = ("normalized", v)
        elif isinstance(raw, Mapping) and "value" in raw and "range" in raw:
            lo, hi = (float(x) for x in raw["range"])
            v = (float(raw["value"]) - lo) / (hi - lo)
            fixed[str(pname)] = ("normalized", min(max(v, 0.0), 1.0))
        else:
            raise ChainError(
                f"{source}: set.{pname}: give {{normalized: x}} or {{value: x, range: [lo, hi]}}"
            )
    channels = int(data.get("channels", 2))
    if channels not in (1, 2):
        raise ChainError(f"{source}: 'channels' must be 1 (mono-only plugin) or 2")
    latency = data.get("latency")
    name = str(data.get("name") or Path(source).stem)
    return PluginMap(
        name,
        effect,
        ref,
        channels,
        tuple(bindings),
        fixed,
        unmapped,
        int(latency) if latency is not None else None,
        source,
        str(data.get("notes", "")),
    )


def maps_dir() -> Path:
    """The folder of shipped maps: ``presets/maps``."""
    return presets_dir() / "maps"


def list_maps() -> list[PluginMap]:
    """Every shipped map (invalid files are errors naming the file)."""
    folder = maps_dir()
    if not folder.is_dir():
        return []
    return [load_map(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in MAP_SUFFIXES and p.is_file()]


def load_map(path: str | os.PathLike) -> PluginMap:
    """Load one map file (YAML or JSON)."""
    p = Path(path)
    return map_from_dict(read_structured_file(p), str(p))


def find_maps(plugin: str, effect: str) -> list[PluginMap]:
    """Every map for canonical ``effect`` named ``plugin``: a map file, a map name or a plugin name.

    A map name or file gives one map; a plugin name gives each of its maps for ``effect`` (e.g. the
    VST3 and the VST2 build), in file order. Raises `PluginError` naming the shipped maps when none
    matches or a named map is for another effect.
    """
    p = Path(plugin)
    if p.suffix.lower() in MAP_SUFFIXES and p.is_file():
        found = [load_map(p)]
    else:
        maps = list_maps()
        found = [m for m in maps if m.name.lower() == plugin.lower()] or [
            m for m in maps if m.plugin.name.lower() == plugin.lower() and m.effect == effect
        ]
        if not found:
            have = ", ".join(f"{m.name} ({m.effect})" for m in maps) or "none"
            raise PluginError(f"no plugin map for {effect} named {plugin!r}; shipped maps: {have}")
    if found[0].effect != effect:
        raise PluginError(f"plugin map {found[0].name!r} is for {found[0].effect}, not {effect}")
    return found


def find_map(plugin: str, effect: str, formats: tuple[str, ...] = ()) -> PluginMap:
    """The map for ``effect`` named ``plugin`` (see `find_maps`), preferring one in ``formats``."""
    found = find_maps(plugin, effect)
    return next((m for m in found if m.plugin.format in formats), found[0])


def scaffold(info: Mapping, ref: PluginRef, effect: str) -> dict:
    """A starting map (file form) for ``effect`` on the plugin ``info`` that `probe` returned.

    Every automatable continuous parameter is listed under ``candidates`` with its probed range
    and, when its display text is not linear in the normalized value, a measured ``curve``;
    canonical parameters whose name resembles a plugin parameter are pre-bound. Edit, then verify.
    """

    specs = effect_specs(effect)
    candidates: dict[str, dict] = {}
    for prm in info.get("parameters", []):
        if not prm.get("automatable", True) or prm["name"].strip().lower() in HOST_PARAMETER_NAMES:
            continue
        if prm.get("min") is None or prm.get("max") is None:
            continue
        entry: dict = {"param": prm["name"], "index": prm["index"], "range": [prm["min"], prm["max"]]}
        curve = prm.get("curve")
        if curve:
            pts = [(parse_number(t), x) for x, t in curve]
            pts = [(r, x) for r, x in pts if r is not None]
            if len(pts) >= 3:
                lo, hi = pts[0][0], pts[-1][0]
                linear = all(abs((lo + (hi - lo) * x) - r) <= 1e-3 * max(1.0, abs(hi - lo)) for r, x in pts)
                reals = [r for r, _ in pts]
                strictly = all(b > a for a, b in zip(reals, reals[1:], strict=False)) or all(
                    b < a for a, b in zip(reals, reals[1:], strict=False)
                )
                if not linear and strictly:
                    entry.pop("range")
                    entry["curve"] = sorted([[r, x] for r, x in pts])
        if prm.get("unit"):
            entry["unit"] = prm["unit"]
        candidates[prm["name"]] = entry
    params: dict[str, dict] = {}
    keywords = {
        "threshold_db": ["thresh"],
        "ratio": ["ratio"],
        "attack_ms": ["attack"],
        "release_ms": ["release"],
        "makeup_db": ["makeup", "make-up", "gain"],
        "ceiling_db": ["ceiling", "output"],
        "cutoff_hz": ["freq"],
        "gain_db": ["boost", "gain"],
        "q": ["bandwidth", "q"],
        "room_size": ["size", "room"],
        "damping": ["damp"],
        "wet_level": ["wet", "mix", "late"],
        "dry_level": ["dry"],
        "width": ["width"],
        "delay_ms": ["time", "delay"],
        "feedback": ["feedback"],
        "mix": ["mix"],
    }
    used: set[str] = set()
    for s in specs:
        for kw in keywords.get(s.name, [s.name]):
            hit = next(
                (c for c in candidates if re.search(rf"\b{re.escape(kw)}", c.lower()) and c not in used), None
            )
            if hit:
                params[s.name] = {k: v for k, v in candidates[hit].items() if k != "unit"}
                used.add(hit)
                break
    return {
        "name": f"{effect}.{ref.name}",
        "effect": effect,
        "plugin": ref.to_dict(),
        "channels": 1 if info.get("inputs") == 1 else 2,
        "latency": int(info.get("latency", 0)),
        "params": params,
        "unmapped": [s.name for s in specs if s.name not in params],
        "candidates": candidates,
        "notes": "scaffold: check every binding and unit conversion by measurement before use",
    }
