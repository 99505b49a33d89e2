"""`mre index` on the local engine against `--engine ray`, the same generated files, one run each.

    python -m mre.benchmarks.engine_speed [--files 60] [--seconds 8] [--out engine.json]

Generates a library of musical clips (benchmarks/synth.py: piano, band, strings, techno, in
rotation, each with its own seed), indexes it into a fresh store with the local engine
(decode workers + the model in this process) and into another with a private local Ray
cluster of all usable cores (Ray start-up and shutdown included: that is what a user waits
for), and prints each run's wall time and realtime factor (seconds of audio per second) and
the ratio Ray / local. It also prints the largest difference between the two stores' vectors.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

KINDS = (
    dict(bpm=70, tonic="C", mode="major", instruments=("piano",), drums="none", loudness_db=-24),
    dict(bpm=140, tonic="E", mode="minor", instruments=("guitar", "bass"), drums="rock", loudness_db=-12),
    dict(bpm=80, tonic="A", mode="minor", instruments=("strings", "violin"), drums="none", loudness_db=-22),
    dict(bpm=128, tonic="F#", mode="minor", instruments=("synth", "bass"), drums="four_on_the_floor", loudness_db=-11),
)


def generate_library(root: Path, n_files: int, seconds: float = 6.0, sample_rate: int = 16000) -> list[Path]:
    """``n_files`` WAV clips under ``root`` (in folders of 10), kinds in rotation, seeds 0..n−1."""
    import soundfile as sf

    from mre.benchmarks.synth import ClipSpec, render

    paths = []
    for number in range(n_files):
        folder = root / f"album{number // 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        spec = ClipSpec(**KINDS[number % len(KINDS)], seconds=seconds, seed=number)
        path = folder / f"track{number:03d}.wav"
        sf.write(path, render(spec, sample_rate), sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths


def store_vectors(store_root: Path) -> tuple[list[str], np.ndarray]:
    """(paths, vectors) of a store's live tracks table, in table order."""
    import pyarrow.parquet as pq

    generation = store_root / "generations" / (store_root / "CURRENT").read_text().strip()
    tracks = pq.read_table(generation / "tracks.parquet", columns=["path", "vector"])
    vectors = np.stack(tracks.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    return tracks.column("path").to_pylist(), vectors


def _index(library: Path, store: Path, engine) -> tuple[float, float, int]:
    from mre.indexer.pipeline import index_library
    from mre.indexer.store import Store

    started = time.perf_counter()
    summary = index_library(library, Store(store), engine=engine)
    return time.perf_counter() - started, summary.audio_seconds, summary.indexed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)

    from mre.indexer.ray_engine import RayEngine

    with tempfile.TemporaryDirectory(prefix="mre-engine-") as work:
        work = Path(work)
        library = work / "library"
        generate_library(library, args.files, args.seconds)
        # the model and word vectors loaded once before timing (both runs then find them cached)
        from mre.embedder.models.factory import load_model

        load_model(None).tag_matrix(["piano"])
        local_s, audio_s, local_n = _index(library, work / "local-store", None)
        with RayEngine() as engine:
            ray_s, ray_audio_s, ray_n = _index(library, work / "ray-store", engine)
            plan = engine.plan
        local_paths, local_vectors = store_vectors(work / "local-store")
        ray_paths, ray_vectors = store_vectors(work / "ray-store")
    assert local_n == ray_n == args.files and local_paths == ray_paths, (local_n, ray_n)
    figures = {
        "files": args.files, "audio_seconds": audio_s,
        "local": {"seconds": local_s, "realtime": audio_s / local_s},
        "ray": {"seconds": ray_s, "realtime": ray_audio_s / ray_s, "actors": plan.actors,
                "cpus_per_actor": plan.cpus_per_actor},
        "ray_over_local_time": ray_s / local_s,
        "max_vector_difference": float(np.abs(local_vectors - ray_vectors).max()),
    }
    print(f"{args.files} files, {audio_s:.0f} s of audio")
    print(f"  local engine   {local_s:6.1f} s  {figures['local']['realtime']:6.1f}× realtime")
    print(f"  Ray ({plan.actors} actor{'s' if plan.actors > 1 else ''} × {plan.cpus_per_actor} CPU)"
          f" {ray_s:6.1f} s  {figures['ray']['realtime']:6.1f}× realtime  "
          f"(wall time {figures['ray_over_local_time']:.2f}× the local engine's, start-up and shutdown included)")
    print(f"  largest vector difference: {figures['max_vector_difference']:.2e}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
