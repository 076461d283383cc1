"""Audio files in and out: validated, streamed in blocks, written atomically.

Inside plugin-bridge audio is always ``(channels, samples)`` float32; this module is the only place
that converts from and to files. Reading streams blocks so a 60-minute file is never held whole;
writing goes to a temporary file in the output's folder that is renamed over the target only when
complete, so a crash or an error never leaves a half-written file, and the input is never touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError
from .files import temporary_file_beside

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
READ_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
#: Bit depths a user may ask for, by output suffix, as soundfile subtypes.
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
DEFAULT_BLOCK = 65536


@dataclass(frozen=True)
class AudioInfo:
    """What a readable audio file holds: sample rate (Hz), channels, frames (samples per channel)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _decode_error(path: Path, e: Exception) -> AudioError:
    msg = str(e).split(":", 1)[-1].strip() if str(e) else type(e).__name__
    return AudioError(f"{path}: cannot decode audio ({msg})")


def inspect_audio(path: str | os.PathLike, downmix: bool = False) -> AudioInfo:
    """Check that ``path`` is a readable, non-empty, untruncated audio file and describe it.

    Raises `AudioError` for a missing file, an unknown or corrupt format, a truncated WAV, zero
    frames, a sample rate outside 8-192 kHz, or more than two channels without ``downmix``.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: file not found")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    try:
        with sf.SoundFile(str(p)) as f:
            info = AudioInfo(str(p), int(f.samplerate), int(f.channels), int(f.frames), f.format)
            extra = f.extra_info
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise _decode_error(p, e) from None
    if info.format in ("WAV", "WAVEX", "RF64") and re.search(r"^data\s*:.*should be", extra, re.M):
        raise AudioError(f"{p}: truncated WAV (the data chunk is shorter than its header says)")
    if info.frames <= 0:
        raise AudioError(f"{p}: holds no audio (0 samples)")
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{p}: sample rate {info.sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if info.channels > 2 and not downmix:
        raise AudioError(f"{p}: has {info.channels} channels; only mono and stereo (use --downmix)")
    return info


def downmix_to_stereo(block: np.ndarray) -> np.ndarray:
    """Fold ``(channels > 2, n)`` audio to stereo.

    Six channels are taken as 5.1 (L R C LFE Ls Rs) and folded per ITU-R BS.775 (centre and
    surrounds at -3 dB, LFE dropped); any other count sends even-numbered channels left and odd
    ones right, averaged.
    """
    c = block.shape[0]
    if c <= 2:
        return block
    if c == 6:
        k = np.float32(np.sqrt(0.5))
        left = block[0] + k * block[2] + k * block[4]
        right = block[1] + k * block[2] + k * block[5]
        return np.stack([left, right]).astype(np.float32)
    return np.stack([block[0::2].mean(axis=0), block[1::2].mean(axis=0)]).astype(np.float32)


def _check_finite(block: np.ndarray, path: str, offset: int) -> None:
    if not np.isfinite(block).all():
        bad = np.argwhere(~np.isfinite(block))[0]
        raise AudioError(
            f"{path}: non-finite sample (NaN or Inf) at channel {bad[0]}, frame {offset + bad[1]}"
        )


def iter_blocks(
    path: str | os.PathLike, block_size: int = DEFAULT_BLOCK, downmix: bool = False
) -> Iterator[np.ndarray]:
    """Yield consecutive ``(channels, n)`` float32 blocks of a file (n = block_size, the last shorter).

    Checks every block for NaN/Inf and the total length against the header; a corrupt or
    truncated stream raises `AudioError` naming the file and frame.
    """
    info = inspect_audio(path, downmix)
    offset = 0
    try:
        with sf.SoundFile(info.path) as f:
            while True:
                data = f.read(block_size, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                block = np.ascontiguousarray(data.T)
                _check_finite(block, info.path, offset)
                offset += block.shape[1]
                yield downmix_to_stereo(block) if downmix else block
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError(f"{info.path}: corrupt or truncated audio near frame {offset} ({e})") from None
    if offset < info.frames:
        raise AudioError(f"{info.path}: truncated: read {offset} of {info.frames} frames")


def read_audio(path: str | os.PathLike, downmix: bool = False) -> tuple[np.ndarray, int]:
    """Read a whole file as ``(channels, samples)`` float32 and its sample rate (Hz)."""
    info = inspect_audio(path, downmix)
    blocks = list(iter_blocks(path, downmix=downmix))
    return np.concatenate(blocks, axis=1), info.sample_rate


def check_audio_array(audio: np.ndarray, sample_rate: float, where: str = "audio") -> np.ndarray:
    """Validate an in-memory signal and return it as ``(channels, samples)`` float32.

    Accepts 1-D (mono) or 2-D ``(channels, samples)`` arrays with 1 or 2 channels; rejects empty,
    non-finite audio and sample rates outside 8-192 kHz with an `AudioError`.
    """
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AudioError(f"{where}: expected (channels, samples), got shape {arr.shape}")
    if arr.shape[0] > 2:
        raise AudioError(
            f"{where}: {arr.shape[0]} channels in shape {arr.shape}; expected (channels<=2, samples)"
        )
    if arr.shape[1] == 0:
        raise AudioError(f"{where}: holds no audio (0 samples)")
    if not MIN_SAMPLE_RATE <= float(sample_rate) <= MAX_SAMPLE_RATE:
        raise AudioError(f"{where}: sample rate {sample_rate} Hz is outside 8000-192000 Hz")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    _check_finite(arr, where, 0)
    return arr


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_location(out: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Check before any work that a file (audio, plot, recipe...) can be written at ``out``.

    Its folder must exist and be writable, ``out`` must not be a folder nor one of ``inputs``.
    Raises `AudioError` naming the file otherwise; returns ``out`` as a `Path`.
    """
    p = Path(out)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise AudioError(f"{p}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise AudioError(f"{p}: output folder {folder} is not writable")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder")
    for src in inputs:
        if _same_file(p, Path(src)) or p.resolve() == Path(src).resolve():
            raise AudioError(f"{p}: refusing to overwrite the input file")
    return p


def check_output_path(out: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Validate an audio output path before any work: known suffix, then `check_output_location`."""
    p = Path(out)
    if p.suffix.lower() not in WRITE_FORMATS:
        raise AudioError(f"{p}: output must end in {' or '.join(WRITE_FORMATS)}")
    return check_output_location(p, inputs)


class AtomicAudioWriter:
    """Write audio blocks to a temporary file and rename it over ``path`` on success.

    Use as a context manager; on an exception the temporary file is removed and ``path`` is left
    as it was. WAV is written as 32-bit float, FLAC as 24-bit, unless ``subtype`` says otherwise.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str | None = None):
        self.path = Path(path)
        fmt, default_subtype = WRITE_FORMATS[self.path.suffix.lower()]
        self.format, self.subtype = fmt, subtype or default_subtype
        if fmt == "FLAC" and self.subtype == "FLOAT":
            raise AudioError(f"{self.path}: FLAC cannot hold 32-bit float; use 16 or 24 bits")
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.frames = 0
        self._tmp: str | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> AtomicAudioWriter:
        self._tmp = temporary_file_beside(self.path, f".part{self.path.suffix}")
        try:
            self._file = sf.SoundFile(
                self._tmp, "w", self.sample_rate, self.channels, self.subtype, format=self.format
            )
        except (sf.SoundFileError, RuntimeError, OSError) as e:
            os.unlink(self._tmp)
            raise AudioError(f"{self.path}: cannot write ({e})") from None
        return self

    def write(self, block: np.ndarray) -> None:
        """Append a ``(channels, n)`` block."""
        assert self._file is not None
        if block.shape[1]:
            self._file.write(np.ascontiguousarray(block.T))
            self.frames += block.shape[1]

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._file is not None and self._tmp is not None
        try:
            self._file.close()
        finally:
            if exc_type is None:
                os.replace(self._tmp, self.path)
            elif os.path.exists(self._tmp):
                os.unlink(self._tmp)


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write ``(channels, samples)`` audio to ``path`` atomically; returns the path."""
    p = check_output_path(path)
    arr = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    with AtomicAudioWriter(p, sample_rate, arr.shape[0], subtype) as w:
        for start in range(0, arr.shape[1], DEFAULT_BLOCK):
            w.write(arr[:, start : start + DEFAULT_BLOCK])
    return p
