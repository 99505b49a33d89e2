"""The audio a user's library holds, written with soundfile, through decode → resample → mel.

Every good file comes back float32 mono at 16 kHz with librosa's length and finite mel;
every bad file raises AudioError with one line, and nothing else escapes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mre.embedder.audio.decode import AUDIO_EXTENSIONS, AudioError, AudioInfo, load_audio, probe, to_mono_float
from mre.embedder.audio.frontend import FrontendConfig, MelFrontend, make_patches

TARGET_SR = 16000
FRONTEND = MelFrontend(FrontendConfig())


def music_like(seconds: float, sample_rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """A plucked A-minor arpeggio over noise, left/right slightly different: [n, channels]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    notes = 220.0 * 2 ** (np.array([0, 3, 7, 12]) / 12)
    pitch = notes[(t * 4).astype(int) % len(notes)]
    envelope = np.exp(-6 * (t % 0.25))
    mono = 0.4 * envelope * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(len(t))
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def expected_length(frames: int, sample_rate: int) -> int:
    return int(np.ceil(frames * TARGET_SR / sample_rate))  # librosa.resample's fix_length


def check_usable(samples: np.ndarray) -> torch.Tensor:
    assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
    mel = FRONTEND(torch.from_numpy(samples)[None])[0]
    assert mel.shape == (1 + len(samples) // 256, 96) and torch.isfinite(mel).all()
    patches = make_patches(mel, 187)
    assert patches.shape[1:] == (187, 96) and len(patches) >= 1
    return mel


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_wav_rates_channels_subtypes(tmp_path, sample_rate, channels, subtype):
    audio = music_like(2.0, sample_rate, channels)
    path = tmp_path / f"track_{sample_rate}_{channels}_{subtype}.wav"
    sf.write(path, audio, sample_rate, subtype=subtype)
    samples, info = load_audio(path, TARGET_SR)
    assert len(samples) == expected_length(len(audio), sample_rate)
    assert info == AudioInfo(str(path), len(audio) / sample_rate, sample_rate, channels, "WAV", subtype, len(audio))
    assert probe(path) == info
    check_usable(samples)


@pytest.mark.parametrize(
    "name, sample_rate, format, subtype",
    [
        ("track.flac", 44100, "FLAC", "PCM_24"),
        ("track.ogg", 22050, "OGG", "VORBIS"),
        ("track.opus", 48000, "OGG", "OPUS"),
        ("track.mp3", 44100, "MP3", "MPEG_LAYER_III"),
        ("track.aiff", 48000, "AIFF", "PCM_16"),
    ],
)
def test_compressed_and_other_containers(tmp_path, name, sample_rate, format, subtype):
    audio = music_like(2.0, sample_rate, 2)
    path = tmp_path / name
    sf.write(path, audio, sample_rate, format=format, subtype=subtype)
    assert path.suffix in AUDIO_EXTENSIONS
    samples, info = load_audio(path, TARGET_SR)
    assert (info.format, info.subtype, info.channels, info.sample_rate) == (format, subtype, 2, sample_rate)
    assert len(samples) == expected_length(info.frames, sample_rate)
    assert abs(info.duration - 2.0) < 0.1
    check_usable(samples)


def test_matches_librosa_load(tmp_path):
    librosa = pytest.importorskip("librosa")
    path = tmp_path / "stereo.flac"
    sf.write(path, music_like(3.3, 44100, 2), 44100, subtype="PCM_16")
    ours, _ = load_audio(path, TARGET_SR)
    reference, _ = librosa.load(path, sr=TARGET_SR)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    ours_head, info = load_audio(path, TARGET_SR, max_seconds=1.5)
    reference_head, _ = librosa.load(path, sr=TARGET_SR, duration=1.5)
    np.testing.assert_allclose(ours_head, reference_head, rtol=0, atol=1e-6)
    assert info.frames == int(3.3 * 44100)  # the file's length, not the part read


def test_long_file_is_read_in_blocks_with_the_same_result(tmp_path, monkeypatch):
    import mre.embedder.audio.decode as audio_module

    path = tmp_path / "long.wav"
    sf.write(path, music_like(5.0, 44100, 2), 44100)
    whole, _ = load_audio(path, TARGET_SR)
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 4099)  # many odd-sized blocks
    blocked, _ = load_audio(path, TARGET_SR)
    np.testing.assert_array_equal(whole, blocked)


def test_silence_and_a_half_second_clip(tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros((44100, 2), dtype=np.int16), 44100, subtype="PCM_16")
    samples, _ = load_audio(silence, TARGET_SR)
    assert len(samples) == 16000 and not samples.any()
    assert not check_usable(samples).any()  # log10(1 + 0) = 0 everywhere

    short = tmp_path / "short.wav"
    sf.write(short, music_like(0.5, 22050, 1), 22050)
    samples, info = load_audio(short, TARGET_SR)
    assert len(samples) == 8000 and info.duration == pytest.approx(0.5)
    mel = check_usable(samples)
    assert mel.shape[0] == 32 and make_patches(mel, 187).shape == (1, 187, 96)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 1, 2])
def test_in_memory_arrays(dtype, channels):
    audio = music_like(1.0, 44100, channels or 1)[:, 0] if channels is None else music_like(1.0, 44100, channels)
    if np.issubdtype(dtype, np.integer):
        full_scale = np.iinfo(dtype).max + 1
        array = np.round(audio * full_scale).astype(dtype)
    else:
        array = audio.astype(dtype)
    samples = to_mono_float(array, 44100, TARGET_SR)
    assert len(samples) == expected_length(44100, 44100)
    reference = to_mono_float(audio, 44100, TARGET_SR)
    np.testing.assert_allclose(samples, reference, atol=1e-4)
    check_usable(samples)
    assert len(to_mono_float(array, TARGET_SR, TARGET_SR)) == 44100  # same rate: no resampling


@pytest.mark.parametrize(
    "array, rate, message",
    [
        (np.zeros(0, np.float32), 44100, "zero-length"),
        (np.zeros((2, 48000), np.float32), 48000, "transpose"),
        (np.zeros(100, np.uint8), 8000, "sample type"),
        (np.array([0.0, np.nan], np.float32), 8000, "NaN"),
        (np.zeros(100, np.float32), 0, "sample rate"),
    ],
)
def test_bad_arrays(array, rate, message):
    with pytest.raises(AudioError, match=message):
        to_mono_float(array, rate, TARGET_SR)


def _bad_files(root: Path) -> dict[str, tuple[Path, str]]:
    good = root / "good.wav"
    sf.write(good, music_like(1.0, 16000, 1), 16000, subtype="PCM_16")
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("these are liner notes, not audio\n" * 20)
    (root / "notes.mp3").write_text("not audio\n")
    (root / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "header_only.wav").write_bytes(good.read_bytes()[:44])  # header claims 16000 frames, none present
    (root / "truncated.wav").write_bytes(good.read_bytes()[:44 + 2 * 4000])  # 4000 of 16000 frames
    aiff = root / "cut.aiff"
    sf.write(aiff, music_like(1.0, 16000, 2), 16000, subtype="PCM_16")
    (root / "truncated.aiff").write_bytes(aiff.read_bytes()[: aiff.stat().st_size // 3])
    flac = root / "cut.flac"
    sf.write(flac, music_like(3.0, 44100, 2), 44100)
    (root / "truncated.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    (root / "a folder.wav").mkdir()
    (root / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    zero = root / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    nan = root / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1] * 100, np.float32), 16000, subtype="FLOAT")
    return {
        "empty": (root / "empty.wav", "empty file"),
        "text named .wav": (root / "text.wav", "not audio"),
        "random bytes .mp3": (root / "noise.mp3", "not audio|corrupt|cannot decode"),
        # libsndfile's MPEG reader, finding no frame, says the file "does not exist": it does
        "text named .mp3": (root / "notes.mp3", r"^(?!.*does not exist).*not audio"),
        "header without data": (root / "header_only.wav", "truncated"),
        "truncated wav": (root / "truncated.wav", r"truncated: the header declares 1\.0 s of audio, the file holds 0\.2 s"),
        "truncated aiff": (root / "truncated.aiff", "truncated"),
        "truncated flac": (root / "truncated.flac", "corrupt or truncated"),
        "missing": (root / "missing.wav", "file not found"),
        "directory": (root / "a folder.wav", "is a directory"),
        "unsupported container": (root / "song.m4a", r"unsupported format.*\.m4a"),
        "zero frames": (zero, "zero-length"),
        "NaN samples": (nan, "NaN"),
    }


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "case",
    ["empty", "text named .wav", "random bytes .mp3", "text named .mp3", "header without data", "truncated wav", "truncated aiff",
     "truncated flac",
     "missing", "directory", "unsupported container", "zero frames", "NaN samples"],
)
def test_bad_files_raise_one_line_audio_error(bad_files, case):
    path, reason = bad_files[case]
    with pytest.raises(AudioError, match=reason) as caught:
        load_audio(path, TARGET_SR)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path) + ": ")
    assert caught.value.path == str(path) and caught.value.reason in message
    if case not in ("NaN samples", "truncated flac"):  # headers fine: only decoding finds out
        with pytest.raises(AudioError):
            probe(path)


def test_a_wav_missing_a_few_bytes_still_decodes_and_a_streamed_one_too(tmp_path):
    """Cut short by < 1 % (a sloppy writer) decodes what is there; a WAV written to a pipe
    carries 0xFFFFFFFF placeholder sizes and is complete."""
    whole = tmp_path / "whole.wav"
    audio = music_like(2.0, 16000, 1)
    sf.write(whole, audio, 16000, subtype="PCM_16")
    data = whole.read_bytes()
    nearly = tmp_path / "nearly.wav"
    nearly.write_bytes(data[: 44 + 2 * 31900])  # 31900 of 32000 frames
    samples, info = load_audio(nearly, TARGET_SR)
    assert len(samples) == 31900 and info.frames == 31900
    np.testing.assert_allclose(samples, audio[:31900, 0], atol=1 / 32768)
    streamed = tmp_path / "streamed.wav"
    placeholder = (0xFFFFFFFF).to_bytes(4, "little")
    streamed.write_bytes(data[:4] + placeholder + data[8:40] + placeholder + data[44:])
    samples, info = load_audio(streamed, TARGET_SR)
    assert info.frames == 32000 and len(samples) == 32000


def test_truncated_ogg_decodes_the_pages_that_are_there(tmp_path):
    whole = tmp_path / "whole.ogg"
    sf.write(whole, music_like(3.0, 44100, 2), 44100)
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    samples, info = load_audio(cut, TARGET_SR)
    assert 0.5 < info.duration < 2.5 and len(samples) == expected_length(info.frames, 44100)
    check_usable(samples)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.wav"
    sf.write(path, music_like(0.5, 16000, 1), 16000)
    path.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        load_audio(path, TARGET_SR)


def test_bad_arguments_are_value_errors(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, music_like(0.5, 16000, 1), 16000)
    with pytest.raises(ValueError, match="target_sr"):
        load_audio(path, 0)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(path, TARGET_SR, max_seconds=-1)
