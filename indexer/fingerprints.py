"""Acoustic fingerprints of the store's tracks (Chromaprint's ``fpcalc``), cached by file.

A fingerprint is what ``fpcalc -raw`` prints: one 32-bit integer per ~0.124 s of audio
(Chromaprint's defaults: audio at 11,025 Hz, 4,096-sample frames with two thirds overlap, so
one item per 1,365 samples), each bit one of 16 classifiers' 2-bit answers on the chroma
image around it. Two copies of one recording give nearly the same integers; matching them
is fingerprint_match.py's work.

Fingerprints depend only on a file's bytes, so they are cached by the same
(path, size, mtime_ns) key as the tracks, in ``<store>/fingerprints.parquet``: one table
beside the generations, replaced atomically under the store's lock. Entries of files no
longer in the store are dropped when it is written. A file fpcalc cannot read is cached
with the reason, and not tried again until it changes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mre.util.atomic import write_parquet_atomic
from mre.indexer.diskspace import disk_full_errors
from mre.indexer.paths import PATH_BYTES, path_columns, table_paths
from mre.indexer.tables import numpy_of

CACHE_NAME = "fingerprints.parquet"
# fpcalc's own default, and what AcoustID fingerprints: two minutes is plenty to tell one
# recording from another, and decoding more would only cost time.
FINGERPRINT_SECONDS = 120
# Seconds of audio per fingerprint item (Chromaprint: 11,025 Hz, a new item every 1,365 samples).
ITEM_SECONDS = 1365 / 11025
# Fewer items than this (~4 s) is no fingerprint to compare: fpcalc gives a handful for a clip.
MIN_ITEMS = 32
FPCALC_TIMEOUT_SECONDS = 300
INSTALL_HINT = ("fpcalc (Chromaprint) is not installed: `apt-get install libchromaprint-tools` "
                "or `brew install chromaprint`")

CACHE_SCHEMA = pa.schema([
    ("path", pa.string()), (PATH_BYTES, pa.binary()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
    ("duration", pa.float64()), ("fingerprint", pa.list_(pa.uint32())), ("error", pa.string()),
])

Key = tuple[str, int, int]


class FingerprintError(Exception):
    """Why one file has no fingerprint (one line)."""


@dataclass
class Fingerprint:
    """One file's fingerprint, or the reason it has none (``items`` None, ``error`` set)."""

    path: str
    size: int
    mtime_ns: int
    duration: float | None = None
    items: np.ndarray | None = None      # uint32 [n]
    error: str | None = None
    cached: bool = True   # False for a file missing or changed now: worth trying again next time

    @property
    def key(self) -> Key:
        return (self.path, self.size, self.mtime_ns)


def fpcalc_path() -> str | None:
    """The fpcalc executable, or None when Chromaprint's tools are not installed."""
    return shutil.which("fpcalc")


def run_fpcalc(path: str, fpcalc: str) -> tuple[float, np.ndarray]:
    """(duration fpcalc decoded, uint32 items) of one file; FingerprintError with fpcalc's reason."""
    try:
        done = subprocess.run([fpcalc, "-raw", "-json", "-length", str(FINGERPRINT_SECONDS), os.fsencode(path)],
                              capture_output=True, timeout=FPCALC_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise FingerprintError(f"fpcalc took longer than {FPCALC_TIMEOUT_SECONDS} s") from None
    except OSError as error:
        raise FingerprintError(f"fpcalc could not be run ({error.strerror or error})") from None
    # fpcalc 1.5.1 built on FFmpeg 5 exits with status 3 and "Error decoding audio frame (End of
    # file)" after reading every file to its end, fingerprint printed all the same: the printed
    # fingerprint decides, the exit status only explains its absence.
    try:
        result = json.loads(done.stdout)
        # -raw prints unsigned values (signed with -signed); either way the low 32 bits are the item
        items = (np.asarray(result["fingerprint"], dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
        duration = float(result["duration"])
    except (ValueError, KeyError, TypeError):
        said = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        said = [line for line in said if "(End of file)" not in line] or said
        reason = said[-1].removeprefix("ERROR: ") if said else f"exit status {done.returncode}"
        raise FingerprintError(f"fpcalc cannot read it: {reason}") from None
    if len(items) < MIN_ITEMS:
        raise FingerprintError(f"too short to fingerprint: its fingerprint covers {len(items) * ITEM_SECONDS:.1f} s, "
                               f"{MIN_ITEMS * ITEM_SECONDS:.1f} s are needed")
    return duration, items


def fingerprint(key: Key, fpcalc: str) -> Fingerprint:
    """The fingerprint of the file a store key names; a file changed since is not fingerprinted
    (its cached entry would carry the old key)."""
    path, size, mtime_ns = key
    try:
        status = os.stat(path)
    except OSError as error:
        return Fingerprint(path, size, mtime_ns, error=f"cannot read: {error.strerror or type(error).__name__}",
                           cached=False)
    if (status.st_size, status.st_mtime_ns) != (size, mtime_ns):
        return Fingerprint(path, size, mtime_ns, error="changed since it was indexed (run `mre index` again)",
                           cached=False)
    try:
        duration, items = run_fpcalc(path, fpcalc)
    except FingerprintError as error:
        return Fingerprint(path, size, mtime_ns, error=str(error))
    return Fingerprint(path, size, mtime_ns, duration=duration, items=items)


def fingerprint_many(keys: list[Key], fpcalc: str, workers: int | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> list[Fingerprint]:
    """Fingerprints of many files, ``workers`` fpcalc processes at a time (threads only wait on them)."""
    workers = max(1, workers if workers is not None else (os.cpu_count() or 2) - 1)
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(lambda key: fingerprint(key, fpcalc), keys), 1):
            results.append(result)
            if progress is not None:
                progress(done, len(keys), result.path)
    return results


# ---------------------------------------------------------------------------- the cache

def cache_path(store_root: Path | str) -> Path:
    return Path(store_root) / CACHE_NAME


def load_cache(store_root: Path | str) -> dict[Key, Fingerprint]:
    """Every cached fingerprint by key; empty when there is no cache (or it cannot be read:
    it is only a cache, so it is rebuilt rather than trusted)."""
    path = cache_path(store_root)
    try:
        table = pq.ParquetFile(path, memory_map=True).read()
    except FileNotFoundError:
        return {}
    except (OSError, pa.ArrowInvalid):
        return {}
    if not set(CACHE_SCHEMA.names) - {PATH_BYTES} <= set(table.column_names):
        return {}
    paths = table_paths(table)
    sizes = table.column("size").to_pylist()
    mtimes = table.column("mtime_ns").to_pylist()
    durations = table.column("duration").to_pylist()
    errors = table.column("error").to_pylist()
    column = table.column("fingerprint").combine_chunks()
    # one flat buffer split by the list offsets: no Python list of ints per row
    offsets = numpy_of(column.offsets)
    values = numpy_of(column.values).astype(np.uint32, copy=False)
    cached = {}
    for row, path_text in enumerate(paths):
        items = None if errors[row] is not None else values[offsets[row]:offsets[row + 1]]
        entry = Fingerprint(path_text, sizes[row], mtimes[row], durations[row], items, errors[row])
        cached[entry.key] = entry
    return cached


def cache_table(entries: Iterable[Fingerprint]) -> pa.Table:
    entries = sorted(entries, key=lambda e: e.key)
    path_array, bytes_array = path_columns([e.path for e in entries])
    lengths = np.array([0 if e.items is None else len(e.items) for e in entries], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = (np.concatenate([e.items for e in entries if e.items is not None])
              if lengths.sum() else np.zeros(0, np.uint32)).astype(np.uint32)
    mask = pa.array([e.items is None for e in entries], pa.bool_())
    fingerprints = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.uint32()), mask=mask)
    return pa.Table.from_arrays([
        path_array, bytes_array,
        pa.array([e.size for e in entries], pa.int64()), pa.array([e.mtime_ns for e in entries], pa.int64()),
        pa.array([e.duration for e in entries], pa.float64()), fingerprints,
        pa.array([e.error for e in entries], pa.string()),
    ], schema=CACHE_SCHEMA)


def write_cache(store_root: Path | str, entries: Iterable[Fingerprint]) -> None:
    """Replace the cache with ``entries`` (atomically; the caller holds the store's lock)."""
    table = cache_table(entries)
    with disk_full_errors(Path(store_root), "the fingerprint cache", table.nbytes):
        write_parquet_atomic(cache_path(store_root), table)


@dataclass
class FingerprintUpdate:
    """What one pass over the store's files did."""

    computed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, reason) of files tried this time
    missing_tool: int = 0     # files left without a fingerprint because fpcalc is not installed
    fingerprints: dict[Key, Fingerprint] = field(default_factory=dict)   # every wanted key that has an entry

    def lines(self) -> list[str]:
        out = []
        if self.computed:
            out.append(f"fingerprinted {self.computed} files for `mre duplicates`"
                       + (f" ({len(self.failed)} could not be)" if self.failed else ""))
        if self.missing_tool:
            out.append(f"{self.missing_tool} files have no fingerprint for `mre duplicates`: {INSTALL_HINT}")
        return out


def update_fingerprints(store, wanted: list[Key], *, keep: set[Key] | None = None, workers: int | None = None,
                        progress: Callable[[int, int, str], None] | None = None, save: bool = True) -> FingerprintUpdate:
    """Fingerprint the files of ``wanted`` the cache lacks, and write the cache.

    ``keep``: the keys whose entries stay in the cache (default: the cache's and ``wanted``);
    the others are dropped when the cache is written. Written only when something was
    computed or dropped, under the store's lock; a store locked by a running `mre index`
    keeps its cache as it is (what was computed is used for this run only).
    """
    from mre.indexer.tables import StoreLockedError

    cached = load_cache(store.root)
    update = FingerprintUpdate()
    to_compute = [key for key in wanted if key not in cached]
    tool = fpcalc_path() if to_compute else None
    new: list[Fingerprint] = []
    if to_compute and tool is None:
        update.missing_tool = len(to_compute)
    elif to_compute:
        new = fingerprint_many(to_compute, tool, workers=workers, progress=progress)
        update.computed = sum(1 for entry in new if entry.error is None)
        update.failed = [(entry.path, entry.error) for entry in new if entry.error is not None]
    update.fingerprints = {key: cached[key] for key in wanted if key in cached}
    update.fingerprints.update((entry.key, entry) for entry in new)
    keep_keys = set(cached) | set(wanted) if keep is None else set(keep)
    if save and (any(entry.cached for entry in new) or set(cached) - keep_keys):
        try:
            with store.lock():
                merged = load_cache(store.root)  # what another writer may have added meanwhile
                merged.update((entry.key, entry) for entry in new if entry.cached)
                write_cache(store.root, (entry for key, entry in merged.items() if key in keep_keys))
        except StoreLockedError:
            pass
    return update
