"""Audio I/O: validation at the door, streaming blocks, atomic writes."""

from __future__ import annotations

import importlib.util
import os
import stat

import numpy as np
import pytest
import soundfile as sf
from signals import SR, noise

from plugin_bridge.audio_io import (
    AtomicAudioWriter,
    check_audio_array,
    check_output_path,
    downmix_to_stereo,
    inspect_audio,
    iter_blocks,
    read_audio,
    write_audio,
)
from plugin_bridge.cli import main
from plugin_bridge.errors import AudioError


def test_blocks_reassemble_the_file(stereo_wav):
    x, sr = sf.read(stereo_wav, dtype="float32", always_2d=True)
    blocks = list(iter_blocks(stereo_wav, block_size=1000))
    assert all(b.shape == (2, 1000) for b in blocks[:-1]) and blocks[-1].shape[1] == len(x) % 1000 or 1000
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), x.T)


@pytest.mark.parametrize(
    "suffix, subtype", [(".flac", "PCM_24"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")]
)
def test_compressed_formats_read(tmp_path, suffix, subtype):
    path = tmp_path / f"a{suffix}"
    sf.write(path, noise(1.0).T, SR, subtype=subtype)
    audio, sr = read_audio(path)
    assert sr == SR and audio.shape[0] == 2 and abs(audio.shape[1] - SR) < 3000


def test_missing_empty_corrupt_truncated(tmp_path, stereo_wav):
    with pytest.raises(AudioError, match="file not found"):
        inspect_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        inspect_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing here at all" * 4)
    with pytest.raises(AudioError, match="cannot decode"):
        inspect_audio(corrupt)
    data = stereo_wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        inspect_audio(cut)
    flac = tmp_path / "cut.flac"
    sf.write(flac, noise(2.0).T, SR)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cut.flac: (corrupt or truncated|truncated)"):
        list(iter_blocks(flac))


def test_zero_length_and_nan_samples(tmp_path):
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros((0, 2), dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="no audio"):
        inspect_audio(zero)
    x = noise(1.0)
    x[1, 30000] = np.nan
    nan = tmp_path / "nan.wav"
    sf.write(nan, x.T, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf.*channel 1, frame 30000"):
        list(iter_blocks(nan, block_size=4096))


def test_multichannel_needs_downmix(tmp_path):
    path = tmp_path / "surround.wav"
    x = np.zeros((SR // 10, 6), dtype=np.float32)
    x[:, 2] = 0.5  # centre only
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="6 channels.*--downmix"):
        inspect_audio(path)
    audio, _ = read_audio(path, downmix=True)
    assert audio.shape[0] == 2
    np.testing.assert_allclose(audio[:, 0], [0.5 * np.sqrt(0.5)] * 2, rtol=1e-6)
    assert downmix_to_stereo(np.ones((4, 3), dtype=np.float32)).shape == (2, 3)


def test_sample_rate_limits(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, np.zeros((100, 1)), 4000)
    with pytest.raises(AudioError, match="sample rate 4000 Hz"):
        inspect_audio(path)
    with pytest.raises(AudioError, match="outside 8000-192000"):
        check_audio_array(np.zeros(10), 200000)


def test_array_checks():
    assert check_audio_array(np.zeros(5), SR).shape == (1, 5)
    with pytest.raises(AudioError, match="3 channels"):
        check_audio_array(np.zeros((3, 5)), SR)
    with pytest.raises(AudioError, match="non-finite"):
        check_audio_array(np.array([0.0, np.inf]), SR)


def test_output_path_checks(tmp_path, stereo_wav):
    with pytest.raises(AudioError, match="must end in"):
        check_output_path(tmp_path / "x.mp3")
    with pytest.raises(AudioError, match="does not exist"):
        check_output_path(tmp_path / "no" / "x.wav")
    with pytest.raises(AudioError, match="overwrite the input"):
        check_output_path(stereo_wav, (stereo_wav,))
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if not os.access(ro, os.W_OK):  # root can write anywhere
            with pytest.raises(AudioError, match="not writable"):
                check_output_path(ro / "x.wav")
    finally:
        os.chmod(ro, 0o700)


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with AtomicAudioWriter(target, SR, 2) as w:
            w.write(noise(0.1))
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_write_round_trip_is_exact_for_float_wav(tmp_path):
    x = noise(0.5)
    path = write_audio(tmp_path / "x.wav", x, SR)
    y, sr = read_audio(path)
    np.testing.assert_array_equal(x, y)
    flac = write_audio(tmp_path / "x.flac", x * 0.5, SR)
    z, _ = read_audio(flac)
    np.testing.assert_allclose(z, x * 0.5, atol=2.0**-22)


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    """Run the test under ``request.param`` as the process umask; yields it."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_written_files_follow_the_umask(tmp_path, stereo_wav, umask, capsys):
    """A render, a master and a plot get the mode any program's output gets (0644 under umask 022),
    not the 0600 of the temporary file they are written through."""
    render, master, plot = tmp_path / "render.wav", tmp_path / "master.flac", tmp_path / "plot.png"
    assert main(["render", str(stereo_wav), "-o", str(render), "--backend", "numpy"]) == 0
    assert main(["master", str(stereo_wav), "-o", str(master)]) == 0
    written = [render, master]
    if importlib.util.find_spec("matplotlib"):
        assert main(["analyze", str(stereo_wav), "--plot", str(plot)]) == 0
        written.append(plot)
    capsys.readouterr()
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
    assert write_audio(tmp_path / "direct.wav", noise(0.1), SR).stat().st_mode & 0o777 == 0o666 & ~umask
    assert not list(tmp_path.glob(".*"))
