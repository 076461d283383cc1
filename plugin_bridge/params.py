"""Parameter specifications and the ordered, versioned parameter space a model predicts.

A model writes a vector of normalized values in [0, 1]; a `ParamSpace` turns it into a dict of
real-unit values (dB, Hz, ms, ratios) and back. Each entry is a `ParamSpec` whose `curve` says how
the normalized position maps onto the real range:

- ``linear``: value = min + n * (max - min)  (gains in dB, mix amounts, width)
- ``log``: value = min * (max / min) ** n, min > 0  (frequencies, times, Q, ratios)
- ``db``: an amplitude factor (min > 0) placed linearly in decibels: n = dB(value / min) /
  dB(max / min). Numerically the log curve; it exists so the unit is shown in dB.
- ``discrete``: value = min + round(n * (max - min) / step) * step  (switches, modes)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import ParameterError

CURVES = ("linear", "log", "db", "discrete")


@dataclass(frozen=True)
class ParamSpec:
    """One real-unit parameter with its valid range and how [0, 1] maps onto it.

    Attributes: ``name`` (e.g. ``"comp.threshold_db"``), ``unit`` (``"dB"``, ``"Hz"``, ``"ms"``,
    ``"ratio"``...), ``min``/``max`` (inclusive bounds, real units), ``default`` (real units),
    ``curve`` (one of ``CURVES``), ``step`` (only for discrete curves) and a ``description``.
    """

    name: str
    unit: str
    min: float
    max: float
    default: float
    curve: str = "linear"
    step: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if self.curve not in CURVES:
            raise ParameterError(f"{where}: unknown curve {self.curve!r} (valid: {', '.join(CURVES)})")
        for label, v in (("min", self.min), ("max", self.max), ("default", self.default)):
            if not math.isfinite(v):
                raise ParameterError(f"{where}: {label} must be finite, got {v}")
        if not self.min < self.max:
            raise ParameterError(f"{where}: min ({self.min}) must be below max ({self.max})")
        if self.curve in ("log", "db") and self.min <= 0:
            raise ParameterError(f"{where}: a {self.curve} curve needs min > 0, got {self.min}")
        if self.curve == "discrete" and not (self.step > 0):
            raise ParameterError(f"{where}: a discrete curve needs step > 0, got {self.step}")
        if not self.min <= self.default <= self.max:
            raise ParameterError(
                f"{where}: default {self.default} is outside [{self.min}, {self.max}] {self.unit}"
            )

    def check(self, value: float, where: str = "") -> float:
        """Return ``value`` as a float if it is finite and inside [min, max]; raise otherwise."""
        label = f"{where}{self.name}"
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{label}: expected a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ParameterError(f"{label}: value must be finite, got {v}")
        if not self.min <= v <= self.max:
            raise ParameterError(
                f"{label}={v:g} {self.unit} is out of range [{self.min:g}, {self.max:g}] {self.unit}"
            )
        if self.curve == "discrete":
            k = (v - self.min) / self.step
            if abs(k - round(k)) > 1e-9:
                raise ParameterError(f"{label}={v:g} is not on the step grid (step {self.step:g})")
        return v

    def normalize(self, value: float) -> float:
        """Map a real-unit value in [min, max] to its normalized position in [0, 1]."""
        v = self.check(value)
        if v == self.min:
            return 0.0
        if v == self.max:
            return 1.0
        if self.curve in ("log", "db"):
            n = math.log(v / self.min) / math.log(self.max / self.min)
        else:
            n = (v - self.min) / (self.max - self.min)
        return min(1.0, max(0.0, n))

    def denormalize(self, position: float) -> float:
        """Map a normalized position in [0, 1] (clamped) to a real-unit value in [min, max]."""
        n = float(position)
        if not math.isfinite(n):
            raise ParameterError(f"{self.name}: normalized value must be finite, got {n}")
        n = min(1.0, max(0.0, n))
        if n == 0.0:
            return float(self.min)
        if n == 1.0:
            return float(self.max)
        if self.curve in ("log", "db"):
            v = self.min * math.exp(n * math.log(self.max / self.min))
        elif self.curve == "discrete":
            v = self.min + round(n * (self.max - self.min) / self.step) * self.step
        else:
            v = self.min + n * (self.max - self.min)
        return min(float(self.max), max(float(self.min), v))

    def to_dict(self) -> dict:
        """A JSON-ready description of this spec."""
        return asdict(self)


@dataclass(frozen=True)
class ParamSpace:
    """An ordered, named, versioned tuple of `ParamSpec`: the output layer of a model.

    ``version`` is a human label (e.g. ``"mix-v1"``); `fingerprint` hashes names, units, ranges and
    curves so that a model trained on another space is detected even under the same label.
    """

    specs: tuple[ParamSpec, ...]
    version: str
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for i, s in enumerate(self.specs):
            if s.name in self._index:
                raise ParameterError(f"parameter space {self.version!r}: duplicate name {s.name!r}")
            self._index[s.name] = i

    def __len__(self) -> int:
        return len(self.specs)

    def __iter__(self):
        return iter(self.specs)

    @property
    def names(self) -> list[str]:
        """Parameter names in vector order."""
        return [s.name for s in self.specs]

    @property
    def fingerprint(self) -> str:
        """A short hash of the space's structure (names, units, ranges, curves, steps)."""
        payload = [[s.name, s.unit, s.min, s.max, s.curve, s.step] for s in self.specs]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def spec(self, name: str) -> ParamSpec:
        """The spec called ``name``; unknown names raise an error listing the valid ones."""
        try:
            return self.specs[self._index[name]]
        except KeyError:
            raise ParameterError(
                f"unknown parameter {name!r} in space {self.version!r}; valid: {', '.join(self.names)}"
            ) from None

    def check_vector(self, vector: Sequence[float] | np.ndarray) -> np.ndarray:
        """Validate a model vector: right length, finite; returns it clamped to [0, 1] (float64)."""
        try:
            arr = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError("parameter vector must be a sequence of numbers") from None
        if arr.ndim != 1:
            raise ParameterError(f"parameter vector must be 1-D, got shape {arr.shape}")
        if arr.shape[0] != len(self):
            raise ParameterError(
                f"parameter vector has {arr.shape[0]} entries, space {self.version!r} needs {len(self)}"
            )
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise ParameterError(
                f"parameter vector entry {i} ({self.specs[i].name}) is {arr[i]}: must be finite"
            )
        return np.clip(arr, 0.0, 1.0)

    def to_values(self, vector: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Turn a normalized vector into ``{name: real value}`` (vector clamped to [0, 1])."""
        arr = self.check_vector(vector)
        return {s.name: s.denormalize(float(n)) for s, n in zip(self.specs, arr, strict=True)}

    def to_vector(self, values: Mapping[str, float], fill_defaults: bool = False) -> np.ndarray:
        """Turn ``{name: real value}`` into a normalized float64 vector in space order.

        Unknown names are an error; missing names are an error unless ``fill_defaults``.
        """
        for name in values:
            self.spec(name)
        out = np.empty(len(self), dtype=np.float64)
        for i, s in enumerate(self.specs):
            if s.name in values:
                out[i] = s.normalize(values[s.name])
            elif fill_defaults:
                out[i] = s.normalize(s.default)
            else:
                raise ParameterError(f"missing parameter {s.name!r} for space {self.version!r}")
        return out

    def defaults(self) -> dict[str, float]:
        """Default real values of every parameter."""
        return {s.name: s.default for s in self.specs}

    def to_dict(self) -> dict:
        """A JSON-ready description: version, fingerprint and every spec."""
        return {
            "version": self.version,
            "fingerprint": self.fingerprint,
            "params": [s.to_dict() for s in self.specs],
        }

    @classmethod
    def from_specs(cls, specs: Iterable[ParamSpec], version: str) -> ParamSpace:
        """Build a space from specs in order."""
        return cls(tuple(specs), version)
