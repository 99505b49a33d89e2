"""`mre duplicates` speed: fingerprinting against decoding, grouping 10k cached fingerprints,
and a re-run over unchanged files.

    python -m mre.benchmarks.duplicates_speed [--library DIR] [--tracks 10000]

1. fpcalc over the library's files (default: the demo tracks), one process at a time, against
   mre's own decode (load_audio at 16 kHz) of the same files, measured in the same run;
2. grouping of ``--tracks`` fingerprints as the cache holds them: real fingerprints of the
   library with copies of them (5 % of the bits flipped, 0-10 s cut at the start) plus
   random ones of 120 s, durations of 2-7 min and embedding vectors near their originals';
   prints the time, the peak memory (getrusage) and how many planted copies were found;
3. the fingerprint pass twice over the same files in a fresh store: the second computes none.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _library_files(library: str | None) -> list[str]:
    from mre.embedder.audio.decode import audio_files_under

    if library is None:
        import immich_memories_music

        library = str(Path(immich_memories_music.__file__).parent / "tracks")
    return [str(p) for p in audio_files_under(library)]


def _keys(files):
    return [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files]


def fingerprint_vs_decode(files: list[str]) -> dict:
    from mre.embedder.audio.decode import load_audio
    from mre.indexer.fingerprints import fingerprint, fpcalc_path

    tool = fpcalc_path()
    started = time.perf_counter()
    found = [fingerprint(key, tool) for key in _keys(files)]
    fingerprint_seconds = time.perf_counter() - started
    started = time.perf_counter()
    audio_seconds = sum(load_audio(path, 16000)[1].duration for path in files)
    decode_seconds = time.perf_counter() - started
    return {"files": len(files), "audio_seconds": audio_seconds, "fingerprint_seconds": fingerprint_seconds,
            "decode_seconds": decode_seconds, "fingerprints": [f for f in found if f.items is not None]}


def synthetic_cache(real: list[np.ndarray], n_tracks: int, seed: int = 0):
    """(fingerprints, durations, vectors, planted copy pairs) for ``n_tracks`` tracks."""
    from mre.indexer.fingerprints import ITEM_SECONDS

    rng = np.random.default_rng(seed)
    items_120s = int(120 / ITEM_SECONDS)
    dim = 128
    fingerprints, durations, vectors, planted = [], [], [], []
    # every real fingerprint and 3 copies of it, the rest random tracks, 1 in 50 with a copy
    originals = list(real)
    while len(fingerprints) + 4 * len(originals) < n_tracks * 0.98:
        originals.append(rng.integers(0, 2**32, size=items_120s, dtype=np.uint64).astype(np.uint32))
    for items in originals:
        row = len(fingerprints)
        duration = float(rng.uniform(120, 420))
        vector = rng.normal(size=dim)
        fingerprints.append(items)
        durations.append(duration)
        vectors.append(vector)
        copies = 3 if len(planted) < 3 * len(real) else (1 if rng.random() < 0.02 else 0)
        for _ in range(copies):
            cut = int(rng.uniform(0, 10) / ITEM_SECONDS)
            noise = (rng.random((len(items), 32)) < 0.05)
            flips = np.packbits(noise, axis=1, bitorder="little").view(np.uint32)[:, 0]
            fingerprints.append((items ^ flips)[cut:])
            durations.append(duration - cut * ITEM_SECONDS)
            vectors.append(vector + rng.normal(scale=0.05, size=dim))
            planted.append((row, len(fingerprints) - 1))
    while len(fingerprints) < n_tracks:
        fingerprints.append(rng.integers(0, 2**32, size=items_120s, dtype=np.uint64).astype(np.uint32))
        durations.append(float(rng.uniform(120, 420)))
        vectors.append(rng.normal(size=dim))
    return fingerprints, np.array(durations), np.array(vectors, dtype=np.float32), planted


def grouping(real: list[np.ndarray], n_tracks: int) -> dict:
    from mre.indexer import fingerprint_match as match

    fingerprints, durations, vectors, planted = synthetic_cache(real, n_tracks)
    started = time.perf_counter()
    matrix = match.FingerprintMatrix(fingerprints)
    a, b = match.candidate_pairs(durations, vectors)
    candidates_seconds = time.perf_counter() - started
    scored = match.score_pairs(matrix, a, b)
    groups = match.group_matches(matrix, scored)
    seconds = time.perf_counter() - started
    together = {(x, y) for group in groups for x in group for y in group if x < y}
    found = sum(1 for pair in planted if pair in together)
    return {"tracks": len(fingerprints), "pairs": len(a), "candidates_seconds": candidates_seconds,
            "seconds": seconds, "groups": len(groups), "planted": len(planted), "found": found,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def rerun(files: list[str]) -> tuple[int, int, float]:
    from mre.indexer.fingerprints import update_fingerprints
    from mre.indexer.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(folder)
        first = update_fingerprints(store, _keys(files), workers=1)
        started = time.perf_counter()
        second = update_fingerprints(store, _keys(files), workers=1)
        return first.computed, second.computed, time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default=None, help="audio folder (default: the demo tracks)")
    parser.add_argument("--tracks", type=int, default=10_000)
    args = parser.parse_args(argv)
    files = _library_files(args.library)
    speed = fingerprint_vs_decode(files)
    print(f"fingerprinting {speed['files']} files ({speed['audio_seconds']:.0f} s of audio), one process: "
          f"fpcalc {speed['fingerprint_seconds']:.2f} s ({speed['audio_seconds'] / speed['fingerprint_seconds']:.0f}× realtime), "
          f"decode only {speed['decode_seconds']:.2f} s ({speed['audio_seconds'] / speed['decode_seconds']:.0f}× realtime); "
          f"ratio fpcalc/decode {speed['fingerprint_seconds'] / speed['decode_seconds']:.2f}")
    result = grouping([f.items for f in speed["fingerprints"]], args.tracks)
    print(f"grouping {result['tracks']} cached fingerprints: {result['seconds']:.1f} s "
          f"({result['pairs']} candidate pairs in {result['candidates_seconds']:.1f} s), {result['groups']} groups, "
          f"{result['found']}/{result['planted']} planted copies found; peak RSS {result['peak_rss_mb']:.0f} MB")
    first, second, seconds = rerun(files)
    print(f"fingerprint pass over {len(files)} files: first run computed {first}, "
          f"re-run with nothing changed computed {second} ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
