"""Evaluation anyone can re-run: mis-mix reference tracks with the training protocol, correct them with
each model, and compare parameters and audio with the reference.

Rows of the table: ``input`` (unprocessed mis-mix; its parameter MAE is that of predicting "change
nothing", the neutral vector), ``loudnorm`` (the input normalised to the
reference's loudness, nothing else), one row per model, ``ensemble``, and ``oracle`` (the true labels:
the best the chain can do; below 1.0 only for the approximately-labelled robust examples).

Metrics per row (means over examples):

- ``mae`` and ``mae_per_param``: mean absolute error of the normalized labelled parameters.
- ``mrstft``: multi-resolution STFT distance to the reference (FFT 512/1024/2048, hop 1/4, Hann;
  spectral convergence + mean |log10 magnitude| difference, averaged over sizes and channels), both
  signals first normalised to the same BS.1770 loudness, so it measures balance, not level.
- ``lufs_diff``: |integrated loudness (LUFS) - the reference's|, before any normalisation.
- ``balance_db``: mean |difference| (dB) of 1/3-octave band energies (25 Hz - 16 kHz, mid signal,
  total energy normalised away).
- ``width_db``: |difference| of the side/mid level ratio (dB).
- ``closer``: share of examples whose render is closer to the reference than the input was
  (``mrstft`` lower than the input's); ``closer_balance`` and ``closer_width`` the same for
  ``balance_db`` and ``width_db``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..chain import default_space
from ..errors import ParameterError
from ..loudness import integrated_loudness, short_loudness
from .corpus import (
    LABELLED,
    ROBUST_SHARE,
    HouseBalance,
    apply_corrective,
    balanced_clip,
    house_labels,
    load_house,
    make_example,
    normalized_labels,
    reference_clip,
)
from .features import FEATURE_SR, clip_features, power_spectrogram, to_feature_rate
from .inference import EnsembleModel, full_vector, load_model

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


@dataclass
class Example:
    """A reference clip, its mis-mixed input, the true normalized labels and whether they are exact."""

    reference: np.ndarray
    mixed: np.ndarray
    y: np.ndarray
    exact: bool
    source: str = ""


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


def third_octave_db(x: np.ndarray) -> np.ndarray:
    """1/3-octave band energies (dB) of the mid signal of a ``(2, n)`` clip, total removed."""
    p = power_spectrogram(np.ascontiguousarray(0.5 * (x[0] + x[1]), dtype=np.float32)).mean(axis=1)
    freqs = np.fft.rfftfreq(2 * (p.shape[0] - 1), 1.0 / FEATURE_SR)
    bands = np.array(
        [p[(freqs >= f * 2 ** (-1 / 6)) & (freqs < f * 2 ** (1 / 6))].sum() for f in _THIRD_OCTAVES]
    )
    db = 10 * np.log10(bands + 1e-12)
    return db - 10 * np.log10(bands.sum() + 1e-12)


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


def make_examples(
    paths: Sequence[str | Path],
    n: int,
    house: HouseBalance | None,
    seed: int = 0,
    robust_share: float = ROBUST_SHARE,
) -> list[Example]:
    """``n`` examples from reference tracks (round-robin over ``paths``) by a training protocol:
    references balanced to ``house`` (songs none of whose clips can be balanced are skipped; an error
    if no song can), or with ``house=None`` the clips as they are (the natural protocol: robust
    examples are labelled against their own reference, `corpus.make_example`)."""
    rng = np.random.default_rng(seed)
    songs: dict[int, np.ndarray] = {}
    usable = list(range(len(paths)))
    out = []
    i = 0
    while len(out) < n and usable:
        k = usable[i % len(usable)]
        if k not in songs:
            audio, sr = _read_any(Path(paths[k]))
            songs[k] = to_feature_rate(audio, sr)
        ref = balanced_clip(songs[k], rng, house) if house is not None else reference_clip(songs[k], rng)
        if ref is None:
            usable.remove(k)
            continue
        mixed, labels, exact = make_example(ref, rng, house, robust_share)
        out.append(Example(ref, mixed, normalized_labels(labels), exact, str(paths[k])))
        i += 1
    if not out:
        raise ParameterError(
            "no clip of these tracks can be balanced to the house curve (mono or band-limited?)"
        )
    return out


@dataclass
class EvalResult:
    """Per-row metrics (`rows`), the examples' count, exact share and timings."""

    rows: dict[str, dict] = field(default_factory=dict)
    n: int = 0
    exact_share: float = 0.0
    seconds: float = 0.0
    labelled: tuple[str, ...] = LABELLED

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "n": self.n,
            "exact_share": self.exact_share,
            "seconds": self.seconds,
            "labelled": list(self.labelled),
            "rows": self.rows,
        }

    def table(self) -> str:
        """A Markdown table of the rows."""
        head = (
            "| row | param MAE | MR-STFT | LUFS diff | balance dB | width dB "
            "| closer than input: MR-STFT / balance / width |"
        )
        lines = [head, "|---|---|---|---|---|---|---|"]
        for name, r in self.rows.items():
            mae = f"{r['mae']:.4f}" if r.get("mae") is not None else "-"
            closer = (
                " / ".join(f"{100 * r[k]:.0f} %" for k in ("closer", "closer_balance", "closer_width"))
                if r.get("closer") is not None
                else "-"
            )
            lines.append(
                f"| {name} | {mae} | {r['mrstft']:.3f} | {r['lufs_diff']:.2f} | {r['balance_db']:.2f} | "
                f"{r['width_db']:.2f} | {closer} |"
            )
        return "\n".join(lines)

    def per_param_table(self) -> str:
        """A Markdown table of per-parameter MAE (normalized) per model row."""
        rows = {k: v for k, v in self.rows.items() if v.get("mae_per_param")}
        lines = ["| parameter | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
        for p in self.labelled:
            lines.append(
                f"| {p} | " + " | ".join(f"{r['mae_per_param'][p]:.4f}" for r in rows.values()) + " |"
            )
        return "\n".join(lines)


def evaluate_examples(
    examples: Sequence[Example], models: Mapping[str, object], house: HouseBalance | None = None
) -> EvalResult:
    """Evaluate ``models`` (name -> `OnnxModel`/`EnsembleModel` from `inference.load_model`) on examples.

    With ``house``, a ``house-fit`` row adds the measurement baseline: `house_labels` of the input,
    no learning (what a least-squares fit to the house curve does on its own)."""

    space = default_space()
    t0 = time.perf_counter()
    acc: dict[str, dict[str, list]] = {}

    closer_keys = {"closer": "mrstft", "closer_balance": "balance_db", "closer_width": "width_db"}

    def add(
        row: str, metrics: Mapping[str, float], err: np.ndarray | None, base: Mapping[str, float] | None
    ) -> None:
        d = acc.setdefault(row, {"m": [], "err": [], **{k: [] for k in closer_keys}})
        d["m"].append(metrics)
        if err is not None:
            d["err"].append(err)
        if base is not None:
            for k, metric in closer_keys.items():
                d[k].append(metrics[metric] < base[metric])

    neutral = normalized_labels({k: 1.0 if k == "width.width" else 0.0 for k in LABELLED})

    for ex in examples:
        ref_lufs = _lufs(ex.reference)
        base = audio_metrics(ex.mixed, ex.reference, ref_lufs)
        add("input", base, np.abs(neutral - ex.y), None)
        add("loudnorm", dict(base, lufs_diff=0.0), None, None)
        mel, glob = clip_features(ex.mixed)
        preds: dict[str, np.ndarray] = {}
        for name, model in models.items():
            if isinstance(model, EnsembleModel):
                members = {m.name: preds.get(m.name) for m in model.members}
                for m in model.members:
                    if members[m.name] is None:
                        members[m.name] = m.predict(mel[None], glob[None])[0]
                preds[name] = model.combine({k: v[None] for k, v in members.items()})[0]
            else:
                preds[name] = model.predict(mel[None], glob[None])[0]
        if house is not None:
            preds["house-fit"] = normalized_labels(house_labels(ex.mixed, house))
        preds["oracle"] = ex.y
        for name, p in preds.items():
            model = models.get(name) or next(iter(models.values()))
            vec = full_vector(model, p, space)
            values = space.to_values(vec)
            y = apply_corrective(ex.mixed, FEATURE_SR, {k: values[k] for k in LABELLED})
            add(name, audio_metrics(y, ex.reference, ref_lufs), np.abs(p - ex.y), base)
    result = EvalResult(n=len(examples), exact_share=float(np.mean([e.exact for e in examples])))
    for row, d in acc.items():
        m = {k: float(np.mean([x[k] for x in d["m"]])) for k in d["m"][0]}
        m["mae"] = m["mae_per_param"] = None
        if d["err"]:
            err = np.stack(d["err"])
            m["mae"] = float(err.mean())
            m["mae_per_param"] = {p: float(v) for p, v in zip(LABELLED, err.mean(axis=0), strict=True)}
        m.update({k: float(np.mean(d[k])) if d[k] else None for k in closer_keys})
        result.rows[row] = m
    order = ["input", "loudnorm", *[k for k in acc if k not in ("input", "loudnorm", "ensemble", "oracle")]]
    order = [k for k in order if k != "house-fit"]
    order += [k for k in ("ensemble", "house-fit", "oracle") if k in acc]
    result.rows = {k: result.rows[k] for k in order}
    result.seconds = time.perf_counter() - t0
    return result


def evaluate_folder(
    folder: str | Path,
    n: int = 40,
    seed: int = 0,
    model_names: Sequence[str] = ("cnn", "cnn_large", "ast", "ensemble"),
    models_folder: str | Path | None = None,
    robust_share: float = ROBUST_SHARE,
    house_protocol: bool = False,
) -> EvalResult:
    """Build ``n`` mis-mixed examples from the audio files in ``folder`` and evaluate the models.

    References are the clips as they are (the natural protocol the shipped models are trained on),
    or with ``house_protocol`` balanced to the shipped house balance first. The ``house-fit`` row
    (correct toward the house balance by measurement, no learning) is a baseline in both."""

    house = load_house(models_folder)
    examples = make_examples(audio_files(folder), n, house if house_protocol else None, seed, robust_share)
    models = {name: load_model(name, models_folder) for name in model_names}
    return evaluate_examples(examples, models, house)
