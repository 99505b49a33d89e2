"""The store: generations committed whole, switched atomically, resumable staging."""

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mre.indexer.index_spec import IndexSpecError
from mre.indexer.store import (
    SKIPPED_SCHEMA,
    Store,
    StoreError,
    StoreLockedError,
    track_id_for,
    tracks_schema,
    vectors_column,
)

DIM = 8


@pytest.fixture(autouse=True)
def _one_thread(one_faiss_thread):
    """Index building and searching on one FAISS thread (conftest.one_faiss_thread)."""
    yield


def unit_vectors(n, dim=DIM, seed=0):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def tracks_table(paths, vectors):
    n = len(paths)
    return pa.Table.from_pydict(
        {
            "track_id": [track_id_for(p) for p in paths],
            "path": paths,
            "size": [1000 + i for i in range(n)],
            "mtime_ns": [1_700_000_000_000_000_000 + i for i in range(n)],
            "duration": [30.0] * n,
            "sample_rate": [16000] * n,
            "channels": [2] * n,
            "format": ["WAV"] * n,
            "vector": vectors_column(vectors),
            "model_id": ["test-model"] * n,
            "top_tags": [["rock", "guitar"]] * n,
        },
        schema=tracks_schema(vectors.shape[1]),
    )


def commit(store, n_tracks, seed=0, **kwargs):
    paths = [f"/music/track{i:03d}.wav" for i in range(n_tracks)]
    track_vectors = unit_vectors(n_tracks, seed=seed)
    tag_vectors = unit_vectors(5, seed=seed + 100)
    tags = pa.table({"tag": ["rock", "jazz", "piano", "calm", "dub"], "category": ["genre"] * 2 + ["instrument", "mood", "genre"]})
    skipped = pa.Table.from_pydict({"path": ["/music/broken.mp3"], "reason": ["not audio"]}, schema=SKIPPED_SCHEMA)
    generation = store.commit(tracks_table(paths, track_vectors), track_vectors, tags, tag_vectors, skipped,
                              {"model_id": "test-model"}, **kwargs)
    return generation, track_vectors


def test_store_is_not_created_until_written(tmp_path):
    store = Store(tmp_path / "store")
    assert not store.exists() and store.live() is None
    assert not (tmp_path / "store").exists()
    with pytest.raises(StoreError, match="no store at .* yet — run `mre index PATH --store"):
        store.open_live()


def test_commit_and_reopen_round_trip(tmp_path):
    store = Store(tmp_path / "store")
    committed, track_vectors = commit(store, 20)
    reopened = Store(tmp_path / "store").open_live()
    assert reopened.id == committed.id
    assert sorted(os.listdir(reopened.path)) == sorted(
        ["tracks.parquet", "audio.faiss", "tags.parquet", "tags.faiss", "skipped.parquet", "meta.json"])
    np.testing.assert_array_equal(reopened.track_vectors(), track_vectors)
    assert reopened.tracks().schema.equals(tracks_schema(DIM))
    assert reopened.tracks().column("top_tags").to_pylist()[0] == ["rock", "guitar"]
    assert reopened.tags().column("tag").to_pylist()[:2] == ["rock", "jazz"]
    assert reopened.skipped().to_pylist() == [{"path": "/music/broken.mp3", "reason": "not audio"}]
    meta = reopened.meta
    assert meta["model_id"] == "test-model" and meta["generation"] == reopened.id
    assert meta["counts"] == {"tracks": 20, "tags": 5, "skipped": 1}
    assert meta["audio_index"]["spec"] == "Flat" and meta["audio_index"]["dim"] == DIM
    # The index answers cosine queries: each track's own vector finds that track first.
    scores, ids = reopened.audio_index().search(track_vectors[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2] and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert reopened.tag_index().ntotal == 5
    # Readable by plain pyarrow (and so pandas/duckdb).
    assert pq.read_table(reopened.path / "tracks.parquet").num_rows == 20


def test_index_spec_override_is_recorded_and_reapplied(tmp_path):
    store = Store(tmp_path / "store")
    commit(store, 400, index_spec="IVF4,Flat")
    generation = store.open_live()
    record = generation.meta["audio_index"]
    assert record["spec"] == "IVF4,Flat"
    # nprobe was measured at commit (the tag vectors as queries) and is re-applied on reading
    assert set(record["search_params"]) == {"nprobe"} and 1 <= record["search_params"]["nprobe"] <= 4
    assert generation.audio_index().nprobe == record["search_params"]["nprobe"]
    assert record["tuning"]["query_source"] == "queries" and record["tuning"]["queries"] == 5
    with pytest.raises(IndexSpecError, match="invalid index spec 'IVF4,Bogus'"):
        commit(store, 400, index_spec="IVF4,Bogus")
    assert store.open_live().id == generation.id


def test_reader_keeps_working_while_newer_generations_are_committed(tmp_path):
    store = Store(tmp_path / "store")
    first, first_vectors = commit(store, 10, seed=1)
    first.close()  # commit's own handle; the reader below opens the generation afresh
    reader = Store(tmp_path / "store").open_live()
    second, _ = commit(store, 12, seed=2)
    second.close()
    third, _ = commit(store, 14, seed=3)
    third.close()
    assert store.open_live().id == third.id
    # The reader still holds generation 1, so it was not removed; it loads lazily now.
    assert reader.path.is_dir()
    np.testing.assert_array_equal(reader.track_vectors(), first_vectors)
    assert reader.audio_index().ntotal == 10
    reader.close()
    fourth, _ = commit(store, 16, seed=4)
    # Only the live generation and the previous one remain once nobody reads the others.
    assert sorted(os.listdir(store.generations_dir)) == sorted([third.id, fourth.id])
    fourth.close()


def test_crash_before_switch_leaves_previous_generation_live(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    first, first_vectors = commit(store, 10, seed=1)

    def killed(gen_id):
        raise KeyboardInterrupt("killed between writing the generation and switching CURRENT")

    monkeypatch.setattr(store, "_switch_current", killed)
    with pytest.raises(KeyboardInterrupt):
        commit(store, 11, seed=2)
    monkeypatch.undo()
    assert len(os.listdir(store.generations_dir)) == 2  # the orphan is whole but not live
    live = Store(tmp_path / "store").open_live()
    assert live.id == first.id
    np.testing.assert_array_equal(live.track_vectors(), first_vectors)
    live.close()
    first.close()
    third, _ = commit(store, 12, seed=3)
    assert sorted(os.listdir(store.generations_dir)) == sorted([first.id, third.id])


def test_damaged_store_gives_one_line_errors(tmp_path):
    store = Store(tmp_path / "store")
    generation, _ = commit(store, 5)
    generation.close()
    (generation.path / "meta.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupted meta.json"):
        store.open_live()
    (tmp_path / "store" / "CURRENT").write_text("../../etc\n")
    with pytest.raises(StoreError, match="does not name a generation"):
        store.open_live()


def test_an_index_as_committed_is_not_hashed_again_and_one_copied_in_is(tmp_path, monkeypatch):
    import shutil

    from mre.indexer import store as store_module

    hashed = []
    real_sha256 = store_module.file_sha256
    monkeypatch.setattr(store_module, "file_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    first, _ = commit(Store(tmp_path / "first"), 6, seed=0)
    other, _ = commit(Store(tmp_path / "other"), 6, seed=1)  # same size of index, other vectors
    assert first.meta["files"]["audio.faiss"]["mtime_ns"] == (first.path / "audio.faiss").stat().st_mtime_ns
    hashed.clear()
    with Store(tmp_path / "first").open_live() as generation:
        generation.check()  # what a search checks on opening: the indexes as committed, not read
    assert hashed == []
    # the other store's index, its modification time kept (cp -p): read, and refused
    shutil.copy2(other.path / "audio.faiss", first.path / "audio.faiss")
    assert (first.path / "audio.faiss").stat().st_size == first.meta["files"]["audio.faiss"]["size"]
    with Store(tmp_path / "first").open_live() as generation, \
            pytest.raises(StoreError, match="audio.faiss is not the file this generation was written with"):
        generation.check()
    assert hashed == ["audio.faiss"]
    # strict (the crash benchmark's check) reads every file named, as committed or not
    shutil.copy2(other.path / "tags.faiss", first.path / "tags.faiss")
    with Store(tmp_path / "other").live() as generation:
        hashed.clear()
        assert generation.damage() is None and hashed == []
        assert generation.damage(strict=True) is None and hashed == ["audio.faiss", "tags.faiss"]


def test_a_generations_index_is_mapped_from_its_file_and_answers_as_read(tmp_path):
    # the vectors an index keeps exactly are mapped, not read (a query of a 10M-track store read
    # ~8 GB first); the mapped index finds the same tracks with the same scores
    import faiss

    from mre.indexer.index_spec import exact_copy

    store = Store(tmp_path / "store")
    generation, track_vectors = commit(store, 40, index_spec="PQ8x4fs,RFlat")
    generation.close()
    with store.open_live() as live:
        mapped = live.audio_index()
        maps = Path("/proc/self/maps")
        if maps.exists() and hasattr(faiss, "IO_FLAG_MMAP_IFC"):
            assert str(live.path / "audio.faiss") in maps.read_text()
        read = faiss.read_index(str(live.path / "audio.faiss"))
        for index in (mapped, read):
            faiss.ParameterSpace().set_index_parameters(index, "k_factor_rf=8")
        np.testing.assert_array_equal(mapped.search(track_vectors[:5], 3)[1], read.search(track_vectors[:5], 3)[1])
        np.testing.assert_array_equal(mapped.search(track_vectors[:5], 3)[0], read.search(track_vectors[:5], 3)[0])
        np.testing.assert_array_equal(exact_copy(mapped)[0], track_vectors)


def test_second_writer_gets_a_clear_error(tmp_path):
    first_run, second_run = Store(tmp_path / "store"), Store(tmp_path / "store")
    with first_run.lock():
        with pytest.raises(StoreLockedError, match=f"another `mre index` run \\(pid {os.getpid()}\\)"):
            with second_run.lock():
                pass
        commit(first_run, 5)  # the lock is re-entrant for the run that holds it
    with second_run.lock():
        pass


def test_staging_resumes_from_whole_parts_and_ignores_stray_tmp(tmp_path):
    store = Store(tmp_path / "store")
    staging = store.staging("model-abc123")
    assert staging.rows().num_rows == 0 and staging.done_keys() == set()
    first = tracks_table(["/m/a.wav", "/m/b.wav"], unit_vectors(2))
    second = tracks_table(["/m/c.wav"], unit_vectors(1, seed=5))
    staging.append(first)
    staging.append(second)
    # A run killed mid-write leaves only a dot-named temporary file behind.
    stray = staging.path / ".part-00003.parquet.999.tmp"
    stray.write_bytes(b"PAR1 half a part")
    resumed = Store(tmp_path / "store").staging("model-abc123")
    assert resumed.rows().column("path").to_pylist() == ["/m/a.wav", "/m/b.wav", "/m/c.wav"]
    assert not stray.exists()
    assert resumed.done_keys() == {
        ("/m/a.wav", 1000, 1_700_000_000_000_000_000),
        ("/m/b.wav", 1001, 1_700_000_000_000_000_001),
        ("/m/c.wav", 1000, 1_700_000_000_000_000_000),
    }
    assert sorted(p.name for p in resumed.path.iterdir()) == ["part-00001.parquet", "part-00002.parquet"]
    resumed.clear()
    assert resumed.rows().num_rows == 0
    with pytest.raises(StoreError, match="staging key"):
        store.staging("../escape")


def test_meta_json_is_plain_json(tmp_path):
    generation, _ = commit(Store(tmp_path / "store"), 3)
    meta = json.loads((generation.path / "meta.json").read_text())
    assert meta["created"].endswith("+00:00") and meta["tag_index"]["spec"] == "Flat"


def _clustered(n, dim, seed, clusters=32):
    rng = np.random.default_rng(seed)
    centres = unit_vectors(clusters, dim, seed + 1000)
    vectors = centres[rng.integers(0, clusters, n)] + 0.1 * rng.standard_normal((n, dim)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_large_store_gets_a_tuned_inverted_file_that_round_trips_through_meta(tmp_path, monkeypatch):
    from mre.indexer import index_spec

    # thresholds scaled down so that 20k vectors count as "large"
    monkeypatch.setattr(index_spec, "FLAT_MAX_BYTES", 4 * 16 * 1000)
    monkeypatch.setattr(index_spec, "IVF_MIN_VECTORS", 10_000)
    monkeypatch.setattr(index_spec, "TRAIN_SAMPLE_MIN", 2048)
    dim, n = 16, 20_000
    vectors, tag_vectors = _clustered(n, dim, seed=1), _clustered(120, dim, seed=2)
    paths = [f"/music/track{i:05d}.wav" for i in range(n)]
    tags = pa.table({"tag": [f"tag{i}" for i in range(120)], "category": ["genre"] * 120})
    store = Store(tmp_path / "store")
    store.commit(tracks_table(paths, vectors), vectors, tags, tag_vectors, None, {"model_id": "test-model"})
    generation = store.open_live()
    record = generation.meta["audio_index"]
    assert record["spec"] == "Whiten0.5,IVF128,PQ16x4fs,RFlat"
    assert record["tuning"]["train_sample"] == 64 * 128 and record["tuning"]["query_source"] == "queries"
    assert record["tuning"]["recall_at_10"] >= index_spec.TUNE_TARGET_RECALL
    index = generation.audio_index()
    assert faiss.extract_index_ivf(index).nprobe == record["search_params"]["nprobe"] < 128
    # the reopened index answers the tuning queries with the recall meta.json recorded
    queries, _ = index_spec.tuning_queries(vectors, tag_vectors)
    found = index_spec.search(index, queries, 10)[1]
    assert index_spec.recall_at_k(found, index_spec.exact_top_k(vectors, queries, 10)) == pytest.approx(
        record["tuning"]["recall_at_10"], abs=1e-4)  # meta rounds to 4 places
    # a grown store's next generation is trained and tuned afresh on its own vectors
    grown = np.concatenate([vectors, _clustered(20_000, dim, seed=3)])
    paths += [f"/music/more{i:05d}.wav" for i in range(20_000)]
    store.commit(tracks_table(paths, grown), grown, tags, tag_vectors, None, {"model_id": "test-model"})
    newer = store.open_live()
    assert newer.meta["audio_index"]["spec"] == "Whiten0.5,IVF256,PQ16x4fs,RFlat" and newer.audio_index().ntotal == 40_000
    assert newer.meta["audio_index"]["tuning"]["recall_at_10"] >= index_spec.TUNE_TARGET_RECALL


@pytest.mark.parametrize("spec, old_params", [
    ("PQ4x4fs,RFlat", {"k_factor_rf": 50}),                  # the old chooser's full scan (2 dims per code)
    ("IVF16,PQ4x4fs,RFlat", {"nprobe": 14, "k_factor_rf": 50}),  # its inverted file, 7/8 of the lists probed
])
def test_stores_built_by_the_old_chooser_still_open_and_search(tmp_path, spec, old_params):
    from mre.indexer.index_spec import search_allowed

    store = Store(tmp_path / "store")
    generation, vectors = commit(store, 3000, index_spec=spec)
    # meta.json as the old chooser wrote it: fixed search parameters, no tuning record
    meta_path = generation.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["audio_index"] = {"spec": spec, "search_params": old_params, "count": 3000, "dim": DIM}
    meta_path.write_text(json.dumps(meta))
    generation.close()
    reopened = store.open_live()
    reopened.check()
    index = reopened.audio_index()
    if "nprobe" in old_params:
        assert faiss.extract_index_ivf(index).nprobe == old_params["nprobe"]
    assert index.k_factor == old_params["k_factor_rf"]
    _, found = index.search(vectors[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]  # each track finds itself
    rows = np.arange(0, 3000, 2)
    _, hits = search_allowed(index, vectors, vectors[10], 5, rows, old_params)
    assert hits[0] == 10 and np.isin(hits, rows).all()


def test_arrow_arrays_read_and_made_without_pandas_keep_their_values():
    # numpy_of, float_values and arrow_mask read and build Arrow buffers directly (pyarrow's own
    # conversions import pandas): sliced arrays, every numeric type, and nulls must come out as
    # pyarrow's do (float_values: as float64, NaN for a null)
    from mre.indexer.tables import arrow_mask, float_values, numpy_of, vectors_from_column

    for values, kind in (([1, -2, 3, 4, 5], pa.int32()), ([2**40, 7, -1, 0, 9], pa.int64()),
                         ([1, 2, 2**31, 4, 5], pa.uint32()), ([0.5, -1.25, 3e9, 4.0, 1e-30], pa.float32()),
                         ([0.1, 2.0, -3.5, 1e300, 0.0], pa.float64()), ([1.0, None, 3.0, 4.0, 5.0], pa.float64()),
                         ([None, 2, None, None, 5, None, 7, 8, None, 10], pa.int64())):
        array = pa.array(values, kind)
        for part in (array, array.slice(1, 3), array.slice(4), array.slice(3, 6)):
            np.testing.assert_array_equal(numpy_of(part), part.to_numpy(zero_copy_only=False))
            expected = [np.nan if v is None else float(v) for v in part.to_pylist()]
            np.testing.assert_array_equal(float_values(part), np.array(expected, dtype=np.float64))
        chunked = pa.chunked_array([array.slice(0, 2), array.slice(2)])
        np.testing.assert_array_equal(float_values(chunked), float_values(array))
    assert float_values(pa.array(["C", "D"])) is None
    mask = np.random.default_rng(3).random(77) < 0.5
    assert arrow_mask(mask).to_pylist() == mask.tolist()
    table = pa.table({"n": np.arange(77)})
    assert table.filter(arrow_mask(mask)).column("n").to_pylist() == np.flatnonzero(mask).tolist()
    vectors = np.random.default_rng(4).standard_normal((9, 5)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), 5)
    np.testing.assert_array_equal(vectors_from_column(column.slice(2, 4), "t"), vectors[2:6])


def test_top_tags_in_blocks_are_the_full_ranking_ties_included(monkeypatch):
    # a store's top tags (what `mre query` hits show) are ranked a block of tracks at a time by
    # a partition: the same tags in the same order as sorting every score, ties by tag order
    from mre.embedder.models.tag_space import ranked, top_ranked
    from mre.indexer import pipeline

    rng = np.random.default_rng(5)
    for tied in (False, True):
        scores = rng.integers(0, 4, (60, 30)).astype(np.float32) if tied else rng.standard_normal((60, 30))
        scores[7, 3] = np.nan  # a non-finite score is ranked as a full sort ranks it
        for k in (1, 5, 29, 30, 31):
            np.testing.assert_array_equal(top_ranked(scores, k), ranked(scores, k))
    track_vectors = rng.integers(-2, 3, (50, 8)).astype(np.float32)   # many exact ties
    tag_vectors = rng.integers(-2, 3, (40, 8)).astype(np.float32)
    names = [f"tag {i}" for i in range(40)]
    tracks = pa.table({"top_tags": pa.array([[]] * 50, pa.list_(pa.string()))})
    tags = pa.table({"tag": names})
    monkeypatch.setattr(pipeline, "TOP_TAGS_BLOCK", 7)
    # (model None: no attribute poles, the label evidence alone)
    got = pipeline.with_top_tags(tracks, track_vectors, tags, tag_vectors, None).column("top_tags").to_pylist()
    expected = [[names[i] for i in row] for row in ranked(track_vectors @ tag_vectors.T, pipeline.TOP_TAGS_PER_TRACK)]
    assert got == expected
