"""Retrieval and classification metrics for the quality benchmarks, in numpy only.

The paper (Choi et al., "Zero-shot learning and knowledge transfer in music
classification and tagging") reports tag-retrieval ROC-AUC (per tag over tracks,
macro-averaged), annotation ROC-AUC (per track over tags) and top-1 accuracy for
single-label sets such as GTZAN. The figures here match scikit-learn's
``roc_auc_score`` and ``average_precision_score`` (checked in tests/test_metrics.py);
scikit-learn itself is only a test dependency.

Every score matrix is ``[n_items, n_columns]`` and every metric is computed for all
columns at once from one sort per column, so 25k tracks × 50 tags take milliseconds.
A column whose labels are all one class has no defined AUC: it yields NaN and is
reported as skipped, never silently counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# One line for every place that draws figures of these metrics (mre bench quality, mre train),
# when matplotlib (a requirement) is missing anyway.
NO_MATPLOTLIB = "figures skipped: matplotlib is not installed (pip install 'matplotlib>=3.6' to get the PNGs)"

class MetricInputError(ValueError):
    """Labels and scores that cannot be scored together (shape, NaN, wrong dtype)."""


@dataclass(frozen=True)
class PerTagResult:
    """Per-tag retrieval figures; NaN where a tag has only one class among the tracks.

    tags: tag names, in column order.
    roc_auc, pr_auc: ``[n_tags]`` float arrays.
    skipped: tags without both positive and negative tracks (left out of the macros).
    """

    tags: list[str]
    roc_auc: np.ndarray
    pr_auc: np.ndarray
    skipped: list[str] = field(default_factory=list)

    @property
    def macro_roc_auc(self) -> float:
        return _nanmean(self.roc_auc)

    @property
    def macro_pr_auc(self) -> float:
        return _nanmean(self.pr_auc)

    def roc_auc_by_tag(self) -> dict[str, float]:
        """Tag → ROC-AUC for the tags that could be scored."""
        return {t: float(v) for t, v in zip(self.tags, self.roc_auc) if not np.isnan(v)}

    def pr_auc_by_tag(self) -> dict[str, float]:
        """Tag → PR-AUC (average precision) for the tags that could be scored."""
        return {t: float(v) for t, v in zip(self.tags, self.pr_auc) if not np.isnan(v)}


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _as_label_matrix(y_true, name: str = "y_true") -> np.ndarray:
    labels = np.asarray(y_true)
    if labels.dtype != bool:
        if not np.issubdtype(labels.dtype, np.number):
            raise MetricInputError(f"{name} must be boolean or 0/1, got dtype {labels.dtype}")
        if not np.isin(labels, (0, 1)).all():
            raise MetricInputError(f"{name} must hold only 0/1 (or booleans)")
        labels = labels.astype(bool)
    return labels


def _check_pair(y_true, y_score) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as 2-D ``[n_items, n_columns]``; also whether the input was one column."""
    labels = _as_label_matrix(y_true)
    scores = np.asarray(y_score, dtype=np.float64)
    if labels.shape != scores.shape:
        raise MetricInputError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if labels.ndim not in (1, 2):
        raise MetricInputError(f"expected a vector or an [items, columns] matrix, got {labels.ndim}-D")
    if not np.isfinite(scores).all():
        raise MetricInputError("scores contain NaN or infinity")
    one_column = labels.ndim == 1
    if one_column:
        labels, scores = labels[:, None], scores[:, None]
    if labels.shape[0] == 0:
        raise MetricInputError("no items to score")
    return labels, scores, one_column


def _sorted_with_tie_groups(scores: np.ndarray, descending: bool):
    """Sort each column; return order, and per sorted row the first/last row of its tie group."""
    keys = -scores if descending else scores
    order = np.argsort(keys, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    n = scores.shape[0]
    rows = np.arange(n)[:, None]
    differs = sorted_scores[1:] != sorted_scores[:-1]
    starts = np.vstack([np.ones((1, scores.shape[1]), bool), differs])
    ends = np.vstack([differs, np.ones((1, scores.shape[1]), bool)])
    group_first = np.maximum.accumulate(np.where(starts, rows, 0), axis=0)
    group_last = np.flipud(np.minimum.accumulate(np.flipud(np.where(ends, rows, n - 1)), axis=0))
    return order, group_first, group_last, ends


def _roc_auc_columns(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    # Mann–Whitney U with average ranks for ties: the same value as the trapezoidal
    # area under sklearn's ROC curve, which joins tied scores with one diagonal step.
    order, group_first, group_last, _ = _sorted_with_tie_groups(scores, descending=False)
    average_rank_sorted = (group_first + group_last) / 2.0 + 1.0
    ranks = np.empty_like(average_rank_sorted)
    np.put_along_axis(ranks, order, average_rank_sorted, axis=0)
    n_pos = labels.sum(axis=0).astype(np.float64)
    n_neg = labels.shape[0] - n_pos
    rank_sum = np.where(labels, ranks, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _average_precision_columns(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    # sklearn's definition: AP = Σ_k (R_k − R_{k−1}) · P_k over the distinct score
    # thresholds, tied scores entering together (no interpolation).
    order, group_first, _, group_ends = _sorted_with_tie_groups(scores, descending=True)
    positives_sorted = np.take_along_axis(labels, order, axis=0).astype(np.float64)
    true_pos = np.cumsum(positives_sorted, axis=0)
    true_pos_before = true_pos - positives_sorted
    true_pos_before_group = np.take_along_axis(true_pos_before, group_first, axis=0)
    retrieved = np.arange(1, labels.shape[0] + 1, dtype=np.float64)[:, None]
    n_pos = true_pos[-1]
    gained = np.where(group_ends, (true_pos - true_pos_before_group) * true_pos / retrieved, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = gained.sum(axis=0) / n_pos
    ap[n_pos == 0] = np.nan
    return ap


def roc_auc(y_true, y_score):
    """ROC-AUC of scores against binary labels, as sklearn's ``roc_auc_score``.

    y_true: ``[n]`` or ``[n, columns]`` booleans (or 0/1).
    y_score: same shape, higher = more likely positive; ties get average ranks.
    Returns a float for a vector, a ``[columns]`` array for a matrix; NaN where a
    column has only one class.
    """
    labels, scores, one_column = _check_pair(y_true, y_score)
    auc = _roc_auc_columns(labels, scores)
    return float(auc[0]) if one_column else auc


def pr_auc(y_true, y_score):
    """Area under the precision–recall curve as average precision (sklearn's
    ``average_precision_score``). Same shapes as :func:`roc_auc`; NaN where a column
    has no positive (all-positive columns score 1.0, as in sklearn)."""
    labels, scores, one_column = _check_pair(y_true, y_score)
    ap = _average_precision_columns(labels, scores)
    return float(ap[0]) if one_column else ap


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to
    (1, 1): sklearn's ``roc_curve(..., drop_intermediate=False)``. One column only; the
    column must have both classes."""
    labels, scores, one_column = _check_pair(y_true, y_score)
    if not one_column:
        raise MetricInputError("roc_curve takes one label vector and one score vector")
    labels, scores = labels[:, 0], scores[:, 0]
    n_pos = int(labels.sum())
    if n_pos in (0, labels.size):
        raise MetricInputError("roc_curve needs both positive and negative items")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    threshold_rows = np.r_[np.flatnonzero(np.diff(sorted_scores)), labels.size - 1]
    true_pos = np.cumsum(labels[order])[threshold_rows]
    false_pos = threshold_rows + 1 - true_pos
    fpr = np.r_[0.0, false_pos / (labels.size - n_pos)]
    tpr = np.r_[0.0, true_pos / n_pos]
    return fpr, tpr


def tag_retrieval_auc(Y, S, tags: list[str] | None = None) -> PerTagResult:
    """Retrieve tracks for each tag: ROC-AUC and PR-AUC per tag (column), macro over
    the tags that have both positive and negative tracks.

    Y: ``[tracks, tags]`` booleans, the ground truth.
    S: ``[tracks, tags]`` scores, e.g. cosine between track and tag vectors.
    tags: column names; defaults to the column numbers as strings.
    """
    if np.ndim(Y) != 2:
        raise MetricInputError("tag_retrieval_auc needs [tracks, tags] matrices")
    labels, scores, _ = _check_pair(Y, S)
    names = [str(i) for i in range(labels.shape[1])] if tags is None else list(tags)
    if len(names) != labels.shape[1]:
        raise MetricInputError(f"{len(names)} tag names for {labels.shape[1]} score columns")
    roc = _roc_auc_columns(labels, scores)
    ap = _average_precision_columns(labels, scores)
    skipped = [name for name, value in zip(names, roc) if np.isnan(value)]
    ap[np.isnan(roc)] = np.nan  # one rule for both macros: a tag needs both classes
    return PerTagResult(tags=names, roc_auc=roc, pr_auc=ap, skipped=skipped)


def roc_auc_per_column(Y, S) -> np.ndarray:
    """ROC-AUC of each column of ``[tracks, tags]`` booleans Y under scores S (NaN where a
    column lacks positives or negatives): tag_retrieval_auc's ROC-AUC without its PR-AUC,
    for loops that need only the one (a bootstrap)."""
    labels, scores, _ = _check_pair(Y, S)
    return _roc_auc_columns(labels, scores)


def annotation_auc(Y, S) -> float:
    """Annotate each track with tags: ROC-AUC per track over the tags, macro over the
    tracks that have both tags and non-tags. NaN when no track qualifies."""
    if np.ndim(Y) != 2:
        raise MetricInputError("annotation_auc needs [tracks, tags] matrices")
    labels, scores, _ = _check_pair(Y, S)
    return _nanmean(_roc_auc_columns(labels.T, scores.T))


def top1_accuracy(labels, S) -> float:
    """Fraction of items whose highest-scoring class is their true class.

    labels: ``[n]`` true class indices. S: ``[n, classes]`` scores. On tied top scores
    the first class wins (numpy argmax).
    """
    true_class = np.asarray(labels)
    scores = np.asarray(S, dtype=np.float64)
    if scores.ndim != 2 or true_class.shape != (scores.shape[0],):
        raise MetricInputError(f"labels {true_class.shape} do not match scores {scores.shape}")
    if scores.shape[0] == 0:
        raise MetricInputError("no items to score")
    if not np.issubdtype(true_class.dtype, np.integer) or (true_class < 0).any() or (true_class >= scores.shape[1]).any():
        raise MetricInputError(f"labels must be class indices in [0, {scores.shape[1]})")
    if not np.isfinite(scores).all():
        raise MetricInputError("scores contain NaN or infinity")
    return float((scores.argmax(axis=1) == true_class).mean())


def confusion_matrix(labels, predictions, n: int) -> np.ndarray:
    """``[n, n]`` counts, rows = true class, columns = predicted class (sklearn's layout)."""
    true_class = np.asarray(labels)
    predicted = np.asarray(predictions)
    if true_class.shape != predicted.shape or true_class.ndim != 1:
        raise MetricInputError(f"labels {true_class.shape} and predictions {predicted.shape} must be equal-length vectors")
    for name, values in (("labels", true_class), ("predictions", predicted)):
        if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= n):
            raise MetricInputError(f"{name} must be class indices in [0, {n})")
    counts = np.bincount(true_class * n + predicted, minlength=n * n)
    return counts.reshape(n, n)


def seen_unseen_breakdown(per_tag: dict[str, float], seen: set[str], unseen: set[str]) -> dict[str, dict]:
    """Macro of a per-tag figure over the seen and over the unseen tags (the paper's
    zero-shot evaluation). Tags of a group without a finite score (dropped, or only one
    class in the test set) are listed under ``missing`` and left out of the macro.

    Returns ``{"seen": {"macro": float, "n_tags": int, "missing": [...]}, "unseen": {...}}``.
    """
    overlap = set(seen) & set(unseen)
    if overlap:
        raise MetricInputError(f"tags both seen and unseen: {sorted(overlap)[:5]}")
    breakdown = {}
    for group, group_tags in (("seen", seen), ("unseen", unseen)):
        scored = [per_tag[t] for t in group_tags if t in per_tag and np.isfinite(per_tag[t])]
        missing = sorted(t for t in group_tags if t not in per_tag or not np.isfinite(per_tag[t]))
        breakdown[group] = {
            "macro": float(np.mean(scored)) if scored else float("nan"),
            "n_tags": len(scored),
            "missing": missing,
        }
    return breakdown
