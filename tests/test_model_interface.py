"""Every model `load_model` returns offers the declared interface (mre.embedder.models.base):
the runner, the indexer, the Library and the benchmarks call it without probing."""
from __future__ import annotations

import numpy as np
import pytest

from mre.embedder.models.base import Model, WordModel
from mre.embedder.models.factory import load_model
from mre.embedder.models.registry import MODELS

ZERO_SHOT = ["mre-zs-musicnn", "mre-zs-corpus"]


@pytest.mark.parametrize("name", sorted(MODELS) + ZERO_SHOT)
def test_every_model_declares_the_model_interface(name):
    model = load_model(name, device="cpu")
    assert isinstance(model, Model)
    assert isinstance(model, WordModel) == (name in ZERO_SHOT)  # a plain tagger has no word side
    vector = model.track_vector(np.full(model.output_dim, 0.5, dtype=np.float32))
    assert vector.dtype == np.float32 and vector.shape == (model.dim,)
    assert model.seen_tags is None and model.unseen_tags is None  # learnt nowhere here
    if name not in ZERO_SHOT:
        assert model.attribute_weights("calm") == {}  # a tagger relates no words to attributes
