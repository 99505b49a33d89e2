"""The store directory: whole generations of tables and indexes, switched atomically.

    <store>/CURRENT                      names the live generation (write-temp, fsync, rename)
    <store>/LOCK                         flock'd by the one run writing the store
    <store>/generations/<id>/            tracks.parquet  audio.faiss  tags.parquet
                                         tags.faiss  skipped.parquet  meta.json
    <store>/staging/<key>/part-*.parquet resumable embedding results (staging.py)

A generation directory is complete before CURRENT names it, so a reader never sees half an
index, and a run killed before the switch leaves the previous generation live. Readers hold
a shared flock on their generation's meta.json; old generations are removed only when no
reader holds one, and the previous generation is always kept.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mre.indexer import index_spec as specs
from mre.util.atomic import fsync_dir, fsync_file, write_bytes_atomic, write_parquet_atomic
from mre.indexer.diskspace import DiskFullError, disk_full_errors  # noqa: F401  (DiskFullError: API)
from mre.indexer.staging import KEY_PATTERN, Staging, StagingError
from mre.indexer.tables import (  # noqa: F401  (re-exported: the store's public API)
    SKIPPED_SCHEMA,
    StoreError,
    StoreLockedError,
    with_vectors,
    tags_schema,
    track_id_for,
    tracks_schema,
    vector_type,
    vectors_column,
    vectors_from_column,
)

FORMAT_VERSION = 1
CURRENT_NAME = "CURRENT"
LOCK_NAME = "LOCK"
GENERATION_FILES = ("tracks.parquet", "audio.faiss", "tags.parquet", "tags.faiss", "skipped.parquet", "meta.json")
_GENERATION_ID = re.compile(r"^(\d{6,})-\d{8}T\d{6}Z$")
_LIVE_OPEN_ATTEMPTS = 3
# Files whose sha256 is checked each time a generation is opened for searching: the indexes,
# which a reader would otherwise use without a word if another store's were copied in.
# The tables are checked by size and row count (their footers), which costs nothing.
# A file whose size and modification time (to the nanosecond) are still those recorded at
# commit is the file committed, and is not read again: hashing the index of a 10M-track store
# took ~6 s of every query. A file copied in has another modification time (`cp -p` keeps its
# own store's), so it is hashed.
HASHED_ON_OPEN = ("audio.faiss", "tags.faiss")
_TABLE_COUNTS = {"tracks.parquet": "tracks", "tags.parquet": "tags", "skipped.parquet": "skipped"}
_HASH_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Generation:
    """One committed, immutable generation; tables and indexes load lazily and are cached."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.id = self.path.name
        meta_path = self.path / "meta.json"
        try:
            # Shared lock for the life of this object: commit never deletes a generation
            # a reader holds (see Store._remove_old_generations).
            self._reader_fd = os.open(meta_path, os.O_RDONLY)
        except FileNotFoundError:
            raise StoreError(f"generation {self.path} has no meta.json; the store is damaged") from None
        fcntl.flock(self._reader_fd, fcntl.LOCK_SH)
        try:
            with open(meta_path, encoding="utf-8") as handle:
                self.meta: dict[str, Any] = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            self.close()
            raise StoreError(f"corrupted meta.json in {self.path}: {error}") from None
        if not isinstance(self.meta, dict) or self.meta.get("format_version") != FORMAT_VERSION:
            self.close()
            raise StoreError(f"meta.json in {self.path} is not a format-{FORMAT_VERSION} mre store")
        self._cache: dict[str, Any] = {}

    def damage(self, hash_files: tuple[str, ...] = HASHED_ON_OPEN, strict: bool = False) -> str | None:
        """What is wrong with this generation's files against its meta.json, or None.

        Every file must exist; with the sizes and sha256 recorded at commit (stores before
        them have none) sizes must match and ``hash_files`` hash the same — unless their
        modification time is the one recorded at commit too, and not ``strict``; the tables'
        row counts must be meta's. The index vector counts are checked again when loaded.
        """
        recorded = self.meta.get("files") or {}
        counts = self.meta.get("counts") or {}
        for name in GENERATION_FILES:
            path = self.path / name
            try:
                stat = path.stat()
                size = stat.st_size
            except FileNotFoundError:
                return f"{name} is missing"
            except OSError as error:
                return f"{name} cannot be read ({error.strerror or error})"
            record = recorded.get(name)
            if record and record.get("size") is not None and size != record["size"]:
                return f"{name} has {size} bytes, meta.json recorded {record['size']} at commit"
            as_committed = not strict and record and stat.st_mtime_ns == record.get("mtime_ns")
            if record and record.get("sha256") and name in hash_files and not as_committed:
                try:
                    if file_sha256(path) != record["sha256"]:
                        return f"{name} is not the file this generation was written with (its sha256 differs)"
                except OSError as error:
                    return f"{name} cannot be read ({error.strerror or error})"
            if name in _TABLE_COUNTS and _TABLE_COUNTS[name] in counts:
                try:
                    rows = pq.read_metadata(path).num_rows
                except (OSError, pa.ArrowInvalid) as error:
                    return f"{name} cannot be read ({specs._first_line(error)})"
                if rows != counts[_TABLE_COUNTS[name]]:
                    return f"{name} holds {rows} rows, meta.json says {counts[_TABLE_COUNTS[name]]}"
        return None

    def check(self) -> None:
        """StoreError (one line: what is wrong and how to recover) unless :meth:`damage` finds nothing."""
        problem = self.damage()
        if problem is not None:
            raise StoreError(self.damage_message(problem))

    def damage_message(self, problem: str) -> str:
        store_root = self.path.parent.parent
        roots = self.meta.get("library_roots") or ["PATH"]
        message = (f"the store's live generation {self.id} is damaged: {problem}; "
                   f"`mre index {roots[0]} --store {store_root}` rebuilds it")
        previous = self._previous_whole_generation()
        if previous is not None:
            message += (f", or switch back to the previous generation {previous} "
                        f"(`echo {previous} > {store_root / CURRENT_NAME}`)")
        return message

    def _previous_whole_generation(self) -> str | None:
        earlier = sorted((p for p in self.path.parent.iterdir() if _GENERATION_ID.match(p.name) and p.name < self.id),
                         reverse=True) if self.path.parent.is_dir() else []
        for path in earlier:
            try:
                with Generation(path) as generation:
                    if generation.damage() is None:
                        return generation.id
            except StoreError:
                continue
        return None

    def close(self) -> None:
        fd, self._reader_fd = getattr(self, "_reader_fd", None), None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Generation({str(self.path)!r})"

    def _cached(self, name: str, load):
        if name not in self._cache:
            self._cache[name] = load()
        return self._cache[name]

    def _table(self, file_name: str, columns=None, leave_out: tuple[str, ...] = ()) -> pa.Table:
        path = self.path / file_name
        try:
            # one file, read as it is: read_table would import pyarrow.dataset first (~40 ms of a query)
            handle = pq.ParquetFile(path, memory_map=True)
            if leave_out:
                columns = [name for name in handle.schema_arrow.names if name not in leave_out]
            return handle.read(columns=columns)
        except (OSError, pa.ArrowInvalid) as error:
            reason = getattr(error, "strerror", None) or specs._first_line(error).replace(f"'{path}'", "the file")
            raise StoreError(f"cannot read {path}: {reason}") from None

    def _index(self, file_name: str, meta_key: str):
        import faiss

        path = self.path / file_name
        try:
            # The vectors a flat index or an exact re-ranking copy keeps are mapped from the file,
            # not read: a generation's files never change, and a search touches few of them
            # (1M tracks: 0.7 s to read the index, 0.07 s to map it; 10M: ~8 GB to read). FAISS
            # before 1.9 has no such flag: 0 reads it whole.
            index = faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
        except RuntimeError as error:
            raise StoreError(self.damage_message(f"{file_name} cannot be read as a FAISS index "
                                                 f"({specs._first_line(error)})")) from None
        expected = self.meta.get(meta_key, {})
        if expected.get("count") is not None and index.ntotal != expected["count"]:
            raise StoreError(self.damage_message(
                f"{file_name} holds {index.ntotal} vectors, meta.json says {expected['count']}"))
        if expected.get("dim") is not None and index.d != expected["dim"]:
            raise StoreError(self.damage_message(
                f"{file_name} has {index.d}-d vectors, meta.json says {expected['dim']}"))
        specs.apply_search_params(index, self.meta.get(meta_key, {}).get("search_params", {}))
        return specs.maybe_to_gpu(index)

    def tracks(self) -> pa.Table:
        return self._cached("tracks", lambda: self._table("tracks.parquet"))

    def track_rows(self) -> pa.Table:
        """The tracks table without its vector column: what a search shows of a hit, read
        without decoding the vectors (1M tracks: 0.6 s against ~3.5 s for the whole table)."""
        if "tracks" in self._cache:
            return self._cache["tracks"].drop_columns(["vector"])
        return self._cached("track_rows", lambda: self._table("tracks.parquet", leave_out=("vector",)))

    def track_vectors(self) -> np.ndarray:
        def load() -> np.ndarray:
            column = self._cache["tracks"].column("vector") if "tracks" in self._cache else \
                self._table("tracks.parquet", columns=["vector"]).column("vector")
            return vectors_from_column(column, f"{self.path}/tracks.parquet")

        return self._cached("track_vectors", load)

    def audio_index(self):
        return self._cached("audio_index", lambda: self._index("audio.faiss", "audio_index"))

    def tags(self) -> pa.Table:
        return self._cached("tags", lambda: self._table("tags.parquet"))

    def tag_vectors(self) -> np.ndarray:
        return self._cached(
            "tag_vectors", lambda: vectors_from_column(self.tags().column("vector"), f"{self.path}/tags.parquet")
        )

    def tag_index(self):
        return self._cached("tag_index", lambda: self._index("tags.faiss", "tag_index"))

    def skipped(self) -> pa.Table:
        return self._cached("skipped", lambda: self._table("skipped.parquet"))


class Store:
    """A store directory; nothing is created on disk until the first write."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser()
        self._lock_fd: int | None = None
        self._lock_depth = 0

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def generations_dir(self) -> Path:
        return self.root / "generations"

    def exists(self) -> bool:
        return (self.root / CURRENT_NAME).is_file()

    def live_id(self) -> str | None:
        try:
            text = (self.root / CURRENT_NAME).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)  # strerror: without the path again
            raise StoreError(f"cannot read {self.root / CURRENT_NAME}: {reason}") from None
        if not _GENERATION_ID.match(text):
            raise StoreError(f"{self.root / CURRENT_NAME} does not name a generation (got {text[:40]!r})")
        return text

    def live(self) -> Generation | None:
        """The live generation, or None when nothing has been committed yet."""
        for _ in range(_LIVE_OPEN_ATTEMPTS):
            gen_id = self.live_id()
            if gen_id is None:
                return None
            path = self.generations_dir / gen_id
            if path.is_dir():
                try:
                    return Generation(path)
                except StoreError:
                    # A commit may have switched CURRENT and removed this generation between
                    # our two reads; only an unchanged CURRENT means real damage.
                    if self.live_id() == gen_id:
                        raise
            elif self.live_id() == gen_id:
                raise StoreError(f"{self.root / CURRENT_NAME} names {gen_id}, which is missing; the store is damaged")
        raise StoreError(f"store {self.root} keeps changing under the reader; try again")

    def open_live(self) -> Generation:
        """The live generation, or a StoreError telling the user how to create one."""
        generation = self.live()
        if generation is None:
            raise StoreError(f"no store at {self.root} yet — run `mre index PATH --store {self.root}` first")
        return generation

    @contextlib.contextmanager
    def lock(self) -> Iterator["Store"]:
        """Hold the store's write lock (re-entrant within this object); a second run fails fast."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        lock_path = self.root / LOCK_NAME
        with disk_full_errors(self.root, "the store's lock file"):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"store {self.root} is being written by another `mre index` run (pid {holder}); wait for it to finish"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError:
            pass  # the pid only helps the message of a second run; the flock is the lock
        self._lock_fd, self._lock_depth = fd, 1
        try:
            yield self
        finally:
            self._lock_depth = 0
            self._lock_fd = None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock

    def staging(self, key: str) -> Staging:
        """Resumable parts for one run's ``key`` (letters, digits, '.', '_', '-')."""
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise StoreError(f"staging key {key!r} must be letters, digits, '.', '_' or '-' (at most 128)")
        try:
            return Staging(self.root / "staging" / key)
        except StagingError as error:
            raise StoreError(str(error)) from None

    def commit(
        self,
        tracks: pa.Table,
        track_vectors: np.ndarray,
        tags: pa.Table,
        tag_vectors: np.ndarray,
        skipped: pa.Table,
        meta: dict,
        index_spec: str | None = None,
    ) -> Generation:
        """Write a new generation, switch CURRENT to it, and remove generations no one needs.

        ``index_spec`` overrides the chooser for the track index (``--index-spec``); the tag
        index is always chosen by size. ``meta`` is stored as given, plus the store's own keys.
        """
        with self.lock():
            previous = self.live_id()
            gen_id = self._new_generation_id(previous)
            path = self._write_generation(gen_id, tracks, track_vectors, tags, tag_vectors, skipped, meta, index_spec)
            try:
                with disk_full_errors(self.root, "the CURRENT pointer", 4096):
                    self._switch_current(gen_id)
            except Exception:
                shutil.rmtree(path, ignore_errors=True)  # never live: the previous generation stays
                raise
            self._remove_old_generations(keep={gen_id, previous})
        return Generation(path)

    def _new_generation_id(self, previous: str | None) -> str:
        numbers = [int(m.group(1)) for m in map(_GENERATION_ID.match, self._generation_names()) if m]
        if previous:
            numbers.append(int(_GENERATION_ID.match(previous).group(1)))
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{max(numbers, default=0) + 1:06d}-{stamp}"

    def _generation_names(self) -> list[str]:
        if not self.generations_dir.is_dir():
            return []
        return sorted(entry.name for entry in self.generations_dir.iterdir())

    def _write_generation(self, gen_id, tracks, track_vectors, tags, tag_vectors, skipped, meta, index_spec) -> Path:
        if not isinstance(meta, dict):
            raise StoreError(f"meta must be a dict, got {type(meta).__name__}")
        tracks = with_vectors(tracks, track_vectors, "tracks")
        tags = with_vectors(tags, tag_vectors, "tags")
        if skipped is None:
            skipped = SKIPPED_SCHEMA.empty_table()
        track_vectors = vectors_from_column(tracks.column("vector"), "tracks")
        tag_vectors = vectors_from_column(tags.column("vector"), "tags")
        # The track index must exist even for an empty library; give it the tags' width then.
        if track_vectors.shape[1] == 0 and tag_vectors.shape[1]:
            track_vectors = np.zeros((0, tag_vectors.shape[1]), np.float32)
        audio_spec = index_spec or specs.choose_index_spec(*track_vectors.shape)
        tag_spec = specs.choose_index_spec(*tag_vectors.shape)
        audio_index = specs.build_index(track_vectors, audio_spec)
        tag_index = specs.build_index(tag_vectors, tag_spec)
        # nprobe of an inverted-file index is measured on this generation's vectors, with the
        # vocabulary's tag query vectors as the searches to expect (every generation is
        # trained and tuned afresh: a grown store never searches with stale lists)
        audio_tuning = specs.tune_search_params(audio_index, track_vectors, audio_spec, queries=tag_vectors)
        tag_tuning = specs.tune_search_params(tag_index, tag_vectors, tag_spec)

        what = "the new index generation"
        # an upper estimate for the message: the tables as in memory, and a flat index's vectors
        needed = tracks.nbytes + tags.nbytes + skipped.nbytes + track_vectors.nbytes + tag_vectors.nbytes
        with disk_full_errors(self.root, what, needed):
            self.generations_dir.mkdir(parents=True, exist_ok=True)
        staging_dir = self.generations_dir / f".writing-{gen_id}"
        shutil.rmtree(staging_dir, ignore_errors=True)
        with disk_full_errors(self.root, what, needed):  # (measures the free space after the clean-up below)
            try:
                staging_dir.mkdir()
                self._write_generation_files(staging_dir, gen_id, tracks, tags, skipped, audio_index, tag_index,
                                             (audio_spec, *audio_tuning), (tag_spec, *tag_tuning),
                                             track_vectors, tag_vectors, meta)
                final = self.generations_dir / gen_id
                os.replace(staging_dir, final)
            except BaseException:
                # a failed or interrupted write leaves no half-written folder behind
                shutil.rmtree(staging_dir, ignore_errors=True)
                raise
        fsync_dir(self.generations_dir)
        return final

    def _write_generation_files(self, staging_dir, gen_id, tracks, tags, skipped, audio_index, tag_index,
                                audio_choice, tag_choice, track_vectors, tag_vectors, meta) -> None:
        import faiss

        write_parquet_atomic(staging_dir / "tracks.parquet", tracks)
        write_parquet_atomic(staging_dir / "tags.parquet", tags)
        write_parquet_atomic(staging_dir / "skipped.parquet", skipped)
        for name, index in (("audio.faiss", audio_index), ("tags.faiss", tag_index)):
            try:
                faiss.write_index(index, str(staging_dir / name))
            except RuntimeError as error:
                if "No space left" in str(error) or "quota" in str(error):
                    raise
                raise StoreError(f"cannot write FAISS index {staging_dir / name}: {specs._first_line(error)}") from None
            fsync_file(staging_dir / name)
        full_meta = {
            **meta,
            "format_version": FORMAT_VERSION,
            "generation": gen_id,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "counts": {"tracks": tracks.num_rows, "tags": tags.num_rows, "skipped": skipped.num_rows},
            "audio_index": _index_meta(*audio_choice, track_vectors),
            "tag_index": _index_meta(*tag_choice, tag_vectors),
            "files": self._file_records(staging_dir),
        }
        try:
            meta_bytes = json.dumps(full_meta, indent=2, sort_keys=True, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise StoreError(f"meta cannot be written as JSON: {error}") from None
        write_bytes_atomic(staging_dir / "meta.json", meta_bytes)

    @staticmethod
    def _file_records(staging_dir: Path) -> dict[str, dict]:
        """Size and sha256 of each data file as committed, and the indexes' modification times
        (renaming the staging folder keeps them), for readers to check theirs against."""
        records = {}
        for name in GENERATION_FILES:
            if name == "meta.json":
                continue
            stat = (staging_dir / name).stat()
            records[name] = {"size": stat.st_size, "sha256": file_sha256(staging_dir / name)}
            if name in HASHED_ON_OPEN:
                records[name]["mtime_ns"] = stat.st_mtime_ns
        return records

    def _switch_current(self, gen_id: str) -> None:
        write_bytes_atomic(self.root / CURRENT_NAME, f"{gen_id}\n".encode("ascii"))

    def _remove_old_generations(self, keep: set[str | None]) -> None:
        for name in self._generation_names():
            if name in keep:
                continue
            path = self.generations_dir / name
            if name.startswith(".writing-"):
                shutil.rmtree(path, ignore_errors=True)  # a commit killed mid-write; we hold the lock
            elif _GENERATION_ID.match(name) and not _has_reader(path):
                shutil.rmtree(path, ignore_errors=True)


def _index_meta(spec: str, params: dict, tuning: dict | None, vectors: np.ndarray) -> dict[str, Any]:
    """An index's record: its factory string, the search parameters a reader re-applies,
    and (inverted-file indexes) how they were measured."""
    record = {
        "spec": spec,
        "search_params": params,
        "count": int(vectors.shape[0]),
        "dim": int(vectors.shape[1]),
    }
    if tuning is not None:
        record["tuning"] = tuning
    return record


def _has_reader(generation_path: Path) -> bool:
    try:
        fd = os.open(generation_path / "meta.json", os.O_RDONLY)
    except FileNotFoundError:
        return False  # not a whole generation: nobody can be reading it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
