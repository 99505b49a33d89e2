"""Which pre-trained models exist: a registry of names → front-end, labels, weights, licence.

Kept apart from the architecture code (``musicnn.py``) the way open_clip keeps
``pretrained.py`` beside ``factory.py``: an entry is data, and a new model is a new entry.
Weights ship inside the package (``weights/``) with their sha256 recorded here, because
``musicnn`` itself cannot be installed by pip next to us (its metadata pins numpy<1.17 and
TensorFlow); ``python -m mre.embedder.models.convert convert`` regenerates them byte for byte.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mre.embedder.audio.frontend_config import FrontendConfig
from mre.embedder.words.labels import MSD_LABELS, MTT_LABELS  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import torch

    from mre.embedder.models.musicnn import MusicnnTagger, VggTagger

__all__ = [
    "ModelSpec",
    "MODELS",
    "MSD_LABELS",
    "MTT_LABELS",
    "UnknownModelError",
    "WeightsIntegrityError",
    "get_model_spec",
    "load_tagger",
    "weights_path",
]

# The registry is data: naming a model, its labels or its id must not import torch (a query
# reads no audio), so the architecture (musicnn.py) is imported only where weights load.
# The weights stay in embedder/weights/ (package data of mre.embedder), beside no module.
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

MUSICNN_LICENCE = (
    "ISC — musicnn 0.1.0, Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019, "
    "code by Jordi Pons; notice in mre/embedder/weights/NOTICE-musicnn.txt"
)
# musicnn's config.json for every model: SR 16000, n_fft 512, hop 256, 96 mels, 187 frames.
MUSICNN_FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, patch_frames=187)


class UnknownModelError(KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class WeightsIntegrityError(RuntimeError):
    """A model's weights file is missing or its sha256 is not the registered one."""


@dataclass(frozen=True)
class ModelSpec:
    """One named pre-trained model, as data.

    name: registry key. kind: architecture ("musicnn" or "vgg" for the taggers).
    labels: output labels, index = output unit. frontend: the audio → mel settings it needs.
    weights_file: file name under ``mre/embedder/weights/``. sha256: of that file.
    licence: licence and copyright of the weights. description: one line for ``--help``.
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    frontend: FrontendConfig
    weights_file: str
    sha256: str
    licence: str
    description: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="musicnn-msd",
            kind="musicnn",
            labels=MSD_LABELS,
            frontend=MUSICNN_FRONTEND,
            weights_file="musicnn-msd.npz",
            sha256="89f62ebc438552061448ececa9e190553b34a3403229b70e20ca9b410b7fb7c7",
            licence=MUSICNN_LICENCE,
            description="musicnn MSD_musicnn: 50 Last.fm tags, trained on the Million Song Dataset",
        ),
        ModelSpec(
            name="musicnn-mtt",
            kind="musicnn",
            labels=MTT_LABELS,
            frontend=MUSICNN_FRONTEND,
            weights_file="musicnn-mtt.npz",
            sha256="6692cd123833986a1397134c34b1bc4243b1bd8c24f2752c23ef6c26d1b32fcd",
            licence=MUSICNN_LICENCE,
            description="musicnn MTT_musicnn: 50 tags, trained on MagnaTagATune",
        ),
        ModelSpec(
            name="musicnn-vgg-msd",
            kind="vgg",
            labels=MSD_LABELS,
            frontend=MUSICNN_FRONTEND,
            weights_file="musicnn-vgg-msd.npz",
            sha256="d72016b11f283e599f32292f195762a9a77e37f7d150ce0cf42d12f42b4e1932",
            licence=MUSICNN_LICENCE,
            description="musicnn MSD_vgg baseline: 50 Last.fm tags, trained on the Million Song Dataset",
        ),
        ModelSpec(
            name="musicnn-vgg-mtt",
            kind="vgg",
            labels=MTT_LABELS,
            frontend=MUSICNN_FRONTEND,
            weights_file="musicnn-vgg-mtt.npz",
            sha256="b776f6ba1bb1eb138dbfcba060f7d7e7213c706b4cd4bc15d2e3d00574623871",
            licence=MUSICNN_LICENCE,
            description="musicnn MTT_vgg baseline: 50 tags, trained on MagnaTagATune",
        ),
    ]
}


def get_model_spec(name: str) -> ModelSpec:
    """The registry entry called ``name``; :class:`UnknownModelError` lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def weights_path(spec: ModelSpec, weights_dir: str | Path | None = None) -> Path:
    return Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / spec.weights_file


# (path, size, mtime_ns) of files whose sha256 already matched in this process.
_verified_files: set[tuple[str, int, int]] = set()


def _verify_sha256(path: Path, expected: str) -> None:
    try:
        stat = path.stat()
    except OSError as error:
        raise WeightsIntegrityError(
            f"weights file {path} is missing ({error.strerror}); reinstall music-retrieval-engine "
            "or run `python -m mre.embedder.models.convert convert`"
        ) from error
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _verified_files:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise WeightsIntegrityError(
            f"weights file {path} is corrupt: sha256 {digest[:16]}…, expected {expected[:16]}…"
        )
    _verified_files.add(key)


def load_tagger(name: str, device: str | torch.device = "cpu", weights_dir: str | Path | None = None) -> MusicnnTagger | VggTagger:
    """Load the named tagger in eval mode on ``device`` after checking its weights' sha256.

    ``weights_dir`` overrides the packaged ``weights/`` folder (for tests, or weights a user
    converted themselves with ``python -m mre.embedder.models.convert convert --output-dir``).
    """
    from mre.embedder.models.musicnn import tagger_from_tf_tensors

    spec = get_model_spec(name)
    path = weights_path(spec, weights_dir)
    _verify_sha256(path, spec.sha256)
    with np.load(path, allow_pickle=False) as archive:
        tensors = {key: archive[key] for key in archive.files}
    tagger = tagger_from_tf_tensors(spec.kind, tensors)
    if tagger.num_tags != len(spec.labels):
        raise WeightsIntegrityError(f"{path} has {tagger.num_tags} outputs, {name} has {len(spec.labels)} labels")
    return tagger.to(device)
