"""Word side information: loading word vectors, phrases, spellings, negation, tag vocabulary."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import platformdirs
import pytest
from gensim.models import KeyedVectors

from mre.embedder.words import vectors as word_vectors
from mre.embedder.words.vocabulary import TagVocabularyError
from mre.embedder.words.space import (
    QueryError,
    QueryTerm,
    WordSpace,
    WordVectorError,
    default_cache_dir,
    format_ignored,
    load_tag_vocabulary,
    load_word_vectors,
    parse_query,
    word_vectors_id,
)


@pytest.fixture(scope="module", autouse=True)
def word_vector_cache(tmp_path_factory):
    """Every test here caches into its own temporary directory, never the user's cache; the
    module scope (not session) hands the previous setting back to the other test modules."""
    cache = tmp_path_factory.mktemp("mre-cache")
    previous = os.environ.get("MRE_CACHE_DIR")
    os.environ["MRE_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        del os.environ["MRE_CACHE_DIR"]
    else:
        os.environ["MRE_CACHE_DIR"] = previous


@pytest.fixture(scope="module")
def glove(word_vector_cache) -> WordSpace:
    return WordSpace.load()


# ------------------------------------------------------------------------- loading

def test_default_vectors_are_converted_once_then_memory_mapped(word_vector_cache):
    load_word_vectors()  # converts (or reuses the entry another test made)
    entries = [entry for entry in word_vector_cache.iterdir() if entry.name.startswith("glove-6b-50d-")]
    assert len(entries) == 1 and (entries[0] / "vectors.npy").exists()

    keyed_vectors = load_word_vectors()
    assert isinstance(keyed_vectors.vectors, np.memmap)  # memory-mapped: no parse, no copy
    assert len(keyed_vectors) == 400_000 and keyed_vectors.vector_size == 50
    assert keyed_vectors.similarity("reggae", "dancehall") > keyed_vectors.similarity("reggae", "spreadsheet")
    assert word_vectors_id() == "glove-6b-50d"


def test_default_cache_location_follows_environment(monkeypatch):
    monkeypatch.delenv("MRE_CACHE_DIR", raising=False)
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("mre"))
    monkeypatch.setenv("MRE_CACHE_DIR", "/somewhere/else")
    assert default_cache_dir() == Path("/somewhere/else")


TINY_WORDS = ["reggae", "dub", "bass", "hip-hop", "café"]
TINY_VECTORS = np.array(
    [[1.0, 0.0, 0.0, 0.5], [0.9, 0.1, 0.0, -0.5], [0.0, 1.0, 0.0, 0.25], [0.0, 0.0, 1.0, 2.0], [0.5, 0.5, 0.5, 0.5]],
    dtype=np.float32,
)


def tiny_keyed_vectors() -> KeyedVectors:
    keyed_vectors = KeyedVectors(vector_size=4)
    keyed_vectors.add_vectors(TINY_WORDS, TINY_VECTORS)
    return keyed_vectors


def write_tiny(directory: Path, file_format: str) -> Path:
    keyed_vectors = tiny_keyed_vectors()
    if file_format == "glove-text":
        path = directory / "tiny-glove.txt"
        lines = [" ".join([word, *(f"{value:g}" for value in row)]) for word, row in zip(TINY_WORDS, TINY_VECTORS)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif file_format == "word2vec-text":
        path = directory / "tiny.vec"
        keyed_vectors.save_word2vec_format(str(path), binary=False)
    elif file_format == "word2vec-text-gz":
        path = directory / "tiny.vec.gz"
        keyed_vectors.save_word2vec_format(str(directory / "plain.vec"), binary=False)
        path.write_bytes(gzip.compress((directory / "plain.vec").read_bytes()))
    elif file_format == "word2vec-binary":
        path = directory / "tiny.txt"  # a misleading extension: the content decides
        keyed_vectors.save_word2vec_format(str(path), binary=True)
    else:
        path = directory / "tiny.kv"
        keyed_vectors.save(str(path))
    return path


@pytest.mark.parametrize("file_format", ["glove-text", "word2vec-text", "word2vec-text-gz", "word2vec-binary", "native"])
def test_user_files_of_each_format_load_with_their_vectors(tmp_path, file_format):
    path = write_tiny(tmp_path, file_format)
    keyed_vectors = load_word_vectors(path)
    assert list(keyed_vectors.index_to_key) == TINY_WORDS
    np.testing.assert_allclose(keyed_vectors.vectors, TINY_VECTORS, rtol=1e-6)
    assert word_vectors_id(path) == f"file:{path.name}:{path.stat().st_size}:4"


def test_text_files_are_cached_native_and_refreshed_when_changed(tmp_path, word_vector_cache):
    path = write_tiny(tmp_path, "glove-text")
    load_word_vectors(path)
    second = load_word_vectors(path)
    assert isinstance(second.vectors, np.memmap)  # served from the cache entry

    path.write_text(path.read_text() + "trance 0 0 0 1\n", encoding="utf-8")
    changed = load_word_vectors(path)
    assert "trance" in changed.key_to_index
    source_entries = [entry for entry in word_vector_cache.iterdir() if entry.name.startswith("file-")
                      and "trance" in word_vectors._load_cache_entry(entry)]
    assert len(source_entries) == 1  # the stale entry of the old version is gone


def test_a_finished_cache_entry_survives_a_racing_writer(tmp_path):
    entry = tmp_path / "entry"
    word_vectors._write_cache_entry(entry, tiny_keyed_vectors())
    word_vectors._write_cache_entry(entry, tiny_keyed_vectors())  # the loser of a race
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]  # no staging left behind
    assert list(word_vectors._load_cache_entry(entry).index_to_key) == TINY_WORDS


def test_cached_keys_are_found_by_hash_even_when_hashes_collide(tmp_path, monkeypatch):
    entry = tmp_path / "entry"
    monkeypatch.setattr(word_vectors, "_key_hash", lambda key: 7 if key in ("dub", "bass", "café") else len(key))
    word_vectors._write_cache_entry(entry, tiny_keyed_vectors())
    opened = word_vectors._load_cache_entry(entry)
    assert not isinstance(opened.key_to_index, dict)  # the memory-mapped index, not a dict built on load
    assert {key: opened.key_to_index[key] for key in TINY_WORDS} == {key: row for row, key in enumerate(TINY_WORDS)}
    assert "reggae" in opened and "trance" not in opened and opened.key_to_index.get("hiphop") is None
    np.testing.assert_array_equal(opened["café"], TINY_VECTORS[4])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\x01\x02 binary junk \xff\xfe" * 10, "not a word-vector file"),
        (b"The quick brown fox.\nJumps over the lazy dog.\n", "not a word-vector file"),
        ((793712314).to_bytes(4, "little") + b"\x00" * 64, "fastText binary"),
        (b"3 4\nreggae 1 0 0 0\ndub 0 1\n", "cannot read"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "vectors.txt"
    path.write_bytes(content)
    with pytest.raises(WordVectorError, match=message) as caught:
        load_word_vectors(path)
    assert "\n" not in str(caught.value)


def test_missing_path_and_directory_raise(tmp_path):
    with pytest.raises(WordVectorError, match="not found"):
        load_word_vectors(tmp_path / "nope.txt")
    with pytest.raises(WordVectorError, match="not a file"):
        load_word_vectors(tmp_path)


# ------------------------------------------------------------------------- phrases

def test_phrase_vector_is_the_normalised_mean_of_unit_word_vectors():
    keyed_vectors = KeyedVectors(vector_size=2)
    keyed_vectors.add_vectors(["loud", "fast"], np.array([[30.0, 0.0], [0.0, 0.1]], dtype=np.float32))
    phrase = WordSpace(keyed_vectors).phrase_vector("Loud, FAST")
    assert phrase.tokens_used == ["loud", "fast"]
    np.testing.assert_allclose(phrase.vector, [2 ** -0.5, 2 ** -0.5], rtol=1e-6)


def test_joined_variants_resolve_to_one_token(glove):
    assert glove.tokens("hip hop") == glove.tokens("hip-hop") == glove.tokens("hiphop") == ["hip-hop"]
    vectors = [glove.phrase_vector(text).vector for text in ("Hip Hop", "hip-hop", "hiphop")]
    np.testing.assert_allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(vectors[0], vectors[2])
    # A rare compound keeps its parts beside it; the three spellings still agree.
    assert glove.tokens("trip hop") == glove.tokens("trip-hop") == glove.tokens("triphop")
    assert glove.tokens("trip hop")[0] == "trip-hop"


def test_hyphenated_words_missing_from_the_vectors_fall_back_to_their_parts(glove):
    assert glove.tokens("drum-and-bass") == ["drum", "and", "bass"]
    phrase = glove.phrase_vector("piano-xqzvv")
    assert phrase.tokens_used == ["piano"] and phrase.ignored == ["xqzvv"]


def test_unknown_word_is_ignored_with_suggestions_and_the_rest_counts(glove):
    phrase = glove.phrase_vector("dubstepp reggae")
    assert phrase.ignored == ["dubstepp"]
    assert phrase.suggestions["dubstepp"][0] == "dubstep"
    np.testing.assert_allclose(phrase.vector, glove.phrase_vector("reggae").vector)
    line = format_ignored(phrase)
    assert line.startswith('ignored "dubstepp" (not in the word vectors; did you mean: dubstep')
    assert "\n" not in line
    assert format_ignored(glove.phrase_vector("reggae")) == ""


def test_an_unknown_word_written_as_one_is_read_as_the_words_it_is_made_of(glove):
    # "synthwave", "electroswing": genre names the word vectors lack, made of two frequent words
    for word, parts in (("synthwave", ("synth", "wave")), ("electroswing", ("electro", "swing")),
                        ("chillhop", ("chill", "hop"))):
        assert not glove.has(word)
        phrase = glove.phrase_vector(f"{word} piano")
        assert phrase.split == {word: parts} and phrase.ignored == [] and phrase.tokens_used == [*parts, "piano"]
        # one word of the phrase, its parts equally: "synthwave piano" weighs piano as much as synthwave
        both = glove.phrase_vector(" ".join(parts)).vector + glove.unit_vector("piano")
        np.testing.assert_allclose(phrase.vector, both / np.linalg.norm(both), atol=1e-6)
        assert glove.splits(f"calm {word}") == {word: parts} and glove.tokens(word) == list(parts)
    # a typo of a known word keeps its suggestion; rare fragments make no split
    assert glove.phrase_vector("dubstepp").split == {} and glove.phrase_vector("dubstepp").ignored == ["dubstepp"]
    assert glove.phrase_vector("xqzvvblorp").split == {}


def test_a_query_says_how_it_read_a_word_written_as_one():
    from mre.embedder.models.factory import load_model

    query = load_model("mre-zs-musicnn").query_vector("synthwave")
    assert 'read "synthwave" as "synth wave" (not in the word vectors as one word)' in query.messages
    assert "synth" in query.matched_labels


def test_all_unknown_gives_no_vector(glove):
    phrase = glove.phrase_vector("xqzvv blorptk")
    assert phrase.vector is None and phrase.ignored == ["xqzvv", "blorptk"]
    with pytest.raises(WordVectorError, match="xqzvv blorptk"):
        glove.phrase_matrix(["reggae", "xqzvv blorptk"])


def test_stop_words_are_dropped_but_music_picks_the_musical_sense_of_one_word(glove):
    np.testing.assert_allclose(glove.phrase_vector("the sad piano music").vector, glove.phrase_vector("sad piano").vector)
    assert glove.phrase_vector("some elevator music").tokens_used == ["elevator", "music"]
    assert "music" in glove.phrase_vector("house music").tokens_used
    house_music = glove.phrase_vector("house music").vector
    assert house_music @ glove.unit_vector("techno") > glove.unit_vector("house") @ glove.unit_vector("techno")
    assert glove.phrase_vector("music").tokens_used == ["music"]


def test_phrase_matrix_rows_are_unit_vectors(glove):
    matrix = glove.phrase_matrix(["dub reggae", "male vocals", "80s synth-pop"])
    assert matrix.shape == (3, 50) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)


def test_nearest_spellings_are_right(glove):
    glove.nearest_spellings("warmup")  # builds the index once
    words = ["raggae", "guitr", "elektronic", "melancolic", "vocls", "symphonie", "acustic", "pianno"]
    found = {word: glove.nearest_spellings(word) for word in words}
    assert found["raggae"][0] == "reggae" and found["guitr"][0] == "guitar"
    assert found["elektronic"][0] == "electronic" and found["pianno"][0] == "piano"
    assert glove.nearest_spellings("qqqqxzv") == []


# ------------------------------------------------------------------------- queries

@pytest.mark.parametrize(
    "query, terms",
    [
        ("acoustic guitar no vocals", [("acoustic guitar", False), ("vocals", True)]),
        ("no drums, piano", [("drums", True), ("piano", False)]),
        ("non-vocal", [("vocal", True)]),
        ("rock -vocals", [("rock", False), ("vocals", True)]),
        ("jazz without drums but with piano", [("jazz", False), ("drums", True), ("piano", False)]),
        ("minus bass sans drums", [("bass", True), ("drums", True)]),
        ("Drum and Bass", [("drum and bass", False)]),
        ("not too loud and fast", [("too loud", True), ("fast", False)]),
        ("dub, reggae", [("dub", False), ("reggae", False)]),
    ],
)
def test_parse_query_splits_positive_and_negated_terms(query, terms):
    assert parse_query(query) == [QueryTerm(text, negated) for text, negated in terms]


@pytest.mark.parametrize("query", ["", "   ", "no", "rock without", "no, piano"])
def test_parse_query_rejects_queries_without_content(query):
    with pytest.raises(QueryError):
        parse_query(query)


# ------------------------------------------------------------------------- vocabulary

def test_shipped_vocabulary_is_large_categorised_and_covered_by_glove(glove):
    vocabulary = load_tag_vocabulary()
    tags = [entry.tag for entry in vocabulary]
    assert len(tags) >= 600 and len(set(tags)) == len(tags)
    assert all(tag == tag.lower().strip() for tag in tags)
    categories = {entry.category for entry in vocabulary}
    assert {"genre", "subgenre", "mood", "instrument", "voice", "era", "scene"} <= categories
    assert "place" not in categories and "lebanon" not in {entry.tag for entry in vocabulary}  # not by default
    uncovered = [tag for tag in tags if not all(glove.has(token) for token in glove.tokens(tag))]
    assert uncovered == []
    assert {"bossa nova", "male vocals", "drum and bass", "1970s", "hip-hop"} <= set(tags)


def test_user_vocabularies_as_csv_or_plain_text(tmp_path):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("Tag,Category\nDub Techno,subgenre\nsea shanty,\ndub techno,genre\n", encoding="utf-8")
    assert [(t.tag, t.category) for t in load_tag_vocabulary(csv_file)] == [
        ("dub techno", "subgenre"), ("sea shanty", "custom")]
    text_file = tmp_path / "mine.txt"
    text_file.write_text("# my tags\nkazoo\nKazoo\nsea  shanty\n\n", encoding="utf-8")
    assert [(t.tag, t.category) for t in load_tag_vocabulary(text_file)] == [
        ("kazoo", "custom"), ("sea shanty", "custom")]
    with pytest.raises(TagVocabularyError, match="not found"):
        load_tag_vocabulary(tmp_path / "missing.csv")
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(TagVocabularyError, match="no tags"):
        load_tag_vocabulary(tmp_path / "empty.txt")
