"""The stems balance model at run time (onnxruntime only): each track's role and its level in the mix.

``models/stems.onnx`` (card ``models/stems.json``, notes ``models/stems.md``) reads the level-free
features of every sounding track of a song (`plugin_bridge.stems.analysis.analyse_track`, shape
``(n_tracks, N_FEATURES)``) as one set and returns, per track, the probabilities of the seven roles
(`ROLES`) and the track's target loudness relative to the mean track loudness of the mix (LU,
centred to mean 0 over the tracks). The level of a track depends on what else plays, so the network
sees the whole set (DeepSets: a per-track encoder, the mean and max of the encodings over all tracks
as context, a per-track head). It was trained by ``render_scripts/train_stems.py`` on the reference
multitracks of `plugin_bridge.stems.corpus` (MIDI songs rendered per part: the composer's balance).

    model = StemModel.load()
    pred = model.predict(np.stack([analyse_track(a, sr).features for a in tracks]))
    pred.level_db      # (n_tracks,) LU relative to the mean track, mean 0
    pred.role_probs    # (n_tracks, 7), rows sum to 1, columns in ROLES order
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..ml.inference import ModelError
from ..ml.inference import models_dir as default_models_dir
from .analysis import FEATURE_NAMES, N_FEATURES
from .corpus import ROLES

MODEL_NAME = "stems"
#: The most tracks one prediction takes (the issue's limit).
MAX_TRACKS = 64

__all__ = ["MAX_TRACKS", "MODEL_NAME", "ROLES", "StemModel", "StemPrediction"]


@dataclass(frozen=True)
class StemPrediction:
    """The model's answer for one song: ``role_probs`` ``(n_tracks, 7)`` (columns in `ROLES`
    order, rows sum to 1) and ``level_db`` ``(n_tracks,)``: each track's target loudness relative
    to the mean track loudness of the mix, in LU (dB), centred to mean 0."""

    role_probs: np.ndarray
    level_db: np.ndarray

    @property
    def roles(self) -> list[str]:
        """The most probable role of each track."""
        return [ROLES[int(i)] for i in np.argmax(self.role_probs, axis=1)]


class StemModel:
    """The shipped balance/role model (``stems.onnx`` + its card ``stems.json``)."""

    def __init__(self, onnx_path: Path, card: dict, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.card = card
        self.path = onnx_path
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    @classmethod
    def load(cls, models_dir: str | os.PathLike | None = None) -> StemModel:
        """Load ``stems.onnx`` and its card from ``models_dir`` (default: the shipped models folder,
        `plugin_bridge.ml.inference.models_dir`). Raises `ModelError` naming the missing or
        mismatched file (a card whose features differ from `FEATURE_NAMES` is refused)."""
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        card_path, onnx_path = folder / f"{MODEL_NAME}.json", folder / f"{MODEL_NAME}.onnx"
        if not card_path.is_file():
            raise ModelError(
                f"{card_path}: stems model card not found (rebuilt by render_scripts/train_stems.py)"
            )
        if not onnx_path.is_file():
            raise ModelError(
                f"{onnx_path}: stems model file not found (rebuilt by render_scripts/train_stems.py)"
            )
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ModelError(f"{card_path}: model card is not valid JSON ({e.msg})") from None
        if tuple(card.get("features", ())) != FEATURE_NAMES:
            raise ModelError(
                f"{card_path}: the model reads other features than plugin_bridge.stems.analysis "
                "computes; retrain it with render_scripts/train_stems.py"
            )
        if tuple(card.get("roles", ())) != ROLES:
            raise ModelError(f"{card_path}: the model's roles {card.get('roles')} are not {list(ROLES)}")
        return cls(onnx_path, card)

    def predict(self, features: np.ndarray) -> StemPrediction:
        """Roles and levels of one song's sounding tracks from their features ``(n_tracks,
        N_FEATURES)`` (`plugin_bridge.stems.analysis.analyse_track(...).features`; silent tracks left
        out). Raises `ParameterError` for a wrong shape, no tracks, more than `MAX_TRACKS`, or
        non-finite features."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ParameterError(
                f"stems model: features must be (n_tracks, {N_FEATURES}), got shape {x.shape}"
            )
        if not 1 <= x.shape[0] <= MAX_TRACKS:
            raise ParameterError(f"stems model: 1 to {MAX_TRACKS} tracks, got {x.shape[0]}")
        if not np.all(np.isfinite(x)):
            raise ParameterError("stems model: features hold NaN or infinity (a silent track left in?)")
        probs, level = self.session.run(None, {"features": x})
        probs = probs.astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        level = level.astype(np.float64).reshape(-1)
        return StemPrediction(probs, level - level.mean())
