"""Reference matching: move a mix towards a reference track's stereo width, average spectrum and loudness.

Width is side/mid energy; the spectrum is the loudness-normalised, 1/3-octave-smoothed average
spectrum (`plugin_bridge.analysis.spectral_profile`), matched by a linear-phase FIR (no phase
distortion, its delay removed); loudness is integrated loudness per ITU-R BS.1770-4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..analysis import (
    THIRD_OCTAVE_CENTERS_HZ,
    SpectralProfile,
    band_powers,
    octave_smoothed_db,
    profile_distance_db,
)
from ..audio_io import check_audio_array
from ..backends.dsp.fir import fft_convolve, hann_window
from ..errors import ParameterError
from .streaming import (
    ArraySignal,
    FilteredSignal,
    LoudnessMeter,
    MappedSignal,
    MemoryStore,
    SpectrumMeter,
    to_array,
)


@dataclass(frozen=True)
class MatchReport:
    """What `match_reference` did, with the spectral distance (dB) to the reference before and after."""

    reference_lufs: float
    gain_db: float
    width_input: float
    width_reference: float
    width_output: float
    side_gain: float
    eq_centers_hz: tuple[float, ...]
    eq_gain_db: tuple[float, ...]
    distance_before_db: float
    distance_after_db: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (rounded; non-finite values become None)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 3) if math.isfinite(v) else None
        d["eq_centers_hz"] = [round(f, 1) for f in self.eq_centers_hz]
        d["eq_gain_db"] = [round(g, 2) for g in self.eq_gain_db]
        d["notes"] = list(self.notes)
        return d


def _fir_length(sample_rate: float) -> int:
    """Odd FIR length (samples) of about 0.37 s: ~5 Hz resolution, enough for 1/3 octave at 20 Hz."""
    return 2 ** int(math.ceil(math.log2(0.37 * sample_rate))) + 1


def linear_phase_fir(grid_hz: np.ndarray, gain_db: np.ndarray, sample_rate: float) -> np.ndarray:
    """A linear-phase (symmetric, odd-length) FIR whose magnitude follows ``gain_db`` at ``grid_hz``.

    Frequency sampling: the curve interpolated in log frequency onto the FFT grid (held flat beyond
    its ends), inverse FFT to a zero-phase response, centred and Hann-windowed. Delay: ``(len - 1) / 2``.
    """
    numtaps = _fir_length(sample_rate)
    nfft = numtaps - 1
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    db = np.interp(np.log(np.maximum(f, 1.0)), np.log(grid_hz), gain_db)
    h = np.fft.irfft(10.0 ** (db / 20.0), nfft)
    h = np.roll(h, nfft // 2)
    h = np.append(h, h[0]) * hann_window(numtaps, symmetric=True)
    return h


def apply_fir(audio: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Filter every channel by a linear-phase FIR ``h`` with its delay removed (same length out)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    delay = (len(h) - 1) // 2
    y = fft_convolve(x, h)
    return y[:, delay : delay + x.shape[1]]


def match_curve_db(
    audio: SpectralProfile, reference: SpectralProfile, max_eq_db: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """The matching EQ curve ``(grid_hz, gain_db)``: reference minus input, 1/3-octave smoothed, loudness-normalised.

    Both average spectra (`spectral_profile`) are smoothed over 1/3 octave on a 1/12-octave grid,
    taken relative to their integrated loudness, and subtracted; the difference is limited to
    +-``max_eq_db``, held flat above 0.45 x the lower sample rate (or 20 kHz), and faded to 0 dB
    from 20 Hz down to 10 Hz.
    """
    top = min(20000.0, 0.45 * min(audio.sample_rate, reference.sample_rate))
    grid = 20.0 * 2.0 ** (np.arange(0, 12 * math.log2(top / 20.0) + 1) / 12.0)
    diff = (octave_smoothed_db(reference.freqs_hz, reference.psd, grid) - reference.lufs) - (
        octave_smoothed_db(audio.freqs_hz, audio.psd, grid) - audio.lufs
    )
    diff = np.clip(diff, -max_eq_db, max_eq_db)
    return np.concatenate(([10.0], grid)), np.concatenate(([0.0], diff))


def measure_profile(signal, sample_rate: float, store=None) -> tuple[SpectralProfile, float]:
    """One pass over a signal: its `SpectralProfile` (`plugin_bridge.analysis.spectral_profile`) and stereo width.

    Width is side/mid energy (`plugin_bridge.analysis.stereo_width`). With a ``store`` the blocks
    are also appended to it (as float32).
    """
    loudness = LoudnessMeter(sample_rate, signal.channels, signal.frames)
    spectrum = SpectrumMeter(sample_rate, signal.channels, signal.frames)
    mid = side = 0.0
    for block in signal.blocks():
        loudness.process(block)
        spectrum.process(block)
        b = np.asarray(block, dtype=np.float64)
        if b.shape[0] == 2:
            m, d = (b[0] + b[1]) / 2.0, (b[0] - b[1]) / 2.0
            mid, side = mid + float(np.einsum("i,i->", m, m)), side + float(np.einsum("i,i->", d, d))
        if store is not None:
            store.append(block)
    freqs, psd = spectrum.result()
    c = THIRD_OCTAVE_CENTERS_HZ
    edges = np.stack([c / 2 ** (1 / 6), c * 2 ** (1 / 6)], axis=1)
    levels = 10.0 * np.log10(np.maximum(band_powers(freqs, psd, edges), 1e-30))
    width = (0.0 if side == 0.0 else math.inf) if mid == 0.0 else side / mid
    return SpectralProfile(c, levels, loudness.loudness(), float(sample_rate), freqs, psd), width


def _width_map(side_gain: float):
    def widen(block: np.ndarray) -> np.ndarray:
        b = np.asarray(block, dtype=np.float64)
        mid, side = (b[0] + b[1]) / 2.0, (b[0] - b[1]) / 2.0
        return np.stack([mid + side_gain * side, mid - side_gain * side])

    return widen


def match_signal(
    signal,
    sample_rate: int,
    reference,
    reference_sample_rate: int,
    new_store=MemoryStore,
    max_eq_db: float = 12.0,
    max_side_gain: float = 2.0,
):
    """`match_reference` on signals (`plugin_bridge.mastering.streaming`): never more than a block in memory.

    ``new_store(channels, frames)`` makes the float32 store that holds the filtered signal.
    Returns the matched signal (float32 blocks) and the `MatchReport`.
    """
    notes: list[str] = []
    ref_profile, w_ref = measure_profile(reference, reference_sample_rate)
    if reference.channels == 1:
        w_ref = 0.0
    if not math.isfinite(ref_profile.lufs):
        raise ParameterError("reference: is silent (no loudness to match)")
    in_profile, w_in = measure_profile(signal, sample_rate)
    if signal.channels == 1:
        w_in = 0.0
    before = profile_distance_db(in_profile, ref_profile)
    side_gain = 1.0
    if signal.channels == 1:
        notes.append("mono input: stereo width left as is")
    elif reference.channels == 1 or w_ref == 0.0:
        side_gain = 0.0
        notes.append("mono reference: the output is made mono")
    elif w_in < 1e-4:
        notes.append("the input is (nearly) mono: width not increased")
    else:
        side_gain = min(max_side_gain, math.sqrt(w_ref / w_in))
        if side_gain == max_side_gain:
            notes.append(f"width increase limited to side x{max_side_gain:g}")
    x = signal
    work = in_profile
    if side_gain != 1.0:
        x = MappedSignal(signal, _width_map(side_gain))
        work, _ = measure_profile(x, sample_rate)
    lufs, w_out = work.lufs, w_in * side_gain**2
    after_profile = work
    if math.isfinite(lufs):
        grid, curve = match_curve_db(work, ref_profile, max_eq_db)
        store = new_store(signal.channels, signal.frames)
        after_profile, w_out = measure_profile(
            FilteredSignal(x, linear_phase_fir(grid, curve, sample_rate)), sample_rate, store
        )
        x, lufs = store, after_profile.lufs
        centers = ref_profile.centers_hz[
            (ref_profile.centers_hz >= 20) & (ref_profile.centers_hz <= grid[-1])
        ]
        eq = np.interp(np.log(centers), np.log(grid), curve)
    else:
        notes.append("silent input: no EQ or loudness matching")
        centers, eq = np.zeros(0), np.zeros(0)
    gain_db = ref_profile.lufs - lufs if math.isfinite(lufs) else 0.0
    gain = 10.0 ** (gain_db / 20.0)
    report = MatchReport(
        reference_lufs=ref_profile.lufs,
        gain_db=gain_db,
        width_input=w_in,
        width_reference=w_ref,
        width_output=w_out if signal.channels == 2 else 0.0,
        side_gain=side_gain,
        eq_centers_hz=tuple(float(c) for c in centers),
        eq_gain_db=tuple(float(g) for g in eq),
        distance_before_db=before,
        distance_after_db=profile_distance_db(after_profile, ref_profile),  # a gain changes no distance
        notes=tuple(notes),
    )
    return MappedSignal(x, lambda b: np.multiply(b, gain, dtype=np.float32)), report


def match_reference(
    audio: np.ndarray,
    sample_rate: int,
    reference: np.ndarray,
    reference_sample_rate: int,
    max_eq_db: float = 12.0,
    max_side_gain: float = 2.0,
) -> tuple[np.ndarray, MatchReport]:
    """Match ``audio`` to a ``reference`` track: stereo width, average spectrum, loudness.

    1. width: the side channel is scaled by ``sqrt(width_ref / width_in)`` (width = side/mid
       energy), at most ``max_side_gain``; a mono or nearly mono input (side 40 dB below mid) is
       not widened, a mono reference makes the output mono;
    2. spectrum: the loudness-normalised, 1/3-octave-smoothed difference of the average spectra
       (`match_curve_db`, within +-``max_eq_db`` dB) applied as a linear-phase FIR (no phase
       distortion, no latency in the result);
    3. loudness: a gain to the reference's integrated loudness (peaks may exceed full scale; the
       mastering stage limits them).

    Both signals are ``(channels, samples)``; the sample rates (Hz) may differ. Returns float32
    audio of the input's shape and a `MatchReport` with the spectral distance (dB, see
    `plugin_bridge.analysis`) to the reference before and after. The work is `match_signal`'s
    (the one used by the mastering pipeline, also on files).
    """
    x = check_audio_array(audio, sample_rate)
    ref = check_audio_array(reference, reference_sample_rate, "reference")
    y, report = match_signal(
        ArraySignal(x),
        sample_rate,
        ArraySignal(ref),
        reference_sample_rate,
        MemoryStore,
        max_eq_db,
        max_side_gain,
    )
    return to_array(y), report
