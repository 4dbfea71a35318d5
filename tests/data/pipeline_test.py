"""Tests for flowinpaint.data.pipeline."""

import itertools

import cv2
import ml_collections
import numpy as np
import pytest
from PIL import Image

from flowinpaint.data import masks
from flowinpaint.data import pipeline

EMBEDDED = ml_collections.ConfigDict({'dataset': 'embedded', 'num_workers': 0})


def _take(n, **kwargs):
  args = dict(batch_size=3, image_size=32, seed=5, mask_kind='free_form_and_box', num_workers=0)
  args.update(kwargs)
  config = args.pop('config', EMBEDDED)
  with pipeline.train_batches(config, **args) as it:
    return list(itertools.islice(it, n))


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['mask'], y['mask'])


@pytest.fixture
def colour_folder(tmp_path):
  """Five small flat-colour images (shorter than the crop): colour identifies the image."""
  for i in range(5):
    Image.fromarray(np.full((20, 28, 3), 50 * i, np.uint8)).save(tmp_path / f'{i}.png')
  return ml_collections.ConfigDict({'dataset': 'folder', 'path': str(tmp_path)})


def test_shapes_dtypes_ranges():
  (batch,) = _take(1, batch_size=4, image_size=48)
  assert set(batch) == {'image', 'mask'}
  assert batch['image'].shape == (4, 48, 48, 3) and batch['image'].dtype == np.float32
  assert batch['mask'].shape == (4, 48, 48, 1) and batch['mask'].dtype == np.float32
  assert type(batch['image']) is np.ndarray and type(batch['mask']) is np.ndarray
  assert -1 <= batch['image'].min() < batch['image'].max() <= 1
  assert set(np.unique(batch['mask']).tolist()) == {0.0, 1.0}


def test_same_seed_same_batches_other_seed_differs():
  first = _take(3)
  _assert_same(first, _take(3))
  other = _take(1, seed=6)
  assert not np.array_equal(first[0]['image'], other[0]['image'])


def test_resume_equals_fresh_run():
  fresh = _take(5)
  _assert_same(fresh[3:], _take(2, start_step=3))
  with pipeline.train_batches(EMBEDDED, batch_size=3, image_size=32, seed=5,
                              mask_kind='free_form_and_box', start_step=3) as it:
    next(it)
    assert it.step == 4  # The position the trainer saves.


def test_masks_come_from_global_sample_position():
  (batch,) = _take(1, start_step=2, process_index=1, process_count=2)
  # Step 2, process 1 of 2, batch 3: global positions (2 * 2 + 1) * 3 + [0, 1, 2].
  expected = masks.sample_masks(5, [15, 16, 17], 32, 32, 'free_form_and_box')
  np.testing.assert_array_equal(batch['mask'], expected)


def test_processes_read_different_samples():
  p0 = _take(2, process_index=0, process_count=2)
  p1 = _take(2, process_index=1, process_count=2)
  for a, b in zip(p0, p1):
    assert not np.array_equal(a['mask'], b['mask'])
    assert not np.array_equal(a['image'], b['image'])
  # Process 0's stream is a different stream from a single-process run's.
  single = _take(2)
  assert not np.array_equal(single[1]['mask'], p0[1]['mask'])


def test_each_epoch_visits_every_image_once(colour_folder):
  batches = _take(3, config=colour_folder, batch_size=5, image_size=32)
  epochs = [sorted(np.round((b['image'][:, 0, 0, 0] + 1) * 127.5).astype(int).tolist())
            for b in batches]
  assert all(e == [0, 50, 100, 150, 200] for e in epochs)
  orders = {tuple(np.round(b['image'][:, 0, 0, 0], 3)) for b in batches}
  assert len(orders) > 1  # Reshuffled between epochs.


def test_small_images_are_upscaled(colour_folder):
  (batch,) = _take(1, config=colour_folder, batch_size=2, image_size=64)
  assert batch['image'].shape == (2, 64, 64, 3)


def test_workers_give_the_same_batches():
  in_process = _take(4, batch_size=2)
  _assert_same(in_process, _take(4, batch_size=2, num_workers=2))


def test_threads_and_prefetch_give_the_same_batches():
  _assert_same(_take(3), _take(3, num_threads=3, prefetch=4))


def test_bad_arguments():
  with pytest.raises(ValueError, match='free_form_and_box'):
    _take(1, mask_kind='circles')
  with pytest.raises(ValueError, match='process_index'):
    _take(1, process_index=2, process_count=2)


def test_random_crop():
  rng = np.random.default_rng(0)
  image = np.arange(40 * 50 * 3, dtype=np.uint32).reshape(40, 50, 3).astype(np.uint8)
  crop = pipeline.random_crop(image, 16, rng)
  assert crop.shape == (16, 16, 3)
  # A crop of a big enough image is a window of it, not a resampling.
  found = any(np.array_equal(image[t:t + 16, l:l + 16], crop)
              for t in range(25) for l in range(35))
  assert found
  assert pipeline.random_crop(image[:10, :30], 16, rng).shape == (16, 16, 3)


def test_random_resized_crop_covers_a_fraction_of_the_short_side():
  image = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
  # f = 1 on a square image: the whole image resized, exactly what the evaluation sees.
  square = image[:60, :60]
  np.testing.assert_array_equal(
      pipeline.random_crop(square, 24, np.random.default_rng(3), min_fraction=1.0),
      pipeline.center_crop_resize(square, 24))
  # f = 1 on a wide image: some 60-pixel window along the long side, resized.
  crop = pipeline.random_crop(image, 24, np.random.default_rng(3), min_fraction=1.0)
  windows = [cv2.resize(image[:, l:l + 60], (24, 24), interpolation=cv2.INTER_AREA)
             for l in range(31)]
  assert any(np.array_equal(crop, w) for w in windows)
  # f = 0.5 on a ramp whose value is the column index: a crop's span of values is its side
  # (less the half pixel the area filter averages at each end), so sides lie in [30, 60].
  ramp = np.broadcast_to(np.arange(90, dtype=np.uint8)[None, :, None], (60, 90, 3)).copy()
  spans = set()
  for seed in range(40):
    crop = pipeline.random_crop(ramp, 24, np.random.default_rng(seed), min_fraction=0.5)
    assert crop.shape == (24, 24, 3)
    span = int(crop[..., 0].max()) - int(crop[..., 0].min())
    assert 0.9 * 30 <= span <= 60, span
    spans.add(span)
  assert len(spans) > 10  # The side really varies.
  with pytest.raises(ValueError, match='min_fraction'):
    pipeline.random_crop(image, 24, np.random.default_rng(0), min_fraction=1.5)


def test_min_crop_fraction_knob():
  config = ml_collections.ConfigDict(dict(EMBEDDED.to_dict(), min_crop_fraction=1.0))
  resized = _take(2, config=config)
  assert resized[0]['image'].shape == (3, 32, 32, 3)
  # Whole-image squares at 32 px are far busier than 32 px windows of 300-1400 px photos.
  native = _take(2)
  detail = lambda batches: np.mean([np.abs(np.diff(b['image'], axis=2)).mean() for b in batches])
  assert detail(resized) > 2 * detail(native)
  _assert_same(resized, _take(2, config=config))  # Still a pure function of (seed, step).
  with pytest.raises(ValueError, match='min_crop_fraction'):
    _take(1, config=ml_collections.ConfigDict(dict(EMBEDDED.to_dict(), min_crop_fraction=-1)))


def test_eval_batch_fixed():
  a = pipeline.eval_batch(EMBEDDED, num_images=4, image_size=64, seed=3)
  b = pipeline.eval_batch(EMBEDDED, num_images=4, image_size=64, seed=3)
  for key in ('image', 'mask'):
    np.testing.assert_array_equal(a[key], b[key])
  assert a['image'].shape == (4, 64, 64, 3) and a['image'].dtype == np.float32
  np.testing.assert_array_equal(a['mask'], masks.eval_masks(4, 64, 64, seed=3))
  # Evenly spread over the 8 photos: different images.
  assert len({x.tobytes() for x in a['image']}) == 4


def test_eval_batch_wraps_small_sources(colour_folder):
  batch = pipeline.eval_batch(colour_folder, num_images=7, image_size=16, seed=0)
  np.testing.assert_array_equal(batch['image'][5], batch['image'][0])
  assert not np.array_equal(batch['mask'][5], batch['mask'][0])


def test_package_exports():
  from flowinpaint import data  # pylint: disable=g-import-not-at-top

  assert data.train_batches is pipeline.train_batches
  assert data.eval_batch is pipeline.eval_batch
  assert data.sample_masks is masks.sample_masks
