"""Index choice by size: exact search for small stores, fast approximate search above."""

import faiss
import numpy as np
import pytest

from mre.indexer import index_spec
from mre.indexer.index_spec import (
    IVF_MIN_VECTORS,
    REFINE_K_FACTOR,
    TUNE_TARGET_RECALL,
    IndexSpecError,
    apply_search_params,
    build_index,
    choose_index_spec,
    exact_top_k,
    exact_top_k_of_rows,
    flat_max_vectors,
    maybe_to_gpu,
    query_side,
    recall_at_k,
    search,
    search_allowed,
    search_params,
    tune_search_params,
    validate_index_spec,
)


@pytest.fixture(autouse=True)
def _one_thread(one_faiss_thread):
    """Index building and searching on one FAISS thread (conftest.one_faiss_thread)."""
    yield


def unit_vectors(n, dim, seed):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def recall_at_10(index, database, queries):
    exact = np.argpartition(-(queries @ database.T), 10, axis=1)[:, :10]
    _, found = search(index, queries, 10)
    return np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found)])


def test_small_stores_are_searched_exactly():
    assert choose_index_spec(0, 100) == "Flat"
    assert choose_index_spec(flat_max_vectors(100), 100) == "Flat"
    assert choose_index_spec(30, 50, flat_max=100) == "Flat"


def test_large_stores_get_an_approximate_index():
    assert choose_index_spec(flat_max_vectors(100) + 1, 100) == "PQ100x4fs,RFlat"
    assert choose_index_spec(IVF_MIN_VECTORS - 1, 100) == "PQ100x4fs,RFlat"
    assert search_params("PQ100x4fs,RFlat", 100_000) == {"k_factor_rf": REFINE_K_FACTOR}
    assert choose_index_spec(5000, 51, flat_max=1000) == "PQ51x4fs,RFlat"  # odd dimension: one per sub-quantizer
    # inverted lists from IVF_MIN_VECTORS, made on partly whitened vectors
    assert choose_index_spec(1_000_000, 100) == "Whiten0.5,IVF1024,PQ100x4fs,RFlat"
    assert choose_index_spec(10_000_000, 192) == "Whiten0.5,IVF2048,PQ192x4fs,RFlat"
    assert choose_index_spec(5000, 16, flat_max=1000, ivf_min=2000) == "Whiten0.5,IVF64,PQ16x4fs,RFlat"
    # without a measurement (a user's spec, no tuning data), 7/8 of the lists are probed
    assert search_params("IVF1024,PQ100x4fs,RFlat", 10_000_000) == {"nprobe": 896, "k_factor_rf": REFINE_K_FACTOR}
    with pytest.raises(IndexSpecError):
        choose_index_spec(10, 0)


def clustered_vectors(n, dim, seed, clusters=64, spread=0.35):
    """Unit vectors around `clusters` random centres: structure an inverted file can use."""
    rng = np.random.default_rng(seed)
    centres = unit_vectors(clusters, dim, seed + 1000)
    vectors = centres[rng.integers(0, clusters, n)] + spread / np.sqrt(dim) * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_inverted_file_is_chosen_trained_on_a_sample_and_tuned_by_measurement(monkeypatch):
    monkeypatch.setattr(index_spec, "TRAIN_SAMPLE_MIN", 2048)
    database = clustered_vectors(30_000, 24, seed=0)
    queries = clustered_vectors(400, 24, seed=1)
    spec = choose_index_spec(len(database), 24, flat_max=1000, ivf_min=10_000)
    assert spec == "Whiten0.5,IVF128,PQ24x4fs,RFlat"
    index = build_index(database, spec)
    params, tuning = tune_search_params(index, database, spec, queries=queries[:200])
    assert tuning["train_sample"] == 64 * 128 < len(database)  # trained on a sample, not the whole store
    assert tuning["queries"] == 200 and tuning["query_source"] == "queries" and tuning["lists"] == 128
    # the measured setting reaches the target, and on clustered data far fewer lists than all
    assert tuning["recall_at_10"] >= TUNE_TARGET_RECALL and params["nprobe"] < 128 // 2
    assert faiss.extract_index_ivf(index).nprobe == params["nprobe"]
    # one step down the ladder would not have reached the target: the smallest such setting
    exact = exact_top_k(database, queries[:200], 10)
    if params["nprobe"] > 1:
        lower = max(v for v in index_spec._probe_ladder(128) if v < params["nprobe"])
        faiss.extract_index_ivf(index).nprobe = lower
        assert recall_at_k(search(index, queries[:200], 10)[1], exact) < TUNE_TARGET_RECALL
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    # queries it was not tuned on: the target, less three standard errors of a recall from 200 x 10 hits
    held_out = recall_at_k(search(index, queries[200:], 10)[1], exact_top_k(database, queries[200:], 10))
    target = TUNE_TARGET_RECALL
    assert held_out >= target - 3 * np.sqrt(target * (1 - target) / (200 * 10))


def test_tuning_without_queries_uses_the_indexed_vectors():
    database = clustered_vectors(5000, 16, seed=2)
    index = build_index(database, "IVF32,Flat")
    params, tuning = tune_search_params(index, database, "IVF32,Flat")
    assert tuning["query_source"] == "vectors" and tuning["recall_at_10"] >= TUNE_TARGET_RECALL
    assert tune_search_params(build_index(database, "Flat"), database, "Flat") == ({}, None)


def test_uniform_levels_keep_the_top_of_a_direction_in_order():
    # a one-dimension-per-sub-quantizer PQ gets even levels over the sample's range (widened):
    # the tracks scoring highest for a query are told apart, not tied in one top level
    database = clustered_vectors(20_000, 16, seed=3)
    index = build_index(database, "PQ16x4fs,RFlat")
    levels = faiss.vector_to_array(index_spec.scalar_pq(index).centroids).reshape(16, 16)
    spans = database.max(axis=0) - database.min(axis=0)
    np.testing.assert_allclose(np.diff(levels, axis=1), np.repeat(spans[:, None] * 1.2 / 15, 15, axis=1), rtol=1e-4)
    assert index_spec.scalar_pq(build_index(database, "PQ8x4fs,RFlat")) is None  # two dims each: k-means as asked
    queries = np.eye(16, dtype=np.float32)  # one label each: the extremes of one dimension
    assert recall_at_10(index, database, queries) >= TUNE_TARGET_RECALL


def test_filtered_search_keeps_recall_exact_and_through_the_lists(monkeypatch):
    database = clustered_vectors(30_000, 24, seed=4)
    queries = clustered_vectors(100, 24, seed=5)
    spec = choose_index_spec(len(database), 24, flat_max=1000, ivf_min=10_000)
    index = build_index(database, spec)
    params, _ = tune_search_params(index, database, spec, queries=queries)
    rng = np.random.default_rng(6)
    filters = {"a random 20%": np.flatnonzero(rng.random(len(database)) < 0.2),
               "one side of a direction": np.flatnonzero(database[:, 0] > np.median(database[:, 0])),
               "three tracks": np.array([5, 500, 29_999])}
    for exact_max in (index_spec.FILTER_EXACT_MAX, 100):  # the exact pass, then the lists with a selector
        monkeypatch.setattr(index_spec, "FILTER_EXACT_MAX", exact_max)
        for name, rows in filters.items():
            hits = []
            for query in queries:
                scores, found = search_allowed(index, database, query, 10, rows, params)
                assert np.isin(found, rows).all(), name  # only rows that pass
                exact_scores, exact_rows = exact_top_k_of_rows(database, query, rows, 10)
                assert len(found) == len(exact_rows) == min(10, len(rows))
                hits.append(len(set(found.tolist()) & set(exact_rows.tolist())) / len(exact_rows))
            target = TUNE_TARGET_RECALL
            assert np.mean(hits) >= target - 3 * np.sqrt(target * (1 - target) / (len(queries) * 10)), (name, exact_max)
    assert search_allowed(index, database, queries[0], 10, np.zeros(0, np.int64), params)[1].size == 0


def anisotropic_vectors(n, dim, seed):
    """Vectors whose spread differs 100-fold between directions, not aligned with the axes."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return ((rng.standard_normal((n, dim)) * np.geomspace(10.0, 0.1, dim)) @ rotation).astype(np.float32)


def test_whitened_lists_keep_every_inner_product():
    # the index holds A x and is searched with (AᵀA)⁻¹ q: with every list probed over exact
    # vectors, it finds what exact search finds, scores included
    database = anisotropic_vectors(4000, 12, seed=8)
    queries = anisotropic_vectors(50, 12, seed=9)
    index = build_index(database, "Whiten0.5,IVF16,Flat")
    apply_search_params(index, {"nprobe": 16})
    scores, found = search(index, queries, 10)
    exact = queries.astype(np.float64) @ database.T.astype(np.float64)
    # float32 rounding of q(AᵀA)⁻¹, of A q' and A x, and of their dot product (d terms each)
    transform = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
    a = faiss.vector_to_array(transform.A).reshape(12, 12).astype(np.float64)
    bound = 4 * 12 * 2.0 ** -24 * np.linalg.norm(a) * np.linalg.norm(np.linalg.inv(a)) * \
        np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(database, axis=1).max()
    assert (np.abs(scores - np.take_along_axis(exact, found, axis=1)) <= bound).all()
    # rank by rank what exact search finds, or a track whose exact score ties with it within
    # the rounding (their order is then the CPU's to choose)
    best = -np.sort(-exact, axis=1)[:, :10]
    assert (np.abs(np.take_along_axis(exact, found, axis=1) - best) <= 2 * bound).all()
    # an index without the transform takes the queries as they are
    plain = build_index(database, "Flat")
    np.testing.assert_array_equal(query_side(plain, queries), queries)


def test_whitened_index_survives_a_write_and_read(tmp_path):
    database = anisotropic_vectors(6000, 16, seed=10)
    queries = anisotropic_vectors(40, 16, seed=11)
    spec = "Whiten0.5,IVF32,PQ16x4fs,RFlat"
    index = build_index(database, spec)
    params, _ = tune_search_params(index, database, spec, queries=queries)
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    loaded = faiss.read_index(str(tmp_path / "index.faiss"))
    apply_search_params(loaded, params)
    np.testing.assert_array_equal(search(loaded, queries, 10)[1], search(index, queries, 10)[1])


def test_a_store_added_in_blocks_is_the_index_added_at_once(monkeypatch):
    # big stores are added a block at a time (no whole transformed copy): the same index, up
    # to the float32 rounding of A x, whose summation order follows the block's size
    database = anisotropic_vectors(6000, 16, seed=12)
    queries = anisotropic_vectors(40, 16, seed=13)
    spec = "Whiten0.5,IVF32,PQ16x4fs,RFlat"
    at_once = build_index(database, spec)
    monkeypatch.setattr(index_spec, "ADD_BLOCK", 1000)
    in_blocks = build_index(database, spec)
    assert in_blocks.ntotal == at_once.ntotal == len(database)
    exact = queries.astype(np.float64) @ database.T.astype(np.float64)
    transform = faiss.downcast_VectorTransform(faiss.downcast_index(at_once).chain.at(0))
    a = faiss.vector_to_array(transform.A).reshape(16, 16).astype(np.float64)
    # as in test_whitened_lists_keep_every_inner_product, for the largest vector
    bound = 4 * 16 * 2.0 ** -24 * np.linalg.norm(a) * np.linalg.norm(np.linalg.inv(a)) * \
        np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(database, axis=1).max()
    ranked = []
    for index in (at_once, in_blocks):
        apply_search_params(index, {"nprobe": 32, "k_factor_rf": 32})
        scores, found = search(index, queries, 10)
        assert (np.abs(scores - np.take_along_axis(exact, found, axis=1)) <= bound).all()
        ranked.append(np.take_along_axis(exact, found, axis=1))
    # rank by rank the same tracks, or tracks whose exact scores tie within the rounding
    assert (np.abs(ranked[0] - ranked[1]) <= 2 * bound).all()


def test_approximate_index_keeps_recall_on_random_vectors():
    database = unit_vectors(20_000, 100, seed=0)
    queries = unit_vectors(100, 100, seed=1)
    spec = choose_index_spec(len(database), 100, flat_max=1000)
    assert spec != "Flat"
    index = build_index(database, spec)
    assert index.ntotal == len(database)
    assert recall_at_10(index, database, queries) >= 0.95


def test_inner_product_is_the_metric_even_for_non_unit_vectors():
    database = unit_vectors(50, 16, seed=2) * np.linspace(0.5, 2.0, 50, dtype=np.float32)[:, None]
    index = build_index(database, "Flat")
    scores, ids = index.search(database[:1], 50)
    np.testing.assert_allclose(scores[0], np.sort(database @ database[0])[::-1], rtol=1e-5)


def test_search_params_survive_a_write_and_read(tmp_path):
    database = unit_vectors(2000, 16, seed=3)
    spec = "IVF8,Flat"
    index = build_index(database, spec)
    assert faiss.extract_index_ivf(index).nprobe == 7
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    loaded = faiss.read_index(str(tmp_path / "index.faiss"))
    apply_search_params(loaded, search_params(spec, len(database)))
    assert faiss.extract_index_ivf(loaded).nprobe == 7
    assert maybe_to_gpu(loaded) is not None  # CPU-only FAISS: the same index back


def test_benchmark_reports_engine_against_numpy():
    from mre.benchmarks.search_speed import run

    report = run(sizes=[3000], dim=16, n_queries=20, flat_max=1000, threads=None, echo=None)
    result = report["sizes"][0]
    assert result["engine"]["spec"] == "PQ16x4fs,RFlat" and result["numpy"]["recall_at_10"] == 1.0
    assert result["engine"]["recall_at_10"] >= 0.9 and result["sweep"]


@pytest.mark.parametrize("spec, message", [
    ("Blah12", "could not parse"),
    ("PQ7", "multiple of the number of subquantizers"),
    ("  ", "index spec is empty"),
    ("Whiten9,IVF8,Flat", "whitening power must lie in 0..4"),
    ("Whiten0.5,Blah", "could not parse"),
])
def test_bad_index_spec_is_one_clear_error(spec, message):
    with pytest.raises(IndexSpecError, match=message) as raised:
        validate_index_spec(spec, 100)
    assert "\n" not in str(raised.value)


def test_index_that_cannot_be_trained_says_why():
    with pytest.raises(IndexSpecError, match="needs at least 64 vectors to train, got 10"):
        build_index(unit_vectors(10, 16, seed=4), "IVF64,Flat")
    with pytest.raises(IndexSpecError, match="NaN"):
        build_index(np.full((4, 16), np.nan, np.float32), "Flat")
    with pytest.raises(IndexSpecError, match="unknown search parameter"):
        apply_search_params(build_index(unit_vectors(4, 16, seed=5), "Flat"), {"bogus": 1})


def test_benchmark_measures_the_tuned_inverted_file_and_plots_latency_against_size(tmp_path):
    from mre.benchmarks.search_speed import format_rows, plot_latency_vs_size, run

    report = run(sizes=[2000, 6000], dim=16, n_queries=20, flat_max=1000, ivf_min=3000, threads=None, echo=None)
    small, large = report["sizes"]
    assert small["engine"]["spec"] == "PQ16x4fs,RFlat" and large["engine"]["spec"] == "Whiten0.5,IVF64,PQ16x4fs,RFlat"
    engine = large["engine"]
    chosen = f"nprobe={engine['search_params']['nprobe']}"
    assert chosen in [point["setting"] for point in large["sweep"]] and engine["tuning"]["query_source"] == "vectors"
    assert engine["build_s"] >= engine["train_add_s"] > 0 and engine["index_bytes"] > 0 and large["peak_rss_bytes"] > 0
    assert "measured at build" in format_rows([large])
    png = plot_latency_vs_size(report, tmp_path / "size.png")
    assert png is None or png.stat().st_size > 0  # None: matplotlib is not installed


def test_store_like_vectors_follow_their_reference():
    from mre.benchmarks.store_vectors import StoreVectorModel

    rng = np.random.default_rng(7)
    centres = rng.normal(-4.0, 2.0, (6, 12))
    reference = (centres[rng.integers(0, 6, 120)] + 0.3 * rng.standard_normal((120, 12))).astype(np.float32)
    model = StoreVectorModel.fit(reference)
    # clustered references get a narrow kernel (leave-one-out likelihood), not one blob
    assert 0.05 <= model.bandwidth < 0.5
    vectors = model.sample(5000, seed=1)
    assert vectors.shape == (5000, 12) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, model.sample(5000, seed=1))
    # each drawn vector lies near a reference vector: nearer than the references are to other clusters
    nearest = np.sqrt(((vectors[:500, None, :] - reference[None]) ** 2).sum(-1)).min(axis=1)
    between = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))[np.triu_indices(6, 1)].min()
    assert np.median(nearest) < between / 2
    with pytest.raises(ValueError, match="at least 3 reference vectors"):
        StoreVectorModel.fit(reference[:2])


def test_an_index_that_keeps_the_vectors_scores_them_in_place():
    # a query with attribute weights scores every track against the index's exact copy (a view
    # of its memory), not against the store's vector column
    from mre.indexer.index_spec import exact_copy

    database = anisotropic_vectors(6000, 16, seed=14)
    queries = anisotropic_vectors(5, 16, seed=15)
    exact = queries.astype(np.float64) @ database.T.astype(np.float64)
    for spec in ("Flat", "PQ16x4fs,RFlat"):
        view, to_query = exact_copy(build_index(database, spec))
        np.testing.assert_array_equal(view, database)
        np.testing.assert_array_equal(to_query(queries), queries)
    index = build_index(database, "Whiten0.5,IVF16,PQ16x4fs,RFlat")
    view, to_query = exact_copy(index)
    assert view.shape == database.shape and not view.flags.writeable
    # as in test_whitened_lists_keep_every_inner_product: float32 A x, (AᵀA)⁻¹ q, A q' and the product
    transform = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
    a = faiss.vector_to_array(transform.A).reshape(16, 16).astype(np.float64)
    bound = 4 * 16 * 2.0 ** -24 * np.linalg.norm(a) * np.linalg.norm(np.linalg.inv(a)) * \
        np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(database, axis=1)[None]
    assert (np.abs(to_query(queries) @ view.T - exact) <= bound).all()
    assert exact_copy(build_index(database, "IVF16,PQ16x4fs")) is None  # codes only


def test_the_exact_copy_gives_back_the_added_vectors():
    # a stored track's tags and neighbours take its vector from the index's copy: the rows
    # themselves, or a whitened copy's rows back through A⁻¹, within the componentwise bound
    # of that round trip in float32 (float_bounds.round_trip_error)
    from float_bounds import round_trip_error

    from mre.indexer.index_spec import added_vectors, exact_copy

    database = anisotropic_vectors(6000, 16, seed=16)
    rows = np.array([0, 17, 5999, 17])  # any rows, repeats included
    for spec in ("Flat", "PQ16x4fs,RFlat"):
        index = build_index(database, spec)
        np.testing.assert_array_equal(added_vectors(index, exact_copy(index)[0][rows]), database[rows])
    index = build_index(database, "Whiten0.5,IVF16,PQ16x4fs,RFlat")
    view, _ = exact_copy(index)
    transform = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
    a = faiss.vector_to_array(transform.A).reshape(16, 16).astype(np.float64)
    back = added_vectors(index, view, block=1000)  # in blocks, as a filter's many rows are
    assert back.dtype == np.float32 and back.shape == database.shape
    assert (np.abs(back.astype(np.float64) - database) <= round_trip_error(a, database)).all()


def test_too_few_vectors_for_the_lists_is_one_line_of_ours_not_faiss_s_warning(capfd):
    """An explicit IVF spec on a small store trains as before (the same lists), without FAISS's
    own stderr warning; `mre index` prints sparse_lists_note's line instead."""
    from mre.indexer.index_spec import MIN_POINTS_PER_LIST, build_index, sparse_lists_note

    vectors = np.random.default_rng(0).standard_normal((28, 16)).astype(np.float32)
    index = build_index(vectors, "IVF4,Flat")
    assert index.ntotal == 28 and "WARNING" not in capfd.readouterr().err
    note = sparse_lists_note("IVF4,Flat", 28)
    assert note.startswith("note: index spec 'IVF4,Flat'") and str(4 * MIN_POINTS_PER_LIST) in note
    assert "\n" not in note
    assert sparse_lists_note("IVF4,Flat", 4 * MIN_POINTS_PER_LIST) is None and sparse_lists_note("Flat", 3) is None
