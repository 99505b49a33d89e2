"""The default zero-shot model on generated clips with known tags."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def figures():
    from mre.benchmarks.zeroshot_eval import run

    return run(n_per_group=6, seed=1)


def test_label_words_rank_as_the_label_probability(figures):
    for word, auc in figures.label_query_auc.items():
        assert abs(auc - figures.label_probability_auc[word]) <= 0.01, word


def test_words_no_tagger_knows_beat_conse_and_chance(figures):
    ours = figures.macro(figures.unseen_auc)
    conse = figures.macro(figures.unseen_conse_auc)
    assert ours > conse
    assert ours > 0.55


def test_negation_is_not_averaged_into_the_word(figures):
    assert figures.negation_auc > 0.7  # "no drums" finds the clips without drums


def test_query_understanding():
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel

    model = ZeroShotTaggerModel()
    assert model.query_vector("hip hop").matched_labels == ["hip-hop"]
    assert model.query_vector("Hip-Hop").matched_labels == ["hip-hop"]
    no_vocals = model.query_vector("no vocals").vector
    assert no_vocals[model.labels.index("no vocals")] == 1.0 and no_vocals.sum() == 1.0
    mixed = model.query_vector("acoustic guitar without vocals")
    assert mixed.vector[model.labels.index("vocals")] < 0 < mixed.vector[model.labels.index("guitar")]
    typo = model.query_vector("piano xqzzvk")
    assert typo.ignored == ["xqzzvk"] and np.argmax(typo.vector) == model.labels.index("piano")
    with pytest.raises(ValueError):
        model.query_vector("xqzzvk qqqxxz")


def test_a_negated_term_weighs_a_quarter_of_a_positive_one_on_labels_and_attributes():
    """"X no Y" = (X − ¼·Y) / 1.25, on the label weights and the attribute weights alike; a query
    of negations only is the same whatever the weight."""
    from mre.embedder.models.base import QueryVector
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel

    model = ZeroShotTaggerModel()
    assert model.negated_weight == 0.25
    mixed = model.query_vector("piano no drums")
    piano = model.query_vector("piano").vector
    drums = model._term_weights("drums", QueryVector("drums", np.zeros(0)), True)
    # float32 sums of a few weights ≤ 1: a few ulps of 1
    np.testing.assert_allclose(mixed.vector, (piano - 0.25 * drums) / 1.25, rtol=0,
                               atol=4 * np.finfo(np.float32).eps)
    calm = model.query_vector("calm piano").attribute_weights
    calm_no_energy = model.query_vector("calm piano no energetic").attribute_weights
    energetic = model.query_vector("energetic piano").attribute_weights
    for column in calm_no_energy:  # terms "calm piano" and negated "energetic": a mean over 1.25 terms
        expected = (calm.get(column, 0.0) - 0.25 * energetic.get(column, 0.0)) / 1.25
        assert calm_no_energy[column] == pytest.approx(expected, abs=1e-12)
    lone = model.query_vector("no piano piano").vector  # parsed as one negated term
    model.negated_weight = 1.0
    try:
        assert np.array_equal(model.query_vector("no piano piano").vector, lone)
    finally:
        del model.negated_weight  # back to the class's weight


def test_attribute_dimensions_help_mood_words_and_leave_label_words_alone(figures):
    macro = figures.as_dict()["macro"]
    assert macro["mood"] > macro["mood_without_attributes"]
    assert figures.label_query_auc_with_attributes == figures.label_query_auc


def test_pole_words_relate_to_their_attribute():
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel

    model = ZeroShotTaggerModel()
    assert model.query_vector("calm").attribute_weights["onset_density"] < 0
    assert model.query_vector("energetic").attribute_weights["onset_density"] > 0
    assert model.query_vector("not energetic").attribute_weights["onset_density"] < 0
    assert model.query_vector("piano").attribute_weights == {}  # label words stay exact


def test_major_and_minor_weigh_the_mode_and_lend_it_to_no_other_word():
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel

    model = ZeroShotTaggerModel()
    major, minor = model.attribute_weights("major"), model.attribute_weights("minor")
    assert major["mode_strength"] > 0 > minor["mode_strength"]
    assert model.attribute_weights("sad minor key")["mode_strength"] < 0
    assert model.attribute_weights("no minor")["mode_strength"] > 0
    # GloVe's major − minor direction ("major league", "minor injury") reaches these words; the mode does not
    for word in ("tuba", "viola", "lullaby", "banjo", "league"):
        assert "mode_strength" not in model.attribute_weights(word), word
