"""Tests of the synthetic moving-camera clips (exact flow and background)."""

import cv2
import numpy as np
import pytest

from flowinpaint.data import synthetic_video as sv


def _grid(h, w):
  return np.mgrid[0:h, 0:w][::-1].transpose(1, 2, 0).astype(np.float32)


def test_shapes_and_occluders():
  c = sv.make_clip("astronaut", 6, 48, 80, seed=3, object_size=0.4)
  assert c.frames.shape == c.background.shape == (6, 48, 80, 3)
  assert c.frames.dtype == np.uint8 and c.masks.dtype == bool
  assert c.masks.shape == (6, 48, 80)
  assert c.forward_flow.shape == c.backward_flow.shape == (5, 48, 80, 2)
  assert c.masks.any(axis=(1, 2)).all()
  np.testing.assert_array_equal(c.frames[~c.masks], c.background[~c.masks])


def test_seeded():
  a = sv.make_clip("chelsea", 4, 32, 48, seed=1)
  b = sv.make_clip("chelsea", 4, 32, 48, seed=1)
  np.testing.assert_array_equal(a.frames, b.frames)
  assert not np.array_equal(a.masks, sv.make_clip("chelsea", 4, 32, 48, seed=2).masks)


def test_integer_pan_flow_is_exact():
  c = sv.make_clip("astronaut", 5, 40, 64, seed=0, integer_pan=True, pan=0.5)
  g = _grid(40, 64)
  for t in range(4):
    np.testing.assert_array_equal(c.forward_flow[t], np.round(c.forward_flow[t]))
    pos = g + c.forward_flow[t]
    inside = ((pos[..., 0] >= 0) & (pos[..., 0] < 64) & (pos[..., 1] >= 0) & (pos[..., 1] < 40))
    x, y = pos[..., 0].astype(int).clip(0, 63), pos[..., 1].astype(int).clip(0, 39)
    np.testing.assert_array_equal(c.background[t + 1][y, x][inside], c.background[t][inside])


@pytest.mark.parametrize("zoom", [1.0, 1.2, 0.8])
def test_forward_and_backward_flows_are_inverse(zoom):
  c = sv.make_clip("coffee", 3, 40, 64, seed=0, zoom=zoom)
  g = _grid(40, 64)
  pos = g + c.forward_flow[0]
  back = cv2.remap(c.backward_flow[0], pos[..., 0], pos[..., 1], cv2.INTER_LINEAR)
  inside = ((pos[..., 0] >= 0) & (pos[..., 0] <= 63) & (pos[..., 1] >= 0) & (pos[..., 1] <= 39))
  assert inside.mean() > 0.5
  # cv2.remap interpolates with 1/32 px weights, hence the tolerance.
  np.testing.assert_allclose((c.forward_flow[0] + back)[inside], 0, atol=0.02)


def test_unknown_photo():
  with pytest.raises(ValueError, match="unknown photo"):
    sv.make_clip("nope", 2, 8, 8)


def test_stream_plays_the_clip_forward_then_back():
  c = sv.make_clip("coffee", 5, 24, 40, seed=4, object_size=0.5)
  got = list(sv.stream_clip("coffee", 12, 24, 40, period=5, seed=4, object_size=0.5))
  assert len(got) == 12
  order = [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]
  for (frame, background, mask), t in zip(got, order):
    np.testing.assert_array_equal(frame, c.frames[t])
    np.testing.assert_array_equal(background, c.background[t])
    np.testing.assert_array_equal(mask, c.masks[t])
