"""High-resolution inpainting: run an inpainter on a 12 MP photo without running it on 12 MP.

Models are trained at 128-512 px and their memory grows with the pixel count (contextual
attention quadratically), so a large photo is not given to them whole:

* 'crop': each connected hole region plus `crop_margin` pixels of context is cut out (boxes that
  overlap are merged), inpainted on its own - at full resolution, or downscaled to
  `model_size`**2 pixels when the crop is larger - and only its hole pixels are pasted back.
* 'resize': the whole photo is downscaled so its longest side is `resize_limit`, inpainted, and
  the prediction is upscaled and pasted back only inside the hole (a photo that is not larger
  runs whole).
* 'full': the inpainter runs on the whole photo.
* 'auto': 'full' when the longest side is at most `crop_trigger`; otherwise 'crop' when the crops
  cover at most AUTO_CROP_FRACTION of the photo, else 'resize' (one downscaled pass is cheaper
  than crops that cover most of the photo anyway, and sees the whole context).

The thresholds follow IOPaint's HD strategies (trigger 800, margin 128, resize limit 1280).
Whatever the strategy, the result has the input's size and every pixel outside the hole is the
input's, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import cv2
import numpy as np

from flowinpaint import inference

STRATEGIES = ("auto", "full", "crop", "resize")
CROP_TRIGGER = 800
CROP_MARGIN = 128
RESIZE_LIMIT = 1280
# Longest side a learned model is run at when a crop is larger (0: never downscale). 512 is the
# size DeepFill v2 ports run at (2x its 256 training size).
DEFAULT_MODEL_SIZE = 512
# 'auto' crops while the crops cover at most this fraction of the image.
AUTO_CROP_FRACTION = 0.5
# Crop sides are rounded up to a multiple of this (growing into the image), so a jitted model
# sees few distinct shapes and compiles few times.
CROP_QUANTUM = 64


@dataclasses.dataclass(frozen=True)
class Box:
  """A half-open pixel box [top, bottom) x [left, right)."""
  top: int
  left: int
  bottom: int
  right: int

  @property
  def shape(self) -> tuple[int, int]:
    return self.bottom - self.top, self.right - self.left

  @property
  def area(self) -> int:
    return (self.bottom - self.top) * (self.right - self.left)

  @property
  def slices(self) -> tuple[slice, slice]:
    return slice(self.top, self.bottom), slice(self.left, self.right)

  def overlaps(self, other: "Box") -> bool:
    return (self.top < other.bottom and other.top < self.bottom and self.left < other.right
            and other.left < self.right)

  def union(self, other: "Box") -> "Box":
    return Box(min(self.top, other.top), min(self.left, other.left),
               max(self.bottom, other.bottom), max(self.right, other.right))


def _merge(boxes: list[Box]) -> list[Box]:
  """Unions overlapping boxes until none overlap (a union can reach a third box)."""
  boxes = list(boxes)
  merged = True
  while merged:
    merged = False
    out: list[Box] = []
    for box in boxes:
      for i, other in enumerate(out):
        if box.overlaps(other):
          out[i] = other.union(box)
          merged = True
          break
      else:
        out.append(box)
    boxes = out
  return boxes


def _grow(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
  """Grows [lo, hi) to `size` (at most `limit`), centred, shifted to stay inside [0, limit)."""
  size = min(size, limit)
  extra = size - (hi - lo)
  if extra <= 0:
    return lo, hi
  lo = max(0, lo - extra // 2)
  hi = lo + size
  if hi > limit:
    lo, hi = limit - size, limit
  return lo, hi


def _quantize(box: Box, height: int, width: int, quantum: int) -> Box:
  if quantum <= 1:
    return box
  h, w = box.shape
  top, bottom = _grow(box.top, box.bottom, -(-h // quantum) * quantum, height)
  left, right = _grow(box.left, box.right, -(-w // quantum) * quantum, width)
  return Box(top, left, bottom, right)


def crop_boxes(hole: np.ndarray, margin: int = CROP_MARGIN, *,
               quantum: int = CROP_QUANTUM) -> list[Box]:
  """Boxes around the connected hole regions, `margin` px larger, clipped, non-overlapping.

  Every hole pixel lies in exactly one box, and each box holds whole regions only, so the crops
  can be inpainted independently and pasted back in any order.
  """
  hole = np.asarray(hole, bool)
  height, width = hole.shape
  n, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
  boxes = []
  for x, y, w, h, _ in stats[1:n].tolist():  # Label 0 is the background.
    boxes.append(Box(max(0, y - margin), max(0, x - margin), min(height, y + h + margin),
                     min(width, x + w + margin)))
  boxes = _merge(boxes)
  while True:
    # Rounding a box up can make it reach another region: merge again until stable.
    grown = _merge([_quantize(b, height, width, quantum) for b in boxes])
    if grown == boxes:
      return sorted(boxes, key=lambda b: (b.top, b.left))
    boxes = grown


def resolve_model_size(inpainter: inference.Inpainter, model_size: Optional[int]) -> int:
  """The side of the square pixel budget of one crop; 0 means any size (no downscaling).

  None picks: the inpainter's own `model_size` attribute if it has one, 0 for the classical
  methods (they have no training resolution), else DEFAULT_MODEL_SIZE.
  """
  if model_size is not None:
    return max(int(model_size), 0)
  own = getattr(inpainter, "model_size", None)
  if own is not None:
    return max(int(own), 0)
  if isinstance(inpainter, inference.ClassicalInpainter):
    return 0
  return DEFAULT_MODEL_SIZE


def choose_strategy(shape: Sequence[int], hole: np.ndarray, *, crop_margin: int = CROP_MARGIN,
                    crop_trigger: int = CROP_TRIGGER) -> str:
  """What 'auto' runs for an image of `shape` (H, W, ...) and this hole: full, crop or resize."""
  height, width = shape[:2]
  if max(height, width) <= crop_trigger:
    return "full"
  covered = sum(b.area for b in crop_boxes(hole, crop_margin))
  return "crop" if covered <= AUTO_CROP_FRACTION * height * width else "resize"


def _inpaint_scaled(inpainter: inference.Inpainter, rgb: np.ndarray, hole: np.ndarray,
                    scale: float) -> np.ndarray:
  """Inpaints a copy scaled by `scale` (if < 1) and returns the prediction upscaled back.

  The result is the raw prediction at full size; the caller pastes its hole pixels only.
  """
  height, width = hole.shape
  if scale >= 1:
    return inpainter(rgb, hole)
  h, w = max(1, round(height * scale)), max(1, round(width * scale))
  small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
  # A small pixel is a hole if any full-resolution hole pixel falls in it: the area average is
  # > 0 there. So every upscaled hole pixel reads from predicted content, not from the hole's old
  # (e.g. the removed object's) colours averaged into known pixels.
  small_hole = cv2.resize(hole.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
  # Two more pixels: bicubic upscaling reads two pixels either way, so a full-resolution hole
  # pixel is made of predicted pixels only.
  small_hole = cv2.dilate(small_hole.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
  pred = inpainter(small, small_hole)
  return cv2.resize(pred, (width, height), interpolation=cv2.INTER_CUBIC)


def inpaint_highres(inpainter: inference.Inpainter, rgb: np.ndarray, mask: np.ndarray, *,
                    strategy: str = "auto", model_size: Optional[int] = None,
                    crop_margin: int = CROP_MARGIN, crop_trigger: int = CROP_TRIGGER,
                    resize_limit: int = RESIZE_LIMIT) -> np.ndarray:
  """Inpaints a photo of any size with `inpainter` using a high-resolution strategy.

  Args:
    inpainter: any `inference.Inpainter` (uint8 HxWx3, bool HxW -> uint8 HxWx3).
    rgb: uint8 [H, W, 3].
    mask: [H, W] hole map (True / 1 / >127 = hole; see `inference.as_hole_mask`).
    strategy: 'auto' | 'full' | 'crop' | 'resize' (see the module docstring).
    model_size: a crop of more than model_size**2 pixels is downscaled to that many (aspect
      kept) and its prediction upscaled. None: see `resolve_model_size`; 0: crops always run at
      full resolution.
    crop_margin: context pixels around each hole region for 'crop'.
    crop_trigger: 'auto' runs 'full' up to this longest side.
    resize_limit: longest side of the downscaled copy for 'resize'.

  Returns:
    uint8 [H, W, 3]; pixels outside the hole are the input's, bit for bit.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
  for name, value in (("crop_margin", crop_margin), ("crop_trigger", crop_trigger),
                      ("resize_limit", resize_limit)):
    if value < (0 if name == "crop_margin" else 1):
      raise ValueError(f"{name} must be {'>= 0' if name == 'crop_margin' else '>= 1'}, "
                       f"got {value}")
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
  hole = inference.as_hole_mask(mask, rgb.shape[:2])
  if not hole.any():
    return rgb.copy()
  if strategy == "auto":
    strategy = choose_strategy(rgb.shape, hole, crop_margin=crop_margin,
                               crop_trigger=crop_trigger)
  if strategy == "full":
    pred = inpainter(rgb, hole)
  elif strategy == "resize":
    pred = _inpaint_scaled(inpainter, rgb, hole, resize_limit / max(rgb.shape[:2]))
  else:
    size = resolve_model_size(inpainter, model_size)
    pred = rgb.copy()
    for box in crop_boxes(hole, crop_margin):
      ys, xs = box.slices
      crop_hole = np.ascontiguousarray(hole[ys, xs])
      # The budget is an area, not a side: cost and memory grow with the pixel count, and a
      # long thin crop (a scratch across the photo) keeps more of its detail this way.
      scale = size / np.sqrt(crop_hole.size) if size else 1.0
      crop_pred = _inpaint_scaled(inpainter, np.ascontiguousarray(rgb[ys, xs]), crop_hole,
                                  scale)
      pred[ys, xs] = np.where(crop_hole[..., None], crop_pred, pred[ys, xs])
  # The last step, whatever ran: the input outside the hole, bit for bit.
  return inference.composite(np.asarray(pred, np.uint8), rgb, hole)
