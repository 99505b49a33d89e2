"""Song → words for audio files, with or without a store: `mre tags FILE...`.

With a tagger model (musicnn-msd, musicnn-mtt) a file's tags are the tagger's own labels by
mean patch probability, as musicnn prints them. With the zero-shot model they come from the
tag vocabulary through the word space. Many files are embedded in one batched run.
"""
from __future__ import annotations

import numpy as np

from mre.embedder.models import TaggerModel, load_model
from mre.embedder.runner import embed_files
from mre.embedder.words import load_tag_vocabulary
from mre.retrieval.library import TagResult, _sigmoid


def tag_space(model, vocabulary: str | None = None) -> tuple[list[str], np.ndarray | None]:
    """Tag names and their rows in the model's vector space (None: the vector is the tags' scores)."""
    if isinstance(model, TaggerModel):
        return list(model.labels), None
    entries = load_tag_vocabulary(vocabulary)
    matrix, kept = model.tag_matrix([e.tag for e in entries])
    return kept, matrix


def top_tags(vector: np.ndarray, names: list[str], matrix: np.ndarray | None, k: int) -> list[dict]:
    scores = np.asarray(vector, dtype=np.float64) if matrix is None else _sigmoid(matrix @ vector)
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"tag": names[i], "score": round(float(scores[i]), 6)} for i in order]


def tag_files(paths: list[str], model_name: str | None = None, *, k: int = 10, vocabulary: str | None = None,
              word_vectors: str | None = None, device: str = "auto", batch_size: int = 64,
              workers: int | None = None) -> list[TagResult | tuple[str, str]]:
    """One TagResult per readable file, or (path, reason) for a file that could not be read; input order."""
    model = load_model(model_name, device="cpu", word_vectors=word_vectors)
    names, matrix = tag_space(model, vocabulary)
    results = []
    for track in embed_files(paths, model, device=device, batch_size=batch_size,
                             workers=workers if len(paths) > 1 else 0):
        if track.error is not None or track.patch_mean is None:
            results.append((track.path, track.error or "no audio"))
            continue
        vector = model.track_vector(track.patch_mean)
        results.append(TagResult(path=track.path, tags=top_tags(vector, names, matrix, k)))
    return results
