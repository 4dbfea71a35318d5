"""Random-access image sources: bundled photos, image folders, tfds catalog datasets.

A source has `__len__` and `__getitem__(i) -> uint8 [H, W, 3]` and pickles cheaply, so grain
can hand it to worker processes. TensorFlow is never needed: tfds reads array_record files
through `tfds.data_source`.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image, ImageOps

from flowinpaint.errors import UserError

__all__ = [
    'DATASETS',
    'DatasetError',
    'EmbeddedSource',
    'ImageFolder',
    'ImageSource',
    'TfdsSource',
    'embedded_images',
    'make_source',
    'to_rgb_uint8',
]

DATASETS = ('embedded', 'folder', 'tfds')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')

# Colour photographs that ship inside the scikit-image wheel (no pooch download). `lily`,
# `eagle`, `kidney` and others need a download and are left out; `colorwheel` is synthetic.
_COLOR = ('astronaut', 'chelsea', 'coffee', 'rocket', 'stereo_motorcycle',
          'immunohistochemistry', 'hubble_deep_field', 'retina')
# Grayscale natural images and textures, offered only on request: the models are colour
# models and grey images would skew the colour statistics of an 8-image set.
_GRAY = ('camera', 'moon', 'brick', 'grass', 'gravel', 'coins', 'clock')


class DatasetError(UserError, ValueError):
  """A dataset that cannot be used as given (empty folder, unreadable file, unknown name)."""


class ImageSource(Protocol):

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> np.ndarray:
    ...


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Grey [H, W] / [H, W, 1], RGB or RGBA (alpha dropped) uint8 -> uint8 [H, W, 3]."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'expected a uint8 image, got {image.dtype}')
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f'expected [H, W], [H, W, 1|3|4], got shape {image.shape}')
  if image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  return image[..., :3]


@functools.lru_cache(maxsize=2)
def _load_embedded(include_grayscale: bool) -> tuple[np.ndarray, ...]:
  from skimage import data  # pylint: disable=g-import-not-at-top

  images = []
  for name in _COLOR + (_GRAY if include_grayscale else ()):
    image = getattr(data, name)()
    if name == 'stereo_motorcycle':
      image = image[0]  # (left, right, disparity): the left view.
    image = np.ascontiguousarray(to_rgb_uint8(image))
    image.setflags(write=False)  # Shared by every caller through the cache.
    images.append(image)
  return tuple(images)


def embedded_images(*, include_grayscale: bool = False) -> list[np.ndarray]:
  """The photographs bundled with scikit-image, each uint8 [H, W, 3] (read-only), offline.

  Colour: astronaut, chelsea, coffee, rocket, stereo_motorcycle (left view),
  immunohistochemistry, hubble_deep_field, retina. With `include_grayscale`, also camera,
  moon, brick, grass, gravel, coins, clock repeated to 3 channels.
  """
  return list(_load_embedded(include_grayscale))


def embedded_names(*, include_grayscale: bool = False) -> list[str]:
  """Names of `embedded_images()` in the same order."""
  return list(_COLOR + (_GRAY if include_grayscale else ()))


class EmbeddedSource:
  """`embedded_images()` as a source; pickles by name, not by pixels."""

  def __init__(self, *, include_grayscale: bool = False):
    self.include_grayscale = include_grayscale

  @property
  def images(self) -> tuple[np.ndarray, ...]:
    return _load_embedded(self.include_grayscale)

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int) -> np.ndarray:
    return self.images[index]

  def __getstate__(self) -> dict[str, Any]:
    return {'include_grayscale': self.include_grayscale}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.include_grayscale = state['include_grayscale']

  def __repr__(self) -> str:
    return f'EmbeddedSource(n={len(self)}, include_grayscale={self.include_grayscale})'


def _natural_key(path: str) -> list[Any]:
  # 'img2' < 'img10'; digits compare as numbers, the rest case-insensitively.
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', path)]


def load_image(path: str) -> np.ndarray:
  """Reads an image file as uint8 [H, W, 3]: EXIF orientation applied, converted to RGB."""
  try:
    with Image.open(path) as im:
      im = ImageOps.exif_transpose(im)
      if im.mode in ('P', 'PA'):
        im = im.convert('RGBA')  # Palette transparency must go through RGBA; alpha is dropped.
      return np.asarray(im.convert('RGB'), dtype=np.uint8)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise DatasetError(f'cannot read image {path}: {e}') from e


class ImageFolder:
  """All images under `path` (recursive), in natural sort order of their relative paths."""

  def __init__(self, path: str | os.PathLike[str], *,
               extensions: Sequence[str] = IMAGE_EXTENSIONS):
    self.root = os.fspath(path)
    if not os.path.isdir(self.root):
      raise DatasetError(f'image folder {self.root} does not exist or is not a directory')
    exts = tuple(e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
      dirnames[:] = [d for d in dirnames if not d.startswith('.')]
      for name in filenames:
        if not name.startswith('.') and name.lower().endswith(exts):
          found.append(os.path.relpath(os.path.join(dirpath, name), self.root))
    if not found:
      raise DatasetError(
          f'no images with extensions {", ".join(exts)} found in folder {self.root}')
    self.files = sorted(found, key=_natural_key)

  @property
  def paths(self) -> list[str]:
    return [os.path.join(self.root, f) for f in self.files]

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> np.ndarray:
    return load_image(os.path.join(self.root, self.files[index]))

  def __repr__(self) -> str:
    return f'ImageFolder({self.root!r}, n={len(self)})'


class TfdsSource:
  """A tfds dataset split read by random access (`tfds.data_source`, array_record, no TF).

  The dataset must already be prepared in `data_dir` with `file_format='array_record'`.
  """

  def __init__(self, name: str, split: str = 'train', data_dir: str | None = None,
               image_key: str = 'image'):
    self.name, self.split, self.data_dir, self.image_key = name, split, data_dir, image_key
    self._source = self._open()

  def _open(self) -> Any:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
      return tfds.data_source(self.name, split=self.split, data_dir=self.data_dir)
    except Exception as e:  # tfds raises several types (not found, wrong format, bad split).
      raise DatasetError(
          f'cannot open tfds dataset {self.name!r} split {self.split!r} in data_dir '
          f'{self.data_dir or "(tfds default)"}: {e}. It must be prepared there with '
          "file_format='array_record' (e.g. `tfds build NAME --file_format=array_record`).") from e

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> np.ndarray:
    record = self._source[index]
    if self.image_key not in record:
      raise DatasetError(
          f'tfds dataset {self.name!r} has no feature {self.image_key!r}; '
          f'features: {", ".join(sorted(record))}')
    return to_rgb_uint8(np.asarray(record[self.image_key]))

  # Workers reopen the files instead of receiving open readers.
  def __getstate__(self) -> dict[str, Any]:
    return {k: getattr(self, k) for k in ('name', 'split', 'data_dir', 'image_key')}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._source = self._open()

  def __repr__(self) -> str:
    return f'TfdsSource({self.name!r}, split={self.split!r}, n={len(self)})'


def make_source(data_config: Any) -> ImageSource:
  """Builds the source named by `data_config.dataset` ('embedded' | 'folder' | 'tfds').

  Fields read: dataset; folder: path; tfds: tfds_name, tfds_split, tfds_data_dir, image_key;
  embedded: embedded_grayscale (optional, default False).
  """
  kind = data_config.get('dataset', 'embedded')
  if kind == 'embedded':
    return EmbeddedSource(include_grayscale=bool(data_config.get('embedded_grayscale', False)))
  if kind == 'folder':
    path = data_config.get('path')
    if not path:
      raise DatasetError("dataset 'folder' needs data.path (the image folder)")
    return ImageFolder(path)
  if kind == 'tfds':
    name = data_config.get('tfds_name')
    if not name:
      raise DatasetError("dataset 'tfds' needs data.tfds_name")
    return TfdsSource(name, split=data_config.get('tfds_split') or 'train',
                      data_dir=data_config.get('tfds_data_dir') or None,
                      image_key=data_config.get('image_key') or 'image')
  raise DatasetError(f'unknown dataset {kind!r}; choices: {", ".join(DATASETS)}')
