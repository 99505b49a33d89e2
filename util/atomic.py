"""Crash-safe file writes: write a temporary file, fsync it, rename it into place.

A rename within one directory is atomic on POSIX, so a reader (or the next run after a
kill) sees either the old file or the whole new one, never a half-written one. The
directory is fsynced too, so the rename itself survives a power loss.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TMP_SUFFIX", "fsync_dir", "fsync_file", "tmp_path_for", "write_bytes_atomic", "write_parquet_atomic",
           "write_text_atomic"]

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


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = tmp_path_for(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave the half-written file behind
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(Path(path), text.encode("utf-8"))


def write_parquet_atomic(path: Path, table: "pa.Table") -> None:
    import pyarrow.parquet as pq  # here, so that writing a text file never loads pyarrow

    tmp = tmp_path_for(path)
    try:
        pq.write_table(table, tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
