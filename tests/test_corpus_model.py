"""The shipped corpus model (mre-zs-corpus): label words stay the taggers' own, other words use
the trained space, stores made with it answer queries, and stores of the previous default are
refused with a clear message or re-embedded."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mre.embedder.models.corpus_model import CORPUS_MODEL_NAME, CorpusZeroShotModel, weights_file
from mre.embedder.models.factory import load_model
from mre.embedder.runner import embed_files
from mre.embedder.models.zeroshot import QueryVector, ZeroShotTaggerModel
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
    assert model.dim == model.label_dim + model.trained_dim + 1 and model.scale > 0  # [labels | trained | 1]
    assert "violin" in model.held_out_words and "violin" not in model.seen_words  # held out of training
    parameters = sum(model._arrays[k].size for k in model._arrays if k.startswith(("head_", "word_weight", "word_bias")))
    assert parameters < 200_000


def test_a_label_word_ranks_exactly_as_the_taggers_probability(model, embedded):
    _, new_vectors, old_vectors = embedded
    # the label part is the default model's vector: same taggers, same forward pass
    np.testing.assert_allclose(new_vectors[:, :model.label_dim], old_vectors, atol=1e-5)
    assert (new_vectors[:, -1] == 1).all()
    for word in ("piano", "guitar", "techno", "hip hop", "no vocals"):
        query = model.query_vector(word)
        assert not query.vector[model.label_dim:].any(), word  # no trained part and no offset
        np.testing.assert_allclose(new_vectors @ query.vector, old_vectors @ ZeroShotTaggerModel().query_vector(word).vector,
                                   atol=1e-5)


def test_other_words_get_the_trained_part_and_the_default_models_label_reading(model):
    old = ZeroShotTaggerModel()
    learnt_weight, other_weight = model.label_reading
    assert {"trumpet", "reggae"} <= set(model.seen_words) and "viola" in model.held_out_words
    assert "tender" not in model.seen_words + model.held_out_words  # a word the corpus never named
    for word, weight in (("trumpet", learnt_weight), ("reggae", learnt_weight), ("viola", other_weight),
                         ("tender", other_weight)):
        query = model.query_vector(word)
        trained = np.linalg.norm(query.vector[model.label_dim:model.output_dim])
        if word in model.seen_words:  # its own vector through the word projection
            assert trained == pytest.approx(1.0, abs=1e-5)
        else:  # read through the learnt vectors of its nearest seen tags: a weighted mean of unit rows
            assert 0.0 < trained <= 1.0 + 1e-6
        # starts among the labels' log-odds; a word it never learnt, lower by the unlearnt prior
        prior = 0.0 if word in model.seen_words else model.unlearnt_prior
        assert query.vector[-1] == pytest.approx(model.offset + prior)
        # the label part is the default model's reading of the word, weighted
        np.testing.assert_allclose(query.vector[:model.label_dim], weight * old.query_vector(word).vector, atol=1e-6)
    # a label word and another word, in one score: the mean of the split reading (piano's label,
    # calm's trained part) and the whole phrase's reading through the seen tags nearest it
    mixed = model.query_vector("calm piano")
    assert mixed.vector[:model.label_dim].sum() == pytest.approx((0.5 + 0.5 * learnt_weight + other_weight) / 2, abs=1e-5)
    split = (model._label_vector(("piano",)) + model._word_part("calm", QueryVector("calm", np.zeros(0)))) / 2
    whole = model._word_part("calm piano", QueryVector("calm piano", np.zeros(0)))
    whole[-1] = split[-1]  # the phrase starts where its parts do, without the unlearnt prior
    np.testing.assert_allclose(mixed.vector, (split + whole) / 2, atol=1e-6)
    labels_only = model.query_vector("sad piano")  # label words only: split, as the taggers read them
    assert not labels_only.vector[model.label_dim:].any()
    assert labels_only.vector[:model.label_dim].sum() == pytest.approx(1.0, abs=1e-6)
    assert "piano" in mixed.matched_labels
    assert mixed.attribute_weights                 # "calm" still weighs the musical attributes
    whole = model.query_vector("electric guitar")  # a tag the trained space learnt as one phrase
    np.testing.assert_allclose(whole.vector[:model.label_dim],
                               learnt_weight * old._nearest_label_weights(old.words.phrase_vector("electric guitar").vector),
                               atol=1e-6)


def test_every_learnt_tag_is_read_as_learnt_and_a_held_out_tag_as_any_new_phrase(model):
    """A learnt tag whose words the word space spells otherwise ("double bass" → double-bass,
    double, bass; "rock band" around the label "rock") is still the phrase the trained space
    learnt: its own projected vector, no prior, no label part. A held-out tag is read as a user's
    new phrase would be: "synth strings" through its label words, like "synth violins"."""
    learnt_weight, _ = model.label_reading
    for tag in model.seen_words:
        if model.is_label_query(tag) or model.words.phrase_vector(tag).vector is None:
            continue
        vector = model.query_vector(tag).vector
        direct = model.project_words(model.words.phrase_vector(tag).vector)[0]
        np.testing.assert_allclose(vector[model.label_dim:model.output_dim], direct, atol=1e-6, err_msg=tag)
        assert vector[-1] == pytest.approx(model.offset), tag
        if not learnt_weight:
            assert not vector[:model.label_dim].any(), tag
    assert {"double bass", "rock band"} <= set(model.seen_words)
    held_out = model.query_vector("synth strings")
    assert "synth strings" in model.held_out_words
    assert set(held_out.matched_labels) == {"synth", "strings"}
    assert set(model.query_vector("synth violins").matched_labels) >= {"synth"}


def test_a_word_the_corpus_never_named_scores_no_track_above_its_nearest_learnt_words(model, embedded):
    """Read through its nearest seen tags, such a word cannot lead a track's tags ahead of them."""
    from mre.embedder.models.zeroshot import NEAREST_LABELS

    _, vectors, _ = embedded
    trained = vectors[:, model.label_dim:model.output_dim].astype(np.float64)
    seen = [tag for tag in model.seen_words if model.words.phrase_vector(tag).vector is not None]
    seen_rows = model.project_words(model.words.phrase_matrix(seen)).astype(np.float64)
    seen_units = model.words.phrase_matrix(seen).astype(np.float64)
    seen_units /= np.linalg.norm(seen_units, axis=1, keepdims=True)
    for word in ("tender", "viola", "bossa nova", "cooking"):
        part = model.query_vector(word).vector[model.label_dim:model.output_dim].astype(np.float64)
        unit = model.words.phrase_vector(word).vector.astype(np.float64)
        nearest = np.argsort(-(seen_units @ (unit / np.linalg.norm(unit))))[:NEAREST_LABELS]
        # float32 rounding of the part and of the rows: at most 2⁻²³ of |track|·|row| per score
        bound = 2.0 ** -23 * np.linalg.norm(trained, axis=1)
        assert np.all(trained @ part <= (trained @ seen_rows[nearest].T).max(axis=1) + bound), word


def test_a_store_indexed_with_it_answers_and_an_old_default_store_keeps_its_model_or_is_re_embedded(
        music_library, tmp_path, cli):
    from mre.embedder.models.factory import DEFAULT_MODEL

    old_store = tmp_path / "old-store"
    assert cli("index", music_library, "--store", old_store, "--model", "mre-zs-musicnn", "--workers", "1").exit_code == 0
    old_id = Library(old_store).model.model_id
    # indexing again with no --model keeps the store's model, and says so when it is not the default
    again = cli("index", music_library, "--store", old_store, "--workers", "1")
    assert again.exit_code == 0 and Library(old_store).model.model_id == old_id
    assert ("kept the store's model mre-zs-musicnn" in again.output) == (DEFAULT_MODEL != "mre-zs-musicnn")
    queried = cli("query", "piano", "--store", old_store, "-k", "1")  # searched with the store's own model
    assert queried.exit_code == 0 and "piano" in queried.output
    with pytest.raises(LibraryError, match="made with model mre-zs-musicnn.*re-index"):
        Library(old_store, model=CORPUS_MODEL_NAME)
    result = cli("index", music_library, "--store", old_store, "--model", CORPUS_MODEL_NAME, "--workers", "1")
    assert result.exit_code == 0 and "mre-zs-musicnn" in result.output and CORPUS_MODEL_NAME in result.output
    assert "embedded again" in result.output
    library = Library(old_store)
    assert library.model.model_id == CorpusZeroShotModel().model_id
    hits = library.query("trumpet", k=3)
    assert len(hits) == 3 and all(0 < hit.score < 1 for hit in hits)
    assert library.query("piano", k=1)[0].path.split("/")[-1].startswith("piano")

    # the store's own model, changed since (an upgrade with new weights): searching says how to
    # re-embed, and indexing again does it
    live = old_store / "generations" / (old_store / "CURRENT").read_text().strip()
    meta = json.loads((live / "meta.json").read_text())
    meta["model_id"] = f"{CORPUS_MODEL_NAME}@000000000000"
    (live / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LibraryError, match=rf"this install's {CORPUS_MODEL_NAME} is now .*`mre index .* --store "):
        Library(old_store)
    result = cli("index", music_library, "--store", old_store, "--workers", "1")
    assert result.exit_code == 0 and "embedded again" in result.output, result.output
    assert Library(old_store).model.model_id == CorpusZeroShotModel().model_id
