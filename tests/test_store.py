"""The store: generations committed whole, switched atomically, resumable staging."""

import json
import os

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
    assert generation.meta["audio_index"]["spec"] == "IVF4,Flat"
    assert generation.meta["audio_index"]["search_params"] == {"nprobe": 4}
    assert generation.audio_index().nprobe == 4
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
