"""The mix job, written once: read -> analyse -> predict -> render -> master -> write -> recipe -> exports.

Every front end runs these stages: `mix_song` (``plugin-bridge mix``), batch items
(`plugin_bridge.batch.jobs`), `render_recipe` (``plugin-bridge render --recipe``); a stems mix and
the web app are to call them too. The choices every front end shares are made here, once:

- renders keep the effects' tails (`RENDER_TAIL`): a reverb or delay rings out instead of being cut
  off. The AI's default chain has its reverb and delay off, so its mixes keep the input's length;
- a recipe records the real values the render used (its vector is their normalized form), the model
  that chose them and the mastering step, so ``render --recipe`` reproduces the mastered file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .audio_io import check_audio_array, check_output_path, read_audio, write_audio
from .backends import get_backend
from .chain import DEFAULT_CHAIN, default_space, load_chain
from .errors import FormatError, ParameterError
from .export import export_recipe
from .export.plugin_slots import restore_slots, unbound_plugins
from .export.recipe import PluginState, Recipe, load_recipe, master_entry, recipe_from_chain, session_of
from .files import work_folder_beside
from .graph import render_session, render_session_array
from .loudness import integrated_loudness, is_shorter_than_block
from .mastering import LoudnessTarget, MasterResult, MasterSettings, master_array, master_file
from .mastering.streaming import ArraySignal, FileSignal, LoudnessMeter, TruePeakMeter, to_array
from .ml.assistant import Analysis, Proposal, analyse_signal, propose
from .ml.preference import TasteModel, taste_features_signal
from .render import render_array, render_file

#: What the stages take as a song: an in-memory array or a file read block by block
#: (`plugin_bridge.mastering.streaming`'s signals, with the ``sample_rate`` they were opened at).
Song = ArraySignal | FileSignal

#: Renders keep effect tails (reverb, delay) in every front end.
RENDER_TAIL = True


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


def load_song(
    song: str | os.PathLike | np.ndarray, sample_rate: int | None = None, downmix: bool = False
) -> tuple[np.ndarray, int]:
    """Read stage, whole: ``(audio (channels, n) float32, sample rate Hz)`` from a file or a checked
    array. `open_song` reads a file block by block instead (memory bounded)."""
    if isinstance(song, np.ndarray):
        if sample_rate is None:
            raise ParameterError("an audio array needs its sample_rate")
        return check_audio_array(song, sample_rate), int(sample_rate)
    return read_audio(song, downmix)


def open_song(
    song: str | os.PathLike | np.ndarray, sample_rate: int | None = None, downmix: bool = False
) -> Song:
    """Read stage, streamed: a checked array as an `ArraySignal`, a file as a `FileSignal` (its header
    checked now, every block as it is read: a corrupt block raises `AudioError` naming the file and
    frame). Either has ``sample_rate`` (Hz). ``downmix`` folds files of more than two channels."""
    if isinstance(song, np.ndarray):
        audio, sr = load_song(song, sample_rate)
        signal = ArraySignal(audio)
        signal.sample_rate = sr
        return signal
    return FileSignal(song, downmix)


def as_song(audio: np.ndarray | Song, sample_rate: int) -> Song:
    """``audio`` as a `Song` (an array is wrapped, a signal returned as it is)."""
    if isinstance(audio, ArraySignal | FileSignal):
        return audio
    return open_song(audio, sample_rate)


def measure_song(song: Song, sample_rate: int) -> tuple[float, float]:
    """One pass: the song's integrated loudness (LUFS; -inf when too short to gate) and true peak (dBTP)."""
    meter, peaks = LoudnessMeter(sample_rate, song.channels, song.frames), TruePeakMeter(song.channels)
    for block in song.blocks():
        meter.process(block)
        peaks.process(block)
    peaks.flush()
    loud = -math.inf if is_shorter_than_block(song.frames, sample_rate) else float(meter.loudness())
    return loud, 20.0 * math.log10(peaks.peak) if peaks.peak > 0 else -math.inf


@dataclass(frozen=True)
class Choice:
    """The chain and its parameters for one song: real ``values`` (what renders), the normalized
    ``vector``, the ``model`` that chose them (None for given values) and, for a model's choice,
    the assistant's ``proposal`` (each move with its confidence, the compressor rule's reasons) and,
    when a taste profile moved it (`personalize`), the AI's own ``ai_values`` and the ``taste``
    profile's accept count."""

    chain: str
    values: dict[str, float]
    vector: list[float]
    model: str | None = None
    proposal: Proposal | None = None
    ai_values: dict[str, float] | None = None
    taste_accepts: int = 0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = {"chain": self.chain, "model": self.model, "vector": self.vector, "values": self.values}
        if self.proposal is not None:
            out["decisions"] = self.proposal.to_dict()
        if self.ai_values is not None:
            out["ai_values"] = self.ai_values
            out["taste_accepts"] = self.taste_accepts
        return out


def predict_vector(
    audio: np.ndarray, sample_rate: int, model: str = "ensemble", intensity: float = 1.0
) -> np.ndarray:
    """Analyse and predict stages: the normalized default-chain vector the assistant proposes with
    ``model`` at ``intensity`` (0..1) for audio (``(channels, n)`` float32 at ``sample_rate`` Hz)."""
    return default_space().to_vector(propose(audio, sample_rate, model, intensity).values)


def choose(
    audio: np.ndarray | Song,
    sample_rate: int,
    model: str | None = None,
    chain: str = DEFAULT_CHAIN,
    values: Mapping[str, float] | None = None,
    vector: Sequence[float] | None = None,
    intensity: float = 1.0,
    analysis: Analysis | None = None,
) -> Choice:
    """The parameters for a song (an array or a `Song`): proposed by the assistant with ``model`` at
    ``intensity`` (0..1, 0 = mastering only; on the default chain), or ``chain`` with ``vector`` or ``values`` (unset
    parameters at their defaults). ``analysis`` (`plugin_bridge.ml.assistant.analyse` of ``audio``)
    lets several models share one measurement of the song."""
    if model is not None:
        if analysis is None:
            analysis = analyse_signal(as_song(audio, sample_rate), sample_rate, intensity)
        prop = propose(None, sample_rate, model, intensity, analysis)
        space = default_space()
        vec = space.to_vector(prop.values)
        return Choice(DEFAULT_CHAIN, space.to_values(vec), [float(v) for v in vec], model, prop)
    space = load_chain(chain).space
    vals = space.to_values(vector) if vector is not None else {**space.defaults(), **dict(values or {})}
    return Choice(str(chain), vals, [float(v) for v in space.to_vector(vals)], None)


def personalize(
    choice: Choice, taste: TasteModel | None, audio: np.ndarray | Song, sample_rate: int
) -> Choice:
    """Taste stage: the AI's ``choice`` for ``audio`` moved toward a user's learned ``taste``
    (`plugin_bridge.ml.preference`); the same choice for no taste or an empty profile, and for a
    choice not on the default chain (a taste is learned on the default chain's parameters)."""
    if taste is None or taste.n == 0 or choice.chain != DEFAULT_CHAIN:
        return choice
    space = default_space()
    values = taste.adjust(choice.values, taste_features_signal(as_song(audio, sample_rate), sample_rate))
    vec = space.to_vector(values)
    return replace(
        choice,
        values=values,
        vector=[float(v) for v in vec],
        ai_values=dict(choice.values),
        taste_accepts=taste.n,
    )


def render_choice(audio: np.ndarray, sample_rate: int, choice: Choice, backend: str) -> np.ndarray:
    """Render stage: ``audio`` through the chosen chain (tails kept, `RENDER_TAIL`)."""
    return render_array(
        audio, sample_rate, choice.chain, values=choice.values, backend=backend, tail=RENDER_TAIL
    )


def apply_master(audio: np.ndarray, sample_rate: int, entry: Mapping) -> tuple[np.ndarray, MasterResult]:
    """Master stage: ``audio`` mastered as a recipe's ``master`` entry says; the master and its report."""
    return master_array(
        audio,
        sample_rate,
        target=LoudnessTarget(**entry["target"]),
        settings=MasterSettings(**entry["settings"]),
    )


def lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS), or -inf for audio too short to gate."""
    try:
        return float(integrated_loudness(audio, sample_rate))
    except Exception:  # too short for a gated measurement
        return -math.inf


@dataclass
class MixOutcome:
    """What one run of the job produced: the choice, loudness before/after (LUFS), the master's
    report, the files written and the time of each stage (s)."""

    choice: Choice
    sample_rate: int
    backend: str
    input_lufs: float
    mixed_lufs: float
    master: MasterResult
    recipe: Recipe
    files: dict[str, str]
    exports: dict[str, list[Path]]
    seconds: dict[str, float]


def render_and_master_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    chain: str | Sequence,
    entry: Mapping,
    *,
    values: Mapping[str, float] | None = None,
    backend: str = "auto",
    tail: bool = RENDER_TAIL,
    downmix: bool = False,
    plugin_states: Mapping[str, dict] | None = None,
) -> tuple[MasterResult, dict[str, float]]:
    """Render and master stages streamed, file to file: ``source`` through ``chain`` (with
    ``values``) into a temporary 32-bit float file beside ``output`` (no clipping: the master sets
    the level), then mastered as the recipe ``entry`` says into ``output`` (`master_file`: atomic,
    never over the input). Memory does not grow with the song; the samples equal the in-memory
    path's (`render_array` then `apply_master`). Returns the master's report and the seconds of each stage."""
    out = check_output_path(output, (source,))
    with work_folder_beside(out, "mix") as work:
        mixed = Path(work) / "mixed.wav"
        t = time.perf_counter()
        render_file(
            source,
            mixed,
            chain,
            values=values,
            backend=backend,
            tail=tail,
            downmix=downmix,
            subtype="FLOAT",
            progress=False,
            plugin_states=plugin_states,
            float_headroom=True,
        )
        seconds = {"render": time.perf_counter() - t}
        t = time.perf_counter()
        result = master_file(
            mixed,
            out,
            target=LoudnessTarget(**entry["target"]),
            settings=MasterSettings(**entry["settings"]),
        )
        seconds["master"] = time.perf_counter() - t
    return result, seconds


def run_mix(
    audio: np.ndarray | Song,
    sample_rate: int,
    choice: Choice,
    mix_path: str | os.PathLike,
    recipe_path: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    backend: str = "auto",
    target: object = None,
    export_dir: str | os.PathLike | None = None,
    export_formats: str | tuple[str, ...] = "presets",
    stem: str | None = None,
    input_lufs: float | None = None,
    downmix: bool = False,
    master_settings: MasterSettings | None = None,
) -> MixOutcome:
    """Render, master, write, recipe, exports: the second half of the job for one chosen mix.

    Writes the mastered mix to ``mix_path`` and its recipe to ``recipe_path`` (atomically), and
    the DAW exports to ``export_dir`` when given. ``audio`` is an array or a `Song`: a file
    (`FileSignal`) is rendered and mastered streamed, file to file (`render_and_master_file`), so
    a song of any length fits in memory; an array in memory. ``source`` is the input file the
    recipe names; ``downmix`` records that it was folded to stereo (more than two channels);
    ``master_settings`` (default ones when None) say how hard mastering may work."""

    be = get_backend(backend).name
    entry = master_entry(target, master_settings)
    if isinstance(audio, FileSignal):
        mres, seconds = render_and_master_file(
            audio.path, mix_path, choice.chain, entry, values=choice.values, backend=be, downmix=audio.downmix
        )
        mixed_lufs = mres.input_lufs
        t = time.perf_counter()
        if input_lufs is None:
            input_lufs = measure_song(audio, sample_rate)[0]
    else:
        arr = to_array(audio) if isinstance(audio, ArraySignal) else audio
        t = time.perf_counter()
        mixed = render_choice(arr, sample_rate, choice, be)
        seconds = {"render": time.perf_counter() - t}
        mixed_lufs = lufs(mixed, sample_rate)
        t = time.perf_counter()
        mastered, mres = apply_master(mixed, sample_rate, entry)
        seconds["master"] = time.perf_counter() - t
        t = time.perf_counter()
        write_audio(mix_path, mastered, sample_rate)
        if input_lufs is None:
            input_lufs = lufs(arr, sample_rate)
    recipe = recipe_from_chain(
        choice.chain,
        values=choice.values,
        model_id=choice.model,
        input_path=source,
        sample_rate=sample_rate,
        backend=be,
        tail=RENDER_TAIL,
        master=entry,
        downmix=downmix,
    )
    recipe.save(recipe_path)
    seconds["write"] = time.perf_counter() - t
    exports: dict[str, list[Path]] = {}
    if export_dir is not None:
        t = time.perf_counter()
        exports = export_recipe(recipe, export_dir, export_formats, stem=stem)
        seconds["export"] = time.perf_counter() - t
    return MixOutcome(
        choice=choice,
        sample_rate=sample_rate,
        backend=be,
        input_lufs=input_lufs,
        mixed_lufs=mixed_lufs,
        master=mres,
        recipe=recipe,
        files={"mix": str(mix_path), "recipe": str(recipe_path)},
        exports=exports,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# Re-rendering a recipe
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasteredResult:
    """A recipe re-rendered with its mastering step: the file written and the master's report."""

    output: str
    sample_rate: int
    channels: int
    frames: int
    backend: str
    seconds: float
    master: Mapping

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "output": self.output,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frames": self.frames,
            "duration_s": self.frames / self.sample_rate,
            "backend": self.backend,
            "render_seconds": round(self.seconds, 4),
            "master": dict(self.master),
        }


def _refuse_unbound(unbound: Sequence[PluginState]) -> None:
    if unbound:
        raise FormatError(
            "recipe plugins "
            + ", ".join(f"{p.slot!r} ({p.display_name})" for p in unbound)
            + " belong to no slot of its chain: they cannot be rendered (exports still carry them)"
        )


def _restored_session(recipe: Recipe, backend: str):
    """The recipe's session with recorded fallbacks applied, and ``{node: {effect id: state}}``."""
    s = session_of(recipe)
    nodes = (*s.tracks, *s.buses, s.master)
    _refuse_unbound(unbound_plugins(recipe.plugins, [f"{n.name}/{e.id}" for n in nodes for e in n.effects]))
    states: dict[str, dict[str, dict]] = {}
    fixed = {}
    for n in nodes:
        effects, st = restore_slots(n.effects, recipe.plugins, recipe.fallbacks, backend, f"{n.name}/")
        fixed[n.name] = replace(n, effects=tuple(effects))
        if st:
            states[n.name] = st
    session = replace(
        s,
        tracks=tuple(fixed[t.name] for t in s.tracks),
        buses=tuple(fixed[b.name] for b in s.buses),
        master=fixed[s.master.name],
    )
    return session, states


def render_recipe(
    recipe: Recipe | str | os.PathLike,
    output: str | os.PathLike,
    backend: str | None = None,
    input_path: str | os.PathLike | None = None,
):
    """Re-render a recipe to ``output``; bit-identical to the original render on the same backend.

    A chain recipe renders its stored ``input`` (or ``input_path``) through its stored effects with
    `plugin_bridge.render.render_file`; a session recipe renders its graph with
    `plugin_bridge.graph.render_session`. Hosted-plugin slots get their stored states restored
    after their identity is checked; recorded fallbacks render the built-in. With a ``master``
    entry the mix is rendered in memory, mastered (`apply_master`) and written. ``backend``
    defaults to the one recorded in the recipe. Returns the `RenderResult` / `SessionResult`, or a
    `MasteredResult` when the recipe masters.
    """
    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    be = backend or r.backend
    start = time.perf_counter()
    if r.kind == "session":
        session, states = _restored_session(r, be)
        if r.master is None:
            return render_session(session, output, backend=be, tail=r.tail, plugin_states=states)
        out = check_output_path(output, tuple(t.file for t in session.tracks))
        mix, sr, _ = render_session_array(session, backend=be, tail=r.tail, plugin_states=states)
    else:
        _refuse_unbound(unbound_plugins(r.plugins, [e.id for e in r.effects]))
        src = input_path or r.input
        if not src:
            raise FormatError("recipe has no input audio file; give one")
        effects, states = restore_slots(r.effects, r.plugins, r.fallbacks, be)
        if r.master is None:
            return render_file(
                src, output, chain=effects, backend=be, tail=r.tail, downmix=r.downmix, plugin_states=states
            )
        result, seconds = render_and_master_file(
            src, output, effects, r.master, backend=be, tail=r.tail, downmix=r.downmix, plugin_states=states
        )
        return MasteredResult(
            result.output,
            result.sample_rate,
            result.channels,
            result.frames,
            be,
            sum(seconds.values()),
            result.to_dict(),
        )
    mastered, result = apply_master(mix, sr, r.master)
    write_audio(out, mastered, sr)
    return MasteredResult(
        str(out), sr, mastered.shape[0], mastered.shape[1], be, time.perf_counter() - start, result.to_dict()
    )
