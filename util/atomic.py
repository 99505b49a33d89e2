"""Crash-safe file writes: write a temporary file, fsync it, rename it into place.

A rename within one directory is atomic on POSIX, so a reader (or the next run after a
kill) sees either the old file or the whole new one, never a half-written one. The
directory is fsynced too, so the rename itself survives a power loss.

The one writer for every file mre replaces in place: the store's tables, indexes and pointer,
the fingerprint cache, model files and training checkpoints, reports, caches of word vectors
and of training inputs, corpus manifests. Any module may import it (it imports nothing of mre).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TMP_SUFFIX", "atomic_file", "fsync_dir", "fsync_file", "publish_directory", "tmp_path_for",
           "write_bytes_atomic", "write_parquet_atomic", "write_text_atomic"]

TMP_SUFFIX = ".tmp"


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_path_for(path: Path) -> Path:
    # Dot-prefixed, so listings of finished files (part-*.parquet) never match it.
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **open_options) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error it
    is fsynced and renamed over ``path`` (then the directory is fsynced). On an error (a full
    disk, Ctrl-C) the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        with open(tmp, mode, **open_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave the half-written file behind
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def publish_directory(staging: Path, final: Path) -> None:
    """Make a finished directory visible under its final name: every file in ``staging`` and the
    directory itself are fsynced, then it is renamed to ``final`` (raises OSError as os.rename
    does, e.g. when ``final`` exists) and the parent is fsynced."""
    for entry in staging.iterdir():
        if entry.is_file():
            fsync_file(entry)
    fsync_dir(staging)
    os.rename(staging, final)
    fsync_dir(final.parent)


def write_parquet_atomic(path: Path, table: "pa.Table") -> None:
    import pyarrow.parquet as pq  # here, so that writing a text file never loads pyarrow

    with atomic_file(path, "wb") as handle:
        pq.write_table(table, handle)
