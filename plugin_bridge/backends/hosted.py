"""Processors that host real plugins: pedalboard (VST3) stages and DawDreamer graph nodes.

A chain slot that names a plugin (``Effect.plugin``) is rendered by the plugin its map binds
(`plugin_bridge.plugins.maps`), when the backend can host that format and the plugin is present
and not known bad. Otherwise the slot falls back to the built-in effect with a warning naming the
substitution, or, with ``strict``, raises `PluginError`. Every plugin is probed once in a
subprocess (`probe.ensure_probed`) before it is ever loaded in this process, so a plugin that
crashes or hangs is found and remembered as bad without taking the render down.

- pedalboard hosts VST3 (and AU on macOS): `PedalboardPluginStage` is a streaming `Stage`. Plugins
  are loaded in the calling thread (HOSTING.md trap 3: a VST3 loaded in a worker thread cannot
  process) and processed with ``reset=False``; pedalboard does not compensate a plugin's latency
  when streaming, so the stage reports it and the renderer trims it.
- DawDreamer hosts VST2, VST3 and LV2: `DawDreamerGraphProcessor` splits the chain into Faust
  segments around plugin nodes in one ``RenderEngine`` graph; Faust is compiled before any plugin
  is created (trap 6) and every processor exists before ``load_graph`` (trap 5).
- Mono-only plugins (map ``channels: 1``) run one instance per channel; a stereo plugin fed mono
  gets the channel twice and its two outputs are averaged.

Plugin state (`capture_state` / `restore_state`) uses only calls that are safe headless (trap 4):
pedalboard ``preset_data`` (a .vstpreset, read after processing one short buffer: trap 2) and
``load_preset``; DawDreamer ``save_state`` -> ``.fxb`` -> ``load_preset`` for VST2, ``save_state`` (a
JUCE blob) converted to a ``.vstpreset`` -> ``load_vst3_preset`` for VST3, and per-parameter
``set_parameter`` for LV2 (never ``load_state``, which opens the editor and segfaults); an ``.fxp``
program (a recipe's VST2 state) restores with ``load_preset`` too. A state from pedalboard
(.vstpreset) restores on DawDreamer too, and the other way round. Restoring checks the state belongs
to the hosted plugin (format and location, VST3 class ID, VST2 unique ID: DawDreamer's
``load_preset`` would load another plugin's .fxp without a word). `capture_slot_states` captures
slots' states on a plugin loaded for the purpose (what a mix recipe stores).
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..effects import Effect
from ..errors import BackendError
from ..plugins.discovery import PluginError
from ..plugins.fpu import reset_fpu_environment
from ..plugins.planning import HostPlan, indexed_values, plan_slot
from ..plugins.vst3_state import build_vstpreset, decode_juce_state
from .dawdreamer_engine import FAUST_FLAGS, WholeSignalRenderer, claim_build_thread
from .dsp import Stage
from .faust_codegen import chain_program
from .host_process import call_in_host_process, in_host_process

log = logging.getLogger(__name__)

#: DawDreamer's file-based state restores: state kind -> (processor method, file suffix).
_PRESET_LOADERS = {
    "vstpreset": ("load_vst3_preset", ".vstpreset"),
    "fxb": ("load_preset", ".fxb"),
    "fxp": ("load_preset", ".fxp"),
}
#: Frames of silence processed before reading a pedalboard plugin's state (trap 2).
STATE_FLUSH_FRAMES = 256


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------
# pedalboard (VST3)
# --------------------------------------------------------------------------------------------


class PedalboardPluginStage(Stage):
    """A hosted plugin as a streaming stage on the pedalboard backend (float32, ``reset=False``).

    ``latency`` (samples) is the plugin's reported latency, which pedalboard does not compensate
    when streaming. Load it in the main thread (trap 3); ``process`` may then run anywhere.
    """

    native_float32 = True

    def __init__(self, plan: HostPlan, sample_rate: float, channels: int, state: dict | None = None) -> None:
        import pedalboard  # optional: the numpy backend runs without it

        super().__init__(channels)
        if threading.current_thread() is not threading.main_thread():
            log.info(
                "%s: loading a VST3 outside the main thread may not process (pedalboard)", plan.effect.id
            )
        self.plan = plan
        self.sample_rate = float(sample_rate)
        n = channels if plan.map.mono else 1
        self.instances = [pedalboard.load_plugin(plan.map.plugin.location) for _ in range(n)]
        values = indexed_values(plan)
        for inst in self.instances:
            params = inst._parameters
            for i, v in values.items():
                params[i].raw_value = float(v)
        if state is not None:
            restore_state(self, state)
        self.latency = int(getattr(self.instances[0], "reported_latency_samples", 0) or 0)

    def _process(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        sr = self.sample_rate
        if self.plan.map.mono:
            return np.vstack(
                [inst.process(x[c : c + 1], sr, reset=False)[:1] for c, inst in enumerate(self.instances)]
            )
        if self.channels == 1:
            y = self.instances[0].process(np.vstack([x, x]), sr, reset=False)
            return y.mean(axis=0, keepdims=True).astype(np.float32)
        return self.instances[0].process(x, sr, reset=False)

    def flush_state(self) -> None:
        """Process one short silent buffer so the plugin's state reflects parameter writes (trap 2)."""
        for inst in self.instances:
            ch = 1 if self.plan.map.mono else 2
            inst.process(np.zeros((ch, STATE_FLUSH_FRAMES), np.float32), self.sample_rate, reset=False)


# --------------------------------------------------------------------------------------------
# DawDreamer (VST2, VST3, LV2): Faust segments around plugin nodes
# --------------------------------------------------------------------------------------------


#: Faust adapters around a plugin node: a mono-only plugin on stereo (pick left, pick right, merge
#: the two instances' outputs) and a stereo plugin on mono (duplicate the channel, average the outputs).
MONO_ON_STEREO = ("_, !", "!, _", "si.bus(2)")
STEREO_ON_MONO = ("_ <: _, _", "(_ + _) * 0.5")


@dataclass(frozen=True)
class FaustSegment:
    """A run of built-in effects compiled as one Faust program between plugin nodes."""

    code: str
    in_channels: int
    out_channels: int
    latency: int


@dataclass(frozen=True)
class PluginNode:
    """A hosted plugin in a DawDreamer graph and the number of channels that reach it."""

    plan: HostPlan
    channels: int

    @property
    def adapters(self) -> tuple[str, ...]:
        """The Faust adapter programs around the plugin (`MONO_ON_STEREO`, `STEREO_ON_MONO` or none)."""
        if self.plan.map.mono and self.channels == 2:
            return MONO_ON_STEREO
        if not self.plan.map.mono and self.channels == 1:
            return STEREO_ON_MONO
        return ()


def graph_steps(
    effects: Sequence[Effect], plans: dict[str, HostPlan], sample_rate: float, channels: int
) -> tuple[list[FaustSegment | PluginNode], int]:
    """``effects`` as Faust segments (runs of built-ins) around the plugin nodes ``plans`` host, in
    order, and the output channel count. `DawDreamerGraphProcessor` and the exported DawDreamer
    script (`plugin_bridge.export.dawdreamer_script`) build their graphs from these steps."""
    steps: list[FaustSegment | PluginNode] = []
    run: list[Effect] = []
    n = channels

    def flush() -> None:
        nonlocal n
        if run:
            prog = chain_program(run, sample_rate, n)
            steps.append(FaustSegment(prog.code, n, prog.out_channels, prog.latency))
            n = prog.out_channels
            run.clear()

    for e in effects:
        plan = plans.get(e.id) if e.plugin else None
        if plan is None:
            run.append(e)
            continue
        flush()
        steps.append(PluginNode(plan, n))
    flush()
    return steps, n


class DawDreamerGraphProcessor(WholeSignalRenderer):
    """A chain with hosted plugins as one DawDreamer graph; renders a whole signal per call.

    ``latency`` is the sum of the Faust segments' look-ahead and the plugins' reported latency
    (DawDreamer does not compensate it); the renderer trims it. ``states`` (``{effect id: state}``
    from `capture_dawdreamer_state` or `capture_state`) are restored into the plugins.
    """

    def __init__(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        plans: dict[str, HostPlan],
        states: Mapping[str, dict] | None = None,
        block_size: int = 512,
    ) -> None:
        self.sample_rate = float(sample_rate)
        self.in_channels = channels
        self._lock = threading.Lock()
        claim_build_thread()
        self._build(list(effects), plans, states or {}, int(block_size))

    def _build(
        self, effects: list[Effect], plans: dict[str, HostPlan], states: Mapping[str, dict], block_size: int
    ) -> None:
        import dawdreamer  # the dawdreamer extra

        engine = dawdreamer.RenderEngine(self.sample_rate, block_size)
        self._engine = engine
        self._playback = engine.make_playback_processor(
            "input", np.zeros((self.in_channels, block_size), dtype=np.float32)
        )
        # 1. the plan: Faust segments (runs of built-ins) and plugin nodes
        steps, self.out_channels = graph_steps(effects, plans, self.sample_rate, self.in_channels)
        # 2. compile every Faust segment and adapter first (plugins may leave FTZ set: trap 6)
        reset_fpu_environment()
        fausts: dict[int, object] = {}
        for k, st in enumerate(steps):
            if isinstance(st, FaustSegment):
                proc = engine.make_faust_processor(f"faust{k}")
                proc.compile_flags = list(FAUST_FLAGS)
                try:
                    proc.set_dsp_string(st.code)
                    ok = proc.compile()
                except RuntimeError as err:
                    raise BackendError(f"dawdreamer: a Faust segment does not compile: {err}") from None
                if not ok:
                    raise BackendError("dawdreamer: a Faust segment does not compile")
                fausts[k] = proc
        adapters: dict[tuple[int, str], object] = {}
        for k, st in enumerate(steps):
            if isinstance(st, PluginNode):
                for code in st.adapters:  # a small channel split/merge node, one per use in the graph
                    proc = engine.make_faust_processor(f"adapt{len(adapters)}")
                    proc.set_dsp_string(f'import("stdfaust.lib");\nprocess = {code};')
                    if not proc.compile():
                        raise BackendError(f"dawdreamer: adapter {code!r} does not compile")
                    adapters[(k, code)] = proc
        # 3. plugins, then the graph
        graph: list[tuple[object, list[str]]] = [(self._playback, [])]
        last = "input"
        latency = 0
        self.hosted: dict[str, list] = {}
        self.plans: dict[str, HostPlan] = {}
        for k, st in enumerate(steps):
            if isinstance(st, FaustSegment):
                graph.append((fausts[k], [last]))
                last = fausts[k].get_name()
                latency += st.latency
                continue
            plan = st.plan
            values = indexed_values(plan)
            eid = plan.effect.id

            def make(tag: str, plan: HostPlan = plan, values: dict = values, eid: str = eid) -> object:
                p = engine.make_plugin_processor(f"{eid}{tag}", plan.map.plugin.location)
                for i, v in values.items():
                    p.set_parameter(i, float(v))
                return p

            if st.adapters == MONO_ON_STEREO:
                left, right = make("_L"), make("_R")
                pick_l, pick_r, merge = (adapters[(k, c)] for c in MONO_ON_STEREO)
                graph += [(pick_l, [last]), (left, [pick_l.get_name()])]
                graph += [(pick_r, [last]), (right, [pick_r.get_name()])]
                graph.append((merge, [left.get_name(), right.get_name()]))
                last = merge.get_name()
                insts = [left, right]
            elif st.adapters == STEREO_ON_MONO:
                p = make("")
                up, down = (adapters[(k, c)] for c in STEREO_ON_MONO)
                graph += [(up, [last]), (p, [up.get_name()])]
                graph.append((down, [p.get_name()]))
                last = down.get_name()
                insts = [p]
            else:
                p = make("")
                graph.append((p, [last]))
                last = p.get_name()
                insts = [p]
            self.hosted[eid] = insts
            self.plans[eid] = plan
            if eid in states:
                restore_dawdreamer_state(plan, insts, states[eid])
            latency += int(insts[0].get_latency_samples())
        reset_fpu_environment()
        # LV2 plugins in DawDreamer 0.9.0 drop parameter values at load_graph/render preparation
        # (measured: x42 dpl's threshold reverted to its default), so they are set again at each render
        self._reapply = []
        for eid, insts in self.hosted.items():
            plan = self.plans[eid]
            if plan.map.plugin.format == "lv2":
                idx = [p["index"] for p in plan.info.get("parameters", []) if p.get("automatable", True)]
                for inst in insts:
                    self._reapply.append((inst, {i: float(inst.get_parameter(i)) for i in idx}))
        self.latency = latency
        if not engine.load_graph(graph):
            raise BackendError("dawdreamer: could not load the render graph with hosted plugins")
        self._release_buffers()

    def _before_render(self) -> None:
        for inst, values in self._reapply:
            for i, v in values.items():
                inst.set_parameter(i, v)

    def plugin_states(self) -> dict[str, dict]:
        """``{effect id: state}`` of every hosted plugin (see `capture_state`)."""
        return {eid: capture_dawdreamer_state(self.plans[eid], insts) for eid, insts in self.hosted.items()}


def dawdreamer_processor(
    effects: Sequence[Effect],
    sample_rate: float,
    channels: int,
    strict: bool = False,
    states: Mapping[str, dict] | None = None,
) -> DawDreamerGraphProcessor | None:
    """A graph processor when any slot is hosted on DawDreamer, else None (the plain Faust path).

    ``states`` (``{effect id: state}``) are restored into the hosted plugins.
    """
    if not any(e.plugin for e in effects):
        return None
    plans: dict[str, HostPlan] = {}
    plain: list[Effect] = []
    for e in effects:
        planned = plan_slot(e, "dawdreamer", strict)
        if isinstance(planned, HostPlan):
            plans[e.id] = planned
            plain.append(e)
        else:
            plain.append(planned)
    if not plans:
        return None
    return DawDreamerGraphProcessor(plain, sample_rate, channels, plans, states)


# --------------------------------------------------------------------------------------------
# State: capture and restore with headless-safe calls only
# --------------------------------------------------------------------------------------------
#
# A state is ``{"plugin": PluginRef dict, "map": map name, "kind": ..., "data": [one per instance]}``
# (``"vendor"`` too when the host reports it). ``data`` may hold a single entry for several
# instances: a mono-only plugin's per-channel instances share their settings, so one state
# restores into each. Restoring checks the state belongs to the plugin: the same format and
# location, the same VST3 class ID or VST2 unique ID.


def capture_state(stage: PedalboardPluginStage) -> dict:
    """The full state of a pedalboard-hosted plugin: ``{"plugin", "map", "vendor", "kind", "data": [...]}``.

    ``kind`` is ``"vstpreset"``: one base64 .vstpreset per instance (two for a mono plugin on
    stereo audio). A short silent buffer is processed first so the state holds the parameter
    writes (trap 2), which also advances the stage's stream by `STATE_FLUSH_FRAMES`: capture before
    rendering or on a stage made for the purpose.
    """
    stage.flush_state()
    ref = stage.plan.map.plugin
    return {
        "plugin": ref.to_dict(),
        "map": stage.plan.map.name,
        "vendor": str(getattr(stage.instances[0], "manufacturer_name", "") or ""),
        "kind": "vstpreset",
        "data": [_encode(bytes(inst.preset_data)) for inst in stage.instances],
    }


def capture_slot_states(plans: Sequence[HostPlan], backend: str, sample_rate: float) -> list[dict]:
    """The states of ``plans``' plugins as ``backend`` hosts them, set to each slot's mapped values.

    Each plugin is loaded for the purpose (one instance, on the channel count it takes: a mono-only
    plugin's per-channel copies share this state), captured with `capture_state` (pedalboard) or
    `capture_dawdreamer_state`, and released; all of it in one child process
    (`plugin_bridge.backends.host_process`) unless this is one already.
    """
    if not plans:
        return []
    if backend not in ("pedalboard", "dawdreamer"):
        raise PluginError(f"{plans[0].effect.id}: the {backend} backend hosts no plugins")
    if not in_host_process():
        slots = ", ".join(f"{p.effect.id} ({p.map.plugin.name})" for p in plans)
        return call_in_host_process(
            f"{__name__}:capture_slot_states", list(plans), backend, sample_rate, what=f"capturing {slots}"
        )
    states = []
    for plan in plans:
        try:
            if backend == "pedalboard":
                states.append(capture_state(PedalboardPluginStage(plan, sample_rate, plan.map.channels)))
            else:
                eid = plan.effect.id
                graph = DawDreamerGraphProcessor([plan.effect], sample_rate, plan.map.channels, {eid: plan})
                states.append(graph.plugin_states()[eid])
        finally:
            reset_fpu_environment()  # DPF plugins leave flush-to-zero set on the calling thread (trap 6)
    return states


def _write_temp(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="plugin-bridge-state-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _per_instance(plan: HostPlan, state: dict, instances: int) -> list:
    """The state's entries, one per instance (a single entry serves every instance)."""
    data = list(state.get("data") or [])
    if len(data) == 1 and instances > 1:
        return data * instances
    if len(data) != instances:
        raise PluginError(f"{plan.effect.id}: state has {len(data)} instance(s), the slot has {instances}")
    return data


def _check_state_plugin(plan: HostPlan, state: dict) -> None:
    """The state was captured from the plugin this slot hosts (same format and location)."""
    ref = plan.map.plugin
    stored = state.get("plugin") or {}
    have = (stored.get("format", ref.format), stored.get("location", ref.location))
    if have != (ref.format, ref.location):
        raise PluginError(
            f"{plan.effect.id}: the state is for the {have[0].upper()} plugin {have[1]}, but this slot "
            f"hosts the {ref.format.upper()} plugin {ref.location}"
        )


def _check_vst3_class(plan: HostPlan, preset: bytes) -> None:
    """A .vstpreset's processor class ID matches the probed plugin's."""
    if preset[:4] != b"VST3" or len(preset) < 48:
        raise PluginError(f"{plan.effect.id}: the stored VST3 state is not a .vstpreset")
    got = preset[8:40].decode("ascii", "replace").upper()
    want = str(plan.info.get("vst3_class_id") or "").upper()
    if want and got != want:
        raise PluginError(
            f"{plan.effect.id}: the stored .vstpreset is for VST3 class {got}, but "
            f"{plan.map.plugin.location} is class {want}: a different plugin"
        )


def _vst2_unique_id(inst) -> bytes:
    """A DawDreamer VST2 processor's four-character unique ID (from the header of its .fxb state)."""
    fd, path = tempfile.mkstemp(suffix=".fxb", prefix="plugin-bridge-state-")
    os.close(fd)
    try:
        inst.save_state(path)
        return Path(path).read_bytes()[16:20]
    finally:
        os.unlink(path)


def _check_vst2_id(plan: HostPlan, inst, program: bytes) -> None:
    """An .fxp/.fxb's plugin ID matches the loaded plugin's (DawDreamer's load_preset does not check)."""
    if program[:4] != b"CcnK" or len(program) < 20:
        raise PluginError(f"{plan.effect.id}: the stored VST2 state is not an .fxp/.fxb")
    got, want = program[16:20], _vst2_unique_id(inst)
    if got != want:
        raise PluginError(
            f"{plan.effect.id}: the stored state is for VST2 ID {got.decode('latin-1')!r}, but "
            f"{plan.map.plugin.location} is {want.decode('latin-1')!r}: a different plugin"
        )


def restore_state(stage: PedalboardPluginStage, state: dict) -> None:
    """Restore a state from `capture_state` into a pedalboard-hosted stage (``load_preset``)."""
    plan = stage.plan
    if state.get("kind") != "vstpreset":
        raise PluginError(f"{plan.effect.id}: cannot restore a {state.get('kind')!r} state on pedalboard")
    _check_state_plugin(plan, state)
    for inst, blob in zip(stage.instances, _per_instance(plan, state, len(stage.instances)), strict=True):
        preset = base64.b64decode(blob)
        _check_vst3_class(plan, preset)
        path = _write_temp(preset, ".vstpreset")
        try:
            inst.load_preset(path)
        finally:
            os.unlink(path)


def capture_dawdreamer_state(plan: HostPlan, instances: Sequence) -> dict:
    """State of DawDreamer-hosted instances, with headless-safe formats only.

    VST2: an .fxb bank per instance (``save_state``; restored by ``load_preset``). VST3: a
    .vstpreset per instance built from ``save_state``'s JUCE blob (restored by ``load_vst3_preset``).
    LV2 (and a VST3 without a known class ID): the normalized value of every automatable parameter.
    """
    ref = plan.map.plugin
    out: dict = {"plugin": ref.to_dict(), "map": plan.map.name}
    class_id = str(plan.info.get("vst3_class_id") or "")
    if ref.format in ("vst3", "vst2") and (ref.format == "vst2" or len(class_id) == 32):
        blobs = []
        for inst in instances:
            fd, path = tempfile.mkstemp(suffix=".state", prefix="plugin-bridge-state-")
            os.close(fd)
            try:
                inst.save_state(path)
                blob = Path(path).read_bytes()
            finally:
                os.unlink(path)
            if ref.format == "vst3":  # JUCE's own blob: the same Comp/Cont chunks as a .vstpreset
                blob = build_vstpreset(class_id, *decode_juce_state(blob))
            blobs.append(_encode(blob))
        out.update(kind="vstpreset" if ref.format == "vst3" else "fxb", data=blobs)
        return out
    automatable = [p["index"] for p in plan.info.get("parameters", []) if p.get("automatable", True)]
    out.update(
        kind="parameters",
        data=[{str(i): float(inst.get_parameter(i)) for i in automatable} for inst in instances],
    )
    return out


def restore_dawdreamer_state(plan: HostPlan, instances: Sequence, state: dict) -> None:
    """Restore `capture_dawdreamer_state` output: ``load_preset`` (.fxb or .fxp),
    ``load_vst3_preset`` (.vstpreset) or ``set_parameter`` per value; never ``load_state`` (it
    opens the editor). The state must belong to the hosted plugin (`PluginError` otherwise)."""
    kind = state.get("kind")
    _check_state_plugin(plan, state)
    for inst, blob in zip(instances, _per_instance(plan, state, len(instances)), strict=True):
        if kind in _PRESET_LOADERS:  # restored from a file, the headless-safe way (HOSTING trap 4)
            method, suffix = _PRESET_LOADERS[kind]
            data = base64.b64decode(blob)
            if kind == "vstpreset":
                _check_vst3_class(plan, data)
            else:
                _check_vst2_id(plan, inst, data)
            path = _write_temp(data, suffix)
            try:
                if not getattr(inst, method)(path):
                    raise PluginError(f"{plan.effect.id}: DawDreamer could not load the saved {suffix} state")
            finally:
                os.unlink(path)
        elif kind == "parameters":
            for i, v in blob.items():
                inst.set_parameter(int(i), float(v))
        else:
            raise PluginError(f"{plan.effect.id}: unknown state kind {kind!r}")
