"""One quality benchmark run: read a dataset, embed its audio, score every tag, report.

Zero-shot models (mre-zs-musicnn, a trained model) are scored as `mre query` ranks: the
model's tag vector (a tag used as a query) against each track's vector, plus, for a tag
related to the attribute poles (calm, energetic, fast...) of a model that has them, its
weights on the tracks' musical attributes standardised over the evaluated tracks
(mre.embedder.models.scoring), measured in the same decoding pass. The report's notes give the
macro ROC-AUC without the attributes beside it.
Their tag rows come from models.tag_space, as `mre tags` and the store's: a dataset tag with
a word the word vectors lack is left out, named in the notes and in drop_reasons, rather than
scored on its other words under its own name.

A tagger (musicnn-msd, musicnn-mtt, the vgg ones) is the paper's supervised row: it scores
only the dataset tags that are among its own labels (the same tokens: "hip hop" = "Hip-Hop"),
by its mean probability; the other tags are left out of its figures, and the report names
both. A track whose audio cannot be decoded is left out and counted in the report's notes,
as a missing file is. Per-track predictions (quality_predictions) come from the same scores.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mre.training.datasets import Dataset, DatasetError, read_folders, read_gtzan, read_mtat, read_table
from mre.benchmarks.quality import QualityReport, evaluate, write_report
from mre.benchmarks.quality_predictions import DEFAULT_THRESHOLD, Predictions
from mre.embedder.models.factory import TaggerModel, load_model, shown_scores
from mre.embedder.models.scoring import query_scores_with_attributes, standardised_columns
from mre.embedder.runner import embed_tracks
from mre.embedder.models.tag_space import named_tags_space, tagger_space, vocabulary_space


def read_dataset(kind: str, root: str | Path, *, tracks: str = "tracks.csv", split_dir=None, word_space=None) -> Dataset:
    if kind == "mtat":
        return read_mtat(root, word_space=word_space)
    if kind == "gtzan":
        return read_gtzan(root, split_dir=split_dir)
    if kind == "table":
        return read_table(root, tracks=tracks, word_space=word_space)
    if kind == "folders":
        return read_folders(root, word_space=word_space)
    raise DatasetError(f"unknown dataset kind {kind!r}: use mtat, gtzan, table or folders")


def _keep_rows(dataset: Dataset, rows: np.ndarray) -> Dataset:
    return replace(dataset, tracks=[dataset.tracks[i] for i in rows], labels=dataset.labels[rows])


def _keep_tags(dataset: Dataset, tags: list[str], reason: str) -> Dataset:
    if tags == dataset.tags:
        return dataset
    columns = [dataset.tags.index(t) for t in tags]
    dropped = [t for t in dataset.tags if t not in tags]
    reasons = {**dataset.drop_reasons, **{t: reason for t in dropped}}
    return replace(dataset, tags=tags, labels=dataset.labels[:, columns], dropped_tags=dataset.dropped_tags + dropped,
                   drop_reasons=reasons)


def tagger_columns(labels: list[str], tags: list[str], words) -> dict[str, int]:
    """Each dataset tag that is one of the tagger's labels → that label's output column.

    A tag is a label when the word layer tokenises both alike ("hip hop", "hip-hop" and
    "Hip-Hop" are one token), as a query that is a label is matched in the zero-shot model."""
    column_of_tokens: dict[tuple[str, ...], int] = {}
    for column, label in enumerate(labels):
        column_of_tokens.setdefault(tuple(words.tokens(label)), column)
    matched = {tag: column_of_tokens.get(tuple(words.tokens(tag))) for tag in tags}
    return {tag: column for tag, column in matched.items() if column is not None}


def _with_attributes(label_scores: np.ndarray, weights: list[dict], attributes: list[dict]) -> np.ndarray:
    """Scores [tracks, tags] of tags used as queries: label evidence plus each tag's attribute
    weights (one dict per tag, empty for none) on the tracks' attributes standardised over them."""
    columns = sorted({column for tag_weights in weights for column in tag_weights})
    if not columns:
        return label_scores
    z = standardised_columns(attributes, columns)
    scores = label_scores.copy()
    for j, tag_weights in enumerate(weights):
        if tag_weights:
            scores[:, j] = query_scores_with_attributes(label_scores[:, j], tag_weights, z)
    return scores


def run_quality(kind: str, root: str | Path, *, tracks: str = "tracks.csv", split_dir=None, split: str = "test",
                model_name: str | None = None, out: str | Path | None = None, device: str = "auto",
                word_vectors: str | None = None, workers: int | None = None,
                threshold: float = DEFAULT_THRESHOLD) -> tuple[QualityReport, list[Path]]:
    """Evaluate a model on a dataset split; returns the report and the files written to `out`.

    threshold: per-track predictions keep the tags whose score (as users see it) reaches it."""
    from mre.embedder.runner import choose_device
    from mre.embedder.words.space import WordSpace, load_word_vectors

    model = load_model(model_name, device=choose_device(device), word_vectors=word_vectors)
    supervised = isinstance(model, TaggerModel)
    # a tagger needs no word vector for a tag, only the word layer's tokens to match its labels
    words = WordSpace(load_word_vectors(word_vectors)) if supervised else model.words
    dataset = read_dataset(kind, root, tracks=tracks, split_dir=split_dir, word_space=None if supervised else words)
    if split in dataset.splits:
        dataset, eval_split = dataset.subset(split), None  # embed only the split's audio
    else:
        eval_split = split  # evaluate() says what it did (no split at all) or refuses (split missing)
    all_tags, all_labels = list(dataset.tags), dataset.labels  # the true tags of the predictions, any model
    unclassed_tracks = 0
    if supervised:
        label_column = tagger_columns(model.labels, dataset.tags, words)
        dataset = _keep_tags(dataset, [t for t in dataset.tags if t in label_column], f"not among {model.name}'s labels")
        if not dataset.tags:
            raise DatasetError(f"{dataset.name}: none of its {len(all_tags)} tags ({', '.join(all_tags[:8])}"
                               f"{', ...' if len(all_tags) > 8 else ''}) is among {model.name}'s labels")
        vocabulary = tagger_space(model)
    else:
        # the dataset's tags as mre tags and the store score them (models.tag_space): a tag with a
        # word the word vectors lack is left out and named, not scored on its other words
        try:
            dataset_space = named_tags_space(model, dataset.tags, f"{dataset.name}'s tags")
        except ValueError as error:
            raise DatasetError(f"{dataset.name}: {error}; nothing to evaluate") from None
        tag_matrix = dataset_space.matrix
        dataset = _keep_tags(dataset, dataset_space.names, "a word of the tag is not in the word vectors")
        if dataset.single_label and dataset_space.lacking:
            # a track whose one class was skipped has no class left to be right or wrong about
            classed = np.flatnonzero(dataset.labels.any(axis=1))
            if len(classed) < len(dataset.tracks):
                unclassed_tracks = len(dataset.tracks) - len(classed)
                dataset, all_labels = _keep_rows(dataset, classed), all_labels[classed]
        vocabulary = vocabulary_space(model)

    tag_weights = [model.attribute_weights(tag) for tag in dataset.tags]  # {} for models without attribute poles
    vocabulary_weights = [model.attribute_weights(tag) for tag in vocabulary.names] if vocabulary.matrix is not None else []
    vectors, attributes, ok_rows, failed = [], [], [], []
    paths = [str(t.path) for t in dataset.tracks]
    for track in embed_tracks(paths, model, device=choose_device(device), workers=workers,
                              attributes=any(tag_weights + vocabulary_weights)):
        if track.error is None:
            vectors.append(track.vector)
            attributes.append(track.attributes)
            ok_rows.append(track.index)
        else:
            failed.append((track.path, track.error))
    if not ok_rows:
        raise DatasetError(f"{dataset.name}: no track could be decoded (first: {failed[0][0]}: {failed[0][1]})")
    dataset = _keep_rows(dataset, np.asarray(ok_rows))
    track_vectors = np.stack(vectors)
    if supervised:
        label_scores = track_vectors[:, [label_column[tag] for tag in dataset.tags]].astype(np.float64)
    else:
        label_scores = track_vectors @ tag_matrix.T
    scores = _with_attributes(label_scores, tag_weights, attributes)
    seen, unseen = model.seen_tags, model.unseen_tags
    report = evaluate(dataset, scores, seen_tags=seen, unseen_tags=unseen, split=eval_split, model=model.model_id)
    report.supervised = supervised
    if supervised:
        left_out = [t for t in all_tags if t not in dataset.tags]
        report.notes.append(
            f"supervised: {model.name} scores the {len(dataset.tags)} of {len(all_tags)} dataset tags among its own "
            f"labels ({', '.join(dataset.tags)}), by its mean probability"
            + (f"; the other {len(left_out)} ({', '.join(left_out[:8])}{', ...' if len(left_out) > 8 else ''}) are "
               "excluded from its macro figures" if left_out else ""))
    weighted = [tag for tag, weights in zip(dataset.tags, tag_weights) if weights]
    if weighted:
        plain = evaluate(dataset, label_scores, seen_tags=seen, unseen_tags=unseen, split=eval_split, model=model.model_id)
        report.notes.append(
            f"{len(weighted)} of {len(dataset.tags)} tags also weigh musical attributes ({', '.join(weighted[:8])}"
            f"{', ...' if len(weighted) > 8 else ''}); macro ROC-AUC without them: {plain.tag_retrieval_auc:.3f}")
    if not supervised and dataset_space.lacking_note():
        report.notes.append(dataset_space.lacking_note()
                            + (f"; their {unclassed_tracks} track(s) are left out" if unclassed_tracks else ""))
    if eval_split is None:
        report.split = split  # the subset embedded above is that split, not "all tracks"
    if failed:
        report.notes.append(f"{len(failed)} tracks could not be decoded and were left out (first: {failed[0][0]})")

    if vocabulary.matrix is None:  # a tagger: its labels, by mean probability
        vocabulary_scores = track_vectors.astype(np.float64)
    else:
        vocabulary_scores = _with_attributes(track_vectors @ vocabulary.matrix.T, vocabulary_weights, attributes)
    report.predictions = Predictions(
        paths=[str(t.path) for t in dataset.tracks],
        true_tags=[[tag for tag, on in zip(all_tags, row) if on] for row in all_labels[ok_rows]],
        threshold=threshold,
        by_source={"dataset": (list(dataset.tags), shown_scores(model, scores)),
                   "vocabulary": (list(vocabulary.names), shown_scores(model, vocabulary_scores))})
    written = write_report(report, out) if out is not None else []
    return report, written
