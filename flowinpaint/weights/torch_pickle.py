"""Reads PyTorch `.pth` files into numpy, without torch.

`torch.load` unpickles arbitrary objects, so loading a downloaded file with it can run code.
This reader accepts only what a state dict is made of (OrderedDict / dict / list, tensors rebuilt
by `torch._utils._rebuild_tensor_v2` or, from torch <= 0.3, `_rebuild_tensor`, typed CPU or
CUDA storages); anything else is refused. Two container formats:

* zip (torch >= 1.6): `<prefix>/data.pkl` plus one `<prefix>/data/<key>` record per storage;
* legacy (torch 0.1.10 .. 1.5, and `_use_new_zipfile_serialization=False`): one file of four
  pickles (magic number 0x1950a86a20f9469cfc6c, protocol version 1001, system info, the object
  with storages as persistent ids `('storage', type, key, location, numel, view)`), a pickled
  list of storage keys, then per key an int64 element count and the raw little-endian data.
  Many 2017-2018 releases (e.g. NVIDIA's FlowNet2 `.pth.tar`, written by Python 2 with torch
  0.2-0.3) are in it; the `.tar` in their names is a misnomer. The older tar container
  (torch < 0.1.10) is refused.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import tarfile
import zipfile
from typing import Any, Callable

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
    'BFloat16Storage': ml_dtypes.bfloat16,
}


class NotAStateDict(ValueError):
  """The file is not a torch state dict this reader can read (the message says why)."""


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _Storage:
  """One storage's flat data: set now (zip) or once the legacy file's data part is read."""

  def __init__(self, dtype: Any, array: np.ndarray | None = None):
    self.dtype = np.dtype(dtype)
    self.array = array


class _Pending:
  """A tensor whose storage is not read yet (legacy files store the data after the pickle)."""

  def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
               stride: tuple[int, ...]):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def resolve(self) -> np.ndarray:
    return _tensor(self.storage.array, self.offset, self.size, self.stride)


def _tensor(flat: np.ndarray, offset: int, size: tuple[int, ...],
            stride: tuple[int, ...]) -> np.ndarray:
  size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
  if len(size) != len(stride):
    raise NotAStateDict(f'tensor size {size} and stride {stride} disagree')
  numel = int(np.prod(size))
  if numel == 0:
    return np.zeros(size, flat.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if offset < 0 or min(stride, default=0) < 0 or last >= flat.size:
    raise NotAStateDict(f'tensor of size {size} lies outside its storage ({flat.size} elements)')
  if not size:
    return flat[offset].copy()
  contiguous = tuple(int(np.prod(size[i + 1:])) for i in range(len(size)))
  if offset == 0 and numel == flat.size and stride == contiguous and flat.flags.writeable:
    return flat.reshape(size)  # The whole (private) storage: no copy.
  itemsize = flat.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
      flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False)
  return np.array(view)  # own, contiguous copy


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *unused: Any) -> np.ndarray | _Pending:
  del unused  # requires_grad, backward hooks, metadata
  if not isinstance(storage, _Storage):
    raise NotAStateDict('a tensor without a storage')
  if storage.array is None:
    return _Pending(storage, offset, size, stride)
  return _tensor(storage.array, offset, size, stride)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool, hooks: Any, *unused: Any):
  del requires_grad, hooks, unused
  return data


class _SafeUnpickler(pickle.Unpickler):
  """Unpickles containers and tensors only; `storage(pid)` turns a storage record into a
  _Storage (None: the stream may hold no storages)."""

  def __init__(self, file: Any, storage: Callable[[tuple], _Storage] | None = None):
    # Python 2 pickles (legacy files) hold byte strings; torch.load decodes them as UTF-8 too.
    super().__init__(file, encoding='utf-8')
    self._storage = storage

  def find_class(self, module: str, name: str) -> Any:
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
      return _rebuild_tensor
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module in ('torch', 'torch.cuda') and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    raise NotAStateDict(f'it pickles {module}.{name}, which is not part of a state dict '
                        '(refused: only tensors and dicts are read)')

  def persistent_load(self, pid: Any) -> _Storage:
    if (self._storage is None or not (isinstance(pid, tuple) and len(pid) >= 5 and
                                      pid[0] == 'storage')):
      raise NotAStateDict(f'unexpected persistent record {pid!r:.80}')
    if pid[1] not in _STORAGE_DTYPES.values():
      raise NotAStateDict(f'unsupported storage type {pid[1]!r:.80}')
    return self._storage(pid)


def _unpickle(unpickler: _SafeUnpickler) -> Any:
  try:
    return unpickler.load()
  except NotAStateDict:
    raise
  except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError,
          KeyError, OverflowError) as e:
    raise NotAStateDict(f'corrupt pickle ({type(e).__name__}: {e})') from e


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    pkls = [n for n in archive.namelist() if n.endswith('data.pkl')]
    if len(pkls) != 1:
      raise NotAStateDict('the zip archive holds no single data.pkl (not a torch file)')
    prefix = pkls[0][:-len('data.pkl')]
    order = archive.read(f'{prefix}byteorder').decode() if f'{prefix}byteorder' in \
        archive.namelist() else 'little'
    if order != 'little':
      raise NotAStateDict(f'byte order {order!r} is not supported')
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
      key = str(pid[2])
      if key not in storages:
        try:
          data = archive.read(f'{prefix}data/{key}')
        except KeyError as e:
          raise NotAStateDict(f'storage {key} is missing from the archive') from e
        storages[key] = _Storage(pid[1], np.frombuffer(data, dtype=pid[1]))
      return storages[key]

    return _unpickle(_SafeUnpickler(io.BytesIO(archive.read(pkls[0])), storage))


def _load_legacy(path: str) -> Any:
  with open(path, 'rb') as f:
    try:
      magic = _unpickle(_SafeUnpickler(f))
    except NotAStateDict as e:
      raise NotAStateDict(f'it is neither a zip nor a legacy torch file ({e})') from None
    if magic != _LEGACY_MAGIC:
      raise NotAStateDict('it is neither a zip nor a legacy torch file (no torch magic number)')
    version = _unpickle(_SafeUnpickler(f))
    if version != _LEGACY_PROTOCOL:
      raise NotAStateDict(f'legacy torch file of unknown protocol version {version!r:.40}')
    info = _unpickle(_SafeUnpickler(f))
    if isinstance(info, dict) and not info.get('little_endian', True):
      raise NotAStateDict('the file was written on a big-endian machine (not supported)')
    roots: dict[str, _Storage] = {}
    views: list[tuple[_Storage, str, int, int]] = []

    def storage(pid: tuple) -> _Storage:
      dtype, key = pid[1], str(pid[2])
      root = roots.setdefault(key, _Storage(dtype))
      view = pid[5] if len(pid) > 5 else None
      if view is None:
        return root
      # torch <= 0.3 pickled storage slices as (view key, offset, size) into a root storage.
      part = _Storage(dtype)
      views.append((part, key, int(view[1]), int(view[2])))
      return part

    obj = _unpickle(_SafeUnpickler(f, storage))
    keys = _unpickle(_SafeUnpickler(f))
    if not isinstance(keys, list):
      raise NotAStateDict('corrupt legacy torch file (no storage key list)')
    for key in keys:
      key = str(key)
      if key not in roots:
        raise NotAStateDict(f'storage {key} is listed but never used')
      header = f.read(8)
      if len(header) != 8:
        raise NotAStateDict(f'the file ends before storage {key} (truncated download?)')
      count = int(np.frombuffer(header, '<i8')[0])
      dtype = roots[key].dtype
      data = np.fromfile(f, dtype=dtype.newbyteorder('<'), count=max(count, 0))
      if count < 0 or data.size != count:
        raise NotAStateDict(f'the file ends inside storage {key} (truncated download?)')
      roots[key].array = data.astype(dtype, copy=False)
  missing = [k for k, s in roots.items() if s.array is None]
  if missing:
    raise NotAStateDict(f'storage {missing[0]} has no data in the file')
  for part, key, offset, size in views:
    part.array = roots[key].array[offset:offset + size]
  return _resolve(obj)


def _resolve(obj: Any) -> Any:
  """`obj` with every _Pending tensor replaced by its array (containers rebuilt alike)."""
  if isinstance(obj, _Pending):
    return obj.resolve()
  if isinstance(obj, dict):
    out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _resolve(v)
    return out
  if isinstance(obj, list):
    return [_resolve(v) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve(v) for v in obj)
  return obj


def load(path: str) -> Any:
  """The object pickled in the torch file `path`, with tensors as numpy arrays.

  Raises NotAStateDict when the file is not a torch file or pickles anything but tensors and
  containers.
  """
  if zipfile.is_zipfile(path):
    return _load_zip(path)
  if tarfile.is_tarfile(path):
    raise NotAStateDict('it is a tar archive: the container of torch before 0.1.10 is not '
                        'supported (load it with that torch and save it again)')
  return _load_legacy(path)


def load_file(path: str, what: str = 'PyTorch state dict') -> Any:
  """`load` for a file a user named: every failure is one UserError that names the file."""
  from flowinpaint.errors import UserError
  if not os.path.exists(path):
    raise UserError(f'weights file {path!r} does not exist')
  if not os.path.isfile(path):
    raise UserError(f'weights file {path!r} is not a file')
  try:
    return load(path)
  except NotAStateDict as e:
    raise UserError(f'{path!r} is not a {what}: {e}') from e
  except OSError as e:
    raise UserError(f'cannot read {path!r}: {e}') from e
