"""The benchmark metrics agree with scikit-learn, ties and degenerate columns included."""


import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")

from mre.training.metrics import (  # noqa: E402
                                  MetricInputError,
                                  annotation_auc,
                                  confusion_matrix,
                                  pr_auc,
                                  roc_auc,
                                  roc_curve,
                                  seen_unseen_breakdown,
                                  tag_retrieval_auc,
                                  top1_accuracy,
)


def _random_problem(rng, n_tracks, n_tags, levels=None):
    labels = rng.random((n_tracks, n_tags)) < rng.uniform(0.05, 0.6, n_tags)
    scores = rng.normal(size=(n_tracks, n_tags)) + labels * rng.uniform(0, 2, n_tags)
    if levels is not None:  # coarse scores: many ties, within and across classes
        scores = np.round(scores * levels) / levels
    return labels, scores


@pytest.mark.parametrize("levels", [None, 1, 3])
def test_roc_and_pr_auc_match_sklearn_per_column(levels):
    rng = np.random.default_rng(levels or 0)
    labels, scores = _random_problem(rng, 300, 12, levels)
    ours_roc = roc_auc(labels, scores)
    ours_ap = pr_auc(labels, scores)
    for j in range(labels.shape[1]):
        assert ours_roc[j] == pytest.approx(sklearn_metrics.roc_auc_score(labels[:, j], scores[:, j]), abs=1e-12)
        assert ours_ap[j] == pytest.approx(
            sklearn_metrics.average_precision_score(labels[:, j], scores[:, j]), abs=1e-12
        )


def test_all_tied_scores_give_chance_auc_and_prevalence_ap():
    labels = np.array([1, 0, 0, 1, 0], bool)
    scores = np.zeros(5)
    assert roc_auc(labels, scores) == 0.5
    assert pr_auc(labels, scores) == pytest.approx(sklearn_metrics.average_precision_score(labels, scores))


def test_vector_input_returns_float():
    assert isinstance(roc_auc([0, 1, 1], [0.1, 0.4, 0.9]), float)
    assert roc_auc([0, 1, 1], [0.1, 0.4, 0.9]) == 1.0
    assert roc_auc([1, 0], [0.1, 0.9]) == 0.0


def test_degenerate_columns_are_nan_and_skipped_from_the_macro():
    rng = np.random.default_rng(1)
    labels, scores = _random_problem(rng, 80, 5)
    labels[:, 1] = False  # tag no track has
    labels[:, 3] = True  # tag every track has
    result = tag_retrieval_auc(labels, scores, tags=["a", "b", "c", "d", "e"])
    assert result.skipped == ["b", "d"]
    assert np.isnan(result.roc_auc[[1, 3]]).all() and np.isnan(result.pr_auc[[1, 3]]).all()
    kept = [0, 2, 4]
    expected_roc = np.mean([sklearn_metrics.roc_auc_score(labels[:, j], scores[:, j]) for j in kept])
    expected_ap = np.mean([sklearn_metrics.average_precision_score(labels[:, j], scores[:, j]) for j in kept])
    assert result.macro_roc_auc == pytest.approx(expected_roc, abs=1e-12)
    assert result.macro_pr_auc == pytest.approx(expected_ap, abs=1e-12)
    assert set(result.roc_auc_by_tag()) == {"a", "c", "e"}
    # sklearn's macro over the same kept columns is the same number
    assert result.macro_roc_auc == pytest.approx(
        sklearn_metrics.roc_auc_score(labels[:, kept], scores[:, kept], average="macro"), abs=1e-12
    )
    # all-positive column: AP defined as 1 on its own
    assert pr_auc(labels[:, 3], scores[:, 3]) == 1.0


def test_annotation_auc_is_per_track_macro():
    rng = np.random.default_rng(2)
    labels, scores = _random_problem(rng, 40, 20, levels=2)
    labels[0] = False  # a track with no tags: skipped
    per_track = [
        sklearn_metrics.roc_auc_score(labels[i], scores[i]) for i in range(40) if 0 < labels[i].sum() < 20
    ]
    assert annotation_auc(labels, scores) == pytest.approx(np.mean(per_track), abs=1e-12)


def test_top1_accuracy_and_confusion_match_sklearn():
    rng = np.random.default_rng(3)
    true_class = rng.integers(0, 10, 200)
    scores = rng.normal(size=(200, 10))
    scores[np.arange(200), true_class] += 1.0
    predicted = scores.argmax(axis=1)
    assert top1_accuracy(true_class, scores) == pytest.approx(sklearn_metrics.accuracy_score(true_class, predicted))
    np.testing.assert_array_equal(
        confusion_matrix(true_class, predicted, 10),
        sklearn_metrics.confusion_matrix(true_class, predicted, labels=range(10)),
    )


def test_seen_unseen_breakdown():
    per_tag = {"rock": 0.9, "jazz": 0.7, "dub": 0.6, "polka": float("nan")}
    breakdown = seen_unseen_breakdown(per_tag, seen={"rock", "jazz"}, unseen={"dub", "polka", "ska"})
    assert breakdown["seen"]["macro"] == pytest.approx(0.8)
    assert breakdown["seen"]["n_tags"] == 2
    assert breakdown["unseen"]["macro"] == pytest.approx(0.6)
    assert breakdown["unseen"]["missing"] == ["polka", "ska"]
    with pytest.raises(MetricInputError, match="both seen and unseen"):
        seen_unseen_breakdown(per_tag, seen={"rock"}, unseen={"rock"})


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        (np.zeros((3, 2), bool), np.zeros((3, 3)), "differ in shape"),
        (np.zeros((3, 2), bool), np.full((3, 2), np.nan), "NaN"),
        (np.full((3, 2), 2), np.zeros((3, 2)), "0/1"),
    ],
)
def test_bad_input_is_one_clear_error(labels, scores, message):
    with pytest.raises(MetricInputError, match=message):
        tag_retrieval_auc(labels, scores)


def test_bad_class_indices_are_refused():
    with pytest.raises(MetricInputError, match="class indices"):
        top1_accuracy(np.array([0, 5]), np.zeros((2, 3)))
    with pytest.raises(MetricInputError, match="class indices"):
        confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)


def test_msd_scale_is_fast():
    # 25k tracks × 50 tags is the size of the MSD test split in the paper's setup.
    rng = np.random.default_rng(4)
    labels, scores = _random_problem(rng, 25_000, 50, levels=100)
    result = tag_retrieval_auc(labels, scores)
    annotation_auc(labels, scores)
    j = 7
    assert result.roc_auc[j] == pytest.approx(sklearn_metrics.roc_auc_score(labels[:, j], scores[:, j]), abs=1e-12)


def test_roc_curve_matches_sklearn_with_ties():
    rng = np.random.default_rng(5)
    labels, scores = _random_problem(rng, 120, 1, levels=2)
    fpr, tpr = roc_curve(labels[:, 0], scores[:, 0])
    expected_fpr, expected_tpr, _ = sklearn_metrics.roc_curve(labels[:, 0], scores[:, 0], drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(labels[:, 0], scores[:, 0]))


def test_the_paired_interval_of_a_difference_on_few_tracks_is_zero_for_one_model_and_clear_of_zero_for_a_better_one():
    from mre.benchmarks.corpus_eval import paired_interval

    rng = np.random.default_rng(1)
    truth = rng.random((28, 5)) < 0.25
    truth[:2] = [[True] * 5, [False] * 5]       # every tag has both kinds of track
    scores = rng.random((28, 5))
    assert paired_interval(truth, scores, scores, resamples=200) == (0.0, 0.0)
    low, high = paired_interval(truth, scores, scores + truth, resamples=200)   # every positive lifted
    assert 0.0 < low <= high <= 1.0


def test_the_clip_interval_of_a_perfect_ranking_is_one_and_of_chance_scores_spans_one_half():
    from mre.benchmarks.corpus_eval import clip_interval

    rng = np.random.default_rng(2)
    truth = rng.random((600, 9)) < 0.1
    truth[:2] = [[True] * 9, [False] * 9]
    assert clip_interval(truth, truth.astype(float) + 0.01 * rng.random(truth.shape), resamples=100) == (1.0, 1.0)
    low, high = clip_interval(truth, rng.random(truth.shape), resamples=200)
    # one tag's AUC under chance has sd sqrt((n+ + n- + 1) / (12 n+ n-)) ~ 0.039 with ~60 of 600
    # positive; the mean of 9 ~ 0.013, so the 95 % interval is ~0.05 wide (seeded draw: no CPU dependence)
    assert low < 0.5 < high and high - low < 0.1
