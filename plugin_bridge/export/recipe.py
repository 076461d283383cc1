"""The mix recipe: one JSON file holding everything needed to re-render a mix bit-identically.

A recipe records the parameter values actually used, in both forms (the model's normalized vector
and the real-unit values per effect), the chain they belong to (with its parameter space version
and fingerprint), the model id if a model proposed them, the session graph for multitrack mixes,
the sample rate, the input file, the backend and the package version. Chain slots rendered by a
real third-party plugin travel as `PluginState` entries (format, path, class or unique id, full
state as base64); slots whose plugin could not be hosted record why in ``fallbacks`` (see
`plugin_bridge.export.plugin_slots`). An optional ``master`` entry is the mastering step applied
after the mix (`plugin_bridge.mastering.master_array`: the loudness target and the settings), so a
re-render reproduces the mastered file.

Layout (``format_version`` 2)::

    {"format_version": 2, "kind": "chain" | "session", "package_version": "0.1.0",
     "model_id": null, "backend": "pedalboard", "tail": true, "sample_rate": 44100, "input": "song.wav",
     "space": {"version": "mix-v1", "fingerprint": "..."},
     "chain": {...chain file form...}, "vector": [...], "values": {"comp.threshold_db": -18.0, ...},
     "effects": [{"id", "type", "params", "plugin"?}, ...],   # real units, exactly what renders
     "session": {...session file form, chains as effect lists...},   # kind "session" only
     "plugins": [{"slot", "format", "path", "name", "vendor", "class_id", "unique_id", "channels",
                  "map", "parameters", "state"}, ...],
     "fallbacks": {"slot": "why the built-in renders it", ...},
     "master": null | {"target": {"name", "lufs", "ceiling_dbtp"}, "settings": {...MasterSettings}}}

Version 1 files (no ``fallbacks``, no ``master``) still load. Loading validates: a newer
``format_version``, a space version newer than (or unknown to) this plugin-bridge's shipped chains,
a fingerprint that differs from the shipped space of the same version, or values that disagree with
the vector are `FormatError` naming both sides.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..audio_io import inspect_audio
from ..backends import get_backend
from ..chain import Chain, chain_from_dict, effects_from_dicts, list_chains, load_chain
from ..effects import Effect
from ..errors import FormatError, PluginBridgeError
from ..files import write_atomic
from ..graph import session_sample_rate
from ..mastering import LoudnessTarget, MasterSettings, resolve_target
from ..session import Session, load_session, session_from_dict, session_to_dict
from ..version import __version__
from .plugin_slots import capture_plugins
from .plugin_state import PLUGIN_FORMATS, PluginState  # noqa: F401  (part of the recipe API)

#: The recipe layout this code writes and the newest it reads.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Recipe:
    """A complete, re-renderable mix (see the module docstring for the JSON layout)."""

    kind: str
    effects: tuple[Effect, ...] = ()
    chain: Mapping | None = None
    vector: tuple[float, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    space_version: str = ""
    fingerprint: str = ""
    session: Mapping | None = None
    model_id: str | None = None
    sample_rate: int | None = None
    input: str | None = None
    backend: str = "pedalboard"
    tail: bool = True
    downmix: bool = False
    plugins: tuple[PluginState, ...] = ()
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    master: Mapping | None = None
    package_version: str = ""
    format_version: int = FORMAT_VERSION

    def chain_object(self) -> Chain | None:
        """The recipe's chain rebuilt from its embedded definition (None for sessions without one)."""
        return chain_from_dict(self.chain, "recipe chain") if self.chain else None

    def to_dict(self) -> dict:
        """The JSON-ready recipe."""
        d: dict = {
            "format_version": self.format_version,
            "kind": self.kind,
            "package_version": self.package_version,
            "model_id": self.model_id,
            "backend": self.backend,
            "tail": self.tail,
            "sample_rate": self.sample_rate,
            "input": self.input,
        }
        if self.downmix:  # the input has more than 2 channels and is folded to stereo (render --downmix)
            d["downmix"] = True
        if self.kind == "chain":
            d["space"] = {"version": self.space_version, "fingerprint": self.fingerprint}
            d["chain"] = self.chain
            d["vector"] = list(self.vector)
            d["values"] = dict(self.values)
            d["effects"] = [e.to_dict() for e in self.effects]
        else:
            d["session"] = self.session
        d["plugins"] = [p.to_dict() for p in self.plugins]
        d["fallbacks"] = dict(self.fallbacks)
        d["master"] = dict(self.master) if self.master is not None else None
        return d

    def to_json(self) -> str:
        """Recipe as pretty JSON text (floats as shortest round-trip repr, so values stay exact)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recipe JSON atomically; returns the path."""
        return write_atomic(path, self.to_json())


def _package_version() -> str:
    return __version__


def _backend_name(backend: str) -> str:
    """``backend`` with ``"auto"`` resolved to the backend it picks here (what the recipe records)."""
    if backend != "auto":
        return backend

    return get_backend("auto").name


def master_entry(target: object = None, settings: object = None) -> dict:
    """A recipe's ``master`` entry: the resolved loudness ``target`` (a preset name or a
    `plugin_bridge.mastering.LoudnessTarget`) and the `MasterSettings` (default ones when None)."""

    return {"target": resolve_target(target).to_dict(), "settings": asdict(settings or MasterSettings())}


def _check_master(raw: object, where: str) -> dict | None:
    """A validated ``master`` entry (None when absent)."""
    if raw is None:
        return None

    if not isinstance(raw, Mapping) or not isinstance(raw.get("target"), Mapping):
        raise FormatError(
            f"{where}: 'master' must be {{target: {{name, lufs, ceiling_dbtp}}, settings: {{...}}}}"
        )
    settings = dict(raw.get("settings") or {})
    known = {f.name for f in fields(MasterSettings)}
    if set(settings) - known:
        raise FormatError(
            f"{where}: master settings {sorted(set(settings) - known)} are unknown (valid: {sorted(known)})"
        )
    try:
        target = resolve_target(LoudnessTarget(**dict(raw["target"])))
        MasterSettings(**settings)
    except (TypeError, PluginBridgeError) as e:
        raise FormatError(f"{where}: invalid master entry ({e})") from None
    return {"target": target.to_dict(), "settings": settings}


def recipe_from_chain(
    chain: Chain | str | os.PathLike,
    vector: Sequence[float] | np.ndarray | None = None,
    values: Mapping[str, float] | None = None,
    model_id: str | None = None,
    input_path: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    backend: str = "pedalboard",
    plugins: Sequence[PluginState] | None = None,
    tail: bool = True,
    master: Mapping | None = None,
    fallbacks: Mapping[str, str] | None = None,
    downmix: bool = False,
) -> Recipe:
    """A recipe for a single-file render: ``chain`` with a normalized ``vector`` or real ``values``.

    Give one of ``vector`` / ``values`` (or neither for the chain's defaults). Both forms are
    stored; values are recomputed from the vector when a vector is given, so they agree exactly.
    ``plugins`` None captures the identity and full state of every slot ``backend`` hosts on a
    real plugin, and records the fallbacks of the others (`plugin_slots.capture_plugins`; this loads
    the plugins, in the calling thread); a sequence is stored as given. ``master`` is a
    `master_entry` when the mix was mastered. ``backend`` ``"auto"`` is recorded as the backend it
    picks. ``downmix`` records that the input (more than two channels) is folded to stereo.
    """
    ch = chain if isinstance(chain, Chain) else load_chain(chain)
    if vector is not None and values is not None:
        raise FormatError("give a parameter vector or values, not both")
    space = ch.space
    if vector is not None:
        vec = space.check_vector(vector)
        vals = space.to_values(vec)
    else:
        vals = dict(space.defaults())
        vals.update(values or {})
        vec = space.to_vector(vals)
        vals = {s.name: s.check(vals[s.name]) for s in space}
    effects = tuple(ch.resolve(vals))
    if input_path is not None and sample_rate is None:
        sample_rate = inspect_audio(input_path, downmix).sample_rate
    backend = _backend_name(backend)
    if plugins is None:
        plugins, fallbacks = capture_plugins(effects, backend, sample_rate)
    return Recipe(
        kind="chain",
        effects=effects,
        chain=ch.to_dict(),
        vector=tuple(float(v) for v in vec),
        values={k: float(v) for k, v in vals.items()},
        space_version=space.version,
        fingerprint=space.fingerprint,
        model_id=model_id,
        sample_rate=sample_rate,
        input=str(Path(input_path).resolve()) if input_path is not None else None,
        backend=backend,
        tail=tail,
        downmix=downmix,
        plugins=tuple(plugins),
        fallbacks=dict(fallbacks or {}),
        master=_check_master(master, "recipe"),
        package_version=_package_version(),
    )


def recipe_from_session(
    session,
    model_id: str | None = None,
    backend: str = "pedalboard",
    plugins: Sequence[PluginState] | None = None,
    tail: bool = True,
    master: Mapping | None = None,
    fallbacks: Mapping[str, str] | None = None,
) -> Recipe:
    """A recipe for a multitrack session (a `Session` or a session file path).

    The graph is stored in session file form with every chain resolved to its effect list (real
    units) and every stem path absolute, so the recipe re-renders without the original chain files.
    ``plugins`` None captures the hosted-plugin slots of every track and bus (slots
    ``"track/effect id"``), as `recipe_from_chain` does; ``master`` is a `master_entry`.
    """

    s = session if isinstance(session, Session) else load_session(session)
    data = session_to_dict(s)
    for t in data["tracks"]:
        t["file"] = str(Path(t["file"]).resolve())
    sample_rate = s.sample_rate or session_sample_rate(s)
    backend = _backend_name(backend)
    if plugins is None:
        plugins, fallbacks = [], {}
        for node in (*s.tracks, *s.buses, s.master):
            got, fell = capture_plugins(node.effects, backend, sample_rate, f"{node.name}/")
            plugins += got
            fallbacks.update(fell)
    return Recipe(
        kind="session",
        session=data,
        model_id=model_id,
        sample_rate=sample_rate,
        input=s.source or None,
        backend=backend,
        tail=tail,
        plugins=tuple(plugins),
        fallbacks=dict(fallbacks or {}),
        master=_check_master(master, "recipe"),
        package_version=_package_version(),
    )


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def _split_version(version: str) -> tuple[str, int | None]:
    m = re.fullmatch(r"(.*?)-?v(\d+)", version)
    return (m.group(1), int(m.group(2))) if m else (version, None)


def known_spaces() -> dict[str, str]:
    """``{space version: fingerprint}`` of the shipped chains."""
    out = {}
    for name in list_chains():
        try:
            space = load_chain(name).space
        except PluginBridgeError:
            continue
        out.setdefault(space.version, space.fingerprint)
    return out


def check_space(version: str, fingerprint: str, where: str = "recipe") -> None:
    """Refuse a space this plugin-bridge cannot honour.

    - a version whose family (``mix`` in ``mix-v2``) is shipped here at a lower number: newer;
    - a shipped version whose fingerprint differs: the same label on another structure.
    A space from a custom chain file (a family not shipped) is accepted; its embedded chain must
    still reproduce the fingerprint (checked by `recipe_from_dict`).
    """
    known = known_spaces()
    if version in known:
        if fingerprint and known[version] != fingerprint:
            raise FormatError(
                f"{where}: parameter space {version!r} has fingerprint {fingerprint}, but this "
                f"plugin-bridge's {version!r} has fingerprint {known[version]}: the space changed"
            )
        return
    family, number = _split_version(version)
    same = {v: _split_version(v)[1] for v in known if _split_version(v)[0] == family}
    if same:
        newest = max(same, key=lambda v: same[v] or 0)
        relation = "newer than" if number is not None and number > (same[newest] or 0) else "unknown to"
        raise FormatError(
            f"{where}: parameter space {version!r} is {relation} this plugin-bridge "
            f"{_package_version()} (it knows {', '.join(sorted(same))}); upgrade plugin-bridge"
        )


def _floats(raw: object, where: str) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise FormatError(f"{where}: must be a list of numbers")
    try:
        out = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        raise FormatError(f"{where}: must be a list of numbers") from None
    if not all(math.isfinite(v) for v in out):
        raise FormatError(f"{where}: holds NaN or infinity")
    return out


def recipe_from_dict(data: Mapping, source: str = "recipe") -> Recipe:
    """Validate and build a `Recipe` from its JSON form (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise FormatError(f"{source}: a recipe must be a JSON object")
    fv = data.get("format_version")
    if not isinstance(fv, int):
        raise FormatError(f"{source}: not a plugin-bridge recipe (no integer 'format_version')")
    if fv > FORMAT_VERSION:
        raise FormatError(
            f"{source}: recipe format_version {fv} is newer than this plugin-bridge "
            f"{_package_version()} reads (format_version {FORMAT_VERSION}); upgrade plugin-bridge"
        )
    kind = data.get("kind")
    if kind not in ("chain", "session"):
        raise FormatError(f"{source}: 'kind' must be 'chain' or 'session', got {kind!r}")
    plugins = tuple(PluginState.from_dict(p, source) for p in data.get("plugins") or [])
    fallbacks = data.get("fallbacks") or {}
    if not isinstance(fallbacks, Mapping):
        raise FormatError(f"{source}: 'fallbacks' must be an object of slot: reason")
    sr = data.get("sample_rate")
    common = dict(
        model_id=data.get("model_id"),
        sample_rate=int(sr) if sr is not None else None,
        input=data.get("input"),
        backend=str(data.get("backend") or "pedalboard"),
        tail=bool(data.get("tail", True)),
        downmix=bool(data.get("downmix", False)),
        plugins=plugins,
        fallbacks={str(k): str(v) for k, v in fallbacks.items()},
        master=_check_master(data.get("master"), source),
        package_version=str(data.get("package_version", "")),
        format_version=fv,
    )
    try:
        if kind == "session":
            if not isinstance(data.get("session"), Mapping):
                raise FormatError(f"{source}: a session recipe needs a 'session' object")
            return Recipe(kind="session", session=dict(data["session"]), **common)
        space = data.get("space") or {}
        version, fingerprint = str(space.get("version", "")), str(space.get("fingerprint", ""))
        check_space(version, fingerprint, source)
        chain = chain_from_dict(data.get("chain") or {}, f"{source}: chain")
        if chain.space.version != version or chain.space.fingerprint != fingerprint:
            raise FormatError(
                f"{source}: the embedded chain has space {chain.space.version!r} fingerprint "
                f"{chain.space.fingerprint}, but the recipe says {version!r} fingerprint {fingerprint}"
            )
        vector = _floats(data.get("vector"), f"{source}: vector")
        values = data.get("values")
        if not isinstance(values, Mapping):
            raise FormatError(f"{source}: 'values' must be an object of name: number")
        expected = chain.space.to_values(vector)
        if set(values) != set(expected):
            raise FormatError(f"{source}: values name {sorted(values)}, the space has {sorted(expected)}")
        for name, v in expected.items():
            if not math.isclose(float(values[name]), v, rel_tol=1e-9, abs_tol=1e-9):
                raise FormatError(
                    f"{source}: {name}={values[name]} disagrees with the vector, which gives {v}"
                )
        effects = tuple(effects_from_dicts(data.get("effects") or []))
        if [e.to_dict() for e in effects] != [e.to_dict() for e in chain.resolve(values)]:
            raise FormatError(f"{source}: 'effects' do not match the chain at these values")
        return Recipe(
            kind="chain",
            effects=effects,
            chain=dict(data["chain"]),
            vector=vector,
            values={k: float(v) for k, v in values.items()},
            space_version=version,
            fingerprint=fingerprint,
            **common,
        )
    except FormatError:
        raise
    except PluginBridgeError as e:
        raise FormatError(f"{source}: {e}") from None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe JSON file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise FormatError(f"{p}: cannot read recipe ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise FormatError(f"{p}: not a recipe (not UTF-8 text: byte {e.start})") from None
    return recipe_from_dict(data, str(p))


def is_recipe_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a JSON object with a ``format_version`` (a recipe, not a session)."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not JSON, not UTF-8
        return False
    return isinstance(data, dict) and "format_version" in data


def session_of(recipe: Recipe):
    """The recipe's `Session` (kind ``session``), rebuilt from its stored graph."""
    if recipe.kind != "session" or recipe.session is None:
        raise FormatError("this recipe holds a single chain, not a session")
    try:
        return session_from_dict(recipe.session, ".", "recipe session")
    except PluginBridgeError as e:
        raise FormatError(f"recipe session: {e}") from None
