"""What the page shows of a version: its readouts (loudness, true peak, range, width, spectrum),
its samples as a WAV for the browser's player, and the waveform overview of a song."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ..analysis import correlation, spectral_profile, stereo_width
from ..loudness import amplitude_to_db, integrated_loudness, loudness_range, true_peak

#: Columns of the waveform overview.
WAVEFORM_COLUMNS = 1200


@dataclass
class Readout:
    """Measurements of one version of the loop region: integrated loudness (LUFS), true peak
    (dBTP), loudness range (LU), stereo width (side/mid energy ratio), L/R correlation and the
    1/3-octave spectrum (band levels in dB relative to the loudness)."""

    lufs: float | None
    true_peak_dbtp: float | None
    lra_lu: float | None
    width: float | None
    correlation: float | None
    spectrum_db: list[float | None]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "lufs": self.lufs,
            "true_peak_dbtp": self.true_peak_dbtp,
            "lra_lu": self.lra_lu,
            "width": self.width,
            "correlation": self.correlation,
            "spectrum_db": self.spectrum_db,
        }


def finite_or_none(v: float | None, nd: int = 2) -> float | None:
    """``v`` rounded to ``nd`` decimals, or None when it is missing or not finite (JSON has no inf)."""
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


def measure(audio: np.ndarray, sample_rate: int) -> Readout:
    """The `Readout` of ``(channels, n)`` audio at ``sample_rate`` Hz (None for what silence or a
    clip too short to gate does not have)."""
    x = np.asarray(audio, dtype=np.float64)
    try:
        lufs = float(integrated_loudness(x, sample_rate))
    except Exception:  # too short to gate
        lufs = -math.inf
    try:
        lra = float(loudness_range(x, sample_rate))
    except Exception:  # shorter than the 3 s window
        lra = math.nan
    prof = spectral_profile(x, sample_rate)
    rel = prof.levels_db - (lufs if math.isfinite(lufs) else 0.0)
    return Readout(
        finite_or_none(lufs),
        finite_or_none(amplitude_to_db(true_peak(x))),
        finite_or_none(lra),
        finite_or_none(stereo_width(x), 3),
        finite_or_none(correlation(x), 3),
        [finite_or_none(v, 1) for v in rel],
    )


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """``audio`` as a 16-bit PCM WAV file in memory (for the browser's player)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0).T, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def waveform(audio: np.ndarray, columns: int = WAVEFORM_COLUMNS) -> list[list[float]]:
    """``[[min, max], ...]`` of the channel mean in ``columns`` equal slices (for the overview)."""
    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    n = max(1, min(columns, mono.size))
    edges = np.linspace(0, mono.size, n + 1).astype(int)
    return [
        [round(float(mono[a:b].min()), 3), round(float(mono[a:b].max()), 3)] if b > a else [0.0, 0.0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
