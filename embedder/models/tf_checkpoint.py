"""Read TensorFlow 1 checkpoints (tensor bundles) without TensorFlow.

A checkpoint ``<prefix>.index`` + ``<prefix>.data-00000-of-00001`` is a *tensor bundle*
(tensorflow/core/util/tensor_bundle). The index is an SSTable in LevelDB's table format
(tensorflow/core/lib/io/table_format.txt): data blocks of prefix-compressed entries, an
index block pointing at them, and a 48-byte footer ending in a magic number. Each entry's
key is a tensor name and its value a serialized ``BundleEntryProto``; the empty key holds
the ``BundleHeaderProto``. The data file(s) hold the raw little-endian tensor bytes at the
offsets the entries give.

Only what musicnn's checkpoints use is supported: uncompressed blocks, numeric dtypes,
unsliced tensors. Anything else raises :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "TensorEntry", "read_checkpoint", "read_index"]

# LevelDB table format: footer = metaindex handle + index handle (varints, padded to
# 40 bytes) + 8-byte magic; every block is followed by 1 byte compression type + 4 bytes crc.
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5

# tensorflow/core/framework/types.proto DataType -> numpy little-endian dtype.
_NUMPY_DTYPE_OF_TF = {
    1: "<f4",  # DT_FLOAT
    2: "<f8",  # DT_DOUBLE
    3: "<i4",  # DT_INT32
    4: "u1",  # DT_UINT8
    5: "<i2",  # DT_INT16
    6: "i1",  # DT_INT8
    9: "<i8",  # DT_INT64
    10: "?",  # DT_BOOL
    17: "<u2",  # DT_UINT16
    19: "<f2",  # DT_HALF
    22: "<u4",  # DT_UINT32
    23: "<u8",  # DT_UINT64
}


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, or uses a feature this reader lacks."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives, as a ``BundleEntryProto`` describes it."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None


def _read_varint(buffer: bytes, position: int, where: str) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(buffer):
            raise CheckpointError(f"{where}: truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise CheckpointError(f"{where}: varint longer than 64 bits")


def _protobuf_fields(message: bytes, where: str) -> list[tuple[int, int | bytes]]:
    """Decode a protobuf message into (field number, value) pairs, wire format by hand.

    Varints come back as ints, fixed32/fixed64 as unsigned ints, length-delimited
    fields as bytes (nested messages are decoded by the caller).
    """
    fields: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(message):
        tag, position = _read_varint(message, position, where)
        field_number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _read_varint(message, position, where)
        elif wire_type == 1:
            if position + 8 > len(message):
                raise CheckpointError(f"{where}: truncated fixed64 field")
            (value,) = struct.unpack_from("<Q", message, position)
            position += 8
        elif wire_type == 2:
            length, position = _read_varint(message, position, where)
            if position + length > len(message):
                raise CheckpointError(f"{where}: truncated length-delimited field")
            value = message[position : position + length]
            position += length
        elif wire_type == 5:
            if position + 4 > len(message):
                raise CheckpointError(f"{where}: truncated fixed32 field")
            (value,) = struct.unpack_from("<I", message, position)
            position += 4
        else:
            raise CheckpointError(f"{where}: unsupported protobuf wire type {wire_type}")
        fields.append((field_number, value))
    return fields


def _parse_shape(message: bytes, where: str) -> tuple[int, ...]:
    # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1; string name = 2}; bool unknown_rank = 3.
    dims: list[int] = []
    for number, value in _protobuf_fields(message, where):
        if number == 2:
            size = 0
            for dim_number, dim_value in _protobuf_fields(value, where):
                if dim_number == 1:
                    size = dim_value
            dims.append(size)
        elif number == 3 and value:
            raise CheckpointError(f"{where}: tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, message: bytes, where: str) -> TensorEntry:
    # BundleEntryProto: dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5,
    # fixed32 crc32c = 6, repeated slices = 7 (tensor_bundle.proto).
    dtype, shape, shard_id, offset, size, crc = 0, (), 0, 0, 0, None
    for number, value in _protobuf_fields(message, where):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _parse_shape(value, where)
        elif number == 3:
            shard_id = value
        elif number == 4:
            offset = value
        elif number == 5:
            size = value
        elif number == 6:
            crc = value
        elif number == 7:
            raise CheckpointError(f"{where}: tensor {name!r} is stored in slices (unsupported)")
    return TensorEntry(name, dtype, shape, shard_id, offset, size, crc)


def _block(table: bytes, offset: int, size: int, where: str) -> bytes:
    if offset + size + _BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointError(f"{where}: block at {offset} runs past the end of the file")
    compression = table[offset + size]
    if compression != 0:
        raise CheckpointError(f"{where}: compressed table block (type {compression}) unsupported")
    return table[offset : offset + size]


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """Entries of one table block: shared/non-shared key lengths, value length, key delta, value."""
    if len(block) < 4:
        raise CheckpointError(f"{where}: block shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * num_restarts
    if entries_end < 0:
        raise CheckpointError(f"{where}: restart array larger than its block")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    position = 0
    while position < entries_end:
        shared, position = _read_varint(block, position, where)
        non_shared, position = _read_varint(block, position, where)
        value_length, position = _read_varint(block, position, where)
        if shared > len(key) or position + non_shared + value_length > entries_end:
            raise CheckpointError(f"{where}: corrupt block entry at byte {position}")
        key = key[:shared] + block[position : position + non_shared]
        position += non_shared
        entries.append((key, block[position : position + value_length]))
        position += value_length
    return entries


def read_index(index_path: str | Path) -> dict[str, TensorEntry]:
    """Parse a bundle's ``.index`` table into tensor entries, keyed by tensor name."""
    index_path = Path(index_path)
    where = str(index_path)
    try:
        table = index_path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint index {where}: {error}") from error
    if len(table) < _FOOTER_SIZE:
        raise CheckpointError(f"{where}: too short to be a checkpoint index ({len(table)} bytes)")
    footer = table[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
    if magic != _TABLE_MAGIC:
        raise CheckpointError(f"{where}: not a TensorFlow checkpoint index (bad table magic)")
    _, position = _read_varint(footer, 0, where)  # metaindex offset: unused by bundles
    _, position = _read_varint(footer, position, where)  # metaindex size
    index_offset, position = _read_varint(footer, position, where)
    index_size, position = _read_varint(footer, position, where)

    entries: dict[str, TensorEntry] = {}
    for _, handle in _block_entries(_block(table, index_offset, index_size, where), where):
        block_offset, handle_position = _read_varint(handle, 0, where)
        block_size, _ = _read_varint(handle, handle_position, where)
        for key, value in _block_entries(_block(table, block_offset, block_size, where), where):
            if key == b"":
                _check_header(value, where)
                continue
            name = key.decode("utf-8", errors="strict")
            entries[name] = _parse_entry(name, value, where)
    return entries


def _check_header(message: bytes, where: str) -> None:
    # BundleHeaderProto: num_shards = 1, endianness = 2 (0 = LITTLE), version = 3.
    for number, value in _protobuf_fields(message, where):
        if number == 2 and value != 0:
            raise CheckpointError(f"{where}: big-endian checkpoints are not supported")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli, reflected
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, the checksum TF records for each tensor."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask_crc(masked: int) -> int:
    # tensorflow/core/lib/hash/crc32c.h: masked = rotr(crc, 15) + 0xa282ead8.
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


def read_checkpoint(
    prefix: str | Path,
    names: list[str] | None = None,
    verify_checksums: bool = True,
) -> dict[str, np.ndarray]:
    """Load tensors of a TF1 checkpoint as numpy arrays.

    Args:
        prefix: the checkpoint path without ``.index`` (musicnn's files are named
            ``.index``/``.data-00000-of-00001`` inside the model folder, so there the
            prefix is ``"<folder>/"``).
        names: tensor names to load; all of them when None.
        verify_checksums: compare each loaded tensor's bytes with its recorded CRC-32C.

    Returns:
        ``{tensor name: array}`` with the stored dtype and shape.
    """
    prefix = str(prefix)
    entries = read_index(prefix + ".index")
    wanted = sorted(entries) if names is None else list(names)
    missing = [name for name in wanted if name not in entries]
    if missing:
        raise CheckpointError(f"{prefix}.index has no tensor(s) {missing}")

    num_shards = 1 + max((entry.shard_id for entry in entries.values()), default=0)
    shard_bytes: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name in wanted:
        entry = entries[name]
        if entry.dtype not in _NUMPY_DTYPE_OF_TF:
            raise CheckpointError(f"{prefix}.index: tensor {name!r} has unsupported dtype {entry.dtype}")
        if entry.shard_id not in shard_bytes:
            data_path = f"{prefix}.data-{entry.shard_id:05d}-of-{num_shards:05d}"
            try:
                shard_bytes[entry.shard_id] = Path(data_path).read_bytes()
            except OSError as error:
                raise CheckpointError(f"cannot read checkpoint data {data_path}: {error}") from error
        data = shard_bytes[entry.shard_id]
        if entry.offset + entry.size > len(data):
            raise CheckpointError(f"{prefix}: tensor {name!r} runs past the end of its data file")
        raw = data[entry.offset : entry.offset + entry.size]
        dtype = np.dtype(_NUMPY_DTYPE_OF_TF[entry.dtype])
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CheckpointError(
                f"{prefix}: tensor {name!r} has {entry.size} bytes, shape {entry.shape} needs "
                f"{count * dtype.itemsize}"
            )
        if verify_checksums and entry.crc32c is not None and crc32c(raw) != _unmask_crc(entry.crc32c):
            raise CheckpointError(f"{prefix}: checksum mismatch in tensor {name!r} (corrupt data file)")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()
    return tensors
