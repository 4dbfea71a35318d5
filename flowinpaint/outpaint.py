"""Outpainting: grow the canvas and let an inpainter fill the new border (the border is the hole).

  margins = parse_margins("10%,0,10%,0", width, height)      # left, top, right, bottom
  margins = margins_for_aspect(width, height, "16:9")          # the smallest 16:9 canvas
  out, steps = outpaint(inpainter, rgb, margins)

Any inpainter works (a method, a checkpoint; models trained with the 'outpaint' mask kind of
flowinpaint.data.masks do best). A large extension runs in steps: each step grows every side by
at most `step` (STEP = 25%) of the current canvas's width (left, right) or height (top,
bottom), and the next step extends the previous result. So one new band is at most
step / (1 + step) = 20% of the canvas it is filled in, inside the 5-25% band widths the
'outpaint' mask kind trains on, and every band has the photo (or an earlier band) beside it.

The original pixels sit at (top, left) of the result, bit for bit: each step composites only
inside its own new border.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Optional

import cv2
import numpy as np

# Largest growth of one side in one step, as a fraction of the current canvas side.
STEP = 0.25
SIDES = ("left", "top", "right", "bottom")


@dataclasses.dataclass(frozen=True)
class Margins:
  """Pixels to add on each side."""
  left: int = 0
  top: int = 0
  right: int = 0
  bottom: int = 0

  def __post_init__(self):
    for side in SIDES:
      if getattr(self, side) < 0:
        raise ValueError(f"{side} margin must be >= 0, got {getattr(self, side)}")

  def any(self) -> bool:
    return any(getattr(self, s) for s in SIDES)

  def size(self, width: int, height: int) -> tuple[int, int]:
    """(width, height) of a canvas of `width` x `height` grown by these margins."""
    return width + self.left + self.right, height + self.top + self.bottom

  def __str__(self) -> str:
    return ",".join(str(getattr(self, s)) for s in SIDES)


def _round(x: float) -> int:
  """Half up (12.5% of 20 px is 3 px), not Python's half to even."""
  return int(math.floor(x + 0.5))


def _parse_one(text: str, side_length: int, what: str) -> int:
  text = text.strip()
  m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(%?)", text)
  if not m:
    raise ValueError(f"{what} {text!r} is neither pixels (e.g. 64) nor a percentage (e.g. 25%)")
  value, percent = float(m.group(1)), m.group(2) == "%"
  if percent:
    return _round(value / 100.0 * side_length)
  if value != int(value):
    raise ValueError(f"{what} {text!r}: pixels are whole numbers (or add % for a fraction)")
  return int(value)


def parse_margins(text: str, width: int, height: int) -> Margins:
  """'L,T,R,B' (or 'A' for every side, or 'H,V' for left/right and top/bottom) -> Margins.

  Each value is pixels (64) or a percentage (25%) of the image's width (left, right) or height
  (top, bottom). Raises ValueError naming the bad part.
  """
  parts = [p for p in text.split(",")]
  if len(parts) == 1:
    parts = parts * 4
  elif len(parts) == 2:
    parts = [parts[0], parts[1], parts[0], parts[1]]
  elif len(parts) != 4:
    raise ValueError(f"{text!r} has {len(parts)} values; give L,T,R,B (4 values), H,V (2) or one "
                     "for every side")
  lengths = (width, height, width, height)
  return Margins(*(_parse_one(p, n, f"{side} margin")
                   for p, n, side in zip(parts, lengths, SIDES)))


def parse_aspect(text: str) -> float:
  """'16:9', '4:3', '1.5' -> width / height (> 0). Raises ValueError."""
  m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?::\s*(\d+(?:\.\d*)?|\.\d+)\s*)?", text)
  if not m:
    raise ValueError(f"aspect ratio {text!r} is not W:H (e.g. 16:9) or a number (e.g. 1.5)")
  w = float(m.group(1))
  h = float(m.group(2)) if m.group(2) is not None else 1.0
  if w <= 0 or h <= 0:
    raise ValueError(f"aspect ratio {text!r} must be positive")
  return w / h


def margins_for_aspect(width: int, height: int, aspect: str | float) -> Margins:
  """The smallest growth that gives the canvas `aspect` (width / height, or 'W:H'), centred
  (an odd extra pixel goes right or bottom). No margins when the image already has it."""
  ratio = parse_aspect(aspect) if isinstance(aspect, str) else float(aspect)
  if ratio <= 0:
    raise ValueError(f"aspect ratio must be positive, got {ratio}")
  if ratio > width / height:
    extra = max(_round(height * ratio) - width, 0)
    return Margins(left=extra // 2, right=extra - extra // 2)
  extra = max(_round(width / ratio) - height, 0)
  return Margins(top=extra // 2, bottom=extra - extra // 2)


def plan_steps(width: int, height: int, margins: Margins, step: float = STEP) -> list[Margins]:
  """The margins of each step: every side grows by at most ceil(step * current side) (at least
  one pixel) per step until it has its margin; step 0 means one step."""
  if step < 0:
    raise ValueError(f"step must be >= 0, got {step}")
  left = {s: getattr(margins, s) for s in SIDES}
  steps = []
  w, h = width, height
  while any(left.values()):
    grow = {}
    for s in SIDES:
      side = w if s in ("left", "right") else h
      cap = max(1, math.ceil(step * side)) if step > 0 else left[s]
      grow[s] = min(left[s], cap)
      left[s] -= grow[s]
    m = Margins(**grow)
    steps.append(m)
    w, h = m.size(w, h)
  return steps


def extend_canvas(rgb: np.ndarray, margins: Margins) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 canvas [H', W', 3], bool hole [H', W']): `rgb` at (top, left), the new border is
  the hole and holds the nearest edge pixel (inpainters ignore hole content; this keeps the
  canvas free of a colour that a method reading across the border could bleed in)."""
  rgb = np.asarray(rgb)
  canvas = cv2.copyMakeBorder(rgb, margins.top, margins.bottom, margins.left, margins.right,
                              cv2.BORDER_REPLICATE)
  hole = np.ones(canvas.shape[:2], bool)
  h, w = rgb.shape[:2]
  hole[margins.top:margins.top + h, margins.left:margins.left + w] = False
  return canvas, hole


def extend_plane(plane: np.ndarray, margins: Margins, value: int) -> np.ndarray:
  """A [H, W] plane (an alpha channel) grown by `margins`, new pixels `value`."""
  return np.pad(plane, ((margins.top, margins.bottom), (margins.left, margins.right)),
                constant_values=value)


def outpaint(inpaint: Callable[[np.ndarray, np.ndarray], np.ndarray], rgb: np.ndarray,
             margins: Margins, *, hole: Optional[np.ndarray] = None,
             step: float = STEP) -> tuple[np.ndarray, list[Margins]]:
  """Grows `rgb` by `margins` and fills the new border with `inpaint`, in steps.

  Args:
    inpaint: `(uint8 [H, W, 3], bool [H, W] hole) -> uint8 [H, W, 3]`, composited (an
      `inference.Inpainter`, or flowinpaint.highres around one).
    rgb: uint8 [H, W, 3].
    margins: pixels to add per side.
    hole: an optional bool [H, W] hole inside the photo, filled in the first step together
      with the first band.
    step: see `plan_steps`.

  Returns:
    (uint8 [H + top + bottom, W + left + right, 3], the margins of each step). The photo is at
    [top:top + H, left:left + W], unchanged outside `hole`.
  """
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
  h, w = rgb.shape[:2]
  if hole is not None and np.asarray(hole).shape != (h, w):
    raise ValueError(f"hole {np.asarray(hole).shape} does not match the image {(h, w)}")
  steps = plan_steps(w, h, margins, step)
  out = rgb
  for i, m in enumerate(steps):
    canvas, new = extend_canvas(out, m)
    if i == 0 and hole is not None:
      new[m.top:m.top + h, m.left:m.left + w] |= np.asarray(hole, bool)
    filled = np.asarray(inpaint(canvas, new), np.uint8)
    # The contract, enforced: outside this step's hole the canvas comes back as it was.
    out = np.where(new[..., None], filled, canvas)
  if not steps and hole is not None and np.asarray(hole).any():
    out = np.where(np.asarray(hole)[..., None], inpaint(rgb, np.asarray(hole, bool)), rgb)
  return np.ascontiguousarray(out, dtype=np.uint8), steps
