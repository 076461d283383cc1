"""Inference with onnxruntime only: load shipped models by name, check the parameter space, predict.

Models live in ``models/`` (or ``$PLUGIN_BRIDGE_MODELS``): ``NAME.onnx`` with its card ``NAME.json``,
and ``ensemble.json`` (member names and per-parameter weights fitted on the validation split). A
model predicts the card's ``labelled`` parameters; the rest of the ``mix-v1`` vector comes from the
card's ``rule_values`` (see models/README.md). A model trained on another parameter-space version or
fingerprint is refused with a `ModelError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..chain import default_space
from ..errors import PluginBridgeError
from ..params import ParamSpace

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
    unknown = [
        n for n in card.get("labelled", []) + list(card.get("rule_values", {})) if n not in space.names
    ]
    if unknown:
        raise ModelError(f"{where}: names not in space {space.version!r}: {', '.join(unknown)}")


class OnnxModel:
    """One exported model: ``predict(mel, glob) -> (k, len(labelled))`` normalized values."""

    def __init__(self, onnx_path: Path, card: dict, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.name = card.get("name", onnx_path.stem)
        self.card = card
        self.labelled: list[str] = list(card["labelled"])
        self.rule_values: dict[str, float] = dict(card.get("rule_values", {}))
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if (
            meta.get("space_version", card["space_version"]) != card["space_version"]
            or meta.get("space_fingerprint", card["space_fingerprint"]) != card["space_fingerprint"]
        ):
            raise ModelError(f"{onnx_path}: the ONNX metadata and the card disagree on the parameter space")

    def predict(self, mel: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Normalized labelled parameters ``(k, P)`` for ``k`` clips of features."""
        out = self.session.run(None, {"mel": mel.astype(np.float32), "glob": glob.astype(np.float32)})[0]
        return np.clip(out, 0.0, 1.0)


class EnsembleModel:
    """A weighted average of member models, per parameter (weights fitted on the validation split)."""

    def __init__(self, members: Sequence[OnnxModel], weights: np.ndarray, card: dict) -> None:
        self.name = "ensemble"
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.card = card
        self.labelled = list(card["labelled"])
        self.rule_values = dict(card.get("rule_values", {}))
        for m in self.members:
            if m.labelled != self.labelled:
                raise ModelError(f"ensemble member {m.name}: its parameters differ from the ensemble's")

    def predict_members(self, mel: np.ndarray, glob: np.ndarray) -> dict[str, np.ndarray]:
        """Each member's prediction ``{name: (k, P)}``."""
        return {m.name: m.predict(mel, glob) for m in self.members}

    def combine(self, preds: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted combination of member predictions."""
        stack = np.stack([preds[m.name] for m in self.members])
        return np.einsum("mp,mkp->kp", self.weights, stack)

    def predict(self, mel: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Normalized labelled parameters ``(k, P)``."""
        return self.combine(self.predict_members(mel, glob))


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
        return EnsembleModel(members, np.asarray(card["weights"]), card)
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


def full_vector(
    model: OnnxModel | EnsembleModel, labelled: np.ndarray, space: ParamSpace | None = None
) -> np.ndarray:
    """The complete normalized vector of ``space``: ``labelled`` (``(P,)``, the model's order) plus
    the card's rule values for the other parameters (neutral defaults when absent)."""
    space = space or _space()
    values = dict(space.defaults())
    values.update(model.rule_values)
    vec = space.to_vector(values)
    for name, v in zip(model.labelled, labelled, strict=True):
        vec[space.names.index(name)] = float(np.clip(v, 0.0, 1.0))
    return vec


def predict_features(model: OnnxModel | EnsembleModel, mel: np.ndarray, glob: np.ndarray) -> np.ndarray:
    """Full normalized vector for a song from its clip features (clip predictions averaged)."""
    return full_vector(model, model.predict(mel, glob).mean(axis=0))
