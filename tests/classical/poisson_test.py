"""GLCIC post-processing: outside pixels unchanged, completion placed where it was, Poisson-blended."""

import cv2
import numpy as np
import pytest

from flowinpaint.classical.poisson import glcic_postprocess


def _image(h=64, w=80):
  yy, xx = np.mgrid[0:h, 0:w]
  return np.stack([xx * 2 + yy, 100 + 50 * np.sin(xx / 5.0) + yy, 60 + 40 * np.cos(yy / 4.0) + xx],
                  -1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("box", [(10, 30, 12, 40), (11, 32, 13, 42), (0, 20, 0, 25),
                                 (40, 64, 50, 80)])
def test_outside_pixels_are_bit_identical(box):
  image = _image()
  rng = np.random.default_rng(0)
  completed = rng.integers(0, 256, image.shape, dtype=np.uint8)
  hole = np.zeros(image.shape[:2], bool)
  y0, y1, x0, x1 = box
  hole[y0:y1, x0:x1] = True
  out = glcic_postprocess(image, completed, hole)
  assert out.dtype == np.uint8 and out.shape == image.shape
  np.testing.assert_array_equal(out[~hole], image[~hole])
  assert not np.array_equal(out[hole], image[hole])


def test_completion_is_placed_where_it_was():
  # A bright dot of the completion must land on its own pixel (no shift by the clone centre).
  image = np.full((64, 80, 3), 100, np.uint8)
  for y0, y1, x0, x1 in ((10, 30, 12, 40), (10, 31, 12, 41), (11, 30, 13, 40)):
    completed = image.copy()
    completed[20, 25] = 250
    hole = np.zeros((64, 80), bool)
    hole[y0:y1, x0:x1] = True
    out = glcic_postprocess(image, completed, hole)
    assert np.unravel_index(np.argmax(out[..., 0]), out.shape[:2]) == (20, 25)


def test_colours_follow_the_border():
  # A completion that is right up to a constant offset is shifted back to the surroundings'
  # colours: Poisson blending keeps gradients, the border sets the level.
  image = _image()
  hole = np.zeros(image.shape[:2], bool)
  hole[20:40, 20:50] = True
  completed = np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8)
  completed[~hole] = image[~hole]
  out = glcic_postprocess(image, completed, hole)
  before = np.abs(completed[hole].astype(int) - image[hole]).mean()
  after = np.abs(out[hole].astype(int) - image[hole]).mean()
  assert after < before / 3


def test_matches_the_two_opencv_steps():
  image = _image()
  rng = np.random.default_rng(1)
  completed = rng.integers(0, 256, image.shape, dtype=np.uint8)
  hole = np.zeros(image.shape[:2], np.uint8)
  hole[5:25, 30:61] = 1
  # As inpaint.lua: both steps on the completion composited with the input.
  composited = np.where(hole[..., None] > 0, completed, image)
  filled = cv2.inpaint(composited, hole * 255, 1, cv2.INPAINT_TELEA)
  x, y, w, h = cv2.boundingRect(hole)
  expected = cv2.seamlessClone(composited, filled, hole * 255, (x + w // 2, y + h // 2),
                               cv2.NORMAL_CLONE)
  expected[hole == 0] = image[hole == 0]
  np.testing.assert_array_equal(glcic_postprocess(image, completed, hole[..., None] > 0), expected)


def test_no_hole_and_bad_inputs():
  image = _image()
  out = glcic_postprocess(image, image[::-1].copy(), np.zeros(image.shape[:2], bool))
  np.testing.assert_array_equal(out, image)
  with pytest.raises(ValueError, match="uint8"):
    glcic_postprocess(image.astype(np.float32), image, np.zeros(image.shape[:2], bool))
  with pytest.raises(ValueError, match="does not match"):
    glcic_postprocess(image, image, np.zeros((3, 3), bool))
