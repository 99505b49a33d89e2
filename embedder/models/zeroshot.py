"""The default model: zero-shot retrieval over the pre-trained taggers' labels.

A track is described by what the two musicnn taggers (MSD, MTT; 100 labels) say of it, as
log-odds of the mean patch probability: `track_vector = logit(mean_p)`. A query is turned
into weights over those labels through the word space, and a track's score is the inner
product `query_vector · track_vector`, i.e. a weighted sum of label evidence in log-odds.

Why not ConSE (Norouzi et al. 2014: embed the track as the probability-weighted mean of its
top labels' word vectors, then take cosine with the query)? Its track embedding is dominated
by the labels every track scores high on (rock, pop, guitar), so tracks collapse together
and a query that *is* a label loses that label's own ranking. Here:

- a query that equals a label (after tokenising: "hip hop" = "Hip-Hop") gets exactly that
  label's column, so it ranks tracks exactly as the tagger's probability does;
- other words spread their weight over the labels nearest to them in the word space
  (softmax over the nearest few), so "reggae" borrows from hip-hop, funk, soul... in
  proportion to how close they are. Closeness is CSLS (Conneau et al. 2018, "Word
  translation without parallel data"): `2·cos(w, l) − r_l − r_w`, where r is a word's mean
  cosine to its 10 nearest vocabulary words. It corrects hubness: in 50-d GloVe a few
  labels ("guitar", "pop") are near everything and would otherwise soak up every query;
- a label both taggers have ("rock", "guitar", ...) is one column: the log-odds of the two
  taggers' mean probability;
- negated terms ("no vocals", "without drums") subtract their weights rather than being
  averaged into the positive words, each counting a quarter of a positive term
  (`negated_weight`); "no X" also uses a label spelled "no X" where one exists.

Scores are log-odds, so `sigmoid(score)` is shown to users as a 0–1 score.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from mre.embedder.audio.frontend_config import FrontendConfig
from mre.embedder.models.base import QueryVector  # noqa: F401  (re-exported)
from mre.embedder.models.registry import get_model_spec, load_tagger
from mre.embedder.words.space import (NEGATION_WORDS, STOP_WORDS, WordSpace, load_word_vectors, parse_query, shorten,
                                      word_vectors_id)

if TYPE_CHECKING:
    import torch

TAGGERS = ("musicnn-msd", "musicnn-mtt")

# How a non-label word spreads over labels. GloVe cosines between near-synonyms sit around
# 0.7–0.9 and between unrelated words around 0–0.4; with a temperature of 0.05 a label 0.1
# closer gets e^2 ≈ 7× the weight, so the nearest few labels carry the query and the
# long tail of weakly related labels (which every word has in 50-d GloVe) carries ~nothing.
SIMILARITY_TEMPERATURE = 0.05
NEAREST_LABELS = 8
# CSLS neighbourhood (k = 10 as in Conneau et al.), searched among the most frequent words
# (word-vector files are frequency-ordered), which keeps r_w to one small matrix product.
CSLS_NEIGHBOURS = 10
CSLS_VOCABULARY = 50_000
# p is clipped before the logit: a tagger saying 1e-9 vs 1e-7 is no evidence either way.
PROBABILITY_FLOOR = 1e-6

# Musical attributes as word-anchored dimensions: each pole pair spans a contrast in
# the word space, and a query word's cosine with the pole direction (v_high − v_low) weighs the
# track's standardised attributes that carry that contrast into the score. Difference vectors,
# because GloVe puts antonyms close together (calm ~ energetic) but their difference is the
# contrast itself. Each pair lists the attribute columns that cue it, with their direction:
# the mood pairs follow the acoustic cues music-emotion research finds for them (Juslin &
# Laukka 2003, table 11: tenderness/sadness slow and soft, happiness fast and loud; mode:
# major happy, minor sad, Gabrielsson & Lindström 2010), so "energetic" weighs tempo and
# loudness too, not only how dense the onsets are.
ATTRIBUTE_POLES = (
    ("slow", "fast", {"bpm": 1.0}),
    ("quiet", "loud", {"loudness_db": 1.0}),
    ("dark", "bright", {"brightness": 1.0}),
    ("calm", "energetic", {"bpm": 1.0, "loudness_db": 1.0, "onset_density": 1.0}),
    ("sad", "happy", {"mode_strength": 1.0, "bpm": 1.0, "loudness_db": 1.0}),
)
# Pole pairs whose words name the attribute outright, weighed only for those words themselves:
# the direction minor → major in GloVe is mostly "minor injury" against "major league", so let
# loose on every word it would move instrument words by the mode (measured on the training
# corpus's validation clips: MODEL_CARD.md, "Tried, not adopted: a mode pole"); "major" and
# "minor" in a query are the mode.
WORD_POLES = (
    ("minor", "major", {"mode_strength": 1.0}),
)
ATTRIBUTE_COLUMNS = tuple(dict.fromkeys(column for _, _, cues in ATTRIBUTE_POLES + WORD_POLES for column in cues))
# A relation r of a query to a pole pair moves the score by r standard deviations of the label
# evidence (the score's scale is set where it is computed: mre.embedder.models.scoring.attribute_scores);
# a pair's cues share that weight (unit-length cue vector).
ATTRIBUTE_SCALE = 1.0

MODEL_NAME = "mre-zs-musicnn"
# bump when the way vectors are made changes, so old stores are refused, not misread
ALGORITHM_VERSION = 2


def torch_device(device: str | torch.device) -> torch.device:
    """A model's device as torch takes it ("auto": CUDA when torch sees a GPU). Models call it
    when their weights load, not when they are made: mapping words needs no torch."""
    from mre.embedder.models.device import choose_device

    return choose_device(str(device))


def logit(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return np.log(p) - np.log1p(-p)


class ZeroShotTaggerModel:
    """Audio → label log-odds through the taggers; words → label weights through word vectors.

    device: where the taggers run. word_vectors: a gensim KeyedVectors file, None for the
    bundled GloVe 6B 50-d.
    """

    name = MODEL_NAME
    # a negated term's weight in a query beside a positive term's 1: "X no Y" ranked clips with X
    # and without Y best at 0.25 of the weights tried (0.25-1), for both zero-shot models, on the
    # training corpus's validation clips (mre.training.choose_negation_weight; MODEL_CARD.md)
    negated_weight = 0.25

    def __init__(self, device: str | torch.device = "cpu", word_vectors: str | None = None):
        self.specs = [get_model_spec(name) for name in TAGGERS]
        frontends = {spec.frontend for spec in self.specs}
        assert len(frontends) == 1, "the taggers must share one front-end to share one mel pass"
        self.frontend: FrontendConfig = frontends.pop()
        tagger_labels = [label.lower() for spec in self.specs for label in spec.labels]
        # one column per distinct label; a label both taggers have is their mean probability
        self.labels: list[str] = list(dict.fromkeys(tagger_labels))
        merge = np.zeros((len(tagger_labels), len(self.labels)), dtype=np.float32)
        for row, label in enumerate(tagger_labels):
            merge[row, self.labels.index(label)] = 1.0
        self._merge_weights = merge / merge.sum(axis=0, keepdims=True)
        self._merge_on_device: dict = {}  # (device, dtype) -> the merge matrix there
        self.output_dim = len(self.labels)
        self.dim = self.output_dim
        self.device = device  # resolved ("auto" included) when the taggers load: only audio needs torch
        self._taggers = None
        self.word_vectors_path = word_vectors
        self._words: WordSpace | None = None
        self._label_matrix: np.ndarray | None = None
        self._label_tokens: list[tuple[str, ...]] | None = None
        self._label_hubness: np.ndarray | None = None          # with _label_matrix
        self._frequent: np.ndarray | None = None               # unit vectors of the frequent words (CSLS)
        self._poles: list | None = None                        # attribute pole directions and their cues
        self._word_poles: dict | None = None                   # WORD_POLES weights by pole word

    # tags a trained model learnt from; the taggers' zero-shot models learnt none here
    seen_tags: list[str] | None = None
    unseen_tags: list[str] | None = None

    # -- identity ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Names the audio side: stores made with another id are refused at query time."""
        digest = hashlib.sha256()
        for spec in self.specs:
            digest.update(spec.sha256.encode())
        digest.update(f"v{ALGORITHM_VERSION}".encode())
        return f"{MODEL_NAME}@{digest.hexdigest()[:12]}"

    @property
    def word_vectors_id(self) -> str:
        return word_vectors_id(self.word_vectors_path)

    def describe(self) -> dict:
        return {
            "model_id": self.model_id,
            "model_name": MODEL_NAME,
            "kind": "zeroshot-taggers",
            "taggers": [spec.name for spec in self.specs],
            "labels": self.labels,
            "dim": self.dim,
            "word_vectors": self.word_vectors_id,
            "frontend": self.frontend.as_dict(),
            "similarity_temperature": SIMILARITY_TEMPERATURE,
            "nearest_labels": NEAREST_LABELS,
        }

    # -- audio side ---------------------------------------------------------------------
    def to(self, device: str | torch.device) -> "ZeroShotTaggerModel":
        self.device = device
        if self._taggers is not None:
            self._taggers = [t.to(torch_device(device)) for t in self._taggers]
        return self

    @property
    def taggers(self):
        if self._taggers is None:
            self._taggers = [load_tagger(spec.name, device=torch_device(self.device)) for spec in self.specs]
        return self._taggers

    def _merge(self, like: torch.Tensor) -> torch.Tensor:
        """[tagger labels, distinct labels] on ``like``'s device and dtype: averages the
        probabilities of a label both taggers have. Kept there once made: a copy from host
        memory per batch would make the host wait for the GPU's taggers on every batch."""
        import torch

        key = (like.device, like.dtype)
        if key not in self._merge_on_device:
            self._merge_on_device[key] = torch.from_numpy(self._merge_weights).to(like.device, like.dtype)
        return self._merge_on_device[key]

    def patch_outputs(self, mel_patches: torch.Tensor) -> torch.Tensor:
        """Per-patch probabilities of the distinct labels (shared ones averaged): [B, n_labels]."""
        import torch

        probabilities = torch.cat([tagger(mel_patches)[0] for tagger in self.taggers], dim=1)
        return probabilities @ self._merge(probabilities)

    def track_vector(self, mean_probabilities: np.ndarray) -> np.ndarray:
        """A track's vector from its mean patch probabilities: label log-odds, float32."""
        return logit(np.asarray(mean_probabilities, dtype=np.float64)).astype(np.float32)

    # -- word side ----------------------------------------------------------------------
    @property
    def words(self) -> WordSpace:
        if self._words is None:
            self._words = WordSpace(load_word_vectors(self.word_vectors_path))
        return self._words

    def _labels_in_word_space(self) -> tuple[np.ndarray, list[tuple[str, ...]]]:
        """Unit word vectors of the labels (zero rows for a label with no vector) and their tokens."""
        if self._label_matrix is None:
            rows, tokens = [], []
            for label in self.labels:
                phrase = self.words.phrase_vector(label)
                rows.append(phrase.vector if phrase.vector is not None else np.zeros(self.words.dim, np.float32))
                tokens.append(tuple(self.words.tokens(label)))
            matrix = np.asarray(rows, dtype=np.float32)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            self._label_matrix = matrix / np.maximum(norms, 1e-12)  # normalised here: rows are unit or zero
            self._label_tokens = tokens
            self._label_hubness = self._hubness(self._label_matrix)
        return self._label_matrix, self._label_tokens

    def _frequent_words(self) -> np.ndarray:
        """Unit vectors of the most frequent words: the neighbourhoods CSLS measures hubness in."""
        if self._frequent is None:
            vectors = np.asarray(self.words.keyed_vectors.vectors[:CSLS_VOCABULARY], dtype=np.float32)
            self._frequent = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return self._frequent

    def _hubness(self, unit_vectors: np.ndarray) -> np.ndarray:
        """CSLS r: each vector's mean cosine to its CSLS_NEIGHBOURS nearest frequent words."""
        similarity = unit_vectors @ self._frequent_words().T
        k = min(CSLS_NEIGHBOURS, similarity.shape[1])
        similarity.partition(-k, axis=1)  # in place: np.partition would copy the [n, 50k] matrix first
        return similarity[:, -k:].mean(axis=1)

    def _pole_relations(self, phrase_vector: np.ndarray) -> dict[str, float]:
        """Weights on attribute columns from a phrase's cosines with the pole directions.

        A random direction's cosine with a fixed one in d dimensions has spread 1/sqrt(d);
        relations under two such spreads are dropped, so words unrelated to tempo, mode,
        loudness... leave the attributes alone. A kept relation is shared over the pair's
        cue columns (unit-length cue vector).
        """
        if self._poles is None:
            self._poles = self._pole_directions(ATTRIBUTE_POLES)
        return self._relations(phrase_vector, self._poles)

    def _pole_directions(self, poles) -> list:
        """(unit direction high − low, cue shares) of each pole pair whose words have vectors."""
        directions = []
        for low, high, cues in poles:
            low_vec, high_vec = self.words.phrase_vector(low).vector, self.words.phrase_vector(high).vector
            if low_vec is not None and high_vec is not None:
                direction = high_vec - low_vec
                norm = float(np.sqrt(sum(v * v for v in cues.values())))
                directions.append((direction / max(float(np.linalg.norm(direction)), 1e-12),
                                   {column: v / norm for column, v in cues.items()}))
        return directions

    @staticmethod
    def _relations(phrase_vector: np.ndarray, poles: list) -> dict[str, float]:
        unit = phrase_vector / max(float(np.linalg.norm(phrase_vector)), 1e-12)
        threshold = 2.0 / np.sqrt(len(unit))
        weights: dict[str, float] = {}
        for direction, cues in poles:
            relation = float(direction @ unit)
            if abs(relation) >= threshold:
                for column, share in cues.items():
                    weights[column] = weights.get(column, 0.0) + relation * share
        return weights

    def _word_pole_relations(self, tokens: tuple[str, ...]) -> dict[str, float]:
        """The WORD_POLES weights of a run of words: each of its words that is a pole word of
        one of them ("minor", "major") relates to that pole alone, as any word does in
        _pole_relations (a word's weights are computed once; none where the word vectors lack
        the pole's words)."""
        if self._word_poles is None:
            self._word_poles = {}
            for pole in WORD_POLES:
                directions = self._pole_directions([pole])
                for word in pole[:2] if directions else ():
                    self._word_poles[word] = self._relations(self.words.phrase_vector(word).vector, directions)
        weights: dict[str, float] = {}
        for token in tokens:
            for column, weight in self._word_poles.get(token, {}).items():
                weights[column] = weights.get(column, 0.0) + weight
        return weights

    def attribute_weights(self, text: str) -> dict[str, float]:
        """Weights of a query's terms on the attribute z-scores (column → weight), as
        `query_vector(text).attribute_weights`, without the label side's cost (for a whole
        tag vocabulary). A query that is exactly a label has none: labels stay exact."""
        return self._attribute_weights(tuple(self.words.tokens(text)), parse_query(text))

    def _attribute_weights(self, whole: tuple[str, ...], terms: list) -> dict[str, float]:
        """`attribute_weights` of a query already parsed: its tokens and its terms."""
        _, label_tokens = self._labels_in_word_space()
        known_sequences = set(label_tokens)
        if whole in known_sequences:
            return {}
        sums: dict[str, float] = {}
        known_terms = 0.0
        for term in terms:
            sign = -self.negated_weight if term.negated else 1.0
            known = term.negated and tuple(self.words.tokens("no " + term.text)) in known_sequences
            for kind, seq in self._segments(self.words.tokens(term.text)):
                if kind == "label":
                    known = True
                    continue
                vector = self.words.phrase_vector(" ".join(seq)).vector
                if vector is not None:
                    known = True
                    relations = self._pole_relations(vector)
                    for column, weight in self._word_pole_relations(seq).items():
                        relations[column] = relations.get(column, 0.0) + weight
                    for column, weight in relations.items():
                        sums[column] = sums.get(column, 0.0) + sign * weight
            known_terms += abs(sign) if known else 0.0
        # averaged over the query's terms, a negated one weighing negated_weight, as the label weights are
        return {column: ATTRIBUTE_SCALE * total / known_terms for column, total in sums.items()} if known_terms else {}

    def _label_name(self, label_tokens: tuple[str, ...]) -> str:
        _, tokens = self._labels_in_word_space()
        return self.labels[tokens.index(label_tokens)].lower()

    def _one_hot(self, label_tokens: tuple[str, ...]) -> np.ndarray:
        """Weight 1 spread over every label spelled this way (both taggers may have it)."""
        _, tokens = self._labels_in_word_space()
        hits = np.array([t == label_tokens for t in tokens], dtype=np.float32)
        return hits / hits.sum()

    def _label_vector(self, label_tokens: tuple[str, ...]) -> np.ndarray:
        """A query vector that is exactly one label (a model with more dimensions widens it)."""
        return self._one_hot(label_tokens)

    def _nearest_label_weights(self, phrase_vector: np.ndarray) -> np.ndarray:
        label_matrix, _ = self._labels_in_word_space()
        unit = phrase_vector / max(float(np.linalg.norm(phrase_vector)), 1e-12)
        similarity = 2.0 * (label_matrix @ unit) - self._label_hubness - self._hubness(unit[None])[0]  # CSLS
        nearest = np.argsort(-similarity)[:NEAREST_LABELS]
        logits = similarity[nearest] / SIMILARITY_TEMPERATURE
        weights = np.exp(logits - logits.max())
        out = np.zeros(len(self.labels), dtype=np.float32)
        out[nearest] = weights / weights.sum()
        return out

    def _segments(self, tokens: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        """A term's tokens as label spellings (longest first) and runs of other words between
        them; a run of only generic words ("music", "the") beside something specific is dropped."""
        _, label_tokens = self._labels_in_word_space()
        known_sequences = set(label_tokens)
        longest = max(len(t) for t in label_tokens)
        segments: list[tuple[str, tuple[str, ...]]] = []
        run: list[str] = []
        i = 0
        while i < len(tokens):
            for size in range(min(longest, len(tokens) - i), 0, -1):
                candidate = tuple(tokens[i:i + size])
                if candidate in known_sequences:
                    if run:
                        segments.append(("words", tuple(run)))
                        run = []
                    segments.append(("label", candidate))
                    i += size
                    break
            else:
                run.append(tokens[i])
                i += 1
        if run:
            segments.append(("words", tuple(run)))
        # "house music": a run of only generic words next to something specific adds nothing
        # but noise; alone ("music") it is the query
        if len(segments) > 1:
            segments = [seg for seg in segments if seg[0] == "label" or not set(seg[1]) <= STOP_WORDS] or segments
        return segments

    def _term_weights(self, text: str, query: QueryVector, negated: bool) -> np.ndarray | None:
        """Label weights of one positive or negated term (summing to 1), or None if nothing is known."""
        _, label_tokens = self._labels_in_word_space()
        known_sequences = set(label_tokens)
        parts: list[np.ndarray] = []
        if negated:
            # a label spelled "no X" (MTT has "no vocals", "no voice") is the tagger's own
            # judgement of the negation: use it (positively) beside "−X"
            no_form = tuple(self.words.tokens("no " + text))
            if no_form in known_sequences:
                query.matched_labels.append(self._label_name(no_form))
                parts.append(-self._one_hot(no_form))  # sign flipped back by the caller
        segments = self._segments(self.words.tokens(text))
        for kind, seq in segments:
            if kind == "label":
                query.matched_labels.append(("-" if negated else "") + self._label_name(seq))
                parts.append(self._one_hot(seq))
                continue
            phrase = self.words.phrase_vector(" ".join(seq))
            query.note_ignored(phrase)
            if phrase.vector is not None:
                parts.append(self._nearest_label_weights(phrase.vector))
        if not parts:
            return None
        return np.mean(parts, axis=0)

    def query_vector(self, text: str) -> QueryVector:
        """Map a query phrase onto label weights. Raises ValueError when nothing in it is known."""
        query = QueryVector(text=text, vector=np.zeros(self.dim, dtype=np.float32))
        query.note_split(self.words.splits(text))  # "hardrock" is read as the label "hard rock": say so
        _, label_tokens = self._labels_in_word_space()
        whole = tuple(self.words.tokens(text))
        terms = parse_query(text)
        # "-piano" tokenises as "piano": only a query with no negation, or a label that is
        # itself a negation ("no vocals"), is that label; a lone "-piano" means least like piano
        lone_negation = any(term.negated for term in terms) and not (whole and whole[0] in NEGATION_WORDS)
        if whole in set(label_tokens) and not lone_negation:
            # the whole query is a label ("no vocals" too): exactly that label's ranking
            query.matched_labels.append(self._label_name(whole))
            query.vector = self._label_vector(whole)
            query.related_labels = self._explain(query.vector)
            return query
        contributions, counts = [], []
        for term in terms:
            weights = self._term_weights(term.text, query, term.negated)
            if weights is not None:
                contributions.append(-weights if term.negated else weights)
                counts.append(self.negated_weight if term.negated else 1.0)
        if not contributions:
            raise ValueError(f'no word of "{shorten(text)}" is in the word vectors' +
                             (f" ({shorten('; '.join(query.messages), 200)})" if query.messages else ""))
        # a negated term counts negated_weight times a positive one ("X no Y"); a query of
        # negations only is the same whatever the weight
        query.vector = (np.mean(contributions, axis=0) if set(counts) == {1.0}  # float32 as ever
                        else np.average(contributions, axis=0, weights=counts)).astype(np.float32)
        query.related_labels = self._explain(query.vector)
        query.attribute_weights = self._attribute_weights(whole, terms)  # the query is parsed once
        return query

    def _explain(self, vector: np.ndarray, top: int = 5) -> list[tuple[str, float]]:
        """The heaviest label weights, a label both taggers share counted once under its name."""
        merged: dict[str, float] = {}
        for label, weight in zip(self.labels, vector):
            if weight != 0:
                merged[label.lower()] = merged.get(label.lower(), 0.0) + float(weight)
        # weights under 1% move no ranking a user could notice: not worth naming
        return [item for item in sorted(merged.items(), key=lambda item: -abs(item[1]))[:top] if abs(item[1]) >= 0.01]

    def tag_matrix(self, tags: list[str]) -> tuple[np.ndarray, list[str]]:
        """Label weights of each vocabulary tag, one row per tag; tags with no known word are dropped.

        Rows sum to 1 like a query's, so tag scores on one track are comparable weighted log-odds.
        """
        rows, kept = [], []
        for tag in tags:
            try:
                rows.append(self.query_vector(tag).vector)
                kept.append(tag)
            except ValueError:
                continue
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim), kept
