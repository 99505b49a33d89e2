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
    spec = choose_index_spec(flat_max_vectors(100) + 1, 100)
    assert spec.startswith("IVF") and "PQ50x4fs" in spec
    assert choose_index_spec(1_000_000, 100) == "IVF256,PQ50x4fs,RFlat"
    assert choose_index_spec(5000, 51, flat_max=1000).endswith("PQ51x4fs,RFlat")  # odd dimension
    params = search_params("IVF256,PQ50x4fs,RFlat", 1_000_000)
    assert params == {"nprobe": 192, "k_factor_rf": 50}
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
    assert faiss.extract_index_ivf(index).nprobe == 6
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    loaded = faiss.read_index(str(tmp_path / "index.faiss"))
    apply_search_params(loaded, search_params(spec, len(database)))
    assert faiss.extract_index_ivf(loaded).nprobe == 6
    assert maybe_to_gpu(loaded) is not None  # CPU-only FAISS: the same index back


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
