"""Generated test signals (no downloads): sines, noise, clicks, stepped levels."""

from __future__ import annotations

import numpy as np

SR = 44100


def sine(freq: float, seconds: float, sr: int = SR, level_db: float = -12.0, channels: int = 2) -> np.ndarray:
    """A ``(channels, n)`` float32 sine at ``level_db`` dBFS peak."""
    t = np.arange(int(seconds * sr)) / sr
    x = (10 ** (level_db / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.tile(x, (channels, 1))


def noise(
    seconds: float, sr: int = SR, level_db: float = -20.0, channels: int = 2, seed: int = 0
) -> np.ndarray:
    """White noise at ``level_db`` dBFS RMS, independent per channel."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, int(seconds * sr)))
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def impulse(n: int, channels: int = 2, at: int = 0) -> np.ndarray:
    """A unit impulse at frame ``at`` in every channel."""
    x = np.zeros((channels, n), dtype=np.float32)
    x[:, at] = 1.0
    return x


def pink_noise(
    seconds: float, sr: int = SR, level_db: float = -20.0, channels: int = 2, seed: int = 1
) -> np.ndarray:
    """Pink (1/f) noise at ``level_db`` dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=1)
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    x = np.fft.irfft(spec / np.sqrt(f), n, axis=1)
    x /= np.sqrt(np.mean(x**2))
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def stepped_sine(
    levels_db, step_s: float = 0.5, freq: float = 1000.0, sr: int = SR, channels: int = 2
) -> np.ndarray:
    """A sine whose peak level steps through ``levels_db`` (dBFS), ``step_s`` seconds each."""
    n = int(step_s * sr)
    t = np.arange(n * len(levels_db)) / sr
    amp = np.repeat([10 ** (lv / 20) for lv in levels_db], n)
    return np.tile((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), (channels, 1))


def step_levels_db(
    y: np.ndarray, steps: int, step_s: float = 0.5, sr: int = SR, tail_s: float = 0.2
) -> np.ndarray:
    """Steady-state RMS level (dB, of channel 0) over the last ``tail_s`` of every step."""
    n = int(step_s * sr)
    m = int(tail_s * sr)
    out = []
    for k in range(steps):
        seg = y[0, (k + 1) * n - m : (k + 1) * n].astype(np.float64)
        out.append(10 * np.log10(np.mean(seg**2) + 1e-30))
    return np.array(out)


THIRD_OCTAVES = np.array(
    [
        31.5,
        40,
        50,
        63,
        80,
        100,
        125,
        160,
        200,
        250,
        315,
        400,
        500,
        630,
        800,
        1000,
        1250,
        1600,
        2000,
        2500,
        3150,
        4000,
        5000,
        6300,
        8000,
        10000,
        12500,
        16000,
    ]
)


def magnitude_db_at(y: np.ndarray, sr: int, freqs=THIRD_OCTAVES) -> np.ndarray:
    """Magnitude (dB) of an impulse response ``y`` (1-D) at ``freqs``, by interpolating its FFT."""
    spec = np.abs(np.fft.rfft(y.astype(np.float64)))
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return 20 * np.log10(np.interp(freqs, f, spec) + 1e-30)


def t30(ir: np.ndarray, sr: int = SR) -> float:
    """Reverberation time (s) from the -5..-35 dB slope of the Schroeder energy-decay curve of ``ir``."""
    e = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-30)
    i5, i35 = np.argmax(edc <= -5), np.argmax(edc <= -35)
    return 2.0 * (i35 - i5) / sr


def rms_db(x: np.ndarray) -> float:
    """RMS level in dB of all samples."""
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-30))
