"""The stems judge: scramble a reference multitrack's faders, pans and EQs, mix it, measure against the reference.

A reference multitrack is a folder holding ``stems/*.wav`` (or the audio files themselves) whose
balance is the one to recover: the MIDI songs of `plugin_bridge.stems.corpus` rendered per part,
or any real multitrack balanced by the people who made it. `scramble_multitrack` writes a copy
with every stem mis-mixed (a random fader of +-4..10 dB, a random balance pan, a random EQ of
shelves and peaks); each row then mixes the scrambled stems and is measured against the reference:

- ``level_error_db``: each track's level relative to the others against the reference:
  with ``d_i = L_out_i - L_ref_i`` (BS.1770 integrated loudness of the processed stem and of the
  reference stem, LUFS), the error is ``mean_i |d_i - mean(d)|`` (dB; 0 when only a common gain
  separates them);
- ``pan_error``: mean |stereo position of the processed stem - the reference stem's| (positions
  -1 .. +1 by the channels' energies, `plugin_bridge.stems.analysis.stereo_position`);
- ``balance_db``, ``mrstft``, ``width_db``: the mix against the reference mix (the sum of the
  reference stems) after loudness normalisation (`plugin_bridge.ml.evaluate.audio_metrics`), on
  the middle `MIX_WINDOW_S` seconds of the mix (the MR-STFT of a whole excerpt is slow).

Rows (`ROWS`): ``as given`` (the scrambled stems summed), ``equal loudness`` (every scrambled stem
to the same loudness), ``model gains`` (the shipped model's levels applied as plain gains: the
model alone, no pipeline), and ``rules`` / ``model``: the whole stems pipeline
(`plugin_bridge.stems.job.mix_stems` with ``balance="rules"`` or ``"model"``, its processed stems
and its ``mix.wav``). `summarize` gives the means per row, the share of multitracks whose mix came
closer to the reference than the scrambled input (balance AND MR-STFT), the share made worse, the
worst one, and issue 14's done-when checks (`done_when`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import sosfilt

from ..audio_io import read_audio, write_audio
from ..errors import ParameterError
from ..files import write_atomic
from ..graph.signal_flow import pan_to_stereo
from ..loudness import integrated_loudness
from ..ml.degrade import Filter
from ..ml.evaluate import audio_metrics
from .analysis import analyse_track, stereo_position
from .job import mix_stems
from .model import StemModel

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
ROWS: tuple[str, ...] = ("as given", "equal loudness", "model gains", "rules", "model")
#: Loudness floor of a processed stem (LUFS): a muted track counts as this quiet, not as -inf.
FLOOR_LUFS = -70.0
#: The scrambled stems' loudest sample peak is brought down to this (dBFS) by one common gain.
PEAK_DBFS = -1.0
#: The mix metrics read this much of the middle of the mix (s), as the tier benchmark's 12 s clips.
MIX_WINDOW_S = 12.0
#: A multitrack is "made worse" when its level error grows by more than this over the input (dB).
WORSE_DB = 0.5
#: Issue 14's targets: mean level error at most this (dB), and the share of multitracks closer.
TARGET_LEVEL_DB = 2.0
TARGET_CLOSER = 0.9

Mixer = Callable[[Path, Path], tuple[dict[str, np.ndarray], np.ndarray]]


def stem_files(folder: str | Path) -> dict[str, Path]:
    """``{name: path}`` of a multitrack's stems: ``folder/stems/*`` if that exists, else the audio
    files in ``folder`` (sorted; name = file name without suffix)."""
    root = Path(folder)
    base = root / "stems" if (root / "stems").is_dir() else root
    files = sorted(p for p in base.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ParameterError(f"{base}: no stems ({', '.join(AUDIO_SUFFIXES)})")
    return {p.stem: p for p in files}


def read_stems(folder: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """Every stem of ``folder`` as ``(2, n)`` float32 (mono doubled), all at one sample rate (Hz)."""
    out, rate = {}, None
    for name, path in stem_files(folder).items():
        audio, sr = read_audio(path)
        if rate is not None and sr != rate:
            raise ParameterError(f"{path}: {sr} Hz, but the other stems are at {rate} Hz")
        rate = sr
        out[name] = audio if audio.shape[0] == 2 else np.repeat(audio[:1], 2, axis=0)
    return out, int(rate)


def _eq_filters(rng: np.random.Generator, eq_db: float) -> list[Filter]:
    """1-2 random RBJ filters: a low shelf (60-400 Hz), a high shelf (2-12 kHz) or a peak
    (100 Hz-8 kHz, Q 0.7-2), each with a gain uniform in +-``eq_db`` dB."""
    out = []
    for _ in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(["low_shelf", "high_shelf", "peak"]))
        lo, hi, q = {"low_shelf": (60, 400, 0.7), "high_shelf": (2000, 12000, 0.7), "peak": (100, 8000, 0)}[
            kind
        ]
        freq = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        out.append(Filter(kind, freq, q or float(rng.uniform(0.7, 2.0)), float(rng.uniform(-eq_db, eq_db))))
    return out


def scramble_multitrack(
    ref_dir: str | Path,
    out_dir: str | Path,
    seed: int,
    fader_db: tuple[float, float] = (4.0, 10.0),
    pan: float = 0.6,
    eq_db: float = 6.0,
) -> dict:
    """Write ``out_dir/stems/<name>.wav``: each reference stem with a random EQ (`_eq_filters`,
    +-``eq_db`` dB), then a random balance pan (uniform in +-``pan``, the law of
    `plugin_bridge.graph.signal_flow.pan_to_stereo`), then a fader of ``fader_db[0]``..``fader_db[1]``
    dB of random sign baked in, and one common gain that keeps the loudest peak at or below
    `PEAK_DBFS` (stems as a user would have them: not past full scale; a common gain changes no
    relative level); ``out_dir/scramble.json`` holds what was drawn. Seeded by ``seed``; files are
    written atomically and the reference is only read. Returns the drawn ``{"seed",
    "common_gain_db", "stems": {name: {"gain_db", "pan", "filters"}}}``."""
    ref, out = Path(ref_dir), Path(out_dir)
    base = ref / "stems" if (ref / "stems").is_dir() else ref
    if out.resolve() == ref.resolve() or (out / "stems").resolve() == base.resolve():
        raise ParameterError(f"{out}: the scrambled copy must not go into the reference folder {ref}")
    stems, sr = read_stems(ref)
    rng = np.random.default_rng(seed)
    (out / "stems").mkdir(parents=True, exist_ok=True)
    drawn: dict[str, dict] = {}
    mixed: dict[str, np.ndarray] = {}
    for name, audio in stems.items():
        gain_db = float(rng.choice([-1.0, 1.0]) * rng.uniform(*fader_db))
        pan_value = float(rng.uniform(-pan, pan))
        filters = _eq_filters(rng, eq_db) if eq_db > 0 else []
        x = audio
        if filters:
            sos = np.concatenate([f.sos(sr) for f in filters])
            x = sosfilt(sos, x.astype(np.float64), axis=-1).astype(np.float32)
        mixed[name] = pan_to_stereo(x, pan_value, 10.0 ** (gain_db / 20.0))
        drawn[name] = {
            "gain_db": round(gain_db, 4),
            "pan": round(pan_value, 4),
            "filters": [
                {
                    "kind": f.kind,
                    "freq_hz": round(f.freq_hz, 1),
                    "q": round(f.q, 3),
                    "gain_db": round(f.gain_db, 3),
                }
                for f in filters
            ],
        }
    peak = max(float(np.max(np.abs(x))) for x in mixed.values())
    common_db = min(0.0, PEAK_DBFS - 20.0 * math.log10(peak)) if peak > 0 else 0.0
    for name, x in mixed.items():
        write_audio(out / "stems" / f"{name}.wav", x * np.float32(10.0 ** (common_db / 20.0)), sr)
    info = {"seed": seed, "reference": str(ref), "common_gain_db": round(common_db, 4), "stems": drawn}
    write_atomic(out / "scramble.json", json.dumps(info, indent=1))
    return info


def _lufs(audio: np.ndarray, sr: int) -> float:
    v = integrated_loudness(audio, sr)
    return max(v, FLOOR_LUFS) if math.isfinite(v) else FLOOR_LUFS


def _position(audio: np.ndarray) -> float:
    x = audio.astype(np.float64)
    return stereo_position(float(np.mean(x[0] ** 2)), float(np.mean(x[-1] ** 2)))


@dataclass
class Reference:
    """A reference multitrack measured once: its stems, ``loudness`` (LUFS) and ``position``
    (-1..1) per stem, the reference mix and its sample rate (Hz)."""

    stems: dict[str, np.ndarray]
    loudness: dict[str, float]
    position: dict[str, float]
    mix: np.ndarray
    sample_rate: int

    @classmethod
    def read(cls, folder: str | Path) -> Reference:
        """Read and measure the reference multitrack in ``folder``."""
        stems, sr = read_stems(folder)
        n = max(a.shape[1] for a in stems.values())
        mix = np.zeros((2, n), np.float64)
        for a in stems.values():
            mix[:, : a.shape[1]] += a
        return cls(
            stems,
            {k: _lufs(a, sr) for k, a in stems.items()},
            {k: _position(a) for k, a in stems.items()},
            mix.astype(np.float32),
            sr,
        )


def level_error_db(out_lufs: Mapping[str, float], ref_lufs: Mapping[str, float]) -> float:
    """Mean |d_i - mean(d)| (dB) over the tracks, d_i = ``out_lufs[i] - ref_lufs[i]`` (LUFS)."""
    d = np.array([out_lufs[k] - ref_lufs[k] for k in ref_lufs])
    return float(np.mean(np.abs(d - d.mean())))


def multitrack_metrics(processed: Mapping[str, np.ndarray], mix: np.ndarray | None, ref: Reference) -> dict:
    """Metrics (module docstring) of ``processed`` stems (``{name: (2, n)}``, every reference stem
    present) and their ``mix`` (None: the processed stems summed) against ``ref``."""
    missing = sorted(set(ref.stems) - set(processed))
    if missing:
        raise ParameterError(f"processed stems missing: {', '.join(missing)}")
    sr = ref.sample_rate
    out_lufs = {k: _lufs(processed[k], sr) for k in ref.stems}
    pan = float(np.mean([abs(_position(processed[k]) - ref.position[k]) for k in ref.stems]))
    if mix is None:
        mix = np.sum([processed[k][:, : ref.mix.shape[1]] for k in ref.stems], axis=0)
    n = min(mix.shape[1], ref.mix.shape[1])
    w = min(n, int(MIX_WINDOW_S * sr))
    a = (n - w) // 2
    audio = audio_metrics(np.asarray(mix[:, a : a + w], np.float32), ref.mix[:, a : a + w])
    return {"level_error_db": level_error_db(out_lufs, ref.loudness), "pan_error": pan, **audio}


def gains_to(stems: Mapping[str, np.ndarray], sr: int, levels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """``stems`` with gains that bring each sounding one to ``levels[name]`` LU relative to the mean
    of the stems' current loudness (so the mix keeps its level); silent stems unchanged."""
    loud = {k: integrated_loudness(a, sr) for k, a in stems.items()}
    live = [k for k, v in loud.items() if math.isfinite(v)]
    mean = float(np.mean([loud[k] for k in live])) if live else 0.0
    return {
        k: (a * np.float32(10.0 ** ((mean + levels[k] - loud[k]) / 20.0)) if k in live else a)
        for k, a in stems.items()
    }


def model_levels(stems: Mapping[str, np.ndarray], sr: int, model: StemModel) -> dict[str, float]:
    """The model's level (LU relative to the mean track) for each sounding stem (0 for silent)."""
    analyses = {k: analyse_track(a, sr) for k, a in stems.items()}
    live = [k for k, a in analyses.items() if not a.silent]
    out = dict.fromkeys(stems, 0.0)
    if live:
        pred = model.predict(np.stack([analyses[k].features for k in live]))
        out.update({k: float(v) for k, v in zip(live, pred.level_db, strict=True)})
    return out


def pipeline_mixer(balance: str, target: str | None = None) -> Mixer:
    """A row that runs the stems pipeline (`mix_stems` with ``balance``) on the scrambled stems and
    returns its processed stems and its ``mix.wav``."""

    def run(stems_dir: Path, out_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        mix_stems(stems_dir, out_dir, balance=balance, target=target)
        processed, _ = read_stems(out_dir / "stems")
        return processed, read_audio(out_dir / "mix.wav")[0]

    return run


@dataclass
class StemsResult:
    """Per-multitrack metrics by row (``rows[row] = [{"multitrack", "song", metrics...}]``), the
    summary and done-when checks by row, and the run time (s)."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    summary: dict[str, dict] = field(default_factory=dict)
    checks: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"summary": self.summary, "checks": self.checks, "rows": self.rows, "seconds": self.seconds}

    def table(self) -> str:
        """A Markdown table, one line per row."""
        lines = [
            "| row | level error dB | pan error | balance dB | MR-STFT | level better | balance closer | mix closer "
            "(balance and MR-STFT) | worse | worst (dB) | done when |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row, s in self.summary.items():
            check = self.checks.get(row, {})
            mark = (
                "-" if row == "as given" else ("met" if check.get("pass") else f"not met: {check.get('why')}")
            )
            lines.append(
                f"| {row} | {s['level_error_db']:.2f} | {s['pan_error']:.3f} | {s['balance_db']:.2f} | "
                f"{s['mrstft']:.3f} | {100 * s['level_improved']:.0f} % | {100 * s.get('balance_closer', 0.0):.0f} % | "
                f"{100 * s['closer']:.0f} % | "
                f"{100 * s['worse']:.0f} % | {s['worst_level_error_db']:.2f} ({s['worst']}) | {mark} |"
            )
        return "\n".join(lines)


def _closer_songs(items: list[dict], base: Mapping[str, dict]) -> float:
    """Share of songs whose mix, averaged over the song's multitracks, has a lower balance error
    AND a lower MR-STFT than the scrambled input's."""
    songs: dict[str, list[dict]] = {}
    for r in items:
        songs.setdefault(r["song"], []).append(r)
    closer = []
    for rs in songs.values():
        b = [base[r["multitrack"]] for r in rs]
        closer.append(
            all(np.mean([r[m] for r in rs]) < np.mean([x[m] for x in b]) for m in ("balance_db", "mrstft"))
        )
    return float(np.mean(closer))


def summarize(rows: Mapping[str, list[dict]]) -> tuple[dict, dict]:
    """Per row: mean metrics; ``level_improved`` (share whose level error is below the input's),
    ``closer`` (share whose mix balance AND MR-STFT are below the input's; ``closer_songs`` the
    same by song, metrics averaged over a song's multitracks), ``worse`` (share whose level error
    grew by more than `WORSE_DB`), the worst multitrack; and `done_when` per row (on
    multitracks, the stricter unit)."""
    base = {r["multitrack"]: r for r in rows["as given"]}
    summary: dict[str, dict] = {}
    for row, items in rows.items():
        if not items:
            continue
        b = [base[r["multitrack"]] for r in items]
        worst = int(np.argmax([r["level_error_db"] for r in items]))
        summary[row] = {
            "n": len(items),
            "songs": len({r["song"] for r in items}),
            **{
                m: float(np.mean([r[m] for r in items]))
                for m in ("level_error_db", "pan_error", "balance_db", "mrstft", "width_db")
            },
            "level_improved": float(
                np.mean([r["level_error_db"] < x["level_error_db"] for r, x in zip(items, b, strict=True)])
            ),
            "closer": float(
                np.mean(
                    [
                        r["balance_db"] < x["balance_db"] and r["mrstft"] < x["mrstft"]
                        for r, x in zip(items, b, strict=True)
                    ]
                )
            ),
            "balance_closer": float(
                np.mean([r["balance_db"] < x["balance_db"] for r, x in zip(items, b, strict=True)])
            ),
            "worse": float(
                np.mean(
                    [
                        r["level_error_db"] > x["level_error_db"] + WORSE_DB
                        for r, x in zip(items, b, strict=True)
                    ]
                )
            ),
            "closer_songs": _closer_songs(items, base),
            "worst_level_error_db": float(items[worst]["level_error_db"]),
            "worst": items[worst]["multitrack"],
        }
    equal = summary.get("equal loudness")
    checks = {row: done_when(s, equal) for row, s in summary.items() if row != "as given"}
    return summary, checks


def done_when(s: Mapping[str, float], equal: Mapping[str, float] | None) -> dict:
    """Issue 14's checks of one row's summary ``s``: mean level error <= `TARGET_LEVEL_DB`, below
    the equal-loudness row's, mix closer than the input on >= `TARGET_CLOSER` of multitracks.
    ``{"pass": bool, "why": str}`` (``why`` names the targets missed)."""
    parts = [
        (
            s["level_error_db"] <= TARGET_LEVEL_DB,
            f"level error {s['level_error_db']:.2f} dB (<= {TARGET_LEVEL_DB})",
        ),
        (s["closer"] >= TARGET_CLOSER, f"closer on {s['closer']:.0%} (>= {TARGET_CLOSER:.0%})"),
    ]
    if equal is not None and s is not equal:
        parts.append(
            (
                s["level_error_db"] < equal["level_error_db"],
                f"level error {s['level_error_db']:.2f} vs equal loudness {equal['level_error_db']:.2f} dB (<)",
            )
        )
    return {"pass": all(p for p, _ in parts), "why": "; ".join(w for p, w in parts if not p) or "all met"}


def evaluate_multitracks(
    ref_dirs: Sequence[str | Path],
    work_dir: str | Path,
    seed: int = 0,
    rows: Sequence[str] = ROWS,
    model: StemModel | None = None,
    mixers: Mapping[str, Mixer] | None = None,
    log: Callable[[str], None] | None = None,
) -> StemsResult:
    """Scramble every reference multitrack in ``ref_dirs`` (seed ``seed`` + its index) into
    ``work_dir/<name>/scrambled``, mix it by each of ``rows`` (the pipeline's outputs go to
    ``work_dir/<name>/<row>``) and measure (module docstring). ``mixers`` overrides or adds rows
    (``{row: mixer(scrambled_stems_dir, out_dir) -> (processed stems, mix)}``)."""
    t0 = time.perf_counter()
    work = Path(work_dir)
    model = model if model is not None or "model gains" not in rows else StemModel.load()
    runners: dict[str, Mixer] = {"rules": pipeline_mixer("rules"), "model": pipeline_mixer("model")}
    runners.update(mixers or {})
    result: dict[str, list[dict]] = {r: [] for r in rows}
    for i, ref_dir in enumerate(ref_dirs):
        ref_dir = Path(ref_dir)
        name = ref_dir.name
        song = name.split("__")[1] if name.count("__") >= 2 else name
        ref = Reference.read(ref_dir)
        scrambled_dir = work / name / "scrambled"
        scramble_multitrack(ref_dir, scrambled_dir, seed + i)
        stems, sr = read_stems(scrambled_dir)
        for row in rows:
            t = time.perf_counter()
            if row == "as given":
                processed, mix = stems, None
            elif row == "equal loudness":
                processed, mix = gains_to(stems, sr, dict.fromkeys(stems, 0.0)), None
            elif row == "model gains":
                processed, mix = gains_to(stems, sr, model_levels(stems, sr, model)), None
            elif row in runners:
                processed, mix = runners[row](scrambled_dir / "stems", work / name / row.replace(" ", "_"))
            else:
                raise ParameterError(f"unknown row {row!r}; valid: {', '.join(ROWS)}")
            metrics = multitrack_metrics(processed, mix, ref)
            result[row].append(
                {"multitrack": name, "song": song, **metrics, "seconds": time.perf_counter() - t}
            )
        if log is not None:
            log(
                f"[{i + 1}/{len(ref_dirs)}] {name}: "
                + ", ".join(f"{r} {result[r][-1]['level_error_db']:.2f} dB" for r in rows)
            )
    summary, checks = summarize(result)
    return StemsResult(result, summary, checks, time.perf_counter() - t0)
