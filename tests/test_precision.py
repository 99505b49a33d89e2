"""`mre index --precision`: the model's arithmetic under autocast, recorded in the store.

Half precision is meant for GPUs; CI has none, so these run the same batching on the CPU
(torch's autocast covers both devices with the same code path in the runner).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mre.embedder.models.factory import load_model
from mre.embedder.runner import PRECISIONS, embed_tracks


def _vectors(paths, model, precision):
    tracks = list(embed_tracks(paths, model, attributes=False, device="cpu", workers=0, batch_size=8,
                               precision=precision))
    assert [t.index for t in tracks] == list(range(len(paths)))
    assert all(t.error is None for t in tracks)
    return np.stack([t.vector for t in tracks])


def test_bfloat16_changes_the_arithmetic_but_every_track_stays_its_own_nearest(music_library):
    paths = sorted(str(p) for p in music_library.rglob("*") if p.suffix in (".wav", ".flac", ".ogg")
                   and p.stat().st_size > 1000)
    model = load_model(None, device="cpu")
    full = _vectors(paths, model, "float32")
    half = _vectors(paths, model, "bfloat16")
    assert np.all(np.isfinite(half))
    assert not np.array_equal(full, half)  # autocast really ran the model in bfloat16
    # what a user relies on: a bfloat16 store still finds each track as itself
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    similarity = unit(half) @ unit(full).T
    assert np.array_equal(similarity.argmax(axis=1), np.arange(len(paths)))


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        list(embed_tracks(["x.wav"], load_model(None, device="cpu"), precision="float8"))
    assert PRECISIONS == ("float32", "float16", "bfloat16")


def test_the_store_records_its_precision_and_keeps_it(cli, music_library, tmp_path):
    store = tmp_path / "store"
    first = cli("index", music_library, "--store", store, "--workers", "0", "--precision", "bfloat16")
    assert first.exit_code == 0, first.output

    def meta():
        current = (store / "CURRENT").read_text().strip()
        return json.loads((store / "generations" / current / "meta.json").read_text())

    assert meta()["precision"] == "bfloat16"
    # a plain re-run keeps the store's precision: nothing to embed
    again = cli("index", music_library, "--store", store, "--workers", "0")
    assert again.exit_code == 0, again.output
    assert meta()["precision"] == "bfloat16"
    assert "indexed 0" in again.output or "unchanged" in again.output
    # asking for another precision re-embeds every track, said as a model change is
    back = cli("index", music_library, "--store", store, "--workers", "0", "--precision", "float32")
    assert back.exit_code == 0, back.output
    assert "bfloat16 → float32" in back.output
    assert meta()["precision"] == "float32"
