"""The Python API: `Library(store).query("dub reggae", k=10)`, `.tags(path)`, `.similar(path)`.

A Library holds one generation of a store (the one live when it was opened), so a re-index
running beside it never changes what it sees halfway through.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mre.embedder.attributes import ATTRIBUTE_NAMES, TrackAttributes, extract_attributes
from mre.embedder.models import load_model
from mre.embedder.words import load_tag_vocabulary
from mre.indexer.index_spec import use_single_query_threads
from mre.indexer.store import Store, StoreError
from mre.retrieval.filters import Filters
from mre.embedder.scoring import attribute_scores, standardised

# Below this many tracks, song→song is an exact numpy pass; above, FAISS proposes candidates
# (this many per result) that are re-ranked exactly.
EXACT_SIMILAR_LIMIT = 50_000
SIMILAR_CANDIDATES_PER_RESULT = 20
# The spread of a query's label evidence over the store is estimated on at most this many
# evenly spaced tracks: a standard deviation from 10k samples is within ~1 % of the whole's.
LABEL_SPREAD_SAMPLE = 10_000


class LibraryError(Exception):
    """A one-line problem a user can act on (no store, unknown track, wrong model...)."""


def default_store_path() -> Path:
    """`$MRE_STORE`, else the per-user data directory."""
    if os.environ.get("MRE_STORE"):
        return Path(os.environ["MRE_STORE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mre")) / "store"


@dataclass
class Hit:
    """One track in a result, best first."""

    path: str
    score: float
    track_id: str
    duration: float | None = None
    top_tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


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


@dataclass
class QueryResult:
    hits: list[Hit]
    matched_labels: list[str]
    related_labels: list[tuple[str, float]]
    ignored: list[str]
    messages: list[str]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class Library:
    """An opened store. store: a folder (None: `$MRE_STORE` or the per-user default).

    model: must be the model the store was made with (None: that one). device: where audio of
    files outside the store is embedded ("auto", "cpu", "cuda"; checked when such a file is
    embedded, since torch is imported only then). word_vectors: other word vectors for queries
    (None: the ones the store was made with). vocabulary: a tag file for `tags` (None: the
    store's).
    """

    def __init__(self, store: str | Path | None = None, *, model: str | None = None, device: str = "cpu",
                 word_vectors: str | None = None, vocabulary: str | None = None):
        self.store = Store(Path(store).expanduser() if store else default_store_path())
        try:
            generation = self.store.live()
        except StoreError as error:
            raise LibraryError(str(error)) from None
        if generation is None:
            raise LibraryError(f"no index at {self.store.root} yet — run `mre index PATH --store {self.store.root}` first")
        self.generation = generation
        self.meta = generation.meta
        stored_words = self.meta.get("word_vectors_path")
        try:
            self.model = load_model(model or self.meta.get("model_file") or self.meta.get("model_name"), device=device,
                                    word_vectors=word_vectors or stored_words)
        except ValueError as error:
            raise LibraryError(str(error)) from None
        if self.model.model_id != self.meta.get("model_id"):
            raise LibraryError(
                f"this store was made with model {self.meta.get('model_id')}; it cannot be searched with "
                f"{self.model.model_id} — re-index with `mre index PATH --model {model}` or drop --model")
        self.device = device
        self._tracks = generation.tracks()
        self._paths = self._tracks.column("path").to_pylist()
        self._ids = self._tracks.column("track_id").to_pylist()
        self._row_of_path = {p: i for i, p in enumerate(self._paths)}
        self._row_of_id = {t: i for i, t in enumerate(self._ids)}
        self._vectors = None
        self._custom_tags = None
        self._custom_words = word_vectors is not None and word_vectors != stored_words
        self._custom_vocabulary = vocabulary

    # -- helpers ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._paths)

    @property
    def track_vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self.generation.track_vectors()
        return self._vectors

    def _hit(self, row: int, score: float) -> Hit:
        durations = self._tracks.column("duration")
        top = self._tracks.column("top_tags")[row].as_py() or []
        duration = durations[row].as_py()
        return Hit(path=self._paths[row], score=round(float(score), 6), track_id=self._ids[row],
                   duration=None if duration is None or not math.isfinite(duration) else round(duration, 3), top_tags=top)

    def _display(self, raw: np.ndarray) -> np.ndarray:
        """Scores as users see them: the zero-shot model's log-odds as 0–1, cosines as they are."""
        return _sigmoid(raw) if self.meta.get("kind") == "zeroshot-taggers" else np.asarray(raw, dtype=np.float64)

    def _search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        index = self.generation.audio_index()
        use_single_query_threads()  # one query at a time: a second thread only adds sync cost
        scores, rows = index.search(np.asarray(vector, dtype=np.float32)[None], k)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def resolve(self, target: str) -> tuple[int | None, str]:
        """A track id or a path → (row in the store or None, absolute path or id)."""
        if target in self._row_of_id:
            return self._row_of_id[target], self._paths[self._row_of_id[target]]
        path = str(Path(target).expanduser().resolve())
        if path in self._row_of_path:
            return self._row_of_path[path], path
        if os.path.isfile(path):
            return None, path
        raise LibraryError(f"{target!r} is neither a track in the store nor an audio file")

    def _vector_of(self, target: str, with_attributes: bool = False) -> tuple[np.ndarray, int | None, str, dict | None]:
        """A target's vector, row (None outside the store), path, and (with_attributes) its
        musical attributes as a dict (None without)."""
        row, path = self.resolve(target)
        if row is not None:
            attributes = {name: self._tracks.column(name)[row].as_py() if name in self._tracks.column_names else None
                          for name in ATTRIBUTE_NAMES} if with_attributes else None
            return self.track_vectors[row], row, path, attributes
        # a file outside the store is decoded once, its attributes measured in the same pass
        vector, facts = embed_paths(self.model, [path], device=self.device, with_attributes=with_attributes)[0]
        return vector, None, path, facts if with_attributes else None

    def _allowed_rows(self, filters: Filters | None) -> np.ndarray | None:
        """Rows passing the filters, or None when nothing is filtered."""
        if filters is None or not filters.active():
            return None
        return np.flatnonzero(filters.mask(self._tracks))

    def attribute_z(self, column: str) -> np.ndarray:
        """A musical attribute standardised over this store (missing or no-pulse values → 0, the mean)."""
        cache = self.__dict__.setdefault("_z", {})
        if column not in cache:
            cache[column] = standardised(self._column_values(column), column)
        return cache[column]

    def _column_values(self, column: str) -> list:
        return self._tracks.column(column).to_pylist() if column in self._tracks.column_names else [None] * len(self)

    def _z_of(self, attributes: dict, columns) -> np.ndarray:
        """z-scores of one track's attribute values against this store's mean and spread."""
        return np.array([standardised(self._column_values(column), column, of=[attributes.get(column)])[0]
                         for column in columns], dtype=np.float64)

    def label_spread(self, label_weights: np.ndarray) -> np.ndarray:
        """Standard deviation over the store of each row of `label_weights` [Q, D] scored against
        the track vectors (estimated on a sample of LABEL_SPREAD_SAMPLE tracks); 1.0 where it is 0."""
        vectors = self.track_vectors
        if len(vectors) > LABEL_SPREAD_SAMPLE:
            vectors = vectors[np.linspace(0, len(vectors) - 1, LABEL_SPREAD_SAMPLE).astype(int)]
        spread = (vectors @ np.atleast_2d(label_weights).astype(np.float32).T).std(axis=0) if len(vectors) else np.zeros(0)
        return np.where(spread > 0, spread, 1.0).astype(np.float64)

    def _ranked(self, vector: np.ndarray, k: int, filters: Filters | None,
                attribute_weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) by inner product, through FAISS; with filters or attribute
        weights, an exact pass (over the rows that pass) scored by `attribute_scores`."""
        rows = self._allowed_rows(filters)
        if rows is None and not attribute_weights:
            return self._search(vector, k)
        if rows is None:
            rows = np.arange(len(self))
        scores = self.track_vectors[rows] @ np.asarray(vector, dtype=np.float32)
        if attribute_weights:
            columns = list(attribute_weights)
            z = np.stack([self.attribute_z(column)[rows] for column in columns], axis=1)
            scores = attribute_scores(scores, self.label_spread(vector)[0],
                                      np.array([attribute_weights[c] for c in columns]), z)
        order = np.argsort(-scores, kind="stable")[:k]
        return scores[order], rows[order]

    # -- word → song ---------------------------------------------------------------------------
    def query(self, text: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """Tracks best matching a text query, best first (only those passing `filters`)."""
        return self.search(text, k, filters).hits

    def search(self, text: str, k: int = 10, filters: Filters | None = None) -> QueryResult:
        """Like `query`, with how the words were understood (matched labels, ignored words)."""
        if not text or not text.strip():
            raise LibraryError("the query is empty: give some words, e.g. mre query \"calm piano\"")
        try:
            query = self.model.query_vector(text)
        except ValueError as error:
            raise LibraryError(str(error)) from None
        scores, rows = self._ranked(query.vector, k, filters, query.attribute_weights)
        hits = [self._hit(int(r), s) for r, s in zip(rows, self._display(scores))]
        return QueryResult(hits, query.matched_labels, query.related_labels, query.ignored, query.messages)

    # -- song → words -----------------------------------------------------------------------------
    def _tag_space(self) -> tuple[list[str], np.ndarray]:
        if self._custom_vocabulary is None and not self._custom_words:
            tags = self.generation.tags().column("tag").to_pylist()
            return tags, self.generation.tag_vectors()
        if self._custom_tags is None:
            vocabulary = load_tag_vocabulary(self._custom_vocabulary)
            matrix, kept = self.model.tag_matrix([v.tag for v in vocabulary])
            self._custom_tags = (kept, matrix)
        return self._custom_tags

    def _tag_attributes(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(columns, weights [tags, columns], label spread [tags]) of the vocabulary tags that
        relate to attribute poles, computed once: a tag is scored as the same query would be."""
        if getattr(self, "_tag_attribute_cache", None) is None:
            names, matrix = self._tag_space()
            weigh = getattr(self.model, "attribute_weights", None)  # models without attribute poles: none
            per_tag = [weigh(name) if weigh else {} for name in names]
            columns = list(dict.fromkeys(column for weights in per_tag for column in weights))
            weights = np.array([[w.get(c, 0.0) for c in columns] for w in per_tag]).reshape(len(names), len(columns))
            spread = np.ones(len(names))
            related = np.flatnonzero(np.abs(weights).sum(axis=1) > 0)
            if len(related):
                spread[related] = self.label_spread(matrix[related])
            self._tag_attribute_cache = (columns, weights, spread)
        return self._tag_attribute_cache

    def tags(self, target: str, k: int = 10) -> TagResult:
        """The vocabulary tags that best describe a track (in the store, or any audio file).

        A tag that relates to attribute poles ("calm", "energetic", "gentle") also weighs the
        track's standardised attributes, exactly as a query of that tag scores the track."""
        names, matrix = self._tag_space()
        columns, weights, spread = self._tag_attributes()
        vector, row, path, attributes = self._vector_of(target, with_attributes=bool(columns))
        scores = matrix @ vector
        if columns:
            z = np.array([self.attribute_z(c)[row] for c in columns]) if row is not None else self._z_of(attributes, columns)
            scores = attribute_scores(scores, spread, weights, z)
        scores = self._display(scores)
        order = np.argsort(-scores, kind="stable")[:k]
        return TagResult(path=path, tags=[{"tag": names[i], "score": round(float(scores[i]), 6)} for i in order],
                         track_id=self._ids[row] if row is not None else None)

    # -- song → song --------------------------------------------------------------------------
    def similar(self, target: str, k: int = 10, filters: Filters | None = None, compatible: bool = False) -> list[Hit]:
        """Tracks that sound most like `target` (itself excluded), best first.

        filters: constraints on the results. compatible: only keys that mix harmonically with
        the target's (same key, relative major/minor, neighbours on the circle of fifths).

        Cosine of the track vectors after centring them on the store's mean: label log-odds are
        mostly negative for every track (tags are sparse), so uncentred cosines are all close
        to 1 and say more about the labels' base rates than about the two tracks.
        """
        vector, row, path, attributes = self._vector_of(target, with_attributes=compatible)
        key = (attributes.get("key"), attributes.get("mode")) if compatible else None
        if compatible:
            if not key or not key[0] or not key[1]:
                raise LibraryError(f"no key was detected in {path}: --compatible needs one")
            filters = replace(filters or Filters(), compatible_with=key)  # the caller's filters stay as given
        vectors = self.track_vectors
        mean = vectors.mean(axis=0)
        query = vector - mean
        query /= max(float(np.linalg.norm(query)), 1e-12)
        candidates = self._allowed_rows(filters)
        if candidates is None:
            candidates = np.arange(len(self)) if len(self) <= EXACT_SIMILAR_LIMIT \
                else self._search(query, (k + 1) * SIMILAR_CANDIDATES_PER_RESULT)[1]
        centred = vectors[candidates] - mean
        cosine = centred @ query / np.maximum(np.linalg.norm(centred, axis=1), 1e-12)
        if row is not None:
            cosine[candidates == row] = -np.inf
        order = np.argsort(-cosine, kind="stable")[:k]
        return [self._hit(int(candidates[i]), cosine[i]) for i in order if np.isfinite(cosine[i])]


    # -- a track's card ---------------------------------------------------------------------------
    def info(self, targets: list[str]) -> list[dict]:
        """Per track: path, duration, format, the musical attributes, top tags (files outside the store are analysed)."""
        cards, outside = [], []
        for target in targets:
            row, path = self.resolve(target)
            if row is not None:
                record = {k: v for k, v in self._tracks.slice(row, 1).to_pylist()[0].items() if k != "vector"}
                cards.append(record)
            else:
                cards.append(path)
                outside.append(path)
        if outside:
            analysed = iter(embed_paths(self.model, outside, device=self.device, with_attributes=True))
            names, matrix = self._tag_space()
            for i, card in enumerate(cards):
                if isinstance(card, str):
                    vector, extra = next(analysed)
                    top = np.argsort(-(matrix @ vector), kind="stable")[:5]
                    cards[i] = {"path": card, "track_id": None, **extra, "top_tags": [names[j] for j in top]}
        return cards


def embed_paths(model, paths: list[str], device: str = "cpu", with_attributes: bool = False) -> list[tuple[np.ndarray, dict]]:
    """(vector, facts) of audio files outside any store; one-line LibraryError for a file that fails.

    facts: duration, format, sample rate, channels, and (with_attributes) the musical attributes.
    """
    from mre.embedder.runner import embed_files  # decoding (soundfile, soxr) and torch: only for files outside the store

    out = []
    for track in embed_files(paths, model, device=device, workers=0,
                             analyse=extract_attributes if with_attributes else None):
        if track.error is not None or track.patch_mean is None:
            raise LibraryError(f"cannot read {track.path}: {track.error or 'no audio'}")
        info = track.info
        facts = {"duration": info.duration, "format": info.format, "sample_rate": info.sample_rate,
                 "channels": info.channels}
        if with_attributes:
            facts.update(track.extras.as_dict() if isinstance(track.extras, TrackAttributes)
                         else {name: None for name in ATTRIBUTE_NAMES})
        out.append((model.track_vector(track.patch_mean), facts))
    return out
