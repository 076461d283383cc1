"""ONNX export of trained torch models, with the parameter-space metadata inference checks.

The graph takes ``patch`` ``(batch, 2, N_BANDS, N_FRAMES)`` float32 and ``glob`` ``(batch, N_GLOBAL)``
float32 and returns ``moves`` ``(batch, 2 P)``: ``P`` corrective moves (dB) for the card's ``moves``
parameter names, then their ``P`` uncertainties (dB). The ONNX file's
metadata carries ``space_version``, ``space_fingerprint`` and ``name`` as well, so a
model separated from its card is still checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .features import N_BANDS, N_FRAMES, N_GLOBAL


def export_onnx(model, path: str | Path, metadata: Mapping[str, object]) -> Path:  # noqa: ANN001 - torch module
    """Write ``model`` (torch, eval mode) to ``path`` as ONNX (opset 17, dynamic batch) with
    ``metadata`` (values JSON-encoded unless strings) in the file's metadata properties."""
    import torch

    path = Path(path)
    model.eval()
    mel = torch.zeros(1, 2, N_BANDS, N_FRAMES)
    glob = torch.zeros(1, N_GLOBAL)
    torch.onnx.export(
        model,
        (mel, glob),
        str(path),
        input_names=["patch", "glob"],
        output_names=["moves"],
        dynamic_axes={"patch": {0: "batch"}, "glob": {0: "batch"}, "moves": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    add_metadata(path, metadata)
    return path


def add_metadata(path: str | Path, metadata: Mapping[str, object]) -> None:
    """Store ``metadata`` in an ONNX file's metadata properties (strings as they are, the rest as JSON)."""
    import onnx

    proto = onnx.load(str(path))
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.save(proto, str(path))


def check_export(model, path: str | Path, n: int = 4, seed: int = 0) -> float:  # noqa: ANN001
    """Largest absolute difference between torch and onnxruntime outputs on random features."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    mel = (rng.standard_normal((n, 2, N_BANDS, N_FRAMES)) * 15 - 50).astype(np.float32)
    glob = rng.standard_normal((n, N_GLOBAL)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(mel), torch.from_numpy(glob)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"patch": mel, "glob": glob})[0]
    return float(np.max(np.abs(out - ref)))
