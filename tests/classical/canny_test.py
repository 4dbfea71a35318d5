"""The JAX Canny detector against scikit-image's `feature.canny` (what EdgeConnect's code calls)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import color, data, feature

from flowinpaint.classical import canny as canny_lib
from flowinpaint.classical.canny import canny, rgb_to_gray


def _photos(size: int = 96) -> np.ndarray:
  """Three bundled photos, a size x size crop of each: uint8 [3, size, size, 3]."""
  crops = [data.astronaut()[40:40 + size, 170:170 + size],
           data.coffee()[100:100 + size, 200:200 + size],
           data.chelsea()[60:60 + size, 120:120 + size]]
  return np.stack(crops)


def _hole(size: int) -> np.ndarray:
  hole = np.zeros((size, size), bool)
  hole[size // 4:size // 2 + 5, size // 3:3 * size // 4] = True
  hole[3 * size // 4:, :size // 5] = True
  return hole


def test_gray_is_skimage_rgb2gray():
  rgb = _photos()
  ours = np.asarray(rgb_to_gray(jnp.asarray(rgb, jnp.float32) / 255.0))[..., 0]
  np.testing.assert_allclose(ours, color.rgb2gray(rgb), atol=3e-7)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_photos_match_skimage_exactly(sigma):
  rgb = _photos()
  gray64 = color.rgb2gray(rgb)
  hole = _hole(rgb.shape[1])
  image = jnp.asarray(rgb, jnp.float32) / 127.5 - 1.0  # as the models receive it
  gray = rgb_to_gray((image + 1.0) / 2.0)
  known = jnp.asarray(~hole, jnp.float32)[None, ..., None].repeat(3, axis=0)
  full = np.asarray(canny(gray, sigma=sigma))[..., 0]
  masked = np.asarray(canny(gray, sigma=sigma, mask=known))[..., 0]
  for i in range(len(rgb)):
    want_full = feature.canny(gray64[i], sigma=sigma)
    want_masked = feature.canny(gray64[i], sigma=sigma, mask=~hole)
    assert want_full.sum() > 100 and want_masked.sum() > 100  # real edges, not an empty map
    np.testing.assert_array_equal(full[i] > 0.5, want_full)
    np.testing.assert_array_equal(masked[i] > 0.5, want_masked)
  assert set(np.unique(full)) <= {0.0, 1.0}


def test_noise_and_thresholds_match_skimage():
  rng = np.random.default_rng(3)
  images = rng.random((2, 48, 40))
  for low, high in ((0.1, 0.2), (0.05, 0.3)):
    out = np.asarray(canny(jnp.asarray(images, jnp.float32), sigma=1.0, low_threshold=low,
                           high_threshold=high))
    for i in range(2):
      want = feature.canny(images[i], sigma=1.0, low_threshold=low, high_threshold=high)
      np.testing.assert_array_equal(out[i] > 0.5, want)


def test_the_hole_content_does_not_matter():
  rgb = _photos(64)[:1]
  hole = _hole(64)
  noisy = rgb.copy()
  noisy[0][hole] = np.random.default_rng(0).integers(0, 256, (hole.sum(), 3))
  known = jnp.asarray(~hole, jnp.float32)[None, ..., None]
  a = canny(rgb_to_gray(jnp.asarray(rgb, jnp.float32) / 255.0), sigma=2.0, mask=known)
  b = canny(rgb_to_gray(jnp.asarray(noisy, jnp.float32) / 255.0), sigma=2.0, mask=known)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # No edge inside the hole or next to it (skimage erodes the known region by one pixel).
  grown = ndimage.binary_dilation(hole, np.ones((3, 3), bool))
  assert not np.asarray(a)[0, ..., 0][grown].any()


def _hysteresis_reference(low: np.ndarray, high: np.ndarray) -> np.ndarray:
  """scipy: 8-connected components of `low` that contain a pixel of `high`."""
  out = np.zeros_like(low)
  for i in range(len(low)):
    labels, _ = ndimage.label(low[i], np.ones((3, 3), bool))
    good = np.unique(labels[high[i] & low[i]])
    out[i] = np.isin(labels, good[good > 0])
  return out


def test_hysteresis_is_connected_components():
  rng = np.random.default_rng(0)
  low = rng.random((3, 40, 50)) < 0.45  # near the percolation threshold: long, winding groups
  high = low & (rng.random(low.shape) < 0.01)
  got = np.asarray(jax.jit(canny_lib._hysteresis)(jnp.asarray(low), jnp.asarray(high)))
  want = _hysteresis_reference(low, high)
  assert 0 < want.sum() < low.sum()
  np.testing.assert_array_equal(got, want)


def test_a_long_spiral_is_kept_whole_from_one_seed():
  # One 8-connected path of ~900 pixels with a single strong pixel at its inner end.
  size = 64
  low = np.zeros((1, size, size), bool)
  top, left, bottom, right = 1, 1, size - 2, size - 2
  while top <= bottom and left <= right:
    low[0, top, left:right + 1] = True
    low[0, top:bottom + 1, right] = True
    low[0, bottom, left:right + 1] = True
    low[0, top + 2:bottom + 1, left] = True
    top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    if top <= bottom:
      low[0, top - 1, left] = False
  high = np.zeros_like(low)
  ys, xs = np.nonzero(low[0])
  high[0, ys[-1], xs[-1]] = True
  got = np.asarray(canny_lib._hysteresis(jnp.asarray(low), jnp.asarray(high)))
  np.testing.assert_array_equal(got, _hysteresis_reference(low, high))


def test_thresholds_must_be_ordered():
  with pytest.raises(ValueError, match="low_threshold"):
    canny(jnp.zeros((1, 8, 8, 1)), low_threshold=0.3, high_threshold=0.2)
