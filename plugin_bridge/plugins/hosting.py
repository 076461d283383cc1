"""Render chain slots through real plugins: pedalboard (VST3) stages and DawDreamer graph nodes.

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
``set_parameter`` for LV2 (never ``load_state``, which opens the editor and segfaults). A state from
pedalboard (.vstpreset) restores on DawDreamer too, and the other way round.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..backends.dawdreamer_backend import WholeSignalRenderer
from ..backends.dsp import Stage
from ..effects import Effect
from ..errors import BackendError, PluginBridgeError
from .discovery import PluginError, PluginRef
from .maps import PluginMap, find_map

log = logging.getLogger(__name__)

#: Plugin formats each backend can host.
BACKEND_FORMATS: dict[str, tuple[str, ...]] = {
    "pedalboard": ("vst3", "au"),
    "dawdreamer": ("vst2", "vst3", "lv2"),
    "numpy": (),
}
#: DawDreamer's file-based state restores: state kind -> (processor method, file suffix).
_PRESET_LOADERS = {"vstpreset": ("load_vst3_preset", ".vstpreset"), "fxb": ("load_preset", ".fxb")}
#: Frames of silence processed before reading a pedalboard plugin's state (trap 2).
STATE_FLUSH_FRAMES = 256


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


def plan_slot(effect: Effect, backend: str, strict: bool = False) -> HostPlan | Effect:
    """Decide how ``effect`` renders on ``backend``: a `HostPlan`, or the built-in effect (warned).

    Raises `PluginError` instead of falling back when ``strict``.
    """
    from .probe import ensure_probed

    name = effect.plugin
    if not name:
        return effect
    try:
        pmap = find_map(name, effect.type, BACKEND_FORMATS.get(backend, ()))
    except PluginBridgeError as e:
        return _fallback(effect, f"plugin {name!r}: {e}", strict)
    ref = pmap.plugin
    label = f"plugin {ref.name} ({ref.format.upper()}, map {pmap.name})"
    if ref.format not in BACKEND_FORMATS.get(backend, ()):
        can = ", ".join(f.upper() for f in BACKEND_FORMATS.get(backend, ())) or "no plugins"
        return _fallback(
            effect, f"{label} cannot be hosted by the {backend} backend (it hosts {can})", strict
        )
    if not _plugin_present(ref):
        return _fallback(effect, f"{label} is not installed ({ref.location} not found)", strict)
    result = ensure_probed(ref)
    if not result.ok:
        return _fallback(effect, f"{label} is known bad: {result.reason}", strict)
    return HostPlan(effect, pmap, result.info)


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
        import pedalboard

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


class DawDreamerGraphProcessor(WholeSignalRenderer):
    """A chain with hosted plugins as one DawDreamer graph; renders a whole signal per call.

    ``latency`` is the sum of the Faust segments' look-ahead and the plugins' reported latency
    (DawDreamer does not compensate it); the renderer trims it.
    """

    def __init__(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        plans: dict[str, HostPlan],
        states: dict[str, dict] | None = None,
        block_size: int = 512,
    ) -> None:
        from ..backends.dawdreamer_backend import claim_build_thread

        self.sample_rate = float(sample_rate)
        self.in_channels = channels
        self._lock = threading.Lock()
        claim_build_thread()
        self._build(list(effects), plans, states or {}, int(block_size))

    def _build(
        self, effects: list[Effect], plans: dict[str, HostPlan], states: dict, block_size: int
    ) -> None:
        import dawdreamer

        from ..backends.dawdreamer_backend import FAUST_FLAGS, reset_fpu_environment
        from ..backends.faust_codegen import chain_program

        sr = self.sample_rate
        engine = dawdreamer.RenderEngine(sr, block_size)
        self._engine = engine
        self._playback = engine.make_playback_processor(
            "input", np.zeros((self.in_channels, block_size), dtype=np.float32)
        )
        # 1. the plan: Faust segments (runs of built-ins, plus channel adapters) and plugin nodes
        steps: list[tuple[str, object]] = []
        run: list[Effect] = []
        n = self.in_channels
        faust_codes: list[tuple[str, int, int, int]] = []  # (code, in, out, latency)

        def faust(code: str, n_in: int, n_out: int, latency: int = 0) -> int:
            faust_codes.append((code, n_in, n_out, latency))
            return len(faust_codes) - 1

        def flush() -> None:
            nonlocal n
            if run:
                prog = chain_program(run, sr, n)
                steps.append(("faust", faust(prog.code, n, prog.out_channels, prog.latency)))
                n = prog.out_channels
                run.clear()

        for e in effects:
            plan = plans.get(e.id) if e.plugin else None
            if plan is None:
                run.append(e)
                continue
            flush()
            steps.append(("plugin", (plan, n)))
        flush()
        self.out_channels = n
        # 2. compile every Faust segment first (plugins may leave FTZ set: trap 6)
        reset_fpu_environment()
        fausts = []
        for k, (code, *_sizes) in enumerate(faust_codes):
            proc = engine.make_faust_processor(f"faust{k}")
            proc.compile_flags = list(FAUST_FLAGS)
            try:
                proc.set_dsp_string(code)
                ok = proc.compile()
            except RuntimeError as err:
                raise BackendError(f"dawdreamer: a Faust segment does not compile: {err}") from None
            if not ok:
                raise BackendError("dawdreamer: a Faust segment does not compile")
            fausts.append(proc)
        adapters: dict[tuple[int, str], object] = {}

        def adapter(step: int, code: str) -> None:
            """A small Faust node (channel split/merge) for plugin step ``step``; one per use in the graph."""
            proc = engine.make_faust_processor(f"adapt{len(adapters)}")
            proc.set_dsp_string(f'import("stdfaust.lib");\nprocess = {code};')
            if not proc.compile():
                raise BackendError(f"dawdreamer: adapter {code!r} does not compile")
            adapters[(step, code)] = proc

        # adapters are compiled up front too, before any plugin exists
        for k, st in enumerate(steps):
            if st[0] == "plugin":
                plan, ch = st[1]
                if plan.map.mono and ch == 2:
                    for code in ("_, !", "!, _", "si.bus(2)"):
                        adapter(k, code)
                elif not plan.map.mono and ch == 1:
                    for code in ("_ <: _, _", "(_ + _) * 0.5"):
                        adapter(k, code)
        # 3. plugins, then the graph
        graph: list[tuple[object, list[str]]] = [(self._playback, [])]
        last = "input"
        latency = 0
        self.hosted: dict[str, list] = {}
        for step, st in enumerate(steps):
            if st[0] == "faust":
                k = st[1]
                proc = fausts[k]
                graph.append((proc, [last]))
                last = proc.get_name()
                latency += faust_codes[k][3]
                continue
            plan, ch = st[1]
            values = indexed_values(plan)
            eid = plan.effect.id

            def make(tag: str, plan: HostPlan = plan, values: dict = values, eid: str = eid) -> object:
                p = engine.make_plugin_processor(f"{eid}{tag}", plan.map.plugin.location)
                for i, v in values.items():
                    p.set_parameter(i, float(v))
                return p

            if plan.map.mono and ch == 2:
                left, right = make("_L"), make("_R")
                pick_l, pick_r, merge = (adapters[(step, c)] for c in ("_, !", "!, _", "si.bus(2)"))
                graph += [(pick_l, [last]), (left, [pick_l.get_name()])]
                graph += [(pick_r, [last]), (right, [pick_r.get_name()])]
                graph.append((merge, [left.get_name(), right.get_name()]))
                last = merge.get_name()
                insts = [left, right]
            elif not plan.map.mono and ch == 1:
                p = make("")
                up, down = (adapters[(step, c)] for c in ("_ <: _, _", "(_ + _) * 0.5"))
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
            if eid in states:
                restore_dawdreamer_state(plan, insts, states[eid])
            latency += int(insts[0].get_latency_samples())
        reset_fpu_environment()
        # LV2 plugins in DawDreamer 0.9.0 drop parameter values at load_graph/render preparation
        # (measured: x42 dpl's threshold reverted to its default), so they are set again at each render
        self._reapply = []
        for eid, insts in self.hosted.items():
            plan = next(st[1][0] for st in steps if st[0] == "plugin" and st[1][0].effect.id == eid)
            if plan.map.plugin.format == "lv2":
                idx = [p["index"] for p in plan.info.get("parameters", []) if p.get("automatable", True)]
                for inst in insts:
                    self._reapply.append((inst, {i: float(inst.get_parameter(i)) for i in idx}))
        self.latency = latency
        self.plans = {st[1][0].effect.id: st[1][0] for st in steps if st[0] == "plugin"}
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
    effects: Sequence[Effect], sample_rate: float, channels: int, strict: bool = False
) -> DawDreamerGraphProcessor | None:
    """A graph processor when any slot is hosted on DawDreamer, else None (the plain Faust path)."""
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
    return DawDreamerGraphProcessor(plain, sample_rate, channels, plans)


# --------------------------------------------------------------------------------------------
# State: capture and restore with headless-safe calls only
# --------------------------------------------------------------------------------------------


def capture_state(stage: PedalboardPluginStage) -> dict:
    """The full state of a pedalboard-hosted plugin: ``{"plugin", "format", "kind", "data": [...]}``.

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
        "kind": "vstpreset",
        "data": [_encode(bytes(inst.preset_data)) for inst in stage.instances],
    }


def _write_temp(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="plugin-bridge-state-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def restore_state(stage: PedalboardPluginStage, state: dict) -> None:
    """Restore a state from `capture_state` into a pedalboard-hosted stage (``load_preset``)."""
    if state.get("kind") != "vstpreset":
        raise PluginError(
            f"{stage.plan.effect.id}: cannot restore a {state.get('kind')!r} state on pedalboard"
        )
    data = state.get("data") or []
    if len(data) != len(stage.instances):
        raise PluginError(
            f"{stage.plan.effect.id}: state has {len(data)} instance(s), the stage has {len(stage.instances)}"
        )
    for inst, blob in zip(stage.instances, data, strict=True):
        path = _write_temp(base64.b64decode(blob), ".vstpreset")
        try:
            inst.load_preset(path)
        finally:
            os.unlink(path)


_JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"


def juce_base64_decode(text: str) -> bytes:
    """Decode JUCE's ``MemoryBlock::toBase64Encoding`` text (``"<size>.<chars>"``, 6-bit LSB-first)."""
    size_text, _, chars = text.strip().partition(".")
    size = int(size_text)
    lookup = {c: i for i, c in enumerate(_JUCE_B64)}
    values = np.array([lookup[c] for c in chars if c in lookup], dtype=np.uint8)
    bits = np.unpackbits(values[:, None], axis=1, bitorder="little")[:, :6].reshape(-1)
    data = np.packbits(bits, bitorder="little").tobytes()
    return (data + bytes(size))[:size]


def juce_state_to_vstpreset(blob: bytes, class_id: str) -> bytes:
    """A .vstpreset from a JUCE VST3 state blob (DawDreamer ``save_state``) and the class ID.

    The blob is ``'VC2!'``, uint32 length, then XML whose ``IComponent``/``IEditController`` hold the
    component and controller states in JUCE's base64 (see /work/shared/HOSTING.md, file formats).
    """
    import re
    import struct

    if blob[:4] != b"VC2!" or len(class_id) != 32:
        raise PluginError("not a JUCE VST3 state blob, or no VST3 class ID to write a .vstpreset")
    (length,) = struct.unpack("<I", blob[4:8])
    xml = blob[8 : 8 + length].decode("utf-8", "replace")
    chunks = []
    for tag, cid in (("IComponent", b"Comp"), ("IEditController", b"Cont")):
        m = re.search(rf"<{tag}>([^<]*)</{tag}>", xml)
        if m and m.group(1).strip():
            chunks.append((cid, juce_base64_decode(m.group(1))))
    header = 4 + 4 + 32 + 8
    body = b"".join(c for _, c in chunks)
    entries, offset = [], header
    for cid, c in chunks:
        entries.append(cid + struct.pack("<qq", offset, len(c)))
        offset += len(c)
    out = b"VST3" + struct.pack("<i", 1) + class_id.encode("ascii") + struct.pack("<q", header + len(body))
    return out + body + b"List" + struct.pack("<i", len(chunks)) + b"".join(entries)


def capture_dawdreamer_state(plan: HostPlan, instances: Sequence) -> dict:
    """State of DawDreamer-hosted instances, with headless-safe formats only.

    VST2: an .fxb bank per instance (``save_state``; restored by ``load_preset``). VST3: a
    .vstpreset per instance built from ``save_state``'s JUCE blob (restored by ``load_vst3_preset``).
    LV2 (and a VST3 without a known class ID): the normalized value of every automatable parameter.
    """
    ref = plan.map.plugin
    out: dict = {"plugin": ref.to_dict(), "map": plan.map.name}
    class_id = str(plan.info.get("vst3_class_id") or "")
    if ref.format == "vst3" and len(class_id) == 32:
        presets = []
        for inst in instances:
            fd, path = tempfile.mkstemp(suffix=".state", prefix="plugin-bridge-state-")
            os.close(fd)
            try:
                inst.save_state(path)
                presets.append(_encode(juce_state_to_vstpreset(Path(path).read_bytes(), class_id)))
            finally:
                os.unlink(path)
        out.update(kind="vstpreset", data=presets)
        return out
    if ref.format == "vst2":
        blobs = []
        for inst in instances:
            fd, path = tempfile.mkstemp(suffix=".fxb", prefix="plugin-bridge-state-")
            os.close(fd)
            try:
                inst.save_state(path)
                blobs.append(_encode(Path(path).read_bytes()))
            finally:
                os.unlink(path)
        out.update(kind="fxb", data=blobs)
        return out
    automatable = [p["index"] for p in plan.info.get("parameters", []) if p.get("automatable", True)]
    out.update(
        kind="parameters",
        data=[{str(i): float(inst.get_parameter(i)) for i in automatable} for inst in instances],
    )
    return out


def restore_dawdreamer_state(plan: HostPlan, instances: Sequence, state: dict) -> None:
    """Restore `capture_dawdreamer_state` output: ``load_preset`` (.fxb), ``load_vst3_preset``
    (.vstpreset) or ``set_parameter`` per value; never ``load_state`` (it opens the editor)."""
    data = state.get("data") or []
    if len(data) != len(instances):
        raise PluginError(
            f"{plan.effect.id}: state has {len(data)} instance(s), the graph has {len(instances)}"
        )
    kind = state.get("kind")
    for inst, blob in zip(instances, data, strict=True):
        if kind in _PRESET_LOADERS:  # restored from a file, the headless-safe way (HOSTING trap 4)
            method, suffix = _PRESET_LOADERS[kind]
            path = _write_temp(base64.b64decode(blob), suffix)
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
