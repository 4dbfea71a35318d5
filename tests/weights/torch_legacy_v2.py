"""Writes `.pth` files in torch 0.4-1.5 legacy format (`_rebuild_tensor_v2`) without torch.

The layout `torch.save(obj, f, _use_new_zipfile_serialization=False)` writes: pickles of the
magic number, the protocol version (1001) and the system info; the object, whose tensors are
`torch._utils._rebuild_tensor_v2` calls on persistent storage records `('storage', type, key,
'cpu', numel, None)`; the sorted storage keys; then every storage as an int64 element count and
its little-endian bytes. Objects: dict, OrderedDict, int, float, str, None, numpy arrays
(float32/float64/int64 tensors, contiguous).
"""

from __future__ import annotations

import collections
import pickle
import struct
from typing import Any

import numpy as np

MAGIC = 0x1950a86a20f9469cfc6c
PROTOCOL = 1001
SYS_INFO = {"protocol_version": PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
_STORAGES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
             np.dtype(np.int64): "LongStorage"}


def _plain(x: Any) -> bytes:
  """Pickle opcodes of a plain value, without the PROTO header and STOP."""
  return pickle.dumps(x, protocol=2)[2:-1]


def _ops(obj: Any, storages: dict[str, np.ndarray]) -> bytes:
  if isinstance(obj, np.ndarray):
    array = np.array(obj, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    key = str(len(storages))
    storages[key] = array
    stride = tuple(int(np.prod(array.shape[i + 1:])) for i in range(array.ndim))
    record = (b"(" + _plain("storage") + f"ctorch\n{_STORAGES[array.dtype]}\n".encode() +
              _plain(key) + _plain("cpu") + _plain(int(array.size)) + b"Nt")
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + record + b"Q" + _plain(0) +
            _plain(tuple(array.shape)) + _plain(stride) + b"\x89" +
            b"ccollections\nOrderedDict\n)R" + b"tR")
  if isinstance(obj, dict):
    head = b"ccollections\nOrderedDict\n)R" if isinstance(obj, collections.OrderedDict) else b"}"
    if not obj:
      return head
    items = b"".join(_plain(k) + _ops(v, storages) for k, v in obj.items())
    return head + b"(" + items + b"u"
  return _plain(obj)


def save(obj: Any, path: str) -> None:
  storages: dict[str, np.ndarray] = {}
  main = b"\x80\x02" + _ops(obj, storages) + b"."
  keys = sorted(storages)
  with open(path, "wb") as f:
    for header in (MAGIC, PROTOCOL, SYS_INFO):
      f.write(pickle.dumps(header, protocol=2))
    f.write(main)
    f.write(pickle.dumps(keys, protocol=2))
    for key in keys:
      array = storages[key]
      f.write(struct.pack("<q", array.size))
      f.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
