"""Training: torch loops for the three architectures and the validation-fitted ensemble weights.

Loss is the L1 distance (MAE) on normalized labelled parameters; AdamW with warm-up and a cosine
learning rate that also follows an optional wall-clock cap;
the checkpoint with the best validation MAE is kept. Data come from `plugin_bridge.ml.corpus`
(`make_dataset`), split by song. torch is imported here only: install the ``torch`` extra.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import PluginBridgeError
from .features import N_GLOBAL, N_MELS


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise PluginBridgeError("training needs torch: pip install 'plugin-bridge[torch]'") from None
    return torch


@dataclass
class TrainConfig:
    """One model's training run: architecture, epochs, batch size, learning rate, seed, an optional
    wall-clock cap (s) and architecture keyword arguments."""

    arch: str
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_seconds: float | None = None
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return asdict(self)


def feature_stats(ds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Per channel/mel-band and per global-feature mean and standard deviation of a training set."""
    mel = ds["mel"].astype(np.float32)
    mm = mel.mean(axis=(0, 3)).reshape(1, 2, N_MELS, 1)
    ms = mel.std(axis=(0, 3)).reshape(1, 2, N_MELS, 1) + 1e-3
    gm = ds["glob"].mean(axis=0).reshape(1, N_GLOBAL)
    gs = ds["glob"].std(axis=0).reshape(1, N_GLOBAL) + 1e-3
    return mm, ms, gm, gs


def predict_torch(model, ds: Mapping[str, np.ndarray], batch_size: int = 256) -> np.ndarray:  # noqa: ANN001
    """Predictions ``(n, P)`` of a torch model on a dataset (eval mode, no grad)."""
    torch = _torch()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ds["y"]), batch_size):
            mel = torch.from_numpy(ds["mel"][i : i + batch_size].astype(np.float32))
            glob = torch.from_numpy(ds["glob"][i : i + batch_size].astype(np.float32))
            out.append(model(mel, glob).numpy())
    return np.concatenate(out)


def _lr(base: float, progress: float, warmup: float = 0.05) -> float:
    """Learning rate at ``progress`` in [0, 1] of the run: linear warm-up, then cosine to 2 % of base.

    Progress is the larger of the step fraction and the elapsed share of the time cap, so a run
    stopped by its cap still ends on a low learning rate."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup:
        return base * max(p / warmup, 0.02)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (p - warmup) / (1 - warmup))))


def train_model(
    cfg: TrainConfig, train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], log=print
) -> tuple[object, dict]:
    """Train one model; returns ``(best torch model, history)``. ``history`` holds per-epoch
    train/val MAE, the best epoch, the number of parameters and the wall-clock seconds."""
    torch = _torch()
    from .models import build_model

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_out = train["y"].shape[1]
    model = build_model(cfg.arch, n_out, **cfg.kwargs)
    model.norm.set_stats(*feature_stats(train))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train["y"])
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    t0 = time.perf_counter()
    best, best_state, hist = math.inf, None, {"train_mae": [], "val_mae": []}
    stopped = False
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(n)
        losses = []
        for i in range(0, n, cfg.batch_size):
            idx = np.sort(order[i : i + cfg.batch_size])
            mel = torch.from_numpy(train["mel"][idx].astype(np.float32))
            glob = torch.from_numpy(train["glob"][idx].astype(np.float32))
            y = torch.from_numpy(train["y"][idx])
            loss = torch.nn.functional.l1_loss(model(mel, glob), y)
            progress = step / total
            if cfg.max_seconds:
                progress = max(progress, (time.perf_counter() - t0) / cfg.max_seconds)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg.lr, progress)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds:
                stopped = True
                break
        val_mae = float(np.mean(np.abs(predict_torch(model, val) - val["y"])))
        hist["train_mae"].append(float(np.mean(losses)))
        hist["val_mae"].append(val_mae)
        log(
            f"  {cfg.arch} epoch {epoch + 1}/{cfg.epochs}: train MAE {np.mean(losses):.4f}, val MAE {val_mae:.4f} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        if val_mae < best:
            best = val_mae
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            hist["best_epoch"] = epoch + 1
        if stopped:
            log(f"  {cfg.arch}: stopped by the {cfg.max_seconds:.0f} s cap")
            break
    model.load_state_dict(best_state)
    model.eval()
    hist.update(
        seconds=time.perf_counter() - t0,
        epochs_run=len(hist["val_mae"]),
        n_params=int(sum(p.numel() for p in model.parameters())),
        best_val_mae=best,
        n_train=int(n),
    )
    return model, hist


def fit_ensemble_weights(preds: Mapping[str, np.ndarray], y: np.ndarray, step: float = 0.05) -> np.ndarray:
    """Per-parameter convex weights ``(n_models, P)`` minimising validation MAE by a grid search
    over the simplex (step ``step``); models in the order of ``preds``."""
    names = list(preds)
    stack = np.stack([preds[k] for k in names])  # (M, n, P)
    m = len(names)
    ticks = int(round(1 / step))
    grid = [np.array(c) / ticks for c in itertools.product(range(ticks + 1), repeat=m) if sum(c) == ticks]
    weights = np.zeros((m, y.shape[1]))
    for p in range(y.shape[1]):
        errs = [np.mean(np.abs(np.tensordot(w, stack[:, :, p], axes=1) - y[:, p])) for w in grid]
        weights[:, p] = grid[int(np.argmin(errs))]
    return weights
