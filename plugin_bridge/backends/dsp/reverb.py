"""Freeverb exactly as ``juce::Reverb`` (what ``pedalboard.Reverb`` runs), by FFT convolution.

Per side: 8 parallel lowpass-feedback combs (tunings 1116 1188 1277 1356 1422 1491 1557 1617
samples at 44.1 kHz) into 4 series allpasses (556 441 341 225); the right side adds 23 samples;
sizes are ``int(sample_rate) * tuning // 44100``. Comb: ``out = buf[i]; last = out (1 - damp) +
last damp; buf[i] = in + last feedback``; allpass: ``b = buf[i]; buf[i] = in + 0.5 b; out = b - in``;
``feedback = 0.7 + 0.28 room_size``, ``damp = 0.4 damping``. Input ``0.015 (L + R)`` (mono:
``0.015 x``). Outputs ``L = wet1 combL + wet2 combR + dry inL`` (and mirrored), with
``wet1 = 1.5 wet_level (1 + width)``, ``wet2 = 1.5 wet_level (1 - width)``, ``dry = 2 dry_level``;
mono uses ``wet1`` only (JUCE ``processMono``).

Every part is linear and time-invariant, so the two wet impulse responses are computed once (the
recursions evaluated chunk-wise over their delay length, vectorised), truncated where their
remaining energy falls below -100 dB, and applied by `PartitionedConvolver`.

Measured against pedalboard 0.9.26 (44.1 and 48 kHz, several room/damping/width settings, stereo and
mono): impulse responses agree within 3e-7 absolute (float32 rounding in pedalboard); JUCE's
10 ms parameter smoothing never acts, because pedalboard sets the parameters before ``prepare``
(which snaps the smoothers to their targets): the dry gain is exact from the first sample.
"""

from __future__ import annotations

import math

import numpy as np

from .convolve import PartitionedConvolver
from .filters import sos_filter
from .stage import Stage

COMB_TUNINGS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_TUNINGS = (556, 441, 341, 225)
STEREO_SPREAD = 23
INPUT_GAIN = 0.015
#: Remaining energy (relative) below which the impulse responses are cut: -100 dB.
TAIL_FLOOR = 1e-10
MAX_TAIL_SECONDS = 30.0


def scaled_length(tuning: int, sample_rate: float) -> int:
    """A Freeverb delay length (samples) at ``sample_rate`` as JUCE rounds it: int(sr) * tuning // 44100."""
    return max(1, (int(sample_rate) * tuning) // 44100)


def comb_impulse_response(length: int, delay: int, feedback: float, damp: float) -> np.ndarray:
    """Impulse response (``length`` samples) of one Freeverb comb of ``delay`` samples."""
    y = np.zeros(length)
    v = np.zeros(length)  # what the comb writes into its buffer: in + feedback * last
    v[0] = 1.0
    lowpass = np.array([[1.0 - damp, 0.0, 0.0, 1.0, -damp, 0.0]])  # last = out (1 - damp) + last damp
    zi = np.zeros((1, 2))
    for start in range(delay, length, delay):
        stop = min(start + delay, length)
        y[start:stop] = v[start - delay : stop - delay]
        last, zi = sos_filter(lowpass, y[start:stop], zi)
        v[start:stop] = feedback * last
    return y


def allpass_filter(x: np.ndarray, delay: int) -> np.ndarray:
    """A Freeverb allpass of ``delay`` samples applied to ``x`` (starting from silence)."""
    n = x.shape[0]
    rows = -(-n // delay)
    padded = np.zeros(rows * delay)
    padded[:n] = x
    feedback = np.array([[1.0, 0.0, 0.0, 1.0, -0.5, 0.0]])  # buf = in + 0.5 buf, every delay samples
    buf = sos_filter(feedback, padded.reshape(rows, delay).T)[0].T.ravel()
    out = -x.copy()
    out[delay:] += buf[: n - delay]
    return out


def _tail_length(sample_rate: float, feedback: float) -> int:
    """Samples for the slowest comb to decay by 120 dB at DC, plus the allpass smear."""
    longest = scaled_length(COMB_TUNINGS[-1] + STEREO_SPREAD, sample_rate)
    passes = 6.0 / -math.log10(feedback)
    smear = 20 * sum(scaled_length(t + STEREO_SPREAD, sample_rate) for t in ALLPASS_TUNINGS)
    return int(min(longest * (passes + 1) + smear, MAX_TAIL_SECONDS * sample_rate))


def freeverb_side_ir(
    sample_rate: float, room_size: float, damping: float, spread: int, length: int
) -> np.ndarray:
    """Wet impulse response of one side (combs summed, then allpasses), before the 0.015 input gain."""
    feedback = 0.7 + 0.28 * room_size
    damp = 0.4 * damping
    acc = np.zeros(length)
    for t in COMB_TUNINGS:
        acc += comb_impulse_response(length, scaled_length(t + spread, sample_rate), feedback, damp)
    for t in ALLPASS_TUNINGS:
        acc = allpass_filter(acc, scaled_length(t + spread, sample_rate))
    return acc


def freeverb_wet_irs(
    sample_rate: float, room_size: float, damping: float, wet_level: float, width: float, channels: int
) -> np.ndarray:
    """The wet impulse responses from the reverb input (L+R, or the mono channel) to each output.

    Returns ``(channels, length)`` float64 including the 0.015 input gain and the wet gains,
    truncated where the remaining energy falls below -100 dB (``(channels, 0)`` when silent).
    """
    wet = 3.0 * wet_level
    wet1, wet2 = 0.5 * wet * (1.0 + width), 0.5 * wet * (1.0 - width)
    if wet1 == 0.0 and wet2 == 0.0:
        return np.zeros((channels, 0))
    length = _tail_length(sample_rate, 0.7 + 0.28 * room_size)
    left = freeverb_side_ir(sample_rate, room_size, damping, 0, length)
    if channels == 1:
        irs = (INPUT_GAIN * wet1 * left)[None, :]
    else:
        right = freeverb_side_ir(sample_rate, room_size, damping, STEREO_SPREAD, length)
        irs = INPUT_GAIN * np.stack((wet1 * left + wet2 * right, wet1 * right + wet2 * left))
    energy = np.cumsum((irs**2).sum(axis=0)[::-1])[::-1]  # remaining energy from each sample on
    keep = int(np.count_nonzero(energy > TAIL_FLOOR * energy[0])) if energy[0] > 0 else 0
    return irs[:, :keep]


class Freeverb(Stage):
    """JUCE/pedalboard Freeverb (see the module docstring) as a dry gain plus a streaming convolution."""

    def __init__(
        self,
        channels: int,
        sample_rate: float,
        room_size: float,
        damping: float,
        wet_level: float,
        dry_level: float,
        width: float,
    ) -> None:
        super().__init__(channels)
        self.dry = 2.0 * dry_level
        irs = freeverb_wet_irs(sample_rate, room_size, damping, wet_level, width, channels)
        self.ir_length = irs.shape[1]
        self._conv = PartitionedConvolver(irs) if self.ir_length else None

    def _process(self, x: np.ndarray) -> np.ndarray:
        y = x * self.dry
        if self._conv is not None:
            y += self._conv.process(x.sum(axis=0) if self.channels == 2 else x[0])
        return y
