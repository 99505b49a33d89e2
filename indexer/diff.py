"""What a re-index has to do: compare the scanned files with the live tracks table.

A file is unchanged when its (path, size, mtime_ns) all match the live row; then its live
row — vector included — is reused and nothing is embedded. One dict lookup per file keeps
10k+ files in milliseconds (benchmarks/reindex_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mre.indexer.paths import table_paths
from mre.indexer.scan import FileEntry

KEY_COLUMNS = ("path", "size", "mtime_ns")


class DiffError(ValueError):
    """A live table that cannot be compared with the scan."""


def _empty_rows() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass
class LibraryDiff:
    """Scanned files sorted into new / changed / unchanged, plus live rows to drop.

    ``unchanged_rows[i]`` is the live-table row of ``unchanged[i]``; ``changed_rows`` and
    ``removed_rows`` likewise index the live table given to :func:`diff_library`.
    """

    new: list[FileEntry] = field(default_factory=list)
    changed: list[FileEntry] = field(default_factory=list)
    unchanged: list[FileEntry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged_rows: np.ndarray = field(default_factory=_empty_rows)
    changed_rows: np.ndarray = field(default_factory=_empty_rows)
    removed_rows: np.ndarray = field(default_factory=_empty_rows)
    live: pa.Table | None = None

    @property
    def to_embed(self) -> list[FileEntry]:
        return self.new + self.changed

    @property
    def unchanged_table(self) -> pa.Table | None:
        """The live rows of unchanged files, in ``unchanged`` order (vectors reused as they are)."""
        if self.live is None:
            return None
        return self.live.take(pa.array(self.unchanged_rows, type=pa.int64()))

    def summary(self) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed),
                "unchanged": len(self.unchanged), "removed": len(self.removed)}


def diff_library(files: list[FileEntry], live: pa.Table | None) -> LibraryDiff:
    """Compare scanned ``files`` with the ``live`` tracks table (None: nothing indexed yet)."""
    if live is None or live.num_rows == 0:
        return LibraryDiff(new=list(files), live=live)
    missing = [name for name in KEY_COLUMNS if name not in live.column_names]
    if missing:
        raise DiffError(f"the live tracks table lacks column(s) {', '.join(missing)}")
    paths = table_paths(live)
    sizes = live.column("size").to_pylist()
    mtimes = live.column("mtime_ns").to_pylist()
    # Last row wins if a path ever appears twice; the other rows count as removed.
    live_rows = {path: row for row, path in enumerate(paths)}

    result = LibraryDiff(live=live)
    unchanged_rows: list[int] = []
    changed_rows: list[int] = []
    claimed = np.zeros(live.num_rows, dtype=bool)
    for entry in files:
        row = live_rows.get(entry.path)
        if row is None:
            result.new.append(entry)
            continue
        claimed[row] = True
        if sizes[row] == entry.size and mtimes[row] == entry.mtime_ns:
            result.unchanged.append(entry)
            unchanged_rows.append(row)
        else:
            result.changed.append(entry)
            changed_rows.append(row)
    result.unchanged_rows = np.asarray(unchanged_rows, dtype=np.int64)
    result.changed_rows = np.asarray(changed_rows, dtype=np.int64)
    result.removed_rows = np.flatnonzero(~claimed).astype(np.int64)
    result.removed = [paths[row] for row in result.removed_rows]
    return result
