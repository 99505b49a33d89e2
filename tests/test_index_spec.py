"""Index choice by size: exact search for small stores, fast approximate search above."""

import faiss
import numpy as np
import pytest

from mre.indexer.index_spec import (
    IndexSpecError,
    apply_search_params,
    build_index,
    choose_index_spec,
    flat_max_vectors,
    maybe_to_gpu,
    search_params,
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
    _, found = index.search(queries, 10)
    return np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found)])


def test_small_stores_are_searched_exactly():
    assert choose_index_spec(0, 100) == "Flat"
    assert choose_index_spec(flat_max_vectors(100), 100) == "Flat"
    assert choose_index_spec(30, 50, flat_max=100) == "Flat"


def test_large_stores_get_an_approximate_index():
    assert choose_index_spec(flat_max_vectors(100) + 1, 100) == "PQ50x4fs,RFlat"
    assert choose_index_spec(1_000_000, 100) == "PQ50x4fs,RFlat"
    assert search_params("PQ50x4fs,RFlat", 1_000_000) == {"k_factor_rf": 50}
    assert choose_index_spec(5000, 51, flat_max=1000) == "PQ51x4fs,RFlat"  # odd dimension
    assert choose_index_spec(10_000_000, 100) == "IVF1024,PQ50x4fs,RFlat"  # inverted lists past 4M
    assert search_params("IVF1024,PQ50x4fs,RFlat", 10_000_000) == {"nprobe": 896, "k_factor_rf": 50}
    with pytest.raises(IndexSpecError):
        choose_index_spec(10, 0)


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
    assert result["engine"]["spec"] == "PQ8x4fs,RFlat" and result["numpy"]["recall_at_10"] == 1.0
    assert result["engine"]["recall_at_10"] >= 0.9 and result["sweep"]


@pytest.mark.parametrize("spec, message", [
    ("Blah12", "could not parse"),
    ("PQ7", "multiple of the number of subquantizers"),
    ("  ", "index spec is empty"),
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
