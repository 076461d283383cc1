"""Train the stems balance/role model and ship it as models/stems.onnx with its card.

    python render_scripts/build_stems_corpus.py -o /work/stems_corpus
    python render_scripts/train_stems.py /work/stems_corpus -o models

Data: the train/validation multitracks of `plugin_bridge.stems.corpus` (openttd-openmsx songs split
by song; the planetblupi test package is never read here). Per stem: the level-free features of
`plugin_bridge.stems.analysis.analyse_track` for the stem as rendered and for ``--augment`` copies
mis-mixed the way users' stems are (a random EQ of 1-3 shelves/peaks/tilts up to +-6 dB from
`plugin_bridge.ml.degrade.draw_damage` "middle" tier, its width change, and a random balance pan),
all with the same target: the stem's reference loudness (BS.1770 integrated loudness) minus the
mean over the multitrack's sounding stems (LU). So the features of a scrambled stem still map to
the level the composer gave it.

Model: DeepSets. A per-track MLP encodes each track's standardised features; the mean and max of
the encodings over the song's tracks are the context; a per-track head reads (encoding, context)
and gives 7 role logits and a level, centred over the tracks. Loss: Huber on the level (LU) plus
cross-entropy on the role (class-balanced). Each step samples songs, a random subset of their
tracks (2..all; the target re-centred over the subset) and one augmented copy per track.

Split by song, never by excerpt or soundfont: ``--folds`` (5) folds of the training songs; one
member per fold, trained on the others for ``--steps``. ``--select best`` (the default, as the
shipped model was trained) keeps the step with the lowest error on the held-out fold: that early
stopping chooses on the very fold it is then scored on, which flattered the out-of-fold figures by
about 0.04 dB on the shipped folds (2.31 against 2.35 dB for 800 fixed steps); ``--select last``
keeps the last step, and the held-out fold is only predicted. The shipped model averages the
members and scales the level by a shrink fitted on the out-of-fold predictions (the model moves
less than it would alone: with 31 songs it is often unsure). The card's metrics are out-of-fold.
(The corpus' train/val labels are the same songs; this script pools them into the folds.)
Features are cached per multitrack folder in ``CORPUS/_features/`` (same seed, same features).
Torch runs on one thread; the analysis on ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.signal import sosfilt

from plugin_bridge.audio_io import read_audio
from plugin_bridge.backends.dsp.stereo import apply_width
from plugin_bridge.graph.signal_flow import pan_to_stereo
from plugin_bridge.ml.degrade import damage_sos, draw_damage
from plugin_bridge.stems.analysis import FEATURE_NAMES, N_FEATURES, analyse_track
from plugin_bridge.stems.corpus import ROLES, list_multitracks

log = logging.getLogger("train_stems")
HIDDEN = 64
N_ROLES = len(ROLES)
#: Weight of the role cross-entropy beside the level loss (LU).
ROLE_WEIGHT = 0.5
#: Largest random pan of an augmented copy (balance law, as `plugin_bridge.stems.evaluate` scrambles).
AUG_PAN = 0.6


def mis_mix(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(2, n)`` stem with a random "middle" `plugin_bridge.ml.degrade` damage (EQ and width; its
    level offset left out: the features are level-free) and a random balance pan (float32)."""
    damage = draw_damage(rng, "middle")
    sos = damage_sos(damage, sample_rate)
    x = sosfilt(sos.astype(np.float32), audio, axis=-1).astype(np.float32) if sos is not None else audio
    x = apply_width(x, damage.width)
    return pan_to_stereo(x, float(rng.uniform(-AUG_PAN, AUG_PAN)))


def extract(args: tuple[str, int, int]) -> dict:
    """Features of one multitrack: ``{"folder", "song", "split", "names", "roles", "level",
    "features" (n_stems, 1 + n_aug, N_FEATURES)}``; copy 0 is the stem as rendered."""
    folder, n_aug, seed = Path(args[0]), args[1], args[2]
    meta = json.loads((folder / "meta.json").read_text())
    names = sorted(meta["stems"])
    rng = np.random.default_rng([seed, sum(folder.name.encode()), len(folder.name)])
    feats = np.zeros((len(names), 1 + n_aug, N_FEATURES), dtype=np.float32)
    level = np.zeros(len(names))
    for i, name in enumerate(names):
        audio, sr = read_audio(folder / "stems" / f"{name}.wav")
        ref = analyse_track(audio, sr)
        level[i] = ref.loudness_lufs
        feats[i, 0] = ref.features
        for k in range(n_aug):
            feats[i, 1 + k] = analyse_track(mis_mix(audio, sr, rng), sr).features
    return {
        "folder": folder.name,
        "song": f"{meta['package']}__{meta['song']}",
        "split": meta["split"],
        "names": names,
        "roles": np.array([ROLES.index(meta["stems"][n]["role"]) for n in names]),
        "level": level - level.mean(),
        "features": feats,
    }


def load_features(corpus: Path, n_aug: int, seed: int, workers: int) -> list[dict]:
    """`extract` every train/val multitrack of ``corpus`` (cached in ``corpus/_features``)."""
    cache = corpus / "_features"
    cache.mkdir(exist_ok=True)
    folders = list_multitracks(corpus, "train") + list_multitracks(corpus, "val")
    todo = [f for f in folders if not (cache / f"{f.name}.npz").is_file()]
    log.info("%d multitracks, %d to analyse", len(folders), len(todo))
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for k, item in enumerate(pool.imap_unordered(extract, [(str(f), n_aug, seed) for f in todo])):
            np.savez(cache / f"{item['folder']}.npz", **{k2: np.asarray(v) for k2, v in item.items()})
            if (k + 1) % 10 == 0:
                log.info("analysed %d/%d (%.0f s)", k + 1, len(todo), time.perf_counter() - t0)
    out = []
    for f in folders:
        z = np.load(cache / f"{f.name}.npz")
        item = {k: z[k] for k in z.files}
        item = {k: (str(v) if v.ndim == 0 else v) for k, v in item.items()}
        if item["features"].shape[1] < 1 + n_aug:
            raise SystemExit(f"{f.name}: cached with fewer augmented copies; delete {cache}")
        out.append(item)
    return out


def build_model(mean: np.ndarray, std: np.ndarray, hidden: int = HIDDEN, dropout: float = 0.1):  # noqa: ANN201
    """The DeepSets network (torch module), feature standardisation baked in."""
    import torch
    from torch import nn

    class SetNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            self.enc = nn.Sequential(
                nn.Linear(N_FEATURES, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
            )
            self.head = nn.Sequential(
                nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1 + N_ROLES)
            )
            self.noise = 0.0

        def forward_batch(self, x, mask):  # noqa: ANN001, ANN202 - (B, T, F), (B, T) -> logits, level
            z = (x - self.mean) / self.std
            if self.training and self.noise:
                z = z + self.noise * torch.randn_like(z)
            h = self.enc(z)
            m = mask.unsqueeze(-1)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            mx = torch.where(m > 0, h, torch.full_like(h, -1e4)).max(1).values
            ctx = torch.cat([mean, mx], -1).unsqueeze(1).expand(-1, h.shape[1], -1)
            out = self.head(torch.cat([h, ctx], -1))
            level = out[..., 0]
            level = level - (level * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)
            return out[..., 1:], level * mask

        def forward(self, x):  # noqa: ANN001, ANN202 - one song (T, F) -> role logits (T, 7), level (T,)
            h = self.enc((x - self.mean) / self.std)
            ctx = torch.cat([h.mean(0, keepdim=True), h.max(0, keepdim=True).values], -1).expand(
                h.shape[0], -1
            )
            out = self.head(torch.cat([h, ctx], -1))
            return out[:, 1:], out[:, 0] - out[:, 0].mean()

    return SetNet()


def build_ensemble(members: list, shrink: float):  # noqa: ANN001, ANN201
    """One module averaging ``members``' role probabilities and levels, the level times ``shrink``:
    the exported model, ``features (T, F) -> role_probs (T, 7), level_db (T,)``."""
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.shrink = float(shrink)

        def forward(self, x):  # noqa: ANN001, ANN202
            probs, levels = [], []
            for m in self.members:
                logits, level = m(x)
                probs.append(torch.softmax(logits, -1))
                levels.append(level)
            level = torch.stack(levels).mean(0) * self.shrink
            return torch.stack(probs).mean(0), level - level.mean()

    return Ensemble().eval()


def sample_batch(songs: list[dict], rng: np.random.Generator, batch: int, augment: bool) -> tuple:
    """A padded batch: features (B, T, F), mask (B, T), level targets (B, T), roles (B, T). Each
    song keeps a random subset of 2..all tracks (the target re-centred over it) and each track one
    random copy of its features (the clean one or a mis-mixed one)."""
    picks = [songs[i] for i in rng.integers(0, len(songs), batch)]
    rows = []
    for s in picks:
        n = len(s["names"])
        keep = np.arange(n)
        if n > 2 and rng.random() > 0.4:
            keep = np.sort(rng.choice(n, int(rng.integers(2, n + 1)), replace=False))
        k = rng.integers(0, s["features"].shape[1], len(keep)) if augment else np.zeros(len(keep), int)
        lv = s["level"][keep] - s["level"][keep].mean()
        rows.append((s["features"][keep, k], lv, s["roles"][keep]))
    t = max(len(r[0]) for r in rows)
    x = np.zeros((batch, t, N_FEATURES), np.float32)
    mask = np.zeros((batch, t), np.float32)
    y = np.zeros((batch, t), np.float32)
    roles = np.full((batch, t), -100, np.int64)
    for b, (f, lv, r) in enumerate(rows):
        x[b, : len(f)], mask[b, : len(f)], y[b, : len(f)], roles[b, : len(f)] = f, 1.0, lv, r
    return x, mask, y, roles


def predict_songs(model, songs: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:  # noqa: ANN001
    """Per song: role probabilities (copies, T, 7) and levels (copies, T) for every feature copy."""
    import torch

    out = []
    with torch.no_grad():
        for s in songs:
            probs, levels = [], []
            for c in range(s["features"].shape[1]):
                logits, level = model(torch.from_numpy(s["features"][:, c]))
                probs.append(torch.softmax(logits, -1).numpy())
                levels.append(level.numpy())
            out.append((np.stack(probs), np.stack(levels)))
    return out


def level_metrics(songs: list[dict], preds: list, shrink: float = 1.0) -> dict:
    """The judge's level error (mean over tracks of |predicted - reference| relative level, LU) on
    the clean copy and on the mis-mixed copies, against equal loudness; role accuracy."""
    clean, mixed, base, hits, total = [], [], [], 0, 0
    for s, (probs, levels) in zip(songs, preds, strict=True):
        t = s["level"]
        clean.append(float(np.mean(np.abs(shrink * levels[0] - t))))
        mixed.extend(float(np.mean(np.abs(shrink * lv - t))) for lv in levels[1:])
        base.append(float(np.mean(np.abs(t))))
        hits += int((probs.argmax(-1) == s["roles"][None]).sum())
        total += probs.shape[0] * len(t)
    return {
        "level_error_db": float(np.mean(clean)),
        "level_error_mis_mixed_db": float(np.mean(mixed)) if mixed else float("nan"),
        "equal_loudness_error_db": float(np.mean(base)),
        "worst_level_error_mis_mixed_db": float(np.max(mixed)) if mixed else float("nan"),
        "share_better_than_equal": float(np.mean([c < b for c, b in zip(clean, base, strict=True)])),
        "role_accuracy": hits / max(total, 1),
    }


def role_table_error(train: list[dict], songs: list[dict]) -> float:
    """Level error of a per-role mean-level table fitted on ``train`` (a learned-rules baseline)."""
    by_role: dict[int, list[float]] = {}
    for s in train:
        for r, lv in zip(s["roles"], s["level"], strict=True):
            by_role.setdefault(int(r), []).append(float(lv))
    table = {r: float(np.mean(v)) for r, v in by_role.items()}
    errs = []
    for s in songs:
        p = np.array([table.get(int(r), 0.0) for r in s["roles"]])
        errs.append(float(np.mean(np.abs(p - p.mean() - s["level"]))))
    return float(np.mean(errs))


def train_one(tr: list[dict], va: list[dict], args: argparse.Namespace, seed: int) -> tuple:
    """Train one member on ``tr`` for ``args.steps``; ``args.select`` "last" keeps the last step
    (``va`` is only scored for the history), "best" the step with the lowest level error on
    ``va``'s mis-mixed copies. Returns ``(model, history)``."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    allf = np.concatenate([s["features"].reshape(-1, N_FEATURES) for s in tr])
    model = build_model(allf.mean(0), allf.std(0) + 1e-3, args.hidden, args.dropout)
    model.noise = args.noise
    counts = Counter(int(r) for s in tr for r in s["roles"])
    n_all = sum(counts.values())
    weights = torch.tensor(
        [min(5.0, (n_all / (N_ROLES * counts[i])) ** 0.5) if counts.get(i) else 0.0 for i in range(N_ROLES)],
        dtype=torch.float32,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    ce = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=-100)
    best, best_state, history = math.inf, None, []
    for step in range(1, args.steps + 1):
        model.train()
        x, mask, y, roles = (torch.from_numpy(a) for a in sample_batch(tr, rng, args.batch, True))
        logits, level = model.forward_batch(x, mask)
        lloss = (
            torch.nn.functional.huber_loss(level, y, reduction="none", delta=2.0) * mask
        ).sum() / mask.sum()
        loss = lloss + ROLE_WEIGHT * ce(logits.reshape(-1, N_ROLES), roles.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            v = level_metrics(va, predict_songs(model, va))
            history.append({"step": step, "loss": round(loss.item(), 4), **v})
            if args.select == "last" or v["level_error_mis_mixed_db"] < best:
                best = v["level_error_mis_mixed_db"]
                best_state = {k: t.clone() for k, t in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), history


def cross_validate(songs: list[dict], args: argparse.Namespace) -> tuple:
    """``args.folds`` members, each trained with one fold of songs held out (split by song, never
    by excerpt or soundfont; `train_one`); the level shrink fitted on the out-of-fold
    predictions. Returns ``(members, shrink, metrics, folds, histories)``."""
    import torch

    torch.set_num_threads(1)
    names = sorted({s["song"] for s in songs})
    order = list(np.random.default_rng(args.seed).permutation(names))
    fold_of = {name: i % args.folds for i, name in enumerate(order)}
    members, histories, oof = [], [], [None] * len(songs)
    t0 = time.perf_counter()
    for k in range(args.folds):
        tr = [s for s in songs if fold_of[s["song"]] != k]
        idx = [i for i, s in enumerate(songs) if fold_of[s["song"]] == k]
        va = [songs[i] for i in idx]
        model, hist = train_one(tr, va, args, args.seed + k)
        for i, p in zip(idx, predict_songs(model, va), strict=True):
            oof[i] = p
        best = hist[-1] if args.select == "last" else min(hist, key=lambda h: h["level_error_mis_mixed_db"])
        log.info(
            "fold %d: %d songs held out, kept step %d: level error %.2f dB mis-mixed (equal loudness %.2f), "
            "roles %.0f %% (%.0f s)",
            k, len({s["song"] for s in va}), best["step"], best["level_error_mis_mixed_db"],
            best["equal_loudness_error_db"], 100 * best["role_accuracy"], time.perf_counter() - t0,
        )  # fmt: skip
        members.append(model)
        histories.append(hist)
    grid = np.round(np.arange(0.0, 1.31, 0.05), 2)
    errs = [level_metrics(songs, oof, float(a))["level_error_mis_mixed_db"] for a in grid]
    shrink = float(grid[int(np.argmin(errs))])
    metrics = {
        "out_of_fold": level_metrics(songs, oof, 1.0),
        "out_of_fold_shrunk": level_metrics(songs, oof, shrink),
        "shrink_curve": {f"{a:.2f}": round(e, 4) for a, e in zip(grid, errs, strict=True)},
        "role_table_error_db": float(
            np.mean(
                [
                    role_table_error(
                        [s for s in songs if fold_of[s["song"]] != k],
                        [s for s in songs if fold_of[s["song"]] == k],
                    )
                    for k in range(args.folds)
                ]
            )
        ),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    return members, shrink, metrics, fold_of, histories


def export(model, path: Path) -> float:  # noqa: ANN001
    """Write ``model`` as ONNX (input ``features`` (tracks, F); outputs ``role_probs``, ``level_db``);
    returns the largest torch/onnxruntime difference on random input of 1, 3 and 64 tracks."""
    import onnxruntime as ort
    import torch

    torch.onnx.export(
        model,
        (torch.zeros(5, N_FEATURES),),
        str(path),
        input_names=["features"],
        output_names=["role_probs", "level_db"],
        dynamic_axes={"features": {0: "tracks"}, "role_probs": {0: "tracks"}, "level_db": {0: "tracks"}},
        opset_version=17,
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    first = model.members[0]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diff = 0.0
    for n in (1, 3, 64):
        x = (rng.standard_normal((n, N_FEATURES)) * first.std.numpy() + first.mean.numpy()).astype(np.float32)
        with torch.no_grad():
            p_ref, l_ref = model(torch.from_numpy(x))
        p, lv = sess.run(None, {"features": x})
        diff = max(diff, float(np.abs(p - p_ref.numpy()).max()), float(np.abs(lv - l_ref.numpy()).max()))
    return diff


LICENCES = """\
| material | Debian package | licence (``/usr/share/doc/PACKAGE/copyright``) |
|---|---|---|
| 31 OpenMSX General MIDI songs (train, cross-validation) | `openttd-openmsx` | GPL-2 |
| 10 Planet Blupi MIDI songs (held-out test package, never trained on) | `planetblupi-music-midi` | GPL-3+ (Mathieu Schroeter) |
| TimGM6mb.sf2 | `timgm6mb-soundfont` | GPL-2 (Tim Brechbill) |
| FluidR3_GM.sf2 | `fluid-soundfont-gm` | MIT (Frank Wen) |
| MuseScore_General_Lite.sf3 (test package only in the quick plan) | `musescore-general-soundfont-small` | MIT |
"""


def model_card_md(card: dict) -> str:
    """The human-readable card ``stems.md`` from the JSON card."""
    m = card["metrics"]
    oof, shr = m["out_of_fold"], m["out_of_fold_shrunk"]
    return f"""# stems: the balance and role model of the stems mix

`stems.onnx` ({card["onnx_bytes"] / 1e3:.0f} kB, {card["parameters"]} parameters, onnxruntime only) reads the
level-free features of every sounding track of a song (`plugin_bridge/stems/analysis.py`,
{len(card["features"])} per track) as one set and returns per track the probabilities of the roles
({", ".join(card["roles"])}) and its target loudness relative to the mean track of the mix (LU,
centred). Architecture: {card["architecture"]}. Runtime: `plugin_bridge/stems/model.py`.
Rebuilt from nothing by

```sh
apt-get install --no-install-recommends fluidsynth openttd-openmsx planetblupi-music-midi \\
    timgm6mb-soundfont fluid-soundfont-gm musescore-general-soundfont-small
python render_scripts/build_stems_corpus.py -o /work/stems_corpus    # ~20-35 min on 2 cores
python render_scripts/train_stems.py /work/stems_corpus -o models     # features, then ~5 min of one core
python bench/bench_stems.py                                          # the held-out judgement
```

## Data

{LICENCES}
Each song is cut into 30-45 s excerpts; each excerpt is rendered one stem per MIDI channel with
fluidsynth (every part rendered inside the whole excerpt, so the stems sum to the full render,
-149 dB residual measured), with the MIDI's own channel volume (CC7), expression (CC11), velocities
and pans (CC10) left in. The stems as rendered are the composer's balance: the target of each
stem is its BS.1770 integrated loudness minus the mean over the excerpt's sounding stems (stems
40 LU below the loudest are dropped as silent). Roles come from the General MIDI program and
channel (`plugin_bridge/stems/corpus.py` documents the table). Training material:
{card["multitracks"]} multitracks, {card["stems"]} stems from {len(card["songs"])} songs; roles
{", ".join(f"{k} {v}" for k, v in card["role_counts"].items())}.

Every stem is analysed as rendered and in {card["training"]["augment"]} mis-mixed copies (random EQ of
1-3 shelves, peaks or tilts up to +-6 dB from `plugin_bridge/ml/degrade.py`'s "middle" tier, its
width change, a random balance pan up to +-0.6), all with the same target, so a scrambled stem's
features still map to the composer's level. Each training step also keeps a random subset of each
song's tracks (target re-centred), since a track's level depends on what else plays.

## Split

By song, never by excerpt or soundfont: {card["training"]["folds"]}-fold cross-validation over the
OpenMSX songs (folds in `stems.json`); each member is trained on four folds for
{card["training"]["steps"]} steps ({"the last step kept: the fifth fold is only predicted" if card["training"].get("select", "best") == "last" else "early-stopped on the fifth fold"}),
the shipped model averages the members, and its level is scaled by the shrink
{card["shrink"]} fitted on the out-of-fold predictions (a cautious model moves less when unsure).
The Planet Blupi package is held out entirely as the test set (`bench/bench_stems.py`), with one
soundfont (MuseScore General) the model never heard.

## Metrics (out of fold, by song)

| | level error dB (as rendered) | level error dB (mis-mixed copies) | worst song (mis-mixed) | roles |
|---|---|---|---|---|
| equal loudness | {oof["equal_loudness_error_db"]:.2f} | {oof["equal_loudness_error_db"]:.2f} | - | - |
| per-role mean level table | {m["role_table_error_db"]:.2f} | - | - | - |
| model (members averaged per fold) | {oof["level_error_db"]:.2f} | {oof["level_error_mis_mixed_db"]:.2f} | {oof["worst_level_error_mis_mixed_db"]:.2f} | {100 * oof["role_accuracy"]:.0f} % |
| model x shrink {card["shrink"]} | {shr["level_error_db"]:.2f} | {shr["level_error_mis_mixed_db"]:.2f} | {shr["worst_level_error_mis_mixed_db"]:.2f} | - |

Level error: mean over a song's tracks of |predicted - reference relative level| (LU), the
judge's level metric; equal loudness predicts 0 for every track. The held-out table (all rows,
with the mix metrics) is in `bench/results/stems.json` and the README.

## What this reference is fair for, and what it cannot teach

Fair: the relative levels a composer gave the parts of an arrangement (bass against drums against
pads, a lead above its accompaniment), with the spectra and densities of GM instruments in three
soundfonts, and MIDI pans. It cannot teach: the dynamics of real recordings (a GM part is evenly
played and uncompressed; real stems carry room, bleed and performance dynamics), real vocals (choir
and voice programs are the only stand-in, and a lead vocal's place in a pop mix is not in this
data), mix-bus processing (no compression, EQ or reverb on the references: the balance is that of
dry parts), nor genres whose balance differs from game music (the training songs are 31 OpenMSX
pieces: jazz, blues, rock and light orchestral). Roles are learned from GM programs, so "vocals"
means choir/voice patches and "pad/synth" includes string ensembles.
"""


def main(argv: list[str] | None = None) -> int:
    """Analyse, cross-validate, export ``stems.onnx`` and write the card ``stems.json``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="?", default=Path("/work/stems_corpus"))
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    ap.add_argument("--augment", type=int, default=6, help="mis-mixed copies per stem")
    ap.add_argument("--folds", type=int, default=5, help="members, one per fold of songs held out")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=0.1, help="Gaussian noise on standardised features")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument(
        "--select",
        choices=("last", "best"),
        default="best",
        help="keep each member's last step, or its best step on the held-out fold (early stopping)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    songs = load_features(args.corpus, args.augment, args.seed, args.workers)
    members, shrink, metrics, fold_of, histories = cross_validate(songs, args)
    model = build_ensemble(members, shrink)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "stems.onnx"
    diff = export(model, onnx_path)
    log.info(
        "exported %s (%.0f kB), torch/onnx difference %.2g", onnx_path, onnx_path.stat().st_size / 1e3, diff
    )
    role_counts = Counter(ROLES[int(r)] for s in songs for r in s["roles"])
    card = {
        "name": "stems",
        "version": 1,
        "task": "per-track role probabilities and target loudness relative to the mean track (LU, centred)",
        "features": list(FEATURE_NAMES),
        "roles": list(ROLES),
        "inputs": {"features": ["tracks", N_FEATURES]},
        "outputs": {"role_probs": ["tracks", N_ROLES], "level_db": ["tracks"]},
        "architecture": (
            f"{args.folds} DeepSets members averaged (per-track MLP {N_FEATURES}-{args.hidden}-{args.hidden}, "
            f"mean+max context, head {3 * args.hidden}-{args.hidden}-{1 + N_ROLES}); level times shrink {shrink}"
        ),
        "shrink": shrink,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "onnx_bytes": onnx_path.stat().st_size,
        "torch_onnx_max_diff": diff,
        "corpus": str(args.corpus),
        "multitracks": len(songs),
        "stems": int(sum(len(s["names"]) for s in songs)),
        "songs": sorted(fold_of),
        "folds": {str(k): sorted(s for s, f in fold_of.items() if f == k) for k in range(args.folds)},
        "role_counts": dict(sorted(role_counts.items())),
        "training": {k: v for k, v in vars(args).items() if k not in ("corpus", "out")},
        "metrics": metrics,
        "history": histories,
    }
    (args.out / "stems.json").write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")
    (args.out / "stems.md").write_text(model_card_md(card), encoding="utf-8")
    log.info("metrics: %s", json.dumps({k: v for k, v in metrics.items() if k != "shrink_curve"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
