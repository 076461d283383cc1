"""Evaluation anyone can re-run on any folder of finished music: mis-mix clips in the three damage tiers
of `plugin_bridge.ml.degrade`, let each model correct them, and measure the audio against the original.

Rows: ``do nothing`` (the damaged clip), ``chain LSQ fit`` (the chain fitted to the true original by
least squares, `plugin_bridge.ml.chainfit`: the best this chain can do) and one row per model (the
assistant's full proposal, `plugin_bridge.ml.assistant.propose`, rendered through the default chain
on the numpy backend, without the mastering stage: the metrics normalise loudness anyway).
``bench/bench_blind.py`` runs the same judgement on the files ``plugin-bridge mix`` writes.

Metrics per clip, against the original (`audio_metrics`):

- ``balance_db``: mean |difference| (dB) of 1/3-octave band energies (25 Hz - 16 kHz, mid signal,
  total energy normalised away, so loudness plays no part);
- ``width_db``: |difference| of the side/mid level ratio (dB);
- ``mrstft``: multi-resolution STFT distance (FFT 512/1024/2048, hop 1/4, Hann; spectral
  convergence + mean |log10 magnitude| difference), both signals first normalised to the same
  BS.1770 loudness;
- ``lufs_diff``: |integrated loudness (LUFS) - the original's|, before any normalisation.

Per row and tier (`summarize`): the means, the share of clips whose balance error went down, the
share made worse by more than `WORSE_DB`, and the worst clip; `done_when` checks the targets of
issue 13 (clear faults halved on 90 % of clips, matters of taste never made worse, middle better
on 75 %).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..chain import DEFAULT_CHAIN
from ..errors import ParameterError
from ..loudness import integrated_loudness, short_loudness
from ..render import render_array
from .assistant import analyse, propose
from .chainfit import fit_chain
from .degrade import TIERS, apply_damage, draw_damage
from .features import FEATURE_SR, to_feature_rate
from .inference import load_model

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
#: A clip is "made worse" when its balance error grows by more than this (dB).
WORSE_DB = 0.5
#: Excerpts more than this far (dB) below their song's level are redrawn.
QUIET_DB = 15.0


def _lufs(x: np.ndarray) -> float:
    v = integrated_loudness(x, FEATURE_SR)
    return v if math.isfinite(v) else short_loudness(x, FEATURE_SR)


def _stft_mag(x: np.ndarray, n_fft: int) -> np.ndarray:
    hop = n_fft // 4
    n = 1 + (x.shape[-1] - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, shape=(n, n_fft), strides=(x.strides[0] * hop, x.strides[0]))
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))


def mrstft_distance(x: np.ndarray, ref: np.ndarray) -> float:
    """Multi-resolution STFT distance of two ``(2, n)`` signals at 44.1 kHz (see the module docstring)."""
    total = []
    for n_fft in (512, 1024, 2048):
        for ch in range(2):
            a = _stft_mag(np.ascontiguousarray(x[ch], dtype=np.float64), n_fft)
            b = _stft_mag(np.ascontiguousarray(ref[ch], dtype=np.float64), n_fft)
            sc = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
            lm = np.mean(np.abs(np.log10(a + 1e-7) - np.log10(b + 1e-7)))
            total.append(sc + lm)
    return float(np.mean(total))


_THIRD_OCTAVES = 1000.0 * 2.0 ** (np.arange(-16, 13) / 3.0)  # 25 Hz .. 16 kHz


#: FFT size of the 1/3-octave measurement: 2.7 Hz bins, so even the 25 Hz band (5.8 Hz wide) holds
#: bins and a pure level change reads as no balance change.
THIRD_OCTAVE_FFT = 16384


def third_octave_db(x: np.ndarray) -> np.ndarray:
    """1/3-octave band energies (dB) of the mid signal of a ``(2, n)`` clip, total removed (so the
    clip's level plays no part)."""
    mid = np.ascontiguousarray(0.5 * (x[0] + x[1]), dtype=np.float64)
    if mid.shape[-1] < THIRD_OCTAVE_FFT:
        mid = np.pad(mid, (0, THIRD_OCTAVE_FFT - mid.shape[-1]))
    p = (_stft_mag(mid, THIRD_OCTAVE_FFT) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(THIRD_OCTAVE_FFT, 1.0 / FEATURE_SR)
    bands = np.array(
        [p[(freqs >= f * 2 ** (-1 / 6)) & (freqs < f * 2 ** (1 / 6))].sum() for f in _THIRD_OCTAVES]
    )
    total = bands.sum() + 1e-30
    return 10 * np.log10(bands / total + 1e-12)


def side_mid_db(x: np.ndarray) -> float:
    """Side/mid level ratio (dB) of a ``(2, n)`` clip."""
    m = np.mean((0.5 * (x[0] + x[1])).astype(np.float64) ** 2) + 1e-20
    s = np.mean((0.5 * (x[0] - x[1])).astype(np.float64) ** 2) + 1e-20
    return float(10 * np.log10(s / m))


def audio_metrics(x: np.ndarray, ref: np.ndarray, ref_lufs: float | None = None) -> dict[str, float]:
    """``mrstft``, ``lufs_diff``, ``balance_db``, ``width_db`` of ``x`` against ``ref`` (both ``(2, n)``)."""
    ref_lufs = _lufs(ref) if ref_lufs is None else ref_lufs
    x_lufs = _lufs(x)
    xn = x * 10 ** ((ref_lufs - x_lufs) / 20) if math.isfinite(x_lufs) else x
    return {
        "mrstft": mrstft_distance(xn, ref),
        "lufs_diff": abs(x_lufs - ref_lufs),
        "balance_db": float(np.mean(np.abs(third_octave_db(x) - third_octave_db(ref)))),
        "width_db": abs(side_mid_db(x) - side_mid_db(ref)),
    }


def audio_files(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted); an error if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise ParameterError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise ParameterError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def _read_any(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # tolerant of MP3 length estimates
    return data.T, sr


@dataclass
class TierClip:
    """One benchmark clip: its ``id``, ``source`` file, ``tier``, the true ``original`` and the
    ``damaged`` copy (``(2, n)`` float32 at 44.1 kHz) and the ``damage`` description."""

    id: str
    source: str
    tier: str
    original: np.ndarray
    damaged: np.ndarray
    damage: dict


def _excerpt(song: np.ndarray, n: int, rng: np.random.Generator, tries: int = 12) -> np.ndarray:
    total = float(np.mean(song.astype(np.float64) ** 2)) + 1e-20
    if song.shape[1] <= n:
        return np.pad(song, ((0, 0), (0, n - song.shape[1])))
    clip = song[:, :n]
    for _ in range(tries):
        s = int(rng.integers(0, song.shape[1] - n))
        clip = song[:, s : s + n]
        if np.mean(clip.astype(np.float64) ** 2) > total * 10 ** (-QUIET_DB / 10):
            break
    return np.ascontiguousarray(clip)


def tier_clips(
    paths: Sequence[str | Path], per_tier: int = 16, seconds: float = 12.0, seed: int = 0
) -> list[TierClip]:
    """``per_tier`` clips of ``seconds`` s in each damage tier, songs taken round-robin from
    ``paths`` (excerpts from loud parts; seeded): the blind benchmark's material."""
    rng = np.random.default_rng(seed)
    songs: dict[int, np.ndarray] = {}
    n = int(seconds * FEATURE_SR)
    out = []
    k = 0
    for tier in TIERS:
        for i in range(per_tier):
            j = k % len(paths)
            k += 1
            if j not in songs:
                audio, sr = _read_any(Path(paths[j]))
                songs[j] = to_feature_rate(audio, sr)
            orig = _excerpt(songs[j], n, rng)
            damage = draw_damage(rng, tier)
            out.append(
                TierClip(
                    f"{tier}{i:02d}",
                    str(paths[j]),
                    tier,
                    orig.astype(np.float32),
                    apply_damage(orig, FEATURE_SR, damage),
                    damage.to_dict(),
                )
            )
    return out


@dataclass
class TierResult:
    """Per-clip metrics by row (``rows[row] = [{"clip", "tier", metrics...}]``), the summary by row
    and tier, the done-when checks and the run time (s)."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    summary: dict[str, dict[str, dict]] = field(default_factory=dict)
    checks: dict[str, dict[str, bool]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"summary": self.summary, "checks": self.checks, "rows": self.rows, "seconds": self.seconds}

    def table(self) -> str:
        """A Markdown table: one line per tier and row."""
        lines = [
            "| tier | row | balance dB | width dB | MR-STFT | improved | worse > 0.5 dB | worst clip (dB) | target |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for tier in TIERS:
            for row, by_tier in self.summary.items():
                s = by_tier.get(tier)
                if s is None:
                    continue
                check = self.checks.get(row, {}).get(tier)
                mark = "-" if check is None or row == "do nothing" else ("met" if check else "not met")
                lines.append(
                    f"| {tier} | {row} | {s['balance_db']:.2f} | {s['width_db']:.2f} | {s['mrstft']:.3f} | "
                    f"{100 * s['improved']:.0f} % | {100 * s['worse']:.0f} % | {s['worst_db']:+.2f} ({s['worst_clip']}) | "
                    f"{mark} |"
                )
        return "\n".join(lines)


def summarize(rows: dict[str, list[dict]]) -> tuple[dict, dict]:
    """Per row and tier: mean metrics, share improved / made worse (balance, against ``do nothing``),
    the worst clip; and the done-when checks of issue 13 per row and tier."""
    base = {r["clip"]: r for r in rows["do nothing"]}
    summary: dict[str, dict[str, dict]] = {}
    checks: dict[str, dict[str, bool]] = {}
    for row, items in rows.items():
        for tier in TIERS:
            sel = [r for r in items if r["tier"] == tier]
            if not sel:
                continue
            delta = [r["balance_db"] - base[r["clip"]]["balance_db"] for r in sel]
            worst = int(np.argmax(delta))
            summary.setdefault(row, {})[tier] = {
                "n": len(sel),
                "balance_db": float(np.mean([r["balance_db"] for r in sel])),
                "width_db": float(np.mean([r["width_db"] for r in sel])),
                "mrstft": float(np.mean([r["mrstft"] for r in sel])),
                "improved": float(np.mean([d < 0 for d in delta])),
                "worse": float(np.mean([d > WORSE_DB for d in delta])),
                "worst_db": float(delta[worst]),
                "worst_clip": sel[worst]["clip"],
            }
    nothing = summary["do nothing"]
    for row, by_tier in summary.items():
        checks[row] = {tier: bool(done_when(tier, s, nothing[tier])["pass"]) for tier, s in by_tier.items()}
    return summary, checks


def done_when(tier: str, s: dict, nothing: dict) -> dict:
    """Issue 13's done-when checks of one row's summary ``s`` in one tier against doing nothing
    (``nothing``): ``{"pass": bool, "why": str}`` (``why`` names the targets missed)."""
    if s.get("failed"):
        return {"pass": False, "why": f"{s['failed']} of {s['n']} clips failed"}
    bal, base = s["balance_db"], nothing["balance_db"]
    if tier == "clear":
        parts = [
            (bal <= 0.5 * base, f"balance {bal / base:.0%} of nothing (<= 50 %)"),
            (s["improved"] >= 0.9, f"improved {s['improved']:.0%} (>= 90 %)"),
            (
                s["width_db"] <= 0.5 * nothing["width_db"],
                f"width {s['width_db'] / max(nothing['width_db'], 1e-9):.0%} of nothing (<= 50 %)",
            ),
        ]
    elif tier == "middle":
        parts = [
            (bal < base, f"balance {bal:.2f} vs {base:.2f} dB (<)"),
            (s["improved"] >= 0.75, f"improved {s['improved']:.0%} (>= 75 %)"),
        ]
    elif tier == "taste":
        parts = [
            (s["worse"] == 0.0, f"worse by > {WORSE_DB} dB on {s['worse']:.0%} (none)"),
            (bal <= base, f"balance {bal:.2f} vs {base:.2f} dB (<=)"),
        ]
    else:
        return {"pass": None, "why": "no check for this tier"}
    return {"pass": all(p for p, _ in parts), "why": "; ".join(w for p, w in parts if not p) or "all met"}


def clip_row(clip: TierClip, audio: np.ndarray) -> dict:
    """One clip's metrics row for ``audio`` (a correction of ``clip.damaged``) against the original."""
    n = min(audio.shape[1], clip.original.shape[1])
    return {"clip": clip.id, "tier": clip.tier, **audio_metrics(audio[:, :n], clip.original[:, :n])}


def evaluate_folder(
    folder: str | Path,
    per_tier: int = 8,
    seconds: float = 12.0,
    seed: int = 0,
    model_names: Sequence[str] = ("cnn", "cnn_large", "ast", "ensemble"),
    models_folder: str | Path | None = None,
    intensity: float = 1.0,
) -> TierResult:
    """The tier benchmark in-process on the audio files under ``folder`` (see the module docstring)."""
    t0 = time.perf_counter()
    clips = tier_clips(audio_files(folder), per_tier, seconds, seed)
    models = {name: load_model(name, models_folder) for name in model_names}
    rows: dict[str, list[dict]] = {"do nothing": [], "chain LSQ fit": [], **{m: [] for m in models}}
    for clip in clips:
        rows["do nothing"].append(clip_row(clip, clip.damaged))
        fit = fit_chain(clip.damaged, clip.original, FEATURE_SR)
        rows["chain LSQ fit"].append(
            clip_row(clip, render_array(clip.damaged, FEATURE_SR, DEFAULT_CHAIN, values=fit, backend="numpy"))
        )
        measured = analyse(clip.damaged, FEATURE_SR, intensity)  # once for every model
        for name, model in models.items():
            prop = propose(clip.damaged, FEATURE_SR, model, intensity, measured)
            y = render_array(clip.damaged, FEATURE_SR, DEFAULT_CHAIN, values=prop.values, backend="numpy")
            rows[name].append(clip_row(clip, y))
    summary, checks = summarize(rows)
    return TierResult(rows, summary, checks, time.perf_counter() - t0)
