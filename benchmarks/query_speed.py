"""Query latency: `Library.search` on a real store, and the engine's index at 100k vectors.

    python -m mre.benchmarks.query_speed [--store demo-store] [--synthetic 100000] [--json OUT]

1. On a store (default: ./demo-store, made by `make demo`): p50/p99 of a whole word→song
   query as `mre query` runs it once the store is open (words → label weights → FAISS), of
   the FAISS search alone, and of numpy brute force over the same vectors (the baseline),
   over a fixed list of queries, each repeated.
2. On N synthetic vectors of the default model's dimension: the index the engine chooses at
   that size against numpy brute force (via `mre.benchmarks.search_speed`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

QUERIES = ("calm piano", "energetic electronic dance", "dub reggae", "acoustic guitar no vocals", "sad strings",
           "female vocals pop", "heavy metal", "ambient", "jazz saxophone", "happy upbeat")
REPEATS = 20


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def store_latency(store: Path, k: int = 10) -> dict:
    from mre.indexer.index_spec import search as index_search
    from mre.retrieval import Library

    library = Library(store)
    vectors = library.track_vectors
    index = library.generation.audio_index()
    for text in QUERIES:  # warm-up: word vectors, CSLS neighbourhoods, index load
        library.search(text, k)
    whole, faiss_only, numpy_only = [], [], []
    for _ in range(REPEATS):
        for text in QUERIES:
            started = time.perf_counter()
            library.search(text, k)
            whole.append(time.perf_counter() - started)
            query = library.model.query_vector(text).vector.astype(np.float32)[None]
            started = time.perf_counter()
            index_search(index, query, min(k, len(library)))
            faiss_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            scores = vectors @ query[0]
            np.argsort(-scores)[:k]
            numpy_only.append(time.perf_counter() - started)
    return {"store": str(store), "tracks": len(library), "index_spec": library.meta["audio_index"]["spec"],
            "whole_query": _percentiles(whole), "faiss_search": _percentiles(faiss_only),
            "numpy_brute_force": _percentiles(numpy_only)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("demo-store"))
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report: dict = {}
    if (args.store / "CURRENT").exists():
        report["store"] = figures = store_latency(args.store)
        base = figures["numpy_brute_force"]["p50_ms"]
        print(f"store {figures['store']}: {figures['tracks']} tracks, index {figures['index_spec']}")
        print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}{'p50 vs numpy':>14}")
        for name in ("whole_query", "faiss_search", "numpy_brute_force"):
            row = figures[name]
            print(f"{name:<22}{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}{row['p50_ms'] / base:>14.2f}")
    else:
        print(f"no store at {args.store} (run `make demo` first); skipping the store figures")
    if args.synthetic:
        from mre.benchmarks import search_speed
        from mre.embedder.models.zeroshot import ZeroShotTaggerModel

        dim = ZeroShotTaggerModel().dim
        print()
        report["synthetic"] = search_speed.run(sizes=(args.synthetic,), dim=dim)  # prints its own table
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
