"""Sessions: the DAW-like graph a multitrack mix renders through (tracks, buses, sends, master).

A session file (YAML or JSON) describes::

    sample_rate: 44100                  # optional: defaults to the first track's rate
    tracks:
      - name: vocals
        file: stems/vocals.wav          # relative paths resolve against the session file's folder
        chain: vocal                    # optional; see "chain specs" below
        gain_db: -2.0                   # fader
        pan: 0.1                        # -1 left .. +1 right
        mute: false
        solo: false
        invert: false                   # polarity
        output: master                  # or a bus name (default master)
        sends: [{bus: verb, level_db: -12, pre_fader: false}]
    buses:
      - name: verb
        chain: {effects: [{id: rev, type: reverb, params: {wet_level: 0.4, dry_level: 0.0}}]}
        gain_db: 0.0
        pan: 0.0
        output: master                  # buses may feed other buses; cycles are an error
        sends: []
    master:
      chain: {chain: master, values: {"limiter.ceiling_db": -1.0}}
      gain_db: 0.0

Chain specs: a shipped chain name or chain file path (string), ``{chain: NAME_OR_PATH, values:
{...}}``, ``{chain: NAME_OR_PATH, vector: [...]}``, or ``{effects: [{id, type, params}, ...]}``.

Signal flow of a track or bus: input -> polarity -> chain -> pan -> pre-fader sends -> fader
(gain_db) -> post-fader sends -> output. Pan laws: a mono source is panned with the constant-power
sin/cos law (-3 dB each side at centre, sum of powers constant); a stereo source is balanced (the
far side attenuated as cos/sin normalised so the centre is unity; hard left leaves the left channel
at +3 dB, the right silent). Everything after the pan is stereo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .chain import effects_from_dicts, load_chain, read_structured_file
from .effects import Effect
from .errors import ChainError, PluginBridgeError

MASTER = "master"


class SessionError(ChainError):
    """A session file that is invalid: unknown bus, cycle, missing stem, bad field..."""


@dataclass(frozen=True)
class Send:
    """A send from a track or bus to a bus, at ``level_db``, taken before or after the fader."""

    bus: str
    level_db: float = 0.0
    pre_fader: bool = False


@dataclass(frozen=True)
class Node:
    """A track (with a ``file``) or a bus (without); the master is a bus named ``master``."""

    name: str
    effects: tuple[Effect, ...] = ()
    file: Path | None = None
    gain_db: float = 0.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False
    invert: bool = False
    output: str | None = MASTER
    sends: tuple[Send, ...] = ()
    chain_spec: object = None

    @property
    def is_track(self) -> bool:
        """True for tracks (audio sources), False for buses and the master."""
        return self.file is not None


@dataclass(frozen=True)
class Session:
    """A validated session: tracks, buses and master, with a topological render order."""

    tracks: tuple[Node, ...]
    buses: tuple[Node, ...]
    master: Node
    sample_rate: int | None = None
    source: str = ""
    order: tuple[str, ...] = field(default=())

    def node(self, name: str) -> Node:
        """The track, bus or master called ``name``."""
        for n in (*self.tracks, *self.buses, self.master):
            if n.name == name:
                return n
        raise SessionError(f"{self.source}: no track or bus named {name!r}")

    @property
    def audible_tracks(self) -> tuple[Node, ...]:
        """Tracks that sound: not muted, and soloed if any track is soloed."""
        soloed = any(t.solo for t in self.tracks)
        return tuple(t for t in self.tracks if not t.mute and (t.solo or not soloed))

    def edges(self) -> list[tuple[str, str]]:
        """Every signal connection ``(from, to)``: outputs and sends."""
        out = []
        for n in (*self.tracks, *self.buses):
            if n.output:
                out.append((n.name, n.output))
            out.extend((n.name, s.bus) for s in n.sends)
        return out


def _chain_effects(spec: object, base: Path, where: str) -> tuple[Effect, ...]:
    """Resolve a chain spec (see the module docstring) to concrete effects."""
    if spec is None:
        return ()
    try:
        if isinstance(spec, str):
            return tuple(load_chain(_maybe_path(spec, base)).resolve())
        if not isinstance(spec, Mapping):
            raise SessionError(f"{where}: 'chain' must be a name, a path or a mapping, got {spec!r}")
        unknown = set(spec) - {"chain", "values", "vector", "effects"}
        if unknown:
            raise SessionError(
                f"{where}: unknown chain keys {sorted(unknown)} (valid: chain, values, vector, effects)"
            )
        if "effects" in spec:
            if "chain" in spec:
                raise SessionError(f"{where}: give 'chain' or 'effects', not both")
            items = spec["effects"]
            if not isinstance(items, list):
                raise SessionError(f"{where}: 'effects' must be a list")
            return tuple(effects_from_dicts(items))
        chain = load_chain(_maybe_path(str(spec.get("chain", "default")), base))
        if "vector" in spec:
            return tuple(chain.resolve_vector(spec["vector"]))
        return tuple(chain.resolve(spec.get("values") or {}))
    except SessionError:
        raise
    except PluginBridgeError as e:
        raise SessionError(f"{where}: {e}") from None


def _maybe_path(name: str, base: Path) -> str:
    candidate = base / name
    return str(candidate) if (os.sep in name or "." in Path(name).name) and candidate.exists() else name


def _number(
    raw: Mapping, key: str, default: float, where: str, lo: float = -math.inf, hi: float = math.inf
) -> float:
    value = raw.get(key, default)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SessionError(f"{where}: {key} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise SessionError(f"{where}: {key}={v:g} is out of range [{lo:g}, {hi:g}]")
    return v


def _flag(raw: Mapping, key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SessionError(f"{where}: {key} must be true or false, got {value!r}")
    return value


_TRACK_KEYS = {"name", "file", "chain", "gain_db", "pan", "mute", "solo", "invert", "output", "sends"}
_BUS_KEYS = _TRACK_KEYS - {"file", "solo"}


def _node(raw: object, kind: str, index: int, base: Path, source: str) -> Node:
    if not isinstance(raw, Mapping):
        raise SessionError(f"{source}: {kind} #{index} must be a mapping")
    name = raw.get("name", MASTER if kind == "master" else None)
    if not isinstance(name, str) or not name:
        raise SessionError(f"{source}: {kind} #{index} needs a 'name'")
    where = f"{source}: {kind} {name!r}"
    valid = _TRACK_KEYS if kind == "track" else _BUS_KEYS
    if kind == "master":
        valid = {"name", "chain", "gain_db", "pan"}
    unknown = set(raw) - valid
    if unknown:
        raise SessionError(f"{where}: unknown keys {sorted(unknown)} (valid: {', '.join(sorted(valid))})")
    file = None
    if kind == "track":
        if not raw.get("file"):
            raise SessionError(f"{where}: needs a 'file'")
        file = Path(raw["file"])
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            raise SessionError(f"{where}: stem file not found: {file}")
    sends = []
    for j, s in enumerate(raw.get("sends") or []):
        if not isinstance(s, Mapping) or not isinstance(s.get("bus"), str):
            raise SessionError(f"{where}: send #{j} needs a 'bus' name")
        sends.append(
            Send(s["bus"], _number(s, "level_db", 0.0, where, -120, 24), _flag(s, "pre_fader", where))
        )
    output = None if kind == "master" else raw.get("output", MASTER)
    if output is not None and not isinstance(output, str):
        raise SessionError(f"{where}: output must be a bus name or 'master'")
    return Node(
        name=name,
        effects=_chain_effects(raw.get("chain"), base, where),
        file=file,
        gain_db=_number(raw, "gain_db", 0.0, where, -120, 24),
        pan=_number(raw, "pan", 0.0, where, -1, 1),
        mute=_flag(raw, "mute", where),
        solo=_flag(raw, "solo", where),
        invert=_flag(raw, "invert", where),
        output=output,
        sends=tuple(sends),
        chain_spec=raw.get("chain"),
    )


def topological_order(names: Sequence[str], edges: Sequence[tuple[str, str]], source: str = "") -> list[str]:
    """Order ``names`` so every edge goes forward; a cycle is a `SessionError` naming its members."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    indeg = {n: 0 for n in names}
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    ready = [n for n in names if indeg[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if len(order) < len(names):
        left = [n for n in names if n not in order]
        raise SessionError(f"{source}: routing cycle between {', '.join(left)}")
    return order


def session_from_dict(data: Mapping, base_dir: str | os.PathLike = ".", source: str = "<session>") -> Session:
    """Build and validate a `Session` from its file form; paths resolve against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise SessionError(f"{source}: a session must be a mapping with 'tracks'")
    unknown = set(data) - {"sample_rate", "tracks", "buses", "master"}
    if unknown:
        raise SessionError(
            f"{source}: unknown keys {sorted(unknown)} (valid: sample_rate, tracks, buses, master)"
        )
    base = Path(base_dir)
    raw_tracks = data.get("tracks")
    if not isinstance(raw_tracks, list) or not raw_tracks:
        raise SessionError(f"{source}: 'tracks' must be a non-empty list")
    tracks = tuple(_node(t, "track", i, base, source) for i, t in enumerate(raw_tracks))
    buses = tuple(_node(b, "bus", i, base, source) for i, b in enumerate(data.get("buses") or []))
    master = _node(dict(data.get("master") or {}, name=MASTER), "master", 0, base, source)
    names = [n.name for n in (*tracks, *buses)]
    dupes = sorted({n for n in names if names.count(n) > 1} | ({MASTER} & set(names)))
    if dupes:
        raise SessionError(f"{source}: duplicate or reserved track/bus names {dupes}")
    bus_names = {b.name for b in buses} | {MASTER}
    for n in (*tracks, *buses):
        for target in [n.output, *(s.bus for s in n.sends)]:
            if target is not None and target not in bus_names:
                raise SessionError(
                    f"{source}: {n.name!r} routes to unknown bus {target!r}; buses: {', '.join(sorted(bus_names))}"
                )
            if target is not None and target in {t.name for t in tracks}:
                raise SessionError(f"{source}: {n.name!r} routes to track {target!r}; only buses take input")
    sr = data.get("sample_rate")
    if sr is not None:
        try:
            sr = int(sr)
        except (TypeError, ValueError):
            raise SessionError(f"{source}: sample_rate must be a whole number of Hz") from None
        if not 8000 <= sr <= 192000:
            raise SessionError(f"{source}: sample_rate {sr} Hz is outside 8000-192000 Hz")
    session = Session(tracks, buses, master, sr, source)
    order = topological_order([*names, MASTER], session.edges(), source)
    return Session(tracks, buses, master, sr, source, tuple(order))


def load_session(path: str | os.PathLike) -> Session:
    """Load and validate a session file (YAML or JSON); relative paths resolve against its folder."""
    p = Path(path)
    if not p.is_file():
        raise SessionError(f"session file not found: {p}")
    try:
        data = read_structured_file(p)
    except ChainError as e:
        raise SessionError(str(e)) from None
    return session_from_dict(data, p.parent, str(p))


def session_to_dict(session: Session) -> dict:
    """The session in file form (chains as resolved effect lists), for recipes and exports."""

    def node(n: Node) -> dict:
        d: dict = {"name": n.name}
        if n.file is not None:
            d["file"] = str(n.file)
        if n.effects:
            d["chain"] = {"effects": [e.to_dict() for e in n.effects]}
        d.update(gain_db=n.gain_db, pan=n.pan)
        if n.name != MASTER:
            d.update(mute=n.mute, invert=n.invert, output=n.output)
            d["sends"] = [{"bus": s.bus, "level_db": s.level_db, "pre_fader": s.pre_fader} for s in n.sends]
        if n.is_track:
            d["solo"] = n.solo
        return d

    out: dict = {"tracks": [node(t) for t in session.tracks], "buses": [node(b) for b in session.buses]}
    out["master"] = {k: v for k, v in node(session.master).items() if k != "name"}
    if session.sample_rate:
        out["sample_rate"] = session.sample_rate
    return out
