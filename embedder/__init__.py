"""mre.embedder: audio and words into one space.

Sub-packages, lowest first (docs/ARCHITECTURE.md): ``audio`` (decoding, the mel front-end,
musical attributes) and ``words`` (word vectors, MiniLM, spelling, the tag vocabulary) know
nothing of each other; ``models`` (the registry, the musicnn port, the zero-shot models, the
paper's model, scoring and tag spaces) builds on both; the batch ``runner`` drives a model over
files. The two entry points are exported here, loaded on first use: importing a sub-module
(the query path imports ``words`` and ``models.registry``) must not import torch or the runner.
"""
from __future__ import annotations

__all__ = ["embed_files", "load_model"]

_EXPORTS = {"embed_files": "mre.embedder.runner", "load_model": "mre.embedder.models.factory"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mre.embedder' has no attribute {name!r}")
