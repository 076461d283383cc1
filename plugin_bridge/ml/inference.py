"""Inference with onnxruntime only: load shipped models by name, check the parameter space, predict.

Models live in ``models/`` (or ``$PLUGIN_BRIDGE_MODELS``): ``NAME.onnx`` with its card ``NAME.json``,
and ``ensemble.json`` (member names and weights fitted on the validation split). A model proposes
corrective moves in dB for the card's ``moves`` parameters (the chain's EQ gains and its width) and
how uncertain each is; a move is made in proportion to its confidence (`confident_moves`, the
card's ``shrink``) and scaled by the user's intensity. The rest of the ``mix-v2`` vector comes from
`plugin_bridge.ml.assistant` (measured input gain, the compressor rule) and the card's
``rule_values`` (see models/README.md). When ``ensemble.json`` has a ``width_rule``, the ensemble's
width move is instead the mean of its own raw width move and the stereo-only estimate of
``width.onnx`` (`WidthModel`), cut by a dead zone plus a multiple of the two estimates'
disagreement (`plugin_bridge.ml.width_rule.width_rule_move`). A model trained on another
parameter-space version or fingerprint is refused with a `ModelError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..chain import default_space
from ..errors import ParameterError, PluginBridgeError
from ..params import ParamSpace
from .width_rule import width_rule_move

MODEL_NAMES: tuple[str, ...] = ("cnn", "cnn_large", "ast")
ALL_NAMES: tuple[str, ...] = ("ensemble", *MODEL_NAMES)


class ModelError(PluginBridgeError):
    """A missing or incompatible model file (unknown name, other parameter space, bad card)."""


def models_dir() -> Path:
    """The folder of shipped models: ``$PLUGIN_BRIDGE_MODELS``, the checkout's ``models/``, or the
    copy an installed package carries (``plugin_bridge/_models``, put there when the wheel is built)."""
    env = os.environ.get("PLUGIN_BRIDGE_MODELS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "models", package / "_models"):
        if (candidate / "ensemble.json").is_file():
            return candidate
    return package.parent / "models"


def _space() -> ParamSpace:
    return default_space()


def check_space(card: dict, space: ParamSpace, where: str) -> None:
    """Raise `ModelError` unless ``card``'s space version and fingerprint match ``space``."""
    version, fp = card.get("space_version"), card.get("space_fingerprint")
    if version != space.version or fp != space.fingerprint:
        raise ModelError(
            f"{where}: trained on parameter space {version!r} (fingerprint {fp}), but the chain's space is "
            f"{space.version!r} (fingerprint {space.fingerprint}); retrain the model or use a matching chain"
        )
    unknown = [n for n in card.get("moves", []) + list(card.get("rule_values", {})) if n not in space.names]
    if unknown:
        raise ModelError(f"{where}: names not in space {space.version!r}: {', '.join(unknown)}")


def onnx_session(onnx_path: Path, threads: int = 1):  # noqa: ANN201 - an onnxruntime session
    """An onnxruntime CPU session of ``onnx_path`` on ``threads`` intra-op threads (one inter-op)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


class OnnxModel:
    """One exported model: ``predict(patch, glob) -> (k, 2 P)``: ``P`` moves (dB) for the card's
    ``moves`` parameters, then their uncertainties (dB)."""

    def __init__(self, onnx_path: Path, card: dict, threads: int = 1) -> None:
        self.name = card.get("name", onnx_path.stem)
        self.card = card
        self.moves: list[str] = list(card["moves"])
        self.rule_values: dict[str, float] = dict(card.get("rule_values", {}))
        self.shrink = np.asarray(card.get("shrink", 1.0), dtype=np.float64)
        self.session = onnx_session(onnx_path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if (
            meta.get("space_version", card["space_version"]) != card["space_version"]
            or meta.get("space_fingerprint", card["space_fingerprint"]) != card["space_fingerprint"]
        ):
            raise ModelError(f"{onnx_path}: the ONNX metadata and the card disagree on the parameter space")

    def predict(self, patch: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Moves and uncertainties ``(k, 2 P)`` (dB) for ``k`` clips of features."""
        return self.session.run(None, {"patch": patch.astype(np.float32), "glob": glob.astype(np.float32)})[0]


class WidthModel:
    """The stereo-only width estimate (`plugin_bridge.ml.width`): ``predict(glob) -> (k,)`` width moves
    (dB, 20 log10 width) from the global features."""

    def __init__(self, onnx_path: Path, card: dict, threads: int = 1) -> None:
        self.name = card.get("name", onnx_path.stem)
        self.card = card
        self.session = onnx_session(onnx_path, threads)

    def predict(self, glob: np.ndarray) -> np.ndarray:
        """Width moves ``(k,)`` (dB) for ``k`` clips' global features."""
        return self.session.run(None, {"glob": glob.astype(np.float32)})[0][:, 0].astype(np.float64)


class EnsembleModel:
    """A weighted average of member models' moves (weights fitted on the validation split); its
    uncertainty is the members' mean uncertainty widened by their disagreement."""

    def __init__(
        self,
        members: Sequence[OnnxModel],
        weights: np.ndarray,
        card: dict,
        width_model: WidthModel | None = None,
    ) -> None:
        self.name = "ensemble"
        self.width_model = width_model
        self.width_rule: dict | None = card.get("width_rule") if width_model is not None else None
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.card = card
        self.moves = list(card["moves"])
        self.rule_values = dict(card.get("rule_values", {}))
        self.shrink = np.asarray(card.get("shrink", 1.0), dtype=np.float64)
        if len(self.weights) != len(self.members):
            raise ModelError(f"ensemble: {len(self.weights)} weights for {len(self.members)} members")
        for m in self.members:
            if m.moves != self.moves:
                raise ModelError(f"ensemble member {m.name}: its parameters differ from the ensemble's")

    def predict_members(self, patch: np.ndarray, glob: np.ndarray) -> dict[str, np.ndarray]:
        """Each member's output ``{name: (k, 2 P)}``."""
        return {m.name: m.predict(patch, glob) for m in self.members}

    def combine(self, preds: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted moves and combined uncertainties ``(k, 2 P)`` of member outputs."""
        p = len(self.moves)
        stack = np.stack([preds[m.name] for m in self.members])  # (M, k, 2P)
        mu = np.einsum("m,mkp->kp", self.weights, stack[:, :, :p])
        spread = np.sqrt(np.einsum("m,mkp->kp", self.weights, (stack[:, :, :p] - mu) ** 2))
        sigma = np.einsum("m,mkp->kp", self.weights, stack[:, :, p:]) + spread
        return np.concatenate([mu, sigma], axis=1)

    def predict(self, patch: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Moves and uncertainties ``(k, 2 P)`` (dB)."""
        return self.combine(self.predict_members(patch, glob))


def _read_card(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(
            f"{path}: model card not found (models are rebuilt by render_scripts/train_models.py)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: model card is not valid JSON ({e.msg})") from None


@lru_cache(maxsize=16)
def _load_cached(name: str, folder: str) -> OnnxModel | EnsembleModel:
    return _load(name, Path(folder), _space())


def _load(name: str, folder: Path, space: ParamSpace) -> OnnxModel | EnsembleModel:
    if name == "ensemble":
        card = _read_card(folder / "ensemble.json")
        check_space(card, space, str(folder / "ensemble.json"))
        members = [_load(m, folder, space) for m in card["members"]]
        width = None
        if card.get("width_rule"):
            wname = card["width_rule"].get("model", "width")
            wcard = _read_card(folder / f"{wname}.json")
            check_space(wcard, space, str(folder / f"{wname}.json"))
            if not (folder / f"{wname}.onnx").is_file():
                raise ModelError(f"{folder / f'{wname}.onnx'}: width model file not found")
            width = WidthModel(folder / f"{wname}.onnx", wcard)
        return EnsembleModel(members, np.asarray(card["weights"]), card, width)
    if name not in MODEL_NAMES and not (folder / f"{name}.onnx").is_file():
        raise ModelError(f"unknown model {name!r}; valid: {', '.join(ALL_NAMES)}")
    card = _read_card(folder / f"{name}.json")
    check_space(card, space, str(folder / f"{name}.json"))
    onnx_path = folder / f"{name}.onnx"
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: model file not found")
    return OnnxModel(onnx_path, card)


def load_model(
    name: str = "ensemble", folder: str | os.PathLike | None = None, space: ParamSpace | None = None
) -> OnnxModel | EnsembleModel:
    """Load a model by name (``ensemble``, ``cnn``, ``cnn_large``, ``ast``) from ``folder`` (default
    `models_dir`), checked against ``space`` (default: the ``default`` chain's). Cached per folder."""
    folder = Path(folder) if folder is not None else models_dir()
    if space is not None:
        return _load(name, folder, space)
    return _load_cached(name, str(folder.resolve()))


@dataclass(frozen=True)
class Moves:
    """A model's corrective moves for one song: parameter ``names`` (EQ gains, then ``width.width``),
    the proposed ``proposed_db`` and their uncertainty ``sigma_db`` (dB; the width as 20 log10 width),
    each move's ``confidence`` (0..1) and the ``applied_db`` moves (confidence and intensity applied)."""

    names: tuple[str, ...]
    proposed_db: tuple[float, ...]
    sigma_db: tuple[float, ...]
    confidence: tuple[float, ...]
    applied_db: tuple[float, ...]
    intensity: float

    def values(self) -> dict[str, float]:
        """The applied moves as chain values (real units: dB gains, the width as a factor)."""
        return {
            n: float(10.0 ** (v / 20.0)) if n == "width.width" else float(v)
            for n, v in zip(self.names, self.applied_db, strict=True)
        }

    def to_dict(self) -> dict:
        """JSON-ready form, one entry per move."""
        return {
            "intensity": self.intensity,
            "moves": [
                {
                    "parameter": n,
                    "proposed_db": round(p, 2),
                    "uncertainty_db": round(s, 2),
                    "confidence": round(c, 3),
                    "applied_db": round(a, 2),
                }
                for n, p, s, c, a in zip(
                    self.names, self.proposed_db, self.sigma_db, self.confidence, self.applied_db, strict=True
                )
            ],
        }


def confident_moves(
    mu: np.ndarray, sigma: np.ndarray, shrink: float | np.ndarray, intensity: float = 1.0
) -> tuple:
    """``(confidence, applied)`` of moves ``mu`` with uncertainties ``sigma`` (dB): each move is cut
    by ``shrink`` (one number, or one per move) times its uncertainty (soft threshold: a move no larger than its doubt is not made),
    so confidence = ``max(0, 1 - shrink sigma / |mu|)``; applied = ``mu x confidence x intensity``."""
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    conf = np.clip(1.0 - shrink * sigma / np.maximum(np.abs(mu), 1e-9), 0.0, 1.0)
    return conf, mu * conf * float(intensity)


def check_intensity(intensity: float) -> float:
    """``intensity`` as a float in [0, 1], or a `ParameterError` saying so."""
    try:
        v = float(intensity)
    except (TypeError, ValueError):
        raise ParameterError(f"intensity must be a number from 0 to 1, got {intensity!r}") from None
    if not (0.0 <= v <= 1.0):
        raise ParameterError(f"intensity must be from 0 to 1 (0 = mastering only), got {v:g}")
    return v


def song_moves(
    model: OnnxModel | EnsembleModel, patch: np.ndarray, glob: np.ndarray, intensity: float = 1.0
) -> Moves:
    """The moves for a song from its clip features: clip moves averaged; the uncertainty is the clips'
    mean uncertainty widened by their spread; then `confident_moves` with the model's ``shrink``.
    An ensemble with a width rule (models/README.md) takes its width move from
    `plugin_bridge.ml.width_rule.width_rule_move` instead: the proposal is the mean of its own and the
    width model's clip-averaged width moves, the uncertainty their |difference|."""
    out = model.predict(patch, glob)
    p = len(model.moves)
    mu_k, sig_k = out[:, :p].astype(np.float64), out[:, p:].astype(np.float64)
    mu = mu_k.mean(axis=0)
    sigma = sig_k.mean(axis=0) + mu_k.std(axis=0)
    intensity = check_intensity(intensity)
    conf, applied = confident_moves(mu, sigma, model.shrink, intensity)
    rule = getattr(model, "width_rule", None)
    if rule and model.moves[-1] == "width.width":
        estimate = float(model.width_model.predict(glob).mean())
        mean, spread, cut = width_rule_move(
            np.array([mu[-1]]), np.array([estimate]), rule["dead_zone_db"], rule["disagreement"]
        )
        mu[-1], sigma[-1] = mean[0], spread[0]
        conf[-1] = cut[0] / mean[0] if abs(mean[0]) > 1e-9 else 0.0
        applied[-1] = cut[0] * intensity
    return Moves(
        tuple(model.moves),
        tuple(float(v) for v in mu),
        tuple(float(v) for v in sigma),
        tuple(float(v) for v in conf),
        tuple(float(v) for v in applied),
        intensity,
    )
