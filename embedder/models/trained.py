"""A model made by `mre train`: one file, and the engine's model interface over it.

The file (``torch.save`` of plain data, read back with ``weights_only=True`` so opening a
model file never runs code) holds the network's weights and config, the input normalisation,
the word vectors' id and dimension, the seen and unseen tag lists, the training data's
fingerprint, and how training went. `mre index --model FILE` embeds with it; the store
records the file and its id, so every later query loads the same model.

Track vectors are the L2-normalised mean of the patch vectors; a word's vector is its word
vector through the word branch, normalised; scores are cosines (inner products).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from mre.embedder.audio.frontend import FrontendConfig
from mre.embedder.models.paper import BACKBONE_TAGGER, ModelConfig, TwoBranchModel
from mre.embedder.words.vectors import is_minilm, word_vectors_reference
from mre.embedder.words.space import WordSpace, parse_query
from mre.embedder.models.base import QueryVector
from mre.util.atomic import atomic_file

FILE_FORMAT = "mre-trained-model"
FILE_VERSION = 1
KIND = "trained-two-branch"


class ModelFileError(ValueError):
    """A model file that cannot be used: not one of ours, damaged, or made for other word vectors."""


def write_atomically(path: str | Path, payload: dict) -> None:
    """torch.save through mre.util.atomic: a crash leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as handle:
        torch.save(payload, handle)


def read_model_file(path: str | Path) -> tuple[dict, str]:
    """The model file's content and the sha256 of its bytes (read once for both)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a file that is not a checkpoint
        raise ModelFileError(f"{path} is not a model file from `mre train` ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ModelFileError(f"{path} is not a model file from `mre train`")
    if payload.get("version", 0) > FILE_VERSION:
        raise ModelFileError(f"{path} was written by a newer mre (model file version {payload['version']})")
    return payload, hashlib.sha256(data).hexdigest()


class TrainedModel:
    """The engine's view of a trained two-branch model (see `mre.embedder.models.factory`).

    network: the TwoBranchModel (weights loaded). words: the WordSpace it was trained with.
    """

    # a negated query term's weight beside the positive terms' mean: "X no Y" ranked clips with X and
    # without Y best at 0.25 of the weights tried, as for the zero-shot models (mre.training.choose_negation_weight)
    negated_weight = 0.25

    def __init__(self, network: TwoBranchModel, words: WordSpace, *, seen_tags: list[str], unseen_tags: list[str],
                 model_id: str, name: str = "trained", path: str | None = None,
                 device: str | torch.device = "cpu", info: dict | None = None):
        self.network = network.eval()
        self.config: ModelConfig = network.config
        self._words = words
        self.seen_tags = list(seen_tags)
        self.unseen_tags = list(unseen_tags)
        self.name = name
        self.path = path
        self.model_id = model_id  # "mre-paper@" + the model file's sha256: stores record it
        self.info = info or {}
        self.dim = self.output_dim = self.config.embedding_dim
        self.device = torch.device(device)
        self._backbone = None
        if self.config.audio_branch == "musicnn":
            from mre.embedder.models.registry import get_model_spec

            self.frontend: FrontendConfig = get_model_spec(BACKBONE_TAGGER).frontend
        else:
            self.frontend = self.config.frontend_config
        self.network.to(self.device)
        self._tag_cache: tuple[list[str], np.ndarray] | None = None

    # -- identity -----------------------------------------------------------------------
    @property
    def word_vectors_id(self) -> str:
        return self._words.vectors_id

    @property
    def words(self) -> WordSpace:
        return self._words

    def describe(self) -> dict:
        return {
            "model_id": self.model_id,
            "model_name": self.name,
            "model_file": str(Path(self.path).resolve()) if self.path else None,
            "kind": KIND,
            "audio_branch": self.config.audio_branch,
            "backbone": self.config.backbone if self.config.audio_branch == "musicnn" else None,
            "dim": self.dim,
            "word_vectors": self.word_vectors_id,
            "frontend": self.frontend.as_dict(),
            "seen_tags": len(self.seen_tags),
            "unseen_tags": len(self.unseen_tags),
        }

    def to(self, device: str | torch.device) -> "TrainedModel":
        self.device = torch.device(device)
        self.network.to(self.device)
        if self._backbone is not None:
            self._backbone = [tagger.to(self.device) for tagger in self._backbone]
        return self

    # -- audio side ---------------------------------------------------------------------
    @property
    def backbone(self) -> list:
        """The frozen taggers whose features (ModelConfig.backbone_layer) the head reads, in the config's order."""
        if self._backbone is None:
            from mre.embedder.models.registry import load_tagger

            self._backbone = [load_tagger(name, device=self.device) for name in self.config.backbone_taggers]
        return self._backbone

    def branch_inputs(self, mel_patches: torch.Tensor) -> torch.Tensor:
        """What the trainable audio branch reads: the mel patches, or the frozen backbone's features."""
        if self.config.audio_branch == "musicnn":
            layer = self.config.backbone_layer
            return torch.cat([tagger.outputs(mel_patches, layer)[1] for tagger in self.backbone], dim=1)
        return mel_patches

    def patch_outputs(self, mel_patches: torch.Tensor) -> torch.Tensor:
        """Unit audio vectors of mel patches ``[B, frames, n_mels]`` → ``[B, dim]``."""
        return self.network.embed_audio(self.branch_inputs(mel_patches))

    def track_vector(self, mean_patch_vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(mean_patch_vector, dtype=np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    # -- word side ----------------------------------------------------------------------
    def _project(self, word_vectors: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            projected = self.network.embed_words(torch.from_numpy(np.asarray(word_vectors, np.float32)).to(self.device))
        return projected.cpu().numpy()

    def tag_matrix(self, tags: list[str]) -> tuple[np.ndarray, list[str]]:
        """Unit vectors of tags in the joint space, one row per tag; tags with no known word are dropped."""
        rows, kept = [], []
        for tag in tags:
            vector = self._words.phrase_vector(tag).vector
            if vector is not None:
                rows.append(vector)
                kept.append(tag)
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return self._project(np.stack(rows)), kept

    def _training_tags(self) -> tuple[list[str], np.ndarray]:
        if self._tag_cache is None:
            matrix, kept = self.tag_matrix(self.seen_tags + self.unseen_tags)
            self._tag_cache = (kept, matrix)
        return self._tag_cache

    def attribute_weights(self, text: str) -> dict[str, float]:
        """The paper's model has no attribute poles: a query weighs no attribute."""
        return {}

    def query_vector(self, text: str) -> QueryVector:
        """A query's unit vector: the mean of its positive terms minus negated_weight times the mean of its negated ones."""
        query = QueryVector(text=text, vector=np.zeros(self.dim, dtype=np.float32))
        positive, negative = [], []
        for term in parse_query(text):
            phrase = self._words.phrase_vector(term.text)
            query.note_ignored(phrase)
            if phrase.vector is not None:
                (negative if term.negated else positive).append(phrase.vector)
                if term.text in self.seen_tags:
                    query.matched_labels.append(("-" if term.negated else "") + term.text)
        if not positive and not negative:
            raise ValueError(f'no word of "{text}" is in the word vectors' +
                             (f" ({'; '.join(query.messages)})" if query.messages else ""))
        vector = np.zeros(self.dim, dtype=np.float32)
        if positive:
            vector += self._project(np.stack(positive)).mean(axis=0)
        if negative:
            # beside positive terms a negation counts negated_weight (alone, the weight is undone by the unit length)
            vector -= (self.negated_weight if positive else 1.0) * self._project(np.stack(negative)).mean(axis=0)
        query.vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        # the training tags nearest to the query in the joint space: what it was understood as
        tags, matrix = self._training_tags()
        if tags:
            similarity = matrix @ query.vector
            query.related_labels = [(tags[i], float(similarity[i])) for i in np.argsort(-similarity)[:5]]
        return query


def model_payload(network: TwoBranchModel, words: WordSpace, *, word_vectors_path: str | None, seen_tags: list[str],
                  unseen_tags: list[str], fingerprint: str, training: dict) -> dict:
    """The model file's content (plain types and tensors only)."""
    return {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "config": network.config.as_dict(),
        "state_dict": {key: value.detach().cpu() for key, value in network.state_dict().items()},
        "word_vectors": {"id": words.vectors_id, "dim": words.dim,
                         "path": word_vectors_reference(word_vectors_path)},
        "seen_tags": list(seen_tags),
        "unseen_tags": list(unseen_tags),
        "fingerprint": fingerprint,
        "training": training,
    }


def network_from_payload(payload: dict) -> TwoBranchModel:
    network = TwoBranchModel(ModelConfig(**payload["config"]))
    network.load_state_dict(payload["state_dict"])
    return network


def load_trained_model(path: str | Path, device: str | torch.device = "cpu", word_vectors: str | None = None,
                       word_space: WordSpace | None = None) -> TrainedModel:
    """Open a model file from `mre train`. word_vectors: a KeyedVectors file replacing the recorded one
    (it must be the same vectors: checked by id); word_space: an already loaded WordSpace."""
    path = Path(path)
    payload, digest = read_model_file(path)
    recorded = payload["word_vectors"]
    if word_space is None:
        source = word_vectors or recorded.get("path")
        if source is not None and not is_minilm(source) and not Path(source).is_file():
            raise ModelFileError(f"{path} was trained with the word vectors {source}, which are not there; "
                                 "pass --word-vectors with that file")
        word_space = WordSpace.load(source)
    if word_space.vectors_id != recorded["id"] or word_space.dim != recorded["dim"]:
        raise ModelFileError(f"{path} was trained with word vectors {recorded['id']} ({recorded['dim']}-d); "
                             f"these are {word_space.vectors_id} ({word_space.dim}-d)")
    try:
        network = network_from_payload(payload)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the model file is damaged ({type(error).__name__})") from None
    model_id = f"mre-paper@{digest[:12]}"
    return TrainedModel(network, word_space, seen_tags=payload["seen_tags"], unseen_tags=payload["unseen_tags"],
                        name=path.stem, model_id=model_id, path=str(path), device=device,
                        info={"fingerprint": payload.get("fingerprint"), "training": payload.get("training", {})})
