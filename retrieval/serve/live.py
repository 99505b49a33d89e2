"""The store as the server sees it: one Library, reopened when a re-index switches CURRENT.

A Library holds the generation that was live when it was opened. Each request first compares
the store's CURRENT pointer with the one the Library was opened on — one stat (inode and
mtime: the pointer is replaced by an atomic rename, so a new commit is a new inode), and
the file's few bytes only when the stat changed — and opens the new generation when it names
another. Requests already running finish on the old one: its tables are memory-mapped and
its shared lock is released only after the switch, so a commit never removes it under them.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mre.indexer.paths import json_safe, readable_path, table_paths
from mre.indexer.store import CURRENT_NAME, StoreError
from mre.retrieval.library import Library, LibraryError
from mre.retrieval.serve import map as maps


def finite(value):
    """JSON a browser can parse: NaN and infinities (an attribute that could not be measured) as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def json_bytes(value) -> bytes:
    """The CLI's JSON (json_safe: readable paths) with non-finite numbers as null."""
    return json.dumps(finite(json_safe(value)), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _rounded(values, digits: int = 4) -> list:
    return [None if v is None or not math.isfinite(v) else round(float(v), digits) for v in values]


@dataclass
class View:
    """One opened generation and what the server computes from it once."""

    library: Library
    lock: threading.Lock = field(default_factory=threading.Lock)
    _map: tuple[bytes, bytes] | None = None
    _facts: dict | None = None
    _duplicates: dict = field(default_factory=dict)    # min score → DuplicatesWork
    _duplicates_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def generation(self) -> str:
        return self.library.generation.id

    def facts(self) -> dict[str, dict]:
        """track id → bpm, key, mode (what a result line shows beside the CLI's hit fields)."""
        if self._facts is None:
            tracks = self.library.generation.track_rows()
            columns = {name: (tracks.column(name).to_pylist() if name in tracks.column_names else [None] * tracks.num_rows)
                       for name in ("bpm", "key", "mode")}
            ids = tracks.column("track_id").to_pylist()
            self._facts = {track_id: {name: columns[name][row] for name in columns} for row, track_id in enumerate(ids)}
        return self._facts

    def map_json(self) -> tuple[bytes, bytes]:
        """(JSON, gzip of it) of /api/map, made once per generation: the projection and the
        encoding of a 100k-track library take a second, the request after that nothing."""
        with self.lock:
            if self._map is None:
                body = json_bytes(self._map_data())
                self._map = (body, gzip.compress(body, compresslevel=5))
            return self._map

    def duplicates(self, min_score: float):
        """The DuplicatesWork of this generation at `min_score`, started on the first request
        (its own lock: a search never waits on it). FpcalcMissing when it cannot be made."""
        from mre.retrieval.serve.duplicates import DuplicatesWork, check_fpcalc

        with self._duplicates_lock:
            work = self._duplicates.get(min_score)
            if work is not None:
                return work
            tracks = self.library.generation.track_rows()
            paths = table_paths(tracks)
            keys = list(zip(paths, tracks.column("size").to_pylist(), tracks.column("mtime_ns").to_pylist()))
            check_fpcalc(self.library.store.root, keys)
            work = DuplicatesWork(self.library.store.root, keys, dict(zip(paths, tracks.column("track_id").to_pylist())),
                                  min_score).start()
            if len(self._duplicates) >= 4:  # a few minimum scores are kept, not every one ever asked
                self._duplicates.pop(next(iter(self._duplicates)))
            self._duplicates[min_score] = work
            return work

    def _map_data(self) -> dict:
        generation = self.library.generation
        tracks = generation.track_rows()
        tag_names = generation.tags().column("tag").to_pylist()
        words = maps.chosen_words(tracks.column("top_tags").to_pylist(), tag_names)
        tag_rows = generation.tag_vectors()[words] if words else np.zeros((0, self.library.track_vectors.shape[1]))
        method, track_xy, word_xy = maps.project(self.library.track_vectors, tag_rows)
        paths = [readable_path(p) for p in table_paths(tracks)]
        column = lambda name: tracks.column(name).to_pylist() if name in tracks.column_names else [None] * tracks.num_rows  # noqa: E731
        # columns, not one object per track: a 100k-track map is then ~half the bytes
        return {
            "generation": generation.id,
            "method": method,
            "tracks": {
                "track_id": tracks.column("track_id").to_pylist(),
                "name": [os.path.basename(p) for p in paths],
                "x": _rounded(track_xy[:, 0]), "y": _rounded(track_xy[:, 1]),
                "key": column("key"), "mode": column("mode"),
                **{name: _rounded(v if v is not None else math.nan for v in column(name)) for name in maps.MAP_ATTRIBUTES},
            },
            "words": {"tag": [tag_names[row] for row in words],
                      "x": _rounded(word_xy[:, 0]), "y": _rounded(word_xy[:, 1])},
            "attributes": list(maps.MAP_ATTRIBUTES),
        }


class LiveLibrary:
    """The Library of a store's live generation, kept current across re-indexes."""

    def __init__(self, store: Path, open_library: Callable[[Path], Library] | None = None):
        self.store = Path(store)
        self._open = open_library or (lambda path: Library(path, device="cpu"))
        self._lock = threading.Lock()
        self._pointer: tuple[int, int, int] | None = None
        self._failed_on: str | None = None
        self._view = View(self._open(self.store))
        self._pointer = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            status = os.stat(self.store / CURRENT_NAME)
        except OSError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def view(self) -> View:
        """The current generation's view, reopened first when CURRENT names another."""
        pointer = self._stat()
        if pointer == self._pointer:
            return self._view
        with self._lock:
            if pointer == self._pointer:
                return self._view
            old = self._view
            try:
                live_id = self.store_live_id()
                if live_id == old.generation:
                    self._pointer = pointer
                    return old
                self._view = View(self._open(self.store))
            except (LibraryError, StoreError) as error:
                # a damaged or half-switched store: keep answering from the generation we have,
                # say so once per pointer state, and try again when the pointer changes
                if self._failed_on != str(pointer):
                    print(f"mre serve: keeping generation {old.generation}: {error}", file=sys.stderr)
                    self._failed_on = str(pointer)
                self._pointer = pointer
                return old
            self._pointer = pointer
            old.library.generation.close()  # let a later commit remove it once no one reads it
            return self._view

    def store_live_id(self) -> str | None:
        from mre.indexer.store import Store

        return Store(self.store).live_id()
