"""Reads TensorFlow V2 checkpoints ("tensor bundles") into numpy, without TensorFlow.

A checkpoint with prefix `P` (e.g. `model_logs/release_places2_256/snap-0`) is

* `P.index`: an SSTable (LevelDB's table format) mapping each tensor name to a serialised
  `BundleEntryProto` (dtype, shape, shard, offset, size, masked crc32c); the empty key holds
  the `BundleHeaderProto` (number of shards, byte order);
* `P.data-00000-of-0000N` ...: the shards, tensors as raw bytes (strings: varint lengths, a
  checksum, then the bytes);
* optionally `P.meta` (the graph; not needed) and, in the folder, a text file `checkpoint`
  naming the newest prefix.

Only the few protobuf fields needed are decoded, by hand. Block and tensor checksums are
verified, so a truncated or damaged download is reported rather than loaded. Partitioned
variables (saved in slices) and variant/resource tensors are not supported.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import re
import struct
from typing import Callable, Iterable, Iterator, Optional, Union

import ml_dtypes
import numpy as np

_TABLE_MAGIC = 0xdb4775248b80fb57
_FOOTER_SIZE = 48  # two block handles (<= 20 bytes each, zero padded) + 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c

# tensorflow/core/framework/types.proto: DataType enum -> numpy dtype.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32),
    4: np.dtype(np.uint8), 5: np.dtype(np.int16), 6: np.dtype(np.int8),
    8: np.dtype(np.complex64), 9: np.dtype(np.int64), 10: np.dtype(np.bool_),
    14: np.dtype(ml_dtypes.bfloat16), 17: np.dtype(np.uint16), 18: np.dtype(np.complex128),
    19: np.dtype(np.float16), 22: np.dtype(np.uint32), 23: np.dtype(np.uint64),
}
_DT_STRING = 7
_DTYPE_NAMES = {7: 'string', 11: 'qint8', 12: 'quint8', 13: 'qint32', 15: 'qint16',
                16: 'quint16', 20: 'resource', 21: 'variant'}


class CheckpointError(ValueError):
  """Not a TF checkpoint this reader can read, or a damaged one (one line, says which)."""


# --- crc32c (Castagnoli), as TF and LevelDB checksum their files ---------------------------

def _crc_table() -> np.ndarray:
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
  return table.astype(np.uint32)


_CRC_TABLE = _crc_table()
_CRC_TABLE_LIST = [int(v) for v in _CRC_TABLE]


def _crc_register(data: bytes, reg: int) -> int:
  """The raw crc32c register after `data`, starting from `reg` (no pre/post inversion)."""
  table = _CRC_TABLE_LIST
  for byte in data:
    reg = table[(reg ^ byte) & 0xFF] ^ (reg >> 8)
  return reg


@functools.lru_cache(maxsize=8)
def _zeros_operator(n: int) -> list[list[int]]:
  """Byte-wise tables of the (linear) map 'register after n zero bytes' (n >= 1)."""
  # The register after n zero bytes, for each of the 32 one-bit start values, in lock step.
  basis = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
  for _ in range(n):
    basis = _CRC_TABLE[basis & 0xFF] ^ (basis >> 8)
  bits = [int(b) for b in basis]
  tables = []
  for shift in (0, 8, 16, 24):
    t = [0] * 256
    for v in range(1, 256):
      low = v & -v
      t[v] = t[v ^ low] ^ bits[shift + low.bit_length() - 1]
    tables.append(t)
  return tables


def crc32c(data: Union[bytes, memoryview, np.ndarray]) -> int:
  """CRC-32C of `data`; numpy-vectorised (chunks run side by side), tens of MB/s."""
  buf = np.frombuffer(memoryview(data).cast('B'), np.uint8)
  n = buf.size
  chunk = max(1024, 1 << max(int(n).bit_length() // 2, 0))
  lanes = n // chunk
  reg = 0xFFFFFFFF
  if lanes >= 2:
    # Row i holds byte i of every chunk, so each step reads contiguous memory.
    columns = np.ascontiguousarray(buf[:lanes * chunk].reshape(lanes, chunk).T)
    # Each chunk's register from 0; crc(A + B) = Z_len(B)(reg(A)) ^ reg_0(B) by linearity.
    regs = np.zeros(lanes, np.uint32)
    for column in columns:
      regs = _CRC_TABLE[(regs ^ column) & 0xFF] ^ (regs >> 8)
    t0, t1, t2, t3 = _zeros_operator(chunk)
    for r in regs.tolist():
      reg = (t0[reg & 0xFF] ^ t1[(reg >> 8) & 0xFF] ^ t2[(reg >> 16) & 0xFF] ^
             t3[reg >> 24] ^ r)
    buf = buf[lanes * chunk:]
  return _crc_register(buf.tobytes(), reg) ^ 0xFFFFFFFF


def masked_crc32c(data: Union[bytes, memoryview, np.ndarray]) -> int:
  """The checksum as stored in TF / LevelDB files (rotated and offset; see LevelDB's crc32c)."""
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format and LevelDB tables ------------------------------------------------

def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
  result, shift = 0, 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise CheckpointError(f'corrupt {what} (bad varint)')
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if not byte & 0x80:
      return result, pos
    shift += 7


def _signed64(v: int) -> int:
  return v - (1 << 64) if v >= 1 << 63 else v


def _proto_fields(buf: bytes, what: str) -> Iterator[tuple[int, Union[int, bytes]]]:
  """(field number, value) pairs of a serialised message: ints for varint/fixed, bytes for
  length-delimited fields."""
  pos = 0
  while pos < len(buf):
    tag, pos = _varint(buf, pos, what)
    field, wire = tag >> 3, tag & 7
    if wire == 0:
      value, pos = _varint(buf, pos, what)
    elif wire == 1:
      if pos + 8 > len(buf):
        raise CheckpointError(f'corrupt {what} (truncated field)')
      value, pos = struct.unpack_from('<Q', buf, pos)[0], pos + 8
    elif wire == 5:
      if pos + 4 > len(buf):
        raise CheckpointError(f'corrupt {what} (truncated field)')
      value, pos = struct.unpack_from('<I', buf, pos)[0], pos + 4
    elif wire == 2:
      size, pos = _varint(buf, pos, what)
      if pos + size > len(buf):
        raise CheckpointError(f'corrupt {what} (truncated field)')
      value, pos = bytes(buf[pos:pos + size]), pos + size
    else:
      raise CheckpointError(f'corrupt {what} (unsupported wire type {wire})')
    yield field, value


@dataclasses.dataclass(frozen=True)
class TensorEntry:
  """One tensor's `BundleEntryProto`: where its bytes are and what they hold."""
  name: str
  dtype: int  # TF DataType enum value
  shape: tuple[int, ...]
  shard_id: int = 0
  offset: int = 0
  size: int = 0
  crc32c: Optional[int] = None  # masked, as stored
  sliced: bool = False  # a partitioned variable (its data lives in slice entries)

  @property
  def dtype_name(self) -> str:
    if self.dtype in _DTYPES:
      return _DTYPES[self.dtype].name
    return _DTYPE_NAMES.get(self.dtype, f'dtype #{self.dtype}')


def _parse_shape(buf: bytes, what: str) -> tuple[int, ...]:
  dims = []
  for field, value in _proto_fields(buf, what):
    if field == 2:  # repeated Dim {int64 size = 1; string name = 2}
      size = 0
      for f, v in _proto_fields(value, what):
        if f == 1:
          size = _signed64(v)
      dims.append(size)
    elif field == 3 and value:
      raise CheckpointError(f'{what} has an unknown rank')
  if any(d < 0 for d in dims):
    raise CheckpointError(f'{what} has an unknown dimension')
  return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
  what = f'index entry of {name!r}'
  kw: dict = {'dtype': 0, 'shape': ()}
  for field, value in _proto_fields(buf, what):
    if field == 1:
      kw['dtype'] = value
    elif field == 2:
      kw['shape'] = _parse_shape(value, what)
    elif field == 3:
      kw['shard_id'] = value
    elif field == 4:
      kw['offset'] = value
    elif field == 5:
      kw['size'] = value
    elif field == 6:
      kw['crc32c'] = value
    elif field == 7:
      kw['sliced'] = True
  return TensorEntry(name=name, **kw)


def _read_block(index: bytes, handle: bytes, what: str, path: str) -> bytes:
  offset, pos = _varint(handle, 0, what)
  size, _ = _varint(handle, pos, what)
  end = offset + size + _BLOCK_TRAILER_SIZE
  if end > len(index) - _FOOTER_SIZE:
    raise CheckpointError(f'{path} is truncated or corrupt ({what} lies past its end)')
  block = index[offset:offset + size]
  kind, stored = struct.unpack_from('<BI', index, offset + size)
  if kind != 0:
    names = {1: 'snappy', 2: 'zlib'}
    raise CheckpointError(f'{path} has {names.get(kind, f"type {kind}")}-compressed blocks; '
                          'TensorFlow writes checkpoint indexes uncompressed and this reader '
                          'reads only those')
  if masked_crc32c(index[offset:offset + size + 1]) != stored:
    raise CheckpointError(f'{path} is corrupt (checksum mismatch in its {what})')
  return block


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
  """(key, value) pairs of a table block: prefix-compressed keys, then restart offsets."""
  if len(block) < 4:
    raise CheckpointError(f'corrupt {what} (too short)')
  num_restarts = struct.unpack_from('<I', block, len(block) - 4)[0]
  limit = len(block) - 4 - 4 * num_restarts
  if limit < 0:
    raise CheckpointError(f'corrupt {what} (bad restart count)')
  pos, key = 0, b''
  while pos < limit:
    shared, pos = _varint(block, pos, what)
    unshared, pos = _varint(block, pos, what)
    value_len, pos = _varint(block, pos, what)
    if shared > len(key) or pos + unshared + value_len > limit:
      raise CheckpointError(f'corrupt {what} (bad entry)')
    key = key[:shared] + block[pos:pos + unshared]
    pos += unshared
    yield key, block[pos:pos + value_len]
    pos += value_len


def _read_table(path: str) -> Iterator[tuple[bytes, bytes]]:
  try:
    with open(path, 'rb') as f:
      index = f.read()
  except OSError as e:
    raise CheckpointError(f'cannot read {path}: {e.strerror or e}') from e
  if len(index) < _FOOTER_SIZE:
    raise CheckpointError(f'{path} is not a TensorFlow checkpoint index (too short: '
                          f'{len(index)} bytes)')
  footer = index[-_FOOTER_SIZE:]
  if struct.unpack_from('<Q', footer, 40)[0] != _TABLE_MAGIC:
    raise CheckpointError(f'{path} is not a TensorFlow checkpoint index (no table magic '
                          'number at its end; truncated, or another kind of file)')
  _, pos = _varint(footer, 0, 'table footer')  # metaindex handle (unused: no filters)
  _, pos = _varint(footer, pos, 'table footer')
  index_handle = footer[pos:40]
  index_block = _read_block(index, index_handle, 'index block', path)
  for _, handle in _block_entries(index_block, f'index block of {path}'):
    data_block = _read_block(index, handle, 'data block', path)
    yield from _block_entries(data_block, f'data block of {path}')


# --- checkpoint paths -------------------------------------------------------------------------

def _from_state_file(folder: str, state: str) -> Optional[str]:
  """The prefix named by a `checkpoint` state file (text proto) in `folder`."""
  try:
    with open(state, encoding='utf-8', errors='replace') as f:
      text = f.read()
  except OSError:
    return None
  m = re.search(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
  if not m:
    return None
  named = re.sub(r'\\(.)', r'\1', m.group(1))  # text-proto escapes (\\ in Windows paths)
  for candidate in (named if os.path.isabs(named) else os.path.join(folder, named),
                    # Copied folders keep the trainer's absolute path; the files sit here.
                    os.path.join(folder, os.path.basename(named.replace('\\', '/')))):
    if os.path.isfile(candidate + '.index'):
      return candidate
  raise CheckpointError(f'{state} names checkpoint {named!r}, but {named}.index is not there '
                        f'(nor in {folder})')


def resolve_prefix(path: str) -> str:
  """The checkpoint prefix for a prefix, its `.index` / `.data-*` / `.meta` file or a folder.

  A folder is resolved through its `checkpoint` file (also `checkpoint.txt`, as Google Drive
  renames it) or, without one, its only `*.index` file.
  """
  path = os.path.expanduser(path)
  if os.path.isdir(path):
    for state in ('checkpoint', 'checkpoint.txt'):
      if os.path.isfile(os.path.join(path, state)):
        prefix = _from_state_file(path, os.path.join(path, state))
        if prefix:
          return prefix
    indexes = sorted(glob.glob(os.path.join(glob.escape(path), '*.index')))
    if len(indexes) == 1:
      return indexes[0][:-len('.index')]
    if not indexes:
      raise CheckpointError(f'folder {path!r} holds no TensorFlow checkpoint (no *.index file)')
    names = ', '.join(os.path.basename(p)[:-len('.index')] for p in indexes[:4])
    raise CheckpointError(f'folder {path!r} holds several checkpoints ({names}); give one '
                          'prefix, e.g. ' + indexes[-1][:-len('.index')])
  m = re.fullmatch(r'(.+)\.(index|meta|data-\d{5}-of-\d{5})', path)
  prefix = m.group(1) if m else path
  if os.path.isfile(prefix + '.index'):
    return prefix
  if not os.path.exists(path):
    raise CheckpointError(f'{path!r} does not exist (give a checkpoint folder, a prefix such '
                          'as .../snap-0, or its .index file)')
  raise CheckpointError(f'{path!r} is not a TensorFlow V2 checkpoint ({prefix}.index is '
                        'missing)')


# --- the reader -------------------------------------------------------------------------------

class CheckpointReader:
  """The tensors of one checkpoint, read on demand.

  `entries` maps every tensor name to its TensorEntry (dtype, shape, ...); `read(name)` returns
  a numpy array (strings: an object array of bytes). Raises CheckpointError throughout.
  """

  def __init__(self, path: str, *, verify: bool = True):
    self.prefix = resolve_prefix(path)
    self.verify = verify
    index_path = self.prefix + '.index'
    self.num_shards = 1
    self.big_endian = False
    self.entries: dict[str, TensorEntry] = {}
    have_header = False
    for key, value in _read_table(index_path):
      if key == b'':
        have_header = True
        for field, v in _proto_fields(value, 'checkpoint header'):
          if field == 1:
            self.num_shards = v
          elif field == 2:
            self.big_endian = v == 1
      elif key.startswith(b'\x00'):
        continue  # data of a slice of a partitioned variable (an encoded key, not a name)
      else:
        name = key.decode('utf-8', errors='replace')
        self.entries[name] = _parse_entry(name, value)
    if not have_header:
      raise CheckpointError(f'{index_path} is a table but not a TensorFlow checkpoint index '
                            '(no bundle header)')
    self._shards: dict[int, bytes] = {}

  def shard_path(self, shard_id: int) -> str:
    return f'{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}'

  def _shard(self, shard_id: int) -> memoryview:
    if shard_id not in self._shards:
      if not 0 <= shard_id < self.num_shards:
        raise CheckpointError(f'corrupt index: shard {shard_id} of {self.num_shards}')
      path = self.shard_path(shard_id)
      if not os.path.isfile(path):
        raise CheckpointError(f'data file {os.path.basename(path)} of checkpoint '
                              f'{self.prefix!r} is missing (copy all its .data-* files)')
      try:
        with open(path, 'rb') as f:
          self._shards[shard_id] = f.read()
      except OSError as e:
        raise CheckpointError(f'cannot read {path}: {e.strerror or e}') from e
    return memoryview(self._shards[shard_id])

  def read(self, name: str) -> np.ndarray:
    """The tensor `name` as a numpy array (native byte order, owns its memory)."""
    if name not in self.entries:
      raise CheckpointError(f'no tensor {name!r} in checkpoint {self.prefix!r}')
    e = self.entries[name]
    if e.sliced:
      raise CheckpointError(f'{name} is a partitioned variable (saved in slices), which this '
                            'reader does not support')
    if e.dtype != _DT_STRING and e.dtype not in _DTYPES:
      raise CheckpointError(f'{name} has unsupported dtype {e.dtype_name}')
    shard = self._shard(e.shard_id)
    if e.offset + e.size > len(shard):
      raise CheckpointError(f'data file {os.path.basename(self.shard_path(e.shard_id))} is '
                            f'truncated ({len(shard)} bytes; {name} needs bytes up to '
                            f'{e.offset + e.size})')
    raw = shard[e.offset:e.offset + e.size]
    count = int(np.prod(e.shape, dtype=np.int64))
    if e.dtype == _DT_STRING:
      strings, checked = self._strings(name, raw, count)
    else:
      checked = raw
    if self.verify and e.crc32c is not None and masked_crc32c(checked) != e.crc32c:
      raise CheckpointError(f'checksum mismatch for {name} in '
                            f'{os.path.basename(self.shard_path(e.shard_id))} (damaged file)')
    if e.dtype == _DT_STRING:
      return strings.reshape(e.shape)
    dtype = _DTYPES[e.dtype]
    if count * dtype.itemsize != e.size:
      raise CheckpointError(f'corrupt index: {name} ({dtype.name} {list(e.shape)}) should hold '
                            f'{count * dtype.itemsize} bytes, not {e.size}')
    if self.big_endian:
      dtype = dtype.newbyteorder('>')
    array = np.frombuffer(raw, dtype=dtype).reshape(e.shape)
    return array.astype(array.dtype.newbyteorder('='), copy=True)

  @staticmethod
  def _strings(name: str, raw: memoryview, count: int) -> tuple[np.ndarray, bytes]:
    """Decodes [varint lengths][masked crc of the lengths][bytes...]; also returns the bytes
    TF's checksum covers (lengths as little-endian uint32, or uint64 past 4 GiB)."""
    data = bytes(raw)
    pos, lengths = 0, []
    for _ in range(count):
      n, pos = _varint(data, pos, f'string tensor {name}')
      lengths.append(n)
    if pos + 4 > len(data):
      raise CheckpointError(f'corrupt string tensor {name}')
    covered = [struct.pack('<I' if n <= 0xFFFFFFFF else '<Q', n) for n in lengths]
    covered.append(data[pos:])  # the lengths' checksum and the strings
    pos += 4
    out = np.empty(count, dtype=object)
    for i, n in enumerate(lengths):
      if pos + n > len(data):
        raise CheckpointError(f'corrupt string tensor {name}')
      out[i] = data[pos:pos + n]
      pos += n
    return out, b''.join(covered)

  def read_all(self, names: Optional[Union[Iterable[str], Callable[[str], bool]]] = None,
               ) -> dict[str, np.ndarray]:
    """{name: array} for the tensors in `names` (a list, a predicate, or None for all the
    tensors this reader supports; unsupported ones are then left out)."""
    if names is None:
      selected = [n for n, e in self.entries.items()
                  if not e.sliced and (e.dtype == _DT_STRING or e.dtype in _DTYPES)]
    elif callable(names):
      selected = [n for n in self.entries if names(n)]
    else:
      selected = list(names)
    return {n: self.read(n) for n in selected}


def read_checkpoint(path: str, names: Optional[Union[Iterable[str], Callable[[str], bool]]] = None,
                    *, verify: bool = True) -> dict[str, np.ndarray]:
  """{tensor name: numpy array} of the TF V2 checkpoint at `path` (see `resolve_prefix`).

  `names` restricts what is read (a list of names or a predicate); by default every tensor of a
  supported dtype. `verify` checks each tensor's crc32c. Raises CheckpointError.
  """
  return CheckpointReader(path, verify=verify).read_all(names)


def list_variables(path: str) -> dict[str, tuple[str, tuple[int, ...]]]:
  """{name: (dtype name, shape)} of every tensor in the checkpoint (reads only the index)."""
  return {n: (e.dtype_name, e.shape) for n, e in CheckpointReader(path).entries.items()}
