"""Search speed at scale: the index the engine chooses against numpy brute force, in one run.

    python -m mre.benchmarks.search_speed [--sizes 10000,100000,1000000] [--vectors store|random]
        [--model NAME] [--dim 100] [--queries 200] [--out search_speed.json]

Vectors (``--vectors``):

- ``store`` (what `mre bench speed` measures): vectors that look like a store's, drawn from
  a Gaussian mixture fitted to the model's embeddings of real audio (the demo library when
  installed, and generated clips; benchmarks/store_vectors.py says how). Queries are the
  model's query vectors for its vocabulary tags — the searches users make. The tags are
  split in two: even rows go to the index's build-time tuning, odd rows are measured, so
  the measured recall is not the tuning's own.
- ``random``: random unit vectors of ``--dim`` (no structure at all: the worst case for
  partitioning indexes), queries random unit vectors too.

For each size N: the FAISS index ``choose_index_spec`` picks at that size (trained on a
sample; an inverted-file index's nprobe measured at build time), and numpy brute force
(``vectors @ q`` + argpartition). Per method: build time (train + add + tuning), the
index's bytes and the process's peak memory, single-query p50/p99 latency, queries per
second (one query at a time on one FAISS thread, as `mre query` runs), recall@10 against
exact search, and the speed-up over numpy measured in the same run. A sweep of the main
knob (nprobe, or k_factor_rf) shows the latency/recall trade-off. Two PNGs: p50 latency
against store size (the engine's index and numpy), and latency against recall.
Goals: at 1M p50 <= 1 ms at recall@10 >= 0.95 and >= 20x numpy; at 10M p50 <= 3 ms at
recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from mre.indexer.index_spec import exact_top_k, recall_at_k

K = 10
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
# numpy brute force is timed on fewer queries at large sizes (a query costs ~0.1 s per 1M
# vectors on a loaded core): at least 20, about 2e8 / N.
NUMPY_QUERY_BUDGET = 200_000_000


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of a 1M matrix
        block = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        vectors[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


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
    from mre.indexer.index_spec import search as index_search

    def search(query: np.ndarray) -> np.ndarray:
        return index_search(index, query[None, :], K)[1][0]
    return search


def tradeoff_sweep(index, params: dict, queries: np.ndarray, exact: np.ndarray) -> list[dict]:
    """Latency/recall at other settings of the chosen index's main knob (nprobe or k_factor_rf)."""
    import faiss

    from mre.indexer.index_spec import apply_search_params

    if "nprobe" in params:
        nlist = faiss.extract_index_ivf(index).nlist
        chosen = int(params["nprobe"])
        knob, values = "nprobe", {max(1, chosen // 4), max(1, chosen // 2), chosen, min(nlist, chosen * 2), nlist}
    elif "k_factor_rf" in params:
        knob, values = "k_factor_rf", {5, 10, 20, params["k_factor_rf"], 100}
    else:
        return []
    points = []
    for value in sorted(values):
        apply_search_params(index, {**params, knob: value})
        figures, found = time_single_queries(faiss_search(index), queries)
        points.append({"setting": f"{knob}={value:g}", "recall_at_10": recall_at_k(found, exact), **figures})
    apply_search_params(index, params)
    return points


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def index_bytes(index) -> int:
    """Bytes the index holds: its codes plus, for a re-ranking index, the exact vectors."""
    import faiss

    try:
        return int(index.ntotal) * int(index.sa_code_size())
    except RuntimeError:
        refine = getattr(index, "refine_index", None)
        base = getattr(index, "base_index", None)
        if refine is not None and base is not None:
            base = faiss.downcast_index(base)
            codes = getattr(base, "code_size", 0) or 0
            return int(index.ntotal) * (int(codes) + 4 * int(index.d))
        return int(index.ntotal) * 4 * int(index.d)


class VectorSource:
    """Database and query vectors for the benchmark: ``store`` (fitted to a model's
    embeddings) or ``random`` (unit vectors)."""

    def __init__(self, kind: str, dim: int = 92, model_name: str = "mre-zs-musicnn",
                 cache_dir: Path | None = None, reference_paths: list[str] | None = None, echo=print):
        self.kind = kind
        if kind == "random":
            self.dim, self.model, self.tune_queries, self.queries = dim, None, None, None
            return
        if kind != "store":
            raise ValueError(f"unknown vectors {kind!r}: 'store' or 'random'")
        from mre.benchmarks.store_vectors import StoreVectorModel, query_vectors, reference_vectors

        # the default reference set is cached beside the figures; audio given by the caller is embedded each run
        cache = None if cache_dir is None or reference_paths is not None else \
            Path(cache_dir) / f"reference_vectors-{Path(model_name).name}.npy"
        reference = reference_vectors(model_name, cache=cache, paths=reference_paths, echo=echo)
        self.model = StoreVectorModel.fit(reference)
        self.reference_count = len(reference)
        tags = query_vectors(model_name)
        self.tune_queries, self.queries = tags[0::2], tags[1::2]
        self.dim = reference.shape[1]

    def database(self, n: int, seed: int) -> np.ndarray:
        return random_unit_vectors(n, self.dim, seed) if self.model is None else self.model.sample(n, seed)

    def query_set(self, n_queries: int, seed: int) -> np.ndarray:
        if self.queries is None:
            return random_unit_vectors(n_queries, self.dim, seed + 1)
        rng = np.random.default_rng(seed + 1)
        rows = rng.choice(len(self.queries), min(n_queries, len(self.queries)), replace=False)
        return np.ascontiguousarray(self.queries[np.sort(rows)])

    def describe(self) -> dict:
        if self.model is None:
            return {"vectors": "random unit vectors", "queries": "random unit vectors"}
        return {"vectors": f"Gaussian mixture on {self.reference_count} embedded tracks "
                           f"(bandwidth {self.model.bandwidth:.3f})",
                "queries": "the model's vocabulary tag query vectors (odd rows; even rows tune the index)"}


def measure_size(n: int, source: VectorSource, n_queries: int, seed: int, index_spec: str | None,
                 flat_max: int | None, ivf_min: int | None = None, threads: int | None = 1, echo=print) -> dict:
    import faiss

    from mre.indexer.index_spec import build_index, choose_index_spec, tune_search_params, use_single_query_threads

    say = echo or (lambda *_: None)
    say(f"  N={n:,}: drawing vectors")
    database = source.database(n, seed)
    queries = source.query_set(n_queries, seed)
    exact = exact_top_k(database, queries, K)

    say(f"  N={n:,}: numpy brute force")
    numpy_queries = queries[:max(20, min(len(queries), NUMPY_QUERY_BUDGET // max(1, n)))]
    numpy_figures, found = time_single_queries(numpy_search(database), numpy_queries)
    numpy_row = {"method": "numpy", "spec": "vectors @ q + argpartition", "build_s": 0.0, "queries": len(numpy_queries),
                 "recall_at_10": recall_at_k(found, exact[:len(numpy_queries)]), **numpy_figures}

    spec = index_spec or choose_index_spec(n, source.dim, flat_max=flat_max, ivf_min=ivf_min)
    say(f"  N={n:,}: building {spec}")
    build_threads = faiss.omp_get_max_threads()
    use_single_query_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = build_index(database, spec)
    trained_s = time.perf_counter() - started
    params, tuning = tune_search_params(index, database, spec, queries=source.tune_queries)
    build_s = time.perf_counter() - started
    use_single_query_threads(threads or build_threads)
    say(f"  N={n:,}: timing {spec} {params}")
    index_figures, found = time_single_queries(faiss_search(index), queries)
    index_row = {"method": "engine", "spec": spec, "search_params": params, "tuning": tuning,
                 "build_s": build_s, "train_add_s": trained_s, "tune_s": build_s - trained_s,
                 "index_bytes": index_bytes(index), "queries": len(queries),
                 "recall_at_10": recall_at_k(found, exact), **index_figures,
                 "speedup_p50_vs_numpy": numpy_figures["p50_ms"] / index_figures["p50_ms"],
                 "speedup_qps_vs_numpy": index_figures["qps"] / numpy_figures["qps"]}
    sweep = tradeoff_sweep(index, params, queries, exact)
    result = {"n": n, "dim": source.dim, "queries": len(queries), "vectors_bytes": int(database.nbytes),
              "numpy": numpy_row, "engine": index_row, "sweep": sweep}
    del index, database
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def run(sizes=DEFAULT_SIZES, dim: int = 100, n_queries: int = 200, seed: int = 0,
        index_spec: str | None = None, flat_max: int | None = None, threads: int | None = 1, echo=print,
        vectors: str = "random", model_name: str = "mre-zs-musicnn", cache_dir: Path | None = None,
        ivf_min: int | None = None, reference_paths: list[str] | None = None) -> dict:
    """Measure every size in ``sizes``; ``threads``: FAISS threads while timing single queries
    (None: FAISS's default); building and tuning use every core, as `mre index` does.
    ``reference_paths``: audio whose embeddings the store-like vectors are fitted to
    (default: the demo library and generated clips)."""
    import faiss

    source = VectorSource(vectors, dim=dim, model_name=model_name, cache_dir=cache_dir,
                          reference_paths=reference_paths, echo=echo)
    report = {"benchmark": "search_speed", "k": K, "faiss_version": faiss.__version__,
              "cpu_count": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
              "faiss_threads_searching": threads or faiss.omp_get_max_threads(), **source.describe(), "sizes": []}
    for n in sizes:
        result = measure_size(n, source, n_queries, seed, index_spec, flat_max, ivf_min, threads, echo)
        report["sizes"].append(result)
        if echo:
            echo(format_rows([result]))
    return report


def format_rows(results: list[dict]) -> str:
    header = (f"{'N':>10}  {'method':<6}  {'spec':<24}  {'build s':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'QPS':>8}  "
              f"{'recall@10':>9}  {'x numpy':>7}")
    lines = [header]
    for result in results:
        for row in (result["numpy"], result["engine"]):
            ratio = row.get("speedup_p50_vs_numpy", 1.0)
            lines.append(f"{result['n']:>10,}  {row['method']:<6}  {row['spec'][:24]:<24}  {row['build_s']:>8.2f}  "
                         f"{row['p50_ms']:>8.3f}  {row['p99_ms']:>8.3f}  {row['qps']:>8.0f}  "
                         f"{row['recall_at_10']:>9.3f}  {ratio:>7.1f}")
        for point in result["sweep"]:
            lines.append(f"{'':>10}  {'sweep':<6}  {point['setting']:<24}  {'':>8}  "
                         f"{point['p50_ms']:>8.3f}  {point['p99_ms']:>8.3f}  {point['qps']:>8.0f}  {point['recall_at_10']:>9.3f}")
        engine = result["engine"]
        tuning = engine.get("tuning") or {}
        lines.append(f"{'':>10}  {engine['search_params']}"
                     + (f" measured at build: recall@10 {tuning['recall_at_10']} on {tuning['queries']} "
                        f"{tuning['query_source']}, trained on {tuning['train_sample']:,}" if tuning else "")
                     + f"; build {engine['build_s']:.1f} s (train+add {engine['train_add_s']:.1f} s, tuning "
                       f"{engine['tune_s']:.1f} s); vectors {result['vectors_bytes'] / 2**30:.2f} GiB, index "
                       f"{engine['index_bytes'] / 2**30:.2f} GiB, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_latency_vs_size(report: dict, path: Path) -> Path | None:
    """p50 latency against store size: the chooser's index (its recall@10 beside each point) and numpy."""
    plt = _pyplot()
    if plt is None or not report["sizes"]:
        return None
    sizes = [r["n"] for r in report["sizes"]]
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    axes.plot(sizes, [r["numpy"]["p50_ms"] for r in report["sizes"]], "x-", label="numpy brute force")
    axes.plot(sizes, [r["engine"]["p50_ms"] for r in report["sizes"]], "o-", label="engine (chooser's index)")
    for result in report["sizes"]:
        engine = result["engine"]
        axes.annotate(f"{engine['spec']}\nrecall {engine['recall_at_10']:.3f}", (result["n"], engine["p50_ms"]),
                      textcoords="offset points", xytext=(4, -18), fontsize=6)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("store size (vectors)")
    axes.set_ylabel("single-query p50 latency (ms)")
    axes.set_title(f"Search latency, d={report['sizes'][0]['dim']}: {report['vectors'][:60]}", fontsize=8)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_latency_vs_recall(report: dict, path: Path) -> Path | None:
    plt = _pyplot()
    if plt is None or not report["sizes"]:
        return None
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for result in report["sizes"]:
        label = f"N={result['n']:,}"
        sweep = result["sweep"] or [result["engine"]]
        line, = axes.plot([p["recall_at_10"] for p in sweep], [p["p50_ms"] for p in sweep], "o-",
                          label=f"{label} {result['engine']['spec']}")
        axes.plot([1.0], [result["numpy"]["p50_ms"]], "x", color=line.get_color(), markersize=9, label=f"{label} numpy")
    axes.set_yscale("log")
    axes.set_xlabel("recall@10 vs exact search")
    axes.set_ylabel("single-query p50 latency (ms)")
    axes.set_title(f"Search, d={report['sizes'][0]['dim']}: {report['vectors'][:60]}", fontsize=8)
    axes.axvline(0.95, color="grey", linestyle=":")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES),
                        help="comma-separated store sizes (default: 10000,100000,1000000)")
    parser.add_argument("--vectors", choices=("store", "random"), default="store",
                        help="store-like vectors fitted to --model's embeddings, or random unit vectors")
    parser.add_argument("--model", default=None,
                        help="model whose vectors and queries --vectors store uses (default: the default model)")
    parser.add_argument("--dim", type=int, default=100, help="dimension of --vectors random")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index-spec", default=None, help="measure this FAISS factory string instead of the chooser's")
    parser.add_argument("--flat-max", type=int, default=None, help="exact-search threshold override")
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS threads while searching (default 1: single queries; 0 = FAISS default)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here (and PNGs beside it)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) <= K or args.dim <= 0 or args.queries <= 0:
        parser.error(f"sizes must be > {K}, --dim and --queries positive")
    cache = args.out.parent if args.out else None
    if args.model is None:
        from mre.embedder.models.factory import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
    report = run(sizes, args.dim, args.queries, args.seed, args.index_spec, args.flat_max, args.threads or None,
                 vectors=args.vectors, model_name=args.model, cache_dir=cache)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
        for png in (plot_latency_vs_size(report, args.out.with_name(args.out.stem + "_latency_size.png")),
                    plot_latency_vs_recall(report, args.out.with_name(args.out.stem + "_latency_recall.png"))):
            if png:
                print(f"wrote {png}")


if __name__ == "__main__":
    main()
