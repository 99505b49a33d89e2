"""File names as the OS gives them: whether a name is valid UTF-8 text.

On POSIX a file name is bytes; Python hands back those that are not UTF-8 with surrogate
escapes. Such a name cannot be written to Parquet, JSON or a UTF-8 terminal as it is, and
libsndfile must be given its bytes.
"""
from __future__ import annotations


def is_utf8(path: str) -> bool:
    """Whether ``path`` is a name Parquet, JSON and a UTF-8 terminal can carry as it is."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
