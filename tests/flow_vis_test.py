"""Flow colour-wheel pictures."""

import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.flow_vis import color_wheel, flow_to_rgb


def test_wheel_matches_middlebury_anchors():
  wheel = color_wheel()
  assert wheel.shape == (55, 3)
  np.testing.assert_array_equal(wheel[[0, 14, 15, 20, 21, 25, 36, 49, 54]], [
      [255, 0, 0], [255, 238, 0], [255, 255, 0], [43, 255, 0], [0, 255, 0], [0, 255, 255],
      [0, 0, 255], [255, 0, 255], [255, 0, 43]])


def test_zero_flow_is_white_and_directions_differ():
  flow = np.array([[[0., 0.], [1., 0.], [0., 1.], [-1., 0.], [0., -1.]]])
  rgb = flow_to_rgb(flow)
  assert rgb.dtype == np.uint8 and rgb.shape == (1, 5, 3)
  np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
  np.testing.assert_array_equal(rgb[0, 1], [255, 0, 0])  # right is red
  colours = {tuple(c) for c in rgb[0, 1:]}
  assert len(colours) == 4


def test_magnitude_sets_saturation():
  flow = np.zeros((4, 4, 2))
  flow[0, 0] = [2., 0.]
  flow[1, 1] = [1., 0.]
  rgb = flow_to_rgb(flow).astype(int)
  np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])
  np.testing.assert_array_equal(rgb[1, 1], [255, 127, 127])
  # Beyond max_magnitude: darkened, not wrapped.
  np.testing.assert_array_equal(flow_to_rgb(flow, max_magnitude=1.)[0, 0], [191, 0, 0])


def test_batched_per_image_normalisation_and_jax_input():
  rng = np.random.default_rng(0)
  flow = rng.normal(size=(2, 3, 6, 5, 2))
  rgb = flow_to_rgb(jnp.asarray(flow))
  assert rgb.shape == (2, 3, 6, 5, 3)
  # Each image is normalised by its own maximum: scaling one image leaves its picture alone.
  scaled = flow.copy()
  scaled[1, 2] *= 7.
  np.testing.assert_array_equal(flow_to_rgb(scaled), rgb)
  # A fixed max_magnitude is shared, so doubling flow and magnitude gives the same picture.
  np.testing.assert_array_equal(flow_to_rgb(2 * flow, max_magnitude=6.),
                                flow_to_rgb(flow, max_magnitude=3.))


def test_non_finite_is_black_and_bad_shape_raises():
  flow = np.zeros((2, 2, 2))
  flow[0, 0] = [np.nan, 0.]
  flow[1, 1] = [1., 1.]
  rgb = flow_to_rgb(flow)
  np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])
  assert rgb[1, 1].sum() > 0
  with pytest.raises(ValueError):
    flow_to_rgb(np.zeros((4, 4, 3)))
