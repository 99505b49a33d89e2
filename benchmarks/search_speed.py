"""Search speed at scale: the index the engine chooses against numpy brute force, in one run.

    python -m mre.benchmarks.search_speed [--sizes 10000,100000,1000000] [--dim 100]
        [--queries 200] [--out search_speed.json] [--png search_speed.png]

For each size N: N random unit vectors (the worst case for approximate indexes: no
clusters to exploit), the FAISS index ``choose_index_spec`` picks at that size, and numpy
brute force (``vectors @ q`` + argpartition). Per method: build time, single-query p50/p99
latency, queries per second (one query at a time, as `mre query` runs), recall@10 against
exact search, and the speed-up over numpy. For approximate indexes, a sweep of the main
knob (k_factor_rf re-ranking depth, or nprobe) gives the latency/recall trade-off drawn in
the PNG (when matplotlib is installed). FAISS runs on one thread by default (see
index_spec.use_single_query_threads); numpy uses its BLAS defaults.
Goal: at 1M, p50 <= 2 ms at recall@10 >= 0.95, >= 20x numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

K = 10
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of a 1M matrix
        block = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        vectors[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def exact_top_k(database: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    top = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 50):
        scores = queries[start:start + 50] @ database.T
        top[start:start + 50] = np.argpartition(-scores, k, axis=1)[:, :k]
    return top


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / exact.shape[1] for f, e in zip(found, exact)]))


def time_single_queries(search, queries: np.ndarray) -> tuple[dict, np.ndarray]:
    """Latency of one query at a time; returns figures and the ids found."""
    for query in queries[:5]:
        search(query)  # warm caches and thread pools
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        ids = search(query)
        latencies.append(time.perf_counter() - started)
        found.append(ids)
    latencies_ms = np.array(latencies) * 1e3
    figures = {
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p99_ms": float(np.percentile(latencies_ms, 99)),
        "qps": float(len(queries) / (latencies_ms.sum() / 1e3)),
    }
    return figures, np.array(found)


def numpy_search(database: np.ndarray):
    def search(query: np.ndarray) -> np.ndarray:
        scores = database @ query
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]
    return search


def faiss_search(index):
    def search(query: np.ndarray) -> np.ndarray:
        return index.search(query[None, :], K)[1][0]
    return search


def tradeoff_sweep(index, spec: str, queries: np.ndarray, exact: np.ndarray) -> list[dict]:
    """Latency/recall at other settings of the chosen index's main knob (nprobe or k_factor_rf)."""
    import faiss

    from mre.indexer.index_spec import apply_search_params, search_params

    chosen = search_params(spec, index.ntotal)
    if "nprobe" in chosen:
        nlist = faiss.extract_index_ivf(index).nlist
        knob, values = "nprobe", {max(1, nlist // 4), max(1, nlist // 2), chosen["nprobe"], nlist}
    elif "k_factor_rf" in chosen:
        knob, values = "k_factor_rf", {5, 10, 20, 30, chosen["k_factor_rf"], 100}
    else:
        return []
    points = []
    for value in sorted(values):
        apply_search_params(index, {**chosen, knob: value})
        figures, found = time_single_queries(faiss_search(index), queries)
        points.append({"setting": f"{knob}={value:g}", "recall_at_10": recall_at_k(found, exact), **figures})
    apply_search_params(index, chosen)
    return points


def measure_size(n: int, dim: int, n_queries: int, seed: int, index_spec: str | None, flat_max: int | None) -> dict:
    from mre.indexer.index_spec import build_index, choose_index_spec, search_params

    database = random_unit_vectors(n, dim, seed)
    queries = random_unit_vectors(n_queries, dim, seed + 1)
    exact = exact_top_k(database, queries)

    numpy_figures, found = time_single_queries(numpy_search(database), queries)
    numpy_row = {"method": "numpy", "spec": "vectors @ q + argpartition", "build_s": 0.0,
                 "recall_at_10": recall_at_k(found, exact), **numpy_figures}

    spec = index_spec or choose_index_spec(n, dim, flat_max=flat_max)
    started = time.perf_counter()
    index = build_index(database, spec)
    build_s = time.perf_counter() - started
    index_figures, found = time_single_queries(faiss_search(index), queries)
    index_row = {"method": "engine", "spec": spec, "search_params": search_params(spec, n), "build_s": build_s,
                 "recall_at_10": recall_at_k(found, exact), **index_figures,
                 "speedup_p50_vs_numpy": numpy_figures["p50_ms"] / index_figures["p50_ms"],
                 "speedup_qps_vs_numpy": index_figures["qps"] / numpy_figures["qps"]}
    return {"n": n, "dim": dim, "queries": n_queries, "numpy": numpy_row, "engine": index_row,
            "sweep": tradeoff_sweep(index, spec, queries, exact)}


def run(sizes=DEFAULT_SIZES, dim: int = 100, n_queries: int = 200, seed: int = 0,
        index_spec: str | None = None, flat_max: int | None = None, threads: int | None = 1, echo=print) -> dict:
    import faiss

    from mre.indexer.index_spec import use_single_query_threads

    if threads:
        use_single_query_threads(threads)
    report = {"benchmark": "search_speed", "k": K, "faiss_version": faiss.__version__,
              "faiss_threads": faiss.omp_get_max_threads(), "cpu_count": os.cpu_count(), "sizes": []}
    for n in sizes:
        result = measure_size(n, dim, n_queries, seed, index_spec, flat_max)
        report["sizes"].append(result)
        if echo:
            echo(format_rows([result]))
    return report


def format_rows(results: list[dict]) -> str:
    header = f"{'N':>9}  {'method':<6}  {'spec':<26}  {'build s':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'QPS':>8}  {'recall@10':>9}  {'x numpy':>7}"
    lines = [header]
    for result in results:
        for row in (result["numpy"], result["engine"]):
            ratio = row.get("speedup_p50_vs_numpy", 1.0)
            lines.append(f"{result['n']:>9}  {row['method']:<6}  {row['spec'][:26]:<26}  {row['build_s']:>8.2f}  "
                         f"{row['p50_ms']:>8.3f}  {row['p99_ms']:>8.3f}  {row['qps']:>8.0f}  "
                         f"{row['recall_at_10']:>9.3f}  {ratio:>7.1f}")
        for point in result["sweep"]:
            lines.append(f"{'':>9}  {'sweep':<6}  {point['setting']:<26}  {'':>8}  "
                         f"{point['p50_ms']:>8.3f}  {point['p99_ms']:>8.3f}  {point['qps']:>8.0f}  {point['recall_at_10']:>9.3f}")
    return "\n".join(lines)


def plot_latency_vs_recall(report: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for result in report["sizes"]:
        label = f"N={result['n']:,}"
        sweep = result["sweep"]
        if sweep:
            line, = axes.plot([p["recall_at_10"] for p in sweep], [p["p50_ms"] for p in sweep], "o-", label=f"{label} {result['engine']['spec']}")
        else:
            line, = axes.plot([result["engine"]["recall_at_10"]], [result["engine"]["p50_ms"]], "o", label=f"{label} {result['engine']['spec']}")
        axes.plot([1.0], [result["numpy"]["p50_ms"]], "x", color=line.get_color(), markersize=9, label=f"{label} numpy")
    axes.set_yscale("log")
    axes.set_xlabel("recall@10 vs exact search")
    axes.set_ylabel("single-query p50 latency (ms)")
    axes.set_title(f"Search on random unit vectors, d={report['sizes'][0]['dim']}")
    axes.axvline(0.95, color="grey", linestyle=":")
    axes.axhline(2.0, color="grey", linestyle=":")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES),
                        help="comma-separated store sizes (default: 10000,100000,1000000)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index-spec", default=None, help="measure this FAISS factory string instead of the chooser's")
    parser.add_argument("--flat-max", type=int, default=None, help="exact-search threshold override")
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS threads for build and search (default 1: single queries; 0 = FAISS default)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--png", type=Path, default=None, help="latency-vs-recall figure (default: beside --out)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) <= K or args.dim <= 0 or args.queries <= 0:
        parser.error(f"sizes must be > {K}, --dim and --queries positive")
    report = run(sizes, args.dim, args.queries, args.seed, args.index_spec, args.flat_max, args.threads)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    png = args.png or (args.out.with_suffix(".png") if args.out else None)
    if png and plot_latency_vs_recall(report, png):
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
