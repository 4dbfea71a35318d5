"""A writer of Torch7's binary serialisation for the tests, without Lua.

Written from the format's published definition (torch7's File.lua `writeObject`, and
generic/Tensor.c / generic/Storage.c `write`), separately from flowinpaint.weights.torch7's
reader. Every value is an int32 type tag and a payload:

  nil 0 | number 1: float64 | string 2: int32 length, bytes | boolean 5: int32 0/1
  table 3: int32 object index; if new: int32 #pairs, then key, value objects
  torch object 4: int32 object index; if new: string 'V 1', string class name, then
    tensor: int32 ndim, long size[ndim], long stride[ndim], long storageOffset (1-based),
            the storage object (or nil)
    storage: long n, n raw elements
    other (nn modules): its fields as one table object

Object indices count from 1 in order of first appearance; an object seen before (by identity)
is written as its tag and index alone. `long` is 8 bytes (Linux) unless long_size=4.

Tests also use it to check the format against real Torch7 output (tests/weights/data/README.md).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

import numpy as np

STORAGE_OF = {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double",
              np.dtype(np.int64): "Long", np.dtype(np.int32): "Int",
              np.dtype(np.int16): "Short", np.dtype(np.int8): "Char",
              np.dtype(np.uint8): "Byte", np.dtype(np.float16): "Half"}


class Table(dict):
  """A table that can be a key of another table (Lua compares tables by identity)."""
  __hash__ = object.__hash__


class Module:
  """A Torch class instance written as its fields (e.g. nn.SpatialConvolution)."""

  def __init__(self, typename: str, fields: dict, version: Optional[int] = 1):
    self.typename, self.fields, self.version = typename, fields, version


class Storage:
  """A storage to share between tensors (e.g. what getParameters() leaves behind)."""

  def __init__(self, data: np.ndarray, typename: Optional[str] = None):
    self.data = np.ascontiguousarray(data).reshape(-1)
    self.typename = typename or f"torch.{STORAGE_OF[self.data.dtype]}Storage"


class Tensor:
  """A tensor as Torch stores it: a view (size, stride, 0-based offset) of a storage."""

  def __init__(self, storage: Optional[Storage], size=(), stride=(), offset: int = 0,
               typename: Optional[str] = None):
    self.storage, self.size, self.stride, self.offset = storage, tuple(size), tuple(stride), offset
    element = STORAGE_OF[storage.data.dtype] if storage is not None else "Float"
    self.typename = typename or f"torch.{element}Tensor"

  @classmethod
  def of(cls, array: np.ndarray, typename: Optional[str] = None) -> "Tensor":
    """A contiguous tensor holding `array` in a storage of its own."""
    array = np.asarray(array)
    stride = [int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)]
    return cls(Storage(array), array.shape, stride, 0, typename)


class Writer:

  def __init__(self, long_size: int = 8):
    self.out = bytearray()
    self.long_fmt = {8: "<q", 4: "<i"}[long_size]
    self.index: dict[int, int] = {}
    self.keep: list = []  # keeps written objects alive so their ids stay unique

  def i32(self, n: int) -> None:
    self.out += struct.pack("<i", n)

  def long(self, n: int) -> None:
    self.out += struct.pack(self.long_fmt, n)

  def raw_string(self, s: str) -> None:
    data = s.encode("utf-8")
    self.i32(len(data))
    self.out += data

  def _seen(self, obj) -> bool:
    """Writes the object's index; True if it was written before (nothing more to write)."""
    if id(obj) in self.index:
      self.i32(self.index[id(obj)])
      return True
    self.index[id(obj)] = len(self.index) + 1
    self.keep.append(obj)
    self.i32(self.index[id(obj)])
    return False

  def _header(self, typename: str, version: Optional[int]) -> None:
    if version is not None:  # version-0 files have no 'V n' string
      self.raw_string(f"V {version}")
    self.raw_string(typename)

  def write(self, obj: Any) -> None:
    if obj is None:
      self.i32(0)
    elif isinstance(obj, bool):
      self.i32(5)
      self.i32(1 if obj else 0)
    elif isinstance(obj, (int, float)):
      self.i32(1)
      self.out += struct.pack("<d", float(obj))
    elif isinstance(obj, str):
      self.i32(2)
      self.raw_string(obj)
    elif isinstance(obj, np.ndarray):
      self.write(Tensor.of(obj))
    elif isinstance(obj, dict):
      self.i32(3)
      if not self._seen(obj):
        self.i32(len(obj))
        for key, value in obj.items():
          self.write(key)
          self.write(value)
    elif isinstance(obj, Storage):
      self.i32(4)
      if not self._seen(obj):
        self._header(obj.typename, 1)
        self.long(obj.data.size)
        self.out += obj.data.astype(obj.data.dtype.newbyteorder("<")).tobytes()
    elif isinstance(obj, Tensor):
      self.i32(4)
      if not self._seen(obj):
        self._header(obj.typename, 1)
        self.i32(len(obj.size))
        for n in obj.size + obj.stride:
          self.long(n)
        self.long(obj.offset + 1)
        self.write(obj.storage)
    elif isinstance(obj, Module):
      self.i32(4)
      if not self._seen(obj):
        self._header(obj.typename, obj.version)
        self.write(obj.fields)
    else:
      raise TypeError(f"cannot write a {type(obj).__name__}")


def dumps(obj: Any, long_size: int = 8) -> bytes:
  w = Writer(long_size)
  w.write(obj)
  return bytes(w.out)


def save(path: str, obj: Any, long_size: int = 8) -> None:
  with open(path, "wb") as f:
    f.write(dumps(obj, long_size))
