"""One quality benchmark run: read a dataset, embed its audio, score every tag, report.

Scores are what `mre query` ranks by: the model's tag vector (a tag used as a query) against
each track's vector, plus, for a tag related to the attribute poles (calm, energetic, fast...)
of a model that has them, its weights on the tracks' musical attributes standardised over
the evaluated tracks (mre.embedder.scoring), measured in the same decoding pass. The report's
notes give the macro ROC-AUC without the attributes beside it. A track whose audio cannot be
decoded is left out and counted in the report's notes, as a missing file is.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mre.benchmarks.datasets import Dataset, DatasetError, read_folders, read_gtzan, read_mtat, read_table
from mre.benchmarks.quality import QualityReport, evaluate, write_report
from mre.embedder.attributes import extract_attributes
from mre.embedder.models import load_model
from mre.embedder.scoring import query_scores_with_attributes, standardised_columns
from mre.embedder.runner import embed_files


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


def run_quality(kind: str, root: str | Path, *, tracks: str = "tracks.csv", split_dir=None, split: str = "test",
                model_name: str | None = None, out: str | Path | None = None, device: str = "auto",
                word_vectors: str | None = None, workers: int | None = None) -> tuple[QualityReport, list[Path]]:
    """Evaluate a model on a dataset split; returns the report and the files written to `out`."""
    from mre.embedder.runner import choose_device

    model = load_model(model_name, device=choose_device(device), word_vectors=word_vectors)
    if not hasattr(model, "tag_matrix"):
        raise DatasetError(f"{model_name} is a tagger with a fixed label list; benchmark mre-zs-musicnn or a trained model")
    dataset = read_dataset(kind, root, tracks=tracks, split_dir=split_dir, word_space=model.words)
    if split in dataset.splits:
        dataset, eval_split = dataset.subset(split), None  # embed only the split's audio
    else:
        eval_split = split  # evaluate() says what it did (no split at all) or refuses (split missing)
    tag_matrix, kept = model.tag_matrix(dataset.tags)
    dataset = _keep_tags(dataset, kept, "no word of the tag is in the word vectors")
    if not dataset.tags:
        raise DatasetError(f"{dataset.name}: no tag has a word vector; nothing to evaluate")

    weigh = getattr(model, "attribute_weights", None)  # models without attribute poles: none
    tag_weights = {tag: weigh(tag) for tag in dataset.tags} if weigh is not None else {}
    tag_weights = {tag: weights for tag, weights in tag_weights.items() if weights}
    vectors, attributes, ok_rows, failed = [], [], [], []
    paths = [str(t.path) for t in dataset.tracks]
    for row, track in enumerate(embed_files(paths, model, device=choose_device(device), workers=workers,
                                            analyse=extract_attributes if tag_weights else None)):
        if track.error is None and track.patch_mean is not None:
            vectors.append(model.track_vector(track.patch_mean))
            attributes.append(track.extras.as_dict() if hasattr(track.extras, "as_dict") else {})
            ok_rows.append(row)
        else:
            failed.append((track.path, track.error or "no audio"))
    if not ok_rows:
        raise DatasetError(f"{dataset.name}: no track could be decoded (first: {failed[0][0]}: {failed[0][1]})")
    dataset = _keep_rows(dataset, np.asarray(ok_rows))
    label_scores = np.stack(vectors) @ tag_matrix.T
    scores = label_scores.copy()
    if tag_weights:
        columns = sorted({column for weights in tag_weights.values() for column in weights})
        z = standardised_columns(attributes, columns)
        for column_index, tag in enumerate(dataset.tags):
            scores[:, column_index] = query_scores_with_attributes(label_scores[:, column_index], tag_weights.get(tag), z)
    seen = getattr(model, "seen_tags", None)
    unseen = getattr(model, "unseen_tags", None)
    report = evaluate(dataset, scores, seen_tags=seen, unseen_tags=unseen, split=eval_split, model=model.model_id)
    weighted = [tag for tag in dataset.tags if tag in tag_weights]
    if weighted:
        plain = evaluate(dataset, label_scores, seen_tags=seen, unseen_tags=unseen, split=eval_split, model=model.model_id)
        report.notes.append(
            f"{len(weighted)} of {len(dataset.tags)} tags also weigh musical attributes ({', '.join(weighted[:8])}"
            f"{', ...' if len(weighted) > 8 else ''}); macro ROC-AUC without them: {plain.tag_retrieval_auc:.3f}")
    if eval_split is None:
        report.split = split  # the subset embedded above is that split, not "all tracks"
    if failed:
        report.notes.append(f"{len(failed)} tracks could not be decoded and were left out (first: {failed[0][0]})")
    written = write_report(report, out) if out is not None else []
    return report, written
