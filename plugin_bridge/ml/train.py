"""Training on what is heard: the loss is the benchmark's error, through an exact model of the chain.

Every step draws reference clips (band frames, `plugin_bridge.ml.corpus.clip_bank`) and a fresh
damage for each (`corpus.damage_batch`), computes the damaged clips' features in torch
(`features.features_from_bands`, the same code inference runs in numpy), and lets the model propose
moves. The moves correct the damaged band frames through the chain's exact EQ power response
(`eqresponse.eq_band_power`) and width, and the loss compares the corrected clip with its reference:

- **balance**: mean |difference| (dB) of the long-term mid spectrum's shape in the 55 sixth-octave
  bands (each band's share of the total, so loudness plays no part; bands empty in the reference
  left out);
- **width**: |difference| (dB) of the side/mid ratio, weighted by `WIDTH_WEIGHT` (mono references
  left out);
- **uncertainty**: a Laplace negative log-likelihood of each move's distance to the least-squares
  chain setting (`corpus.oracle_moves`) under the predicted scale, with the moves detached: the
  predicted uncertainty learns how far a move tends to be from the best setting, and does not pull
  the moves themselves.

Any setting that fixes the audio is right, so the ambiguity between overlapping EQ bands does not
steer training. Every reference is first changed by a fresh matters-of-taste draw (`corpus`'s song
variety) so that the training songs' own balances cannot be learnt by heart. Damages are drawn
ahead into a pool (`corpus.DamagePool`). AdamW with warm-up and a cosine learning rate that also follows an optional
wall-clock cap; the checkpoint with the best validation balance+width error is kept. torch is
imported here only: install the ``torch`` extra.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import PluginBridgeError
from .corpus import (
    EMPTY_BAND_DB,
    MONO_SIDE_DB,
    VARIETY_TIER,
    DamagePool,
    damage_bands,
    damage_batch,
    oracle_moves,
)
from .degrade import Damage
from .eqresponse import eq_band_power
from .features import N_BANDS, N_GLOBAL, balance_db, features_from_bands, scale_bands, side_mid_ratio_db

#: Weight of the width error (dB) beside the balance error (dB) in the loss.
WIDTH_WEIGHT = 0.5
#: Weight of the uncertainty term.
SIGMA_WEIGHT = 0.1


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise PluginBridgeError("training needs torch: pip install 'plugin-bridge[torch]'") from None
    return torch


@dataclass
class TrainConfig:
    """One model's training run: architecture, steps, batch size, learning rate, seed, an optional
    wall-clock cap (s), validation interval (steps) and architecture keyword arguments."""

    arch: str
    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    seed: int = 0
    max_seconds: float | None = None
    eval_every: int = 250
    variety: bool = True
    pool_size: int = 20000
    dropout: float = 0.2
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return asdict(self)


def damaged_set(frames: np.ndarray, damages: list[Damage]) -> dict[str, np.ndarray]:
    """A fixed evaluation set: reference band frames ``(n, 4, B, T)`` and one damage each:
    ``ref``, ``damaged`` frames (float64) and ``tier`` names."""
    hs, ws, gs = zip(*(damage_bands(d) for d in damages), strict=True)
    ref = frames.astype(np.float64)
    dmg = scale_bands(ref, np.stack(hs), np.asarray(ws), np.asarray(gs))
    return {"ref": ref, "damaged": dmg, "tier": np.asarray([d.tier for d in damages])}


def feature_stats(bank: Mapping[str, np.ndarray], n: int = 2000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Per channel/band and per global-feature mean and standard deviation of damaged training clips."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(bank["frames"]), size=min(n, len(bank["frames"])), replace=False)
    h, w, g, _ = damage_batch(rng, len(idx))
    dmg = scale_bands(bank["frames"][idx].astype(np.float64), h, w, g)
    patch, glob = features_from_bands(dmg)
    mm = patch.mean(axis=(0, 3)).reshape(1, 2, N_BANDS, 1)
    ms = patch.std(axis=(0, 3)).reshape(1, 2, N_BANDS, 1) + 1e-3
    gm = glob.mean(axis=0).reshape(1, N_GLOBAL)
    gs = glob.std(axis=0).reshape(1, N_GLOBAL) + 1e-3
    return mm, ms, gm, gs


def audio_losses(torch, moves, damaged, ref):  # noqa: ANN001, ANN201 - torch tensors
    """Per-example ``(balance dB, width dB)`` errors of ``damaged`` band frames corrected by
    ``moves`` ``(n, P)`` (EQ gains in dB, then 20 log10 width) against ``ref``."""
    h = eq_band_power(moves[:, :-1])
    width = 10.0 ** (moves[:, -1] / 20.0)
    corrected = scale_bands(damaged, h, width)
    ref_bal = balance_db(ref)
    mask = (ref_bal > EMPTY_BAND_DB).to(moves.dtype)
    bal = (torch.abs(balance_db(corrected) - ref_bal) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    ref_sm = side_mid_ratio_db(ref)
    wid = torch.abs(side_mid_ratio_db(corrected) - ref_sm) * (ref_sm > MONO_SIDE_DB).to(moves.dtype)
    return bal, wid


def predict_torch(model, patch: np.ndarray, glob: np.ndarray, batch_size: int = 256) -> np.ndarray:  # noqa: ANN001
    """Model outputs ``(n, 2 P)`` (moves, then uncertainties; dB) for feature arrays (eval mode)."""
    torch = _torch()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(patch), batch_size):
            out.append(
                model(
                    torch.from_numpy(patch[i : i + batch_size].astype(np.float32)),
                    torch.from_numpy(glob[i : i + batch_size].astype(np.float32)),
                ).numpy()
            )
    return np.concatenate(out)


def evaluate_set(torch, model, data: Mapping[str, np.ndarray]) -> dict[str, float]:  # noqa: ANN001
    """Mean balance and width error (dB) of a model's raw moves on a `damaged_set`, in all and per tier,
    beside doing nothing."""
    patch, glob = features_from_bands(data["damaged"])
    out = predict_torch(model, patch, glob)
    p = out.shape[1] // 2
    moves = torch.from_numpy(out[:, :p].astype(np.float64))
    dmg, ref = torch.from_numpy(data["damaged"]), torch.from_numpy(data["ref"])
    bal, wid = audio_losses(torch, moves, dmg, ref)
    bal0, wid0 = audio_losses(torch, torch.zeros_like(moves), dmg, ref)
    res = {"balance": float(bal.mean()), "width": float(wid.mean())}
    res["none_balance"], res["none_width"] = float(bal0.mean()), float(wid0.mean())
    for tier in sorted(set(data["tier"].tolist())):
        sel = torch.from_numpy(data["tier"] == tier)
        res[f"{tier}_balance"] = float(bal[sel].mean())
        res[f"{tier}_none_balance"] = float(bal0[sel].mean())
    res["score"] = res["balance"] + WIDTH_WEIGHT * res["width"]
    return res


def _lr(base: float, progress: float, warmup: float = 0.05) -> float:
    """Learning rate at ``progress`` in [0, 1] of the run: linear warm-up, then cosine to 2 % of base."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup:
        return base * max(p / warmup, 0.02)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (p - warmup) / (1 - warmup))))


def train_model(
    cfg: TrainConfig,
    bank: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    n_moves: int,
    log=print,
) -> tuple[object, dict]:
    """Train one model on the reference ``bank`` (`corpus.clip_bank` of the train split), checked on
    the fixed `damaged_set` ``val``; returns ``(best torch model, history)``."""
    torch = _torch()
    from .models import build_model

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg.arch, n_moves, **cfg.kwargs)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = cfg.dropout
    model.norm.set_stats(*feature_stats(bank, seed=cfg.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    frames = bank["frames"]
    t0 = time.perf_counter()
    damages = DamagePool.draw(rng, cfg.pool_size)
    variety = DamagePool.draw(rng, cfg.pool_size // 2, VARIETY_TIER) if cfg.variety else None
    log(f"  {cfg.arch}: {cfg.pool_size} damages drawn in {time.perf_counter() - t0:.0f} s")
    best, best_state = math.inf, None
    hist: dict = {"val": [], "train_loss": []}
    losses: list[float] = []
    step = 0
    while step < cfg.steps:
        model.train()
        idx = rng.integers(0, len(frames), cfg.batch_size)
        ref_np = frames[idx].astype(np.float64)
        if variety is not None:
            vh, vw, _ = variety.sample(rng, cfg.batch_size)
            ref_np = scale_bands(ref_np, vh, vw)
        h, w, g = damages.sample(rng, cfg.batch_size)
        dmg_np = scale_bands(ref_np, h, w, g)
        oracle = torch.from_numpy(oracle_moves(dmg_np, ref_np).astype(np.float32))
        ref = torch.from_numpy(ref_np.astype(np.float32))
        dmg = torch.from_numpy(dmg_np.astype(np.float32))
        patch, glob = features_from_bands(dmg)
        out = model(patch, glob)
        moves, sigma = out[:, :n_moves], out[:, n_moves:]
        bal, wid = audio_losses(torch, moves, dmg, ref)
        nll = (torch.abs(oracle - moves.detach()) / sigma + torch.log(sigma)).mean()
        loss = bal.mean() + WIDTH_WEIGHT * wid.mean() + SIGMA_WEIGHT * nll
        progress = step / cfg.steps
        if cfg.max_seconds:
            progress = max(progress, (time.perf_counter() - t0) / cfg.max_seconds)
        for group in opt.param_groups:
            group["lr"] = _lr(cfg.lr, progress)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        over = bool(cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds)
        if step % cfg.eval_every == 0 or step == cfg.steps or over:
            res = evaluate_set(torch, model, val)
            hist["val"].append({"step": step, **res})
            hist["train_loss"].append(float(np.mean(losses)))
            log(
                f"  {cfg.arch} step {step}/{cfg.steps}: train loss {np.mean(losses):.3f}, val balance "
                f"{res['balance']:.2f} dB (do nothing {res['none_balance']:.2f}), width {res['width']:.2f} dB "
                f"(do nothing {res['none_width']:.2f}) ({time.perf_counter() - t0:.0f} s)"
            )
            losses = []
            if res["score"] < best:
                best = res["score"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                hist["best_step"] = step
        if over:
            log(f"  {cfg.arch}: stopped by the {cfg.max_seconds:.0f} s cap")
            break
    model.load_state_dict(best_state)
    model.eval()
    hist.update(
        seconds=time.perf_counter() - t0,
        steps_run=step,
        n_params=int(sum(p.numel() for p in model.parameters())),
        best_val_score=best,
        n_train_clips=int(len(frames)),
    )
    return model, hist


def fit_ensemble_weights(
    preds: Mapping[str, np.ndarray], data: Mapping[str, np.ndarray], step: float = 0.1
) -> np.ndarray:
    """Convex weights ``(n_models,)`` of the members' moves minimising the validation balance+width
    error (grid over the simplex with ``step``); models in the order of ``preds``."""
    import itertools

    torch = _torch()
    names = list(preds)
    stack = np.stack([preds[k] for k in names])  # (M, n, P)
    ticks = int(round(1 / step))
    grid = [
        np.array(c) / ticks for c in itertools.product(range(ticks + 1), repeat=len(names)) if sum(c) == ticks
    ]
    dmg, ref = torch.from_numpy(data["damaged"]), torch.from_numpy(data["ref"])
    best, best_w = math.inf, grid[0]
    for w in grid:
        moves = torch.from_numpy(np.tensordot(w, stack, axes=1))
        bal, wid = audio_losses(torch, moves, dmg, ref)
        score = float(bal.mean() + WIDTH_WEIGHT * wid.mean())
        if score < best:
            best, best_w = score, w
    return best_w
