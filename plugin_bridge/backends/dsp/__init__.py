"""Pure numpy/scipy DSP for every canonical effect: the reference the other backends follow.

Modules by domain: `filters` (JUCE's RBJ biquads and first-order high-pass), `dynamics`
(compressor, look-ahead limiter), `reverb` (Freeverb by FFT convolution, with `convolve`),
`delay` (feedback delay), `stereo` (width, pan); `_kernels` holds the few sample-recursive loops
(numba-compiled when numba imports). Each effect is a `Stage`: a small stateful object with
``process(block)``, ``latency`` and ``out_channels`` that streams block by block.
"""

from __future__ import annotations

from .delay import FeedbackDelay, PlainDelay, delay_samples, pedalboard_delay_seconds
from .dynamics import Compressor, Limiter, ballistics_coefficient, compressor_curve_db
from .filters import (
    SosFilter,
    first_order_highpass_sos,
    high_shelf_sos,
    low_shelf_sos,
    peak_sos,
)
from .reverb import Freeverb, freeverb_wet_irs
from .stage import Gain, Identity, Stage, db_to_gain
from .stereo import Pan, Width, pan_gains

__all__ = [
    "Compressor",
    "FeedbackDelay",
    "Freeverb",
    "Gain",
    "Identity",
    "Limiter",
    "Pan",
    "PlainDelay",
    "SosFilter",
    "Stage",
    "Width",
    "ballistics_coefficient",
    "compressor_curve_db",
    "db_to_gain",
    "delay_samples",
    "first_order_highpass_sos",
    "freeverb_wet_irs",
    "high_shelf_sos",
    "low_shelf_sos",
    "pan_gains",
    "peak_sos",
    "pedalboard_delay_seconds",
]
