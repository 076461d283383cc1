"""Hosted-plugin slots in recipes: capture each slot's plugin and full state; restore them to re-render.

A chain slot that names a plugin (``plugin: ZamCompX2``) is rendered by a real plugin when the
recipe's backend can host it (pedalboard: VST3; dawdreamer: VST2, VST3, LV2) and the plugin is
installed and not known bad (`plugin_bridge.plugins.planning.slot_plan`). For each such slot a recipe
stores a `PluginState`: the plugin's identity and its full state, captured through
`plugin_bridge.backends.hosted.capture_slot_states` on an instance set to the slot's mapped values.

======  ===================================================  =============================================
format  state stored                                         restored with
======  ===================================================  =============================================
vst3    the .vstpreset (pedalboard ``preset_data``, or       pedalboard ``load_preset``, DawDreamer
        DawDreamer's JUCE state converted)                   ``load_vst3_preset``
vst2    an .fxp program (the current program of DawDreamer   DawDreamer ``load_preset``
        ``save_state``'s bank)
lv2     UTF-8 JSON ``{"uri", "parameters": [{"index",        ``set_parameter`` per value
        "name", "value"}]}``: every automatable control
        port, normalized, as DawDreamer exposes it
======  ===================================================  =============================================

LV2, honestly: DawDreamer hosts LV2 through JUCE, which shows control ports as normalized parameters
by index and name (not by port symbol) and cannot save an LV2 State extension headless. The ``lv2``
state is therefore the value of every automatable control port: complete, and exact on a round
trip, for plugins whose whole state is their ports (x42 dpl and most effects); a plugin keeping
more (files, samples through LV2 State) is not fully captured.

A mono-only plugin (map ``channels: 1``) runs one instance per channel; the instances share their
settings, so one state is stored and restored into each (`PluginState.channels` says which).

A slot that falls back to the built-in effect (plugin missing, not hostable by the backend, known
bad, no map) has no state: the recipe records the fallback and its reason in ``fallbacks``, and a
re-render uses the built-in there even if the plugin has been installed since. Re-rendering
(`restore_slots`) checks every stored plugin before anything renders: installed at its path and
hosted by this backend through the same plugin (format and location); the hosts' restore then
checks the VST3 class ID / VST2 unique ID. Any difference is a one-line `PluginError`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..backends.hosted import capture_slot_states
from ..effects import Effect, clamp_to_sample_rate
from ..plugins.discovery import PluginError
from ..plugins.planning import HostPlan, slot_plan
from .fxp import build_fxp, program_from_bank
from .plugin_state import PluginState

#: The sample rate states are captured at when a recipe does not know its own (states hold
#: normalized parameter values, which do not depend on it; frequencies are clamped to it).
DEFAULT_CAPTURE_RATE = 44100


def plugin_state(slot: str, plan, state: Mapping) -> PluginState:
    """The recipe entry for ``slot`` from a hosting ``state`` (`capture_slot_states`) of ``plan``'s plugin."""

    ref = plan.map.plugin
    blob = state["data"][0]
    kind = state.get("kind")
    common = dict(
        slot=slot,
        path=ref.location,
        name=ref.name,
        vendor=str(state.get("vendor", "")),
        channels=plan.map.channels,
        map=plan.map.name,
        parameters=plan.map.plugin_values(plan.effect),
    )
    if kind == "vstpreset":
        data = base64.b64decode(blob)
        return PluginState(format="vst3", state=data, class_id=data[8:40].decode("ascii"), **common)
    if kind == "fxb":
        program = program_from_bank(base64.b64decode(blob), slot.rsplit("/", 1)[-1], f"{slot} state")
        return PluginState(format="vst2", state=build_fxp(program), unique_id=program.fx_id, **common)
    if kind == "parameters":
        names = {str(p["index"]): str(p["name"]) for p in plan.info.get("parameters", [])}
        ports = [{"index": int(i), "name": names.get(i, ""), "value": float(v)} for i, v in blob.items()]
        text = json.dumps({"uri": ref.location, "parameters": ports}, indent=1, ensure_ascii=False)
        return PluginState(format="lv2", state=text.encode("utf-8"), **common)
    raise PluginError(f"{slot}: cannot store a {kind!r} plugin state in a recipe")


def hosting_state(plugin: PluginState) -> dict:
    """The `plugin_bridge.backends.hosted` state of a recipe entry (one entry for every instance)."""
    ref = {"format": plugin.format, "name": plugin.name, "location": plugin.path}
    if plugin.format == "lv2":
        try:
            ports = json.loads(plugin.state.decode("utf-8"))["parameters"]
            data = {str(int(p["index"])): float(p["value"]) for p in ports}
        except (ValueError, KeyError, TypeError) as e:
            raise PluginError(f"{plugin.slot}: invalid LV2 state in the recipe ({e})") from None
        return {"plugin": ref, "kind": "parameters", "data": [data]}
    kind = "vstpreset" if plugin.format == "vst3" else "fxp"
    return {"plugin": ref, "kind": kind, "data": [base64.b64encode(plugin.state).decode("ascii")]}


def capture_plugins(
    effects: Sequence[Effect], backend: str, sample_rate: int | None = None, prefix: str = ""
) -> tuple[list[PluginState], dict[str, str]]:
    """States of the slots of ``effects`` that ``backend`` hosts, and the fallbacks of the others.

    Returns ``([PluginState], {slot: why it falls back to the built-in})``; slots are
    ``prefix + effect id`` (``"track/"`` in a session). Plugins are loaded in one child process.
    """
    rate = int(sample_rate or DEFAULT_CAPTURE_RATE)
    hosted: list[tuple[str, HostPlan]] = []
    fallbacks: dict[str, str] = {}
    for e in effects:
        if not e.plugin:
            continue
        slot = prefix + e.id
        planned = slot_plan(clamp_to_sample_rate(e, rate), backend)
        if isinstance(planned, HostPlan):
            hosted.append((slot, planned))
        else:
            fallbacks[slot] = planned
    states = capture_slot_states([plan for _, plan in hosted], backend, rate)
    plugins = [plugin_state(slot, plan, st) for (slot, plan), st in zip(hosted, states, strict=True)]
    return plugins, fallbacks


def restore_slots(
    effects: Sequence[Effect],
    plugins: Sequence[PluginState],
    fallbacks: Mapping[str, str],
    backend: str,
    prefix: str = "",
) -> tuple[list[Effect], dict[str, dict]]:
    """What a re-render on ``backend`` needs for ``effects``: the effects (recorded fallbacks back
    to the built-in; stored slots naming the map they were captured with, so every backend hosts
    the same plugin) and ``{effect id: hosting state}`` for every stored plugin.

    Raises `PluginError` (one line) when a stored plugin is missing, or this backend would host the
    slot through another plugin or not at all. Slots with neither a state nor a recorded fallback
    (recipes made without capture) render as the backend plans them.
    """
    stored = {p.slot: p for p in plugins}
    out: list[Effect] = []
    states: dict[str, dict] = {}
    for e in effects:
        slot = prefix + e.id
        if e.plugin and slot in fallbacks:
            out.append(replace(e, plugin=None))
            continue
        p = stored.get(slot)
        if p is None:
            out.append(e)
            continue
        label = f"recipe slot {slot!r}: plugin {p.display_name} ({p.format.upper()})"
        if not e.plugin:
            raise PluginError(f"{label} is stored, but the slot names no plugin")
        if p.format != "lv2" and not Path(p.path).exists():
            raise PluginError(f"{label} is not installed: {p.path} not found")
        e = replace(e, plugin=p.map or e.plugin)
        out.append(e)
        planned = slot_plan(e, backend)
        if not isinstance(planned, HostPlan):
            raise PluginError(f"{label} cannot be restored: {planned}")
        ref = planned.map.plugin
        if (ref.format, ref.location) != (p.format, p.path):
            raise PluginError(
                f"{label} at {p.path} is stored, but the {backend} backend hosts this slot with "
                f"{ref.format.upper()} {ref.location}"
            )
        states[e.id] = hosting_state(p)
    return out, states


def unbound_plugins(plugins: Sequence[PluginState], slots: Sequence[str]) -> list[PluginState]:
    """The stored plugins whose slot is not one of ``slots`` (a render cannot place them)."""
    known = set(slots)
    return [p for p in plugins if p.slot not in known]
