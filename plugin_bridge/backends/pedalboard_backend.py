"""The default backend: pedalboard's built-in (JUCE) plugins, fused into as few calls as possible.

Consecutive effects that pedalboard has natively (gain, filters, compressor, reverb, delay) become
one `pedalboard.Pedalboard` processed with ``reset=False`` so state streams across blocks. Effects
pedalboard lacks run as the numpy backend's stages between them: ``width`` and ``pan`` (M/S and
panning), and ``limiter`` (pedalboard's Limiter is JUCE's two-stage compressor with automatic
make-up gain, not a look-ahead brick-wall ceiling, so the bridge's own limiter is used on every
backend). Neutral effects (0 dB EQ, dry delay...) are skipped. A run that is a lone ``Gain`` (an
output level after the width stage) is a float32 multiply by the coefficient the plugin applies:
the same samples without a pedalboard call per block.

A slot that names a plugin (``Effect.plugin``) whose map binds a VST3 is rendered by that plugin
(`plugin_bridge.backends.hosted.PedalboardPluginStage`); other formats, missing or known-bad plugins
fall back to the built-in effect with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..effects import Effect
from ..plugins.planning import HostPlan, plan_slot
from .base import Backend
from .dsp import Gain, Stage, delay_samples, pedalboard_delay_seconds
from .hosted import PedalboardPluginStage
from .numpy_backend import NumpyProcessor, make_stage


def native_plugins(effect: Effect, sample_rate: float) -> list | None:
    """The pedalboard plugins that render ``effect``, or None when pedalboard has no equivalent."""
    import pedalboard as pb

    p = effect.params
    t = effect.type
    if t == "gain":
        return [pb.Gain(gain_db=p["gain_db"])]
    if t == "highpass":
        return [pb.HighpassFilter(cutoff_frequency_hz=p["cutoff_hz"])]
    if t == "low_shelf":
        return [pb.LowShelfFilter(cutoff_frequency_hz=p["cutoff_hz"], gain_db=p["gain_db"], q=p["q"])]
    if t == "high_shelf":
        return [pb.HighShelfFilter(cutoff_frequency_hz=p["cutoff_hz"], gain_db=p["gain_db"], q=p["q"])]
    if t == "peak":
        return [pb.PeakFilter(cutoff_frequency_hz=p["cutoff_hz"], gain_db=p["gain_db"], q=p["q"])]
    if t == "compressor":
        out = [
            pb.Compressor(
                threshold_db=p["threshold_db"],
                ratio=p["ratio"],
                attack_ms=p["attack_ms"],
                release_ms=p["release_ms"],
            )
        ]
        if p["makeup_db"]:
            out.append(pb.Gain(gain_db=p["makeup_db"]))
        return out
    if t == "reverb":
        return [
            pb.Reverb(
                room_size=p["room_size"],
                damping=p["damping"],
                wet_level=p["wet_level"],
                dry_level=p["dry_level"],
                width=p["width"],
                freeze_mode=0.0,
            )
        ]
    if t == "delay":
        # pedalboard truncates float32(delay_seconds) * sample_rate; D + 0.5 samples lands on D exactly
        d = delay_samples(p["delay_ms"], sample_rate)
        return [
            pb.Delay(
                delay_seconds=pedalboard_delay_seconds(d, sample_rate), feedback=p["feedback"], mix=p["mix"]
            )
        ]
    return None


class _BoardStage(Stage):
    """A fused run of native pedalboard plugins, streaming with ``reset=False`` (float32 native)."""

    native_float32 = True

    def __init__(self, plugins: list, sample_rate: float, channels: int):
        import pedalboard as pb

        super().__init__(channels)
        self.board = pb.Pedalboard(plugins)
        self.sample_rate = float(sample_rate)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process a ``(channels, n)`` block in float32 through pedalboard."""
        x = np.asarray(block, dtype=np.float32)
        if x.shape[1] == 0:
            return x
        return self.board.process(x, self.sample_rate, reset=False)

    def _process(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.process(x), dtype=np.float64)


def _run_stage(plugins: list, sample_rate: float, channels: int) -> Stage:
    """The stage rendering a fused run of native ``plugins``: one Pedalboard, or a float32 gain.

    pedalboard's ``Gain`` (JUCE's ``dsp::Gain``, no ramp) multiplies every sample by one float32
    coefficient; reading that coefficient off the plugin (its output for a sample of 1.0) lets a lone
    ``Gain`` run as a numpy multiply that gives the plugin's samples bit for bit.
    """
    import pedalboard as pb

    if len(plugins) == 1 and isinstance(plugins[0], pb.Gain):
        unit = plugins[0].process(np.ones((1, 1), dtype=np.float32), float(sample_rate))
        return Gain(channels, float(unit[0, 0]))
    return _BoardStage(plugins, sample_rate, channels)


class PedalboardBackend(Backend):
    """Render chains with pedalboard's built-in plugins (numpy stages for what it lacks)."""

    name = "pedalboard"
    streaming = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import pedalboard  # noqa: F401
        except ImportError:
            return "pedalboard is not installed (pip install pedalboard)"
        return None

    def prepare(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        states: Mapping[str, dict] | None = None,
    ) -> NumpyProcessor:
        """Fused pedalboard runs, numpy stages and hosted VST3 stages (``states`` restored into them)."""
        stages: list = []
        run: list = []
        ch = channels

        def flush() -> None:
            if run:
                stages.append(_run_stage(list(run), sample_rate, ch))
                run.clear()

        for effect in effects:
            if effect.is_neutral():
                continue
            if effect.plugin:
                planned = plan_slot(effect, self.name)
                if isinstance(planned, HostPlan):
                    flush()
                    stages.append(
                        PedalboardPluginStage(planned, sample_rate, ch, (states or {}).get(effect.id))
                    )
                    continue
                effect = planned
            plugins = native_plugins(effect, sample_rate)
            if plugins is not None:
                run.extend(plugins)
                continue
            flush()
            stage = make_stage(effect, sample_rate, ch)
            stages.append(stage)
            ch = stage.out_channels
        flush()
        return NumpyProcessor(stages, channels)
