"""Musical attributes in the store, `mre info`, and the search filters."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mre.retrieval.filters import FilterError, compatible_keys, parse_bpm, parse_key


def _tracks(store):
    current = (store / "CURRENT").read_text().strip()
    return pq.read_table(store / "generations" / current / "tracks.parquet").to_pylist()


def test_attribute_columns_are_filled(store):
    rows = _tracks(store)
    for row in rows:
        assert row["bpm"] is not None and row["loudness_db"] is not None and row["brightness"] > 0
        assert row["mode"] in ("major", "minor") and row["key"] in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    # the loud rock/techno clips are louder than the quiet piano ones
    loud = [r["loudness_db"] for r in rows if Path(r["path"]).stem.startswith(("band", "techno"))]
    quiet = [r["loudness_db"] for r in rows if Path(r["path"]).stem.startswith("piano")]
    assert min(loud) > max(quiet)


def test_info_json(cli, store, music_library, tmp_path):
    outside = tmp_path / "outside.wav"
    outside.write_bytes((music_library / "piano_a.wav").read_bytes())
    result = cli("info", music_library / "techno_a.wav", outside, "--store", store, "--json")
    assert result.exit_code == 0, result.output
    cards = json.loads(result.stdout)
    assert [Path(c["path"]).name for c in cards] == ["techno_a.wav", "outside.wav"]
    for card in cards:
        assert isinstance(card["bpm"], float) and card["mode"] in ("major", "minor") and "b" not in card["key"]
        assert card["duration"] == pytest.approx(7.0, abs=0.05)
    text = cli("info", music_library / "techno_a.wav", "--store", store)
    assert "BPM" in text.stdout and "LUFS" in text.stdout


def test_a_file_has_the_same_tags_in_the_store_and_as_an_outside_path(cli, store, music_library, tmp_path):
    """`mre tags` and `mre info` score a file outside the store exactly as its copy in the store:
    the same tags, in the same order, attribute term included (tags like "calm" weigh the
    track's attributes, standardised against the store either way)."""
    outside = tmp_path / "copy of techno_a.wav"
    outside.write_bytes((music_library / "techno_a.wav").read_bytes())
    [inside_tags] = json.loads(cli("tags", music_library / "techno_a.wav", "--store", store, "-k", "12",
                                   "--json").stdout)
    [outside_tags] = json.loads(cli("tags", outside, "--store", store, "-k", "12", "--json").stdout)
    # the corpus model's trained head runs on the patches of one file here and on batches mixing
    # several files when indexing: float32 products of another shape round differently. Bound:
    # each of its three products (200+200 → 256 → 100, then the word's inner product) is off by
    # at most n·u of its standardised, order-one terms; the scale multiplies that, the sigmoid's
    # slope (≤ 1/4) carries it to the shown score, rounded to 6 places on both sides.
    from mre.embedder.models.factory import load_model

    model = load_model()                     # the default, which indexed the store
    head = getattr(model, "_arrays", {})
    products = sum(head[k].shape[1] for k in ("head_weight_1", "head_weight_2") if k in head) + \
        (model.trained_dim if head else 0)
    bound = 0.25 * getattr(model, "scale", 0.0) * products * 2.0 ** -24 + 1e-6
    inside = {e["tag"]: e["score"] for e in inside_tags["tags"]}
    ranked_inside = [e["score"] for e in inside_tags["tags"]]

    def same_order(tags, ranks):
        # rank by rank the same tag, or one whose in-store score ties with it within the bound
        # (two tags that close may swap places on another CPU); the 12 listed cover the 10 ranks
        return all(tag in inside and abs(inside[tag] - ranked_inside[rank]) <= 2 * bound
                   for rank, tag in zip(range(ranks), tags))

    assert same_order([e["tag"] for e in outside_tags["tags"]], 10)
    assert [e["score"] for e in outside_tags["tags"]] == pytest.approx(ranked_inside, abs=bound)
    inside_card, outside_card = json.loads(cli("info", music_library / "techno_a.wav", outside, "--store", store,
                                               "--json").stdout)
    assert len(outside_card["top_tags"]) == len(inside_card["top_tags"]) == 5
    assert same_order(outside_card["top_tags"], 5) and same_order(inside_card["top_tags"], 5)


def test_info_needs_no_store_for_files(cli, store, music_library, tmp_path):
    # a DJ checking one file: tempo, key and mode without indexing anything first
    no_store = tmp_path / "no-store"
    track = music_library / "techno_a.wav"
    result = cli("info", track, "--store", no_store, "--json")
    assert result.exit_code == 0, result.output
    [card] = json.loads(result.stdout)
    assert card["path"] == str(track) and card["track_id"] is None and card["top_tags"]
    # the same measurements as the store's card for the same file: attributes need no store
    [stored] = json.loads(cli("info", track, "--store", store, "--json").stdout)
    for name in ("bpm", "key", "mode", "duration"):
        assert card[name] == stored[name], name
    assert not no_store.exists()  # nothing was written
    text = cli("info", track, "--store", no_store)
    assert "BPM" in text.stdout and "tags" in text.stdout
    missing = cli("info", "3f2a0000", "--store", no_store)
    assert missing.exit_code == 1 and "no store" in missing.stderr


def test_bpm_filter_returns_exactly_the_tracks_in_range(cli, store):
    rows = _tracks(store)
    bpms = sorted(r["bpm"] for r in rows)
    low, high = bpms[2], bpms[5]
    expected = {r["path"] for r in rows if low <= r["bpm"] <= high}
    result = cli("query", "music", "--store", store, "--json", "-k", "100", "--bpm", f"{low}-{high}")
    assert result.exit_code == 0, result.output
    assert {h["path"] for h in json.loads(result.stdout)} == expected


def test_key_and_mode_filters(cli, store):
    rows = _tracks(store)
    key, mode = rows[0]["key"], rows[0]["mode"]
    expected = {r["path"] for r in rows if r["key"] == key and r["mode"] == mode}
    hits = json.loads(cli("query", "piano", "--store", store, "--json", "-k", "100", "--key", f"{key} {mode}").stdout)
    assert {h["path"] for h in hits} == expected
    minor = json.loads(cli("query", "piano", "--store", store, "--json", "-k", "100", "--mode", "minor").stdout)
    assert {h["path"] for h in minor} == {r["path"] for r in rows if r["mode"] == "minor"}
    short = json.loads(cli("query", "piano", "--store", store, "--json", "--max-duration", "3").stdout)
    assert short == []


def test_similar_compatible_keys(cli, store, music_library):
    rows = _tracks(store)
    target = next(r for r in rows if r["path"].endswith("techno_a.wav"))
    allowed = compatible_keys(target["key"], target["mode"])
    result = cli("similar", target["path"], "--store", store, "--json", "-k", "100", "--compatible")
    assert result.exit_code == 0, result.output
    found = {h["path"] for h in json.loads(result.stdout)}
    assert found == {r["path"] for r in rows if (r["key"], r["mode"]) in allowed and r["path"] != target["path"]}


def test_filter_parsing():
    assert parse_bpm("120-128") == (120.0, 128.0) and parse_bpm("124") == (124.0, 124.0)
    assert parse_key("A minor") == ("A", "minor") and parse_key("Bbm") == ("A#", "minor")
    assert parse_key("F#") == ("F#", None) and parse_key("eb major") == ("D#", "major")
    assert compatible_keys("A", "minor") == {("A", "minor"), ("C", "major"), ("D", "minor"), ("E", "minor")}
    for bad in ("fast", "128-120"):
        with pytest.raises(FilterError):
            parse_bpm(bad)
    with pytest.raises(FilterError):
        parse_key("H minor")


def test_bad_filter_is_one_line(cli, store):
    result = cli("query", "piano", "--store", store, "--bpm", "fast")
    assert result.exit_code != 0 and result.stderr.startswith("Error: --bpm")
    reversed_lengths = cli("query", "piano", "--store", store, "--min-duration", "100", "--max-duration", "10")
    assert reversed_lengths.exit_code != 0 and reversed_lengths.stderr.startswith("Error: --min-duration 100 is above")


def test_mood_word_uses_the_attributes_in_a_store(store):
    from mre.retrieval import Library

    library = Library(store)
    result = library.search("calm", k=8)
    assert len(result.hits) == 8
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    quiet_first = [Path(h.path).stem.split("_")[0] for h in result.hits[:2]]
    assert set(quiet_first) <= {"piano", "strings"}  # the slow, quiet clips, not the loud band/techno ones


def _query_score(library, text, path):
    """The score `mre query` gives one track for `text` (every track ranked)."""
    return next(h.score for h in library.search(text, k=len(library)).hits if h.path == path)


def test_tags_weigh_attributes_exactly_as_a_query_does(store, music_library, tmp_path):
    from mre.retrieval import Library

    library = Library(store)
    piano = str((music_library / "piano_a.wav").resolve())
    assert library.model.attribute_weights("calm")  # a mood tag that relates to attribute poles
    assert library.model.attribute_weights("slow") == {}  # a label: scored exactly as the tagger's
    tags = {t["tag"]: t["score"] for t in library.tags(piano, k=5000).tags}
    for word in ("calm", "energetic", "relaxing", "slow", "piano"):
        assert tags[word] == pytest.approx(_query_score(library, word, piano), abs=1e-5), word
    # the quiet, slow piano clip is calmer than the loud techno clip, and less energetic
    techno = {t["tag"]: t["score"] for t in library.tags(str(music_library / "techno_a.wav"), k=5000).tags}
    assert tags["calm"] > techno["calm"] and tags["energetic"] < techno["energetic"]
    # a copy outside the store is standardised against the store: the same tag scores
    outside = tmp_path / "copy.wav"
    outside.write_bytes((music_library / "piano_a.wav").read_bytes())
    copied = {t["tag"]: t["score"] for t in library.tags(str(outside), k=5000).tags}
    for word in ("calm", "energetic", "gentle"):
        assert copied[word] == pytest.approx(tags[word], abs=1e-4), word


def test_attribute_scores_count_pole_weights_in_label_spreads():
    import numpy as np

    from mre.embedder.models.scoring import attribute_scores, standardised

    label = np.array([0.0, 2.0, 4.0])  # spread 1.633
    z = standardised([60.0, 90.0, 0.0], "bpm")  # bpm 0 is no pulse: the mean, z 0
    assert list(z) == [-1.0, 1.0, 0.0]
    scores = attribute_scores(label, label.std(), np.array([0.5]), z[:, None])
    np.testing.assert_allclose(scores, label + label.std() * 0.5 * z)
    # one track against several tags: weights [tags, columns], z [columns]
    per_tag = attribute_scores(np.array([1.0, 1.0]), np.array([2.0, 1.0]), np.array([[1.0, 0.0], [0.0, -1.0]]),
                               np.array([0.5, 2.0]))
    np.testing.assert_allclose(per_tag, [2.0, -1.0])
    assert list(standardised([1.0, None], "loudness_db")) == [0.0, 0.0]  # one known value: no spread, no evidence


def test_a_whitened_inverted_file_answers_queries_as_exact_search_does(cli, store, music_library, tmp_path):
    # the chooser's large-store index, asked for on a small store: its lists hold A x and the
    # query goes in as (AᵀA)⁻¹ q, so with every list probed `mre query` gives the exact answer
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    spec = "Whiten0.5,IVF2,Flat"
    indexed = cli("index", music_library, "--store", copy, "--index-spec", spec)
    assert indexed.exit_code == 0
    # two lists want 78 tracks to train on: said in one line of ours (FAISS's own warning silenced)
    assert "note: index spec 'Whiten0.5,IVF2,Flat' trained its 2 inverted lists" in indexed.output
    for words, *extra in (("piano",), ("techno",), ("calm piano",), ("guitar", "--bpm", "60-200")):
        exact = json.loads(cli("query", words, "--store", store, "-k", "5", "--json", *extra).stdout)
        through = json.loads(cli("query", words, "--store", copy, "-k", "5", "--json", *extra).stdout)
        assert [h["path"] for h in through] == [h["path"] for h in exact] and exact, words
        # shown scores are rounded to 6 places; the transform's float32 rounding (bounded from
        # A's condition number in test_index_spec) moves them by about one of those steps here
        assert [h["score"] for h in through] == pytest.approx([h["score"] for h in exact], abs=1e-5)


def test_a_query_reads_no_vector_column(store):
    # a big store's vector column is most of its table and slow to decode: a query without a
    # filter reads the tracks' other columns only
    from mre.retrieval.library import Library

    library = Library(store)
    query = library.model.query_vector("rock")
    assert not query.attribute_weights
    assert library.query("rock", k=3)
    assert not {"tracks", "track_vectors"} & set(library.generation._cache)
    # an attribute word scores every track, against the index's exact copy: still no vector column
    assert library.model.query_vector("calm").attribute_weights and library.query("calm", k=3)
    assert not {"tracks", "track_vectors"} & set(library.generation._cache)


def _whitened_store(store, folder):
    """3,000 tracks drawn from `store`'s with noise on vectors and attributes, indexed as a big
    store is (whitened inverted file with an exact copy); (its folder, κ_u of its whitening:
    a float32 vector through it and back is off by at most κ_u times its length)."""
    import faiss
    import numpy as np
    import pyarrow as pa

    from mre.indexer.store import Store

    with Store(store).open_live() as generation:
        tracks, tags, tag_vectors = generation.track_rows(), generation.tags(), generation.tag_vectors()
        vectors, skipped, meta = generation.track_vectors(), generation.skipped(), dict(generation.meta)
    rng = np.random.default_rng(11)
    rows = rng.integers(0, tracks.num_rows, 3000)
    big = tracks.take(pa.array(rows))
    for name in ("loudness_db", "bpm", "onset_density", "percussiveness", "brightness", "dynamic_range_db"):
        values = np.asarray([np.nan if v is None else v for v in big.column(name).to_pylist()], dtype=np.float64)
        values = values + rng.normal(0, 0.3 * (np.nanstd(values) or 1.0), len(values))
        big = big.set_column(big.column_names.index(name), name, pa.array(values, pa.float64()))
    big = big.set_column(big.column_names.index("path"), "path", pa.array([f"/big/{i:05d}.wav" for i in range(3000)]))
    big = big.set_column(big.column_names.index("track_id"), "track_id", pa.array([f"t{i:05d}" for i in range(3000)]))
    noise = rng.normal(0, 1, (3000, vectors.shape[1])).astype(np.float32) * (0.3 * vectors.std(axis=0) + 1e-3)
    with Store(folder).commit(big, vectors[rows] + noise, tags, tag_vectors, skipped, meta,
                              index_spec=f"Whiten0.5,IVF8,PQ{vectors.shape[1]}x4fs,RFlat") as generation:
        index = generation.audio_index()
        transform = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
        a = faiss.vector_to_array(transform.A).reshape(transform.d_out, transform.d_in).astype(np.float64)
    return folder, 4 * a.shape[0] * 2.0 ** -24 * np.linalg.norm(a) * np.linalg.norm(np.linalg.inv(a))


def test_attribute_queries_score_the_index_copy_as_they_would_the_stored_vectors(store, tmp_path):
    # a query with attribute weights scores every track: against the index's exact copy of the
    # vectors while the store's vector column is unread (a big store's slowest read), and the
    # same tracks, in the same order, as against the stored vectors
    import numpy as np

    from mre.retrieval.library import Library

    big, kappa_u = _whitened_store(store, tmp_path / "big")
    words = ["calm", "calm piano", "trumpet", "dub reggae", "energetic", "quiet", "loud", "slow", "fast", "upbeat"]
    in_place = Library(big)
    from_vectors = Library(big)
    from_vectors.track_vectors  # noqa: B018  (read: scoring then uses them)
    stored = from_vectors.track_vectors.astype(np.float64)
    for word in words:
        query = in_place.model.query_vector(word)
        fast, slow = in_place.search(word, k=10).hits, from_vectors.search(word, k=10).hits
        # a label score is off by at most kappa_u·|q|·|x| (as in test_whitened_lists...); the
        # spread, a standard deviation of such scores, by as much; the shown score by a quarter
        # of the total's error (the sigmoid's slope), plus the 6-place rounding on both sides
        err = kappa_u * float(np.linalg.norm(query.vector)) * float(np.linalg.norm(stored, axis=1).max())
        reach = sum(abs(w) * np.abs(in_place.attribute_z(c)).max() for c, w in (query.attribute_weights or {}).items())
        bound = 0.25 * err * (1 + reach) + 1e-6
        assert [h.score for h in fast] == pytest.approx([h.score for h in slow], abs=bound), word
        # rank by rank the same track, or one whose score ties with it within the bound
        assert all(f.track_id == s.track_id or abs(f.score - s.score) <= 2 * bound for f, s in zip(fast, slow)), word
    assert "track_vectors" not in in_place.generation._cache


def test_a_stored_tracks_tags_neighbours_and_filtered_queries_read_no_vector_column(store, tmp_path):
    # `mre tags`/`info`/`similar` of a stored track and a filtered query take the vectors they
    # need from the index's exact copy (a whitened copy back through A⁻¹) while the store's
    # vector column is unread; the same tracks and tags, in the same order, within the error
    # that float32 rounding through the whitening allows
    import faiss
    import numpy as np

    from float_bounds import round_trip_error

    from mre.retrieval.filters import Filters
    from mre.retrieval.library import Library

    big, kappa_u = _whitened_store(store, tmp_path / "big")
    in_place, from_vectors = Library(big), Library(big)
    stored = from_vectors.track_vectors
    transform = faiss.downcast_VectorTransform(faiss.downcast_index(in_place.generation.audio_index()).chain.at(0))
    a = faiss.vector_to_array(transform.A).reshape(transform.d_out, transform.d_in).astype(np.float64)
    error = round_trip_error(a, stored)  # [n, d]
    d, n = stored.shape[1], len(stored)
    gamma = d * 2.0 ** -24 / (1 - d * 2.0 ** -24)
    # the mean: the rows' errors averaged, and each side's float32 summation (≤ log2(n)·2⁻²⁴ per term)
    mean_error = error.mean(axis=0) + 2 * np.ceil(np.log2(n)) * 2.0 ** -24 * np.abs(stored).mean(axis=0)
    centred = stored.astype(np.float64) - stored.mean(axis=0, dtype=np.float64)

    def same(fast, slow, bound, key):
        assert [f.score for f in fast] == pytest.approx([s.score for s in slow], abs=bound)
        assert all(key(f) == key(s) or abs(f.score - s.score) <= 2 * bound for f, s in zip(fast, slow))

    tags = np.abs(in_place.tag_space().matrix.astype(np.float64))
    for row in (7, 1234, 2999):
        target = f"t{row:05d}"
        # a tag's score: its row times the vector (each side rounds its product: 2γ|t||x|), shown
        # through a sigmoid (slope ≤ 1/4) and rounded to 6 places
        fast, slow = in_place.tags(target, k=20), from_vectors.tags(target, k=20)
        bound = 0.25 * float((tags @ (error[row] + 2 * gamma * np.abs(stored[row]))).max()) + 1e-6
        assert bound < 0.01 and len(fast.tags) == 20  # (~1e-3 here)
        assert [t["score"] for t in fast.tags] == pytest.approx([t["score"] for t in slow.tags], abs=bound)
        # a neighbour's cosine of vectors centred on the mean: a unit vector moves by at most
        # 2·|error|/|vector|, for both vectors of the cosine
        hits = from_vectors.similar(target, k=10)
        rows = [int(h.track_id[1:]) for h in hits] + [int(h.track_id[1:]) for h in in_place.similar(target, k=10)]
        moved = [2 * float(np.linalg.norm(error[r] + mean_error)) / float(np.linalg.norm(centred[r])) for r in rows + [row]]
        bound = 2 * max(moved) + 1e-6  # ~0.01 here: worst cases, where the differences seen are ~1e-6
        same(in_place.similar(target, k=10), hits, bound, lambda h: h.track_id)
    fast_filter = Filters.from_options(bpm="90-140")
    bound = 0.25 * kappa_u * float(np.linalg.norm(in_place.model.query_vector("rock").vector)) * \
        float(np.linalg.norm(stored, axis=1).max()) + 1e-6
    same(in_place.search("rock", k=10, filters=fast_filter).hits,
         from_vectors.search("rock", k=10, filters=fast_filter).hits, bound, lambda h: h.track_id)
    assert not {"tracks", "track_vectors"} & set(in_place.generation._cache)


def test_tracks_are_found_by_id_and_path_whether_scanned_or_looked_up(store):
    # the first lookups of a process scan the id and path lists, later ones build dicts: both
    # give every track's own row, and nothing for an id or path the store does not hold
    from mre.retrieval.library import LOOKUPS_BEFORE_DICT, Library, UnknownTargetError

    library = Library(store)
    ids, paths = list(library._ids), list(library._paths)
    expected = [(row, path) for row, path in enumerate(paths)]
    for _ in range(LOOKUPS_BEFORE_DICT // len(ids) + 2):
        assert [library.resolve(path) for path in paths] == expected  # first by scans (an id, then a path)
        assert [library.resolve(track_id) for track_id in ids] == expected
    assert set(library._rows_by) == {"id", "path"}  # past the scans: dicts
    assert library._row_of("id", "0000000000000000") is None and library._row_of("path", "/nowhere.wav") is None
    with pytest.raises(UnknownTargetError):
        library.resolve("/nowhere/at/all.wav")


def test_a_hits_top_tags_are_what_mre_tags_says_first(store):
    # a search hit lists the track's top tags, ranked at index time as `mre tags` ranks them:
    # label evidence plus, for a tag related to attribute poles ("calm"), its weights on the
    # track's attributes standardised over the store
    import numpy as np

    from mre.embedder.models.scoring import tag_attribute_weights
    from mre.retrieval.library import Library

    library = Library(store)
    matrix = library.tag_space().matrix
    columns, weights = tag_attribute_weights(library.model, library.tag_space().names)
    assert columns and np.abs(weights).sum(axis=1).astype(bool).sum() > 10  # the attribute term is in play
    gamma = matrix.shape[1] * 2.0 ** -24
    moved_by_attributes = 0
    for row, track_id in enumerate(library._ids):
        stored = library._tracks.column("top_tags")[row].as_py()
        said = library.tags(track_id, k=None).tags
        vector = library.track_vectors[row]
        # one float32 product (a block's against one vector's) may round each score differently:
        # by γ|t||x| each, on the sigmoid's scale (slope ≤ 1/4), plus the 6-place rounding
        bound = 0.25 * 2 * gamma * float((np.abs(matrix) @ np.abs(vector)).max()) + 1e-6
        score = {t["tag"]: t["score"] for t in said}
        assert [score[tag] for tag in stored] == pytest.approx([t["score"] for t in said[:len(stored)]], abs=bound)
        raw = [library.tag_space().names[i] for i in np.argsort(-(matrix @ vector), kind="stable")[:len(stored)]]
        moved_by_attributes += raw != stored
    assert moved_by_attributes  # some track's top tags are not its label evidence's alone
