"""A second, stereo-only estimate of a width fault, and the rule that combines it with the ensemble's.

Why: width damage (side x w) shifts every band's side/mid ratio by the same 20 log10 w and leaves
the EQ-invariant stereo cues (per-band side/mid, L/R coherence) otherwise as they were; finished
music has typical shapes of those (narrow bass, side rising with frequency, no band where the side
outweighs the mid, i.e. where L and R are out of phase), so a small network on them alone can tell a
widened or narrowed mix from a song that is simply wide or narrow more often than not. It does not
know everything (a naturally narrow song still reads as narrowed), so it is not used on its own:

**The rule** (`plugin_bridge.ml.width_rule.width_rule_move`, kept apart: inference needs only it):
the width move is the mean of the ensemble's raw width move and this estimate, cut by a dead zone
``dead_zone_db`` plus ``disagreement`` times the two estimates' |difference| (soft threshold, like `plugin_bridge.ml.inference.confident_moves`): the two agree on
the clear faults and the move is made; where they disagree (a song unlike the training ones), little
or nothing is done. Both numbers are fitted on the validation split (`fit_width_rule`: the lowest
mean width error among the settings that do no more harm than the ensemble's own threshold rule:
no tier's mean width error higher, and no more matters-of-taste clips made wider or narrower than
they were by over 0.5 dB, nor a worse worst one); ``render_scripts/train_width.py`` trains, exports and fits it.

The model (`WidthNet`) takes the 332 global features (`plugin_bridge.ml.features`) and uses only the
stereo ones: per-band side minus mid level (55), per-band coherence (55), the overall side/mid ratio
and coherence. It is trained in the band domain like the other models (fresh damage of the training
mix of tiers on the reference clips, song variety), its loss the width error (dB) of the damaged
clip corrected by its move. torch is needed only to train it (`train_width_net`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np

from .corpus import MONO_SIDE_DB, VARIETY_TIER, damage_batch
from .export import add_metadata
from .features import N_BANDS, N_GLOBAL, features_from_bands, scale_bands, side_mid_ratio_db
from .width_rule import width_rule_move

#: Number of stereo features `WidthNet` reads from the global features.
N_STEREO = 2 * N_BANDS + 2
#: Largest width move (dB, 20 log10 width) the network proposes.
WIDTH_LIMIT_DB = 12.0


def stereo_features(glob: np.ndarray) -> np.ndarray:
    """``(n, N_STEREO)`` EQ-invariant stereo features of global features ``(n, N_GLOBAL)``: per-band side
    minus mid level (dB), per-band L/R coherence, overall side/mid (dB) and coherence."""
    b = N_BANDS
    return np.concatenate([glob[:, b : 2 * b] - glob[:, :b], glob[:, 2 * b : 3 * b], glob[:, -2:]], axis=1)


def width_examples(
    frames: np.ndarray, rng: np.random.Generator, rounds: int = 1, batch: int = 1024
) -> dict[str, np.ndarray]:
    """Training examples from reference band frames ``(n, 4, B, T)``: each of ``rounds`` passes gives
    every clip a song-variety change and a fresh damage of the training mix (`corpus.damage_batch`).
    Returns ``glob`` (features of the damaged clip), ``sm_dmg`` / ``sm_ref`` (side/mid, dB) and ``tier``."""
    out: dict[str, list] = {"glob": [], "sm_dmg": [], "sm_ref": [], "tier": []}
    n = len(frames)
    for _ in range(rounds):
        h, w, g, tiers = damage_batch(rng, n)
        vh, vw, _, _ = damage_batch(rng, n, VARIETY_TIER)
        for i in range(0, n, batch):
            s = slice(i, i + batch)
            ref = scale_bands(frames[s].astype(np.float64), vh[s], vw[s])
            dmg = scale_bands(ref, h[s], w[s], g[s])
            out["glob"].append(features_from_bands(dmg)[1])
            out["sm_dmg"].append(side_mid_ratio_db(dmg))
            out["sm_ref"].append(side_mid_ratio_db(ref))
        out["tier"].append(np.asarray(tiers))
    return {k: np.concatenate(v) for k, v in out.items()}


def width_error_db(move_db: np.ndarray, sm_dmg: np.ndarray, sm_ref: np.ndarray) -> np.ndarray:
    """Width error (dB) per clip after a width move (dB): |side/mid after - reference's| (mono
    references, side below `corpus.MONO_SIDE_DB`, count zero), as `plugin_bridge.ml.train.audio_losses`."""
    return np.abs(sm_dmg + move_db - sm_ref) * (sm_ref > MONO_SIDE_DB)


#: Dead zones (dB) and disagreement multiples `fit_width_rule` tries.
DEAD_ZONE_GRID = tuple(0.25 * i for i in range(13))
DISAGREEMENT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
#: A matters-of-taste clip whose width error grows by more than this (dB) counts as made worse.
TASTE_WORSE_DB = 0.5


def fit_width_rule(
    ensemble_db: np.ndarray,
    estimate_db: np.ndarray,
    baseline_db: np.ndarray,
    sm_dmg: np.ndarray,
    sm_ref: np.ndarray,
    tiers: np.ndarray,
) -> tuple[dict[str, float], dict]:
    """The rule's ``dead_zone_db`` and ``disagreement`` on a validation set: the lowest mean width error
    among the settings that do no more harm than ``baseline_db``'s moves (the ensemble's own
    thresholded width moves): in every tier a mean width error no higher, and in the ``taste`` tier
    no more clips made worse by more than 0.5 dB and no worse a worst clip; ``{}`` if none does.
    Returns the choice and every setting tried."""
    none = width_error_db(np.zeros_like(sm_dmg), sm_dmg, sm_ref)
    names = sorted(set(tiers.tolist()))
    taste = tiers == "taste"

    def summary(err: np.ndarray) -> dict[str, float]:
        out = {t: float(err[tiers == t].mean()) for t in names}
        if taste.any():
            d = (err - none)[taste]
            out.update(taste_worse=float(np.mean(d > TASTE_WORSE_DB)), taste_worst_db=float(d.max()))
        return out

    base = summary(width_error_db(baseline_db, sm_dmg, sm_ref))
    tried, best, choice = {}, math.inf, {}
    for dz in DEAD_ZONE_GRID:
        for k in DISAGREEMENT_GRID:
            err = width_error_db(width_rule_move(ensemble_db, estimate_db, dz, k)[2], sm_dmg, sm_ref)
            per = summary(err)
            tried[f"{dz:g}/{k:g}"] = {"mean": float(err.mean()), **per}
            if all(per[key] <= base[key] for key in base) and err.mean() < best:
                best, choice = float(err.mean()), {"dead_zone_db": float(dz), "disagreement": float(k)}
    return choice, {"baseline": base, "tried": tried}


def _torch():
    import torch

    return torch


def build_width_net(hidden: int = 64, dropout: float = 0.3):  # noqa: ANN201 - a torch module
    """`WidthNet`: standardised stereo features -> 2 hidden GELU layers of ``hidden`` -> one width move
    (dB, within +-`WIDTH_LIMIT_DB` by a scaled tanh). Input: the raw global features."""
    torch = _torch()
    from torch import nn

    class WidthNet(nn.Module):
        """Width move (dB) ``(n, 1)`` from the global features ``(n, N_GLOBAL)``."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(1, N_STEREO))
            self.register_buffer("std", torch.ones(1, N_STEREO))
            self.net = nn.Sequential(
                nn.Linear(N_STEREO, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, 1),
            )

        def forward(self, glob):  # noqa: ANN001, ANN202
            b = N_BANDS
            x = torch.cat([glob[:, b : 2 * b] - glob[:, :b], glob[:, 2 * b : 3 * b], glob[:, -2:]], dim=1)
            x = (x - self.mean) / self.std
            return WIDTH_LIMIT_DB * torch.tanh(self.net(x) / WIDTH_LIMIT_DB)

    return WidthNet()


def train_width_net(
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    epochs: int = 5,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    hidden: int = 64,
    log: Callable[[str], None] = print,
):  # noqa: ANN201 - (torch module, history)
    """Train `build_width_net` on `width_examples` ``train`` (loss: mean width error, dB; AdamW, one-cycle
    learning rate), keeping the epoch with the lowest mean width error on ``val`` (examples with the
    same keys). Returns ``(model in eval mode, history)``."""
    torch = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_width_net(hidden)
    st = stereo_features(train["glob"])
    model.mean.copy_(torch.as_tensor(st.mean(0, keepdims=True), dtype=torch.float32))
    model.std.copy_(torch.as_tensor(st.std(0, keepdims=True) + 1e-3, dtype=torch.float32))
    x = torch.from_numpy(train["glob"].astype(np.float32))
    sm_d = torch.from_numpy(train["sm_dmg"].astype(np.float32))
    sm_r = torch.from_numpy(train["sm_ref"].astype(np.float32))
    n = len(x)
    batch_size = min(batch_size, n)
    steps = epochs * (n // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr / 2, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    best, best_state, hist, t0 = math.inf, None, [], time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(n))
        losses = []
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            move = model(x[idx])[:, 0]
            loss = (torch.abs(sm_d[idx] + move - sm_r[idx]) * (sm_r[idx] > MONO_SIDE_DB)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        v = float(width_error_db(predict_width(model, val["glob"]), val["sm_dmg"], val["sm_ref"]).mean())
        hist.append({"epoch": ep + 1, "train_db": float(np.mean(losses)), "val_db": v})
        log(
            f"  width epoch {ep + 1}/{epochs}: train {np.mean(losses):.3f} dB, val {v:.3f} dB "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        if v < best:
            best, best_state = v, {k: t.detach().clone() for k, t in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    n_params = int(sum(p.numel() for p in model.parameters()))
    return model, {
        "epochs": hist,
        "best_val_db": best,
        "seconds": time.perf_counter() - t0,
        "n_params": n_params,
    }


def predict_width(model, glob: np.ndarray) -> np.ndarray:  # noqa: ANN001 - torch module
    """Width moves (dB) ``(n,)`` of a torch `WidthNet` for global features ``(n, N_GLOBAL)``."""
    torch = _torch()
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(glob, dtype=np.float32))).numpy()[:, 0].astype(np.float64)


def export_width_onnx(model, path, metadata: Mapping[str, object]) -> float:  # noqa: ANN001
    """Write a `WidthNet` as ONNX (input ``glob`` ``(batch, N_GLOBAL)``, output ``width`` ``(batch, 1)``,
    dB) with ``metadata``; returns the largest |torch - onnxruntime| difference on random features."""
    import onnxruntime as ort

    torch = _torch()
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, N_GLOBAL),),
        str(path),
        input_names=["glob"],
        output_names=["width"],
        dynamic_axes={"glob": {0: "batch"}, "width": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    add_metadata(path, metadata)
    g = (np.random.default_rng(0).standard_normal((4, N_GLOBAL)) * 10 - 20).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(np.max(np.abs(sess.run(None, {"glob": g})[0][:, 0] - predict_width(model, g))))
