"""The one place that chooses, builds and tunes the FAISS index for a set of vectors.

An index type is a FAISS factory string (``"Flat"``, ``"IVF256,PQ50x4fs,RFlat"``, ...). The
store records it in meta.json together with the search-time parameters, so a reader
re-applies exactly what the writer chose; a user may override it with any factory string
(``mre index --index-spec``).

Measurements behind the choice (random unit vectors, d=100, single queries, k=10, this
project's shared 2-core AMD EPYC with AVX-512, faiss-cpu 1.15.1; benchmarks/search_speed.py):

- exact ``Flat`` (IndexFlatIP): p50 0.18 ms at 10k, 0.43 ms at 30k, 2.4 ms at 60k — the
  jump comes once the matrix (n*d*4 bytes) no longer fits in cache, so exact search is used
  while the matrix is at most ``FLAT_MAX_BYTES`` (16 MiB: ~42k vectors at d=100).
- random unit vectors are the worst case for partitioning and graph indexes: at 100k,
  ``IVF1024,Flat`` nprobe=128 reached recall@10 0.58 (0.30 ms) and ``HNSW32`` efSearch=256
  0.81 (1.1 ms, 18 s to build). Scanning *all* codes with 4-bit PQ fast-scan (2 dims per
  sub-quantizer) and re-ranking the best ``k * k_factor_rf`` exactly (``RFlat``) wins:
  at 100k 0.19 ms / recall 0.994; at 1M ``PQ50x4fs,RFlat`` k_factor_rf=50 gave p50 1.6 ms /
  recall 0.981 (numpy brute force 25-45 ms), built in ~3 s. At 1M an IVF layer in front
  did not pay: ``IVF256,...`` nprobe=192 1.9 ms / 0.960, nprobe=224 2.1 ms / 0.976.
- above ``PQ_SCAN_MAX_VECTORS`` a full scan grows past ~6 ms, so inverted lists cut it,
  probing 7/8 of them (extrapolated from the 1M figures above; not measured at that size).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

# Exact search while the float32 matrix fits in ~16 MiB of cache (see module docstring).
FLAT_MAX_BYTES = 16 * 1024 * 1024
# Candidates re-ranked exactly per requested neighbour: at 1M, 30 gave recall@10 0.956, 50 0.981.
REFINE_K_FACTOR = 50
# A full PQ fast-scan costs ~1.5 ms per million codes: inverted lists only above 4M vectors.
PQ_SCAN_MAX_VECTORS = 4_000_000
# Fraction of inverted lists probed: at 1M, 3/4 gave recall@10 0.960 and 7/8 0.976.
PROBE_FRACTION = 0.875
# k-means needs >= 39 points per list (FAISS warns below); 65536 keeps training ~0.3 s.
TRAIN_SAMPLE_MIN = 65536
TRAIN_POINTS_PER_LIST = 64
TRAIN_SEED = 1234

_SEARCH_PARAM_NAMES = ("nprobe", "efSearch", "k_factor_rf", "k_factor", "quantizer_efSearch")


class IndexSpecError(ValueError):
    """A FAISS factory string that cannot be used for these vectors."""


def flat_max_vectors(dim: int) -> int:
    """Largest store size searched exactly for vectors of dimension ``dim``."""
    return FLAT_MAX_BYTES // (4 * max(1, dim))


def _ivf_list_count(n_vectors: int) -> int:
    # sqrt(n)/4 rounded to a power of two: 512 lists at 4M, 1024 at 10M, 4096 at most.
    target = math.sqrt(max(1, n_vectors)) / 4
    return int(min(4096, max(16, 2 ** round(math.log2(max(1.0, target))))))


def _pq_subquantizers(dim: int) -> int:
    # Two dimensions per 4-bit sub-quantizer keeps PQ error low enough for the re-ranking
    # to recover the true top 10; an odd dimension gets one sub-quantizer per dimension.
    return dim // 2 if dim % 2 == 0 else dim


def choose_index_spec(n_vectors: int, dim: int, flat_max: int | None = None) -> str:
    """The FAISS factory string the engine uses for ``n_vectors`` vectors of ``dim``.

    Args:
        n_vectors: how many vectors the index will hold.
        dim: their dimension.
        flat_max: exact-search threshold override (tests); default ``flat_max_vectors(dim)``.
    """
    if n_vectors < 0 or dim <= 0:
        raise IndexSpecError(f"cannot choose an index for {n_vectors} vectors of dimension {dim}")
    limit = flat_max_vectors(dim) if flat_max is None else flat_max
    if n_vectors <= limit:
        return "Flat"
    codes = f"PQ{_pq_subquantizers(dim)}x4fs,RFlat"
    if n_vectors <= PQ_SCAN_MAX_VECTORS:
        return codes
    return f"IVF{_ivf_list_count(n_vectors)},{codes}"


def _parse_ivf_lists(spec: str) -> int | None:
    match = re.match(r"^(?:[^,]*,)*?IVF(\d+)", spec)
    return int(match.group(1)) if match else None


def search_params(spec: str, n_vectors: int) -> dict[str, float]:
    """Search-time parameters for an index built from ``spec`` holding ``n_vectors``.

    Recorded in meta.json and re-applied after loading with :func:`apply_search_params`.
    """
    del n_vectors  # the list count in the spec already scales with size
    params: dict[str, float] = {}
    nlist = _parse_ivf_lists(spec)
    if nlist is not None:
        params["nprobe"] = max(1, int(math.ceil(nlist * PROBE_FRACTION)))
    if "HNSW" in spec:
        # HNSW on random d=100 data needed efSearch >= 256 for recall ~0.8 at 100k.
        params["quantizer_efSearch" if nlist is not None else "efSearch"] = 256
    if re.search(r"(^|,)(RFlat|Refine\()", spec):
        params["k_factor_rf"] = REFINE_K_FACTOR
    return params


def apply_search_params(index: Any, params: dict[str, float]) -> None:
    """Set recorded search-time parameters (nprobe, efSearch, k_factor_rf...) on ``index``."""
    import faiss

    if not params:
        return
    space = faiss.GpuParameterSpace() if _is_gpu_index(index) else faiss.ParameterSpace()
    for name, value in params.items():
        if name not in _SEARCH_PARAM_NAMES:
            raise IndexSpecError(f"unknown search parameter {name!r} for the index")
        try:
            space.set_index_parameter(index, name, float(value))
        except RuntimeError as error:
            raise IndexSpecError(f"cannot set {name}={value} on this index: {_first_line(error)}") from None


def validate_index_spec(spec: str, dim: int) -> None:
    """Raise IndexSpecError unless FAISS can make an inner-product index from ``spec``."""
    import faiss

    if not isinstance(spec, str) or not spec.strip():
        raise IndexSpecError("index spec is empty; give a FAISS factory string such as 'Flat' or 'HNSW32'")
    try:
        faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise IndexSpecError(
            f"invalid index spec {spec!r} for dimension {dim}: {_first_line(error)}"
        ) from None


def build_index(vectors: np.ndarray, spec: str) -> Any:
    """Build an inner-product FAISS index from ``spec`` over ``vectors`` (float32 [n, d]).

    Vectors are indexed as given (not normalised here): inner product equals cosine only
    for unit vectors, which the embedder guarantees. Trainable indexes are trained on a
    seeded sample; the search-time parameters of :func:`search_params` are applied.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise IndexSpecError(f"vectors must be a 2-d [n, d] array, got shape {vectors.shape}")
    n_vectors, dim = vectors.shape
    if not np.isfinite(vectors).all():
        raise IndexSpecError("vectors contain NaN or infinite values; cannot index them")
    validate_index_spec(spec, dim)
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        nlist = _parse_ivf_lists(spec) or 1
        if n_vectors < nlist:
            raise IndexSpecError(
                f"index spec {spec!r} needs at least {nlist} vectors to train, got {n_vectors}"
            )
        sample_size = min(n_vectors, max(TRAIN_SAMPLE_MIN, TRAIN_POINTS_PER_LIST * nlist))
        rng = np.random.default_rng(TRAIN_SEED)
        sample = vectors if sample_size == n_vectors else vectors[np.sort(rng.choice(n_vectors, sample_size, replace=False))]
        try:
            index.train(sample)
        except RuntimeError as error:
            raise IndexSpecError(f"cannot train index {spec!r}: {_first_line(error)}") from None
    if n_vectors:
        index.add(vectors)
    apply_search_params(index, search_params(spec, n_vectors))
    return index


def use_single_query_threads(threads: int = 1) -> None:
    """Run FAISS on ``threads`` OpenMP threads; 1 suits one query at a time.

    A single query to Flat or PQ fast-scan runs on one thread anyway, but with two threads
    each search still synchronises with the other core: on a loaded 2-core machine that
    raised p50 at 1M from 1.6 ms to 12 ms. Index building keeps all cores (call before
    searching, e.g. when opening a store for queries).
    """
    import faiss

    faiss.omp_set_num_threads(max(1, int(threads)))


def maybe_to_gpu(index: Any) -> Any:
    """Move ``index`` to GPU 0 when FAISS sees a GPU; otherwise return it unchanged."""
    import faiss

    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    if get_num_gpus is None or get_num_gpus() <= 0 or not hasattr(faiss, "StandardGpuResources"):
        return index
    try:
        resources = faiss.StandardGpuResources()
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
    except (RuntimeError, AttributeError):
        # Not every index type has a GPU version (e.g. PQ fast-scan): stay on CPU.
        return index
    gpu_index.mre_gpu_resources = resources  # keep the resources alive with the index
    return gpu_index


def _is_gpu_index(index: Any) -> bool:
    return type(index).__name__.startswith("Gpu")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    for line in text.splitlines():
        # FAISS messages read "Error in <function> at <file>:<line>: <message>".
        if "Error" in line and ": " in line:
            return line.rsplit(": ", 1)[-1].strip() or line.strip()
    return text.splitlines()[0] if text else type(error).__name__
