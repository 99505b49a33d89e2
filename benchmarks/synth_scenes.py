"""Generated sound scenes whose tags word vectors can carry to unseen words.

For the zero-shot training test and the paper's control (GloVe vs random word vectors):
each scene mixes one or two sound sources, and each source is tagged with several words that
sit together in GloVe (ocean / sea / waves / water; bells / chimes / ...), far from the other
sources' words. Holding one word per source out of training (`UNSEEN_WORDS`), a model whose
word branch reads real word vectors should still find that source's clips by the held-out
word; with random word vectors it cannot, since nothing ties the held-out word to the others.

    rows = write_scene_library(folder, n_tracks=60, seed=0)   # writes WAVs + tracks.csv
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
# Source → its words (the last one is held out of training by default).
SOURCE_WORDS = {
    "ocean": ("ocean", "sea", "water", "waves"),
    "birds": ("birds", "bird", "sparrow", "chirping"),
    "bells": ("bells", "bell", "chime", "chimes"),
    "drums": ("drums", "drum", "drumming", "percussion"),
    "engine": ("engine", "car", "truck", "motor"),
}
UNSEEN_WORDS = tuple(words[-1] for words in SOURCE_WORDS.values())


def _ocean(n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n)
    smooth = np.convolve(noise, np.ones(24) / 24, mode="same")           # crude low-pass: surf rumble
    t = np.arange(n) / SAMPLE_RATE
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
    return smooth * swell


def _birds(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    position = int(rng.uniform(0, 0.2) * SAMPLE_RATE)
    while position < n:
        length = int(rng.uniform(0.05, 0.12) * SAMPLE_RATE)
        t = np.arange(min(length, n - position)) / SAMPLE_RATE
        start, end = rng.uniform(2500, 3500), rng.uniform(4000, 6000)
        phase = 2 * np.pi * (start * t + (end - start) * t ** 2 / (2 * max(t[-1], 1e-3)))
        out[position:position + len(t)] += np.sin(phase) * np.hanning(len(t))
        position += length + int(rng.uniform(0.05, 0.4) * SAMPLE_RATE)
    return out


def _bells(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    period = int(rng.uniform(0.6, 1.2) * SAMPLE_RATE)
    for start in range(int(rng.uniform(0, 0.3) * SAMPLE_RATE), n, period):
        f0 = rng.uniform(500, 900)
        t = np.arange(n - start) / SAMPLE_RATE
        # inharmonic partials of a bell (ratios after Rossing, "The Science of Sound")
        strike = sum(a * np.sin(2 * np.pi * f0 * r * t) for r, a in ((0.5, 0.5), (1.0, 1.0), (1.19, 0.6),
                                                                       (1.5, 0.4), (2.0, 0.5), (2.74, 0.3)))
        out[start:] += strike * np.exp(-t * rng.uniform(1.5, 3.0))
    return out


def _drums(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    beat = int(60 / rng.uniform(90, 140) * SAMPLE_RATE)
    for i, start in enumerate(range(0, n, beat // 2)):
        t = np.arange(min(int(0.25 * SAMPLE_RATE), n - start)) / SAMPLE_RATE
        if i % 2 == 0:   # kick: a falling low sine
            hit = np.sin(2 * np.pi * (60 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
        else:            # snare/hat: a noise burst
            hit = rng.standard_normal(len(t)) * np.exp(-t * 25) * 0.6
        out[start:start + len(t)] += hit
    return out


def _engine(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(35, 70) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    buzz = sum(np.sin(k * phase) / k for k in range(1, 12))             # sawtooth-like firing
    return buzz + 0.2 * np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")


SOURCES = {"ocean": _ocean, "birds": _birds, "bells": _bells, "drums": _drums, "engine": _engine}


def render_scene(sources: tuple[str, ...], seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A float32 mono scene at 16 kHz mixing the named sources at equal RMS, peak-normalised."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    mix = np.zeros(n)
    for name in sources:
        layer = SOURCES[name](n, rng)
        mix += layer / max(float(np.sqrt(np.mean(layer ** 2))), 1e-9)
    return (0.5 * mix / max(float(np.abs(mix).max()), 1e-9)).astype(np.float32)


def write_scene_library(folder: str | Path, n_tracks: int = 60, seconds: float = 4.0, seed: int = 0,
                        table: str = "tracks.csv") -> list[dict]:
    """Write n_tracks scenes (one or two sources each) as WAVs and a tracks table; returns its rows."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(SOURCES)
    rows = []
    for i in range(n_tracks):
        count = 1 if rng.random() < 0.5 else 2
        chosen = tuple(sorted(rng.choice(names, size=count, replace=False).tolist()))
        path = folder / f"scene_{i:03d}.wav"
        sf.write(path, render_scene(chosen, seconds, seed=seed * 100_003 + i), SAMPLE_RATE, subtype="PCM_16")
        tags = [word for name in chosen for word in SOURCE_WORDS[name]]
        rows.append({"path": path.name, "tags": "|".join(tags)})
    with open(folder / table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "tags"])
        writer.writeheader()
        writer.writerows(rows)
    return rows
