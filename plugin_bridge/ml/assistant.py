"""The AI's decision for one song: every parameter of the default chain, and why.

- **EQ and width**: a model's corrective moves (`plugin_bridge.ml.inference.song_moves`), each made
  in proportion to its confidence and scaled by the user's ``intensity`` (0 = mastering only).
- **Input gain** (a measurement, not a guess): brings the song's integrated loudness to
  `INPUT_TARGET_LUFS` before the compressor, so the compressor rule works on a known level.
- **Compressor**: the documented rule of `plugin_bridge.ml.dynamics` (moves a song's
  peak-to-loudness ratio toward the corpus median, never below the corpus' 10th percentile; bypassed
  for songs already as dense as typical finished music), scaled by ``intensity`` too.
- **Reverb, delay, output gain**: off / 0 dB unless the user asks for them (a corrective assistant
  does not add time effects; the mastering stage sets the final loudness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..chain import default_space
from ..loudness import integrated_loudness, is_shorter_than_block
from ..mastering.streaming import ArraySignal, LoudnessMeter, read_span
from .dynamics import CompressorChoice, LoudestExcerpt, compressor_rule_excerpt, load_dynamics, preroll_start
from .features import SongClips, features_of_clips
from .inference import EnsembleModel, Moves, OnnxModel, check_intensity, load_model, song_moves

#: Loudness (LUFS) the input gain brings a song to before the compressor.
INPUT_TARGET_LUFS = -18.0


@dataclass
class Proposal:
    """What the assistant proposes for a song: the chain ``values`` (real units), the model's
    ``moves``, the ``compressor`` rule's choice, the measured ``input_gain_db`` and ``notes``."""

    model: str
    values: dict[str, float]
    moves: Moves
    compressor: CompressorChoice | None
    input_gain_db: float
    intensity: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form (the report's ``decisions``)."""
        comp = None
        if self.compressor is not None:
            c = self.compressor
            comp = {
                "values": c.values,
                "plr_before_db": _num(c.plr_before),
                "plr_after_db": _num(c.plr_after),
                "target_plr_db": _num(c.target),
                "reason": c.reason,
            }
        return {
            "model": self.model,
            "intensity": self.intensity,
            "input_gain_db": round(self.input_gain_db, 2),
            "moves": self.moves.to_dict()["moves"],
            "compressor": comp,
            "notes": self.notes,
        }


def _num(v: float) -> float | None:
    return round(float(v), 2) if math.isfinite(v) else None


def gain_to_input_target(lufs: float) -> float:
    """The input gain (dB, within the chain's range) that brings a song measured at ``lufs`` to
    `INPUT_TARGET_LUFS` (0 dB when the loudness is not finite: silent or unmeasurable)."""
    if not math.isfinite(lufs):
        return 0.0
    spec = default_space().spec("input.gain_db")
    return float(np.clip(INPUT_TARGET_LUFS - lufs, spec.min, spec.max))


def input_gain_db(audio: np.ndarray, sample_rate: int) -> float:
    """The gain (dB, within the chain's range) that brings ``audio`` to `INPUT_TARGET_LUFS`
    (0 dB for audio too short or too quiet to measure)."""
    try:
        lufs = float(integrated_loudness(audio, sample_rate))
    except Exception:  # too short to gate
        return 0.0
    return gain_to_input_target(lufs)


@dataclass(frozen=True)
class Analysis:
    """What the assistant measures of a song once, whatever the model: the clip features
    (``patch``, ``glob``), the measured ``input_gain_db`` and the compressor rule's ``compressor``
    choice at ``intensity`` (None at intensity 0); ``input_lufs``, the song's integrated loudness
    (LUFS; -inf for audio too short to gate)."""

    patch: np.ndarray
    glob: np.ndarray
    input_gain_db: float
    compressor: CompressorChoice | None
    intensity: float
    input_lufs: float = -math.inf


def analyse(audio: np.ndarray, sample_rate: int, intensity: float = 1.0) -> Analysis:
    """Measure ``audio`` ``(channels, n)`` at ``sample_rate`` Hz for `propose` at ``intensity``:
    one analysis serves every model (``mix --model all``)."""
    return analyse_signal(ArraySignal(np.asarray(audio, dtype=np.float32)), sample_rate, intensity)


def analyse_signal(signal, sample_rate: int, intensity: float = 1.0) -> Analysis:
    """`analyse` of a signal (`plugin_bridge.mastering.streaming`: an array or a file read block by
    block): one pass measures the loudness, picks the analysis clips and the loudest excerpt,
    keeping only those; a second, partial read takes the excerpt for the compressor rule. Memory
    does not grow with the song's length."""
    intensity = check_intensity(intensity)
    frames = signal.frames
    if frames == 0:
        raise ValueError("cannot analyse empty audio")
    meter = LoudnessMeter(sample_rate, signal.channels, frames)
    clips = SongClips(frames, sample_rate)
    loudest = LoudestExcerpt(frames, sample_rate)
    for block in signal.blocks():
        meter.process(block)
        clips.feed(block)
        loudest.feed(block)
    lufs = -math.inf if is_shorter_than_block(frames, sample_rate) else float(meter.loudness())
    gain = gain_to_input_target(lufs)
    patch, glob = features_of_clips(clips.clips())
    comp = None
    if intensity > 0.0:
        start, stop = loudest.span()
        pre = preroll_start(start, sample_rate)
        excerpt = read_span(signal, pre, stop)
        comp = compressor_rule_excerpt(excerpt, start - pre, sample_rate, gain, load_dynamics(), intensity)
    return Analysis(patch, glob, gain, comp, intensity, lufs)


def propose(
    audio: np.ndarray | None,
    sample_rate: int,
    model: str | OnnxModel | EnsembleModel = "ensemble",
    intensity: float = 1.0,
    analysis: Analysis | None = None,
) -> Proposal:
    """The assistant's proposal for ``audio`` ``(channels, n)`` at ``sample_rate`` Hz with ``model``
    (a name or a loaded model) at ``intensity`` (0..1; see the module docstring). ``analysis``
    (`analyse` of the same audio at the same intensity) saves measuring the song again (``audio``
    may then be None)."""
    intensity = check_intensity(intensity)
    if analysis is None:
        analysis = analyse(audio, sample_rate, intensity)
    elif analysis.intensity != intensity:
        raise ValueError(
            f"analysis made at intensity {analysis.intensity:g}, proposal asked at {intensity:g}"
        )
    m = load_model(model) if isinstance(model, str) else model
    space = default_space()
    moves = song_moves(m, analysis.patch, analysis.glob, intensity)
    values = dict(space.defaults())
    values.update(m.rule_values)
    values["input.gain_db"] = analysis.input_gain_db
    notes = ["reverb and delay are off: a corrective mix adds no time effects (set them in the recipe)"]
    if analysis.compressor is not None:
        values.update(analysis.compressor.values)
    else:
        notes.append("intensity 0: no corrective moves and no compression; mastering only")
    for name, v in moves.values().items():
        spec = space.spec(name)
        values[name] = float(np.clip(v, spec.min, spec.max))
    return Proposal(m.name, values, moves, analysis.compressor, analysis.input_gain_db, intensity, notes)
