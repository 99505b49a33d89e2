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

from mre.embedder.audio.attributes import ATTRIBUTE_NAMES
from mre.embedder.models.factory import load_model, shown_scores
from mre.embedder.models.scoring import (attribute_scores, label_spread as scoring_label_spread, standardised,
                                         tag_attribute_terms)
from mre.embedder.models.tag_space import TagSpace, best_tags, named_tags_space, vocabulary_space
from mre.indexer.index_spec import (added_vectors, exact_copy, row_lists, row_scores, search as index_search,
                                    search_allowed, use_single_query_threads)
from mre.indexer.paths import PATH_BYTES, path_from_stored, printable_path, readable_path, table_paths
from mre.indexer.store import Store, StoreError
from mre.indexer.tables import TOP_TAGS_PER_TRACK, column_floats
from mre.retrieval.filters import Filters
from mre.retrieval.tagging import TagResult, tag_scores, tag_space  # noqa: F401  (TagResult re-exported)

# Below this many tracks, song→song is an exact numpy pass; above, FAISS proposes candidates
# (this many per result) that are re-ranked exactly.
EXACT_SIMILAR_LIMIT = 50_000
SIMILAR_CANDIDATES_PER_RESULT = 20
# Track ids and paths are looked up by scanning while a process has made at most this many
# lookups (see Library._row_of).
LOOKUPS_BEFORE_DICT = 8


class LibraryError(Exception):
    """A one-line problem a user can act on (no store, unknown track, wrong model...)."""


class UnknownTargetError(LibraryError):
    """A target that is neither a track of the store nor a file; ``reason`` says which way not."""

    def __init__(self, target: str, reason: str):
        self.target, self.reason = target, reason
        super().__init__(f"{printable_path(target)}: {reason}")


def _why_not_a_file(path: str) -> str:
    """Why a path that is no track of the store cannot be embedded either, in a few words."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "no such file, and no track of the store has this path or id"
    except OSError as error:
        return f"not a track of the store, and the file cannot be read ({error.strerror or type(error).__name__})"
    if os.path.isdir(path):
        return "a folder, not an audio file (mre index PATH indexes a folder)"
    return f"not a track of the store, and not a regular file (mode {oct(status.st_mode)})"


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
class QueryResult:
    hits: list[Hit]
    matched_labels: list[str]
    related_labels: list[tuple[str, float]]
    ignored: list[str]
    messages: list[str]


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
        try:
            generation.check()  # a damaged store is said, never searched
        except StoreError as error:
            generation.close()
            raise LibraryError(str(error)) from None
        self.generation = generation
        self.meta = generation.meta
        stored_words = self.meta.get("word_vectors_path")
        try:
            self.model = load_model(model or self.meta.get("model_file") or self.meta.get("model_name"), device=device,
                                    word_vectors=word_vectors or stored_words)
        except ValueError as error:
            raise LibraryError(str(error)) from None
        if self.model.model_id != self.meta.get("model_id"):
            if model is not None:  # asked for another model than the store's
                raise LibraryError(
                    f"this store was made with model {self.meta.get('model_id')}; it cannot be searched with "
                    f"{self.model.model_id} — re-index with `mre index PATH --model {model}` or drop --model")
            # the store's own model, since changed (an upgrade shipped new weights, a model file retrained)
            import shlex

            command = ["mre", "index", *(self.meta.get("library_roots") or ["PATH"])]
            if self.store.root != default_store_path():
                command += ["--store", str(self.store.root)]
            raise LibraryError(
                f"this store was made with {self.meta.get('model_id')}, and this install's "
                f"{self.meta.get('model_name') or 'model'} is now {self.model.model_id}: "
                f"`{' '.join(shlex.quote(part) for part in command)}` embeds the store's tracks again")
        self.device = device
        self._tracks = generation.track_rows()  # the vectors are read only when a search needs them
        self._path_list: list[str] | None = None  # see _paths: a query needs only its hits' paths
        self._id_list: list[str] | None = None  # see _ids: a query needs only its hits' ids
        self._rows_by: dict[str, dict[str, int]] = {}  # "id"/"path" → row (see _row_of): a query never needs them
        self._scans = 0
        self._vectors: np.ndarray | None = None  # loaded on first use: a query of a big store may not need them
        self._tag_space: TagSpace | None = None
        self._tag_attribute_cache: tuple[list[str], np.ndarray, np.ndarray] | None = None  # see _tag_attributes
        self._row_lists: np.ndarray | None = None  # see _audio_row_lists
        self._exact: tuple | None = None  # see _scoring_vectors
        self._custom_words = word_vectors is not None and word_vectors != stored_words
        self._custom_vocabulary = vocabulary

    # -- helpers ----------------------------------------------------------------------------
    @property
    def _paths(self) -> list[str]:
        if self._path_list is None:
            self._path_list = table_paths(self._tracks)
        return self._path_list

    def _path_of(self, row: int) -> str:
        """One row's path, without listing them all (1M tracks: 0.35 s) when they are not yet."""
        if self._path_list is not None:
            return self._path_list[row]
        raw = self._tracks.column(PATH_BYTES)[row].as_py() if PATH_BYTES in self._tracks.column_names else None
        return path_from_stored(self._tracks.column("path")[row].as_py(), raw)

    @property
    def _ids(self) -> list[str]:
        if self._id_list is None:
            self._id_list = self._tracks.column("track_id").to_pylist()
        return self._id_list

    def _row_of(self, kind: str, key: str) -> int | None:
        """The row of a track id (kind "id") or stored path ("path"), or None. The first few
        lookups of a process scan the list (one `mre tags` of a 1M-track store: ~20 ms, against
        ~0.35 s to build a dict); more make the dict once."""
        values = self._ids if kind == "id" else self._paths
        rows = self._rows_by.get(kind)
        if rows is None and self._scans < LOOKUPS_BEFORE_DICT:
            self._scans += 1
            try:
                return values.index(key)
            except ValueError:
                return None
        if rows is None:
            rows = self._rows_by[kind] = {value: row for row, value in enumerate(values)}
        return rows.get(key)

    def __len__(self) -> int:
        return self._tracks.num_rows

    @property
    def track_vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self.generation.track_vectors()
        return self._vectors

    def _hit(self, row: int, score: float) -> Hit:
        durations = self._tracks.column("duration")
        top = self._tracks.column("top_tags")[row].as_py() or []
        duration = durations[row].as_py()
        track_id = self._id_list[row] if self._id_list is not None else self._tracks.column("track_id")[row].as_py()
        return Hit(path=self._path_of(row), score=round(float(score), 6), track_id=track_id,
                   duration=None if duration is None or not math.isfinite(duration) else round(duration, 3), top_tags=top)

    def _display(self, raw: np.ndarray) -> np.ndarray:
        """Scores as users see them: the zero-shot model's log-odds as 0–1, cosines as they are."""
        return shown_scores(self.model, raw)

    def _search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        index = self.generation.audio_index()
        use_single_query_threads()  # one query at a time: a second thread only adds sync cost
        scores, rows = index_search(index, np.asarray(vector, dtype=np.float32)[None], k)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def resolve(self, target: str) -> tuple[int | None, str]:
        """A track id or a path → (row in the store or None, absolute path or id)."""
        row = self._row_of("id", target)
        if row is not None:
            return row, self._paths[row]
        path = str(Path(target).expanduser().resolve())
        row = self._row_of("path", path)
        if row is not None:
            return row, path
        if os.path.isfile(path):
            return None, path
        # a name that is not UTF-8 as the output showed it (\xNN for its odd bytes), pasted back
        readable = {readable_path(p): row for row, p in enumerate(self._paths) if "\\x" in readable_path(p)}
        if path in readable:
            return readable[path], self._paths[readable[path]]
        raise UnknownTargetError(target, _why_not_a_file(path))

    def _vector_of(self, target: str, with_attributes: bool = False) -> tuple[np.ndarray, int | None, str, dict | None]:
        """A target's vector, row (None outside the store), path, and (with_attributes) its
        musical attributes as a dict (None without)."""
        row, path = self.resolve(target)
        if row is not None:
            attributes = {name: self._tracks.column(name)[row].as_py() if name in self._tracks.column_names else None
                          for name in ATTRIBUTE_NAMES} if with_attributes else None
            return self._vectors_of_rows([row])[0], row, path, attributes
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

    def _column_values(self, column: str) -> np.ndarray | list:
        """An attribute column as float64 with NaN where unknown, from its Arrow buffers (1M
        tracks in milliseconds, not the ~0.15 s of a Python list and ~0.1 s to convert it)."""
        return column_floats(self._tracks, column)

    def _z_of(self, attributes: list[dict], columns) -> np.ndarray:
        """z-scores [tracks, columns] of tracks outside the store (their attribute dicts) against
        this store's mean and spread of each column."""
        return np.stack([standardised(self._column_values(column), column, of=[a.get(column) for a in attributes])
                         for column in columns], axis=1).astype(np.float64)

    def label_spread(self, label_weights: np.ndarray) -> np.ndarray:
        """Standard deviation over the store of each row of `label_weights` [Q, D] scored against
        the track vectors (scoring.label_spread); 1.0 where it is 0."""
        matrix, to_query = self._scoring_vectors()
        return scoring_label_spread(matrix, label_weights, to_query)

    def _scoring_vectors(self) -> tuple[np.ndarray, object]:
        """What scores label evidence of the store's tracks, and the map queries [q, D] go
        through to meet it: while the store's vectors are unread, the track index's exact copy
        (index_spec.exact_copy: a view, so scoring every track reads no vector column; 1M
        tracks: 0.2 s, not 3-5 s), else the vectors themselves."""
        exact = self._exact_copy()
        if exact is not None:
            return exact
        return self.track_vectors, lambda queries: np.atleast_2d(queries)

    def _exact_copy(self) -> tuple[np.ndarray, object] | None:
        """The track index's exact copy and its query map while the store's vectors are unread
        (None once they are read, or for an index that keeps only codes)."""
        if self._vectors is not None:
            return None
        if self._exact is None:
            index = self.generation.audio_index()
            self._exact = (index, exact_copy(index))  # the index held beside its view
        return self._exact[1]

    def _vectors_of_rows(self, rows) -> np.ndarray:
        """The stored vectors of `rows` [n, D]: while the store's vectors are unread, from the
        index's exact copy (a whitened copy through A⁻¹, within float32 rounding of the stored
        ones), so a stored track's tags or neighbours read no vector column (1M tracks: 5 s)."""
        rows = np.asarray(rows, dtype=np.int64)
        exact = self._exact_copy()
        if exact is not None:
            return added_vectors(self._exact[0], exact[0][rows])
        return self.track_vectors[rows]

    def _mean_vector(self) -> np.ndarray:
        """The mean of the store's vectors (from the exact copy while they are unread)."""
        exact = self._exact_copy()
        if exact is not None:
            return added_vectors(self._exact[0], exact[0].mean(axis=0))[0]
        return self.track_vectors.mean(axis=0)

    def _label_scores(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Label evidence of `rows` for one query (see _scoring_vectors)."""
        matrix, to_query = self._scoring_vectors()
        return row_scores(matrix, to_query(vector)[0], rows)

    def _ranked(self, vector: np.ndarray, k: int, filters: Filters | None,
                attribute_weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) by inner product, through FAISS; with filters, among the rows
        that pass (index_spec.search_allowed: exactly while they are few, else through the
        index's lists with more of them probed); with attribute weights, an exact pass (over
        the rows that pass) scored by `attribute_scores`."""
        rows = self._allowed_rows(filters)
        if rows is None and not attribute_weights:
            return self._search(vector, k)
        if not attribute_weights:
            use_single_query_threads()
            params = self.meta.get("audio_index", {}).get("search_params", {})
            matrix, to_query = self._scoring_vectors()
            return search_allowed(self.generation.audio_index(), matrix, vector, k, rows, params,
                                  self._audio_row_lists, to_query=to_query)
        if rows is None:
            rows = np.arange(len(self))
        scores = self._exact_scores(vector, rows, attribute_weights)
        order = np.argsort(-scores, kind="stable")[:k]
        return scores[order], rows[order]

    def _audio_row_lists(self) -> np.ndarray:
        """Which inverted list of the track index holds each track: read once per opened store,
        when a filtered search first goes through the lists."""
        if self._row_lists is None:
            self._row_lists = row_lists(self.generation.audio_index())
        return self._row_lists

    def _exact_scores(self, vector: np.ndarray, rows: np.ndarray,
                      attribute_weights: dict[str, float] | None) -> np.ndarray:
        """Raw scores of `rows` (label evidence, plus the attributes' share when weighted)."""
        scores = self._label_scores(vector, rows)
        if attribute_weights:
            columns = list(attribute_weights)
            z = np.stack([self.attribute_z(column)[rows] for column in columns], axis=1)
            scores = attribute_scores(scores, self.label_spread(vector)[0],
                                      np.array([attribute_weights[c] for c in columns]), z)
        return scores

    # -- word → song ---------------------------------------------------------------------------
    def query(self, text: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """Tracks best matching a text query, best first (only those passing `filters`)."""
        return self.search(text, k, filters).hits

    def search(self, text: str, k: int = 10, filters: Filters | None = None) -> QueryResult:
        """Like `query`, with how the words were understood (matched labels, ignored words)."""
        query = self._query_vector(text)
        scores, rows = self._ranked(query.vector, k, filters, query.attribute_weights)
        hits = [self._hit(int(r), s) for r, s in zip(rows, self._display(scores))]
        return QueryResult(hits, query.matched_labels, query.related_labels, query.ignored, query.messages)

    def _query_vector(self, text: str):
        """The model's query vector for `text`; an empty or wholly unknown query is a LibraryError."""
        if not text or not text.strip():
            raise LibraryError("the query is empty: give some words, e.g. mre query \"calm piano\"")
        try:
            return self.model.query_vector(text)
        except ValueError as error:
            raise LibraryError(str(error)) from None

    def scores(self, text: str) -> np.ndarray:
        """Every track's score for a text query, in the store's row order, as `search` shows
        them (`mre serve` colours its map by a word with these)."""
        query = self._query_vector(text)
        return self._display(self._exact_scores(query.vector, np.arange(len(self)), query.attribute_weights))

    def track_path(self, track_id: str) -> str | None:
        """The file of a track id, or None: ids only, never a path (`mre serve` hands out files by id)."""
        row = self._row_of("id", track_id)
        return None if row is None else self._paths[row]

    # -- song → words -----------------------------------------------------------------------------
    def tag_space(self) -> TagSpace:
        """The tags `tags` chooses from: the store's vocabulary, or the `vocabulary` file given
        (or the store's own tags re-embedded with other word vectors)."""
        if self._tag_space is None:
            if self._custom_vocabulary is None and not self._custom_words:
                tags = self.generation.tags().column("tag").to_pylist()
                self._tag_space = TagSpace(tags, self.generation.tag_vectors())
            elif self._custom_vocabulary is not None:
                self._tag_space = vocabulary_space(self.model, self._custom_vocabulary)
            else:
                self._tag_space = named_tags_space(self.model, self.generation.tags().column("tag").to_pylist(),
                                                   "this store")
        return self._tag_space

    def _tag_attributes(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(columns, weights [tags, columns], label spread [tags]) of the vocabulary tags that
        relate to attribute poles, computed once: a tag is scored as the same query would be."""
        if self._tag_attribute_cache is None:
            space = self.tag_space()
            self._tag_attribute_cache = tag_attribute_terms(self.model, space.names, space.matrix, self.label_spread)
        return self._tag_attribute_cache

    def _tag_scores(self, vector: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """Every vocabulary tag's score for one track, as users see it: label evidence, plus for
        a tag related to attribute poles its weights on the track's z-scores (`z`, one per
        attribute column, standardised against the store), exactly as a query of that tag."""
        columns, weights, spread = self._tag_attributes()
        scores = self.tag_space().matrix @ vector
        if columns:
            scores = attribute_scores(scores, spread, weights, z)
        return self._display(scores)

    def tags(self, target: str, k: int | None = 10, threshold: float | None = None) -> TagResult:
        """The vocabulary tags that best describe a track (in the store, or any audio file):
        the k best (None: all), or with `threshold` those whose score reaches it (at most k).

        A tag that relates to attribute poles ("calm", "energetic", "gentle") also weighs the
        track's standardised attributes, exactly as a query of that tag scores the track."""
        self.resolve(target)  # an unknown target is this one-line error
        result = self.tag_many([target], k, threshold)[0]
        if not isinstance(result, TagResult):
            raise LibraryError(f"cannot read {result[0]}: {result[1]}")
        return result

    def tag_many(self, targets: list[str], k: int | None = 10,
                 threshold: float | None = None) -> list[TagResult | tuple[str, str]]:
        """`tags` for many targets, in input order: a TagResult each, or (target, reason) for
        one that is not in the store and cannot be read. Files outside the store are embedded
        together in one batched run, their attributes measured in the same decoding pass and
        standardised against the store, so a file scores as its copy in the store would."""
        results: list = []
        outside: list[str] = []
        for target in targets:
            try:
                row, path = self.resolve(target)
            except LibraryError as error:
                results.append((target, getattr(error, "reason", str(error))))
                continue
            if row is None:
                results.append(path)
                outside.append(path)
                continue
            results.append(TagResult(path=path, tags=self._row_tags(row, k, threshold), track_id=self._ids[row]))
        if not outside:
            return results
        from mre.embedder.runner import embed_tracks  # decoding and torch: only for files outside the store

        embedded = list(embed_tracks(outside, self.model, device=self.device, workers=None if len(outside) > 1 else 0,
                                     attributes=bool(self._tag_attributes()[0])))
        read = [t for t in embedded if t.error is None]
        scored: dict[str, TagResult | tuple[str, str]] = {
            t.path: (t.path, t.error) for t in embedded if t.error is not None}
        for track, tags in zip(read, self._outside_tags([t.vector for t in read], [t.attributes for t in read],
                                                         k, threshold)):
            scored[track.path] = TagResult(path=track.path, tags=tags)
        return [scored[r] if isinstance(r, str) else r for r in results]

    def _row_tags(self, row: int, k: int | None, threshold: float | None) -> list[dict]:
        """A stored track's best tags, its attributes standardised over the store."""
        columns = self._tag_attributes()[0]
        z = np.array([self.attribute_z(c)[row] for c in columns]) if columns else None
        return best_tags(self.tag_space().names, self._tag_scores(self._vectors_of_rows([row])[0], z), k, threshold)

    def _outside_tags(self, vectors: list[np.ndarray], attributes: list[dict], k: int | None,
                      threshold: float | None) -> list[list[dict]]:
        """Best tags of tracks outside the store, their attributes standardised against the store:
        a file scores as its copy in the store would."""
        columns = self._tag_attributes()[0]
        z = self._z_of(attributes, columns) if columns and vectors else None
        names = self.tag_space().names
        return [best_tags(names, self._tag_scores(vector, None if z is None else z[i]), k, threshold)
                for i, vector in enumerate(vectors)]

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
        mean = self._mean_vector()
        query = vector - mean
        query /= max(float(np.linalg.norm(query)), 1e-12)
        candidates = self._allowed_rows(filters)
        if candidates is None:
            candidates = np.arange(len(self)) if len(self) <= EXACT_SIMILAR_LIMIT \
                else self._search(query, (k + 1) * SIMILAR_CANDIDATES_PER_RESULT)[1]
        centred = self._vectors_of_rows(candidates) - mean
        cosine = centred @ query / np.maximum(np.linalg.norm(centred, axis=1), 1e-12)
        if row is not None:
            cosine[candidates == row] = -np.inf
        order = np.argsort(-cosine, kind="stable")[:k]
        return [self._hit(int(candidates[i]), cosine[i]) for i in order if np.isfinite(cosine[i])]


    # -- a track's card ---------------------------------------------------------------------------
    def info(self, targets: list[str]) -> list[dict]:
        """Per track: path, duration, format, the musical attributes, top tags (files outside the store are analysed).

        The top tags are `tags`' best TOP_TAGS_PER_TRACK, attribute term included, whether the file is in
        the store or not: a card lists what `mre tags` says of the track."""
        cards, outside = [], []
        for target in targets:
            row, path = self.resolve(target)
            if row is not None:
                record = {k: v for k, v in self._tracks.slice(row, 1).to_pylist()[0].items()
                          if k not in ("vector", PATH_BYTES)}
                record["path"] = path
                record["top_tags"] = [entry["tag"] for entry in self._row_tags(row, TOP_TAGS_PER_TRACK, None)]
                cards.append(record)
            else:
                cards.append(path)
                outside.append(path)
        if outside:
            analysed = embed_paths(self.model, outside, device=self.device, with_attributes=True)
            tops = iter(self._outside_tags([vector for vector, _ in analysed], [facts for _, facts in analysed],
                                           TOP_TAGS_PER_TRACK, None))
            facts = iter(facts for _, facts in analysed)
            cards = [{"path": card, "track_id": None, **next(facts), "top_tags": [e["tag"] for e in next(tops)]}
                     if isinstance(card, str) else card for card in cards]
        return cards


def file_cards(paths: list[str], device: str = "cpu", k: int = 5) -> list[dict]:
    """`Library.info`'s card for audio files when there is no store: duration, format, the
    musical attributes and the default model's top tags from the built-in vocabulary."""
    model = load_model(None, device=device)
    space = tag_space(model)
    cards = []
    for path, (vector, facts) in zip(paths, embed_paths(model, paths, device=device, with_attributes=True)):
        top = best_tags(space.names, tag_scores(model, vector, space), k)
        cards.append({"path": path, "track_id": None, **facts, "top_tags": [entry["tag"] for entry in top]})
    return cards


def embed_paths(model, paths: list[str], device: str = "cpu", with_attributes: bool = False) -> list[tuple[np.ndarray, dict]]:
    """(vector, facts) of audio files outside any store; one-line LibraryError for a file that fails.

    facts: duration, format, sample rate, channels, and (with_attributes) the musical attributes.
    """
    from mre.embedder.runner import embed_tracks  # decoding (soundfile, soxr) and torch: only for files outside the store

    out = []
    for track in embed_tracks(paths, model, device=device, workers=0, attributes=with_attributes):
        if track.error is not None:
            raise LibraryError(f"cannot read {printable_path(track.path)}: {track.error}")
        info = track.info
        facts = {"duration": info.duration, "format": info.format, "sample_rate": info.sample_rate,
                 "channels": info.channels}
        if with_attributes:
            facts.update(track.attributes)
        out.append((track.vector, facts))
    return out
