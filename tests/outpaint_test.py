"""flowinpaint.outpaint: margins, aspect ratios, steps, and the photo kept bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from flowinpaint import inference
from flowinpaint import outpaint
from flowinpaint.outpaint import Margins


def _photo(h: int = 30, w: int = 40, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class Recorder:
  """An inpainter that fills the hole with one grey and records each call's canvas and hole."""

  def __init__(self, value: int = 77):
    self.value = value
    self.calls: list[tuple[np.ndarray, np.ndarray]] = []

  def __call__(self, rgb, hole):
    self.calls.append((rgb.copy(), hole.copy()))
    return inference.composite(np.full_like(rgb, self.value), rgb, hole)


@pytest.mark.parametrize("text, expected", [
    ("10,0,20,5", Margins(10, 0, 20, 5)),
    ("8", Margins(8, 8, 8, 8)),
    ("4,6", Margins(4, 6, 4, 6)),
    ("25%,10%,0,50%", Margins(10, 3, 0, 15)),  # % of the width (40) / height (30)
    (" 12 , 0 , 0 , 0 ", Margins(12, 0, 0, 0)),
    ("12.5%", Margins(5, 4, 5, 4)),  # 3.75 rounds to 4
])
def test_parse_margins(text, expected):
  assert outpaint.parse_margins(text, 40, 30) == expected


@pytest.mark.parametrize("text, message", [
    ("1,2,3", "3 values"),
    ("a", "neither pixels"),
    ("-4", "neither pixels"),
    ("2.5", "whole numbers"),
])
def test_parse_margins_errors_name_the_problem(text, message):
  with pytest.raises(ValueError, match=message):
    outpaint.parse_margins(text, 40, 30)


def test_margins_for_aspect():
  assert outpaint.margins_for_aspect(40, 30, "16:9") == Margins(left=6, right=7)  # 53x30
  assert outpaint.margins_for_aspect(40, 30, "1:1") == Margins(top=5, bottom=5)
  assert outpaint.margins_for_aspect(40, 30, 0.5) == Margins(top=25, bottom=25)
  assert outpaint.margins_for_aspect(40, 30, "4:3") == Margins()
  assert outpaint.margins_for_aspect(40, 30, "1.5") == Margins(left=2, right=3)
  for bad in ("16x9", "0:1", ":3"):
    with pytest.raises(ValueError, match="aspect"):
      outpaint.margins_for_aspect(40, 30, bad)


def test_plan_steps_caps_each_side_per_step_and_adds_up():
  steps = outpaint.plan_steps(40, 30, Margins(100, 0, 7, 30), step=0.25)
  # Left: 10 (of 40), then 25% of each grown width, until 100 are added.
  w, h = 40, 30
  for m in steps:
    assert m.left <= max(1, -(-w // 4)) and m.right <= max(1, -(-w // 4))
    assert m.top <= max(1, -(-h // 4)) and m.bottom <= max(1, -(-h // 4))
    w, h = m.size(w, h)
  assert (w, h) == (147, 60)
  assert sum(m.left for m in steps) == 100 and sum(m.right for m in steps) == 7
  assert sum(m.bottom for m in steps) == 30 and sum(m.top for m in steps) == 0
  assert steps[0] == Margins(10, 0, 7, 8)
  assert outpaint.plan_steps(40, 30, Margins(100, 0, 7, 30), step=0) == [Margins(100, 0, 7, 30)]
  assert outpaint.plan_steps(40, 30, Margins()) == []


def test_extend_canvas_places_the_photo_and_marks_the_border():
  rgb = _photo()
  canvas, hole = outpaint.extend_canvas(rgb, Margins(3, 2, 5, 4))
  assert canvas.shape == (36, 48, 3) and hole.shape == (36, 48)
  np.testing.assert_array_equal(canvas[2:32, 3:43], rgb)
  assert not hole[2:32, 3:43].any()
  assert hole.sum() == 36 * 48 - 30 * 40
  np.testing.assert_array_equal(canvas[0, 0], rgb[0, 0])  # The nearest edge pixel, not black.


@pytest.mark.parametrize("side", outpaint.SIDES)
def test_each_side_alone(side):
  rgb = _photo()
  margins = Margins(**{side: 7})  # Within one step: 25% of 30 rows is 8.
  fill = Recorder()
  out, steps = outpaint.outpaint(fill, rgb, margins)
  h, w = 30 + margins.top + margins.bottom, 40 + margins.left + margins.right
  assert out.shape == (h, w, 3) and len(steps) == 1
  np.testing.assert_array_equal(out[margins.top:margins.top + 30, margins.left:margins.left + 40],
                                rgb)
  band = np.ones((h, w), bool)
  band[margins.top:margins.top + 30, margins.left:margins.left + 40] = False
  assert (out[band] == 77).all()
  np.testing.assert_array_equal(fill.calls[0][1], band)


def test_steps_extend_the_previous_result_and_keep_the_photo():
  rgb = _photo(20, 20)
  fill = Recorder()
  out, steps = outpaint.outpaint(fill, rgb, Margins(left=30, bottom=12), step=0.25)
  assert out.shape == (32, 50, 3)
  np.testing.assert_array_equal(out[0:20, 30:50], rgb)
  assert len(fill.calls) == len(steps) > 1
  # Each call's canvas holds the previous call's result, and its hole only the new band.
  prev = rgb
  for (canvas, hole), m in zip(fill.calls, steps):
    ph, pw = prev.shape[:2]
    np.testing.assert_array_equal(canvas[m.top:m.top + ph, m.left:m.left + pw], prev)
    assert hole.sum() == canvas.shape[0] * canvas.shape[1] - ph * pw
    prev = np.where(hole[..., None], 77, canvas).astype(np.uint8)


def test_a_hole_inside_the_photo_is_filled_in_the_first_step():
  rgb = _photo()
  hole = np.zeros((30, 40), bool)
  hole[5:9, 6:12] = True
  fill = Recorder()
  out, _ = outpaint.outpaint(fill, rgb, Margins(right=4), hole=hole)
  assert (out[5:9, 6:12] == 77).all()
  keep = np.zeros_like(hole)
  keep[:] = ~hole
  np.testing.assert_array_equal(out[:, :40][keep], rgb[keep])
  # No margins: the hole alone is inpainted.
  out, steps = outpaint.outpaint(Recorder(), rgb, Margins(), hole=hole)
  assert steps == [] and (out[5:9, 6:12] == 77).all() and out.shape == rgb.shape


def test_an_inpainter_that_touches_known_pixels_cannot_change_the_photo():
  rgb = _photo()
  out, _ = outpaint.outpaint(lambda x, m: np.zeros_like(x), rgb, Margins(2, 2, 2, 2))
  np.testing.assert_array_equal(out[2:32, 2:42], rgb)


def test_extend_plane():
  alpha = np.full((2, 3), 9, np.uint8)
  grown = outpaint.extend_plane(alpha, Margins(1, 0, 0, 2), 255)
  assert grown.shape == (4, 4) and (grown[:2, 1:] == 9).all() and grown[0, 0] == 255
  assert grown[3].tolist() == [255] * 4
