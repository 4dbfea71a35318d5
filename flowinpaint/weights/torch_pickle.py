"""Reads PyTorch `.pth` files (the zip format of torch >= 1.6) into numpy, without torch.

`torch.load` unpickles arbitrary objects, so loading a downloaded file with it can run code.
This reader accepts only what a state dict is made of (OrderedDict / dict / list, tensors rebuilt
by `torch._utils._rebuild_tensor_v2`, typed storages); anything else is refused. Files in the
legacy (pre-1.6, non-zip) format are read with `torch.load(weights_only=True)` when torch is
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


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *unused: Any) -> np.ndarray:
  del unused  # requires_grad, backward hooks, metadata
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


def _load_legacy(path: str) -> Any:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise NotAStateDict('it is not a zip-format torch file; files in the legacy format need '
                        'torch installed (pip install torch)') from e
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
  return _load_legacy(path)
