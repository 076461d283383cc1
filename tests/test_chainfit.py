"""The chain fit (`plugin_bridge.ml.chainfit`): recovers the chain's own settings exactly and corrects
foreign damage as far as the chain can. Signals: generated stereo pink noise (mid and side
independent), 4 s at 44.1 kHz."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfilt
from signals import SR, pink_noise

from plugin_bridge.backends.dsp.filters import high_shelf_sos, low_shelf_sos, peak_sos
from plugin_bridge.backends.dsp.stereo import apply_width
from plugin_bridge.chain import default_space
from plugin_bridge.ml.chainfit import chain_vector, fit_chain
from plugin_bridge.ml.eqresponse import eq_names, eq_slots
from plugin_bridge.ml.evaluate import audio_metrics
from plugin_bridge.render import render_array

_SOS = {"low_shelf": low_shelf_sos, "peak": peak_sos, "high_shelf": high_shelf_sos}


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Stereo pink noise: mid and an independent side 6 dB below it (side/mid -6 dB)."""
    mid = pink_noise(4.0, channels=1, seed=3)[0]
    side = 0.5 * pink_noise(4.0, channels=1, seed=4)[0]
    return np.stack([mid + side, mid - side]).astype(np.float32)


def test_fit_recovers_the_chains_own_eq_and_width(reference):
    slots = eq_slots()
    assert [t for _, t, _, _ in slots] == ["low_shelf"] + ["peak"] * 5 + ["high_shelf"] * 2
    damage_db = [3.0, -4.0, 2.0, 5.0, -3.0, 4.0, -6.0, 2.5]
    sos = np.concatenate([_SOS[k](SR, fc, g, q) for (_, k, fc, q), g in zip(slots, damage_db, strict=True)])
    damaged = apply_width(sosfilt(sos, reference.astype(np.float64), axis=-1), 0.5) * 10 ** (-9 / 20)

    values = fit_chain(damaged.astype(np.float32), reference, SR)

    assert set(values) == set(default_space().names)
    for name, g in zip(eq_names(), damage_db, strict=True):
        assert values[name] == pytest.approx(-g, abs=0.3), name  # an RBJ shelf/peak of -g inverts +g
    assert values["width.width"] == pytest.approx(2.0, rel=0.02)
    assert values["input.gain_db"] == pytest.approx(9.0, abs=0.3)
    neutral = {"comp.ratio": 1.0, "reverb.wet_level": 0.0, "delay.mix": 0.0, "output.gain_db": 0.0}
    assert {k: values[k] for k in neutral} == neutral


def test_fit_halves_the_balance_error_of_a_foreign_peak(reference):
    # a peak between the chain's bands, narrower than its Q, plus a narrowed image
    damaged = apply_width(sosfilt(peak_sos(SR, 700.0, 8.0, 2.5), reference.astype(np.float64), axis=-1), 0.6)
    damaged = damaged.astype(np.float32)
    values = fit_chain(damaged, reference, SR)
    vec = chain_vector(values)
    assert vec.shape == (len(default_space()),) and np.all((vec >= 0) & (vec <= 1))
    fixed = render_array(damaged, SR, "default", vector=vec, backend="numpy")

    before, after = audio_metrics(damaged, reference), audio_metrics(fixed, reference)
    assert before["balance_db"] > 0.5
    assert after["balance_db"] <= 0.5 * before["balance_db"]
    assert after["width_db"] < 0.1 < before["width_db"]
    assert after["mrstft"] < before["mrstft"]


def test_fit_refuses_mono():
    with pytest.raises(Exception, match="stereo"):
        fit_chain(np.zeros(44100, dtype=np.float32), np.zeros(44100, dtype=np.float32))
