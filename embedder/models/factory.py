"""One entry point for every model the engine can run: `load_model(name_or_file)`.

Models share the runner's interface (a front-end config, `patch_outputs`, `track_vector`)
so indexing, tagging and benchmarks do not care which one they hold.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mre.embedder.models.registry import MODELS, get_model_spec, load_tagger
from mre.embedder.models.corpus_model import CORPUS_MODEL_NAME, CorpusZeroShotModel
from mre.embedder.models.zeroshot import MODEL_NAME as TAGGER_ZEROSHOT_MODEL, ZeroShotTaggerModel, torch_device

if TYPE_CHECKING:
    import torch

# The model `mre index` uses when none is named: the taggers' labels plus the space trained on
# the rendered corpus (MODEL_CARD.md). mre-zs-musicnn stays available by name, and a store made
# with it keeps being indexed and searched with it (the store records its model).
DEFAULT_MODEL = CORPUS_MODEL_NAME

__all__ = ["DEFAULT_MODEL", "TaggerModel", "load_model", "model_names", "shown_scores"]


class TaggerModel:
    """One pre-trained tagger as-is: per-track label probabilities (mean over patches)."""

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.spec = get_model_spec(name)
        self.name = name
        self.labels = list(self.spec.labels)
        self.frontend = self.spec.frontend
        self.output_dim = self.dim = len(self.labels)  # a track vector is its label probabilities
        self.device = device  # resolved ("auto" included) when the weights load: only audio needs torch
        self._tagger = None

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.spec.sha256[:12]}"

    def to(self, device):
        self.device = device
        if self._tagger is not None:
            self._tagger = self._tagger.to(torch_device(device))
        return self

    @property
    def tagger(self):
        if self._tagger is None:
            self._tagger = load_tagger(self.name, device=torch_device(self.device))
        return self._tagger

    def patch_outputs(self, mel_patches: torch.Tensor) -> torch.Tensor:
        return self.tagger(mel_patches)[0]

    def track_vector(self, mean_probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(mean_probabilities, dtype=np.float32)

    # a tagger learnt its labels elsewhere, and has no words to relate to attribute poles
    seen_tags: list[str] | None = None
    unseen_tags: list[str] | None = None

    def attribute_weights(self, text: str) -> dict[str, float]:
        return {}


def shown_scores(model, raw: np.ndarray) -> np.ndarray:
    """Scores as users see them: the zero-shot model's log-odds as 0–1 (their sigmoid); a
    tagger's probabilities and a trained model's cosines as they are."""
    raw = np.asarray(raw, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-raw)) if isinstance(model, ZeroShotTaggerModel) else raw


ZERO_SHOT_MODELS = {TAGGER_ZEROSHOT_MODEL: ZeroShotTaggerModel, CORPUS_MODEL_NAME: CorpusZeroShotModel}


def model_names() -> list[str]:
    return [DEFAULT_MODEL, *[name for name in ZERO_SHOT_MODELS if name != DEFAULT_MODEL], *MODELS]


def load_model(name: str | None = None, device: str | torch.device = "cpu", word_vectors: str | None = None):
    """A model by registry name (default: the zero-shot model) or by path to a trained model file.

    device: "auto", "cpu", "cuda" or a torch.device; a tagger's weights load there when audio
    is first embedded.
    """
    name = name or DEFAULT_MODEL
    if name in ZERO_SHOT_MODELS:
        return ZERO_SHOT_MODELS[name](device=device, word_vectors=word_vectors)
    if name in MODELS:
        return TaggerModel(name, device=device)
    if Path(name).is_file():
        from mre.embedder.models.trained import load_trained_model  # the paper's model (mre train)

        return load_trained_model(name, device=torch_device(device), word_vectors=word_vectors)
    if Path(name).suffix or "/" in name:
        raise ValueError(f"model file {name} not found (a store made with it needs it to be searched)")
    raise ValueError(f"unknown model {name!r}: use one of {', '.join(model_names())} or a model file from `mre train`")
