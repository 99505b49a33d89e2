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
  0.81 (1.1 ms, 18 s to build). Scanning *all* codes with 4-bit PQ fast-scan and re-ranking
  the best ``k * k_factor_rf`` exactly (``RFlat``) won there (at 1M ``PQ50x4fs,RFlat``
  p50 1.6 ms / recall 0.981).
- store-like vectors (a zero-shot model's label log-odds: benchmarks/store_vectors.py) with
  the vocabulary's tag queries behave differently. Two dimensions per k-means sub-quantizer
  gave recall@10 0.27 at 300k (the query's top tracks tie with thousands of others in one
  top level); one dimension per sub-quantizer with 16 *even* levels gave 0.997
  (``_use_uniform_levels``). A full scan of those codes costs ~2 ns per vector, so above
  ``IVF_MIN_VECTORS`` an inverted file (``IVF<lists>,PQ<d>x4fs,RFlat``, about sqrt(n) lists)
  picks the lists to scan. How many lists a query must probe depends on the data, so it is
  measured when the index is built (:func:`tune_search_params`): the smallest nprobe whose
  recall@10 against exact search reaches ``TUNE_TARGET_RECALL`` on a query sample (the
  store's tag query vectors, else a sample of its own vectors). On raw store-like vectors
  that was a quarter to a third of the lists at 300k-1M, whatever the list count (256 or 2048
  at 300k: the tracks that score highest for a tag lie at the edge of the distribution, spread
  over many lists); with the lists made on partly whitened vectors (``Whiten``,
  :data:`WHITEN_POWER`) about 2-5 % (92-d vectors: 1M nprobe 48 of 1024, p50 0.32 ms, recall@10
  0.961; 10M 80 of 2048, 1.36 ms, 0.965; 193-d: 1M 40, 0.41 ms, 0.959; 10M 48, 1.42 ms, 0.958);
  on random unit vectors nearly all. The chosen nprobe, its
  measured recall and the training sample are recorded in meta.json.
"""

from __future__ import annotations

import math
import re
import weakref
from typing import Any, Callable

import numpy as np

# Exact search while the float32 matrix fits in ~16 MiB of cache (see module docstring).
FLAT_MAX_BYTES = 16 * 1024 * 1024
# Candidates re-ranked exactly per requested neighbour (store-like vectors at 300k, uniform
# 4-bit levels: 10 gave recall@10 0.927, 20 0.997, 50 0.998).
REFINE_K_FACTOR = 32
# Uniform levels span each dimension's range in the training sample widened by this share of
# it on both sides: a store holds more extreme vectors than its sample (at 1M store-like
# vectors, recall@10 0.94 with the sample's 0.01-99.99 % quantiles, 0.996 widened by 10 %).
LEVEL_MARGIN = 0.1
# A full PQ fast-scan costs ~1.5 ms per million codes: inverted lists in front above this.
IVF_MIN_VECTORS = 250_000
# Inverted lists are made on the vectors with each principal direction divided by its standard
# deviation to this power (``Whiten<power>,`` in the spec; queries get the inverse, so inner
# products are unchanged). Chosen on a store-like sample and tag queries of their own (another
# seed and the other half of the tags than the benchmark measures): at 1M, ``IVF1024,Flat``
# (exact vectors in the lists), recall@10 with the 32 / 64 / 192 best lists searched was
# 0.81 / 0.88 / 0.95 for the raw vectors, 0.92 / 0.97 / 0.995 for power 0.3, 0.95 / 0.99 /
# 0.999 for 0.5, 0.93 / 0.98 / 1.0 for 0.7 and 0.91 / 0.98 / 0.999 for 1 (full whitening). A few directions carry most of the spread; the lists cut those finely and
# the rest hardly at all, so a query along a weak direction needed most lists.
WHITEN_POWER = 0.5
# Inverted lists: about sqrt(n), a power of two, within these bounds (training and adding
# cost n * lists * d: 2048 lists keep a 10M build to minutes on one core).
IVF_MIN_LISTS, IVF_MAX_LISTS = 64, 2048
# Default fraction of lists probed when nothing was measured (a user's spec given without
# tuning data): at 1M uniform random vectors, 3/4 gave recall@10 0.960 and 7/8 0.976.
PROBE_FRACTION = 0.875
# A filtered search scans the rows that pass exactly while they are at most this many (a
# numpy pass over 200k rows of 92-d is a few ms); above, the inverted lists are searched for
# rows that pass only, probing lists until they hold nprobe lists' worth of such rows.
FILTER_EXACT_MAX = 200_000
# Build-time tuning: the smallest nprobe whose recall@10 on the query sample reaches this,
# from at most this many queries: the 0.95 goal plus 2.5 standard errors of a recall measured
# on 256 x 10 hits (the sample is not the user's queries).
TUNE_TARGET_RECALL = 0.96
TUNE_QUERIES = 256
TUNE_K = 10
# k-means needs >= 39 points per list (FAISS warns below); 65536 keeps training ~0.3 s.
TRAIN_SAMPLE_MIN = 65536
TRAIN_POINTS_PER_LIST = 64
MIN_POINTS_PER_LIST = 39  # FAISS's advised minimum of training vectors a k-means centroid (ClusteringParameters)
TRAIN_SEED = 1234
# Vectors are added this many at a time: a whitened index transforms what it is given in one
# piece, so one call with a whole store held a transformed copy of it beside the original and
# the index's exact copy (10M x 92: peak 11.3 GiB for 3.4 GiB of vectors).
ADD_BLOCK = 1 << 18

_SEARCH_PARAM_NAMES = ("nprobe", "efSearch", "k_factor_rf", "k_factor", "quantizer_efSearch")


class IndexSpecError(ValueError):
    """A FAISS factory string that cannot be used for these vectors."""


def flat_max_vectors(dim: int) -> int:
    """Largest store size searched exactly for vectors of dimension ``dim``."""
    return FLAT_MAX_BYTES // (4 * max(1, dim))


def ivf_list_count(n_vectors: int) -> int:
    """Inverted lists for ``n_vectors``: sqrt(n) rounded to a power of two (512 at 250k,
    1024 at 1M, 2048 from 2.9M on)."""
    target = math.sqrt(max(1, n_vectors))
    return int(min(IVF_MAX_LISTS, max(IVF_MIN_LISTS, 2 ** round(math.log2(max(1.0, target))))))


def _pq_subquantizers(dim: int) -> int:
    # One dimension per 4-bit sub-quantizer, trained as uniform levels (see
    # _use_uniform_levels): two dimensions per sub-quantizer left a store's top tracks
    # indistinguishable from thousands of others (recall@10 0.27 at 300k store-like vectors).
    return dim


def choose_index_spec(n_vectors: int, dim: int, flat_max: int | None = None, ivf_min: int | None = None) -> str:
    """The FAISS factory string the engine uses for ``n_vectors`` vectors of ``dim``.

    Args:
        n_vectors: how many vectors the index will hold.
        dim: their dimension.
        flat_max: exact-search threshold override (tests); default ``flat_max_vectors(dim)``.
        ivf_min: inverted-list threshold override (tests); default ``IVF_MIN_VECTORS``.
    """
    if n_vectors < 0 or dim <= 0:
        raise IndexSpecError(f"cannot choose an index for {n_vectors} vectors of dimension {dim}")
    limit = flat_max_vectors(dim) if flat_max is None else flat_max
    if n_vectors <= limit:
        return "Flat"
    codes = f"PQ{_pq_subquantizers(dim)}x4fs,RFlat"
    if n_vectors < (IVF_MIN_VECTORS if ivf_min is None else ivf_min):
        return codes
    return f"Whiten{WHITEN_POWER:g},IVF{ivf_list_count(n_vectors)},{codes}"


_WHITEN = re.compile(r"^Whiten(\d+(?:\.\d+)?),(.+)$")


def split_whitening(spec: str) -> tuple[float | None, str]:
    """(the power of a leading ``Whiten<power>,``, or None; the FAISS factory string after it)."""
    match = _WHITEN.match(spec.strip()) if isinstance(spec, str) else None
    return (float(match.group(1)), match.group(2)) if match else (None, spec)


def whitening_matrix(sample: np.ndarray, power: float) -> np.ndarray:
    """``A`` [d, d] float32 such that ``A @ x`` is ``x`` in the principal axes of ``sample``
    (not centred: inner products must survive), each axis divided by its standard deviation
    to ``power``. Directions with no spread keep scale 1."""
    sample = np.asarray(sample, dtype=np.float64)
    axes_variance, axes = np.linalg.eigh(np.cov(sample, rowvar=False).reshape(sample.shape[1], -1))
    deviation = np.sqrt(np.clip(axes_variance, 0.0, None))
    floor = deviation.max() * 1e-6 if deviation.size and deviation.max() > 0 else 1.0
    scale = np.where(deviation > floor, deviation, 1.0) ** power
    return np.ascontiguousarray((axes / scale).T, dtype=np.float32)


def parse_ivf_lists(spec: str) -> int | None:
    """The number of inverted lists of a factory string, or None when it has none."""
    match = re.match(r"^(?:[^,]*,)*?IVF(\d+)", spec)
    return int(match.group(1)) if match else None


def search_params(spec: str, n_vectors: int) -> dict[str, float]:
    """Search-time parameters for an index built from ``spec`` holding ``n_vectors``.

    Recorded in meta.json and re-applied after loading with :func:`apply_search_params`.
    """
    del n_vectors  # the list count in the spec already scales with size
    params: dict[str, float] = {}
    nlist = parse_ivf_lists(spec)
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
    power, factory = split_whitening(spec)
    if power is not None and power > 4:
        raise IndexSpecError(f"invalid index spec {spec!r}: the whitening power must lie in 0..4, not {power:g}")
    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
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
    if not all(np.isfinite(vectors[start:start + 65536]).all() for start in range(0, n_vectors, 65536)):
        raise IndexSpecError("vectors contain NaN or infinite values; cannot index them")
    validate_index_spec(spec, dim)
    power, factory = split_whitening(spec)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained or power is not None:
        nlist = parse_ivf_lists(spec) or 1
        needed = max(nlist, 2) if power is not None else nlist  # a spread needs two vectors
        if n_vectors < needed:
            raise IndexSpecError(f"index spec {spec!r} needs at least {needed} vectors to train, got {n_vectors}")
        sample_size = train_sample_size(n_vectors, spec)
        rng = np.random.default_rng(TRAIN_SEED)
        sample = vectors if sample_size == n_vectors else vectors[np.sort(rng.choice(n_vectors, sample_size, replace=False))]
        if power is not None:
            # the index holds A x; searches give it (AᵀA)⁻¹ q (query_side), so A(AᵀA)⁻¹q · Ax = q·x
            transform = faiss.LinearTransform(dim, dim, False)
            faiss.copy_array_to_vector(whitening_matrix(sample, power).ravel(), transform.A)
            transform.is_trained = True
            index = faiss.IndexPreTransform(transform, index)
            sample = transform.apply(np.ascontiguousarray(sample))
        if _sparse_lists(spec, len(sample)):
            # FAISS would print its own warning to stderr; `mre index` says it in one line instead
            # (sparse_lists_note). Only the warning's threshold moves: the clustering is the same.
            faiss.extract_index_ivf(_inner(index)).cp.min_points_per_centroid = 1
        scalar = scalar_pq(index)
        if scalar is not None:
            scalar.cp.niter = 1  # its k-means levels are replaced by even ones below: one pass is enough
        try:
            _inner(index).train(sample)
        except RuntimeError as error:
            raise IndexSpecError(f"cannot train index {spec!r}: {_first_line(error)}") from None
        index.is_trained = True
        if scalar is not None:
            _use_uniform_levels(scalar, sample)
    _reserve_exact_copy(index, n_vectors)
    for start in range(0, n_vectors, ADD_BLOCK):
        index.add(vectors[start:start + ADD_BLOCK])
    apply_search_params(index, search_params(spec, n_vectors))
    return index


def _reserve_exact_copy(index: Any, n_vectors: int) -> None:
    """Give a re-ranking index's exact copy (``RFlat``) its whole size before the adds: grown
    block by block, each reallocation held the old buffer beside one up to twice the size
    (6M x 193: peak 12.1 GB against 10.5 GB reserved, for 4.6 GB of vectors)."""
    import faiss

    refine = getattr(_inner(index), "refine_index", None)
    if refine is None or n_vectors <= ADD_BLOCK:
        return
    codes = faiss.downcast_index(refine).codes
    codes.resize(n_vectors * faiss.downcast_index(refine).code_size)
    codes.resize(0)  # a vector shrunk keeps its capacity: the adds fill it without moving it


def scalar_pq(index: Any) -> Any | None:
    """The product quantizer of ``index`` when it has one dimension per 4-bit sub-quantizer
    (a 4-bit scalar quantizer searched by PQ fast-scan), else None."""
    import faiss

    inner = _inner(index)
    while True:
        base = getattr(inner, "base_index", None)
        if base is None:
            break
        inner = faiss.downcast_index(base)
    try:
        inner = faiss.downcast_index(faiss.extract_index_ivf(inner))
    except RuntimeError:
        pass
    pq = getattr(inner, "pq", None)
    return pq if pq is not None and pq.dsub == 1 and pq.nbits == 4 else None


def _pretransform(index: Any) -> Any | None:
    """``index`` as an IndexPreTransform (what ``Whiten`` builds), or None when it is not one."""
    import faiss

    outer = faiss.downcast_index(index) if type(index).__name__ == "Index" else index
    return outer if type(outer).__name__ == "IndexPreTransform" else None


def _inner(index: Any) -> Any:
    """The index behind a ``Whiten`` transform (``index`` itself when there is none)."""
    import faiss

    outer = _pretransform(index)
    return index if outer is None else faiss.downcast_index(outer.index)


def query_side(index: Any, queries: np.ndarray) -> np.ndarray:
    """Queries [n, d] as ``index.search`` takes them: for an index built with ``Whiten`` (it
    holds ``A x``), ``(AᵀA)⁻¹ q``, so the transformed query ``A⁻ᵀ q`` meets ``A x`` with the
    inner product ``q·x``; unchanged for any other index. The matrix is made once per index."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    matrices = _whitening_matrices(index)
    return queries if matrices is None else np.ascontiguousarray(queries @ matrices[0])


def _whitening_matrices(index: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """For an index built with ``Whiten`` (``A``), ``(AᵀA)⁻¹`` and ``A⁻ᵀ`` in float32, both
    inverted in float64, made once per index; None for any other index."""
    matrices = _MATRICES.get(index)
    if matrices is None:
        import faiss

        matrices = False
        transform = _whitening(index)
        if transform is not None:
            a = faiss.vector_to_array(transform.A).reshape(transform.d_out, transform.d_in).astype(np.float64)
            matrices = (np.linalg.inv(a.T @ a).astype(np.float32), np.linalg.inv(a).T.astype(np.float32))
        _MATRICES[index] = matrices
    return None if matrices is False else matrices


# index -> its whitening matrices (False: none); an index's entry goes when the index does
_MATRICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _whitening(index: Any) -> Any | None:
    """The ``Whiten`` transform in front of ``index`` (a bias-free LinearTransform), or None."""
    import faiss

    outer = _pretransform(index)
    if outer is None or outer.chain.size() != 1:
        return None
    transform = faiss.downcast_VectorTransform(outer.chain.at(0))
    return transform if type(transform).__name__ == "LinearTransform" and not transform.have_bias else None


def _transformed(index: Any, queries: np.ndarray) -> np.ndarray:
    """Queries given to ``index`` (after :func:`query_side`) as its inner index sees them."""
    transform = _whitening(index)
    return queries if transform is None else transform.apply(np.ascontiguousarray(queries, dtype=np.float32))


def search(index: Any, queries: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row numbers) [n, k] of the ``k`` largest inner products with each query: the
    one way into an index this module built (see :func:`query_side`)."""
    queries = query_side(index, queries)
    return index.search(queries, k) if params is None else index.search(queries, k, params=params)


def exact_copy(index: Any) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
    """The vectors an index keeps exactly (``Flat``, or an ``RFlat`` copy, whitened or not) as a
    read-only [n, d] float32 view of its memory (no copy: valid while ``index`` lives), and the
    map queries [q, d] go through to meet them: ``view @ to_query(q).T`` are the inner products
    with the indexed vectors (a whitened copy holds ``A x`` and meets ``A⁻ᵀ q``). None for an
    index that keeps only codes, or another transform than ``Whiten``."""
    import faiss

    inner = _inner(index)
    exact = getattr(inner, "refine_index", None)
    exact = faiss.downcast_index(exact) if exact is not None else inner
    if type(exact).__name__ not in ("IndexFlat", "IndexFlatIP") or exact.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    if _pretransform(index) is not None and _whitening(index) is None:
        return None
    n, d = int(exact.ntotal), int(exact.d)
    if n:
        view = faiss.rev_swig_ptr(exact.codes.data(), n * d * 4).view(np.float32).reshape(n, d)
    else:
        view = np.zeros((0, d), dtype=np.float32)
    view.flags.writeable = False

    def to_query(queries: np.ndarray) -> np.ndarray:
        return _transformed(index, query_side(index, np.atleast_2d(np.asarray(queries, dtype=np.float32))))

    return view, to_query


def added_vectors(index: Any, copied: np.ndarray, block: int = 262144) -> np.ndarray:
    """Rows of an index's exact copy (:func:`exact_copy`'s view, a selection of its rows, or
    their mean) as the vectors that were added, float32: the rows themselves, or for a
    whitened copy (``A x``) the rows times ``A⁻ᵀ`` (inverted in float64, applied in float32 a
    block at a time), as near the added vectors as float32 rounding of ``A x`` lets them be,
    to a few times κ(A)·2⁻²⁴ of their length."""
    copied = np.atleast_2d(copied)
    matrices = _whitening_matrices(index)
    if matrices is None:
        return np.asarray(copied, dtype=np.float32)
    inverse_t = matrices[1]
    out = np.empty((len(copied), inverse_t.shape[1]), dtype=np.float32)
    for start in range(0, len(copied), block):
        np.matmul(copied[start:start + block], inverse_t, out=out[start:start + block])
    return out


def _use_uniform_levels(pq: Any, sample: np.ndarray) -> None:
    """Replace the k-means levels of a one-dimension-per-sub-quantizer PQ (``scalar_pq`` of
    the index) with 16 evenly spaced levels over each dimension's range in ``sample`` (before
    any vector is added).

    A search wants the *extremes* of a direction (the tracks scoring highest for a query);
    k-means puts its levels where the bulk is and maps the whole upper tail to one level, so
    the exact re-ranking gets a random handful of thousands of tied candidates. Even levels
    keep the tail ordered: store-like vectors at 300k, PQ92x4fs,RFlat k_factor_rf 20: recall@10
    0.27 (k-means levels) against 0.997 (even levels), at the same speed.
    """
    import faiss

    low, high = sample.min(axis=0), sample.max(axis=0)
    low, high = low - LEVEL_MARGIN * (high - low), high + LEVEL_MARGIN * (high - low)
    levels = np.linspace(low, high, pq.ksub, axis=1)  # [dim, 16]
    faiss.copy_array_to_vector(np.ascontiguousarray(levels, dtype=np.float32).ravel(), pq.centroids)
    refresh = getattr(pq, "compute_sdc_table", None)
    if pq.sdc_table.size() and refresh is not None:
        refresh()


def _sparse_lists(spec: str, n_vectors: int) -> int | None:
    """The list count of an inverted-file spec when ``n_vectors`` are fewer than FAISS's advised
    MIN_POINTS_PER_LIST a list to train on, else None."""
    nlist = parse_ivf_lists(spec)
    return nlist if nlist and n_vectors < nlist * MIN_POINTS_PER_LIST else None


def sparse_lists_note(spec: str, n_vectors: int) -> str | None:
    """One line when an inverted-file spec has fewer than FAISS's advised MIN_POINTS_PER_LIST
    vectors a list to train on (only an explicit spec can: the engine's own choice never does), else None."""
    nlist = _sparse_lists(spec, n_vectors)
    if nlist is None:
        return None
    return (f"note: index spec {spec!r} trained its {nlist} inverted lists on {n_vectors} tracks (FAISS advises "
            f"{nlist * MIN_POINTS_PER_LIST}, {MIN_POINTS_PER_LIST} a list), so searches may miss neighbours; "
            f"fewer lists, or no --index-spec (the engine's choice by size), avoid it")


def train_sample_size(n_vectors: int, spec: str) -> int:
    """How many of ``n_vectors`` train an index of ``spec`` (a seeded sample; all when fewer)."""
    nlist = parse_ivf_lists(spec) or 1
    return min(n_vectors, max(TRAIN_SAMPLE_MIN, TRAIN_POINTS_PER_LIST * nlist))


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row numbers [queries, k] of the ``k`` largest inner products, best first, by a blocked
    pass over ``vectors`` (no [queries, n] score matrix at once)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(vectors))
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start:start + block].T
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + start], axis=1)
        keep = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, keep, axis=1)
        best_rows = np.take_along_axis(merged_rows, keep, axis=1)
    return best_rows


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k that ``found`` holds."""
    return float(np.mean([len(set(f.tolist()) & set(e.tolist())) / exact.shape[1] for f, e in zip(found, exact)]))


def _probe_ladder(nlist: int) -> list[int]:
    """nprobe values tried at build time: 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ...
    (quarter steps between powers of two), then all lists."""
    values = [1, 2, 3]
    power = 4
    while power < nlist:
        values += [v for v in (power, power * 5 // 4, power * 3 // 2, power * 7 // 4) if v < nlist]
        power *= 2
    return sorted({v for v in values if v < nlist} | {max(1, nlist)})


def tuning_queries(vectors: np.ndarray, queries: np.ndarray | None, count: int = TUNE_QUERIES,
                   seed: int = TRAIN_SEED) -> tuple[np.ndarray, str]:
    """The query sample that tunes an index: ``queries`` (non-zero rows, at most ``count``,
    seeded) when there are some, else ``count`` of the indexed vectors; and which it was."""
    rng = np.random.default_rng(seed)
    if queries is not None and len(queries):
        queries = np.asarray(queries, dtype=np.float32)
        queries = queries[np.flatnonzero(np.abs(queries).sum(axis=1) > 0)]
    if queries is not None and len(queries):
        chosen = queries if len(queries) <= count else queries[np.sort(rng.choice(len(queries), count, replace=False))]
        return np.ascontiguousarray(chosen), "queries"
    rows = np.sort(rng.choice(len(vectors), min(count, len(vectors)), replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32), "vectors"


def tune_search_params(index: Any, vectors: np.ndarray, spec: str, queries: np.ndarray | None = None,
                       target: float = TUNE_TARGET_RECALL) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Measure the search-time parameters of an index built from ``spec`` over ``vectors``.

    For an inverted-file index: the smallest nprobe on :func:`_probe_ladder` (by bisection) whose recall@10
    against exact search, on :func:`tuning_queries` (``queries``: the searches to expect,
    e.g. the store's tag query vectors), reaches ``target``; all lists when none does. Other
    indexes keep :func:`search_params`. Applies the parameters to ``index`` and returns
    them with a record of the measurement (None when nothing was measured), for meta.json.
    """
    params = search_params(spec, len(vectors))
    nlist = parse_ivf_lists(spec)
    if nlist is None or "nprobe" not in params or index.ntotal == 0:
        apply_search_params(index, params)
        return params, None
    sample, source = tuning_queries(vectors, queries)
    k = min(TUNE_K, index.ntotal)
    exact = exact_top_k(vectors, sample, k)
    ladder = _probe_ladder(nlist)
    measured: dict[int, float] = {}

    def recall_at(position: int) -> float:
        if position not in measured:
            apply_search_params(index, {**params, "nprobe": ladder[position]})
            measured[position] = recall_at_k(search(index, sample, k)[1], exact)
        return measured[position]

    # bisection on the ladder (recall grows with nprobe): ~log2(len(ladder)) measurements
    low, high = 0, len(ladder) - 1
    if recall_at(high) >= target:
        while low < high:
            middle = (low + high) // 2
            if recall_at(middle) >= target:
                high = middle
            else:
                low = middle + 1
    params["nprobe"] = ladder[high]
    recall = recall_at(high)
    apply_search_params(index, params)
    record = {"target_recall_at_10": target, "recall_at_10": round(recall, 4), "queries": len(sample),
              "query_source": source, "train_sample": train_sample_size(len(vectors), spec), "lists": nlist}
    return params, record


def row_scores(vectors: np.ndarray, query: np.ndarray, rows: np.ndarray, block: int = 262144) -> np.ndarray:
    """Inner products of ``query`` with ``vectors[rows]``, float32, in blocks (no copy of the
    whole subset at once: a 10M-row store's filter may pass millions)."""
    query = np.asarray(query, dtype=np.float32)
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), block):
        scores[start:start + block] = vectors[rows[start:start + block]] @ query
    return scores


def exact_top_k_of_rows(vectors: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int,
                        block: int = 262144) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the ``k`` rows among ``rows`` with the largest inner product with
    ``query``, best first."""
    scores = row_scores(vectors, query, rows, block)
    k = min(k, len(rows))
    if k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
    top = top[np.argsort(-scores[top], kind="stable")]
    return scores[top], np.asarray(rows)[top].astype(np.int64)


def row_lists(index: Any) -> np.ndarray:
    """The inverted list holding each row of an inverted-file index (int32 [ntotal])."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    lists = np.empty(index.ntotal, dtype=np.int32)
    invlists = ivf.invlists
    for number in range(ivf.nlist):
        size = invlists.list_size(number)
        if size:
            ids = faiss.rev_swig_ptr(invlists.get_ids(number), size).copy()
            lists[ids] = number
    return lists


def search_allowed(index: Any, vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray,
                   params: dict[str, float], lists_of_rows: np.ndarray | Callable[[], np.ndarray] | None = None,
                   to_query: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, rows) of ``query`` among ``rows`` (sorted row numbers that pass a filter).

    vectors: the indexed vectors, or the index's exact copy with ``to_query`` its map for
    queries (:func:`exact_copy`), which the exact scan then scores instead.

    An inverted-file index loses recall when most vectors of the probed lists are filtered
    out, and more so when the filter follows the lists (a tempo range, say, that the tracks
    nearest the query mostly miss). So: the rows are scanned exactly while they are at most
    ``FILTER_EXACT_MAX`` (or the index has no lists); above, the index searches only them,
    probing lists in the query's order until they hold as many passing rows as the unfiltered
    search would scan (nprobe lists' worth), then re-ranking as it would unfiltered.
    ``lists_of_rows``: :func:`row_lists` of the index when the caller keeps it, or a function
    that gives it (called only when the lists are searched).
    """
    import faiss

    n_total = len(vectors)
    if len(rows) <= FILTER_EXACT_MAX or "nprobe" not in params or _is_gpu_index(index) or len(rows) == 0:
        return exact_top_k_of_rows(vectors, query if to_query is None else to_query(query)[0], rows, k)
    query = query_side(index, np.asarray(query, dtype=np.float32)[None])
    ivf = faiss.extract_index_ivf(index)
    nlist = ivf.nlist
    lists_of_rows = row_lists(index) if lists_of_rows is None else \
        lists_of_rows() if callable(lists_of_rows) else lists_of_rows
    passing = np.bincount(lists_of_rows[rows], minlength=nlist)
    _, order = ivf.quantizer.search(_transformed(index, query), nlist)
    wanted = min(len(rows), params["nprobe"] * n_total / nlist)
    covered = np.cumsum(passing[order[0][order[0] >= 0]])
    nprobe = int(min(nlist, np.searchsorted(covered, wanted) + 1))
    mask = np.zeros(n_total, dtype=bool)
    mask[rows] = True
    bitmap = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(n_total, faiss.swig_ptr(bitmap))
    ivf_search = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    search = ivf_search  # (each parameter object referenced until the search is done: FAISS keeps raw pointers)
    if "k_factor_rf" in params:
        search = faiss.IndexRefineSearchParameters(k_factor=float(params["k_factor_rf"]), base_index_params=ivf_search)
    scores, found = index.search(query, min(k, len(rows)), params=search)
    del search, ivf_search, selector, bitmap
    keep = found[0] >= 0
    return scores[0][keep], found[0][keep]


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
