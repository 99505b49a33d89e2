"""Deterministic test clips (seeded numpy) shared by the musicnn port's test and the script
that computed its reference numbers with the original musicnn
(tests/fixtures/musicnn_reference/make_reference.py). numpy only, so both environments import it.
"""
from __future__ import annotations

import numpy as np

CLIP_SAMPLE_RATE = 16000  # musicnn's SR: librosa.load then does not resample
CLIP_SECONDS = 10.0
CLIP_PEAK = 0.5
# name -> seed; the generator's parameters are the constants in this file.
CLIP_SEEDS = {"chords": 1, "drums": 2, "sweep": 3}


def _normalise(signal: np.ndarray) -> np.ndarray:
    return (CLIP_PEAK * signal / np.max(np.abs(signal))).astype(np.float32)


def chord_sequence(seed: int, sample_rate: int = CLIP_SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Eight seeded major/minor triads (roots MIDI 48-59), 4 harmonics each, plucked envelope."""
    rng = np.random.default_rng(seed)
    n_chords = 8
    chord_samples = int(sample_rate * seconds) // n_chords
    time = np.arange(chord_samples) / sample_rate
    envelope = np.minimum(time / 0.01, 1.0) * np.exp(-1.5 * time)
    chords = []
    for _ in range(n_chords):
        root = int(rng.integers(48, 60))
        third = 4 if rng.random() < 0.5 else 3
        chord = np.zeros(chord_samples)
        for midi in (root, root + third, root + 7):
            frequency = 440.0 * 2.0 ** ((midi - 69) / 12)
            phase = rng.uniform(0, 2 * np.pi)
            for harmonic in range(1, 5):
                chord += np.sin(2 * np.pi * harmonic * frequency * time + phase) / harmonic
        chords.append(chord * envelope)
    return _normalise(np.concatenate(chords))


def drum_pattern(seed: int, sample_rate: int = CLIP_SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """120 BPM eighth notes: kick on beats 1 and 3, noise snare on 2 and 4, hi-hat on every eighth."""
    rng = np.random.default_rng(seed)
    n_samples = int(sample_rate * seconds)
    signal = np.zeros(n_samples)
    eighth = int(sample_rate * 0.25)
    hit_time = np.arange(eighth) / sample_rate
    kick_frequency = 45.0 + 75.0 * np.exp(-hit_time * 30.0)
    kick = np.sin(2 * np.pi * np.cumsum(kick_frequency) / sample_rate) * np.exp(-hit_time * 12.0)
    for step, start in enumerate(range(0, n_samples - eighth + 1, eighth)):
        noise = rng.standard_normal(eighth)
        hit = 0.3 * np.diff(noise, prepend=0.0) * np.exp(-hit_time * 60.0)  # hi-hat: bright noise
        beat_step = step % 8
        if beat_step in (0, 4):
            hit += kick
        if beat_step in (2, 6):
            hit += (0.6 * noise + 0.4 * np.sin(2 * np.pi * 180.0 * hit_time)) * np.exp(-hit_time * 20.0)
        signal[start : start + eighth] += hit
    return _normalise(signal)


def sine_sweep(seed: int, sample_rate: int = CLIP_SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Exponential sine sweep 40 Hz -> 7 kHz; the seed only sets the start phase."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(sample_rate * seconds)) / sample_rate
    f_start, f_end = 40.0, 7000.0
    rate = np.log(f_end / f_start) / seconds
    phase = 2 * np.pi * f_start * (np.exp(rate * time) - 1.0) / rate + rng.uniform(0, 2 * np.pi)
    return _normalise(np.sin(phase))


CLIP_GENERATORS = {"chords": chord_sequence, "drums": drum_pattern, "sweep": sine_sweep}


def generate_clip(name: str) -> np.ndarray:
    """The named test clip: float32 mono at CLIP_SAMPLE_RATE, CLIP_SECONDS long."""
    return CLIP_GENERATORS[name](CLIP_SEEDS[name])
