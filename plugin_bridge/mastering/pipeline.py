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

Streaming: the pipeline works on signals read block by block (`plugin_bridge.mastering.streaming`,
65536 samples): one pass for the checks (clipping runs carried across blocks, channel means), the
DC high-pass forward and backward through a float32 store (the zero-phase filter needs the whole
signal: in a temporary file for `master_file`, so its intermediate values are float32 where
`remove_dc` keeps float64, a difference of ~1e-7 of full scale), one pass measuring the K-weighted
power and true-peak envelope into stores, gain predictions streamed from those stores, and each
render streamed through `BlockLimiter` into the output while it is measured. `master_array` runs
the same code with its stores in memory, so a float32 file mastered by `master_file` gives exactly
`master_array`'s samples. Memory of `master_file` is a few blocks whatever the song's length (a
3-minute song: ~180 MB resident, mostly the interpreter and libraries; disk: 4 bytes per sample
and channel per store, up to four stores); each pass re-reads the file or a store.

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
from pathlib import Path

import numpy as np

from ..audio_io import AtomicAudioWriter, check_audio_array, check_output_path
from ..errors import ParameterError
from ..files import work_folder_beside
from ..loudness import amplitude_to_db, is_shorter_than_block
from ..progress import Progress, no_progress
from .checks import ClippingCounter, remove_dc_into
from .loudness_search import normalize_stream
from .reference import MatchReport, match_signal
from .settings import MasterSettings
from .streaming import ArraySignal, DiskStore, FileSignal, LoudnessMeter, MemoryStore, TruePeakMeter
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


def _check_input(source, sample_rate: int, settings: MasterSettings, msg: _Messages, new_store):
    """Stage 1: clipping, DC offset, mono and short-file notes, in one pass over the input.

    Returns the signal to master (the input, or a float32 store with the DC removed) and whether
    the input holds anything but digital silence.
    """
    clip = ClippingCounter(source.channels, settings.clip_run)
    sums = np.zeros(source.channels)
    sound = False
    for block in source.blocks():
        clip.process(block)
        sums += block.sum(axis=1, dtype=np.float64)
        sound = sound or bool(np.any(block))
    clip = clip.result()
    if clip.runs:
        msg.warn(
            f"clipping detected: {clip.runs} runs of {settings.clip_run} or more identical full-scale "
            f"samples (longest {clip.longest}); the mix was clipped before mastering, which cannot undo it"
        )
    means = sums / source.frames
    x = source
    if np.abs(means).max() >= settings.dc_threshold:
        msg.warn(
            f"DC offset of {100 * np.abs(means).max():.2f}% of full scale removed (high-pass at 5 Hz, zero phase)"
        )
        x = remove_dc_into(source, sample_rate, means, new_store(source.channels, source.frames))
    if source.channels == 1:
        msg.note("mono: measured as one channel (BS.1770, not dual mono) and written as mono")
    if is_shorter_than_block(source.frames, sample_rate):
        msg.warn(
            f"the audio is {1000 * source.frames / sample_rate:.3g} ms long, shorter than one 400 ms "
            "loudness block: its loudness is measured ungated over the whole file"
        )
    return x, sound


def _measure(x, sample_rate: int, new_store=None):
    """One pass: the loudness (LUFS, ungated below the gate), true peak (linear) and, with
    ``new_store``, stores of the K-weighted power and true-peak envelope (``(1, frames)`` each)."""
    meter, peaks = LoudnessMeter(sample_rate, x.channels, x.frames), TruePeakMeter(x.channels)
    power = envelope = None
    if new_store is not None:
        power, envelope = new_store(1, x.frames), new_store(1, x.frames)
    for block in x.blocks():
        p, env = meter.process(block), peaks.process(block)
        if new_store is not None:
            power.append(p[None])
            envelope.append(env[None])
    env = peaks.flush()
    if new_store is not None:
        envelope.append(env[None])
    return meter, peaks.peak, power, envelope


def _reference_target(reference, reference_sample_rate: int, ceiling_dbtp: float | None) -> LoudnessTarget:
    meter = LoudnessMeter(reference_sample_rate, reference.channels, reference.frames)
    for block in reference.blocks():
        meter.process(block)
    ref_lufs = meter.loudness()
    if not math.isfinite(ref_lufs):
        raise ParameterError("reference: is silent (no loudness to match)")
    ref_lufs = min(max(ref_lufs, LUFS_RANGE[0]), LUFS_RANGE[1])
    return resolve_target(LoudnessTarget("reference", round(ref_lufs, 2), -1.0), ceiling_dbtp=ceiling_dbtp)


def _master(
    source,
    sample_rate: int,
    target,
    reference,
    reference_sample_rate: int | None,
    lufs: float | None,
    ceiling_dbtp: float | None,
    settings: MasterSettings | None,
    new_store,
    new_sink,
    progress: Progress = no_progress,
):
    """The pipeline on signals (`plugin_bridge.mastering.streaming`): both `master_array` and `master_file`.

    ``new_store(channels, frames)`` makes a float32 store (in memory or on disk); ``new_sink()``
    an object with ``append(block)`` and ``close()`` (returning the output) for each render.
    Returns the output of the last render and the `MasterResult`.
    """
    t0 = time.perf_counter()
    settings = settings or MasterSettings()
    msg = _Messages()
    match = None
    ref_sr = reference_sample_rate or sample_rate
    if reference is not None and target is None and lufs is None:
        goal = _reference_target(reference, ref_sr, ceiling_dbtp)
    else:
        goal = resolve_target(target, lufs, ceiling_dbtp)
    x, sound = _check_input(source, sample_rate, settings, msg, new_store)
    progress("checked")

    def result(y, out_lufs: float, out_tp: float, gain: float, lim: float, its: int, ok: bool):
        return y, MasterResult(
            target=goal,
            sample_rate=int(sample_rate),
            channels=int(x.channels),
            frames=int(x.frames),
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

    if not sound:
        in_lufs = in_tp = -math.inf
        msg.warn("the input is digital silence: nothing to master, written unchanged")
        sink = new_sink()
        for block in x.blocks():
            sink.append(block)
        return result(sink.close(), -math.inf, -math.inf, 0.0, 0.0, 0, False)
    meter, peak, power, env = _measure(x, sample_rate, None if reference is not None else new_store)
    progress("measured")
    in_lufs, in_tp = meter.loudness(), amplitude_to_db(peak)
    if not math.isfinite(in_lufs):
        in_lufs = meter.ungated()  # `short_loudness`'s rule
        msg.warn(f"the input is below the -70 LUFS gate: measured ungated at {in_lufs:.1f} LUFS")
    if in_lufs > goal.lufs + LOUDNESS_TOLERANCE_LU:
        msg.note(f"the input is {in_lufs - goal.lufs:.1f} LU louder than the target: turned down")
    work_lufs = in_lufs
    if reference is not None:
        x, match = match_signal(x, sample_rate, reference, ref_sr, new_store)
        progress("matched to the reference")
        for n in match.notes:
            msg.note(n)
        meter, _, power, env = _measure(x, sample_rate, new_store)
        work_lufs = meter.loudness()
        if not math.isfinite(work_lufs):
            work_lufs = meter.ungated()
    margin = settings.safety_margin_db
    for _ in range(4):
        out, step = normalize_stream(x, sample_rate, goal, work_lufs, env, power, new_sink, settings, margin)
        out_tp = out.true_peak_dbtp
        if out_tp <= goal.ceiling_dbtp:
            break
        margin += out_tp - goal.ceiling_dbtp + 0.02
        msg.note(f"true peak {out_tp:.2f} dBTP over the ceiling: limiting again {margin:.2f} dB lower")
    progress("rendered")
    if step.capped_by == "make-up":
        msg.warn(
            f"the input is very quiet: make-up gain capped at +{settings.max_makeup_db:g} dB, "
            f"so the master is {step.lufs:.1f} LUFS instead of {goal.lufs:g}"
        )
    elif step.capped_by == "limiter":
        msg.warn(
            f"reaching {goal.lufs:g} LUFS would need more than {settings.max_limiting_db:g} dB of peak "
            f"limiting (audible distortion): limiting capped there, the master is {step.lufs:.1f} LUFS "
            f"(allow more with --max-limiting DB)"
        )
    ok = abs(step.lufs - goal.lufs) <= LOUDNESS_TOLERANCE_LU and out_tp <= goal.ceiling_dbtp
    return result(out.output, step.lufs, out_tp, step.gain_db, step.limiting_db, step.iterations, ok)


class _MemorySink(MemoryStore):
    def close(self) -> np.ndarray:
        return self.array


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
    progress: Progress = no_progress,
) -> tuple[np.ndarray, MasterResult]:
    """Master ``(channels, samples)`` audio at ``sample_rate`` Hz to a loudness target.

    ``target`` is a preset name (streaming, apple, ebu_r128, club) or a `LoudnessTarget`; ``lufs``
    and ``ceiling_dbtp`` make or adjust a custom one (`resolve_target`). With a ``reference``
    (audio at ``reference_sample_rate``, default ``sample_rate``) its width and spectrum are matched
    first (`match_reference`) and, unless a target or ``lufs`` is given, its integrated loudness
    becomes the target (ceiling -1 dBTP or ``ceiling_dbtp``). Returns the master (float32, same
    shape) and a `MasterResult`; warnings are also logged. The same pipeline as `master_file`,
    with its stores in memory: the same numbers for the same float32 samples. ``progress`` is
    called with a label after each stage (`plugin_bridge.progress`).
    """
    x = ArraySignal(check_audio_array(audio, sample_rate))
    ref = None
    if reference is not None:
        ref = ArraySignal(check_audio_array(reference, reference_sample_rate or sample_rate, "reference"))
    return _master(
        x,
        sample_rate,
        target,
        ref,
        reference_sample_rate,
        lufs,
        ceiling_dbtp,
        settings,
        MemoryStore,
        lambda: _MemorySink(x.channels, x.frames),
        progress,
    )


class _FileSink:
    """A render written to ``path`` (`AtomicAudioWriter`: complete or absent)."""

    def __init__(self, path: Path, sample_rate: int, channels: int, subtype: str | None) -> None:
        self.path = path
        self.writer = AtomicAudioWriter(path, sample_rate, channels, subtype)
        self.writer.__enter__()

    def append(self, block: np.ndarray) -> None:
        self.writer.write(block)

    def close(self) -> Path:
        self.writer.__exit__(None, None, None)
        return self.path


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
    progress: Progress = no_progress,
) -> MasterResult:
    """Master an audio file to ``output_path`` (.wav 32-bit float or .flac 24-bit unless ``subtype``).

    Same targets, reference rule and numbers as `master_array`; ``reference`` is an audio file.
    Streamed: the input and reference are read block by block (several passes), the signal's
    intermediate forms (DC removed, reference-matched), its K-weighted power and true-peak
    envelope are kept in temporary float32 files in the output's folder, so memory does not grow
    with the length of the song (disk does: 4 bytes per sample and channel per store). The output
    is written atomically and never over the input or the reference (`AudioError`).
    """
    inputs = (input_path,) + ((reference,) if reference is not None else ())
    out = check_output_path(output_path, inputs)
    source = FileSignal(input_path, downmix)
    ref = FileSignal(reference, downmix=True) if reference is not None else None
    stores: list[DiskStore] = []
    with work_folder_beside(out, "master") as work:
        renders = iter(range(1 << 30))

        def new_store(channels: int, frames: int) -> DiskStore:
            stores.append(DiskStore(Path(work) / f"store{len(stores)}.f32", channels, frames))
            return stores[-1]

        def new_sink() -> _FileSink:
            path = Path(work) / f"render{next(renders)}{out.suffix}"
            return _FileSink(path, source.sample_rate, source.channels, subtype)

        try:
            rendered, res = _master(
                source,
                source.sample_rate,
                target,
                ref,
                ref.sample_rate if ref is not None else None,
                lufs,
                ceiling_dbtp,
                settings,
                new_store,
                new_sink,
                progress,
            )
            os.replace(rendered, out)
        finally:
            for store in stores:
                store.close()
    return replace(res, output=str(out))
