"""Writes torch's legacy (non-zip) file format as Python 2 + torch 0.2/0.3 did, without torch.

The layout (torch/serialization.py `_legacy_save` of those versions): five pickles (protocol 2)
- the magic number, the protocol version 1001, system info, the object, the sorted list of
storage keys - then, per key in that order, the storage's element count (int64) and its raw
little-endian data. Tensors are `torch._utils._rebuild_tensor(storage, offset, size, stride)`
(torch <= 0.3; `_rebuild_tensor_v2` came with 0.4), storages persistent ids
`('storage', torch.FloatStorage, key, location, numel, None)`, strings Python 2 byte strings
(SHORT_BINSTRING), an OrderedDict `OrderedDict([[k, v], ...])` as Python 2 reduces it. Keys are
decimal numbers as str(storage._cdata) gave, so the data order differs from the pickle order.
This is the format of NVIDIA's FlowNet2 checkpoints (converted with Python 2.7 in 2017).

`torch04=True` writes what Python 3 + torch 0.4.0 wrote instead (DFVI's files): tensors as
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False,
OrderedDict())` and strings as Python 3 str (BINUNICODE); lists, bools and nested dicts with
int keys (an optimizer's state dict) are written too.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Mapping

import numpy as np

MAGIC = 0x1950a86a20f9469cfc6c
PROTOCOL = 1001
SYS_INFO = {"protocol_version": PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
_STORAGE = {np.dtype(np.float32): b"FloatStorage", np.dtype(np.float64): b"DoubleStorage",
            np.dtype(np.float16): b"HalfStorage", np.dtype(np.int64): b"LongStorage"}


def _py2_str(s: str) -> bytes:
  b = s.encode()
  if len(b) < 256:
    return b"U" + bytes([len(b)]) + b
  return b"T" + struct.pack("<i", len(b)) + b


def _py3_str(s: str) -> bytes:
  b = s.encode()
  return b"X" + struct.pack("<I", len(b)) + b


def _plain(x: Any) -> bytes:
  """Opcodes of an int or float (no PROTO header, no STOP)."""
  return pickle.dumps(x, protocol=2)[2:-1]


def _tuple(values) -> bytes:
  return b"(" + b"".join(_plain(int(v)) for v in values) + b"t" if len(values) else b")"


class _Writer:

  def __init__(self, cuda: bool, seed: int, torch04: bool = False):
    self.cuda = cuda
    self.rng = np.random.default_rng(seed)
    self.storages: dict[str, np.ndarray] = {}
    self.torch04 = torch04
    self.str = _py3_str if torch04 else _py2_str

  def tensor(self, value: np.ndarray) -> bytes:
    value = np.asarray(value, order="C")  # (ascontiguousarray would make a scalar 1-d)
    key = str(int(self.rng.integers(10**13, 10**14)))
    self.storages[key] = value
    module = b"torch.cuda" if self.cuda else b"torch"
    record = (b"(" + self.str("storage") + b"c" + module + b"\n" + _STORAGE[value.dtype] +
              b"\n" + self.str(key) + self.str("cuda:0" if self.cuda else "cpu") +
              _plain(int(value.size)) + b"Nt")
    stride = [int(np.prod(value.shape[i + 1:])) for i in range(value.ndim)]
    if self.torch04:
      return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + record + b"Q" + _plain(0) +
              _tuple(value.shape) + _tuple(stride) + b"\x89ccollections\nOrderedDict\n)RtR")
    return (b"ctorch._utils\n_rebuild_tensor\n(" + record + b"Q" + _plain(0) +
            _tuple(value.shape) + _tuple(stride) + b"tR")

  def key(self, k: Any) -> bytes:
    return self.str(k) if isinstance(k, str) else _plain(k)

  def value(self, x: Any) -> bytes:
    if isinstance(x, np.ndarray):
      return self.tensor(x)
    if isinstance(x, Mapping) and x and all(isinstance(v, np.ndarray) for v in x.values()):
      if self.torch04:  # Python 3 reduces an OrderedDict to OrderedDict() + SETITEMS.
        items = b"".join(self.str(k) + self.tensor(v) for k, v in x.items())
        return b"ccollections\nOrderedDict\n)R(" + items + b"u"
      items = b"".join(b"(" + self.str(k) + self.tensor(v) + b"l" for k, v in x.items())
      return b"ccollections\nOrderedDict\n(](" + items + b"etR"
    if isinstance(x, Mapping):
      if not x:
        return b"}"
      return b"}(" + b"".join(self.key(k) + self.value(v) for k, v in x.items()) + b"u"
    if isinstance(x, list):
      return b"]" + (b"(" + b"".join(self.value(v) for v in x) + b"e" if x else b"")
    if isinstance(x, (int, float)):  # bool too
      return _plain(x)
    raise TypeError(f"cannot write {type(x).__name__}")


def save(obj: Mapping[str, Any], path: str, *, cuda: bool = False, seed: int = 0,
         torch04: bool = False) -> None:
  """Writes `obj` (a dict of ints, floats and name -> array state dicts) to `path`."""
  writer = _Writer(cuda, seed, torch04)
  body = b"\x80\x02" + writer.value(obj) + b"."
  keys = sorted(writer.storages)
  with open(path, "wb") as f:
    f.write(pickle.dumps(MAGIC, protocol=2))
    f.write(pickle.dumps(PROTOCOL, protocol=2))
    f.write(pickle.dumps(SYS_INFO, protocol=2))
    f.write(body)
    f.write(b"\x80\x02](" + b"".join(writer.str(k) for k in keys) + b"e.")
    for key in keys:
      value = writer.storages[key]
      f.write(struct.pack("<q", value.size))
      f.write(value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes())
