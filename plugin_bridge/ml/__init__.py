"""Mixing models: features, training corpus and labels, torch models, training, ONNX export,
onnxruntime inference and evaluation.

Import the submodules you need: `features`, `corpus`, `inference` and `evaluate` need only numpy,
scipy and onnxruntime; `models`, `train` and `export` need the ``torch`` extra (and ``onnx``).
The protocol is documented in ``models/README.md``.
"""

from __future__ import annotations

__all__ = ["corpus", "evaluate", "export", "features", "inference", "models", "train"]
