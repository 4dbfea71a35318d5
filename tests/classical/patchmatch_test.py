"""flowinpaint.classical.patchmatch: the search finds exact copies, the fill continues texture."""

import cv2
import numpy as np
import pytest

from flowinpaint.classical import patchmatch


def _periodic(h, w, period=8, seed=0):
  """A colour texture that repeats exactly every `period` pixels in both directions."""
  tile = np.random.default_rng(seed).integers(0, 256, (period, period, 3), dtype=np.uint8)
  return np.tile(tile, (-(-h // period), -(-w // period), 1))[:h, :w]


def _box(h, w, y0, y1, x0, x1):
  m = np.zeros((h, w), bool)
  m[y0:y1, x0:x1] = True
  return m


def _assert_fill_from_known(out, img, hole):
  """Composited, and every fill value is a mean of known pixels: within their range."""
  np.testing.assert_array_equal(out[~hole], img[~hole])
  channels = img.shape[-1] if img.ndim == 3 else 1
  known, fill = img[~hole].reshape(-1, channels), out[hole].reshape(-1, channels)
  assert (fill >= known.min(0)).all() and (fill <= known.max(0)).all()


def test_field_finds_an_exact_shifted_copy():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
  img[20:44, 60:90] = img[10:34, 5:35]  # a copy, moved by (10, 55)
  hole = _box(64, 96, 24, 40, 64, 86)  # inside the copy: its patches match only the original
  field = patchmatch.nearest_neighbour_field(img, hole, iterations=6)
  ys, xs = np.nonzero(hole)
  error = np.abs(field[ys, xs] - np.stack([ys - 10, xs - 55], -1)).sum(-1)
  assert (error == 0).mean() > 0.99
  # Pixels whose patch does not touch the hole point at themselves.
  assert (field[:10, :10] == np.stack(np.mgrid[:10, :10], -1)).all()


def test_hole_in_a_periodic_texture_is_filled_with_the_texture():
  img = _periodic(72, 72)
  hole = _box(72, 72, 28, 44, 26, 46)
  out = patchmatch.inpaint(img, hole)
  _assert_fill_from_known(out, img, hole)
  ours = np.abs(out[hole].astype(int) - img[hole]).mean()
  telea = cv2.inpaint(img, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
  theirs = np.abs(telea[hole].astype(int) - img[hole]).mean()
  assert theirs > 40  # random texture: a diffusion fill is grey mush
  assert ours < 0.1 * theirs, (ours, theirs)
  # The fill never looks at what was in the hole.
  scrambled = img.copy()
  scrambled[hole] = np.random.default_rng(9).integers(0, 256, scrambled[hole].shape)
  np.testing.assert_array_equal(patchmatch.inpaint(scrambled, hole), out)


def test_holes_touching_the_border():
  img = _periodic(64, 80, seed=1)
  hole = _box(64, 80, 0, 12, 0, 20) | _box(64, 80, 56, 64, 0, 80)  # a corner and a full edge
  out = patchmatch.inpaint(img, hole)
  _assert_fill_from_known(out, img, hole)
  ours = np.abs(out[hole].astype(int) - img[hole]).mean()
  telea = cv2.inpaint(img, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
  assert ours < 0.25 * np.abs(telea[hole].astype(int) - img[hole]).mean()


def test_deterministic_for_a_seed_and_batch_independent():
  rng = np.random.default_rng(2)
  imgs = rng.integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
  holes = np.stack([_box(40, 48, 10, 22, 12, 30), _box(40, 48, 25, 40, 0, 9)])
  batch = patchmatch.inpaint(imgs, holes, seed=5)
  np.testing.assert_array_equal(batch, patchmatch.inpaint(imgs, holes, seed=5))
  # Each image of a batch comes out as it does alone (randomness is per pixel, not per batch).
  for i in range(2):
    np.testing.assert_array_equal(batch[i], patchmatch.inpaint(imgs[i], holes[i], seed=5))
  other = patchmatch.inpaint(imgs, holes, seed=6)
  assert not np.array_equal(batch, other)
  _assert_fill_from_known(other[0], imgs[0], holes[0])


def test_batch_independent_on_photos_at_three_levels():
  """Photos with the evaluation's free-form strokes, 3 pyramid levels: a batch's float fill is
  each image's alone, bit for bit.

  Before XLA's reduces were replaced by fixed-order adds (_pairwise_sum), the coarse levels'
  fills differed in the last bits between a batch of 2 and one image (the patch distances and
  the vote's sigma were reduced in an order that depends on the array's shape); at 256x256 such
  differences flipped matches and changed the uint8 output (experiments/patchmatch/README.md).
  """
  ml_collections = pytest.importorskip("ml_collections")
  from flowinpaint.data import pipeline
  batch = pipeline.eval_batch(ml_collections.ConfigDict({"dataset": "embedded"}), num_images=2,
                              image_size=96, seed=2024, mask_kind="free_form")
  imgs = np.clip(np.rint((batch["image"] + 1.0) * 127.5), 0, 255).astype(np.uint8)
  holes = batch["mask"][..., 0] > 0.5
  assert holes.any(axis=(1, 2)).all() and len({int(m.sum()) for m in holes}) == 2
  options = dict(patch_size=7, levels=3, iterations=2, pm_iterations=2, search_radius=16, seed=0)
  together = patchmatch._complete(imgs, holes, raw=True, **options)
  for i in range(2):
    alone = patchmatch._complete(imgs[i:i + 1], holes[i:i + 1], raw=True, **options)
    np.testing.assert_array_equal(together[i], alone[0])
  out = patchmatch.inpaint(imgs, holes, levels=3, iterations=2)
  _assert_fill_from_known(out[1], imgs[1], holes[1])


@pytest.mark.parametrize("shape,hole_at", [
    ((1, 1), None), ((2, 2), (0, 1)), ((3, 5), (1, 2)), ((1, 9), (0, 4)), ((9, 1), (8, 0)),
    ((6, 7), (slice(0, 6), 3)),  # a full column: nothing but half-known patches
])
def test_tiny_images(shape, hole_at):
  img = np.random.default_rng(3).integers(0, 256, shape + (3,), dtype=np.uint8)
  hole = np.zeros(shape, bool)
  if hole_at is not None:
    hole[hole_at] = True
  out = patchmatch.inpaint(img, hole)
  assert out.shape == img.shape and out.dtype == np.uint8
  if hole_at is None:
    np.testing.assert_array_equal(out, img)
  else:
    _assert_fill_from_known(out, img, hole)


def test_grayscale_and_channel_layouts():
  img = _periodic(40, 40)[..., 0]
  hole = _box(40, 40, 14, 26, 14, 26)
  flat = patchmatch.inpaint(img, hole)
  assert flat.shape == (40, 40)
  _assert_fill_from_known(flat, img, hole)
  np.testing.assert_array_equal(patchmatch.inpaint(img[..., None], hole)[..., 0], flat)
  batch = patchmatch.inpaint(img[None], hole[None])  # [N, H, W] without channels
  np.testing.assert_array_equal(batch[0], flat)


def test_all_hole_and_bad_arguments_are_clear_errors():
  img = np.zeros((8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match="covers the whole image"):
    patchmatch.inpaint(img, np.ones((8, 8), bool))
  with pytest.raises(ValueError, match="covers the whole image 1"):
    patchmatch.inpaint(np.zeros((2, 8, 8, 3), np.uint8),
                       np.stack([_box(8, 8, 0, 2, 0, 2), np.ones((8, 8), bool)]))
  with pytest.raises(ValueError, match="patch_size must be an odd integer"):
    patchmatch.inpaint(img, _box(8, 8, 0, 2, 0, 2), patch_size=4)
  with pytest.raises(ValueError, match="uint8"):
    patchmatch.inpaint(img.astype(np.float32), _box(8, 8, 0, 2, 0, 2))
  with pytest.raises(ValueError, match="must match"):
    patchmatch.inpaint(img, np.zeros((8, 9), bool))
  for bad in ({"levels": 0}, {"iterations": 0}, {"pm_iterations": -1}, {"search_radius": 0},
              {"seed": 1.5}):
    with pytest.raises(ValueError, match=next(iter(bad))):
      patchmatch.check_options(**bad)


def test_auto_levels():
  assert patchmatch.auto_levels(256, 256) == 4  # 256, 128, 64, 32 (>= 4 patches of 7)
  assert patchmatch.auto_levels(512, 300) == 4
  assert patchmatch.auto_levels(20, 2000) == 1
  assert patchmatch.auto_levels(2048, 2048) == 7


def test_guide_keeps_copied_patches_to_the_colours_around_the_hole():
  """The coffee photo with the evaluation's free-form strokes: plain PatchMatch copies the white
  cup rim into the wood above the cup; the guide term (Telea's fill's patch means near the edge
  of the hole) keeps the copies to the wood's colours: +2.1 dB in the hole when measured."""
  ml_collections = pytest.importorskip("ml_collections")
  from flowinpaint.data import pipeline
  batch = pipeline.eval_batch(ml_collections.ConfigDict({"dataset": "embedded"}), num_images=8,
                              image_size=128, seed=2024, mask_kind="free_form")
  img = np.clip(np.rint((batch["image"][2] + 1.0) * 127.5), 0, 255).astype(np.uint8)
  hole = batch["mask"][2, ..., 0] > 0.5

  def hole_psnr(out):
    err = (out.astype(np.float64) - img)[hole]
    return 10 * np.log10(255.0 ** 2 / np.mean(err ** 2))

  plain = patchmatch.inpaint(img, hole, levels=3, guide_weight=0.0)
  guided = patchmatch.inpaint(img, hole, levels=3)
  assert hole_psnr(guided) > hole_psnr(plain) + 1.0, (hole_psnr(guided), hole_psnr(plain))
  _assert_fill_from_known(guided, img, hole)
  with pytest.raises(ValueError, match="guide_weight must be a finite number >= 0"):
    patchmatch.inpaint(img, hole, guide_weight=-1.0)
