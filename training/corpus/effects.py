"""The production around a rendered arrangement: room, EQ, compression, noise, level, lossy coding.

Numpy only, whole-clip operations (a 10 s clip is a few hundred thousand samples). Each
function takes its settings explicitly; `render.draw_variation` draws them from the clip's
seeded generator and the manifest records them, so a clip can be remade exactly.
"""
from __future__ import annotations

import io

import numpy as np


def _fft_size(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(n, 2))))


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution by FFT, cut to len(x)."""
    size = _fft_size(len(x) + len(h) - 1)
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]


def reverb(x: np.ndarray, sample_rate: int, rt60: float, wet: float, predelay_s: float, seed: int) -> np.ndarray:
    """A room as convolution with exponentially decaying noise: the late reverberation of a
    diffuse field decays exponentially, 60 dB in RT60 seconds (Sabine), and is noise-like
    (Moorer, "About this reverberation business", 1979). High frequencies die faster, as in
    real rooms: the noise is low-passed progressively by a one-pole smoother per block."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)
    # darken the tail over time: blend towards a smoothed copy as it decays
    smooth = np.convolve(tail, np.ones(8) / 8, mode="same")
    blend = np.clip(t / max(rt60, 1e-3), 0, 1)
    tail = (1 - blend) * tail + blend * smooth
    impulse = np.concatenate([np.zeros(int(predelay_s * sample_rate)), tail])
    impulse /= np.sqrt(np.sum(impulse ** 2)) + 1e-12
    return (1 - wet) * x + wet * convolve(x, impulse)


def echo(x: np.ndarray, sample_rate: int, delay_s: float, feedback: float, wet: float) -> np.ndarray:
    """A tape-style feedback delay: repeats every delay_s, each `feedback` times the last."""
    d = max(1, int(delay_s * sample_rate))
    repeats = int(np.ceil(np.log(1e-3) / np.log(feedback))) if 0 < feedback < 1 else 1
    impulse = np.zeros(d * repeats + 1)
    impulse[d::d] = feedback ** np.arange(repeats)
    return x + wet * convolve(x, impulse)


def chorus(x: np.ndarray, sample_rate: int, rate_hz: float, depth_ms: float, mix: float) -> np.ndarray:
    """A delay line swept by a slow sine (7-20 ms), mixed with the dry signal."""
    n = np.arange(len(x))
    delay = (12.0 + depth_ms * np.sin(2 * np.pi * rate_hz * n / sample_rate)) * sample_rate / 1000.0
    position = np.clip(n - delay, 0, len(x) - 1)
    low = np.floor(position).astype(int)
    frac = position - low
    high = np.minimum(low + 1, len(x) - 1)
    return (1 - mix) * x + mix * ((1 - frac) * x[low] + frac * x[high])


def shelf_response(z: np.ndarray, sample_rate: int, corner_hz: float, gain_db: float, high: bool) -> np.ndarray:
    """Response of an RBJ shelving biquad (Bristow-Johnson, "Audio EQ Cookbook"), slope 1, at
    z = exp(-jω) (given, so two shelves share it)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * corner_hz / sample_rate
    alpha = np.sin(w0) / 2 * np.sqrt(2.0)
    cos, sq = np.cos(w0), 2 * np.sqrt(a) * alpha
    if high:
        b = [a * ((a + 1) + (a - 1) * cos + sq), -2 * a * ((a - 1) + (a + 1) * cos), a * ((a + 1) + (a - 1) * cos - sq)]
        den = [(a + 1) - (a - 1) * cos + sq, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - sq]
    else:
        b = [a * ((a + 1) - (a - 1) * cos + sq), 2 * a * ((a - 1) - (a + 1) * cos), a * ((a + 1) - (a - 1) * cos - sq)]
        den = [(a + 1) + (a - 1) * cos + sq, -2 * ((a - 1) + (a + 1) * cos), (a + 1) + (a - 1) * cos - sq]
    return (b[0] + z * (b[1] + z * b[2])) / (den[0] + z * (den[1] + z * den[2]))


def equalise(x: np.ndarray, sample_rate: int, low_hz: float, low_db: float, high_hz: float, high_db: float) -> np.ndarray:
    """Low and high shelves applied as their exact frequency response (the signal is padded so
    the filters' decay does not wrap around)."""
    size = _fft_size(len(x) + sample_rate // 10)
    z = np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size)
    response = shelf_response(z, sample_rate, low_hz, low_db, False) * shelf_response(z, sample_rate, high_hz, high_db, True)
    return np.fft.irfft(np.fft.rfft(x, size) * response, size)[: len(x)]


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    width = max(1, width)
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    total = np.cumsum(padded, dtype=np.float64)
    total[width:] = total[width:] - total[:-width]
    return total[width - 1:] / width


def compress(x: np.ndarray, sample_rate: int, threshold_db: float, ratio: float) -> np.ndarray:
    """A feed-forward RMS compressor: level over 20 ms; above the threshold (dB relative to the
    clip's RMS) the excess is divided by `ratio`; the gain is smoothed over 50 ms (attack and
    release alike), then the clip's RMS is restored."""
    rms = np.sqrt(np.mean(x ** 2)) + 1e-12
    level = 10 * np.log10(_moving_average(x ** 2, int(0.02 * sample_rate)) + 1e-12) - 20 * np.log10(rms)
    over = np.maximum(level - threshold_db, 0.0)
    gain_db = _moving_average(-over * (1 - 1 / ratio), int(0.05 * sample_rate))
    y = x * 10.0 ** (gain_db / 20.0)
    return y * rms / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def noise(n: int, seed: int, colour: str) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) noise."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    if colour == "pink":
        size = _fft_size(n)
        spectrum = np.fft.rfft(white, size)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        white = np.fft.irfft(spectrum, size)[:n]
    return white / (np.sqrt(np.mean(white ** 2)) + 1e-12)


def set_level(x: np.ndarray, sample_rate: int, rms_dbfs: float, ceiling: float = 0.98) -> tuple[np.ndarray, float]:
    """Scale to an RMS level in dBFS, then keep peaks under the ceiling: the gain follows the
    peak envelope over ±2.5 ms, so a loud target is met by limiting rather than clipping.
    Returns the audio and its final RMS in dBFS."""
    rms = np.sqrt(np.mean(x ** 2)) + 1e-12
    y = x * 10.0 ** (rms_dbfs / 20.0) / rms
    peak = np.abs(y)
    if peak.max() > ceiling:
        half = max(1, int(0.0025 * sample_rate))
        padded = np.pad(peak, half)
        envelope = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(axis=1)
        gain = _moving_average(np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12)), half)
        y = np.clip(y * np.minimum(gain, ceiling / np.maximum(envelope, 1e-12) + 0.01), -ceiling, ceiling)
    return y, float(20 * np.log10(np.sqrt(np.mean(y ** 2)) + 1e-12))


def lossy(x: np.ndarray, sample_rate: int, quality: float) -> np.ndarray:
    """Round trip through Ogg Vorbis at a quality in 0..1 (libsndfile's scale), as a streamed or
    downloaded track would carry coding artefacts."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, x.astype(np.float32), sample_rate, format="OGG", subtype="VORBIS", compression_level=1 - quality)
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32")
    return np.clip(np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)], -1.0, 1.0)
