"""How musical attributes enter a query's score, in one place for word→song,
song→word and the benchmark: attributes standardised over a store, and label evidence plus
pole-weighted z-scores in the label evidence's own units.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

# The spread of a query's label evidence over a store is estimated on at most this many
# evenly spaced tracks: a standard deviation from 10k samples is within ~1 % of the whole's.
LABEL_SPREAD_SAMPLE = 10_000


def _attribute_array(values, column: str) -> np.ndarray:
    """Attribute values as floats, unknown (None or NaN) and bpm 0 (no pulse) as NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        array = values.astype(np.float64)  # a copy: a store's column (NaN where unknown) stays as it is
    else:
        array = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if column == "bpm":
        array[array <= 0] = np.nan
    return array


def attribute_standardiser(values: list, column: str) -> tuple[float, float]:
    """(mean, spread) of one attribute over a set of tracks; (0, inf) when fewer than two are
    known, so every z-score is 0 (no evidence either way)."""
    array = _attribute_array(values, column)
    known = array[np.isfinite(array)]
    if len(known) < 2:
        return 0.0, np.inf
    spread = float(known.std())
    return float(known.mean()), spread if spread > 0 else 1.0


def standardised(values: list, column: str, of=None) -> np.ndarray:
    """z-scores of one attribute over a set of tracks (unknown values, and bpm 0: no pulse,
    count as the mean); `of`: other values to standardise against that set instead."""
    mean, spread = attribute_standardiser(values, column)
    z = (_attribute_array(values if of is None else of, column) - mean) / spread
    return np.where(np.isfinite(z), z, 0.0)


def attribute_scores(label_scores, label_spread, attribute_weights, attribute_z) -> np.ndarray:
    """A query's score: label evidence (log-odds) plus its attribute weights on z-scores, each
    weight counted in standard deviations of that label evidence over the store.

    label_scores: [n]; label_spread: scalar or [n]; attribute_weights and attribute_z: [C] or
    [n, C] (one query over n tracks, or n tags over one track). Label evidence and z-scores live
    on different scales (log-odds spread from ~0.5 to ~2 between queries; z-scores have spread
    1), so a pole weight r means r standard deviations against the label part's one; adding the
    attribute part in the label part's units keeps scores on the log-odds scale users see.
    """
    attribute_part = np.sum(np.asarray(attribute_weights, dtype=np.float64) * attribute_z, axis=-1)
    return np.asarray(label_scores, dtype=np.float64) + np.asarray(label_spread, dtype=np.float64) * attribute_part


def label_spread(vectors: np.ndarray, label_weights: np.ndarray,
                 to_query: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Standard deviation over a store of each row of `label_weights` [Q, D] scored against its
    track `vectors` [n, D] (on LABEL_SPREAD_SAMPLE evenly spaced tracks); 1.0 where it is 0.
    to_query: the map queries go through to meet `vectors` (an index's exact copy, whitened)."""
    n = len(vectors)
    sample = np.linspace(0, n - 1, LABEL_SPREAD_SAMPLE).astype(np.int64) if n > LABEL_SPREAD_SAMPLE else \
        np.arange(n, dtype=np.int64)
    queries = np.atleast_2d(label_weights).astype(np.float32)
    scores = vectors[sample] @ (queries if to_query is None else to_query(queries)).T
    spread = scores.std(axis=0) if n else np.zeros(len(queries))
    return np.where(spread > 0, spread, 1.0).astype(np.float64)


def tag_attribute_weights(model, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(attribute columns, weights [tags, columns]) of vocabulary tags scored as queries of
    them would be: a tag that relates to attribute poles ("calm") weighs them; [] and an empty
    matrix for a model without poles."""
    per_tag = [model.attribute_weights(name) for name in names] if hasattr(model, "attribute_weights") else []
    columns = list(dict.fromkeys(column for weights in per_tag for column in weights))
    weights = np.array([[w.get(c, 0.0) for c in columns] for w in per_tag]).reshape(len(names), len(columns))
    return columns, weights


def tag_attribute_terms(model, names: Sequence[str], tag_vectors: np.ndarray,
                        spread_of: Callable[[np.ndarray], np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(attribute columns, weights [tags, columns], label spread [tags]) of vocabulary tags
    scored as queries of them would be: `spread_of(rows)` is the spread over the store of the
    label evidence of those rows of `tag_vectors` (label_spread), asked only for the tags that
    relate to attribute poles; 1.0 for the others."""
    columns, weights = tag_attribute_weights(model, names)
    spread = np.ones(len(names))
    related = np.flatnonzero(np.abs(weights).sum(axis=1) > 0)
    if len(related):
        spread[related] = spread_of(tag_vectors[related])
    return columns, weights, spread


def standardised_columns(attributes: list[dict], columns) -> dict[str, np.ndarray]:
    """z-scores of each attribute column over a set of tracks (`attributes`: one dict per
    track, as TrackAttributes.as_dict() gives), as a store standardises its tracks."""
    return {column: standardised([a.get(column) for a in attributes], column) for column in columns}


def query_scores_with_attributes(label_scores: np.ndarray, attribute_weights: dict[str, float],
                                 attribute_z: dict[str, np.ndarray]) -> np.ndarray:
    """One query's scores over a set of tracks as `mre query` scores a store: its label
    evidence `label_scores [n]` plus its attribute weights on the set's z-scores, in units of
    the label evidence's spread over the set. Without weights, the label evidence unchanged."""
    if not attribute_weights:
        return label_scores
    columns = list(attribute_weights)
    return attribute_scores(label_scores, float(np.std(label_scores)) or 1.0,
                            np.array([attribute_weights[c] for c in columns]),
                            np.stack([attribute_z[c] for c in columns], axis=1))


def nearest_seen_mean(words: np.ndarray, seen_words: np.ndarray, seen_rows: np.ndarray, k: int,
                      temperature: float) -> np.ndarray:
    """A word's trained-space vector read through the tags a model learnt (ConSE in its own
    space): the softmax-weighted mean, at `temperature`, of the rows `seen_rows` [S, D] of its
    `k` nearest seen tags by word-vector cosine. Not made unit: with unit rows, the word's
    score on a track is then the weighted mean of its neighbours' scores, never above the best
    of them, so a word no clip named cannot lead a track's tags ahead of the words it is read
    through. `words` [N, W] and `seen_words` [S, W] need not be unit; returns [N, D] float32."""
    def unit(rows):
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    similarity = unit(words) @ unit(seen_words).T
    out = np.empty((len(similarity), seen_rows.shape[1]), dtype=np.float64)
    for i, row in enumerate(similarity):
        nearest = np.argsort(-row, kind="stable")[:k]
        weights = np.exp((row[nearest] - row[nearest].max()) / temperature)
        out[i] = (weights / weights.sum()) @ np.asarray(seen_rows, dtype=np.float64)[nearest]
    return out.astype(np.float32)
