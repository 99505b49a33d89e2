"""Copies of one recording as a library collects them: other formats, bitrates, masters, trims.

Used by the duplicate tests, benchmarks/duplicates_speed.py and the README's example: each
variant is the same recording (`mre duplicates` must group it with its original) except
the speed change, which is another recording (a different pitch and tempo).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (name, what it is); "speed" is the one that is not the same recording
VARIANTS = {
    "flac": "FLAC, same rate",
    "mp3_128": "MP3 at 128 kbps",
    "mp3_80": "MP3 at ~80 kbps",
    "mono_22k": "FLAC, 22,050 Hz mono",
    "remaster": "EQ shelves (+4 dB below 150 Hz, +5 dB above 5 kHz), 6 dB louder, soft-clipped",
    "trimmed": "3-10 s cut (2-6 s at the start, 1-4 s at the end), 3 s fade-out",
    "speed": "played 2 % fast (resampled): another recording",
}
# libsndfile's MP3 encoder (LAME) takes a "compression level" in 0..1 for its constant bitrate:
# 0.65 writes 128 kbps and 0.84 writes 80 kbps (measured with libsndfile 1.2.2).
_MP3_LEVELS = {"mp3_128": 0.65, "mp3_80": 0.84}


def _shelves(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A remaster's EQ: boosted lows and highs, as a smooth gain curve over the spectrum."""
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(audio.shape[0], 1.0 / sample_rate)
    low = 4.0 / (1.0 + (freqs / 150.0) ** 2)          # dB, a first-order low shelf
    high = 5.0 / (1.0 + (5000.0 / np.maximum(freqs, 1.0)) ** 2)
    gain = 10.0 ** ((low + high) / 20.0)
    return np.fft.irfft(spectrum * (gain if audio.ndim == 1 else gain[:, None]), n=audio.shape[0], axis=0)


def remaster(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    louder = _shelves(audio, sample_rate) * 10.0 ** (6.0 / 20.0)
    return (0.95 * np.tanh(louder / 0.95)).astype(np.float32)


def trimmed(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    head, tail = rng.uniform(2.0, 6.0), rng.uniform(1.0, 4.0)
    cut = audio[int(head * sample_rate):len(audio) - int(tail * sample_rate)].copy()
    fade = min(int(3.0 * sample_rate), len(cut) // 4)
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    cut[len(cut) - fade:] *= ramp if cut.ndim == 1 else ramp[:, None]
    return cut


def sped_up(audio: np.ndarray, sample_rate: int, factor: float = 1.02) -> np.ndarray:
    import soxr

    return soxr.resample(audio, sample_rate * factor, sample_rate).astype(np.float32)


def write_variants(audio: np.ndarray, sample_rate: int, folder: str | Path, stem: str, seed: int = 0,
                   which=tuple(VARIANTS)) -> dict[str, Path]:
    """Write ``audio`` (float, mono or [n, channels]) as ``<stem>.wav`` and each variant of
    ``which`` beside it; returns name → path, the original under "original"."""
    import soundfile as sf
    import soxr

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    audio = np.asarray(audio, dtype=np.float32)
    written = {"original": folder / f"{stem}.wav"}
    sf.write(written["original"], audio, sample_rate, subtype="PCM_16")
    for name in which:
        if name == "flac":
            path, data, rate, options = folder / f"{stem}.flac", audio, sample_rate, {}
        elif name in _MP3_LEVELS:
            path, data, rate = folder / f"{stem}.{name}.mp3", audio, sample_rate
            options = {"format": "MP3", "bitrate_mode": "CONSTANT", "compression_level": _MP3_LEVELS[name]}
        elif name == "mono_22k":
            mono = audio if audio.ndim == 1 else audio.mean(axis=1)
            path, data, rate, options = folder / f"{stem}.22k.flac", soxr.resample(mono, sample_rate, 22050), 22050, {}
        elif name == "remaster":
            path, data, rate, options = folder / f"{stem}.remaster.flac", remaster(audio, sample_rate), sample_rate, {}
        elif name == "trimmed":
            path, data, rate, options = folder / f"{stem}.trimmed.flac", trimmed(audio, sample_rate, rng), sample_rate, {}
        elif name == "speed":
            path, data, rate, options = folder / f"{stem}.speed.flac", sped_up(audio, sample_rate), sample_rate, {}
        else:
            raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        sf.write(path, np.clip(data, -1.0, 1.0), rate, **options)
        written[name] = path
    return written
