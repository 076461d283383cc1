#!/usr/bin/env python3
"""Blind benchmark of the AI mix (issue 13): finished music the models never heard, mis-mixed by
damage the chain does not share, corrected by each row, judged by the audio against the original.

Material: the music of two Debian packages kept out of training and tuning, ``pushover-data`` (its
10 themes, light electronic) and ``freedroidrpg-data`` (the 16 tracks of its sound/music folder, game
score); ``apt-get install pushover-data freedroidrpg-data``. For each tier of
`plugin_bridge.ml.degrade.TIERS` (clear faults, middle, matters of taste) ``--clips`` clips: a song
round-robin, a random ``--seconds`` excerpt from a loud part (excerpts more than 15 dB below the
song's integrated loudness are redrawn), as 44.1 kHz stereo; damaged with `draw_damage` /
`apply_damage` (foreign shelves, peaks, tilts, width, level -12..-3 dB; a damaged clip that would
peak above -0.1 dBFS is turned down as a whole and the extra offset recorded, so that no clip is
clipped) and written as a 24-bit WAV: the file every row starts from. Everything is seeded
(``--seed``; each clip's draws depend on seed, tier and index only).

Rows, in the same run:

- ``do nothing``: the damaged clip itself;
- ``mastering only``: ``mix``'s mastering step (`plugin_bridge.pipeline.apply_master`, default
  target and settings: loudness -14 LUFS, true-peak limiting capped at 6 dB) on the damaged clip,
  no corrective move: what ``mix`` gives when a model changes nothing. Mastering is not neutral for
  these metrics (a quiet excerpt pushed to -14 LUFS is peak-limited, which moves its band balance),
  so this row is the baseline the model rows' moves add to;
- ``matchering``: matchering 2 (``pip install matchering``; the row is skipped with a hint when it
  is not importable) given the true original excerpt as its reference: the practical upper anchor;
- ``chain LSQ fit, no master`` and ``chain LSQ fit``: the default chain's EQ gains, width and input
  gain fitted to the true original by least squares (`plugin_bridge.ml.chainfit.fit_chain`),
  rendered through the real default chain (`plugin_bridge.render.render_array`, backend auto, tails
  as ``mix``), then as is (the best the chain can do) and mastered as ``mix`` masters (the best a
  model can do through ``mix``; the fitted values are in the JSON);
- ``cnn``, ``cnn_large``, ``ast``, ``ensemble``: ``plugin-bridge mix CLIP -o DIR --model all`` run
  as a user runs it, one subprocess per clip (``--jobs`` at a time), and its ``mix_MODEL.wav`` files
  read back. ``--models DIR`` is passed on as ``$PLUGIN_BRIDGE_MODELS``, ``--mix-args "..."`` (e.g.
  ``"--intensity 0.5"``) are appended to the command. A clip whose ``mix`` fails counts as failed
  for these rows, with the error's one line.

Metrics per clip against the true original (`plugin_bridge.ml.evaluate.audio_metrics`, each row's
audio first normalised to the original's integrated loudness, BS.1770): ``balance_db`` (mean
|difference| of 1/3-octave band levels of the mid signal, total removed), ``width_db`` (|side/mid
level ratio difference|), ``mrstft``. Per row and tier: the means, the share of clips whose balance
error is below the input's (improved), the share made worse by more than 0.5 dB, the worst clip
(largest balance-error increase over the input), and issue 13's done-when checks (PASS/FAIL; a row
with a failed clip fails):

- clear: mean balance <= 50 % of doing nothing, improved on >= 90 % of clips, mean width <= 50 %;
- middle: mean balance < doing nothing and improved on >= 75 %;
- taste: no clip worse by more than 0.5 dB and mean balance <= doing nothing.

Writes every clip's rows, its damage and the summary to ``--out`` (JSON, atomically) and prints a
Markdown summary for the README.

Usage: ``python bench/bench_blind.py [--clips 16] [--seconds 12] [--seed 0] [--models DIR]
[--mix-args "--intensity 0.5"] [--jobs 2] [--out bench/results/blind.json] [--quick] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import SR

from plugin_bridge.ml.evaluate import WORSE_DB, done_when

PACKAGES: dict[str, str] = {
    # package -> the part of its file list that is music
    "pushover-data": "/themes/",
    "freedroidrpg-data": "/sound/music/",
}
MUSIC_SUFFIXES = (".ogg", ".mp3")
MODEL_ROWS: tuple[str, ...] = ("cnn", "cnn_large", "ast", "ensemble")
NOTHING, MASTER_ONLY, MATCHERING = "do nothing", "mastering only", "matchering"
CHAIN_RAW, CHAIN = "chain LSQ fit, no master", "chain LSQ fit"
METRICS = ("balance_db", "width_db", "mrstft")
#: Excerpts quieter than the song's integrated loudness by more than this (dB) are redrawn.
QUIET_DB = 15.0
#: A damaged clip whose peak would exceed this (dBFS) is turned down as a whole before writing.
PEAK_DBFS = -0.1
TIER_TITLES = {
    "clear": "clear faults",
    "middle": "middle",
    "taste": "matters of taste",
}


@dataclass
class Clip:
    """One benchmark clip: where it came from, its damage, its files and every row's result."""

    id: str
    tier: str
    song: str
    package: str
    start_s: float
    excerpt_lufs: float
    song_lufs: float
    damage: dict
    extra_gain_db: float
    path: Path
    reference_path: Path
    rows: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "id": self.id,
            "tier": self.tier,
            "song": self.song,
            "package": self.package,
            "start_s": round(self.start_s, 2),
            "excerpt_lufs": round(self.excerpt_lufs, 2),
            "song_lufs": round(self.song_lufs, 2),
            "damage": self.damage,
            "extra_gain_db": round(self.extra_gain_db, 2),
            "rows": self.rows,
        }


# --------------------------------------------------------------------------------------------
# Material
# --------------------------------------------------------------------------------------------


def find_songs() -> list[tuple[str, str]]:
    """``(package, path)`` of the held-out music, the packages interleaved (sorted within each);
    an error naming the packages to install when one is missing."""
    per_package: list[list[tuple[str, str]]] = []
    missing = []
    for pkg, part in PACKAGES.items():
        try:
            listed = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            missing.append(pkg)
            continue
        files = sorted(
            p
            for p in listed.splitlines()
            if part in p and p.lower().endswith(MUSIC_SUFFIXES) and os.path.isfile(p)
        )
        per_package.append([(pkg, p) for p in files])
    if missing:
        raise SystemExit(f"missing held-out music: apt-get install {' '.join(missing)}")
    songs = []
    for i in range(max(len(x) for x in per_package)):
        songs += [x[i] for x in per_package if i < len(x)]
    return songs


def read_song(path: str) -> np.ndarray:
    """A whole song as ``(2, n)`` float32 at 44.1 kHz (mono duplicated, other rates resampled)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    x = data.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    elif x.shape[0] > 2:
        x = x[:2]
    if sr != SR:
        g = math.gcd(SR, int(sr))
        x = resample_poly(x, SR // g, int(sr) // g, axis=1).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def loud_excerpt(
    song: np.ndarray, seconds: float, song_lufs: float, rng: np.random.Generator, tries: int = 50
) -> tuple[int, float]:
    """Start frame and integrated loudness (LUFS) of a random ``seconds`` excerpt no more than
    `QUIET_DB` below ``song_lufs`` (the loudest of ``tries`` draws when none is)."""
    from plugin_bridge.loudness import integrated_loudness

    n = int(round(seconds * SR))
    best = (0, -math.inf)
    for _ in range(tries):
        start = int(rng.integers(0, song.shape[1] - n + 1))
        lufs = integrated_loudness(song[:, start : start + n], SR)
        if lufs >= song_lufs - QUIET_DB:
            return start, lufs
        if lufs > best[1]:
            best = (start, lufs)
    return best


def make_clips(
    songs: list[tuple[str, str]], tiers: tuple[str, ...], clips: int, seconds: float, seed: int, work: Path
) -> list[Clip]:
    """Draw, damage and write every clip (songs round-robin over all tiers; each song decoded once)."""
    from plugin_bridge.audio_io import write_audio
    from plugin_bridge.loudness import integrated_loudness
    from plugin_bridge.ml.degrade import apply_damage, draw_damage

    n = int(round(seconds * SR))
    plan: dict[int, list[tuple[int, str, int]]] = {}  # song index -> [(order, tier, index)]
    k = 0
    for tier in tiers:
        for i in range(clips):
            plan.setdefault(k % len(songs), []).append((k, tier, i))
            k += 1
    out: dict[int, Clip] = {}
    for s, wanted in sorted(plan.items()):
        pkg, path = songs[s]
        song = read_song(path)
        if song.shape[1] < n:
            raise SystemExit(f"{path}: {song.shape[1] / SR:.1f} s, shorter than a {seconds:g} s excerpt")
        song_lufs = integrated_loudness(song, SR)
        for order, tier, i in wanted:
            rng = np.random.default_rng([seed, tiers.index(tier), i])
            start, lufs = loud_excerpt(song, seconds, song_lufs, rng)
            ref = song[:, start : start + n]
            damage = draw_damage(rng, tier)
            damaged = apply_damage(ref, SR, damage)
            peak = float(np.max(np.abs(damaged)))
            extra = min(0.0, PEAK_DBFS - 20 * math.log10(max(peak, 1e-12)))
            damaged = (damaged * 10 ** (extra / 20)).astype(np.float32)
            cid = f"{tier}-{i:02d}"
            folder = work / cid
            folder.mkdir(parents=True, exist_ok=True)
            clip_path = write_audio(folder / f"{cid}.wav", damaged, SR, "PCM_24")
            ref_path = write_audio(folder / "original.wav", ref, SR, "FLOAT")
            out[order] = Clip(
                id=cid,
                tier=tier,
                song=Path(path).name,
                package=pkg,
                start_s=start / SR,
                excerpt_lufs=lufs,
                song_lufs=song_lufs,
                damage=damage.to_dict(),
                extra_gain_db=extra,
                path=clip_path,
                reference_path=ref_path,
            )
        del song
    return [out[k] for k in sorted(out)]


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def read_back(path: Path, frames: int) -> np.ndarray:
    """A written file as ``(2, frames)`` float32 at 44.1 kHz (cut or zero-padded to ``frames``)."""
    x = read_song(str(path))
    if x.shape[1] >= frames:
        return x[:, :frames]
    return np.pad(x, ((0, 0), (0, frames - x.shape[1])))


def metrics(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """`audio_metrics` of ``x`` against ``ref`` (rounded), ``x`` first normalised to ``ref``'s
    integrated loudness (BS.1770): every metric judges balance, width and timbre, never level.

    (The normalisation matters for ``balance_db`` too: `third_octave_db` leaves the 1/3-octave bands
    that hold no FFT bin at a fixed floor, so without it a pure level change reads as a balance
    error, about 1 dB per 10 dB of level.)"""
    from plugin_bridge.loudness import integrated_loudness
    from plugin_bridge.ml.evaluate import audio_metrics

    x = x[:, : ref.shape[1]]
    gain_db = integrated_loudness(ref, SR) - integrated_loudness(x, SR)
    if math.isfinite(gain_db):
        x = x * np.float32(10 ** (gain_db / 20))
    m = audio_metrics(x, ref)
    return {k: round(float(m[k]), 4) for k in METRICS}


def matchering_available() -> str | None:
    """None when matchering can run, else why not (with the install hint)."""
    try:
        import matchering  # noqa: F401
    except ImportError:
        return "matchering is not installed (.venv/bin/pip install matchering, or the 'bench' extra)"
    return None


def run_matchering(clip: Clip, ref: np.ndarray) -> dict:
    """matchering 2 on the damaged clip with the original as its reference, 24-bit output."""
    import matchering as mg

    out = clip.path.parent / "matchering.wav"
    try:
        mg.process(target=str(clip.path), reference=str(clip.reference_path), results=[mg.pcm24(str(out))])
    except Exception as e:  # matchering raises its own types on odd material
        return {"error": one_line(str(e) or type(e).__name__)}
    return metrics(read_back(out, ref.shape[1]), ref)


def run_chain_fit(damaged: np.ndarray, ref: np.ndarray) -> tuple[dict, dict]:
    """`fit_chain` to the original, rendered through the default chain: the rows without and with
    ``mix``'s mastering step (the latter with the fitted ``values``)."""
    from plugin_bridge.ml.chainfit import chain_vector, fit_chain
    from plugin_bridge.pipeline import RENDER_TAIL
    from plugin_bridge.render import render_array

    try:
        values = fit_chain(damaged, ref, SR)
        rendered = render_array(damaged, SR, "default", vector=chain_vector(values), tail=RENDER_TAIL)
        mastered = master(rendered)
    except Exception as e:
        err = {"error": one_line(f"{type(e).__name__}: {e}")}
        return err, err
    fitted = {k: round(v, 3) for k, v in values.items() if k.endswith("gain_db") or k == "width.width"}
    return metrics(rendered, ref), {**metrics(mastered, ref), "values": fitted}


def master(audio: np.ndarray) -> np.ndarray:
    """``audio`` mastered as ``mix`` masters its render (default target and settings)."""
    from plugin_bridge.export.recipe import master_entry
    from plugin_bridge.pipeline import apply_master

    return apply_master(audio, SR, master_entry())[0]


def run_master_only(damaged: np.ndarray, ref: np.ndarray) -> dict:
    """``mix``'s mastering step alone on the damaged clip: a mix that makes no corrective move."""
    try:
        return metrics(master(damaged), ref)
    except Exception as e:
        return {"error": one_line(f"{type(e).__name__}: {e}")}


def one_line(text: str) -> str:
    """The last non-empty line of ``text`` (an error's message), at most 300 characters."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "failed without a message")[:300]


def run_mix(clip: Clip, mix_args: list[str], models: str | None, timeout: float) -> dict:
    """``plugin-bridge mix CLIP -o DIR --model all`` in a subprocess; ``{"dir", "seconds"}`` or
    ``{"error"}`` with the one line it printed."""
    exe = Path(sys.executable).with_name("plugin-bridge")
    cmd = [str(exe) if exe.exists() else "plugin-bridge"]
    out = clip.path.parent / "mix"
    cmd += ["mix", str(clip.path), "-o", str(out), "--model", "all", *mix_args]
    env = dict(os.environ)
    if models:
        env["PLUGIN_BRIDGE_MODELS"] = models
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"plugin-bridge mix timed out after {timeout:g} s"}
    if done.returncode != 0:
        return {"error": one_line(done.stderr or done.stdout) + f" (exit {done.returncode})"}
    return {"dir": str(out), "seconds": round(time.perf_counter() - t, 2)}


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def summarise(clips: list[Clip], rows: list[str]) -> dict[str, dict[str, dict]]:
    """Per tier (and ``all``) and row: means, shares, the worst clip and the done-when checks."""
    tiers = list(dict.fromkeys(c.tier for c in clips))
    out: dict[str, dict[str, dict]] = {}
    for tier in [*tiers, "all"]:
        group = [c for c in clips if tier in ("all", c.tier)]
        base = {c.id: c.rows[NOTHING] for c in group}
        out[tier] = {}
        for row in rows:
            ok = [c for c in group if row in c.rows and "error" not in c.rows[row]]
            failed = [c for c in group if row not in c.rows or "error" in c.rows[row]]
            s: dict = {"n": len(group), "ok": len(ok), "failed": len(failed)}
            if failed:
                errors = list(dict.fromkeys(c.rows.get(row, {}).get("error", "not run") for c in failed))
                s["errors"] = errors[:3]
            if ok:
                for k in METRICS:
                    s[k] = float(np.mean([c.rows[row][k] for c in ok]))
                delta = {c.id: c.rows[row]["balance_db"] - base[c.id]["balance_db"] for c in ok}
                s["improved"] = float(np.mean([d < 0 for d in delta.values()]))
                s["worse"] = float(np.mean([d > WORSE_DB for d in delta.values()]))
                worst = max(delta, key=delta.get)
                s["worst"] = {"clip": worst, "balance_increase_db": round(delta[worst], 3)}
            if row != NOTHING and tier != "all":
                s["checks"] = done_when(tier, s, out[tier][NOTHING])
            out[tier][row] = s
    return out


def markdown(summary: dict, rows: list[str], head: str) -> str:
    """The summary as Markdown tables (one per tier, then all tiers)."""
    lines = [head, ""]
    for tier, by_row in summary.items():
        title = TIER_TITLES.get(tier, "all tiers")
        n = next(iter(by_row.values()))["n"]
        lines += [f"**{title}** ({n} clips)", ""]
        check_col = tier != "all"
        lines.append(
            "| row | balance dB | width dB | MR-STFT | improved | worse > 0.5 dB | worst clip (dB) |"
            + (" done when |" if check_col else "")
        )
        lines.append("|---|---|---|---|---|---|---|" + ("---|" if check_col else ""))
        for row in rows:
            s = by_row[row]
            if not s["ok"]:
                cells = [f"failed on {s['failed']}/{s['n']} clips ({error_refs(s)})", "", "", "", "", ""]
            else:
                fail = f" ({s['failed']} failed: {error_refs(s)})" if s["failed"] else ""
                w = s["worst"]
                cells = [
                    f"{s['balance_db']:.2f}{fail}",
                    f"{s['width_db']:.2f}",
                    f"{s['mrstft']:.3f}",
                    f"{round(s['improved'] * s['ok'])}/{s['ok']}" if row != NOTHING else "-",
                    f"{round(s['worse'] * s['ok'])}/{s['ok']}" if row != NOTHING else "-",
                    f"{w['balance_increase_db']:+.2f} ({w['clip']})" if row != NOTHING else "-",
                ]
            if check_col:
                c = s.get("checks")
                cells.append("-" if c is None else ("PASS" if c["pass"] else f"FAIL: {c['why']}"))
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    if ERRORS:
        lines += ["Errors:", ""] + [f"{i + 1}. {e}" for i, e in enumerate(ERRORS)] + [""]
    return "\n".join(lines)


#: Distinct error lines of failed rows, in order of first appearance (the tables cite them by number).
ERRORS: list[str] = []


def error_refs(s: dict) -> str:
    """``error 1, 2`` for a row summary's errors (numbered in `ERRORS`)."""
    refs = []
    for e in s.get("errors", []):
        if e not in ERRORS:
            ERRORS.append(e)
        refs.append(str(ERRORS.index(e) + 1))
    return "error " + ", ".join(refs)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=16, help="clips per tier (default 16)")
    ap.add_argument("--seconds", type=float, default=12.0, help="excerpt length (s, default 12)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke test: 4 clips per tier, 6 s")
    ap.add_argument(
        "--models", help="models folder for mix (passed as $PLUGIN_BRIDGE_MODELS; default: shipped)"
    )
    ap.add_argument("--mix-args", default="", help='extra flags for every mix run, e.g. "--intensity 0.5"')
    ap.add_argument("--jobs", type=int, default=2, help="mix subprocesses at a time (default 2)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds one mix subprocess may take")
    ap.add_argument("--out", default="bench/results/blind.json", help="JSON results (default %(default)s)")
    ap.add_argument(
        "--keep", metavar="DIR", help="keep the clips and mixes in DIR (default: a temporary folder)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.seconds = 4, 6.0
    logging.basicConfig(level=logging.ERROR)
    t0 = time.perf_counter()

    from plugin_bridge.files import write_atomic
    from plugin_bridge.ml.degrade import TIERS

    mix_args = shlex.split(args.mix_args)
    models = str(Path(args.models).resolve()) if args.models else None
    songs = find_songs()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_blind_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        clips = make_clips(songs, TIERS, args.clips, args.seconds, args.seed, work)
        print(
            f"{len(clips)} clips ({args.clips} per tier x {len(TIERS)}, {args.seconds:g} s) from {len(songs)} "
            f"songs of {', '.join(PACKAGES)}; written in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        no_matchering = matchering_available()
        if no_matchering:
            print(f"skipping the matchering row: {no_matchering}", file=sys.stderr)
        else:
            import matchering as mg

            mg.log(default_handler=lambda *_: None)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            mixes: dict[str, Future] = {
                c.id: pool.submit(run_mix, c, mix_args, models, args.timeout) for c in clips
            }
            for c in clips:  # the in-process rows while the mix subprocesses run
                ref = read_back(c.reference_path, int(round(args.seconds * SR)))
                damaged = read_back(c.path, ref.shape[1])
                c.rows[NOTHING] = metrics(damaged, ref)
                c.rows[MASTER_ONLY] = run_master_only(damaged, ref)
                if not no_matchering:
                    c.rows[MATCHERING] = run_matchering(c, ref)
                c.rows[CHAIN_RAW], c.rows[CHAIN] = run_chain_fit(damaged, ref)
            for c in clips:
                done = mixes[c.id].result()
                ref = read_back(c.reference_path, int(round(args.seconds * SR)))
                for m in MODEL_ROWS:
                    if "error" in done:
                        c.rows[m] = {"error": done["error"]}
                        continue
                    f = Path(done["dir"]) / f"mix_{m}.wav"
                    if not f.is_file():
                        c.rows[m] = {"error": f"mix --model all wrote no {f.name}"}
                        continue
                    c.rows[m] = metrics(read_back(f, ref.shape[1]), ref) | {"mix_seconds": done["seconds"]}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = [NOTHING, MASTER_ONLY, *([] if no_matchering else [MATCHERING]), CHAIN_RAW, CHAIN, *MODEL_ROWS]
    summary = summarise(clips, rows)
    elapsed = time.perf_counter() - t0
    cmd = "python bench/bench_blind.py" + (" --quick" if args.quick else "")
    cmd += "" if args.quick else f" --clips {args.clips} --seconds {args.seconds:g}"
    cmd += f" --seed {args.seed}" + (f' --mix-args "{args.mix_args}"' if args.mix_args else "")
    cmd += f" --models {args.models}" if args.models else ""
    head = (
        f"Blind benchmark (`{cmd}`): {args.clips} clips per tier, {args.seconds:g} s excerpts of "
        f"{len(songs)} songs from {' and '.join(f'`{p}`' for p in PACKAGES)} (never trained on), "
        "errors against the original after BS.1770 normalisation (balance: mean |1/3-octave "
        "difference| of the mid signal, dB; width: |side/mid difference|, dB). improved / worse: balance "
        "error below the input's / above it by more than 0.5 dB; worst clip: the largest balance-error "
        "increase over the input. Models: `plugin-bridge mix --model all`"
        + (f" {args.mix_args}" if args.mix_args else "")
        + ", its written files (mastered). mastering only: mix's mastering step alone on the damaged clip "
        "(no corrective move). chain LSQ fit: the default chain fitted to the true original by least "
        "squares, rendered, without and with mix's mastering step."
    )
    report = markdown(summary, rows, head)
    result = {
        "config": {
            "clips_per_tier": args.clips,
            "seconds": args.seconds,
            "seed": args.seed,
            "quick": args.quick,
            "models": models,
            "mix_args": mix_args,
            "jobs": args.jobs,
            "packages": list(PACKAGES),
            "songs": [p for _, p in songs],
            "tiers": list(TIERS),
        },
        "clips": [c.to_dict() for c in clips],
        "summary": summary,
        "markdown": report,
        "seconds": round(elapsed, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1))
    print(report)
    print(f"wrote {out}; elapsed {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
