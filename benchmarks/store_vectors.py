"""Vectors that look like a store's, at any size, for the search benchmark.

A real store's track vectors are far from uniform on the sphere: a zero-shot model's are
label log-odds (mostly negative, a few dominant directions, varying norms). Search indexes
behave very differently on such data, so the benchmark measures on vectors drawn from a
model fitted to real embeddings:

1. Embed real audio with the model: the demo library (``immich-memories-music``, 28 tracks;
   used here only to measure vector statistics, never to choose a setting) when installed,
   and generated clips (benchmarks/synth.py's evaluation set) — ``reference_vectors``.
2. Fit a Gaussian mixture with one component per reference vector (a kernel density
   estimate): component means are the reference vectors, every component shares the
   reference set's covariance (shrunk towards its mean variance so it has full rank) scaled
   by a bandwidth squared, the bandwidth chosen by leave-one-out likelihood (rules of thumb
   such as Scott's give ~0.95 in 92 dimensions and smear the tracks into one blob) —
   ``StoreVectorModel``.
3. Draw N vectors: a random component each plus its correlated Gaussian noise, in blocks
   (no float64 copy of a 10M matrix) — ``StoreVectorModel.sample``.

Queries are the model's own query vectors for its vocabulary tags (the words users type),
so recall is measured for the searches the store answers.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 100_000
# Shrinkage of the reference covariance towards its mean variance (full rank with few tracks).
SHRINKAGE = 0.1


def reference_vectors(model_name: str = "mre-zs-musicnn", n_generated: int = 240, seconds: float = 10.0,
                      cache: Path | None = None, paths: list[str] | None = None, echo=print) -> np.ndarray:
    """Track vectors of the demo library (when installed) and ``n_generated`` generated clips,
    or of the audio files ``paths`` when given.

    ``cache``: an .npy file read when it exists and written otherwise (embedding takes minutes).
    """
    if cache is not None and Path(cache).is_file():
        return np.load(cache)
    from mre.benchmarks.synth import evaluation_set, render, write_wav
    from mre.benchmarks.tagging_speed import _demo_files
    from mre.embedder.models.factory import load_model
    from mre.embedder.runner import embed_tracks

    model = load_model(model_name, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        if paths is None:
            clips = evaluation_set(max(1, -(-n_generated // 5)), seed=7, seconds=seconds)[:n_generated]
            paths = _demo_files() + [str(write_wav(Path(scratch) / f"clip{i:03d}.wav", render(spec, 16000), 16000))
                                     for i, (spec, _) in enumerate(clips)]
        vectors = []
        for done, track in enumerate(embed_tracks(paths, model, device="cpu", attributes=False), 1):
            if track.error is None:
                vectors.append(track.vector)
            if echo and (done % 10 == 0 or done == len(paths)):
                echo(f"  embedded {done}/{len(paths)} reference tracks")
    result = np.asarray(vectors, dtype=np.float32)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, result)
    return result


def query_vectors(model_name: str = "mre-zs-musicnn") -> np.ndarray:
    """The model's query vectors for its default vocabulary's tags (one row per tag)."""
    from mre.embedder.models.factory import load_model
    from mre.embedder.models.tag_space import vocabulary_space

    model = load_model(model_name, device="cpu")
    # the store's own tag rows (models.tag_space), so the queries are the tags a store holds
    return np.ascontiguousarray(vocabulary_space(model).matrix, dtype=np.float32)


@dataclass
class StoreVectorModel:
    """A Gaussian mixture: one component per reference vector, one shared covariance."""

    means: np.ndarray        # [components, d]
    noise: np.ndarray        # [d, d]: noise = standard normal @ noise

    bandwidth: float = 1.0   # the component spread, in units of the reference covariance's

    @classmethod
    def fit(cls, reference: np.ndarray) -> "StoreVectorModel":
        """Components on the reference vectors; their shared covariance is the reference
        covariance (shrunk towards its mean variance, so it has full rank) times the
        bandwidth squared, the bandwidth chosen by leave-one-out likelihood: each reference
        vector scored under the mixture of all the others."""
        reference = np.asarray(reference, dtype=np.float64)
        n, dim = reference.shape
        if n < 3:
            raise ValueError(f"need at least 3 reference vectors to fit a mixture, got {n}")
        covariance = np.cov(reference, rowvar=False)
        covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * np.trace(covariance) / dim * np.eye(dim)
        lower = np.linalg.cholesky(covariance)
        bandwidth = _leave_one_out_bandwidth(np.linalg.solve(lower, reference.T).T)
        return cls(means=reference.astype(np.float32), noise=(bandwidth * lower.T).astype(np.float32),
                   bandwidth=bandwidth)

    def sample(self, n: int, seed: int = 0, out: np.ndarray | None = None) -> np.ndarray:
        """``n`` vectors float32 [n, d], drawn in blocks (``out``: fill this array instead)."""
        rng = np.random.default_rng(seed)
        dim = self.means.shape[1]
        vectors = np.empty((n, dim), dtype=np.float32) if out is None else out
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            block = rng.standard_normal((size, dim), dtype=np.float32) @ self.noise
            block += self.means[rng.integers(0, len(self.means), size)]
            vectors[start:start + size] = block
        return vectors


def _leave_one_out_bandwidth(whitened: np.ndarray) -> float:
    """The Gaussian kernel width (whitened units) that maximises the leave-one-out
    log-likelihood of ``whitened`` [n, d], on a log grid from 0.05 to 2."""
    from scipy.special import logsumexp

    n, dim = whitened.shape
    squared = (whitened ** 2).sum(axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * whitened @ whitened.T, 0.0)
    np.fill_diagonal(distances, np.inf)
    grid = np.geomspace(0.05, 2.0, 64)
    likelihood = [float(np.mean(logsumexp(-distances / (2 * h * h), axis=1)) - dim * np.log(h)) for h in grid]
    return float(grid[int(np.argmax(likelihood))])
