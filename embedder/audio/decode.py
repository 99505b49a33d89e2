"""Audio files → float32 mono samples at a model's sample rate.

Decoding is libsndfile's (through soundfile: wav, flac, ogg/vorbis, opus, mp3, aiff, ...);
resampling is soxr at "HQ" quality, librosa's default ``res_type='soxr_hq'``, and the steps
are librosa's (read float32, mean of channels, resample, fix the length to
``ceil(n · target/native)``), so ``load_audio(path, sr)`` gives what
``librosa.load(path, sr=sr)`` gives. Files are read in blocks through a streaming resampler
(soxr's stream output equals its one-shot output), so a long file never sits in memory
at its native rate and channel count.

Anything that is not decodable audio raises ``AudioError`` with one line saying why.
"""
from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from mre.util.names import is_utf8

# Extensions of the formats libsndfile 1.2 reads (soundfile.available_formats(): WAV, WAVEX,
# RF64, W64, AIFF, AU, CAF, FLAC, OGG (vorbis, opus), MP3 (MPEG layers I-III), IRCAM, NIST,
# VOC, PAF, AVR, SVX, SD2, SDS, XI, WVE, PVF). Matlab .mat and HTK are left out: files with
# those names are rarely audio. Lower case, with the dot, as os.path.splitext gives them.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".bwf", ".rf64", ".w64",
    ".flac",
    ".ogg", ".oga", ".opus",
    ".mp3", ".mp2", ".mp1",
    ".aiff", ".aif", ".aifc",
    ".au", ".snd",
    ".caf",
    ".sf", ".ircam", ".nist", ".sph",
    ".voc", ".paf", ".avr", ".svx", ".8svx", ".iff", ".sd2", ".sds", ".xi", ".wve", ".pvf",
})

# soxr quality librosa uses by default (librosa.load res_type="soxr_hq").
RESAMPLE_QUALITY = "soxr_hq"
# Frames decoded per read: ~3 s of 44.1 kHz audio, small enough for many worker processes.
BLOCK_FRAMES = 1 << 17
# Integer PCM full scale, as libsndfile maps it to float ([-1, 1)).
_INT_FULL_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
# More channels than this in a 2-D array is almost surely a [channels, n] array passed the wrong way round.
_MAX_CHANNELS = 64

# libsndfile's header log reports a chunk whose declared size exceeds what the file holds
# as "data : 448000 (should be 149304)" (WAV), " SSND : ... (should be ...)" (AIFF),
# "Data Size : ... (should be ...)" (AU), "RIFF"/"FORM" for the container.
_SIZE_MISMATCH = re.compile(r"^\s*([A-Za-z][\w ]*?)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Sizes a writer that could not seek back (a pipe) leaves in the header: not a truncation.
_PLACEHOLDER_SIZE = 0x7FFF0000
# A file holding less than this share of the audio its header declares is reported truncated;
# a few missing bytes at the end (sloppy writers) are tolerated and decoded.
_MIN_PRESENT_SHARE = 0.99
# A whole file that decodes to less than this share of the frames its header declares (an MP3
# whose Xing/LAME header says 4 s, cut to 1 s by a failed copy) is reported truncated. Looser
# than the chunk check above: a compressed format's frame count can be an estimate.
_MIN_DECODED_SHARE = 0.9

# libsndfile's public error codes (sndfile.h: SF_ERR_*), as soundfile.LibsndfileError.code.
_SF_ERR_UNRECOGNISED_FORMAT = 1
_SF_ERR_SYSTEM = 2
_SF_ERR_MALFORMED_FILE = 3
_SF_ERR_UNSUPPORTED_ENCODING = 4


class AudioError(Exception):
    """A file or array that cannot be turned into audio; ``str()`` is one line: "PATH: reason"."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        self.reason = " ".join(str(reason).split())  # one line whatever libsndfile said
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.reason if self.path is None else f"{self.path}: {self.reason}")


@dataclass
class AudioInfo:
    """What a file is: its native rate, channels, container and encoding, length."""

    path: str
    duration: float  # seconds
    sample_rate: int
    channels: int
    format: str  # libsndfile container name, e.g. "WAV", "FLAC", "OGG", "MP3"
    subtype: str  # libsndfile encoding, e.g. "PCM_16", "FLOAT", "VORBIS", "OPUS"
    frames: int


def audio_files_under(folder: str | os.PathLike) -> list[Path]:
    """Every file under folder (recursively) with one of AUDIO_EXTENSIONS, in sorted order."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _check_path(path: str) -> None:
    """Reasons a path cannot be audio that are clearer from the file system than from libsndfile."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise AudioError("file not found", path) from None
    except PermissionError:
        raise AudioError("permission denied", path) from None
    except OSError as error:
        raise AudioError(f"cannot read: {error.strerror or error}", path) from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError("is a directory, not an audio file", path)
    if not stat.S_ISREG(status.st_mode):
        raise AudioError("not a regular file", path)
    if status.st_size == 0:
        raise AudioError("empty file (0 bytes)", path)
    if not os.access(path, os.R_OK):
        raise AudioError("permission denied", path)


def _open_reason(error: soundfile.LibsndfileError, path: str) -> str:
    detail = error.error_string.rstrip(".")
    extension = os.path.splitext(path)[1].lower()
    # libsndfile says "File does not exist or is not a regular file" (an internal code) when its
    # MPEG reader finds no frame in a file that exists: _check_path has seen the file, so the
    # reason is its contents
    misleading = "not a regular file" in detail
    if error.code == _SF_ERR_UNRECOGNISED_FORMAT or misleading:
        if extension and extension not in AUDIO_EXTENSIONS:
            return f"unsupported format: libsndfile does not read {extension} files"
        return "not audio, or a format libsndfile cannot read" + ("" if misleading else f" ({detail})")
    if error.code == _SF_ERR_MALFORMED_FILE:
        return f"corrupt or truncated audio file ({detail})"
    if error.code == _SF_ERR_UNSUPPORTED_ENCODING:
        return f"unsupported audio encoding ({detail})"
    if error.code == _SF_ERR_SYSTEM:
        return f"cannot read the file ({detail})"
    return f"cannot decode as audio ({detail})"


def _open(path: str) -> soundfile.SoundFile:
    _check_path(path)
    try:
        # soundfile encodes a str name strictly as UTF-8; the bytes open any name the
        # filesystem holds (a Latin-1 "caf\xe9.wav" arrives here with surrogates)
        sound = soundfile.SoundFile(path if is_utf8(path) else os.fsencode(path))
    except soundfile.LibsndfileError as error:
        raise AudioError(_open_reason(error, path), path) from None
    except PermissionError:
        raise AudioError("permission denied", path) from None
    except (OSError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"cannot open as audio ({error})", path) from None
    try:
        if sound.samplerate <= 0 or sound.channels <= 0:
            raise AudioError(f"invalid header: {sound.samplerate} Hz, {sound.channels} channels", path)
        _check_not_truncated(sound, path)
    except AudioError:
        sound.close()
        raise
    return sound


def _check_not_truncated(sound: soundfile.SoundFile, path: str) -> None:
    """libsndfile quietly shortens a WAV/AIFF/AU whose data chunk runs past the end of the
    file; a file cut that short is a failed copy or download, so it is reported, not indexed."""
    try:
        header_log = sound.extra_info
    except Exception:  # the log is a diagnostic; without it the frames libsndfile found stand
        return
    present_share = 1.0
    for _name, declared, actual in _SIZE_MISMATCH.findall(header_log):
        declared, actual = int(declared), int(actual)
        if 0 <= actual < declared < _PLACEHOLDER_SIZE:
            present_share = min(present_share, actual / declared)
    if present_share < _MIN_PRESENT_SHARE:
        held = sound.frames / sound.samplerate
        declared_seconds = held / present_share if present_share > 0 else float("nan")
        raise AudioError(
            f"truncated: the header declares {declared_seconds:.1f} s of audio, the file holds {held:.1f} s", path
        )


def _info(sound: soundfile.SoundFile, path: str, frames: int) -> AudioInfo:
    return AudioInfo(
        path=path,
        duration=frames / sound.samplerate,
        sample_rate=int(sound.samplerate),
        channels=int(sound.channels),
        format=str(sound.format),
        subtype=str(sound.subtype),
        frames=int(frames),
    )


def probe(path: str | os.PathLike) -> AudioInfo:
    """The file's header: rate, channels, format, length. Decodes nothing."""
    path = os.fspath(path)
    with _open(path) as sound:
        if sound.frames == 0:
            raise AudioError("zero-length audio (the header says 0 frames)", path)
        return _info(sound, path, sound.frames)


def _check_target_rate(target_sr) -> int:
    if isinstance(target_sr, bool) or not isinstance(target_sr, (int, np.integer)) or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer (Hz), got {target_sr!r}")
    return int(target_sr)


def _resampled_length(n_samples: int, sample_rate: int, target_sr: int) -> int:
    # librosa.resample fixes the output to ceil(n · ratio) samples (util.fix_length).
    return int(math.ceil(n_samples * float(target_sr) / sample_rate))


def _fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    if len(samples) > length:
        return samples[:length]
    if len(samples) < length:
        return np.concatenate([samples, np.zeros(length - len(samples), dtype=samples.dtype)])
    return samples


def _downmix(block: np.ndarray) -> np.ndarray:
    """[n, channels] float32 → [n] float32: librosa.to_mono's mean over channels."""
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    return np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))


def load_audio(
    path: str | os.PathLike, target_sr: int, max_seconds: float | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """Decode a file to float32 mono at ``target_sr``; also return what the file is.

    ``max_seconds`` reads at most that much from the start (``int(max_seconds · native
    rate)`` frames, librosa's ``duration=`` rule). The returned ``AudioInfo`` describes the
    file: its ``frames``/``duration`` are what was decoded when the whole file was read (a
    truncated WAV or MP3 decodes to less than its header claims), else the header's.
    Raises ``AudioError`` for anything that is not decodable audio.
    """
    path = os.fspath(path)
    target_sr = _check_target_rate(target_sr)
    if max_seconds is not None and not (max_seconds > 0 and math.isfinite(max_seconds)):
        raise ValueError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    with _open(path) as sound:
        native_sr = int(sound.samplerate)
        frame_limit = None if max_seconds is None else max(1, int(max_seconds * native_sr))
        resampler = None
        if native_sr != target_sr:
            resampler = soxr.ResampleStream(native_sr, target_sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        pieces: list[np.ndarray] = []
        frames_read = 0
        reached_end = False
        while True:
            want = BLOCK_FRAMES if frame_limit is None else min(BLOCK_FRAMES, frame_limit - frames_read)
            if want <= 0:
                break
            try:
                block = sound.read(frames=want, dtype="float32", always_2d=True)
            except (soundfile.SoundFileError, RuntimeError, OSError, ValueError) as error:
                detail = getattr(error, "error_string", None) or str(error)
                raise AudioError(
                    f"corrupt or truncated: decoding failed after {frames_read / native_sr:.1f} s ({detail})", path
                ) from None
            if len(block) == 0:
                reached_end = True
                break
            mono = _downmix(block)
            frames_read += len(mono)
            pieces.append(resampler.resample_chunk(mono) if resampler is not None else mono)
            if len(block) < want:
                reached_end = True
                break
        if frames_read == 0:
            raise AudioError("zero-length audio (no samples decoded)", path)
        if reached_end and sound.frames > 0 and frames_read < _MIN_DECODED_SHARE * sound.frames:
            raise AudioError(f"truncated: the header declares {sound.frames / native_sr:.1f} s of audio, "
                             f"the file decodes to {frames_read / native_sr:.1f} s", path)
        if resampler is not None:
            pieces.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        info = _info(sound, path, frames_read if reached_end else max(sound.frames, frames_read))
    samples = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
    samples = _fix_length(samples, _resampled_length(frames_read, native_sr, target_sr))
    if not np.isfinite(samples).all():
        raise AudioError("the audio contains NaN or infinite samples", path)
    return np.ascontiguousarray(samples, dtype=np.float32), info


def to_mono_float(samples: np.ndarray, sample_rate: int, target_sr: int) -> np.ndarray:
    """In-memory audio → float32 mono at ``target_sr``, the same steps as ``load_audio``.

    ``samples``: ``[n]`` or ``[n, channels]``; int16/int32 PCM (scaled by full scale to
    [-1, 1), as libsndfile does) or float32/float64 (taken as is, in [-1, 1]).
    """
    target_sr = _check_target_rate(target_sr)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)) or not sample_rate > 0:
        raise AudioError(f"sample rate must be a positive number of Hz, got {sample_rate!r}")
    array = np.asarray(samples)
    if array.dtype in _INT_FULL_SCALE:
        array = array.astype(np.float32) / np.float32(_INT_FULL_SCALE[array.dtype])
    elif array.dtype in (np.float32, np.float64):
        array = array.astype(np.float32, copy=False)
    else:
        raise AudioError(f"unsupported sample type {array.dtype}: expected int16, int32, float32 or float64")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise AudioError(f"expected samples shaped [n] or [n, channels], got shape {array.shape}")
    if array.shape[1] == 0 or array.shape[1] > _MAX_CHANNELS:
        raise AudioError(
            f"expected samples shaped [n, channels], got shape {array.shape}"
            " (transpose a [channels, n] array)"
        )
    if array.shape[0] == 0:
        raise AudioError("zero-length audio (no samples)")
    if not np.isfinite(array).all():
        raise AudioError("the audio contains NaN or infinite samples")
    mono = _downmix(array)
    if sample_rate == target_sr:
        return mono
    resampled = soxr.resample(mono, sample_rate, target_sr, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(_fix_length(resampled, _resampled_length(len(mono), sample_rate, target_sr)))
