"""Reads PyTorch `.pth` files into numpy, without torch.

`torch.load` unpickles arbitrary objects, so loading a downloaded file with it can run code.
This reader accepts only what a state dict is made of (OrderedDict / dict / list, tensors rebuilt
by `torch._utils._rebuild_tensor_v2`, typed storages); anything else is refused. Two formats:

* the zip format of torch >= 1.6 (`archive/data.pkl` + one `archive/data/<key>` per storage);
* the legacy format of torch 0.4 - 1.5 (most releases of 2018-2020, e.g. StructureFlow's and
  EdgeConnect's): one stream of pickles, `MAGIC_NUMBER`, protocol version 1001, a sys-info dict,
  the object (storages as persistent ids), the list of storage keys, then per key an int64
  element count and the raw little-endian elements. Tensors are rebuilt once the storages
  behind them have been read.

The tar format of torch < 0.4 is read with `torch.load(weights_only=True)` when torch is
installed.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any

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


class _Storage:
  """A lazily typed view on one `data/<key>` record of the archive."""

  def __init__(self, data: bytes, dtype: Any):
    self.array = np.frombuffer(data, dtype=dtype)


class _PendingStorage:
  """A legacy-format storage whose bytes follow the pickle (`array` is set once read)."""

  def __init__(self, dtype: Any, numel: int):
    self.dtype, self.numel = np.dtype(dtype), numel
    self.array: Any = None


class _PendingTensor:
  """A tensor whose storage has not been read yet: `_rebuild_tensor`'s arguments."""

  def __init__(self, *args: Any):
    self.args = args


def _resolve(obj: Any) -> Any:
  """`obj` with every _PendingTensor rebuilt (dicts, lists and tuples are walked)."""
  if isinstance(obj, _PendingTensor):
    return _rebuild_tensor(*obj.args)
  if isinstance(obj, dict):
    for k, v in obj.items():
      obj[k] = _resolve(v)
    return obj
  if isinstance(obj, list):
    return [_resolve(v) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve(v) for v in obj)
  return obj


def _rebuild_tensor(storage: Any, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *unused: Any) -> Any:
  del unused  # requires_grad, backward hooks, metadata
  if storage.array is None:
    return _PendingTensor(storage, offset, size, stride)
  flat = storage.array
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

  def __init__(self, file: io.BytesIO, archive: zipfile.ZipFile, prefix: str):
    super().__init__(file)
    self._archive = archive
    self._prefix = prefix
    self._storages: dict[str, _Storage] = {}

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
    if key not in self._storages:
      try:
        data = self._archive.read(f'{self._prefix}data/{key}')
      except KeyError as e:
        raise NotAStateDict(f'storage {key} is missing from the archive') from e
      self._storages[key] = _Storage(data, dtype)
    return self._storages[key]


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


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _PlainUnpickler(pickle.Unpickler):
  """Numbers, strings, lists and dicts only (the legacy header and storage-key list)."""

  def find_class(self, module: str, name: str) -> Any:
    raise NotAStateDict(f'unexpected {module}.{name} in the header of a legacy torch file')


class _LegacyUnpickler(_SafeUnpickler):
  """The object pickle of a legacy file: storages are placeholders filled after it."""

  def __init__(self, file: Any):
    pickle.Unpickler.__init__(self, file)
    self.roots: dict[str, _PendingStorage] = {}

  def persistent_load(self, pid: Any) -> Any:
    if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == 'storage'):
      raise NotAStateDict(f'unexpected persistent record {pid!r:.80}')
    _, dtype, key, _, numel, view = pid
    if dtype not in _STORAGE_DTYPES.values():
      raise NotAStateDict(f'unsupported storage type {dtype!r:.80}')
    if view is not None:  # torch >= 0.4 always writes None (views are tensor offsets)
      raise NotAStateDict('storage views of torch < 0.4 files are not supported')
    return self.roots.setdefault(str(key), _PendingStorage(dtype, int(numel)))


def _load_legacy_stream(f: Any) -> Any:
  """The legacy format without torch; None when `f` does not start with its magic number."""
  try:
    magic = _PlainUnpickler(f).load()
  except NotAStateDict:
    return None
  except Exception:  # pylint: disable=broad-except
    return None  # not a pickle at all: not this format
  if magic != _LEGACY_MAGIC:
    return None
  try:
    version = _PlainUnpickler(f).load()
    if version != _LEGACY_PROTOCOL:
      raise NotAStateDict(f'legacy torch file of unknown protocol version {version!r:.20}')
    info = _PlainUnpickler(f).load()
    if isinstance(info, dict) and not info.get('little_endian', True):
      raise NotAStateDict('big-endian torch files are not supported')
    unpickler = _LegacyUnpickler(f)
    obj = unpickler.load()
    keys = _PlainUnpickler(f).load()
  except NotAStateDict:
    raise
  except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as e:
    raise NotAStateDict(f'corrupt pickle ({type(e).__name__}: {e})') from e
  if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.roots):
    raise NotAStateDict('corrupt legacy torch file (its storage list does not match its '
                        'tensors)')
  for key in map(str, keys):
    root = unpickler.roots[key]
    head = f.read(8)
    numel = int.from_bytes(head, 'little', signed=True) if len(head) == 8 else -1
    if numel != root.numel:
      raise NotAStateDict(f'truncated or corrupt legacy torch file (storage {key} holds '
                          f'{numel} elements, {root.numel} expected)')
    data = f.read(numel * root.dtype.itemsize)
    if len(data) != numel * root.dtype.itemsize:
      raise NotAStateDict(f'truncated legacy torch file (storage {key} is cut short)')
    root.array = np.frombuffer(data, dtype=root.dtype)
  return _resolve(obj)


def _load_legacy(path: str) -> Any:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise NotAStateDict('it is neither a zip-format nor a legacy-format torch file (files '
                        'of torch < 0.4 need torch installed: pip install torch)') from e
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
  with open(path, 'rb') as f:
    obj = _load_legacy_stream(f)
  if obj is not None:
    return obj
  return _load_legacy(path)
