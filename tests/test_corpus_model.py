"""The shipped corpus model (mre-zs-corpus): label words stay the taggers' own, other words use
the trained space, stores made with it answer queries, and stores of the previous default are
refused with a clear message or re-embedded."""
from __future__ import annotations

import numpy as np
import pytest

from mre.embedder.models.corpus_model import CORPUS_MODEL_NAME, CorpusZeroShotModel, weights_file
from mre.embedder.models.factory import load_model
from mre.embedder.runner import embed_files
from mre.embedder.models.zeroshot import ZeroShotTaggerModel
from mre.retrieval.library import Library, LibraryError


@pytest.fixture(scope="module")
def model() -> CorpusZeroShotModel:
    return CorpusZeroShotModel()


@pytest.fixture(scope="module")
def embedded(model, music_library):
    """Both models' track vectors of the generated clips, each from its own pass."""
    paths = sorted(str(p) for p in music_library.rglob("*") if p.suffix in (".wav", ".flac", ".ogg")
                   and p.stat().st_size > 1000)
    old = ZeroShotTaggerModel()
    new_vectors = [model.track_vector(t.patch_mean) for t in embed_files(paths, model, device="cpu", workers=0)]
    old_vectors = [old.track_vector(t.patch_mean) for t in embed_files(paths, old, device="cpu", workers=0)]
    return paths, np.stack(new_vectors), np.stack(old_vectors)


def test_the_shipped_model_loads_with_a_stable_id(model):
    assert weights_file().is_file()
    again = load_model(CORPUS_MODEL_NAME)
    assert isinstance(again, CorpusZeroShotModel) and again.model_id == model.model_id
    assert model.model_id.startswith(f"{CORPUS_MODEL_NAME}@") and model.model_id != ZeroShotTaggerModel().model_id
    assert model.dim == model.label_dim + model.trained_dim and model.scale > 0
    assert "violin" in model.held_out_words and "violin" not in model.seen_words  # held out of training
    parameters = sum(model._arrays[k].size for k in model._arrays if k.startswith(("head_", "word_weight", "word_bias")))
    assert parameters < 200_000


def test_a_label_word_ranks_exactly_as_the_taggers_probability(model, embedded):
    _, new_vectors, old_vectors = embedded
    # the label part is the default model's vector: same taggers, same forward pass
    np.testing.assert_allclose(new_vectors[:, :model.label_dim], old_vectors, atol=1e-5)
    for word in ("piano", "guitar", "techno", "hip hop", "no vocals"):
        query = model.query_vector(word)
        assert not query.vector[model.label_dim:].any(), word
        np.testing.assert_allclose(new_vectors @ query.vector, old_vectors @ ZeroShotTaggerModel().query_vector(word).vector,
                                   atol=1e-5)


def test_other_words_get_a_vector_in_the_trained_part(model):
    for word in ("trumpet", "reggae", "viola", "upbeat"):
        query = model.query_vector(word)
        assert not query.vector[:model.label_dim].any(), word
        assert np.linalg.norm(query.vector[model.label_dim:]) == pytest.approx(1.0, abs=1e-5)
    mixed = model.query_vector("calm piano")       # a label word and another word, in one score
    assert mixed.vector[:model.label_dim].sum() == pytest.approx(0.5) and "piano" in mixed.matched_labels
    assert mixed.attribute_weights                 # "calm" still weighs the musical attributes
    whole = model.query_vector("electric guitar")  # a tag the trained space learnt as one phrase
    assert not whole.vector[:model.label_dim].any()


def test_a_store_indexed_with_it_answers_and_an_old_default_store_is_refused_then_re_embedded(music_library, tmp_path, cli):
    old_store = tmp_path / "old-store"
    assert cli("index", music_library, "--store", old_store, "--model", "mre-zs-musicnn", "--workers", "1").exit_code == 0
    with pytest.raises(LibraryError, match="made with model mre-zs-musicnn.*re-index"):
        Library(old_store, model=CORPUS_MODEL_NAME)
    result = cli("index", music_library, "--store", old_store, "--model", CORPUS_MODEL_NAME, "--workers", "1")
    assert result.exit_code == 0 and "mre-zs-musicnn" in result.output and CORPUS_MODEL_NAME in result.output
    library = Library(old_store)
    assert library.model.model_id == CorpusZeroShotModel().model_id
    hits = library.query("trumpet", k=3)
    assert len(hits) == 3 and all(0 < hit.score < 1 for hit in hits)
    assert library.query("piano", k=1)[0].path.split("/")[-1].startswith("piano")
