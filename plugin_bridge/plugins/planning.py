"""Which chain slots a backend will host on a real plugin, and with which values.

A chain slot that names a plugin (``Effect.plugin``) is rendered by the plugin its map binds
(`plugin_bridge.plugins.maps`), when the backend can host that format and the plugin is present and
not known bad. Otherwise the slot falls back to the built-in effect with a warning naming the
substitution, or, with ``strict``, raises `PluginError`. Every plugin is probed once in a subprocess
(`probe.ensure_probed`) before it is ever loaded. Planning loads no plugin; the processors that host
them are in `plugin_bridge.backends.hosted`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..effects import Effect
from ..errors import PluginBridgeError
from .discovery import PluginError, PluginRef
from .maps import PluginMap, find_map
from .probe import ensure_probed

log = logging.getLogger(__name__)

#: Plugin formats each backend can host.
BACKEND_FORMATS: dict[str, tuple[str, ...]] = {
    "pedalboard": ("vst3", "au"),
    "dawdreamer": ("vst2", "vst3", "lv2"),
    "numpy": (),
}


@dataclass(frozen=True)
class HostPlan:
    """A slot that will be hosted: the effect, its map and the plugin's probed info."""

    effect: Effect
    map: PluginMap
    info: dict


def _plugin_present(ref: PluginRef) -> bool:
    if ref.format == "lv2":
        return True  # LV2 URIs are checked by the probe (lilv resolves them)
    return Path(ref.location).exists()


def _fallback(effect: Effect, why: str, strict: bool) -> Effect:
    msg = f"{effect.id}: {why}; using the built-in {effect.type} instead"
    if strict:
        raise PluginError(f"{effect.id}: {why} (strict: no fallback to the built-in {effect.type})")
    log.warning("%s", msg)
    return replace(effect, plugin=None)


def slot_plan(effect: Effect, backend: str) -> HostPlan | str:
    """How ``backend`` would host ``effect``'s plugin: a `HostPlan`, or why it cannot (one line).

    ``effect`` must name a plugin. Never falls back and never warns; `plan_slot` does.
    """
    name = effect.plugin
    try:
        pmap = find_map(str(name), effect.type, BACKEND_FORMATS.get(backend, ()))
    except PluginBridgeError as e:
        return f"plugin {name!r}: {e}"
    ref = pmap.plugin
    label = f"plugin {ref.name} ({ref.format.upper()}, map {pmap.name})"
    if ref.format not in BACKEND_FORMATS.get(backend, ()):
        can = ", ".join(f.upper() for f in BACKEND_FORMATS.get(backend, ())) or "no plugins"
        return f"{label} cannot be hosted by the {backend} backend (it hosts {can})"
    if not _plugin_present(ref):
        return f"{label} is not installed ({ref.location} not found)"
    result = ensure_probed(ref)
    if not result.ok:
        return f"{label} is known bad: {result.reason}"
    return HostPlan(effect, pmap, result.info)


def plan_slot(effect: Effect, backend: str, strict: bool = False) -> HostPlan | Effect:
    """Decide how ``effect`` renders on ``backend``: a `HostPlan`, or the built-in effect (warned).

    Raises `PluginError` instead of falling back when ``strict``.
    """
    if not effect.plugin:
        return effect
    planned = slot_plan(effect, backend)
    return planned if isinstance(planned, HostPlan) else _fallback(effect, planned, strict)


def plan_effects(effects: Sequence[Effect], backend: str, strict: bool = False) -> list[Effect]:
    """``effects`` with the plugin removed (and a warning) from every slot ``backend`` will not host."""
    out = []
    for e in effects:
        planned = plan_slot(e, backend, strict)
        out.append(planned.effect if isinstance(planned, HostPlan) else planned)
    return out


def _index_of(params_info: Sequence[dict], name: str, pmap: PluginMap) -> int:
    for p in params_info:
        if p["name"] == name:
            return int(p["index"])
    for p in params_info:
        if p["name"].strip().lower() == name.strip().lower():
            return int(p["index"])
    for p in params_info:  # VST2 truncates names (kVstMaxParamStrLen): "Stereo Detectio"
        short = p["name"].strip().lower()
        if len(short) >= 7 and name.strip().lower().startswith(short):
            return int(p["index"])
    raise PluginError(f"map {pmap.name}: plugin {pmap.plugin.name} has no parameter {name!r}")


def indexed_values(plan: HostPlan) -> dict[int, float]:
    """``{parameter index: normalized value}`` the map sets for the plan's effect."""
    info = plan.info.get("parameters", [])
    return {_index_of(info, n, plan.map): v for n, v in plan.map.plugin_values(plan.effect).items()}
