"""Musical attributes of a track from the waveform the embedder already decoded.

    attributes = extract_attributes(waveform, sample_rate=16000)
    attributes.bpm, attributes.key, attributes.mode, attributes.loudness_db ...

Numpy only, two short-time Fourier transforms per track (a 32 ms one for rhythm, loudness
and timbre; a 256 ms one for pitch), so it costs a small fraction of the tagger's time.

Why not librosa: measured before choosing. `python -m
mre.benchmarks.attribute_eval --n 20` on the development machine (2 shared cores, load ~4),
one thread, 100 generated clips (seed 0), against librosa 0.11's beat tracker and
chroma_stft with the same key step:
                              this module   librosa
    tempo within 4 %              0.83        0.78   (octave errors 0.16 vs 0.22)
    mode right                    0.87        0.87
    key right                     0.84        0.87
    3-minute track, seconds    0.10-0.17   0.28-0.56  (best of 3-7 runs)
    first call in a process      ~0          3.7-17 s  (numba JIT, paid by every worker)
Equal accuracy at a third of the time and without the per-process JIT, so librosa stays a
test-only dependency (the benchmark compares against it; a test checks the loudness
against the BS.1770 filters run in the time domain with scipy).

Since then two decisions are learned from rendered corpora, whose clips know their tempo,
key and mode (`mre corpus attributes`, data/attribute_model.json): key
profiles for this chroma (Krumhansl & Kessler's read its overtones a fifth up) and the tempo's
metrical level. On 400 held-out MuseScore General clips (`python -m
mre.benchmarks.corpus_attributes`) they raise key accuracy 0.45 -> 0.61 and tempo within
4 % 0.55 -> 0.64, and leave the synthetic figures above level (README, "Tempo and key from
the corpus").

Conventions for degenerate input (all values stay finite):
- no pulse (silence, noise, a clip too short to hold four beats at 300 BPM): `bpm` 0.0 and
  `bpm_confidence` 0.0 — a `--bpm` range filter never matches such a track;
- no pitched content (silence): `key` "" and `mode` "", with confidences 0.0;
- `loudness_db` is floored at -70.0, BS.1770's absolute gate (silence reads -70).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first (Krumhansl 1990, table 2.1).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Tempo prior: log-normal around 120 BPM with a one-octave spread, as librosa's
# beat tracker and tempo estimator (start_bpm=120, std_bpm=1.0).
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
MIN_BPM, MAX_BPM = 30.0, 300.0
TEMPO_WINDOW_S = 8.0  # local autocorrelation window, like librosa's 384-frame tempogram (8.9 s)
# The autocorrelation of a pulse-free envelope scatters as 1/sqrt(frames); on white noise of
# 3 s to 3 min its prior-weighted peak stayed below 6/sqrt(frames), so 8/sqrt(frames) rejects
# noise while real pulses (0.5 and more on 10 s of music) pass.
PULSE_SIGNIFICANCE = 8.0
# A pulse is a repetition of onsets one can hear: fewer than a bar of beats cannot establish
# one. The envelope is a mean over 40 mel bands, so PULSE_ONSET_DB = 0.1 dB is a 4 dB rise in one
# band, a few times the smallest level change a listener notices; a steady tone ripples by
# ~0.03 dB as the frames slide over its cycles, which the peak picker, normalising the
# envelope, would count as onsets; and the normalised autocorrelation of a lone click (a
# tone's start, or the cut at its end) looks as "periodic" as a beat's.
MIN_PULSE_ONSETS = 4
PULSE_ONSET_DB = 0.1
LOUDNESS_FLOOR_DB = -70.0  # ITU-R BS.1770-4 absolute gate
# Two decisions learned from rendered corpora whose every clip knows its tempo, key and mode
# (`mre corpus attributes`, README "Tempo and key from the corpus"): key
# profiles for this module's chroma, and which metrical level (half, the peak, double) of
# the autocorrelation's best peak is the tempo. Each is used only where it beat the fixed
# rule above on the corpus's validation split; the file says which.
LEARNED_FILE = Path(__file__).resolve().parent / "data" / "attribute_model.json"
OCTAVE_FACTORS = (0.5, 1.0, 2.0)
OCTAVE_FEATURES = ("log2(bpm/120)", "log2(bpm/120)^2", "ac(beat)", "ac(2 beats)", "ac(half beat)")


@dataclass(frozen=True)
class TrackAttributes:
    """Per-track musical attributes (units in the field comments)."""
    bpm: float               # beats per minute; 0.0 when no pulse is found
    bpm_confidence: float    # 0..1: how far the chosen tempo peak stands above its rivals
    key: str                 # tonic spelled with sharps, "C".."B"; "" without pitched content
    mode: str                # "major" | "minor"; "" without pitched content
    mode_strength: float     # best major minus best minor key correlation: > 0 major, < 0 minor
    key_confidence: float    # 0..1: correlation of the chroma with the chosen key's profile
    loudness_db: float       # integrated loudness, LUFS (BS.1770-4 K-weighting and gating)
    dynamic_range_db: float  # loudness range, LU (EBU Tech 3342: short-term p95 - p10)
    brightness: float        # spectral centroid of the average magnitude spectrum, Hz
    onset_density: float     # detected onsets per second
    percussiveness: float    # 0..1: percussive share of the energy (median-filter HPSS)
    beat_strength: float     # 0..1: onset-envelope autocorrelation at the beat period

    def as_dict(self) -> dict:
        return asdict(self)


ATTRIBUTE_NAMES = tuple(field.name for field in fields(TrackAttributes))


def extract_attributes(y: np.ndarray, sample_rate: int) -> TrackAttributes:
    """Attributes of a mono waveform `y` (float samples, nominally in [-1, 1]) sampled at
    `sample_rate` Hz. Raises ValueError on multi-channel, empty or non-finite input.

    The matrix products run on one BLAS thread wherever this runs: a thread team may take
    another kernel and sum in another order (~1e-10 of a bpm), and a store must hold the same
    attributes whichever engine, worker or machine load computed them."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _attributes(y, sample_rate)


def _attributes(y: np.ndarray, sample_rate: int) -> TrackAttributes:
    y = _checked_waveform(y, sample_rate)
    frames = _Spectrogram(y, sample_rate, frame_seconds=0.032)
    onset_envelope = _onset_envelope(frames)
    bpm, bpm_confidence, beat_strength = estimate_tempo(onset_envelope, frames.frame_rate)
    key, mode, mode_strength, key_confidence = estimate_key(chroma_vector(y, sample_rate))
    loudness_db, dynamic_range_db = _loudness(frames)
    return TrackAttributes(
        bpm=bpm, bpm_confidence=bpm_confidence, key=key, mode=mode,
        mode_strength=mode_strength, key_confidence=key_confidence,
        loudness_db=loudness_db, dynamic_range_db=dynamic_range_db,
        brightness=_spectral_centroid(frames),
        onset_density=len(_onset_frames(onset_envelope, frames.frame_rate)) / frames.duration,
        percussiveness=_percussive_ratio(frames), beat_strength=beat_strength)


def _checked_waveform(y, sample_rate) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D array), got shape {y.shape}; downmix first")
    if y.size == 0:
        raise ValueError("the waveform has no samples")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"expected float samples in [-1, 1], got dtype {y.dtype}")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 4000:
        raise ValueError(f"sample_rate must be an integer >= 4000 Hz, got {sample_rate!r}")
    if not np.all(np.isfinite(y)):
        raise ValueError("the waveform contains NaN or infinite samples")
    return y.astype(np.float32, copy=False)


class _Spectrogram:
    """Power spectrogram with Hann frames centred on multiples of the hop (zero-padded ends)."""

    def __init__(self, y: np.ndarray, sample_rate: int, frame_seconds: float, overlap: bool = True):
        self.sample_rate = sample_rate
        self.n_fft = int(2 ** round(np.log2(frame_seconds * sample_rate)))
        self.hop = self.n_fft // 2 if overlap else self.n_fft
        self.window = np.hanning(self.n_fft + 1)[:-1]  # float64: numpy's float64 FFT is the faster one
        padded = np.pad(y, (self.n_fft // 2, self.n_fft // 2 + self.hop))
        n_frames = 1 + (len(y) - 1) // self.hop
        frames = sliding_window_view(padded, self.n_fft)[::self.hop][:n_frames]
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        self.power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        self.frequencies = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        self.frame_rate = sample_rate / self.hop
        self.duration = len(y) / sample_rate
        self._mel = None

    @property
    def mel(self) -> np.ndarray:
        """Mel-band power, 40 triangular bands from 30 Hz to Nyquist (HTK mel scale)."""
        if self._mel is None:
            self._mel = self.power @ _mel_filterbank(self.frequencies, 40, 30.0, self.sample_rate / 2)
        return self._mel


def _mel_filterbank(frequencies, n_bands, fmin, fmax) -> np.ndarray:
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(to_mel(fmin), to_mel(fmax), n_bands + 2) / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (frequencies - lower) / (centre - lower)
    falling = (upper - frequencies) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


# --- rhythm ---------------------------------------------------------------------------------

def _onset_envelope(frames: _Spectrogram) -> np.ndarray:
    """Spectral flux of the log-mel spectrogram: mean positive dB rise per frame, with an
    80 dB floor below the loudest cell (librosa.onset.onset_strength's recipe)."""
    log_mel = 10.0 * np.log10(np.maximum(frames.mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 80.0)
    flux = np.maximum(0.0, np.diff(log_mel, axis=0)).mean(axis=1)
    return np.concatenate(([0.0], flux)).astype(np.float64)


def estimate_tempo(onset_envelope: np.ndarray, frame_rate: float) -> tuple[float, float, float]:
    """(bpm, confidence, beat_strength) from an onset envelope sampled at `frame_rate` Hz.

    The envelope is smoothed below 7 Hz and stripped of swells slower than 30 BPM; its
    normalised autocorrelation, averaged over half-overlapping 8 s Hann windows, is weighted by
    the log-normal tempo prior, and the best peak refined by parabolic interpolation. Where
    the learned octave decision is in use, it then picks half, that or double tempo
    (`octave_features`); beat_strength is the autocorrelation at the chosen beat period.
    confidence is the chosen peak's weighted margin over the best rival peak more than 8 %
    away (an octave rival counts: it is the usual doubt), times the probability the octave
    decision gives its choice.
    """
    analysis = tempo_analysis(onset_envelope, frame_rate)
    if analysis is None:
        return 0.0, 0.0, 0.0
    mean_ac, bpm, margin, beat_strength = analysis
    if bpm == 0.0:
        return 0.0, 0.0, beat_strength
    decision = _learned().get("tempo_octave")
    probability = 1.0
    if decision is not None:
        scores = octave_scores(octave_features(mean_ac, bpm, frame_rate)[:, decision["columns"]], _octave_in_range(bpm),
                               decision["weights"], decision["mean"], decision["scale"])
        chosen = int(np.argmax(scores))
        probabilities = np.exp(scores - scores[chosen])
        probability = float(1.0 / probabilities.sum())
        if OCTAVE_FACTORS[chosen] != 1.0:
            bpm *= OCTAVE_FACTORS[chosen]
            beat_strength = float(np.clip(_ac_near(mean_ac, 60.0 * frame_rate / bpm), 0.0, 1.0))
    return bpm, float(np.clip(margin * probability, 0.0, 1.0)), beat_strength


def tempo_analysis(onset_envelope: np.ndarray, frame_rate: float):
    """(mean autocorrelation over every lag of a window, bpm of the prior-weighted best peak,
    its margin over rivals, the autocorrelation there), or None without variation or peaks
    or with fewer than MIN_PULSE_ONSETS audible onsets;
    bpm and margin 0.0 where the pulse is no more periodic than noise. The fixed rule before
    the octave decision: the training of that decision (mre.training.attribute_model) starts
    from it, and benchmarks measure it as the baseline."""
    onsets = _onset_frames(onset_envelope, frame_rate)
    if np.count_nonzero(onset_envelope[onsets] >= PULSE_ONSET_DB) < MIN_PULSE_ONSETS:
        return None
    onset_envelope = _lowpass_7hz(onset_envelope, frame_rate)
    onset_envelope = onset_envelope - _moving_average(onset_envelope, int(round(60.0 / MIN_BPM * frame_rate)))
    window = min(int(round(TEMPO_WINDOW_S * frame_rate)), len(onset_envelope))
    min_lag = int(np.floor(60.0 * frame_rate / MAX_BPM))
    max_lag = min(int(np.ceil(60.0 * frame_rate / MIN_BPM)), window // 4)  # four beats (a bar) per window
    if max_lag <= min_lag + 1 or np.ptp(onset_envelope) <= 0:
        return None
    full_ac = _mean_window_autocorrelation(onset_envelope, window)
    mean_ac = full_ac[: max_lag + 2]
    lags = np.arange(len(mean_ac), dtype=np.float64)
    bpm_of_lag = 60.0 * frame_rate / np.maximum(lags, 1e-9)
    prior = np.exp(-0.5 * (np.log2(bpm_of_lag / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.where((lags >= min_lag) & (lags <= max_lag), np.maximum(mean_ac, 0.0) * prior, 0.0)
    peaks = np.flatnonzero((score[1:-1] > score[:-2]) & (score[1:-1] >= score[2:])) + 1
    if len(peaks) == 0:
        return None
    best = peaks[np.argmax(score[peaks])]
    left, centre, right = mean_ac[best - 1], mean_ac[best], mean_ac[best + 1]
    curvature = left - 2.0 * centre + right
    offset = np.clip(0.5 * (left - right) / curvature, -0.5, 0.5) if curvature < 0 else 0.0
    beat_strength = float(np.clip(centre, 0.0, 1.0))
    if beat_strength < PULSE_SIGNIFICANCE / np.sqrt(len(onset_envelope)):
        return full_ac, 0.0, 0.0, beat_strength  # no more periodic than noise: no pulse
    rivals = peaks[np.abs(np.log(peaks / best)) > np.log(1.08)]
    runner_up = score[rivals].max() if len(rivals) else 0.0
    margin = float(np.clip(1.0 - runner_up / score[best], 0.0, 1.0))
    return full_ac, float(60.0 * frame_rate / (best + offset)), margin, beat_strength


def octave_features(mean_ac: np.ndarray, bpm: float, frame_rate: float) -> np.ndarray:
    """Features of the candidate tempos bpm × OCTAVE_FACTORS, one row each: log2(candidate / 120)
    and its square (a tempo prior), the autocorrelation at the candidate's beat period, at twice
    it and at half it (OCTAVE_FEATURES). The learned decision scores each row linearly on the
    columns it was chosen with (a conditional logit)."""
    rows = []
    for factor in OCTAVE_FACTORS:
        candidate = bpm * factor
        lag = 60.0 * frame_rate / candidate
        octaves = np.log2(candidate / PRIOR_BPM)
        rows.append([octaves, octaves ** 2, _ac_near(mean_ac, lag), _ac_near(mean_ac, 2.0 * lag),
                     _ac_near(mean_ac, lag / 2.0)])
    return np.array(rows)


def _octave_in_range(bpm: float) -> np.ndarray:
    return np.array([MIN_BPM <= bpm * factor <= MAX_BPM for factor in OCTAVE_FACTORS])


def _ac_near(mean_ac: np.ndarray, lag: float) -> float:
    """The highest autocorrelation within 4 % of `lag` (the MIREX tolerance), 0 beyond the curve."""
    low, high = int(np.floor(lag * 0.96)), int(np.ceil(lag * 1.04))
    if low < 1 or high >= len(mean_ac):
        return 0.0
    return float(mean_ac[low:high + 1].max())


def octave_scores(features: np.ndarray, in_range: np.ndarray, weights, mean, scale) -> np.ndarray:
    """A learned octave decision's score of each candidate (`OCTAVE_FACTORS`): its weights on
    the standardised features, -inf for a candidate outside the tempo range."""
    return np.where(in_range, ((features - mean) / scale) @ weights, -np.inf)


@lru_cache(maxsize=1)
def _learned() -> dict:
    """The learned decisions in use ({} where none is): `key_profiles` and `tempo_octave`."""
    try:
        model = json.loads(LEARNED_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    # the lists become arrays here, once, not per track on the indexing path
    return {name: {key: np.asarray(value) if isinstance(value, list) else value for key, value in model[name].items()}
            for name in ("key_profiles", "tempo_octave") if model.get(name, {}).get("use")}


def _mean_window_autocorrelation(envelope: np.ndarray, window: int) -> np.ndarray:
    """Autocorrelation normalised to 1 at lag 0, averaged over half-overlapping Hann windows
    (the last one flush with the end); windows without variation are left out."""
    starts = list(range(0, len(envelope) - window + 1, max(1, window // 2)))
    if starts[-1] + window < len(envelope):
        starts.append(len(envelope) - window)
    segments = np.stack([envelope[start:start + window] for start in starts])
    segments = (segments - segments.mean(axis=1, keepdims=True)) * np.hanning(window + 2)[1:-1]
    spectrum = np.fft.rfft(segments, 2 * window, axis=1)
    autocorrelation = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, axis=1)[:, :window]
    varied = autocorrelation[:, 0] > 0
    if not varied.any():
        return np.zeros(window)
    return (autocorrelation[varied] / autocorrelation[varied, :1]).mean(axis=0)


def _lowpass_7hz(envelope: np.ndarray, frame_rate: float) -> np.ndarray:
    """Smooth the onset envelope below 7 Hz, as Percival & Tzanetakis (2014) do before their
    autocorrelation: peaks then span several lags, so integer lags do not miss their tops."""
    # Kernel shorter than the shortest beat period (0.2 s at 300 BPM), so smoothing alone
    # adds no correlation at any tempo lag.
    taps = 2 * int(0.08 * frame_rate) + 1
    time = (np.arange(taps) - taps // 2) / frame_rate
    kernel = np.sinc(2.0 * 7.0 * time) * np.hamming(taps)
    return np.convolve(envelope, kernel / kernel.sum(), mode="same")


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (shorter at the ends); subtracting it removes swells slower
    than one period of the slowest tempo, which are not a pulse."""
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    index = np.arange(len(values))
    lo, hi = np.maximum(0, index - width // 2), np.minimum(len(values), index + width // 2 + 1)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def _onset_frames(onset_envelope: np.ndarray, frame_rate: float) -> np.ndarray:
    """Peak picking with librosa.onset.onset_detect's defaults (pre_max 30 ms, pre/post_avg
    100 ms, delta 0.07 of the normalised envelope, wait 30 ms)."""
    span = np.ptp(onset_envelope)
    if span <= 0:
        return np.array([], dtype=int)
    envelope = (onset_envelope - onset_envelope.min()) / span
    pre_max = max(1, int(round(0.03 * frame_rate)))
    average = max(1, int(round(0.10 * frame_rate)))
    padded = np.pad(envelope, (pre_max, 0), constant_values=-np.inf)
    is_max = envelope >= sliding_window_view(padded, pre_max + 1).max(axis=1)
    is_max[1:] &= envelope[1:] > envelope[:-1]  # strictly rising into the peak
    cumulative = np.concatenate(([0.0], np.cumsum(envelope)))
    index = np.arange(len(envelope))
    lo, hi = np.maximum(0, index - average), np.minimum(len(envelope), index + average + 1)
    local_mean = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    candidates = np.flatnonzero(is_max & (envelope >= local_mean + 0.07))
    if len(candidates) < 2:
        return candidates
    keep = np.concatenate(([True], np.diff(candidates) > max(1, int(round(0.03 * frame_rate)))))
    return candidates[keep]


def _percussive_ratio(frames: _Spectrogram) -> float:
    """Share of mel-band energy that Fitzgerald's (2010) median-filter separation assigns to
    the percussive part (soft Wiener masks): medians across ~0.4 s of time for the harmonic
    part and across 7 mel bands for the percussive part, on frames pooled to ~31 per second."""
    mel = frames.mel
    pool = max(1, int(round(frames.frame_rate / 31.25)))  # halves the median filters' work at 16 kHz
    if len(mel) >= pool:
        mel = mel[: len(mel) // pool * pool].reshape(-1, pool, mel.shape[1]).sum(axis=1)
    total = float(mel.sum())
    if total <= 0:
        return 0.0
    harmonic = _median_filter(mel, 13, axis=0)
    percussive = _median_filter(mel, 7, axis=1)
    mask = percussive ** 2 / np.maximum(harmonic ** 2 + percussive ** 2, 1e-30)
    return float(np.clip((mask * mel).sum() / total, 0.0, 1.0))


def _median_filter(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    half = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    windows = np.ascontiguousarray(sliding_window_view(np.pad(values, pad, mode="edge"), size, axis=axis))
    return np.partition(windows, half, axis=-1)[..., half]


# --- pitch ----------------------------------------------------------------------------------

def chroma_vector(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Average 12-bin pitch-class profile (C first) from a 256 ms STFT: each bin between
    65 Hz (C2) and 2.1 kHz goes to its nearest pitch class, weighted down the further it lies
    from the semitone centre; magnitudes are log-compressed first, log(1 + 100 |X| / max|X|),
    as in Mueller & Ewert's CLP chroma, so a few loud partials do not dominate."""
    frames = _Spectrogram(y, sample_rate, frame_seconds=0.256, overlap=False)  # a track average needs no overlap
    in_range = (frames.frequencies >= 65.0) & (frames.frequencies <= 2100.0)
    magnitude = np.sqrt(frames.power[:, in_range])
    peak = magnitude.max()
    if peak <= 0:
        return np.zeros(12)
    pitch = 69.0 + 12.0 * np.log2(frames.frequencies[in_range] / 440.0)
    nearest = np.round(pitch)
    weight = np.maximum(0.0, 1.0 - 2.0 * np.abs(pitch - nearest))
    to_pitch_class = np.zeros((len(pitch), 12))
    to_pitch_class[np.arange(len(pitch)), nearest.astype(int) % 12] = weight
    return (np.log1p(100.0 * magnitude / peak) @ to_pitch_class).mean(axis=0)


def key_profiles() -> tuple[np.ndarray, np.ndarray]:
    """(major, minor) key profiles, tonic first: the ones learned for this module's chroma where
    they are in use (LEARNED_FILE), else Krumhansl & Kessler's."""
    learned = _learned().get("key_profiles")
    if learned is None:
        return MAJOR_PROFILE, MINOR_PROFILE
    return np.asarray(learned["major"], dtype=np.float64), np.asarray(learned["minor"], dtype=np.float64)


def estimate_key(chroma: np.ndarray, profiles: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[str, str, float, float]:
    """(tonic, mode, mode_strength, key_confidence) by Pearson correlation of a 12-bin chroma
    with a major and a minor profile in all 24 keys (the Krumhansl–Schmuckler algorithm).
    profiles: (major, minor), tonic first; default `key_profiles()`. Krumhansl & Kessler's
    listener ratings describe the notes played; this module's chroma also carries each note's
    overtones (the twelfth lands on the fifth), which pulled that rule a fifth up."""
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.shape != (12,) or np.ptp(chroma) <= 0:
        return "", "", 0.0, 0.0
    major, minor = key_profiles() if profiles is None else profiles
    best = {}
    for mode, profile in (("major", major), ("minor", minor)):
        rotations = np.stack([np.roll(profile, tonic) for tonic in range(12)])
        correlations = np.array([np.corrcoef(chroma, rotation)[0, 1] for rotation in rotations])
        tonic = int(np.argmax(correlations))
        best[mode] = (correlations[tonic], tonic)
    mode = "major" if best["major"][0] >= best["minor"][0] else "minor"
    correlation, tonic = best[mode]
    return (PITCH_CLASSES[tonic], mode, float(best["major"][0] - best["minor"][0]),
            float(np.clip(correlation, 0.0, 1.0)))


# --- loudness and timbre --------------------------------------------------------------------

def k_weighting_biquads(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting as two biquads (b, a) — the high shelf ("stage 1") and the RLB
    high-pass ("stage 2") — designed for any rate from the analog parameters that reproduce
    the standard's 48 kHz coefficients (as in pyloudnorm's IIRfilter)."""
    k = np.tan(np.pi * 1681.974450955533 / sample_rate)
    gain, q = 10.0 ** (3.999843853973347 / 20.0), 0.7071752369554196
    band = gain ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (np.array([gain + band * k / q + k * k, 2.0 * (k * k - gain), gain - band * k / q + k * k]) / a0,
             np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    k, q = np.tan(np.pi * 38.13547087602444 / sample_rate), 0.5003270373238773
    a0 = 1.0 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    return [shelf, highpass]


def _k_weighting_power_gain(frequencies: np.ndarray, sample_rate: int) -> np.ndarray:
    z = np.exp(-1j * 2.0 * np.pi * frequencies / sample_rate)
    gain = np.ones(len(frequencies))
    for b, a in k_weighting_biquads(sample_rate):
        gain *= np.abs(np.polyval(b[::-1], z)) ** 2 / np.abs(np.polyval(a[::-1], z)) ** 2
    return gain


def _loudness(frames: _Spectrogram) -> tuple[float, float]:
    """(integrated loudness LUFS, loudness range LU). The K-weighted mean square of each frame
    comes from its spectrum by Parseval's theorem; frames are pooled into 100 ms steps, then
    into BS.1770-4's 400 ms gated blocks and EBU Tech 3342's 3 s short-term blocks."""
    one_sided = np.full(len(frames.frequencies), 2.0)
    one_sided[0] = one_sided[-1] = 1.0
    weights = one_sided * _k_weighting_power_gain(frames.frequencies, frames.sample_rate)
    mean_square = frames.power @ weights.astype(np.float32) / (frames.n_fft * np.sum(frames.window ** 2))
    step = np.floor(np.arange(len(mean_square)) / frames.frame_rate / 0.1).astype(int)
    steps = np.bincount(step, weights=mean_square) / np.bincount(step)

    def blocks(n_steps):
        if len(steps) <= n_steps:
            return np.array([steps.mean()])
        cumulative = np.concatenate(([0.0], np.cumsum(steps)))
        return (cumulative[n_steps:] - cumulative[:-n_steps]) / n_steps

    to_lufs = lambda power: -0.691 + 10.0 * np.log10(np.maximum(power, 1e-30))
    momentary = blocks(4)
    gated = momentary[to_lufs(momentary) > LOUDNESS_FLOOR_DB]
    if len(gated) == 0:
        return LOUDNESS_FLOOR_DB, 0.0
    gated = gated[to_lufs(gated) > to_lufs(gated.mean()) - 10.0]
    integrated = max(LOUDNESS_FLOOR_DB, float(to_lufs(gated.mean())))
    short_term = blocks(30)
    short_term = short_term[to_lufs(short_term) > LOUDNESS_FLOOR_DB]
    short_term = to_lufs(short_term[to_lufs(short_term) > to_lufs(short_term.mean()) - 20.0])
    loudness_range = float(np.percentile(short_term, 95) - np.percentile(short_term, 10)) if len(short_term) else 0.0
    return integrated, loudness_range


def _spectral_centroid(frames: _Spectrogram) -> float:
    magnitude = np.sqrt(frames.power).sum(axis=0)
    total = magnitude.sum()
    return float(frames.frequencies @ magnitude / total) if total > 0 else 0.0
