"""Reads PyTorch `.pth` files into numpy, without torch.

`torch.load` unpickles arbitrary objects, so loading a downloaded file with it can run code.
This reader accepts only what a state dict is made of (OrderedDict / dict / list, tensors rebuilt
by `torch._utils._rebuild_tensor_v2`, typed storages); anything else is refused. Two layouts:

* the zip format of torch >= 1.6 (`archive/data.pkl` + one record per storage);
* the legacy format that torch < 1.6 wrote (most released checkpoints of 2017-2020, e.g.
  EdgeConnect's): a stream of pickles (magic number, protocol version 1001, system info, the
  object, the sorted storage keys), then each storage as an int64 element count and its raw
  little-endian bytes.

Anything else (torch's pre-0.4 tar format) is read with `torch.load(weights_only=True)` when
torch is installed.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, Optional

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
  """A typed view on one storage's bytes (`array`; None until a legacy file's data is read)."""

  def __init__(self, data: Optional[bytes], dtype: Any):
    self.dtype = np.dtype(dtype)
    self.array = None if data is None else np.frombuffer(data, dtype=dtype)


class _PendingTensor:
  """A tensor of a legacy file, whose storage bytes follow the pickle: built by `_resolve`."""

  def __init__(self, storage: _Storage, args: tuple):
    self.storage, self.args = storage, args


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *unused: Any) -> Any:
  del unused  # requires_grad, backward hooks, metadata
  if storage.array is None:
    return _PendingTensor(storage, (offset, size, stride))
  return _tensor(storage, offset, size, stride)


def _tensor(storage: _Storage, offset: int, size: tuple[int, ...],
            stride: tuple[int, ...]) -> np.ndarray:
  flat = storage.array
  if all(n > 0 for n in size):
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= len(flat):
      raise NotAStateDict(f'a tensor of shape {tuple(size)} lies outside its storage')
  itemsize = flat.dtype.itemsize
  if not size:
    return flat[offset].copy()
  view = np.lib.stride_tricks.as_strided(
      flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride),
      writeable=False)
  return np.array(view)  # own, contiguous copy


def _rebuild_parameter(data: np.ndarray, requires_grad: bool, hooks: Any, *unused: Any):
  del requires_grad, hooks, unused
  return data


class _SafeUnpickler(pickle.Unpickler):
  """Unpickles tensors and containers only. `archive` None: a legacy file (storages pending)."""

  def __init__(self, file: Any, archive: Optional[zipfile.ZipFile], prefix: str = ''):
    super().__init__(file)
    self._archive = archive
    self._prefix = prefix
    self.storages: dict[str, _Storage] = {}
    self.views: dict[str, tuple[str, int, int]] = {}  # legacy storage views: key -> root

  def find_class(self, module: str, name: str) -> Any:
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    raise NotAStateDict(f'it pickles {module}.{name}, which is not part of a state dict '
                        '(refused: only tensors and dicts are read)')

  def persistent_load(self, pid: Any) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage'):
      raise NotAStateDict(f'unexpected persistent record {pid!r:.80}')
    dtype, key = pid[1], str(pid[2])
    if dtype not in _STORAGE_DTYPES.values():
      raise NotAStateDict(f'unsupported storage type {dtype!r:.80}')
    if self._archive is None:
      # Legacy: (..., root size, view metadata (view key, offset, size) or None).
      view = pid[5] if len(pid) > 5 else None
      if view is not None:
        view_key = str(view[0])
        self.views[view_key] = (key, int(view[1]), int(view[2]))
        key = view_key
      return self.storages.setdefault(key, _Storage(None, dtype))
    if key not in self.storages:
      try:
        data = self._archive.read(f'{self._prefix}data/{key}')
      except KeyError as e:
        raise NotAStateDict(f'storage {key} is missing from the archive') from e
      self.storages[key] = _Storage(data, dtype)
    return self.storages[key]


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
    unpickler = _SafeUnpickler(io.BytesIO(archive.read(pkls[0])), archive, prefix)
    try:
      return unpickler.load()
    except NotAStateDict:
      raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as e:
      raise NotAStateDict(f'corrupt pickle ({type(e).__name__}: {e})') from e


def _unpickle(unpickler: pickle.Unpickler) -> Any:
  try:
    return unpickler.load()
  except NotAStateDict:
    raise
  except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
          IndexError, KeyError) as e:
    raise NotAStateDict(f'corrupt pickle ({type(e).__name__}: {e})') from e


def _is_legacy(path: str) -> bool:
  """Whether the file starts with the legacy format's pickled magic number."""
  with open(path, 'rb') as f:
    try:
      return _unpickle(_SafeUnpickler(f, None)) == _LEGACY_MAGIC
    except Exception:  # pylint: disable=broad-except  (not a pickle at all)
      return False


def _resolve(obj: Any) -> Any:
  if isinstance(obj, _PendingTensor):
    return _tensor(obj.storage, *obj.args)
  if isinstance(obj, dict):
    out = type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, collections.OrderedDict) and hasattr(obj, '_metadata'):
      out._metadata = obj._metadata  # type: ignore[attr-defined]
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v) for v in obj)
  return obj


def _load_legacy_stream(path: str) -> Any:
  """The legacy (torch < 1.6) format, read without torch."""
  with open(path, 'rb') as f:
    header = [_unpickle(_SafeUnpickler(f, None)) for _ in range(3)]
    magic, protocol, info = header
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
      raise NotAStateDict(f'unsupported legacy torch file (protocol {protocol!r:.20})')
    if isinstance(info, dict) and not info.get('little_endian', True):
      raise NotAStateDict('big-endian torch files are not supported')
    unpickler = _SafeUnpickler(f, None)
    obj = _unpickle(unpickler)
    keys = _unpickle(_SafeUnpickler(f, None))
    if not isinstance(keys, list):
      raise NotAStateDict('the storage key list is missing')
    roots = unpickler.storages
    for key in keys:
      key = str(key)
      head = f.read(8)
      if len(head) != 8:
        raise NotAStateDict(f'the file ends before storage {key}')
      (count,) = struct.unpack('<q', head)
      storage = roots.get(key)
      if storage is None or count < 0:
        raise NotAStateDict(f'storage {key} is not referenced by the pickle')
      data = f.read(count * storage.dtype.itemsize)
      if len(data) != count * storage.dtype.itemsize:
        raise NotAStateDict(f'the file ends inside storage {key}')
      storage.array = np.frombuffer(data, dtype=storage.dtype)
    for view_key, (root, offset, size) in unpickler.views.items():
      if root not in roots or roots[root].array is None:
        raise NotAStateDict(f'storage view {view_key} has no root storage {root}')
      roots[view_key].array = roots[root].array[offset:offset + size]
    missing = [k for k, s in roots.items() if s.array is None]
    if missing:
      raise NotAStateDict(f'storage {missing[0]} has no data in the file')
    return _resolve(obj)


def _load_with_torch(path: str) -> Any:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise NotAStateDict('it is neither a zip-format nor a legacy torch file; torch\'s older '
                        'formats need torch installed (pip install torch)') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise NotAStateDict(f'torch cannot read it ({type(e).__name__}: '
                        f'{str(e).splitlines()[0][:200] if str(e) else ""})') from e

  def to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
      return x.detach().cpu().numpy()
    if isinstance(x, dict):
      return collections.OrderedDict((k, to_numpy(v)) for k, v in x.items())
    return x
  return to_numpy(obj)


def load(path: str) -> Any:
  """The object pickled in the torch file `path`, with tensors as numpy arrays.

  Raises NotAStateDict when the file is not a torch file or pickles anything but tensors and
  containers.
  """
  if zipfile.is_zipfile(path):
    return _load_zip(path)
  if _is_legacy(path):
    return _load_legacy_stream(path)
  return _load_with_torch(path)
