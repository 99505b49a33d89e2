"""The store's table schemas and vector columns (fixed_size_list<float32, d> in Parquet)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa


SKIPPED_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])


class StoreError(RuntimeError):
    """A store that is missing, locked or damaged; the message is one line for the user."""


class StoreLockedError(StoreError):
    """Another run holds the store's write lock."""


# Tags the index stores per track (the `top_tags` column), and a track's card shows.
TOP_TAGS_PER_TRACK = 5


def track_id_for(path: str) -> str:
    """Stable track id: the first 16 hex digits of the SHA-1 of the absolute path."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def tracks_schema(dim: int) -> pa.Schema:
    """Columns every tracks table has; commit keeps any extra columns as they are."""
    return pa.schema([
        ("track_id", pa.string()),
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("duration", pa.float64()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int32()),
        ("format", pa.string()),
        ("vector", vector_type(dim)),
        ("model_id", pa.string()),
        ("top_tags", pa.list_(pa.string())),
    ])


def tags_schema(dim: int) -> pa.Schema:
    return pa.schema([("tag", pa.string()), ("category", pa.string()), ("vector", vector_type(dim))])


def vectors_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """float32 [n, d] → fixed_size_list<float32, d> (no copy for contiguous float32 input)."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])


def optional_vectors_column(vectors: list[np.ndarray | None], dim: int) -> pa.FixedSizeListArray:
    """float32 vectors, None for a row without one → fixed_size_list<float32, dim>, those rows null.
    One numpy matrix becomes the child array: no vector passes through a Python list."""
    present = np.array([vector is not None for vector in vectors], dtype=bool)
    matrix = np.zeros((len(vectors), dim), dtype=np.float32)
    if present.any():
        matrix[present] = np.stack([vector for vector in vectors if vector is not None])
    flat = pa.array(matrix.reshape(-1), type=pa.float32())
    validity = pa.array(present).buffers()[1]  # a boolean array's values bitmap is a validity bitmap
    return pa.Array.from_buffers(vector_type(dim), len(vectors), [validity], children=[flat])


def optional_vectors_from_column(column: pa.ChunkedArray | pa.Array, dim: int) -> list[np.ndarray | None]:
    """The inverse of ``optional_vectors_column``: a float32 row of one matrix per vector, None
    where the row has none; the values go from Arrow to numpy without a Python list."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n_rows = len(column)
    matrix = column.values.slice(column.offset * dim, n_rows * dim).to_numpy(zero_copy_only=False)
    matrix = matrix.astype(np.float32, copy=False).reshape(n_rows, dim)
    present = column.is_valid().to_numpy(zero_copy_only=False)
    return [matrix[i] if present[i] else None for i in range(n_rows)]


_NUMPY_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint32(): np.uint32, pa.float32(): np.float32,
                pa.float64(): np.float64}


def numpy_of(array: pa.Array) -> np.ndarray:
    """A numeric Arrow array as numpy: without nulls, a read-only view of its buffer, because
    pyarrow's ``to_numpy`` imports pandas (even zero-copy), ~0.25 s of a query or a no-op
    `mre index`; with nulls or another type, ``to_numpy`` as before."""
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None or array.null_count or array.buffers()[1] is None:
        return array.to_numpy(zero_copy_only=False)
    return _data_view(array, dtype)


def _data_view(array: pa.Array, dtype) -> np.ndarray:
    """A numeric array's data buffer as numpy (a read-only view; nulls hold whatever is there)."""
    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * size)


def float_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A numeric column as float64 with NaN for nulls, read from its buffers (no pandas, see
    :func:`numpy_of`); None for a column of another type."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        dtype = _NUMPY_TYPES.get(chunk.type)
        if dtype is None:
            return None
        values = (_data_view(chunk, dtype).astype(np.float64) if chunk.buffers()[1] is not None
                  else np.full(len(chunk), np.nan))
        if chunk.null_count:
            valid = np.unpackbits(np.frombuffer(chunk.buffers()[0], dtype=np.uint8), bitorder="little")
            values[~valid[chunk.offset:chunk.offset + len(chunk)].astype(bool)] = np.nan
        parts.append(values)
    return np.concatenate(parts) if parts else np.zeros(0)


def column_floats(table: pa.Table, column: str) -> np.ndarray | list:
    """A table's numeric column as float64 with NaN where unknown (:func:`float_values`); a
    column of another type as its Python values; an absent one as None for every row."""
    if column not in table.column_names:
        return [None] * table.num_rows
    values = float_values(table.column(column))
    return values if values is not None else table.column(column).to_pylist()


def arrow_mask(mask) -> pa.Array:
    """A boolean mask as an Arrow array, built from its bits: ``pa.array`` checks every input
    against pandas types and so imports pandas (see :func:`numpy_of`)."""
    mask = np.asarray(mask, dtype=bool)
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])


def vectors_from_column(column: pa.ChunkedArray | pa.Array, what: str) -> np.ndarray:
    """The ``vector`` column (fixed-size or plain list of float) as float32 [n, d]."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        raise StoreError(f"{what}: {column.null_count} rows have no vector")
    n_rows = len(column)
    if pa.types.is_fixed_size_list(column.type):
        dim = column.type.list_size
        # the rows' slice of the child values, as flatten() gives it without nulls; flatten()
        # imports pyarrow.compute first, which cost every query ~25 ms
        values = column.values.slice(column.offset * dim, n_rows * dim)
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = set(column.value_lengths().to_pylist())
        if len(lengths) > 1:
            raise StoreError(f"{what}: vectors have different lengths {sorted(lengths)}")
        dim = lengths.pop() if lengths else 0
        values = column.flatten()
    else:
        raise StoreError(f"{what}: the vector column has type {column.type}, not a list of floats")
    array = numpy_of(values)
    return array.astype(np.float32, copy=False).reshape(n_rows, dim)


def with_vectors(table: pa.Table, vectors: np.ndarray, what: str) -> pa.Table:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise StoreError(f"{what} vectors must be a 2-d [n, d] array, got shape {vectors.shape}")
    if vectors.shape[0] != table.num_rows:
        raise StoreError(f"{what}: {table.num_rows} rows but {vectors.shape[0]} vectors")
    column = vectors_column(vectors)
    if "vector" in table.column_names:
        return table.set_column(table.column_names.index("vector"), "vector", column)
    return table.append_column("vector", column)
