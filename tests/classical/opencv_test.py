"""Tests for the OpenCV Telea / NS wrapper."""

import numpy as np
import pytest

from flowinpaint.classical.opencv import inpaint_opencv


def _smooth_image(h, w, channels=3):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  planes = [(xx / w) * 255, (yy / h) * 255, ((xx + yy) / (h + w)) * 255][:channels]
  img = np.stack(planes, axis=-1).round().astype(np.uint8)
  return img if channels > 1 else img[..., 0]


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_fills_hole_and_keeps_the_rest(method):
  img = _smooth_image(33, 51)
  mask = np.zeros((33, 51), bool)
  mask[10:20, 15:30] = True
  damaged = img.copy()
  damaged[mask] = 0
  out = inpaint_opencv(damaged, mask, method=method, radius=3)
  assert out.shape == img.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[~mask], damaged[~mask])
  # A smooth ramp is easy: the fill is close to the truth, far from the black hole.
  err = np.abs(out[mask].astype(int) - img[mask].astype(int)).mean()
  assert err < 12, err


def test_grayscale_and_01_mask():
  img = _smooth_image(20, 17, channels=1)
  mask = np.zeros((20, 17), np.uint8)
  mask[5:9, 5:9] = 1
  out = inpaint_opencv(img, mask, method="telea")
  assert out.shape == (20, 17)
  np.testing.assert_array_equal(out[mask == 0], img[mask == 0])


def test_empty_mask_is_identity():
  img = _smooth_image(8, 9)
  out = inpaint_opencv(img, np.zeros((8, 9), bool))
  np.testing.assert_array_equal(out, img)


def test_bad_inputs():
  img = _smooth_image(8, 9)
  with pytest.raises(ValueError, match="method"):
    inpaint_opencv(img, np.zeros((8, 9), bool), method="nope")
  with pytest.raises(ValueError, match="does not match"):
    inpaint_opencv(img, np.zeros((9, 8), bool))
  with pytest.raises(ValueError, match="uint8"):
    inpaint_opencv(img.astype(np.float32), np.zeros((8, 9), bool))
