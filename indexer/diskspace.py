"""A full disk, said in one line: where, while writing what, and how much to free.

Writes of the store fail with ENOSPC (or EDQUOT, a quota) from Python, pyarrow or FAISS —
FAISS only as a RuntimeError whose text ends "(No space left on device)". Each becomes a
`DiskFullError` naming the filesystem's mount point and, where the size of what was being
written is known, how much more room it needs.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from mre.indexer.tables import StoreError

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")
# What a write needs beyond the data itself (Parquet footers, filesystem blocks): a margin.
_MARGIN = 1.1


class DiskFullError(StoreError):
    """The store's filesystem has no room for a write; the message says where and how much."""


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return True
    return isinstance(error, (OSError, RuntimeError)) and any(text in str(error) for text in _FULL_TEXTS)


def mount_point(path: Path | str) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest existing parent)."""
    current = os.path.abspath(os.fspath(path))
    while not os.path.exists(current):
        current = os.path.dirname(current)
    while not os.path.ismount(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def free_bytes(path: Path | str) -> int | None:
    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return None


def _size(n_bytes: float) -> str:
    if n_bytes < 1e6:
        return f"{max(n_bytes, 0) / 1e3:.0f} KB"
    mb = n_bytes / 1e6
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:.0f} MB"


def disk_full_message(path: Path | str, what: str, needed_bytes: int | None = None) -> str:
    mount = mount_point(path)
    free = free_bytes(path)
    if needed_bytes:
        shortfall = max(needed_bytes * _MARGIN - (free or 0), needed_bytes * 0.1, 1e5)
        amount = f"free up ~{_size(shortfall)} (it needs ~{_size(needed_bytes)}"
        amount += f", {_size(free)} free)" if free is not None else ")"
    else:
        amount = "free up some space"
    return f"no space left on {mount} writing {what}; {amount} and run again"


@contextlib.contextmanager
def disk_full_errors(path: Path | str, what: str, needed_bytes: int | None = None) -> Iterator[None]:
    """Turn a full-disk failure inside the block into one DiskFullError line."""
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as error:
        if is_disk_full(error):
            raise DiskFullError(disk_full_message(path, what, needed_bytes)) from None
        raise
