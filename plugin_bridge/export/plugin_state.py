"""A third-party plugin in a recipe: its identity and full state (`PluginState`)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError

PLUGIN_FORMATS = ("vst3", "vst2", "lv2")


@dataclass(frozen=True)
class PluginState:
    """A third-party plugin in a chain: identity plus its full state.

    ``slot`` is the chain slot id (``"track/slot"`` in a session), ``format`` ``"vst3"``, ``"vst2"``
    or ``"lv2"``, ``path`` the plugin bundle / shared object (the URI for LV2), ``class_id`` the VST3
    processor class ID (32 hex digits), ``unique_id`` the VST2 four-character id as an int, and
    ``state`` the full state as the preset file a DAW loads: a .vstpreset (VST3) or an .fxp (VST2);
    for LV2 the control port values as JSON (see `plugin_bridge.export.plugin_slots`).
    ``channels`` is 1 for a mono-only plugin (one instance per channel, each with this state),
    ``map`` the parameter map used, ``parameters`` the normalized values the map set, by plugin
    parameter name (informational).
    """

    slot: str
    format: str
    path: str
    state: bytes
    name: str = ""
    vendor: str = ""
    class_id: str = ""
    unique_id: int = 0
    parameters: Mapping[str, float] = field(default_factory=dict)
    channels: int = 2
    map: str = ""

    def __post_init__(self) -> None:
        if self.format not in PLUGIN_FORMATS:
            raise FormatError(
                f"plugin {self.slot!r}: unknown format {self.format!r} (valid: {', '.join(PLUGIN_FORMATS)})"
            )
        if self.format == "vst3" and not re.fullmatch(r"[0-9A-Fa-f]{32}", self.class_id or ""):
            raise FormatError(f"plugin {self.slot!r}: a VST3 needs a 32-hex-digit class_id")
        if self.channels not in (1, 2):
            raise FormatError(f"plugin {self.slot!r}: channels must be 1 (mono-only) or 2")

    @property
    def display_name(self) -> str:
        """The plugin's name, or its file name without suffix."""
        return self.name or Path(self.path).name.split(".")[0].replace("-vst", "")

    def to_dict(self) -> dict:
        """JSON-ready form, the state as RFC 4648 base64."""
        return {
            "slot": self.slot,
            "format": self.format,
            "path": self.path,
            "name": self.name,
            "vendor": self.vendor,
            "class_id": self.class_id,
            "unique_id": self.unique_id,
            "channels": self.channels,
            "map": self.map,
            "parameters": dict(self.parameters),
            "state": base64.b64encode(self.state).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "recipe") -> PluginState:
        """Parse `to_dict` output; a malformed entry is a `FormatError`."""
        try:
            return cls(
                slot=str(d["slot"]),
                format=str(d["format"]),
                path=str(d["path"]),
                state=base64.b64decode(str(d.get("state", "")), validate=True),
                name=str(d.get("name", "")),
                vendor=str(d.get("vendor", "")),
                class_id=str(d.get("class_id", "")),
                unique_id=int(d.get("unique_id", 0)),
                parameters={str(k): float(v) for k, v in dict(d.get("parameters") or {}).items()},
                channels=int(d.get("channels", 2)),
                map=str(d.get("map", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{where}: invalid plugin entry {dict(d).get('slot', '?')!r} ({e})") from None
