"""The mastering pipeline: meet a loudness target under a true-peak ceiling, optionally match a reference, report.

The pipeline is a row of stage functions with plain inputs and outputs (matchering's shape):

1. **check** the input (`plugin_bridge.mastering.checks`): digital silence, files under 400 ms, mono, DC offset (removed by a 5 Hz
   high-pass), clipping (runs of identical full-scale samples), each said in a warning or a note;
2. **match a reference** (optional, `plugin_bridge.mastering.reference.match_reference`): stereo width (side/mid energy), the
   loudness-normalised 1/3-octave-smoothed average spectrum (a linear-phase FIR) and loudness;
3. **loudness and true peak** (`plugin_bridge.mastering.loudness_search.normalize_loudness`): a gain, then an oversampled true-peak
   limiter (`plugin_bridge.mastering.limiter`), until the integrated loudness (ITU-R BS.1770-4) of the rendered
   result is within 0.1 LU of the target, with the make-up gain capped (+30 dB) and the limiter's
   gain reduction capped (6 dB: more is audible distortion); when a cap stops it the target is not
   reached and a warning says so. The gain is searched on a prediction (the input's K-weighted
   power times the squared gain curve: no filtering, no rendering), then rendered and measured;
   a miss corrects the prediction and searches again. The limiter holds the true peak 0.15 dB
   under the ceiling (meters disagree by about that much on bright, limited material);
4. **verify**: the true peak of the result must be at or below the ceiling; if not, stage 3 runs
   again with the ceiling lowered by the excess plus 0.02 dB.

Cost (3-minute stereo song, one core): the two true-peak readings (input and result, 8x
oversampled by FFT) are about half of it, the K-weighting filters of input and result and the DC
high-pass (when needed) most of the rest; the input's loudness, envelope and K-weighted power
are measured once and reused. The signal is held in float32 (the master is float32 anyway) and
the passes work block by block, because fresh full-length arrays cost as much as the arithmetic.

True peaks are read 8x oversampled with a long interpolation filter
(`plugin_bridge.loudness.true_peak_envelope`): BS.1770-4 asks for at least 4x, but at 4x a peak of
content near Nyquist can fall between the points, and ffmpeg's meter then reads up to 0.2 dB above
a ceiling held at 4x; at 8x the reading has converged (8x and 16x agree within 0.001 dB on our
test material).

Loudness targets: `plugin_bridge.mastering.targets` (the shipped table and custom pairs). The result promises the integrated loudness
within `LOUDNESS_TOLERANCE_LU` (0.5 LU) of the target and the true peak at or below the ceiling,
unless a cap stopped it (``MasterResult.reached`` is then False and a warning explains why).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from ..audio_io import check_audio_array, check_output_path, read_audio, write_audio
from ..errors import ParameterError
from ..loudness import (
    amplitude_to_db,
    integrated_loudness,
    is_shorter_than_block,
    k_weighted_power,
    loudness_from_power,
    power_to_lufs,
    true_peak,
    true_peak_envelope,
)
from .checks import detect_clipping, remove_dc
from .loudness_search import normalize_loudness
from .reference import MatchReport, match_reference
from .settings import MasterSettings
from .targets import LOUDNESS_TOLERANCE_LU, LUFS_RANGE, LoudnessTarget, resolve_target

log = logging.getLogger(__name__)


class _Messages:
    """Warnings (something the musician should act on) and notes (what was done), also logged."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning(text)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)


@dataclass(frozen=True)
class MasterResult:
    """What mastering did and measured (loudness in LUFS, peaks in dBTP, gains in dB)."""

    target: LoudnessTarget
    sample_rate: int
    channels: int
    frames: int
    input_lufs: float
    input_true_peak_dbtp: float
    output_lufs: float
    output_true_peak_dbtp: float
    gain_db: float
    limiting_db: float
    iterations: int
    reached: bool
    seconds: float
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reference: MatchReport | None = None
    output: str | None = None

    @property
    def realtime_factor(self) -> float:
        """Audio seconds mastered per wall-clock second."""
        return (self.frames / self.sample_rate) / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        """JSON-ready summary (rounded; non-finite values become None)."""

        def num(v: float, nd: int = 2) -> float | None:
            return round(float(v), nd) if math.isfinite(v) else None

        return {
            "output": self.output,
            "target": self.target.to_dict(),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration_s": round(self.frames / self.sample_rate, 3),
            "input_lufs": num(self.input_lufs),
            "input_true_peak_dbtp": num(self.input_true_peak_dbtp),
            "output_lufs": num(self.output_lufs),
            "output_true_peak_dbtp": num(self.output_true_peak_dbtp),
            "gain_db": num(self.gain_db),
            "limiting_db": num(self.limiting_db),
            "iterations": self.iterations,
            "reached": self.reached,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "reference": self.reference.to_dict() if self.reference else None,
        }


def _check_input(x: np.ndarray, sample_rate: int, settings: MasterSettings, msg: _Messages) -> np.ndarray:
    """Stage 1: clipping, DC offset, mono and short-file notes. Returns float32 audio (DC removed).

    float32 is what the master is made of: the limiter multiplies the float32-rounded audio by the
    float32-rounded gain, so holding the input in float64 would change nothing but the memory.
    """
    clip = detect_clipping(x, settings.clip_run)
    if clip.runs:
        msg.warn(
            f"clipping detected: {clip.runs} runs of {settings.clip_run} or more identical full-scale "
            f"samples (longest {clip.longest}); the mix was clipped before mastering, which cannot undo it"
        )
    dc = np.abs(x.mean(axis=1))  # float32, pairwise: accurate to ~1e-7 of full scale
    if dc.max() >= settings.dc_threshold:
        msg.warn(f"DC offset of {100 * dc.max():.2f}% of full scale removed (high-pass at 5 Hz, zero phase)")
        x = remove_dc(x, sample_rate).astype(np.float32)
    if x.shape[0] == 1:
        msg.note("mono: measured as one channel (BS.1770, not dual mono) and written as mono")
    if is_shorter_than_block(x.shape[1], sample_rate):
        msg.warn(
            f"the audio is {1000 * x.shape[1] / sample_rate:.3g} ms long, shorter than one 400 ms "
            "loudness block: its loudness is measured ungated over the whole file"
        )
    return x


def master_array(
    audio: np.ndarray,
    sample_rate: int,
    target: str | LoudnessTarget | None = None,
    reference: np.ndarray | None = None,
    reference_sample_rate: int | None = None,
    *,
    lufs: float | None = None,
    ceiling_dbtp: float | None = None,
    settings: MasterSettings | None = None,
) -> tuple[np.ndarray, MasterResult]:
    """Master ``(channels, samples)`` audio at ``sample_rate`` Hz to a loudness target.

    ``target`` is a preset name (streaming, apple, ebu_r128, club) or a `LoudnessTarget`; ``lufs``
    and ``ceiling_dbtp`` make or adjust a custom one (`resolve_target`). With a ``reference``
    (audio at ``reference_sample_rate``, default ``sample_rate``) its width and spectrum are matched
    first (`match_reference`) and, unless a target or ``lufs`` is given, its integrated loudness
    becomes the target (ceiling -1 dBTP or ``ceiling_dbtp``). Returns the master (float32, same
    shape) and a `MasterResult`; warnings are also logged.
    """
    t0 = time.perf_counter()
    settings = settings or MasterSettings()
    x = check_audio_array(audio, sample_rate)
    msg = _Messages()
    match = None
    if reference is not None and target is None and lufs is None:
        ref_sr = reference_sample_rate or sample_rate
        ref_lufs = integrated_loudness(check_audio_array(reference, ref_sr, "reference"), ref_sr)
        if not math.isfinite(ref_lufs):
            raise ParameterError("reference: is silent (no loudness to match)")
        ref_lufs = min(max(ref_lufs, LUFS_RANGE[0]), LUFS_RANGE[1])
        goal = resolve_target(
            LoudnessTarget("reference", round(ref_lufs, 2), -1.0), ceiling_dbtp=ceiling_dbtp
        )
    else:
        goal = resolve_target(target, lufs, ceiling_dbtp)
    x = _check_input(x, sample_rate, settings, msg)
    power = k_weighted_power(x, sample_rate, dtype=np.float32)  # measured once, reused by the gain search
    in_lufs = loudness_from_power(power, sample_rate)
    env = true_peak_envelope(x, dtype=np.float32)
    in_tp = amplitude_to_db(float(env.max()))

    def result(y: np.ndarray, out_lufs: float, out_tp: float, gain: float, lim: float, its: int, ok: bool):
        return y.astype(np.float32, copy=False), MasterResult(
            target=goal,
            sample_rate=int(sample_rate),
            channels=int(y.shape[0]),
            frames=int(y.shape[1]),
            input_lufs=in_lufs,
            input_true_peak_dbtp=in_tp,
            output_lufs=out_lufs,
            output_true_peak_dbtp=out_tp,
            gain_db=gain,
            limiting_db=lim,
            iterations=its,
            reached=ok,
            seconds=time.perf_counter() - t0,
            warnings=tuple(msg.warnings),
            notes=tuple(msg.notes),
            reference=match,
        )

    if not np.any(x):
        msg.warn("the input is digital silence: nothing to master, written unchanged")
        return result(x.copy(), -math.inf, -math.inf, 0.0, 0.0, 0, False)
    if not math.isfinite(in_lufs):
        in_lufs = float(power_to_lufs(np.mean(power, dtype=np.float64)))  # `short_loudness`'s rule
        msg.warn(f"the input is below the -70 LUFS gate: measured ungated at {in_lufs:.1f} LUFS")
    if in_lufs > goal.lufs + LOUDNESS_TOLERANCE_LU:
        msg.note(f"the input is {in_lufs - goal.lufs:.1f} LU louder than the target: turned down")
    work_lufs = in_lufs
    if reference is not None:
        x, match = match_reference(x, sample_rate, reference, reference_sample_rate or sample_rate)
        for n in match.notes:
            msg.note(n)
        x = x.astype(np.float32)
        power = k_weighted_power(x, sample_rate, dtype=np.float32)
        work_lufs = loudness_from_power(power, sample_rate)
        if not math.isfinite(work_lufs):
            work_lufs = float(power_to_lufs(np.mean(power, dtype=np.float64)))
        env = true_peak_envelope(x, dtype=np.float32)
    margin = settings.safety_margin_db
    for _ in range(4):
        y, step = normalize_loudness(x, sample_rate, goal, work_lufs, settings, env, margin, power)
        out_tp = amplitude_to_db(true_peak(y))
        if out_tp <= goal.ceiling_dbtp:
            break
        margin += out_tp - goal.ceiling_dbtp + 0.02
        msg.note(f"true peak {out_tp:.2f} dBTP over the ceiling: limiting again {margin:.2f} dB lower")
    if step.capped_by == "make-up":
        msg.warn(
            f"the input is very quiet: make-up gain capped at +{settings.max_makeup_db:g} dB, "
            f"so the master is {step.lufs:.1f} LUFS instead of {goal.lufs:g}"
        )
    elif step.capped_by == "limiter":
        msg.warn(
            f"reaching {goal.lufs:g} LUFS would need more than {settings.max_limiting_db:g} dB of peak "
            f"limiting (audible distortion): limiting capped there, the master is {step.lufs:.1f} LUFS"
        )
    ok = abs(step.lufs - goal.lufs) <= LOUDNESS_TOLERANCE_LU and out_tp <= goal.ceiling_dbtp
    return result(y, step.lufs, out_tp, step.gain_db, step.limiting_db, step.iterations, ok)


def master_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    target: str | LoudnessTarget | None = None,
    reference: str | os.PathLike | None = None,
    *,
    lufs: float | None = None,
    ceiling_dbtp: float | None = None,
    subtype: str | None = None,
    downmix: bool = False,
    settings: MasterSettings | None = None,
) -> MasterResult:
    """Master an audio file to ``output_path`` (.wav 32-bit float or .flac 24-bit unless ``subtype``).

    Same targets and reference rule as `master_array`; ``reference`` is an audio file. The output
    is written atomically and never over the input or the reference (`AudioError`).
    """
    inputs = (input_path,) + ((reference,) if reference is not None else ())
    out = check_output_path(output_path, inputs)
    audio, sr = read_audio(input_path, downmix=downmix)
    ref = ref_sr = None
    if reference is not None:
        ref, ref_sr = read_audio(reference, downmix=True)
    y, res = master_array(
        audio, sr, target, ref, ref_sr, lufs=lufs, ceiling_dbtp=ceiling_dbtp, settings=settings
    )
    write_audio(out, y, sr, subtype=subtype)
    return replace(res, output=str(out))
