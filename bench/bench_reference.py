"""Benchmark: reference matching, plugin-bridge against matchering, on the same target/reference pair.

The target is the built-in demo song (dull, narrow, boomy on purpose); the reference is a
differently balanced remix of the demo parts (other tempo and seed), brightened above 3 kHz and
widened. Both are written as 44.1 kHz float WAVs; each tool masters the target to the reference
(plugin-bridge: `master_file(..., reference=...)`; matchering: `mg.process` with its default
limiter, 24-bit output). Prints, for the input and both masters: the spectral distance to the
reference (dB; RMS of loudness-normalised 1/3-octave band-level differences, see
`plugin_bridge.analysis`), integrated loudness (LUFS), true peak (dBTP), stereo width (side/mid
energy) and wall time (s).

matchering is a bench-only dependency (``pip install matchering``); without it only our side runs.
Usage: python bench/bench_reference.py [--seconds 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

SR = 44100


def make_reference(seconds: float, sample_rate: int = SR) -> np.ndarray:
    """A brighter, wider remix of the demo parts: ``(2, samples)`` float32 peaking at -0.9 dBFS."""
    from plugin_bridge.demo import demo_stems

    st = demo_stems(seconds, sample_rate, bpm=124, seed=5)
    mix = st["drums"] * 1.1 + st["bass"] * 0.6 + st["pad"] + st["lead"] * 1.4
    sos = butter(2, 3000, "highpass", fs=sample_rate, output="sos")
    mix = mix + sosfilt(sos, mix, axis=1)
    mid, side = (mix[0] + mix[1]) / 2, (mix[0] - mix[1]) / 2
    air = sosfilt(sos, np.random.default_rng(2).standard_normal(mid.shape))
    side = side * 2 + 0.02 * air
    mix = np.stack([mid + side, mid - side])
    return (mix * 0.9 / np.abs(mix).max()).astype(np.float32)


def measure(path: Path, ref_path: Path) -> dict:
    """Spectral distance to the reference (dB), loudness (LUFS), true peak (dBTP), width of a file."""
    from plugin_bridge.analysis import spectral_distance_db, stereo_width
    from plugin_bridge.audio_io import read_audio
    from plugin_bridge.loudness import amplitude_to_db, integrated_loudness, true_peak

    x, sr = read_audio(path)
    ref, rsr = read_audio(ref_path)
    return {
        "distance_db": round(spectral_distance_db(x, sr, ref, rsr), 3),
        "lufs": round(integrated_loudness(x, sr), 2),
        "true_peak_dbtp": round(amplitude_to_db(true_peak(x)), 2),
        "width": round(stereo_width(x), 4),
    }


def run_ours(target: Path, ref: Path, out: Path) -> float:
    from plugin_bridge.mastering import master_file

    t0 = time.perf_counter()
    master_file(target, out, reference=ref)
    return time.perf_counter() - t0


def run_matchering(target: Path, ref: Path, out: Path) -> float | str:
    """Seconds matchering took, or why it did not run."""
    try:
        import matchering as mg
    except ImportError:
        return "matchering is not installed (pip install matchering)"
    mg.log(default_handler=lambda *_: None)
    t0 = time.perf_counter()
    mg.process(target=str(target), reference=str(ref), results=[mg.pcm24(str(out))])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    import soundfile as sf

    from plugin_bridge.demo import demo_song

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        target, ref = d / "target.wav", d / "reference.wav"
        sf.write(target, demo_song(args.seconds, SR).T, SR, subtype="FLOAT")
        sf.write(ref, make_reference(args.seconds, SR).T, SR, subtype="FLOAT")
        rows["input"] = measure(target, ref) | {"seconds": None}
        rows["reference"] = measure(ref, ref) | {"seconds": None}
        ours = d / "ours.wav"
        took = run_ours(target, ref, ours)
        rows["plugin-bridge"] = measure(ours, ref) | {"seconds": round(took, 2)}
        theirs = d / "matchering.wav"
        took = run_matchering(target, ref, theirs)
        if isinstance(took, str):
            print(f"skipping matchering: {took}", file=sys.stderr)
        else:
            rows["matchering"] = measure(theirs, ref) | {"seconds": round(took, 2)}

    print(f"reference matching, {args.seconds:g} s stereo {SR} Hz (distance: RMS dB over 1/3 octaves)")
    print(f"{'':<14} {'distance dB':>11} {'LUFS':>7} {'dBTP':>6} {'width':>7} {'time s':>7}")
    for name, r in rows.items():
        secs = f"{r['seconds']:>7.2f}" if r["seconds"] is not None else f"{'':>7}"
        print(
            f"{name:<14} {r['distance_db']:>11.2f} {r['lufs']:>7.2f} {r['true_peak_dbtp']:>6.2f} "
            f"{r['width']:>7.4f} {secs}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
