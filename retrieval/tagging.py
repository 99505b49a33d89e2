"""Song → words for audio files without a store: `mre tags FILE...`.

With a tagger model (musicnn-msd, musicnn-mtt) a file's tags are the tagger's own labels by
mean patch probability, as musicnn prints them. With the zero-shot model they come from the
tag vocabulary through the word space. Many files are embedded in one batched run. (With a
store, `Library.tag_many` tags files inside and outside it alike, attributes included.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mre.embedder.models.factory import TaggerModel, load_model, shown_scores
from mre.embedder.models.tag_space import TagSpace, best_tags, tagger_space, vocabulary_space


@dataclass
class TagResult:
    path: str
    tags: list[dict]            # [{"tag": ..., "score": ...}], best first
    track_id: str | None = None

    def as_dict(self) -> dict:
        out = {"path": self.path, "tags": self.tags}
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out


def tag_space(model, vocabulary: str | None = None) -> TagSpace:
    """A tagger's own labels, or the vocabulary's tags (None: the shipped vocabulary) in the model's space."""
    return tagger_space(model) if isinstance(model, TaggerModel) else vocabulary_space(model, vocabulary)


def tag_scores(model, vector: np.ndarray, space: TagSpace) -> np.ndarray:
    """Every tag's score for one track vector, as users see them."""
    return np.asarray(vector, dtype=np.float64) if space.matrix is None else shown_scores(model, space.matrix @ vector)


def tag_files(paths: list[str], model_name: str | None = None, *, k: int | None = 10, threshold: float | None = None,
              vocabulary: str | None = None, word_vectors: str | None = None, device: str = "auto",
              batch_size: int = 64, workers: int | None = None,
              note: Callable[[str], None] | None = None) -> list[TagResult | tuple[str, str]]:
    """One TagResult per readable file, or (path, reason) for a file that could not be read; input order.

    k, threshold: as `best_tags`. note: called with a line naming vocabulary tags left out."""
    model = load_model(model_name, device="cpu", word_vectors=word_vectors)
    space = tag_space(model, vocabulary)
    if note is not None and space.lacking_note():
        note(space.lacking_note())
    from mre.embedder.runner import embed_tracks  # decoding (soundfile, soxr): only when files are tagged

    results = []
    for track in embed_tracks(paths, model, device=device, batch_size=batch_size,
                              workers=workers if len(paths) > 1 else 0, attributes=False):
        if track.error is not None:
            results.append((track.path, track.error))
            continue
        scores = tag_scores(model, track.vector, space)
        results.append(TagResult(path=track.path, tags=best_tags(space.names, scores, k, threshold)))
    return results
