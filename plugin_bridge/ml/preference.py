"""Your taste, learned from the mixes you accept: a per-user SQLite profile and a small model on it.

Every mix accepted in the web app stores three things in the profile: the song's `taste_features`
(its spectral balance and stereo width), the AI's proposal and the settings the user accepted (real
units of the default chain). From them `TasteModel` learns how this user moves away from the AI,
in the normalized positions of the default chain's parameters (a dB gain on a linear curve moves
in proportion to its dB, the width on its log curve in proportion to its dB):

    delta(x) = n / (n + PRIOR_ACCEPTS) x (mean delta + ridge(x))

- the mean delta is the user's constant habit ("a little more air than the AI");
- ``ridge(x)`` is a ridge regression of the deltas on the standardized features (only from
  `MIN_ACCEPTS_FOR_SLOPE` accepts on, strongly regularized): habits that depend on the song ("more
  air when the song is dull");
- the factor in front shrinks everything toward the AI while the profile is small: one accept
  moves proposals half way to it, ten accepts 91 %. A profile with no accepts changes nothing.

Profiles live in `data_home` ``/profiles/NAME.sqlite`` (``$PLUGIN_BRIDGE_HOME``, else
``$XDG_DATA_HOME/plugin-bridge``, else ``~/.local/share/plugin-bridge``). Each accept is one
committed transaction: a stopped program loses no accepted mix.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis import band_balance_from_psd, mid_side_energy, width_from_energy
from ..chain import default_space
from ..errors import ParameterError
from ..mastering.streaming import ArraySignal, SpectrumMeter

#: Pseudo-count of the shrinkage toward the AI (accepts worth of "the AI was right").
PRIOR_ACCEPTS = 1.0
#: Accepts needed before the deltas may depend on the song's features.
MIN_ACCEPTS_FOR_SLOPE = 5
#: Ridge penalty on the standardized features (in accepts).
RIDGE_LAMBDA = 10.0
#: Names of `taste_features`, in order.
FEATURE_NAMES = ("low_db", "low_mid_db", "mid_db", "high_mid_db", "high_db", "width_db")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    song TEXT NOT NULL,
    space_version TEXT NOT NULL,
    features TEXT NOT NULL,
    proposal TEXT NOT NULL,
    final TEXT NOT NULL
)
"""


def data_home() -> Path:
    """plugin-bridge's per-user data folder: ``$PLUGIN_BRIDGE_HOME``, ``$XDG_DATA_HOME/plugin-bridge``
    or ``~/.local/share/plugin-bridge`` (not created here)."""
    env = os.environ.get("PLUGIN_BRIDGE_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "plugin-bridge"


def check_profile_name(name: str) -> str:
    """``name`` if it is a valid profile name (1-64 letters, digits, ``_`` or ``-``), else `ParameterError`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ParameterError(f"profile name must be 1-64 letters, digits, '_' or '-', got {name!r}")
    return name


def profile_path(name: str) -> Path:
    """The SQLite file of profile ``name`` (see `data_home`)."""
    return data_home() / "profiles" / f"{check_profile_name(name)}.sqlite"


def taste_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The song features a taste may depend on (`FEATURE_NAMES`): spectral balance of five bands
    (dB relative to the total, floored at -80) and stereo width (side/mid energy in dB, floored at
    -40), for ``(channels, n)`` audio at ``sample_rate`` Hz."""
    return taste_features_signal(ArraySignal(np.asarray(audio, dtype=np.float32)), sample_rate)


def taste_features_signal(signal, sample_rate: int) -> np.ndarray:
    """`taste_features` of a signal (`plugin_bridge.mastering.streaming`), read block by block."""
    spectrum = SpectrumMeter(sample_rate, signal.channels, signal.frames)
    em = es = 0.0
    for block in signal.blocks():
        spectrum.process(block)
        m, s = mid_side_energy(block)
        em, es = em + m, es + s
    bands = band_balance_from_psd(*spectrum.result(), sample_rate)
    vals = [max(-80.0, v) if math.isfinite(v) else -80.0 for v in bands.values()]
    w = width_from_energy(em, es)
    width_db = 10.0 * math.log10(w) if 0.0 < w < math.inf else (-40.0 if w == 0.0 else 40.0)
    return np.asarray([*vals, max(-40.0, width_db)], dtype=np.float64)


@dataclass(frozen=True)
class Accept:
    """One accepted mix: the song's name, its `taste_features`, the AI's proposal and the user's
    final settings (real units by parameter name)."""

    song: str
    features: tuple[float, ...]
    proposal: dict[str, float]
    final: dict[str, float]
    created: float = 0.0


class Profile:
    """A user's taste profile: a SQLite file of `Accept` rows (created on first write)."""

    def __init__(self, name: str = "default", path: str | os.PathLike | None = None) -> None:
        self.name = check_profile_name(name)
        self.path = Path(path) if path is not None else profile_path(name)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10.0)
        con.execute(_SCHEMA)
        return con

    def add(self, accept: Accept) -> int:
        """Store ``accept`` (committed before returning); returns the number of accepts now stored."""
        space = default_space()
        with self._connect() as con:
            con.execute(
                "INSERT INTO accepts (created, song, space_version, features, proposal, final) VALUES (?,?,?,?,?,?)",
                (
                    accept.created or time.time(),
                    accept.song,
                    space.version,
                    json.dumps([float(v) for v in accept.features]),
                    json.dumps({k: float(v) for k, v in accept.proposal.items()}),
                    json.dumps({k: float(v) for k, v in accept.final.items()}),
                ),
            )
            (n,) = con.execute("SELECT COUNT(*) FROM accepts").fetchone()
        con.close()
        return int(n)

    def accepts(self) -> list[Accept]:
        """The stored accepts of the current parameter space, oldest first (none if no file yet)."""
        if not self.path.is_file():
            return []
        version = default_space().version
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT song, features, proposal, final, created FROM accepts WHERE space_version = ? ORDER BY id",
                (version,),
            ).fetchall()
        finally:
            con.close()
        return [Accept(s, tuple(json.loads(f)), json.loads(p), json.loads(fi), c) for s, f, p, fi, c in rows]

    def reset(self) -> int:
        """Delete every accept; returns how many there were (the file is removed)."""
        n = len(self.accepts()) if self.path.is_file() else 0
        if self.path.exists():
            self.path.unlink()
        return n

    def model(self) -> TasteModel:
        """The `TasteModel` fitted to this profile's accepts."""
        return TasteModel.fit(self.accepts())

    def summary(self) -> dict:
        """JSON-ready summary: name, file, accepts, and the learned mean move per parameter
        (real units, only parameters the user moved)."""
        acc = self.accepts()
        m = TasteModel.fit(acc)
        return {
            "name": self.name,
            "path": str(self.path),
            "accepts": len(acc),
            "songs": [a.song for a in acc[-10:]],
            "mean_moves": m.mean_moves(acc),
        }


@dataclass(frozen=True)
class TasteModel:
    """The learned deltas (normalized positions of the default chain, see the module docstring)."""

    n: int
    mean_delta: np.ndarray  # (P,)
    feature_mean: np.ndarray  # (F,)
    feature_std: np.ndarray  # (F,)
    slopes: np.ndarray  # (F, P)

    @classmethod
    def fit(cls, accepts: list[Accept]) -> TasteModel:
        """Fit to ``accepts`` (any number, zero included: the identity)."""
        space = default_space()
        p, f = len(space), len(FEATURE_NAMES)
        n = len(accepts)
        if n == 0:
            return cls(0, np.zeros(p), np.zeros(f), np.ones(f), np.zeros((f, p)))
        x = np.asarray([a.features for a in accepts], dtype=np.float64).reshape(n, f)
        d = np.stack(
            [
                space.to_vector({**space.defaults(), **a.final})
                - space.to_vector({**space.defaults(), **a.proposal})
                for a in accepts
            ]
        )
        mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), 1.0)
        slopes = np.zeros((f, p))
        if n >= MIN_ACCEPTS_FOR_SLOPE:
            xs = (x - mu) / sd
            slopes = np.linalg.solve(xs.T @ xs + RIDGE_LAMBDA * np.eye(f), xs.T @ (d - d.mean(axis=0)))
        return cls(n, d.mean(axis=0), mu, sd, slopes)

    @property
    def weight(self) -> float:
        """How far proposals move toward the learned taste: n / (n + `PRIOR_ACCEPTS`)."""
        return self.n / (self.n + PRIOR_ACCEPTS)

    def delta(self, features: np.ndarray) -> np.ndarray:
        """The normalized move ``(P,)`` for a song with these `taste_features`."""
        if self.n == 0:
            return np.zeros_like(self.mean_delta)
        xs = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_std
        return self.weight * (self.mean_delta + xs @ self.slopes)

    def adjust(self, values: Mapping[str, float], features: np.ndarray) -> dict[str, float]:
        """The AI's ``values`` (real units) moved toward the user's taste for a song with these
        features; unchanged (the same numbers) for an empty profile."""
        out = dict(values)
        if self.n == 0:
            return out
        space = default_space()
        vec = space.to_vector({**space.defaults(), **values})
        delta = self.delta(features)
        for i, name in enumerate(space.names):
            if abs(delta[i]) > 1e-12:  # parameters the user never moved keep the AI's exact numbers
                out[name] = space.spec(name).denormalize(float(np.clip(vec[i] + delta[i], 0.0, 1.0)))
        return out

    def mean_moves(self, accepts: list[Accept]) -> dict[str, float]:
        """The mean move of each parameter the user changed (final - proposal, real units)."""
        out: dict[str, float] = {}
        for name in default_space().names:
            moves = [
                a.final[name] - a.proposal[name] for a in accepts if name in a.final and name in a.proposal
            ]
            if moves and abs(float(np.mean(moves))) > 1e-9:
                out[name] = round(float(np.mean(moves)), 3)
        return out
