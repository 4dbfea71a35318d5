"""Tests for the trivial fills (mean colour, Telea) that evaluations report as a floor."""

import numpy as np
import pytest

from flowinpaint.classical import trivial_fills


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, (2, 12, 10, 3)).astype(np.float32)
  mask = np.zeros((2, 12, 10, 1), np.float32)
  mask[0, 2:6, 3:8] = 1
  mask[1, 5:11, 0:4] = 1
  return images, mask


def test_mean_fill_paints_each_hole_with_its_own_images_known_mean():
  images, mask = _batch()
  out = trivial_fills.mean_fill(images, mask)
  for i in range(2):
    hole = mask[i, ..., 0] > 0
    expected = images[i][~hole].mean(axis=0)  # Per channel, known pixels of image i only.
    np.testing.assert_allclose(out[i][hole], np.broadcast_to(expected, out[i][hole].shape),
                               atol=1e-6)
    np.testing.assert_array_equal(out[i][~hole], images[i][~hole])


def test_mean_fill_of_an_all_hole_image_is_mid_grey():
  images, _ = _batch()
  out = trivial_fills.mean_fill(images, np.ones((2, 12, 10, 1), np.float32))
  np.testing.assert_array_equal(out, np.zeros_like(images))


def test_telea_fill_keeps_known_pixels_and_continues_a_ramp():
  xx = np.linspace(-1, 1, 40, dtype=np.float32)
  ramp = np.broadcast_to(xx[None, :, None], (40, 40, 3))
  images = np.stack([ramp, ramp[..., :1].repeat(3, -1) * 0.5])
  mask = np.zeros((2, 40, 40, 1), np.float32)
  mask[:, 15:25, 15:25] = 1
  damaged = np.where(mask > 0, -1.0, images).astype(np.float32)
  out = trivial_fills.telea_fill(damaged, mask)
  assert out.shape == images.shape and out.dtype == np.float32
  np.testing.assert_array_equal(out[mask[..., 0] == 0], damaged[mask[..., 0] == 0])
  hole = mask[..., 0] > 0
  # A ramp diffused inward stays near the ramp: far closer than the damaged (black) hole
  # and than the mean colour, which ignores where in the hole a pixel is.
  err = np.abs(out[hole] - images[hole]).mean()
  mean_err = np.abs(trivial_fills.mean_fill(damaged, mask)[hole] - images[hole]).mean()
  assert err < 0.08 and err < mean_err / 2, (err, mean_err)


def test_telea_fill_takes_one_channel_images():
  images, mask = _batch()
  out = trivial_fills.telea_fill(images[..., :1], mask)
  assert out.shape == (2, 12, 10, 1)
  np.testing.assert_array_equal(out[mask[..., 0] == 0], images[..., :1][mask[..., 0] == 0])


def test_shape_errors():
  images, mask = _batch()
  with pytest.raises(ValueError, match=r"mask \[N, H, W, 1\]"):
    trivial_fills.mean_fill(images, mask[..., 0])
  with pytest.raises(ValueError, match="1 or 3 channels"):
    trivial_fills.telea_fill(images[..., :2], mask)
