"""Resumable embedding results: ``<store>/staging/<key>/part-00001.parquet`` ...

Each ``append`` writes one whole part (temporary file + rename, see atomic.py), so a run
killed at any moment leaves only complete parts; the next run reads them back, skips the
files they cover (``done_keys``) and embeds only the rest.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mre.util.atomic import TMP_SUFFIX, write_parquet_atomic
from mre.indexer.diskspace import disk_full_errors
from mre.indexer.paths import PATH_BYTES, table_paths

PART_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
# A staging key becomes a directory name: keep it to characters safe on every filesystem.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_COLUMNS = ("path", "size", "mtime_ns")


class StagingError(RuntimeError):
    """A staging key or part that cannot be used."""


class Staging:
    """Embedded rows of one unfinished indexing run, stored as numbered Parquet parts."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not KEY_PATTERN.match(self.path.name):
            raise StagingError(
                f"staging key {self.path.name!r} must be letters, digits, '.', '_' or '-' (at most 128)"
            )

    def _parts(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        numbered = []
        for entry in self.path.iterdir():
            match = PART_PATTERN.match(entry.name)
            if match:
                numbered.append((int(match.group(1)), entry))
        return [entry for _, entry in sorted(numbered)]

    def _remove_stray_tmp_files(self) -> None:
        # Left by a run killed mid-write; never a whole part, so never worth reading.
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name.endswith(TMP_SUFFIX):
                    entry.unlink(missing_ok=True)

    def append(self, rows: pa.Table) -> Path | None:
        """Write ``rows`` as the next part; returns its path (None for an empty table)."""
        if not isinstance(rows, pa.Table):
            raise StagingError(f"staging rows must be a pyarrow.Table, got {type(rows).__name__}")
        if rows.num_rows == 0:
            return None
        with disk_full_errors(self.path.parent, "finished tracks to the staging area", rows.nbytes):
            self.path.mkdir(parents=True, exist_ok=True)
            parts = self._parts()
            next_number = int(PART_PATTERN.match(parts[-1].name).group(1)) + 1 if parts else 1
            part = self.path / f"part-{next_number:05d}.parquet"
            write_parquet_atomic(part, rows)
        return part

    def rows(self) -> pa.Table:
        """All staged rows, parts in order; an empty table (no columns) when nothing is staged."""
        self._remove_stray_tmp_files()
        tables = [self._read_part(part) for part in self._parts()]
        if not tables:
            return pa.table({})
        try:
            return pa.concat_tables(tables, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise StagingError(f"staged parts in {self.path} have incompatible columns: {error}") from None

    def done_keys(self) -> set[tuple[str, int, int]]:
        """(path, size, mtime_ns) of every staged file: work a resumed run need not redo."""
        self._remove_stray_tmp_files()
        keys: set[tuple[str, int, int]] = set()
        for part in self._parts():
            names = pq.read_schema(part).names if part.exists() else []
            # parts written before names that are not UTF-8 could be indexed have no path_bytes
            columns = list(KEY_COLUMNS) + ([PATH_BYTES] if PATH_BYTES in names else [])
            table = self._read_part(part, columns=columns)
            keys.update(zip(table_paths(table), *(table.column(name).to_pylist() for name in KEY_COLUMNS[1:])))
        return keys

    def clear(self) -> None:
        """Remove every part (after the rows have been committed into a generation)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _read_part(self, part: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(part, columns=columns)
        except (OSError, pa.ArrowInvalid, KeyError) as error:
            raise StagingError(f"staged part {part} cannot be read ({error}); delete it to redo its files") from None
