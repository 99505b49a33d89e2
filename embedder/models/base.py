"""What every model offers, declared: the interface the runner, the indexer, the Library and the
benchmarks use instead of probing a model for what it has.

``Model`` is the audio side (every model ``load_model`` returns: the taggers, the zero-shot
models, a trained model): a front-end, per-patch outputs, a track vector. ``WordModel`` adds the
word side that puts words in the same space (every model but a plain tagger). ``QueryVector`` is
what a query becomes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mre.embedder.audio.frontend_config import FrontendConfig
from mre.embedder.words.space import shorten

if TYPE_CHECKING:
    import torch

    from mre.embedder.words.space import WordSpace

__all__ = ["Model", "WordModel", "QueryVector"]


@dataclass
class QueryVector:
    """A query mapped onto the label space, with what was used to get there."""

    text: str
    vector: np.ndarray                 # [n_labels] weights; score = vector · track_vector
    matched_labels: list[str] = field(default_factory=list)   # exact label matches (negated with '-')
    related_labels: list[tuple[str, float]] = field(default_factory=list)  # top weights
    ignored: list[str] = field(default_factory=list)          # words with no vector
    messages: list[str] = field(default_factory=list)         # one line each, for the CLI
    attribute_weights: dict[str, float] = field(default_factory=dict)  # column → weight on its z-score

    def note_split(self, split: dict[str, tuple[str, ...]]) -> None:
        """Say once how each unknown word written as one was read ("synthwave" as "synth wave")."""
        for word, parts in split.items():
            note = f'read "{shorten(word, 40)}" as "{" ".join(parts)}" (not in the word vectors as one word)'
            if note not in self.messages and len(self.messages) < 5:
                self.messages.append(note)

    def note_ignored(self, phrase) -> None:
        """Record the words of a phrase the word vectors lack, with one message line each, and
        how a word written as one was read."""
        self.note_split(phrase.split)
        self.ignored.extend(phrase.ignored)
        for word in phrase.ignored:
            if len(self.messages) > 5:
                continue
            if len(self.messages) == 5:  # a pasted wall of text: five lines say enough
                self.messages.append("ignored more words that are not in the word vectors")
                continue
            hint = phrase.suggestions.get(word) or []
            more = f"; did you mean: {', '.join(hint)}?" if hint else ""
            self.messages.append(f'ignored "{shorten(word, 40)}": not in the word vectors{more}')


@runtime_checkable
class Model(Protocol):
    """Audio → a track vector. The runner feeds ``patch_outputs`` mel patches of ``frontend``'s
    shape and averages the outputs (``output_dim`` each) over a track; ``track_vector`` turns that
    mean into the vector stores keep (``dim`` values, float32)."""

    name: str
    dim: int
    output_dim: int
    frontend: FrontendConfig
    device: object
    # the tags a trained model learnt from (seen) and was held out from (unseen); None for others
    seen_tags: list[str] | None
    unseen_tags: list[str] | None

    @property
    def model_id(self) -> str: ...

    def to(self, device) -> "Model": ...

    def patch_outputs(self, mel_patches: "torch.Tensor") -> "torch.Tensor": ...

    def track_vector(self, mean_outputs: np.ndarray) -> np.ndarray: ...

    def attribute_weights(self, text: str) -> dict[str, float]:
        """A query's weights on the musical attributes' z-scores; {} for a model without
        attribute poles."""
        ...


@runtime_checkable
class WordModel(Model, Protocol):
    """A Model with a word side: queries and tags become vectors of the track vectors' space."""

    @property
    def words(self) -> "WordSpace": ...

    @property
    def word_vectors_id(self) -> str: ...

    def query_vector(self, text: str) -> QueryVector: ...

    def tag_matrix(self, tags: list[str]) -> tuple[np.ndarray, list[str]]: ...

    def describe(self) -> dict: ...
