"""Effect chains: ordered effect slots loaded from presets/chains/, with the parameters a model predicts.

A chain file (YAML or JSON) lists slots. Each slot has an ``id``, a canonical ``type`` and
``params``; a parameter is either a fixed number or a mapping that makes it *predicted*, i.e. part
of the chain's `ParamSpace`::

    name: default
    space_version: mix-v1
    effects:
      - id: low
        type: low_shelf
        params:
          cutoff_hz: 120                                # fixed
          gain_db: {min: -8, max: 8, default: 0}        # predicted, name "low.gain_db"

A predicted range must lie inside the effect's valid range; ``curve`` defaults to the effect's.
A slot may add ``plugin: NAME`` (a plugin map, e.g. ``ZamCompX2``): its ``type`` and real-unit
``params`` stay the canonical ones, and backends that can host the plugin render it through the
map (`plugin_bridge.plugins`), the others the built-in effect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .effects import Effect, effect_specs
from .errors import ChainError, ParameterError
from .params import ParamSpace, ParamSpec

CHAIN_SUFFIXES = (".yaml", ".yml", ".json")
#: The chain the AI mix predicts for (presets/chains/default.yaml): its space is the models' output.
DEFAULT_CHAIN = "default"


def presets_dir() -> Path:
    """The presets folder: $PLUGIN_BRIDGE_PRESETS, the source tree's presets/, or the installed copy."""
    env = os.environ.get("PLUGIN_BRIDGE_PRESETS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "presets", here / "_presets"):
        if candidate.is_dir():
            return candidate
    raise ChainError("presets folder not found (set PLUGIN_BRIDGE_PRESETS)")


@dataclass(frozen=True)
class Slot:
    """One slot of a chain: effect type, fixed values and predicted specs (keyed by param name)."""

    id: str
    type: str
    fixed: Mapping[str, float]
    predicted: Mapping[str, ParamSpec]
    plugin: str | None = None


@dataclass(frozen=True)
class Chain:
    """An ordered list of effect slots plus the `ParamSpace` of its predicted parameters."""

    name: str
    slots: tuple[Slot, ...]
    space: ParamSpace
    description: str = ""
    source: str = ""

    @property
    def effect_ids(self) -> list[str]:
        """Slot ids in order."""
        return [s.id for s in self.slots]

    def resolve(self, values: Mapping[str, float] | None = None) -> list[Effect]:
        """Concrete effects for real-unit ``values`` of the predicted parameters.

        Missing predicted values take their defaults; unknown names and out-of-range values are
        errors naming the parameter.
        """
        values = dict(values or {})
        for name in values:
            self.space.spec(name)
        out = []
        for slot in self.slots:
            params = dict(slot.fixed)
            for pname, spec in slot.predicted.items():
                params[pname] = spec.check(values.get(spec.name, spec.default))
            out.append(Effect(slot.id, slot.type, params, slot.plugin))
        return out

    def resolve_vector(self, vector: Sequence[float] | np.ndarray) -> list[Effect]:
        """Concrete effects for a normalized model vector (validated, clamped to [0, 1])."""
        return self.resolve(self.space.to_values(vector))

    def to_dict(self) -> dict:
        """The chain as a JSON-ready dict in chain-file form."""
        effects = []
        for slot in self.slots:
            params: dict = dict(slot.fixed)
            for pname, spec in slot.predicted.items():
                params[pname] = {
                    "min": spec.min,
                    "max": spec.max,
                    "default": spec.default,
                    "curve": spec.curve,
                }
            entry = {"id": slot.id, "type": slot.type, "params": params}
            if slot.plugin:
                entry["plugin"] = slot.plugin
            effects.append(entry)
        return {
            "name": self.name,
            "description": self.description,
            "space_version": self.space.version,
            "effects": effects,
        }


def _slot_from_dict(raw: object, index: int, where: str) -> Slot:
    if not isinstance(raw, Mapping):
        raise ChainError(f"{where}: effect #{index} must be a mapping with 'id', 'type', 'params'")
    etype = raw.get("type")
    sid = str(raw.get("id") or etype or f"fx{index}")
    if not isinstance(etype, str):
        raise ChainError(f"{where}: effect #{index} ({sid}) has no 'type'")
    try:
        specs = {s.name: s for s in effect_specs(etype)}
    except ChainError as e:
        raise ChainError(f"{where}: effect {sid!r}: {e}") from None
    unknown_keys = set(raw) - {"id", "type", "params", "plugin"}
    if unknown_keys:
        raise ChainError(
            f"{where}: effect {sid!r}: unknown keys {sorted(unknown_keys)} (valid: id, type, params, plugin)"
        )
    plugin = raw.get("plugin")
    if plugin is not None and (not isinstance(plugin, str) or not plugin.strip()):
        raise ChainError(f"{where}: effect {sid!r}: 'plugin' must name a plugin map (e.g. ZamCompX2)")
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise ChainError(f"{where}: effect {sid!r}: 'params' must be a mapping")
    fixed: dict[str, float] = {}
    predicted: dict[str, ParamSpec] = {}
    for pname, value in params.items():
        if pname not in specs:
            raise ChainError(
                f"{where}: effect {sid!r} ({etype}): unknown parameter {pname!r}; valid: {', '.join(specs)}"
            )
        base = specs[pname]
        try:
            if isinstance(value, Mapping):
                lo = float(value.get("min", base.min))
                hi = float(value.get("max", base.max))
                if lo < base.min or hi > base.max:
                    raise ParameterError(
                        f"{sid}.{pname}: predicted range [{lo:g}, {hi:g}] leaves the valid range "
                        f"[{base.min:g}, {base.max:g}] {base.unit}"
                    )
                default = float(value.get("default", min(max(base.default, lo), hi)))
                predicted[pname] = ParamSpec(
                    f"{sid}.{pname}",
                    base.unit,
                    lo,
                    hi,
                    default,
                    str(value.get("curve", base.curve)),
                    base.step,
                    base.description,
                )
            else:
                fixed[pname] = base.check(value, where=f"{sid}.")
        except ParameterError as e:
            raise ChainError(f"{where}: {e}") from None
    return Slot(sid, etype, fixed, predicted, plugin)


def chain_from_dict(data: Mapping, source: str = "<dict>") -> Chain:
    """Build and validate a `Chain` from its file form (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ChainError(f"{source}: a chain must be a mapping with 'name' and 'effects'")
    effects = data.get("effects")
    if not isinstance(effects, list) or not effects:
        raise ChainError(f"{source}: 'effects' must be a non-empty list")
    slots = tuple(_slot_from_dict(raw, i, source) for i, raw in enumerate(effects))
    ids = [s.id for s in slots]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ChainError(f"{source}: duplicate effect ids {dupes}")
    name = str(data.get("name") or Path(source).stem)
    version = str(data.get("space_version") or f"{name}-v1")
    specs = [spec for slot in slots for spec in slot.predicted.values()]
    return Chain(name, slots, ParamSpace(tuple(specs), version), str(data.get("description", "")), source)


def read_structured_file(path: Path) -> object:
    """Parse a YAML or JSON file (by suffix); errors name the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ChainError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ChainError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        # libyaml's parser when PyYAML has it (same safe constructor, ~10x faster: a chain load
        # is part of every render call), the pure-Python one otherwise
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as e:  # yaml and json raise many types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ChainError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {msg}") from None


def list_chains() -> list[str]:
    """Names of the chains shipped in presets/chains/."""
    folder = presets_dir() / "chains"
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in CHAIN_SUFFIXES)


def load_chain(name_or_path: str | os.PathLike) -> Chain:
    """Load a chain by shipped name (``"default"``) or from a YAML/JSON file path."""
    candidate = Path(name_or_path)
    if candidate.suffix.lower() in CHAIN_SUFFIXES or candidate.exists():
        if not candidate.is_file():
            raise ChainError(f"chain file not found: {candidate}")
        return chain_from_dict(read_structured_file(candidate), str(candidate))
    folder = presets_dir() / "chains"
    for suffix in CHAIN_SUFFIXES:
        path = folder / f"{name_or_path}{suffix}"
        if path.is_file():
            return chain_from_dict(read_structured_file(path), str(path))
    raise ChainError(f"unknown chain {str(name_or_path)!r}; shipped chains: {', '.join(list_chains())}")


def default_chain() -> Chain:
    """The shipped default mix chain (`DEFAULT_CHAIN`), whose space the models predict."""
    return load_chain(DEFAULT_CHAIN)


def default_space() -> ParamSpace:
    """The default mix space: the predicted parameters of the shipped default chain."""
    return default_chain().space


def effects_from_dicts(items: Sequence[Mapping]) -> list[Effect]:
    """Concrete effects from ``[{"id", "type", "params"}, ...]`` (e.g. a recipe); validated."""
    out = []
    for i, item in enumerate(items):
        try:
            plugin = item.get("plugin")
            out.append(
                Effect(
                    str(item.get("id", f"fx{i}")),
                    str(item["type"]),
                    dict(item.get("params", {})),
                    str(plugin) if plugin else None,
                )
            )
        except KeyError:
            raise ChainError(f"effect #{i} has no 'type'") from None
    return out
