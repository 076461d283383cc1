"""Sub-commands ``master`` and ``analyze``: parse, call `plugin_bridge.mastering` / `.analysis`, print."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..audio_io import SUBTYPES
from ..mastering.settings import MAX_LIMITING_CAP_DB, MasterSettings
from ..mastering.targets import DEFAULT_TARGET, TARGETS, describe_targets

#: Preset names, from the one target table (`plugin_bridge.mastering.targets`: imports no DSP).
TARGET_NAMES = tuple(TARGETS)


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-inf" if v is None or not math.isfinite(v) else format(v, spec)


def _cmd_master(args: argparse.Namespace) -> int:
    from ..mastering import master_file
    from ..progress import stage_bar

    with stage_bar(4 if args.reference else 3, "master", args.quiet) as bar:
        result = master_file(
            args.input,
            args.output,
            target=args.target,
            reference=args.reference,
            lufs=args.lufs,
            ceiling_dbtp=args.ceiling,
            subtype=SUBTYPES[args.bit_depth] if args.bit_depth else None,
            downmix=args.downmix,
            settings=MasterSettings.limited_to(args.max_limiting),
            progress=bar,
        )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    t = result.target
    print(f"wrote {result.output}: target {t.name} {t.lufs:g} LUFS, ceiling {t.ceiling_dbtp:g} dBTP")
    print(
        f"  loudness   {_fmt(result.input_lufs)} -> {_fmt(result.output_lufs)} LUFS    "
        f"true peak {_fmt(result.input_true_peak_dbtp)} -> {_fmt(result.output_true_peak_dbtp)} dBTP"
    )
    print(
        f"  gain {result.gain_db:+.2f} dB, limiting up to {result.limiting_db:.2f} dB, "
        f"{result.iterations} iteration(s), {result.realtime_factor:.0f}x real time"
    )
    if result.reference is not None:
        r = result.reference
        print(
            f"  reference: spectral distance {_fmt(r.distance_before_db)} -> {_fmt(r.distance_after_db)} dB, "
            f"width {r.width_input:.4f} -> {r.width_output:.4f} (reference {r.width_reference:.4f}), "
            f"matching gain {r.gain_db:+.2f} dB"
        )
    for note in result.notes:
        print(f"  note: {note}")
    if not result.reached:
        print("  target NOT reached (see the warnings above)")
    return 0


def _table(rows: list[tuple[str, list[str]]], names: list[str]) -> str:
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':<24}" + "".join(f"{n:>{width + 2}}" for n in names)]
    lines += [f"{label:<24}" + "".join(f"{v:>{width + 2}}" for v in values) for label, values in rows]
    return "\n".join(lines)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from ..analysis import analyze, check_plot_path, plot_analysis, spectral_distance_db
    from ..audio_io import read_audio

    paths = [p for p in (args.file, args.file2) if p]
    if args.plot:
        check_plot_path(args.plot, tuple(paths))
    signals = [read_audio(p, downmix=args.downmix) for p in paths]
    results = [analyze(x, sr) for x, sr in signals]
    distance = None
    if len(signals) == 2:
        (a, sa), (b, sb) = signals
        distance = spectral_distance_db(a, sa, b, sb)
    plot_path = None
    if args.plot:
        (a, sa) = signals[0]
        b, sb = signals[1] if len(signals) == 2 else (None, None)
        labels = (Path(paths[0]).name, Path(paths[-1]).name)
        plot_path = plot_analysis(args.plot, a, sa, b, sb, labels=labels)
    if args.json:
        out = {
            "files": [{"file": str(p)} | r.to_dict() for p, r in zip(paths, results, strict=True)],
            "spectral_distance_db": round(distance, 3)
            if distance is not None and math.isfinite(distance)
            else None,
            "plot": str(plot_path) if plot_path else None,
        }
        print(json.dumps(out, indent=2))
        return 0
    rows = [
        ("duration (s)", [f"{r.duration_s:.2f}" for r in results]),
        ("sample rate (Hz)", [str(r.sample_rate) for r in results]),
        ("channels", [str(r.channels) for r in results]),
        ("integrated (LUFS)", [_fmt(r.integrated_lufs) for r in results]),
        ("short-term max (LUFS)", [_fmt(r.short_term_max_lufs) for r in results]),
        ("momentary max (LUFS)", [_fmt(r.momentary_max_lufs) for r in results]),
        ("loudness range (LU)", [_fmt(r.loudness_range_lu) for r in results]),
        ("true peak (dBTP)", [_fmt(r.true_peak_dbtp) for r in results]),
        ("sample peak (dBFS)", [_fmt(r.sample_peak_dbfs) for r in results]),
        ("crest factor (dB)", [_fmt(r.crest_factor_db) for r in results]),
    ]
    rows += [(f"band {k} (dB)", [_fmt(r.bands_db[k], ".1f") for r in results]) for k in results[0].bands_db]
    rows += [
        ("stereo width (S/M)", [f"{r.stereo_width:.4f}" for r in results]),
        ("L/R correlation", [f"{r.correlation:.3f}" for r in results]),
    ]
    print(_table(rows, [Path(p).name for p in paths]))
    if distance is not None:
        print(f"spectral distance: {_fmt(distance)} dB (RMS over 1/3 octaves, loudness-normalised)")
    if plot_path:
        print(f"wrote plot {plot_path}")
    return 0


def add_max_limiting(parser: argparse.ArgumentParser) -> None:
    """The ``--max-limiting DB`` option (None: the default cap of `MasterSettings`)."""
    parser.add_argument(
        "--max-limiting",
        type=float,
        metavar="DB",
        help=f"most peak limiting allowed to reach the target (default: {MasterSettings().max_limiting_db:g} dB; "
        f"0..{MAX_LIMITING_CAP_DB:g})",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """The ``--target`` option of a job that masters (a preset of the one target table)."""
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        choices=tuple(TARGETS),
        help=f"loudness preset: {describe_targets()}",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``plugin-bridge`` parser."""
    m = sub.add_parser(
        "master",
        help="master a mix to a loudness target under a true-peak ceiling, optionally matching a reference",
    )
    m.add_argument("input", help="input audio (wav, flac, ogg, mp3)")
    m.add_argument("-o", "--output", required=True, help="output file (.wav 32-bit float or .flac 24-bit)")
    g = m.add_mutually_exclusive_group()
    g.add_argument(
        "--target",
        choices=TARGET_NAMES,
        help=f"loudness preset: {describe_targets()} "
        f"(default: {DEFAULT_TARGET}, or the reference's loudness with --reference)",
    )
    g.add_argument("--lufs", type=float, help="custom integrated loudness target (LUFS)")
    m.add_argument(
        "--ceiling", type=float, help="true-peak ceiling (dBTP; default: the target's, -1 if custom)"
    )
    m.add_argument("--reference", help="reference track whose spectrum, width (and loudness) to match")
    add_max_limiting(m)
    m.add_argument(
        "--bit-depth", choices=tuple(SUBTYPES), help="output sample format (default: wav 32f, flac 24)"
    )
    m.add_argument("--downmix", action="store_true", help="fold inputs with more than 2 channels to stereo")
    m.add_argument("--json", action="store_true", help="print the result as JSON")
    m.add_argument("--quiet", action="store_true", help="no progress bar (it shows on a terminal after 5 s)")
    m.set_defaults(func=_cmd_master)

    a = sub.add_parser("analyze", help="measure loudness, peaks, dynamics, spectrum and stereo image")
    a.add_argument("file", help="audio file")
    a.add_argument("file2", nargs="?", help="a second file to compare (e.g. the master)")
    a.add_argument("--plot", help="write a PNG of the spectra and loudness over time")
    a.add_argument("--downmix", action="store_true", help="fold inputs with more than 2 channels to stereo")
    a.add_argument("--json", action="store_true", help="print the measurements as JSON")
    a.set_defaults(func=_cmd_analyze)
