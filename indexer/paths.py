"""File names as the filesystem holds them, in tables, JSON and on a terminal.

A POSIX file name is bytes; most are UTF-8, but a library copied from an old disk or a
Windows share can hold a Latin-1 name such as ``caf\\xe9.wav``. Python gives such a name
as a str with lone surrogates (``surrogateescape``), which opens the file but cannot be
written to Parquet, JSON or a UTF-8 terminal. So:

- in memory a path is that str (``os.fsdecode`` of the bytes), lossless;
- in a table the ``path`` column holds a readable text, where every byte that is not
  UTF-8 is written ``\\xNN`` (Python's ``backslashreplace``), and the ``path_bytes`` column
  holds the raw bytes of exactly those names (null for every UTF-8 name, and absent in
  stores written before it existed): the bytes are what the path is;
- JSON shows the same readable text and says ``"path_escaped": "backslashreplace"``;
- a terminal line also escapes control characters (a newline in a name would otherwise
  break a table of results into two rows).
"""
from __future__ import annotations

import os
import unicodedata

from mre.util.names import is_utf8

PATH_BYTES = "path_bytes"
PATH_ESCAPING = "backslashreplace"


def readable_path(path: str) -> str:
    """``path`` with every byte that is not UTF-8 written as ``\\xNN``; a UTF-8 name as it is."""
    if is_utf8(path):
        return path
    return os.fsencode(path).decode("utf-8", PATH_ESCAPING)


def stored_path(path: str) -> tuple[str, bytes | None]:
    """(``path`` column text, ``path_bytes`` value) of one path."""
    if is_utf8(path):
        return path, None
    return readable_path(path), os.fsencode(path)


def path_from_stored(text: str, raw: bytes | None) -> str:
    """The path a (``path``, ``path_bytes``) pair stands for."""
    return text if raw is None else os.fsdecode(raw)


def printable_path(path: str) -> str:
    """One terminal line for ``path``: bytes that are not UTF-8 as ``\\xNN``, control
    characters (newline, tab, escape...) as ``\\n``, ``\\t``, ``\\x1b``."""
    text = readable_path(path)
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                   else c for c in text)


def json_path_fields(path: str) -> dict:
    """``{"path": ...}`` for JSON output, with ``"path_escaped"`` when the name is not UTF-8."""
    if is_utf8(path):
        return {"path": path}
    return {"path": readable_path(path), "path_escaped": PATH_ESCAPING}


def json_safe(value):
    """A result (dicts, lists, strings) ready for JSON: paths whose names are not UTF-8 as
    readable text, saying how they were escaped. `--json` and `mre serve` both write this."""
    if isinstance(value, dict):
        out = {key: json_safe(item) for key, item in value.items()}
        if isinstance(value.get("path"), str):
            out.update(json_path_fields(value["path"]))
        return out
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return readable_path(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------- tables

def path_columns(paths: list[str]):
    """(``path`` string array, ``path_bytes`` binary array) for a list of paths."""
    import pyarrow as pa

    pairs = [stored_path(p) for p in paths]
    return (pa.array([text for text, _ in pairs], pa.string()),
            pa.array([raw for _, raw in pairs], pa.binary()))


def with_path_bytes(table):
    """``table`` with a ``path_bytes`` column (all null when it has none: an older table,
    every name of which was UTF-8, since nothing else could be written then)."""
    import pyarrow as pa

    if "path" not in table.column_names or PATH_BYTES in table.column_names:
        return table
    index = table.column_names.index("path") + 1
    return table.add_column(index, pa.field(PATH_BYTES, pa.binary()), pa.nulls(table.num_rows, pa.binary()))


def table_paths(table) -> list[str]:
    """The paths of a table's rows, from ``path`` and (when present) ``path_bytes``."""
    if "path" not in table.column_names:  # an empty staging area has no columns at all
        return [None] * table.num_rows
    texts = table.column("path").to_pylist()
    if PATH_BYTES not in table.column_names:
        return texts
    raws = table.column(PATH_BYTES).to_pylist()
    return [path_from_stored(text, raw) for text, raw in zip(texts, raws)]
