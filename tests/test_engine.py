"""The engine as a user meets it: `mre index`, `mre query`, `mre tags`, `mre similar`, the Library API."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mre.embedder.models.factory import DEFAULT_MODEL


def test_index_summary_and_store_layout(store, music_library):
    current = (store / "CURRENT").read_text().strip()
    generation = store / "generations" / current
    for name in ("tracks.parquet", "audio.faiss", "tags.parquet", "tags.faiss", "meta.json"):
        assert (generation / name).exists(), name
    tracks = pq.read_table(generation / "tracks.parquet")
    assert tracks.num_rows == 8
    assert set(tracks.column_names) >= {"track_id", "path", "size", "mtime_ns", "duration", "sample_rate", "channels",
                                        "vector", "model_id", "top_tags"}
    assert all(6.9 <= d <= 7.1 for d in tracks.column("duration").to_pylist())
    meta = json.loads((generation / "meta.json").read_text())
    assert meta["model_id"].startswith(f"{DEFAULT_MODEL}@")
    assert meta["counts"]["tracks"] == 8
    skipped = pq.read_table(generation / "skipped.parquet").to_pylist()
    assert {Path(r["path"]).name for r in skipped} == {"empty.wav", "notes.mp3", "truncated.wav"}
    assert all(r["reason"] and "\n" not in r["reason"] for r in skipped)


def test_query_json_shape_and_k_larger_than_store(cli, store):
    result = cli("query", "dub reggae", "--store", store, "--json", "-k", "50")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 8  # -k beyond the store returns everything
    assert all({"path", "score"} <= set(h) for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_label_query_prefers_matching_tracks(cli, store):
    hits = json.loads(cli("query", "drums", "--store", store, "--json", "-k", "8").stdout)
    names = [Path(h["path"]).stem for h in hits]
    with_drums = [i for i, n in enumerate(names) if n.startswith(("band", "techno"))]
    assert sum(with_drums) < sum(i for i in range(8) if i not in with_drums)  # drum tracks rank higher on average


def test_unknown_word_is_named_and_rest_still_counts(cli, store):
    result = cli("query", "piano xqzzvk", "--store", store, "-k", "3")
    assert result.exit_code == 0
    assert 'ignored "xqzzvk"' in result.stderr
    assert len(result.stdout.strip().splitlines()) == 3


def test_errors_are_one_line(cli, store, tmp_path):
    for args in (["query", "   ", "--store", store], ["query", "piano", "--store", tmp_path / "nowhere"],
                 ["similar", "no-such-track", "--store", store], ["query", "xqzzvk qqqxxz", "--store", store]):
        result = cli(*args)
        assert result.exit_code != 0
        assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.output


def test_tags_for_store_tracks_and_outside_files(cli, store, music_library, tmp_path):
    inside = music_library / "piano_a.wav"
    outside = tmp_path / "outside.wav"
    shutil.copy(music_library / "band_a.flac", tmp_path / "outside.flac")
    result = cli("tags", inside, tmp_path / "outside.flac", "--store", store, "--json", "-k", "5")
    assert result.exit_code == 0, result.output
    objects = json.loads(result.stdout)
    assert [Path(o["path"]).name for o in objects] == ["piano_a.wav", "outside.flac"]
    for o in objects:
        assert len(o["tags"]) == 5
        assert all(set(t) == {"tag", "score"} for t in o["tags"])
        assert [t["score"] for t in o["tags"]] == sorted((t["score"] for t in o["tags"]), reverse=True)
    assert not outside.exists()


# A file outside the store and its copy inside can differ only by float32 rounding of the track
# vector (the taggers' outputs for its patches, batched with other tracks' when indexed, alone
# here). One rounding of a label log-odds (|x| <= logit(1 - 1e-6) = 13.8, the probability floor)
# is at most 13.8 * 2**-24 = 8.2e-7; a tag's log-odds is a weighted mean of them (weights sum to
# 1) plus the attribute term, computed from the same attributes standardised the same way; its
# sigmoid's slope is at most 1/4; and each printed score is rounded to 6 decimals (5e-7).
FLOAT32_SCORE_TOLERANCE = 0.25 * 13.8 * 2.0 ** -24 + 2 * 5e-7


def _scores(tag_result: dict) -> dict[str, float]:
    return {t["tag"]: t["score"] for t in tag_result["tags"]}


def test_a_file_outside_the_store_scores_as_its_copy_inside(cli, store, music_library, tmp_path):
    inside = music_library / "piano_a.wav"
    copy = tmp_path / "copy.wav"
    shutil.copy(inside, copy)
    vocab = tmp_path / "moods.txt"
    vocab.write_text("calm\nenergetic\nhappy\nsad\ngentle\npiano\n")
    for vocab_args in (["--vocab", vocab], []):  # the user's vocabulary, then the store's own
        result = cli("tags", inside, copy, "--store", store, "--json", "-k", "5000", *vocab_args)
        assert result.exit_code == 0, result.output
        store_track, outside = (_scores(o) for o in json.loads(result.stdout))
        assert set(outside) == set(store_track)
        if vocab_args:
            assert set(outside) == {"calm", "energetic", "happy", "sad", "gentle", "piano"}
        for tag, score in store_track.items():
            assert outside[tag] == pytest.approx(score, abs=FLOAT32_SCORE_TOLERANCE), tag


def test_tags_threshold_keeps_every_tag_that_reaches_it(cli, store, music_library):
    track = music_library / "band_a.flac"
    everything = _scores(json.loads(cli("tags", track, "--store", store, "--json", "-k", "5000").stdout)[0])
    threshold = sorted(everything.values(), reverse=True)[14]  # 15 tags or more reach it: more than -k's 10
    result = cli("tags", track, "--store", store, "--json", "--threshold", threshold)
    assert result.exit_code == 0, result.output
    tags = json.loads(result.stdout)[0]["tags"]
    assert [t["tag"] for t in tags] == [t for t, s in sorted(everything.items(), key=lambda i: -i[1]) if s >= threshold]
    assert len(tags) >= 15 and all(set(t) == {"tag", "score"} for t in tags)
    capped = json.loads(cli("tags", track, "--store", store, "--json", "--threshold", threshold, "-k", "3").stdout)
    assert capped[0]["tags"] == tags[:3]
    nothing = json.loads(cli("tags", track, "--store", store, "--json", "--threshold", "2").stdout)
    assert nothing[0]["tags"] == []


def test_a_datasets_tag_list_as_vocab_names_the_tags_without_word_vectors(cli, store, music_library, tmp_path):
    vocab = tmp_path / "dataset_tags.csv"
    vocab.write_text("tag,category\nhip hop,genre\nAcoustic Guitar,instrument\nxqzzvk,mood\nnew age,genre\n"
                     "qqqxxz blues,genre\n")
    for store_args in (["--store", store], ["--store", tmp_path / "no-store"]):  # with a store and without
        result = cli("tags", music_library / "band_a.flac", "--vocab", vocab, "--json", *store_args)
        assert result.exit_code == 0, result.output
        assert [t["tag"] for t in json.loads(result.stdout)[0]["tags"]] != []
        assert set(_scores(json.loads(result.stdout)[0])) == {"hip hop", "acoustic guitar", "new age"}
        assert result.stderr.strip() == \
            'skipped 2 tag(s) with words not in the word vectors: "xqzzvk", "qqqxxz blues"'
    (tmp_path / "unknown.txt").write_text("xqzzvk\n")
    result = cli("tags", music_library / "band_a.flac", "--vocab", tmp_path / "unknown.txt", "--store", store)
    assert result.exit_code != 0 and result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_tags_with_a_tagger_model_needs_no_store(cli, music_library, tmp_path):
    result = cli("tags", music_library / "band_a.flac", music_library / "piano_a.wav", "--model", "musicnn-mtt",
                 "-k", "3", "--json", "--store", tmp_path / "none")
    assert result.exit_code == 0, result.output
    objects = json.loads(result.stdout)
    assert len(objects) == 2 and all(len(o["tags"]) == 3 for o in objects)
    from mre.embedder.models.registry import get_model_spec

    labels = set(get_model_spec("musicnn-mtt").labels)
    assert all(t["tag"] in labels and 0.0 <= t["score"] <= 1.0 for o in objects for t in o["tags"])


def test_similar_excludes_itself_and_prefers_the_same_kind(cli, store, music_library):
    result = cli("similar", music_library / "techno_a.wav", "--store", store, "--json", "-k", "3")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    names = [Path(h["path"]).name for h in hits]
    assert "techno_a.wav" not in names
    assert names[0] == "techno_b.flac"


def test_python_api(store, music_library):
    from mre.retrieval import Library

    library = Library(store)
    assert len(library) == 8
    hits = library.query("piano", k=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score
    track_id = hits[0].track_id
    assert library.tags(track_id, k=4).tags[0]["tag"]
    assert library.similar(track_id, k=2)[0].track_id != track_id


def test_store_refuses_another_model(store):
    from mre.retrieval import Library
    from mre.retrieval.library import LibraryError

    with pytest.raises(LibraryError, match="made with model"):
        Library(store, model="musicnn-mtt")


def test_incremental_reindex(cli, music_library, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(music_library, library)
    store = tmp_path / "store"
    assert cli("index", library, "--store", store, "--workers", "0").exit_code == 0
    first = (store / "CURRENT").read_text()

    again = cli("index", library, "--store", store, "--workers", "0")
    assert again.exit_code == 0
    assert "indexed 0, unchanged 8, removed 0" in again.stdout
    assert (store / "CURRENT").read_text() == first  # nothing changed: no new generation

    (library / "piano_a.wav").unlink()
    shutil.copy(library / "band_a.flac", library / "band_copy.flac")
    os.utime(library / "nested" / "band_b.wav", ns=(1, 1))  # "changed": mtime differs
    changed = cli("index", library, "--store", store, "--workers", "0")
    assert "indexed 2, unchanged 6, removed 1" in changed.stdout, changed.stdout
    from mre.retrieval import Library

    paths = {Path(h.path).name for h in Library(store).query("music", k=100)}
    assert "piano_a.wav" not in paths and "band_copy.flac" in paths and len(paths) == 8


def test_interrupted_run_keeps_live_generation_and_resumes(music_library, tmp_path, monkeypatch):
    from mre.indexer import pipeline
    from mre.indexer.store import Store

    library = tmp_path / "lib"
    shutil.copytree(music_library, library)
    store = Store(tmp_path / "store")
    (library / "extra").mkdir()
    pipeline.index_library(library / "nested", store, workers=0)
    live_before = store.live().meta["generation"]

    calls = {"n": 0}

    def interrupt_after_three(done, total, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "FLUSH_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        pipeline.index_library(library, store, workers=0, progress=interrupt_after_three)
    assert store.live().meta["generation"] == live_before  # readers still see the old, whole index

    summary = pipeline.index_library(library, store, workers=0)
    assert summary.resumed >= 2  # finished tracks were not embedded again
    assert summary.total == 8


def test_library_is_never_written_to(store, music_library):
    before = {p: p.stat().st_mtime_ns for p in music_library.rglob("*")}
    from mre.retrieval import Library

    Library(store).query("guitar")
    assert {p: p.stat().st_mtime_ns for p in music_library.rglob("*")} == before


def test_indexing_one_folder_keeps_the_skips_recorded_under_another(cli, tmp_path):
    import numpy as np
    import soundfile as sf

    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * 16000) / 16000)).astype(np.float32)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "tone.wav", tone, 16000)
        (tmp_path / folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    store = tmp_path / "store"
    for folder in ("a", "b", "a"):
        result = cli("index", tmp_path / folder, "--store", store, "--workers", "0")
        assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output  # a again, unchanged: no new generation
    generation = store / "generations" / (store / "CURRENT").read_text().strip()
    skipped = pq.read_table(generation / "skipped.parquet").to_pylist()
    assert sorted(Path(r["path"]).parent.name for r in skipped) == ["a", "b"]
