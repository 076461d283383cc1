#!/usr/bin/env python3
"""Rebuild the model-training corpus from nothing (no downloads), with fixed seeds.

Sources (licences in models/README.md):

- ``asc-music`` (Debian, GPL-2+): 3 rock/orchestral songs (MP3, 22.05 kHz).
- ``fb-music-high`` (Debian, GPL-2): the Frozen Bubble tracker module, decoded by ffmpeg/libopenmpt.
- ``openttd-openmsx`` (Debian, GPL-2): 31 General MIDI songs, rendered with fluidsynth and the
  Debian ``fluid-soundfont-gm`` (FluidR3, MIT) soundfont.
- ``drascula-music`` (Debian, Drascula licence, BSD-like/DFSG): 31 adventure-game score tracks (Ogg;
  the package holds six identical copies, one per game language: each track is taken once).
- ``singularity-music`` (Debian, CC-BY-SA 3.0 / CC-BY 3.0): 16 ambient/electronic tracks (Ogg).
- ``ufoai-music`` (Debian, GPL-2+ / CC-BY / CC-BY-SA 3.0): the orchestral/ambient tracks of
  ``0music.pk3`` (a zip of Ogg files), those shorter than 20 s left out.
- ``pushover-data`` is **not** used: its 10 light-electronic themes are kept out of training and
  tuning as the unseen-package test (``plugin-bridge eval --data /usr/share/pushover/themes``).
- procedural songs: `plugin_bridge.songgen.compose.compose_song(seed)` rendered per part by
  fluidsynth (FluidR3 or TimGM6mb alternately), each part level-matched to its `MIX_DEFAULTS`
  loudness and panned as in the multitrack sessions, then summed.

Every song is written as 44.1 kHz stereo 24-bit FLAC (at most ``--max-seconds``), and
``manifest.json`` records name, source, path and the split (by song, `assign_splits`).

Usage: ``python render_scripts/build_corpus.py OUT_DIR [--procedural 100] [--seed 0]``.
Missing packages are skipped with a note (apt-get install fb-music-high asc-music openttd-openmsx
fluid-soundfont-gm fluidsynth).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from plugin_bridge.audio_io import read_audio
from plugin_bridge.graph import track_pan_gains
from plugin_bridge.ml.corpus import assign_splits
from plugin_bridge.ml.features import FEATURE_SR, to_feature_rate
from plugin_bridge.songgen.compose import compose_song
from plugin_bridge.songgen.fluid import render_fluidsynth
from plugin_bridge.songgen.multitrack import MIX_DEFAULTS, _loudness, render_parts

ASC_DIR = Path("/usr/share/games/asc/music")
FB_FILE = Path("/usr/share/games/frozen-bubble/snd/frozen-mainzik-2p.xm")
OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
DRASCULA_DIR = Path("/usr/share/scummvm/drascula/audio")
SINGULARITY_DIR = Path("/usr/share/games/singularity/music")
UFOAI_PK3 = Path("/usr/share/games/ufoai/base/0music.pk3")
MIN_SONG_S = 20.0
FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TIM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def _write(out: Path, name: str, audio: np.ndarray, sr: int, max_s: float) -> Path:
    x = to_feature_rate(audio, sr)[:, : int(max_s * FEATURE_SR)]
    peak = float(np.max(np.abs(x))) or 1.0
    x = x * min(1.0, 0.89 / peak)
    path = out / "songs" / f"{name}.flac"
    sf.write(path, x.T, FEATURE_SR, subtype="PCM_24")
    return path


def procedural_song(seed: int, seconds: float) -> np.ndarray:
    """A balanced procedural mix at 44.1 kHz: parts level-matched and panned as in make_multitrack."""
    sf2 = FLUID_R3 if seed % 2 == 0 or not TIM.is_file() else TIM
    parts, _, _ = render_parts(compose_song(seed, seconds), FEATURE_SR, sf2, "auto")
    mix = 0.0
    for name, a in parts.items():
        d = MIX_DEFAULTS.get(name, MIX_DEFAULTS["*"])
        lufs = _loudness(a, FEATURE_SR)
        gain = 10 ** ((d["lufs"] - lufs) / 20) if math.isfinite(lufs) else 0.0
        mono = a.mean(axis=0) if name != "drums" else None
        gl, gr = track_pan_gains(float(d.get("pan", 0.0)), 1 if mono is not None else 2)
        src = np.stack([mono, mono]) if mono is not None else a
        mix = mix + gain * np.stack([gl * src[0], gr * src[1]])
    return np.asarray(mix, dtype=np.float32)


def packaged_ogg_songs():
    """Yield ``(name, source, audio (channels, n), sample_rate)`` for the Ogg music packages that are
    installed (drascula-music, singularity-music, ufoai-music); identical files (drascula's language
    copies) and songs shorter than `MIN_SONG_S` are taken out."""
    import hashlib
    import io
    import zipfile

    seen: set[str] = set()

    def decode(blob: bytes) -> tuple[np.ndarray, int] | None:
        digest = hashlib.sha1(blob).hexdigest()
        if digest in seen:
            return None
        seen.add(digest)
        a, sr = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
        return (a.T, sr) if a.shape[0] >= MIN_SONG_S * sr else None

    sources = [
        ("drascula", "drascula-music", sorted(DRASCULA_DIR.rglob("*.ogg")) if DRASCULA_DIR.is_dir() else []),
        (
            "singularity",
            "singularity-music",
            sorted(SINGULARITY_DIR.glob("*.ogg")) if SINGULARITY_DIR.is_dir() else [],
        ),
    ]
    for prefix, source, files in sources:
        if not files:
            print(f"note: {source} not installed, skipped", file=sys.stderr)
        for f in files:
            got = decode(f.read_bytes())
            if got is not None:
                yield f"{prefix}_{_slug(f.stem)}", source, *got
    if not UFOAI_PK3.is_file():
        print("note: ufoai-music not installed, skipped", file=sys.stderr)
        return
    with zipfile.ZipFile(UFOAI_PK3) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            if info.filename.lower().endswith(".ogg"):
                got = decode(z.read(info))
                if got is not None:
                    yield f"ufoai_{_slug(Path(info.filename).stem)}", "ufoai-music", *got


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--procedural", type=int, default=0, help="number of procedural songs")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each procedural song (s)")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="longest song kept (s)")
    ap.add_argument("--no-packages", action="store_true", help="procedural songs only (tests)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    (out / "songs").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    songs: list[dict] = []

    def add(name: str, source: str, audio: np.ndarray, sr: int) -> None:
        path = _write(out, name, audio, sr, args.max_seconds)
        songs.append({"name": name, "source": source, "path": str(path.resolve())})
        print(f"  {name} ({source}) {time.time() - t0:.0f} s", flush=True)

    if not args.no_packages:
        if ASC_DIR.is_dir():
            for f in sorted(ASC_DIR.glob("*.mp3")):
                a, sr = sf.read(f, dtype="float32", always_2d=True)  # MP3 frame counts are estimates
                add(f"asc_{f.stem}", "asc-music", a.T, sr)
        else:
            print("note: asc-music not installed, skipped", file=sys.stderr)
        if FB_FILE.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "fb.wav"
                subprocess.run(
                    ["ffmpeg", "-v", "error", "-y", "-i", str(FB_FILE), "-ar", "44100", "-ac", "2", str(wav)],
                    check=True,
                )
                a, sr = read_audio(wav)
            add("fb_mainzik", "fb-music-high", a, sr)
        else:
            print("note: fb-music-high not installed, skipped", file=sys.stderr)
        for name, source, audio, sr in packaged_ogg_songs():
            add(name, source, audio, sr)
        if OPENMSX_DIR.is_dir() and FLUID_R3.is_file():
            for f in sorted(OPENMSX_DIR.glob("*.mid")):
                midi = mido.MidiFile(f)
                a = render_fluidsynth(midi, FEATURE_SR, FLUID_R3, timeout_s=120)
                a = a[:, : int(min(args.max_seconds, midi.length + 2) * FEATURE_SR)]
                if np.max(np.abs(a)) > 0:
                    add(f"openmsx_{f.stem}", "openttd-openmsx", a, FEATURE_SR)
        else:
            print("note: openttd-openmsx or fluid-soundfont-gm not installed, skipped", file=sys.stderr)
    for k in range(args.procedural):
        seed = args.seed * 1000 + k
        add(f"proc_{seed:04d}", "procedural", procedural_song(seed, args.seconds), FEATURE_SR)
    by_source: dict[str, list[str]] = {}
    for s in songs:
        by_source.setdefault(s["source"], []).append(s["name"])
    split = assign_splits(by_source, args.seed)
    for s in songs:
        s["split"] = split[s["name"]]
    manifest = {"seed": args.seed, "sample_rate": FEATURE_SR, "songs": songs}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    counts = {k: sum(s["split"] == k for s in songs) for k in ("train", "val", "test")}
    print(f"corpus: {len(songs)} songs {counts} in {time.time() - t0:.0f} s -> {out}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
