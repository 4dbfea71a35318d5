"""Reads Torch7 (Lua torch) `.t7` files into Python and numpy, without Lua or torch.

Torch7's binary serialisation (torch/File.lua `writeObject`, torch/generic/Tensor.c and
Storage.c `write`) is a stream of typed values, little-endian, each starting with an int32 tag:

  0 nil | 1 number (float64) | 2 string (int32 length + bytes) | 5 boolean (int32)
  3 table: int32 reference index, then (first time seen) int32 number of pairs and that many
    key, value objects
  4 torch object: int32 reference index, then (first time seen) a version string 'V <n>'
    (absent in version-0 files), the class name string, and the class's payload:
    * tensors (`torch.FloatTensor`, ...): int32 ndim, int64 sizes[ndim], int64 strides[ndim],
      int64 1-based storage offset, then the storage as an object (shared storages are
      references, as after `getParameters()`);
    * storages (`torch.FloatStorage`, ...): int64 element count and the raw elements;
    * anything else (nn modules): its fields, as one table object.
  6, 7, 8: functions (refused: reading one would mean running its bytecode).

Objects written twice are written once and then referred to by index, so shared tensors stay
shared here. Lua's array keys are numbers; whole numbers come back as int keys. The "long"
type's width is the writer's C `long`: 8 bytes on Linux and macOS (the default here), 4 on
Windows (`long_size=4`). ASCII files (`torch.save(f, x, 'ascii')`) are not read.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from typing import Any, Optional

import numpy as np

_NIL, _NUMBER, _STRING, _TABLE, _TORCH, _BOOLEAN = 0, 1, 2, 3, 4, 5
_FUNCTIONS = (6, 7, 8)

_ELEMENT = {'Byte': np.uint8, 'Char': np.int8, 'Short': np.int16, 'Int': np.int32,
            'Long': None, 'Float': np.float32, 'Double': np.float64, 'Half': np.float16}
# cutorch: a CudaTensor is float32 on the host side of a file; CudaDouble... as named.
_CUDA = {'Cuda': 'Float', 'CudaByte': 'Byte', 'CudaChar': 'Char', 'CudaShort': 'Short',
         'CudaInt': 'Int', 'CudaLong': 'Long', 'CudaDouble': 'Double', 'CudaHalf': 'Half'}


class T7Error(ValueError):
  """Not a Torch7 file this reader can read, or a damaged one (one line, says which)."""


class LuaTable(dict):
  """A Lua table: a dict that, like Lua, can itself be a key of another table (by identity),
  as nngraph's node maps use them."""
  __hash__ = object.__hash__


@dataclasses.dataclass(eq=False)
class TorchObject:
  """An instance of a Torch class that is not a tensor or storage, e.g. `nn.SpatialConvolution`.

  `typename` is the class ('nn.Sequential'), `fields` its Lua table (str or int keys), `version`
  the class version written with it.
  """
  typename: str
  fields: dict
  version: int = 1

  def __getitem__(self, key):
    return self.fields[key]

  def get(self, key, default=None):
    return self.fields.get(key, default)

  def __repr__(self) -> str:
    return f'TorchObject({self.typename!r}, fields={sorted(map(str, self.fields))})'


class _ArrayKey:
  """A tensor used as a table key (identity, as in Lua); `.array` is the tensor."""

  def __init__(self, array: np.ndarray):
    self.array = array


def _element_type(typename: str, kind: str) -> Optional[str]:
  """'torch.CudaTensor', 'Tensor' -> 'Float'; None when not a `torch.<X><kind>` class."""
  if not (typename.startswith('torch.') and typename.endswith(kind)):
    return None
  name = typename[len('torch.'):-len(kind)]
  name = _CUDA.get(name, name)
  return name if name in _ELEMENT else None


class _Reader:

  def __init__(self, data: bytes, long_size: int):
    self.data = data
    self.pos = 0
    self.long = {8: '<q', 4: '<i'}[long_size]
    self.long_size = long_size
    self.objects: dict[int, Any] = {}

  def take(self, n: int) -> bytes:
    if n < 0 or self.pos + n > len(self.data):
      raise T7Error(f'the file ends early (needed {n} bytes at offset {self.pos} of '
                    f'{len(self.data)}): truncated or not a Torch7 file')
    out = self.data[self.pos:self.pos + n]
    self.pos += n
    return out

  def int(self) -> int:
    return struct.unpack('<i', self.take(4))[0]

  def long_(self) -> int:
    return struct.unpack(self.long, self.take(self.long_size))[0]

  def string(self) -> bytes:
    return self.take(self.int())

  def text(self) -> str:
    raw = self.string()
    try:
      return raw.decode('utf-8')
    except UnicodeDecodeError:
      return raw.decode('latin-1')

  def count(self, what: str) -> int:
    n = self.int()
    if n < 0 or n > len(self.data) - self.pos:
      raise T7Error(f'{what} count {n} at offset {self.pos - 4} does not fit in the file '
                    '(damaged, or not a binary Torch7 file)')
    return n

  def value(self) -> Any:
    tag_at = self.pos
    tag = self.int()
    if tag == _NIL:
      return None
    if tag == _NUMBER:
      return struct.unpack('<d', self.take(8))[0]
    if tag == _STRING:
      return self.text()
    if tag == _BOOLEAN:
      return self.int() == 1
    if tag in (_TABLE, _TORCH):
      index = self.int()
      if index in self.objects:
        return self.objects[index]
      return self.table(index) if tag == _TABLE else self.torch(index)
    if tag in _FUNCTIONS:
      raise T7Error(f'a Lua function is stored at offset {tag_at}; functions are not read '
                    '(they would have to be run)')
    raise T7Error(f'unknown type tag {tag} at offset {tag_at} (damaged, or not a binary '
                  'Torch7 file)')

  def table(self, index: int) -> LuaTable:
    out = LuaTable()
    self.objects[index] = out  # before the contents: a table may contain itself
    for _ in range(self.count('table size')):
      key = self.value()
      if isinstance(key, float) and key.is_integer():
        key = int(key)
      if isinstance(key, np.ndarray):
        key = _ArrayKey(key)
      out[key] = self.value()
    return out

  def torch(self, index: int) -> Any:
    head = self.text()
    if head.startswith('V '):
      try:
        version = int(head[2:])
      except ValueError as e:
        raise T7Error(f'bad class version {head!r}') from e
      typename = self.text()
    else:
      version, typename = 0, head
    element = _element_type(typename, 'Storage')
    if element is not None:
      out = self.storage(element)
    elif _element_type(typename, 'Tensor') is not None:
      out = self.tensor(typename)
    elif typename.startswith('torch.'):
      raise T7Error(f'objects of class {typename} are not supported')
    else:
      # A Lua class without its own writer: its fields follow as a table. Registered first so
      # that fields referring back to the object find it.
      out = TorchObject(typename, {}, version)
      self.objects[index] = out
      at = self.pos
      try:
        fields = self.value()
      except T7Error as e:
        raise T7Error(f'the {typename} object at offset {at} is not a table of fields (a '
                      f'class with its own serialiser is not supported): {e}') from e
      if not isinstance(fields, dict):
        raise T7Error(f'the {typename} object at offset {at} holds a '
                      f'{type(fields).__name__}, not a table of fields (a class with its own '
                      'serialiser is not supported)')
      out.fields = fields
    self.objects[index] = out
    return out

  def storage(self, element: str) -> np.ndarray:
    n = self.long_()
    dtype = np.dtype(_ELEMENT[element] or {8: np.int64, 4: np.int32}[self.long_size])
    if n < 0 or n * dtype.itemsize > len(self.data) - self.pos:
      raise T7Error(f'a storage of {n} {element} elements at offset {self.pos} does not fit in '
                    'the file (truncated?)')
    return np.frombuffer(self.take(n * dtype.itemsize), dtype.newbyteorder('<'))

  def tensor(self, typename: str) -> np.ndarray:
    ndim = self.int()
    if not 0 <= ndim <= 64:
      raise T7Error(f'{typename} with {ndim} dimensions at offset {self.pos - 4} (damaged?)')
    size = [self.long_() for _ in range(ndim)]
    stride = [self.long_() for _ in range(ndim)]
    offset = self.long_() - 1
    storage = self.value()
    element = _element_type(typename, 'Tensor')
    if ndim == 0 or storage is None:
      dtype = _ELEMENT[element] or {8: np.int64, 4: np.int32}[self.long_size]
      return np.zeros((0,), dtype)
    if not isinstance(storage, np.ndarray):
      raise T7Error(f'{typename} refers to a {type(storage).__name__}, not a storage')
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
      raise T7Error(f'{typename} has a negative size, stride or offset (damaged?)')
    if min(size) > 0:
      last = offset + sum((n - 1) * s for n, s in zip(size, stride))
      if last >= storage.size:
        raise T7Error(f'{typename} of size {tuple(size)} reaches element {last} of a storage '
                      f'of {storage.size} (damaged?)')
      item = storage.dtype.itemsize
      view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                             strides=tuple(s * item for s in stride),
                                             writeable=False)
      return np.array(view, dtype=storage.dtype.newbyteorder('='))
    return np.zeros(size, storage.dtype.newbyteorder('='))


def _looks_ascii(data: bytes) -> bool:
  """An ASCII file starts with its first type tag as text: a digit and a line break."""
  return re.match(rb'[0-8]\r?\n', data[:3]) is not None


def loads(data: bytes, *, long_size: Optional[int] = None) -> Any:
  """The object stored in a Torch7 binary file's bytes (see the module docstring for types).

  `long_size` None tries 8-byte longs, then 4-byte ones (files written on Windows); a reading
  counts only if it ends exactly at the end of the file.
  """
  if len(data) < 4:
    raise T7Error(f'{len(data)} bytes is too short for a Torch7 file')
  sizes = (long_size,) if long_size else (8, 4)
  first: Optional[T7Error] = None
  for size in sizes:
    reader = _Reader(data, size)
    try:
      out = reader.value()
      if reader.pos != len(data):
        raise T7Error(f'{len(data) - reader.pos} bytes follow the stored object (damaged, or '
                      'not a Torch7 file)')
    except T7Error as e:
      first = first or e
      continue
    except RecursionError as e:
      raise T7Error('objects nested too deeply') from e
    return out
  if _looks_ascii(data):
    raise T7Error('this is an ASCII Torch7 file; only binary ones are read (in Lua: '
                  "torch.save(path, torch.load(path, 'ascii'))")
  assert first is not None
  raise first


def load(path: str, *, long_size: Optional[int] = None) -> Any:
  """Reads a `.t7` file; raises T7Error for files it cannot read (OSError for I/O errors)."""
  if os.path.isdir(path):
    raise T7Error(f'{path!r} is a folder, not a Torch7 file')
  with open(path, 'rb') as f:
    data = f.read()
  return loads(data, long_size=long_size)
