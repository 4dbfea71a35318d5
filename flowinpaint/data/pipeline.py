"""Training and evaluation batches: grain random access, multi-worker, resumable by step.

Global sample position g = (step * process_count + process_index) * batch_size + b decides
everything about a sample: which image (entry g % N of epoch g // N's permutation
`default_rng([seed, epoch, 2]).permutation(N)`), its crop and flip (`default_rng([seed, g, 1])`)
and its mask (`masks.sample_masks(seed, [g])`, i.e. `default_rng([seed, g])`). So the batch
of a step is a pure function of (seed, step, process_index, process_count, batch_size), and
resuming is calling `train_batches(..., start_step=s)`; no iterator state needs saving.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterator

import cv2
import grain
import numpy as np

from flowinpaint.data import datasets
from flowinpaint.data import masks

__all__ = ['TrainIterator', 'center_crop_resize', 'eval_batch', 'random_crop', 'train_batches']

# Last seed words that keep the streams apart; the mask uses [seed, g] (masks.sample_masks).
_AUGMENT_STREAM = 1  # [seed, g, 1]: crop and flip.
_SHUFFLE_STREAM = 2  # [seed, epoch, 2]: the epoch's order.


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator, *,
                min_fraction: float = 0.0) -> np.ndarray:
  """A uniform random size x size crop of `image` (uint8 [H, W, C]).

  min_fraction = 0: a window at the image's own resolution; images whose short side is < size
  are upscaled first. min_fraction f in (0, 1]: a square whose side is a uniform fraction in
  [f, 1] of the short side, at a uniform position, resized to size x size; f = 1 gives the
  scale of `center_crop_resize` (the evaluation's images).
  """
  if min_fraction:
    if not 0 < min_fraction <= 1:
      raise ValueError(f'min_fraction must be in [0, 1], got {min_fraction}')
    h, w = image.shape[:2]
    side = max(1, round(rng.uniform(min_fraction, 1.0) * min(h, w)))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    square = image[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)
  h, w = image.shape[:2]
  if min(h, w) < size:
    scale = size / min(h, w)
    h, w = max(size, round(h * scale)), max(size, round(w * scale))
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
  top = int(rng.integers(0, h - size + 1))
  left = int(rng.integers(0, w - size + 1))
  return image[top:top + size, left:left + size]


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
  """The central square of `image`, resized to size x size (area filter when shrinking)."""
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  if side == size:
    return np.ascontiguousarray(square)
  interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
  return cv2.resize(square, (size, size), interpolation=interpolation)


def _to_float(image: np.ndarray) -> np.ndarray:
  return image.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1)


class _MakeExample:
  """(global position g, uint8 image) -> {'image': uint8 crop, 'mask': uint8 [H, W, 1]}."""

  def __init__(self, seed: int, image_size: int, mask_kind: str, min_crop_fraction: float = 0.0):
    self.seed, self.image_size, self.mask_kind = seed, image_size, mask_kind
    self.min_crop_fraction = min_crop_fraction

  def __call__(self, index: int, image: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, index, _AUGMENT_STREAM])
    crop = random_crop(image, self.image_size, rng, min_fraction=self.min_crop_fraction)
    if rng.random() < 0.5:
      crop = cv2.flip(crop, 1)  # Horizontal; a contiguous copy, faster than [:, ::-1].copy().
    mask = masks.sample_masks(self.seed, [index], self.image_size, self.image_size,
                              self.mask_kind)[0]
    # uint8 across the process boundary: 4x less to copy than float32.
    return {'image': np.ascontiguousarray(crop), 'mask': mask.astype(np.uint8)}


class _ToFloat:
  """Batch of uint8 -> float32 image in [-1, 1] and float32 mask (runs in the main process)."""

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # np.asarray drops grain's SharedMemoryArray subclass, which astype would keep.
    image, mask = np.asarray(batch['image']), np.asarray(batch['mask'])
    return {'image': _to_float(image), 'mask': mask.astype(np.float32)}


class _EpochShuffled:
  """Endless random access to a source, reshuffled every epoch: position g -> image.

  Not grain's `MapDataset.shuffle`: its index_shuffle costs ~7 ms per lookup on sources of
  a few images (the embedded set, test folders), more than making the whole sample. A numpy
  permutation per epoch costs O(N) once per epoch (~20 ms and 7 MB for 1.8M images).
  """

  def __init__(self, source: datasets.ImageSource, seed: int):
    self.source, self.seed = source, seed
    self._size = len(source)
    self._orders: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return sys.maxsize

  def order(self, epoch: int) -> np.ndarray:
    with self._lock:
      order = self._orders.get(epoch)
      if order is None:
        rng = np.random.default_rng([self.seed, epoch, _SHUFFLE_STREAM])
        order = rng.permutation(self._size).astype(np.int32)
        # Readers are near one epoch boundary at a time: keep the last two epochs.
        self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
        self._orders[epoch] = order
      return order

  def __getitem__(self, position: int) -> np.ndarray:
    epoch, k = divmod(position, self._size)
    return self.source[int(self.order(epoch)[k])]

  def __getstate__(self) -> dict[str, Any]:
    return {'source': self.source, 'seed': self.seed}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__init__(state['source'], state['seed'])


class TrainIterator(Iterator[dict[str, np.ndarray]]):
  """Iterator over training batches; `step` is the global step of the next batch."""

  def __init__(self, iterator: Any, start_step: int):
    self._iterator = iterator
    self.step = start_step

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iterator)
    self.step += 1
    return batch

  def close(self) -> None:
    """Stops the worker processes (also done at garbage collection)."""
    close = getattr(self._iterator, 'close', None)
    if close is not None:
      close()

  def __enter__(self) -> 'TrainIterator':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def _allow_unparsed_absl_flags() -> None:
  # grain 0.2.18 reads an absl flag when it starts workers and raises UnparsedFlagAccessError
  # in programs that do not use absl.app (tests, notebooks, scripts); google/grain#1355, fixed
  # upstream in #1362. Defaults are what such programs get anyway; absl.app.run still parses
  # argv normally afterwards.
  from absl import flags  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def train_batches(
    data_config: Any,
    *,
    batch_size: int,
    image_size: int,
    seed: int,
    mask_kind: str,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    num_workers: int | None = None,
    num_threads: int | None = None,
    prefetch: int | None = None,
) -> TrainIterator:
  """Endless training batches for this process, starting at global step `start_step`.

  Yields {'image': float32 [B, S, S, 3] in [-1, 1], 'mask': float32 [B, S, S, 1]} with
  B = batch_size per process and S = image_size. Each sample: an image from a per-epoch
  shuffle of the source, a random crop (`random_crop` with data_config.min_crop_fraction,
  default 0: at the image's own resolution), a random horizontal flip, and its own mask of
  `mask_kind`. Processes read disjoint samples of each global step.

  num_workers (default data_config.num_workers or 2): worker processes (grain mp_prefetch);
  0 runs everything in this process. num_threads (default data_config.num_threads or 1):
  reader threads per process. prefetch (default data_config.prefetch or 2): batches buffered
  per worker. None of these change the batches, only how fast they come.
  """
  masks.check_kind(mask_kind)
  if batch_size < 1 or image_size < 1:
    raise ValueError(f'batch_size and image_size must be positive, got {batch_size}, {image_size}')
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'need 0 <= process_index < process_count, got {process_index}, {process_count}')
  if seed < 0 or start_step < 0:
    raise ValueError(f'seed and start_step must be non-negative, got {seed}, {start_step}')
  num_workers = data_config.get('num_workers', 2) if num_workers is None else num_workers
  num_threads = data_config.get('num_threads', 1) if num_threads is None else num_threads
  prefetch = data_config.get('prefetch', 2) if prefetch is None else prefetch
  min_crop_fraction = float(data_config.get('min_crop_fraction', 0.0))
  if not 0 <= min_crop_fraction <= 1:
    raise ValueError(f'data.min_crop_fraction must be in [0, 1], got {min_crop_fraction}')

  source = datasets.make_source(data_config)
  if len(source) == 0:
    raise datasets.DatasetError(f'the training source {source!r} is empty')
  ds = grain.MapDataset.source(_EpochShuffled(source, seed))
  ds = ds.map_with_index(_MakeExample(seed, image_size, mask_kind, min_crop_fraction))
  ds = ds.batch(batch_size)
  # Batch k of the global stream is (step k // P, process k % P).
  ds = ds[start_step * process_count + process_index::process_count]
  it_ds = ds.to_iter_dataset(
      grain.ReadOptions(num_threads=max(1, num_threads), prefetch_buffer_size=max(1, prefetch)))
  if num_workers > 0:
    _allow_unparsed_absl_flags()
    it_ds = it_ds.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=prefetch))
  it_ds = it_ds.map(_ToFloat())
  return TrainIterator(iter(it_ds), start_step)


def eval_batch(
    data_config: Any,
    *,
    num_images: int,
    image_size: int,
    seed: int,
    mask_kind: str = 'free_form_and_box',
) -> dict[str, np.ndarray]:
  """A fixed evaluation batch: identical on every call for the same arguments.

  Images: centre squares resized to image_size, taken evenly spread over the source (wrapping
  around, each repeat with its own mask, if the source has fewer than num_images). Masks:
  `masks.eval_masks(num_images, image_size, image_size, seed=seed, kind=mask_kind)`.
  Returns {'image': float32 [N, S, S, 3] in [-1, 1], 'mask': float32 [N, S, S, 1]}.
  """
  source = datasets.make_source(data_config)
  n = len(source)
  if num_images <= n:
    indices = (np.arange(num_images) * n) // num_images
  else:
    indices = np.arange(num_images) % n
  images = np.stack([center_crop_resize(source[int(i)], image_size) for i in indices])
  return {
      'image': _to_float(images),
      'mask': masks.eval_masks(num_images, image_size, image_size, seed=seed, kind=mask_kind),
  }
