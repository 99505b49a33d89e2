"""`mre serve` latency: /api/query over HTTP against the same search in-process, and page load.

    python -m mre.benchmarks.serve_latency [--store demo-store] [--synthetic 100000] [--repeats 10] [--json OUT]

For each store — the demo store (built from the demo tracks as `make demo` does when
missing) and a synthetic store of N tracks — `mre serve` runs in its own process, as a user
starts it, and this process asks it, on one kept-alive connection:

- /api/query p50/p95 over a fixed list of queries, each repeated; the baseline is the same
  queries through `Library.search` in this process (the store opened the same way), each
  right after its HTTP twin, so the ratio is what HTTP, JSON and the server add;
- page load: the page, its script and style, and /api/map (gzip), as a browser fetches them
  on opening the page; the first load after start (the map is projected then) and the
  median of the next five.

The synthetic store is written by the store's own writer (`Store.commit`): rows drawn from the
demo store's tracks with Gaussian noise on their vectors (a tenth of each label's spread over
the demo tracks) and on their tempo, loudness and other attributes, so the vectors, attributes
and tag vocabulary are shaped like a real store's
and the index is the one the engine chooses at that size. Its files do not exist: nothing here
plays audio.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mre.benchmarks.cli_latency import demo_tracks, mre_command
from mre.benchmarks.query_speed import QUERIES

PAGE = ("/", "/app.js", "/style.css", "/api/map")
GOAL_P95_MS = 100.0


def ensure_demo_store(store: Path) -> None:
    if not (store / "CURRENT").exists():
        print(f"building the demo store in {store} (once)", file=sys.stderr)
        subprocess.run([*mre_command(), "index", str(demo_tracks()), "--store", str(store)], check=True)


# attribute columns a synthetic store's copies of one track get noise on (0.3 of the column's spread)
JITTERED_ATTRIBUTES = ("loudness_db", "dynamic_range_db", "brightness", "onset_density", "percussiveness",
                       "beat_strength", "mode_strength")


def synthetic_store(demo: Path, out: Path, n_tracks: int, seed: int = 0) -> Path:
    """A store of `n_tracks` rows shaped like `demo`'s, committed with Store.commit."""
    import pyarrow as pa

    from mre.embedder.models.factory import load_model
    from mre.indexer.paths import PATH_BYTES
    from mre.indexer.pipeline import with_top_tags
    from mre.indexer.store import Store, track_id_for
    from mre.indexer.tables import column_floats

    with Store(demo).open_live() as generation:
        tracks, tags, tag_vectors = generation.tracks(), generation.tags(), generation.tag_vectors()
        vectors, meta = generation.track_vectors(), dict(generation.meta)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, tracks.num_rows, n_tracks)
    noise = rng.normal(size=(n_tracks, vectors.shape[1])).astype(np.float32) * (0.1 * vectors.std(axis=0) + 1e-3)
    new_vectors = vectors[rows] + noise
    table = tracks.take(pa.array(rows))
    paths = [f"/synthetic/{i // 1000:03d}/track-{i:06d}.opus" for i in range(n_tracks)]
    bpm = np.asarray([v or 0.0 for v in table.column("bpm").to_pylist()]) * rng.uniform(0.95, 1.05, n_tracks)
    columns = [("path", paths, pa.string()), (PATH_BYTES, [None] * n_tracks, pa.binary()),
               ("track_id", [track_id_for(p) for p in paths], pa.string()), ("bpm", bpm, pa.float64())]
    for name in JITTERED_ATTRIBUTES:  # copies of one track must not share its loudness to the last digit
        if name in table.column_names:
            values = np.asarray(column_floats(table, name), dtype=np.float64)
            spread = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
            columns.append((name, values + rng.normal(0.0, 0.3 * (spread or 1.0), n_tracks), pa.float64()))
    for name, values, kind in columns:
        table = table.set_column(table.column_names.index(name), name, pa.array(values, kind))
    # top tags ranked as the index ranks them (the model's word side only: no audio, no torch)
    model = load_model(meta.get("model_file") or meta.get("model_name"), word_vectors=meta.get("word_vectors_path"))
    table = with_top_tags(table, new_vectors, tags, tag_vectors, model)
    meta["library_roots"] = ["/synthetic"]
    with Store(out).commit(table, new_vectors, tags, tag_vectors, generation.skipped(), meta):
        pass
    return out


class Served:
    """`mre serve --store S --port 0` in its own process."""

    def __init__(self, store: Path):
        self.process = subprocess.Popen([*mre_command(), "serve", "--store", str(store), "--port", "0"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.process.kill()
            raise SystemExit(f"mre serve did not start: {line}{self.process.stderr.read()}")
        self.port = int(match.group(1))

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, connection, path: str, gzip: bool = False) -> tuple[int, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}", **({"Accept-Encoding": "gzip"} if gzip else {})}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        return response.status, body

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _ms(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def measure(store: Path, repeats: int) -> dict:
    from urllib.parse import quote_plus

    from mre.retrieval import Library

    library = Library(store)
    served = Served(store)
    try:
        load = []
        for _ in range(6):  # the first load projects the map; the rest are what a reload costs
            connection = served.connection()
            started = time.perf_counter()
            sizes = [len(served.get(connection, path, gzip=True)[1]) for path in PAGE]
            load.append(time.perf_counter() - started)
            connection.close()
        connection = served.connection()
        for text in QUERIES:  # warm-up of both: word vectors, caches, the index
            served.get(connection, f"/api/query?q={quote_plus(text)}&k=10")
            library.search(text, 10)
        # each query over HTTP, then the same in-process, in turn: a busy moment on a shared
        # machine weighs on both alike (the server idles while this process searches)
        http_times, direct = [], []
        for _ in range(repeats):
            for text in QUERIES:
                started = time.perf_counter()
                served.get(connection, f"/api/query?q={quote_plus(text)}&k=10")
                http_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                library.search(text, 10)
                direct.append(time.perf_counter() - started)
        connection.close()
    finally:
        served.close()
    over_http, in_process = _ms(http_times), _ms(direct)
    return {"store": str(store), "tracks": len(library), "index_spec": library.meta["audio_index"]["spec"],
            "requests": len(http_times), "api_query": over_http, "library_search": in_process,
            "ratio_p50": round(over_http["p50_ms"] / max(in_process["p50_ms"], 1e-6), 2),
            "page_load_first_ms": round(load[0] * 1000, 1),
            "page_load_ms": round(statistics.median(load[1:]) * 1000, 1),
            "page_bytes_gzip": dict(zip(PAGE, sizes))}


def print_report(report: dict) -> None:
    print(f"{report['tracks']:,} tracks ({report['index_spec']}), {report['requests']} queries of {len(QUERIES)} kinds, k=10:")
    q, b = report["api_query"], report["library_search"]
    verdict = "meets" if q["p95_ms"] <= GOAL_P95_MS else "misses"
    print(f"  GET /api/query      p50 {q['p50_ms']:7.2f} ms   p95 {q['p95_ms']:7.2f} ms   ({verdict} the {GOAL_P95_MS:.0f} ms p95 goal)")
    print(f"  Library.search      p50 {b['p50_ms']:7.2f} ms   p95 {b['p95_ms']:7.2f} ms   (baseline, in-process)")
    print(f"  HTTP / in-process   {report['ratio_p50']:.2f}x at p50")
    kb = sum(report["page_bytes_gzip"].values()) / 1024
    print(f"  page load (page, script, style, map; {kb:,.0f} KB gzip): first {report['page_load_first_ms']:.0f} ms, "
          f"then {report['page_load_ms']:.0f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("demo-store"))
    parser.add_argument("--synthetic", type=int, default=100_000, help="tracks in the synthetic store (0: none)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import os

    print(f"mre serve latency; {os.cpu_count()} cores; server and client in separate processes on this machine")
    ensure_demo_store(args.store)
    reports = [measure(args.store, args.repeats)]
    print_report(reports[0])
    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="mre-serve-bench-") as folder:
            started = time.perf_counter()
            store = synthetic_store(args.store, Path(folder) / "store", args.synthetic)
            print(f"(synthetic store of {args.synthetic:,} tracks written in {time.perf_counter() - started:.1f} s)")
            reports.append(measure(store, args.repeats))
            print_report(reports[-1])
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
