"""A minimal writer of TensorFlow V2 checkpoints (tensor bundles) for the tests, without TF.

Written from the format's description (LevelDB table format; tensor_bundle.proto), separately
from flowinpaint.weights.tf_checkpoint's reader: tables are built block by block with
prefix-compressed keys and restart points, entries are hand-encoded protobuf. The real TF files
in tests/weights/data/ (make_tf_fixture.py) check the reader against TensorFlow itself; this
writer makes what those cannot: full-size DeepFill v2 checkpoints, several index blocks, and
damaged or unusual files.
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Mapping, Optional

import numpy as np

# DataType enum values (tensorflow/core/framework/types.proto).
DT = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "string": 7,
      "int64": 9, "bool": 10, "bfloat16": 14, "uint16": 17, "float16": 19, "uint32": 22,
      "uint64": 23, "variant": 21}


def slow_crc32c(data: bytes) -> int:
  """Bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78): slow, obviously right."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # negative int64 as ten bytes, as protobuf does
  out = bytearray()
  while True:
    low = n & 0x7F
    n >>= 7
    out.append(low | (0x80 if n else 0))
    if not n:
      return bytes(out)


def field_varint(number: int, value: int) -> bytes:
  return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
  return varint(number << 3 | 2) + varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
  return varint(number << 3 | 5) + struct.pack("<I", value)


def entry_proto(dtype: int, shape: tuple, shard: int, offset: int, size: int,
                crc: Optional[int], sliced: bool = False) -> bytes:
  dims = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
  out = field_varint(1, dtype) + field_bytes(2, dims)
  if shard:
    out += field_varint(3, shard)
  if offset:
    out += field_varint(4, offset)
  if size:
    out += field_varint(5, size)
  if crc is not None:
    out += field_fixed32(6, crc)
  if sliced:
    out += field_bytes(7, b"")
  return out


def _block(entries: list, restart_interval: int) -> bytes:
  out, restarts, last = bytearray(), [], b""
  for i, (key, value) in enumerate(entries):
    if i % restart_interval == 0:
      restarts.append(len(out))
      shared = 0
    else:
      shared = 0
      while shared < min(len(key), len(last)) and key[shared] == last[shared]:
        shared += 1
    out += varint(shared) + varint(len(key) - shared) + varint(len(value))
    out += key[shared:] + value
    last = key
  if not restarts:
    restarts = [0]
  out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
  return bytes(out)


def table(items: Mapping[bytes, bytes], *, block_size: int = 4096, restart_interval: int = 16,
          crc: Callable[[bytes], int] = slow_crc32c, compression: int = 0) -> bytes:
  """A LevelDB-format table of `items` (sorted by key), uncompressed blocks."""
  out = bytearray()

  def put(block: bytes) -> bytes:
    handle = varint(len(out)) + varint(len(block))
    trailer = bytes([compression])
    out.extend(block + trailer + struct.pack("<I", mask(crc(block + trailer))))
    return handle

  index, pending = [], []
  for key in sorted(items):
    pending.append((key, items[key]))
    if sum(len(k) + len(v) + 3 for k, v in pending) >= block_size:
      index.append((key, put(_block(pending, restart_interval))))
      pending = []
  if pending:
    index.append((pending[-1][0], put(_block(pending, restart_interval))))
  meta_handle = put(_block([], restart_interval))
  index_handle = put(_block(index, 1))
  footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xdb4775248b80fb57)
  return bytes(out + footer)


def tensor_bytes(value: np.ndarray, big_endian: bool = False) -> tuple[bytes, bytes]:
  """(bytes in the data file, bytes the entry's crc covers)."""
  if value.dtype == object:
    strings = [bytes(s) for s in value.ravel()]
    lengths = b"".join(varint(len(s)) for s in strings)
    length_crc = struct.pack("<I", mask(slow_crc32c(
        b"".join(struct.pack("<I", len(s)) for s in strings))))
    data = lengths + length_crc + b"".join(strings)
    covered = b"".join(struct.pack("<I", len(s)) for s in strings) + length_crc + \
        b"".join(strings)
    return data, covered
  order = ">" if big_endian else "<"
  data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder(order)).tobytes()
  return data, data


def write(prefix: str, tensors: Mapping[str, np.ndarray], *, num_shards: int = 1,
          crc: Callable[[bytes], int] = slow_crc32c, big_endian: bool = False,
          block_size: int = 4096, compression: int = 0,
          extra_entries: Optional[Mapping[bytes, bytes]] = None) -> None:
  """Writes `prefix.index` and `prefix.data-*-of-*`; tensors go to shards round-robin."""
  os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
  shards = [bytearray() for _ in range(num_shards)]
  items = {}
  for i, (name, value) in enumerate(sorted(tensors.items())):
    value = np.asarray(value)
    shard = i % num_shards
    data, covered = tensor_bytes(value, big_endian)
    items[name.encode()] = entry_proto(DT["string" if value.dtype == object else
                                          value.dtype.name], value.shape, shard,
                                       len(shards[shard]), len(data), mask(crc(covered)))
    shards[shard] += data
  header = field_varint(1, num_shards) + field_varint(2, 1 if big_endian else 0) + \
      field_bytes(3, field_varint(1, 1))
  items[b""] = header
  items.update(extra_entries or {})
  with open(prefix + ".index", "wb") as f:
    f.write(table(items, crc=crc, block_size=block_size, compression=compression))
  for i, data in enumerate(shards):
    with open(f"{prefix}.data-{i:05d}-of-{num_shards:05d}", "wb") as f:
      f.write(bytes(data))
