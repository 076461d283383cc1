"""Rendering MIDI with the fluidsynth command line: dry, 32-bit float, in a subprocess with a timeout.

Reverb and chorus are off (``-R 0 -C 0``) so stems are dry; polyphony is raised so that no voice is
stolen in a full render that a part render would keep (stems then sum to the full render). With
float output fluidsynth applies no dither, and rendering is single-threaded, so the same file,
soundfont and settings give bit-identical audio run after run (checked with fluidsynth 2.3.1).
A file holding one part alone is not that part's share of the full render (a new voice starts from
the gain of the voice that last used its slot); `isolation_plan` renders a part inside the song.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from ..errors import BackendError, ParameterError

#: Soundfonts tried in order when none is given and $PLUGIN_BRIDGE_SOUNDFONT is unset.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
#: fluidsynth's master gain (its default is 0.2): GM soundfonts are quiet, this puts a dense
#: five-part mix around -6 dBFS peak with TimGM6mb.
FLUID_GAIN = 0.6
FLUID_MAX_RATE = 96000


def fluidsynth_path() -> str | None:
    """The fluidsynth executable on PATH, or None."""
    return shutil.which("fluidsynth")


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path | None:
    """The soundfont to use: ``soundfont``, else $PLUGIN_BRIDGE_SOUNDFONT, else the first existing
    of `SOUNDFONT_CANDIDATES`; None when there is none. A named file that does not exist is an error."""
    named = soundfont if soundfont is not None else os.environ.get("PLUGIN_BRIDGE_SOUNDFONT") or None
    if named is not None:
        path = Path(named)
        if not path.is_file():
            raise BackendError(f"soundfont not found: {path}")
        return path
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():  # follows symlinks (default-GM.sf2)
            return Path(candidate)
    return None


def render_fluidsynth(
    midi: mido.MidiFile,
    sample_rate: int,
    soundfont: str | os.PathLike,
    gain: float = FLUID_GAIN,
    timeout_s: float | None = None,
    groups: int = 1,
) -> np.ndarray:
    """Render ``midi`` with fluidsynth; returns ``(2, samples)`` float32 at ``sample_rate`` Hz.

    fluidsynth renders past the end of the file until voices die out (at least 2 s more), so callers
    trim. With ``groups`` > 1 the synth has that many stereo voice groups (MIDI channel c plays in
    group c % groups) and the file holds group 0 only (see `isolation_plan`). Raises `BackendError`
    if fluidsynth is missing, fails or exceeds ``timeout_s`` (default 30 s plus the file's length).
    """
    exe = fluidsynth_path()
    if exe is None:
        raise BackendError("fluidsynth is not installed (apt-get install fluidsynth)")
    if not 8000 <= int(sample_rate) <= FLUID_MAX_RATE:
        raise ParameterError(f"fluidsynth renders at 8000-{FLUID_MAX_RATE} Hz, not {sample_rate} Hz")
    timeout = timeout_s if timeout_s is not None else 30.0 + midi.length
    with tempfile.TemporaryDirectory(prefix="plugin-bridge-fluid-") as tmp:
        mid_path, wav_path = Path(tmp) / "part.mid", Path(tmp) / "out.wav"
        midi.save(mid_path)
        cmd = [
            exe, "-n", "-i", "-q",
            "-R", "0", "-C", "0",
            "-g", f"{gain:g}",
            "-r", str(int(sample_rate)),
            "-o", "synth.polyphony=4096",
            "-o", "synth.cpu-cores=1",
            "-o", "synth.lock-memory=0",
            "-O", "float", "-T", "wav",
            "-F", str(wav_path),
            str(soundfont), str(mid_path),
        ]  # fmt: skip
        if groups > 1:
            cmd[-2:-2] = ["-L", str(groups), "-G", str(groups)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"fluidsynth took longer than {timeout:.0f} s rendering {midi.length:.1f} s of MIDI"
            ) from None
        if proc.returncode != 0 or not wav_path.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BackendError(f"fluidsynth failed (exit {proc.returncode}) with {soundfont}: {detail[0]}")
        data, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
    if rate != int(sample_rate):
        raise BackendError(f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz")
    audio = np.ascontiguousarray(data.T[:2])  # a renderer writing every group puts group 0 first
    return audio if audio.shape[0] == 2 else np.repeat(audio, 2, axis=0)


def isolation_plan(used: set[int], channels: set[int]) -> tuple[dict[int, int], int] | None:
    """How to render only ``channels`` out of a file using ``used`` channels, voice for voice as in
    the full render: a channel remapping and a number of voice groups (see `render_fluidsynth`).

    fluidsynth's file renderer writes voice group 0 only, so the part's channel is moved to the
    only channel in group 0 while every other part keeps playing in other groups. Rendering the
    whole song this way (not a file holding the part alone) keeps voice allocation identical, so the
    parts sum to the full render to float precision (-145 dB measured); a lone part differs from its
    share of the full render at note onsets (fluidsynth ramps a new voice from the gain of the
    voice that last used its slot), about -45 dB. None when the channels cannot be isolated.
    """
    if channels == {9}:  # drums stay on the percussion channel; group 0 of 9 holds channels 0 and 9
        if 0 not in used:
            return {}, 9
        free = [c for c in range(1, 16) if c not in used and c != 9]
        return ({0: free[0]}, 9) if free else None
    if len(channels) == 1 and 9 not in channels:
        c = next(iter(channels))
        return ({c: 0, 0: c} if c else {}), 16
    return None
