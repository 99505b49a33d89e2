"""The zero-shot model with a space trained on rendered music: tagger labels plus a learnt word space.

`mre-zs-musicnn` describes a track by the two musicnn taggers' label log-odds and reaches
other words only through the labels nearest to them in GloVe, so words that are not labels
(trumpet, reggae, swing) rank near chance. This model keeps that label part unchanged and
adds the space of the paper's two-branch model (Choi et al., ISMIR 2019) trained by
`make model` on a corpus rendered from General MIDI arrangements (`mre corpus build`):

    track vector = [ label log-odds (92) | scale · unit audio embedding (100) | 1 ]

The audio embedding is a small head on the taggers' own penultimate features, computed in
the same forward pass that gives the label probabilities, so indexing costs what the
`mre-zs-musicnn` model's does. A query's vector has weight on the label part for words that
are labels — a query that is exactly a label ranks exactly as the tagger's probability. A
word the trained space learnt (a seen tag) gets its GloVe vector through the learnt word
projection on the trained part (numpy: the query path needs no torch); any other word is read
through the learnt vectors of its nearest seen tags in the word space (`seen_reading`: ConSE
in the trained space). Beside that, `mre-zs-musicnn`'s reading of a word on the labels (its
nearest labels in the word space) may join, weighted by `label_reading` — one weight for the
words the trained space learnt, one for every other word, both chosen by `make model` on the
training corpus's validation clips (0 and 0 in the shipped weights). Score = inner product, so FAISS
inner-product search serves both; `scale` (set at export from the training corpus's
validation clips) makes a trained word's score spread over tracks like a label's log-odds,
so the two mix in one query ("calm piano") and the musical attributes weigh in on the same
scale as before (mre.embedder.models.scoring). The constant last entry carries `offset` for every
word with a trained part: it puts those words' scores where label words' log-odds are on a
track (set at export like `scale`), so `mre tags` ranks the two kinds of word for one track on
one scale; a word the model never learnt carries `unlearnt_prior` more (it has only its
neighbours' evidence). A query's ranking of tracks does not change with either.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mre.embedder.words.space import word_vectors_id
from mre.embedder.models.scoring import nearest_seen_mean
from mre.embedder.models.zeroshot import (NEAREST_LABELS, SIMILARITY_TEMPERATURE, QueryVector, ZeroShotTaggerModel,
                                         logit, torch_device)

CORPUS_MODEL_NAME = "mre-zs-corpus"
WEIGHTS_FILE = "mre-zs-corpus.npz"
# bump when the way vectors are made from the same weights changes, so old stores are refused
CORPUS_ALGORITHM_VERSION = 2


class CorpusWeightsError(ValueError):
    """The shipped weights file is missing or is not one this code can read."""


def weights_file() -> Path:
    """The shipped weights, beside the taggers' (mre.embedder.models.registry.WEIGHTS_DIR)."""
    return Path(__file__).resolve().parents[1] / "weights" / WEIGHTS_FILE


class CorpusZeroShotModel(ZeroShotTaggerModel):
    """Label log-odds for label words; a corpus-trained audio–word space plus the label reading for every other word.

    device: where the taggers (and the tiny head) run. word_vectors: must be the vectors the
    word projection was trained with (None: the bundled GloVe 6B 50-d). path: another weights
    file (tests, `make model` before shipping).
    """

    name = CORPUS_MODEL_NAME

    def __init__(self, device="cpu", word_vectors: str | None = None, path: str | Path | None = None,
                 word_space=None):
        super().__init__(device=device, word_vectors=word_vectors)
        if word_space is not None:  # an already loaded WordSpace (the paper's control: random vectors)
            self._words = word_space
        self.weights_path = Path(path) if path is not None else weights_file()
        try:
            data = self.weights_path.read_bytes()
            with np.load(self.weights_path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise CorpusWeightsError(f"cannot read the weights of {CORPUS_MODEL_NAME} at {self.weights_path} "
                                     f"({type(error).__name__}); reinstall music-retrieval-engine or run `make model`") from None
        self._weights_sha256 = hashlib.sha256(data).hexdigest()
        self._arrays = arrays
        self.backbone = [str(name) for name in arrays["backbone_taggers"]]
        self.scale = float(arrays["scale"])
        self.trained_dim = int(arrays["word_weight"].shape[0])
        self.seen_words = [str(t) for t in arrays["seen_tags"]]       # what the trained space learnt from
        self.held_out_words = [str(t) for t in arrays["unseen_tags"]]  # kept from training (the model card)
        self.trained_word_vectors = str(arrays["word_vectors"])
        # how much of the default model's label-space reading a word that is not a label keeps
        # beside its trained-space vector: (a word the trained space learnt, any other word);
        # chosen by `make model` on the training corpus's validation clips (MODEL_CARD.md)
        reading = arrays["label_reading"] if "label_reading" in arrays else np.zeros(2, np.float32)
        self.label_reading = (float(reading[0]), float(reading[1]))
        given = word_space.vectors_id if word_space is not None else word_vectors_id(word_vectors)
        if given != self.trained_word_vectors:
            raise ValueError(f"{CORPUS_MODEL_NAME} was trained with the word vectors {self.trained_word_vectors}; "
                             f"it cannot use {given} (drop --word-vectors)")
        self.tagger_names = [spec.name for spec in self.specs]
        unknown = [name for name in self.backbone if name not in self.tagger_names]
        if unknown:
            raise CorpusWeightsError(f"{self.weights_path} needs features of {', '.join(unknown)}, not a tagger of this model")
        # where a word with a trained part starts on a track, to sit among the labels' log-odds
        self.offset = float(arrays["trained_offset"]) if "trained_offset" in arrays else 0.0
        # and a word it never learnt, read through the words it resembles, starts lower by this
        self.unlearnt_prior = float(arrays["unlearnt_prior"]) if "unlearnt_prior" in arrays else 0.0
        self.label_dim = len(self.labels)
        self.output_dim = self.label_dim + self.trained_dim  # per patch: probabilities | embedding
        self.dim = self.output_dim + 1                       # the track vector ends with the constant 1
        self._head = None
        self._vocabulary_cache: tuple[list[str], np.ndarray] | None = None
        self._learnt_tokens: set[tuple[str, ...]] | None = None
        self._seen_space: tuple[np.ndarray, np.ndarray] | None = None  # seen tags' word vectors and learnt rows

    # -- identity -----------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        digest = hashlib.sha256()
        for spec in self.specs:
            digest.update(spec.sha256.encode())
        digest.update(self._weights_sha256.encode())
        digest.update(f"v{CORPUS_ALGORITHM_VERSION}".encode())
        return f"{CORPUS_MODEL_NAME}@{digest.hexdigest()[:12]}"

    def describe(self) -> dict:
        return super().describe() | {
            "model_id": self.model_id, "model_name": CORPUS_MODEL_NAME, "kind": "zeroshot-taggers-corpus",
            "label_dim": self.label_dim, "trained_dim": self.trained_dim, "backbone": self.backbone,
            "scale": self.scale, "offset": self.offset, "unlearnt_prior": self.unlearnt_prior,
            "label_reading": list(self.label_reading),
            "weights_sha256": self._weights_sha256,
        }

    # -- audio side ---------------------------------------------------------------------
    @property
    def head(self):
        """The trained audio head (standardise → Linear → ReLU → Linear), in torch on the model's device."""
        if self._head is None:
            import torch

            a = self._arrays
            layers = torch.nn.Sequential(torch.nn.Linear(*a["head_weight_1"].shape[::-1]), torch.nn.ReLU(),
                                         torch.nn.Linear(*a["head_weight_2"].shape[::-1]))
            with torch.no_grad():
                layers[0].weight.copy_(torch.from_numpy(a["head_weight_1"]))
                layers[0].bias.copy_(torch.from_numpy(a["head_bias_1"]))
                layers[2].weight.copy_(torch.from_numpy(a["head_weight_2"]))
                layers[2].bias.copy_(torch.from_numpy(a["head_bias_2"]))
            layers.requires_grad_(False)  # frozen: indexing never trains
            device = torch_device(self.device)  # "auto" resolved where the weights load, as the taggers do
            self._head = (layers.eval().to(device), torch.from_numpy(a["input_mean"]).to(device),
                          torch.from_numpy(a["input_std"]).to(device))
        return self._head

    def to(self, device) -> "CorpusZeroShotModel":
        super().to(device)
        self._head = None
        return self

    def head_embedding(self, tagger_outputs: list):
        """Unit audio embeddings [B, trained_dim] from the taggers' (probabilities, penultimate) pairs."""
        import torch
        from torch.nn import functional as F

        # the head reads the backbone taggers' features, in the order it was trained with
        features = torch.cat([tagger_outputs[self.tagger_names.index(name)][1] for name in self.backbone], dim=1)
        layers, mean, std = self.head
        return F.normalize(layers((features.float() - mean) / std), dim=1)

    def outputs_from(self, tagger_outputs: list):
        """[the distinct labels' probabilities (as the default model) | unit audio embedding] per patch."""
        import torch

        probabilities = torch.cat([p for p, _ in tagger_outputs], dim=1)
        probabilities = probabilities @ self._merge(probabilities)
        return torch.cat([probabilities, self.head_embedding(tagger_outputs).to(probabilities.dtype)], dim=1)

    def patch_outputs(self, mel_patches):
        """Per patch: label probabilities and audio embedding, from one forward pass of each tagger."""
        return self.outputs_from([tagger(mel_patches) for tagger in self.taggers])

    def track_vector(self, mean_outputs: np.ndarray) -> np.ndarray:
        """[label log-odds of the mean probabilities | scale · the mean embedding made unit | 1], float32."""
        mean_outputs = np.asarray(mean_outputs, dtype=np.float64)
        labels = logit(mean_outputs[:self.label_dim])
        embedding = mean_outputs[self.label_dim:self.output_dim]
        embedding = self.scale * embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        return np.concatenate([labels, embedding, [1.0]]).astype(np.float32)

    # -- word side ----------------------------------------------------------------------
    def project_words(self, word_vectors: np.ndarray) -> np.ndarray:
        """Word vectors [N, 50] → unit vectors in the trained space [N, trained_dim] (numpy)."""
        projected = np.atleast_2d(np.asarray(word_vectors, np.float32)) @ self._arrays["word_weight"].T
        projected = projected + self._arrays["word_bias"]
        return projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)

    def is_label_query(self, text: str) -> bool:
        """True when the whole query is a tagger label: it then ranks exactly as the label's probability."""
        _, label_tokens = self._labels_in_word_space()
        return tuple(self.words.tokens(text)) in set(label_tokens)

    def _learnt(self) -> set[tuple[str, ...]]:
        """The tokens of the words the trained space learnt from (its seen tags)."""
        if self._learnt_tokens is None:
            self._learnt_tokens = {tuple(self.words.tokens(tag)) for tag in self.seen_words}
        return self._learnt_tokens

    def _word_part(self, phrase_text: str, query: QueryVector, note: bool = True) -> np.ndarray | None:
        """A run of words that is not a label: its vector in the trained space (a learnt word
        through the word projection, any other through its nearest seen tags), the offset that
        places its score among the labels' log-odds (and the unlearnt prior for a word the model
        never learnt), plus the default model's reading of it on the labels weighted by
        `label_reading`."""
        phrase = self.words.phrase_vector(phrase_text)
        if note:
            query.note_ignored(phrase)
        if phrase.vector is None:
            return None
        out = np.zeros(self.dim, dtype=np.float32)
        learnt = tuple(self.words.tokens(phrase_text)) in self._learnt()
        out[self.label_dim:self.output_dim] = (self.project_words(phrase.vector)[0] if learnt
                                               else self.seen_reading(phrase.vector))
        out[-1] = self.offset + (0.0 if learnt else self.unlearnt_prior)
        weight = self.label_reading[0 if learnt else 1]
        if weight:
            out[:self.label_dim] = weight * self._nearest_label_weights(phrase.vector)
        return out

    def seen_reading(self, word_vector: np.ndarray) -> np.ndarray:
        """The trained part of a word the trained space never learnt: the learnt vectors of its
        nearest seen tags in the word space, softmax-weighted as the label reading weighs its
        nearest labels (ConSE in the trained space). The word projection was fitted on the
        seen tags alone, so their learnt vectors are where it is sure; a new word's own vector
        through it lands off those points (MODEL_CARD.md, "Reading a word the corpus never named")."""
        if self._seen_space is None:
            seen = [tag for tag in self.seen_words if self.words.phrase_vector(tag).vector is not None]
            vectors = self.words.phrase_matrix(seen)
            self._seen_space = (vectors, self.project_words(vectors))
        vectors, rows = self._seen_space
        return nearest_seen_mean(word_vector, vectors, rows, NEAREST_LABELS, SIMILARITY_TEMPERATURE)[0]

    def _label_vector(self, label_tokens) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float32)
        out[:self.label_dim] = self._one_hot(label_tokens)
        return out

    def _term_weights(self, text: str, query: QueryVector, negated: bool) -> np.ndarray | None:
        """One term's vector: label words on the label part, other words on the trained part
        plus their label reading (_word_part); a term that is a whole tag the trained space
        learnt ("electric guitar") is read as one phrase, rather than split around its label
        word. A tag it was kept from (a held-out word) is read as any new phrase is. A phrase
        that holds label words and other words ("distorted guitar", "tender piano") is read
        both ways, split around its labels and whole through the seen tags nearest it, and
        the two are averaged: a compound ("synth brass") is read better whole, a conjunction
        better split, and the mean beat the split on both (MODEL_CARD.md, "Phrases that hold a
        label word"). Such a phrase keeps its split reading's offset."""
        _, label_tokens = self._labels_in_word_space()
        known_sequences = set(label_tokens)
        tokens = tuple(self.words.tokens(text))
        parts: list[np.ndarray] = []
        if negated:
            no_form = tuple(self.words.tokens("no " + text))
            if no_form in known_sequences:  # "no vocals": the tagger's own judgement of the negation
                query.matched_labels.append(self._label_name(no_form))
                parts.append(-self._label_vector(no_form))  # sign flipped back by the caller
        if tokens not in known_sequences and tokens in self._learnt():
            part = self._word_part(text, query)
            return None if part is None and not parts else np.mean(parts + [part] if part is not None else parts, axis=0)
        segments = list(self._segments(list(tokens)))
        for kind, seq in segments:
            if kind == "label":
                query.matched_labels.append(("-" if negated else "") + self._label_name(seq))
                parts.append(self._label_vector(seq))
                continue
            part = self._word_part(" ".join(seq), query)
            if part is not None:
                parts.append(part)
        if not parts:
            return None
        split = np.mean(parts, axis=0)
        if {kind for kind, _ in segments} == {"label", "words"}:
            whole = self._word_part(text, query, note=False)
            if whole is not None:
                # the phrase starts where its parts do (the whole reading's unlearnt prior left out);
                # a constant changes no ranking of tracks, only where it sits among a track's tags
                whole[-1] = split[-1]
                return (split + whole) / 2
        return split

    def _vocabulary_set(self) -> set[str]:
        return set(self.seen_words) | set(self.held_out_words)

    def _explain(self, vector: np.ndarray, top: int = 5) -> list[tuple[str, float]]:
        """The heaviest label weights, then the trained vocabulary's words nearest the trained part."""
        named = super()._explain(vector[:self.label_dim], top)
        trained = vector[self.label_dim:self.output_dim]
        weight = float(np.linalg.norm(trained))
        if weight > 0:
            if self._vocabulary_cache is None:
                vocabulary = sorted(self._vocabulary_set())
                vectors = [self.words.phrase_vector(tag).vector for tag in vocabulary]
                kept = [(tag, v) for tag, v in zip(vocabulary, vectors) if v is not None]
                self._vocabulary_cache = ([t for t, _ in kept], self.project_words(np.stack([v for _, v in kept])))
            tags, matrix = self._vocabulary_cache
            similarity = matrix @ (trained / weight)
            listed = {name for name, _ in named}  # a label named above is not named twice
            order = [i for i in np.argsort(-similarity) if tags[i] not in listed]
            named += [(tags[i], round(weight * float(similarity[i]), 4)) for i in order[:3]]
        return named
