"""Hole masks for training and evaluation (host side, numpy; mask 1 = hole).

Every sampler takes an explicit `np.random.Generator`, so a mask is a pure function of the
generator's seed. `sample_masks` derives one generator per sample index from `(seed, index)`,
which makes any mask reproducible from those two integers alone (resume, multi-host, eval).

Sizes of the reference algorithms are given for 256x256 images; they are scaled by
`size / 256` so that small test images and large fine-tuning crops get masks of the same
relative size. Pass `reference_size=None` to use the numbers as pixels.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np

__all__ = [
    'MASK_KINDS',
    'binarize',
    'box_mask',
    'dilate',
    'eval_masks',
    'free_form_mask',
    'from_valid_mask',
    'glcic_box_mask',
    'outpaint_mask',
    'sample_mask',
    'sample_masks',
]


def _scales(height: int, width: int, reference_size: int | None) -> tuple[float, float]:
  if reference_size is None:
    return 1.0, 1.0
  return height / reference_size, width / reference_size


def _check_size(height: int, width: int) -> None:
  if height < 1 or width < 1:
    raise ValueError(f'mask size must be positive, got {height}x{width}')


def free_form_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    max_strokes: int = 3,
    min_vertices: int = 4,
    max_vertices: int = 11,
    mean_angle: float = 2 * math.pi / 5,
    angle_range: float = 2 * math.pi / 15,
    min_width: float = 12,
    max_width: float = 40,
    flip: bool = True,
    reference_size: int | None = 256,
) -> np.ndarray:
  """DeepFill v2 free-form brush strokes (`brush_stroke_mask`), float32 [H, W].

  Counts are inclusive: 1..max_strokes strokes, min_vertices..max_vertices vertices. The
  defaults reproduce the reference, whose `randint(1, 4)` and `randint(4, 12)` exclude their
  upper ends. Segment lengths follow clip(N(r, r/2), 0, 2r) with r = sqrt(H^2 + W^2) / 8, so
  they already scale with the image; brush widths U(min_width, max_width) are in units of a
  `reference_size` image. Unlike the reference (whose flips are discarded), `flip=True`
  really flips left-right and top-bottom, each with probability 1/2.
  """
  _check_size(height, width)
  if not 1 <= max_strokes:
    raise ValueError(f'max_strokes must be >= 1, got {max_strokes}')
  if not 1 <= min_vertices <= max_vertices:
    raise ValueError(f'need 1 <= min_vertices <= max_vertices, got {min_vertices}, {max_vertices}')
  sy, sx = _scales(height, width, reference_size)
  width_scale = math.sqrt(sy * sx)
  average_radius = math.sqrt(height**2 + width**2) / 8
  mask = np.zeros((height, width), np.uint8)
  for _ in range(int(rng.integers(1, max_strokes + 1))):
    num_vertices = int(rng.integers(min_vertices, max_vertices + 1))
    angle_min = mean_angle - rng.uniform(0, angle_range)
    angle_max = mean_angle + rng.uniform(0, angle_range)
    # Alternating turn direction makes the zig-zag strokes of the paper's Algorithm 1.
    angles = [
        2 * math.pi - rng.uniform(angle_min, angle_max) if i % 2 == 0
        else rng.uniform(angle_min, angle_max)
        for i in range(num_vertices)
    ]
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    vertices = [(x, y)]
    for angle in angles:
      # Python min/max: np.clip on scalars costs more than drawing the stroke.
      r = min(max(float(rng.normal(average_radius, average_radius / 2)), 0.0),
              2 * average_radius)
      x = int(min(max(x + r * math.cos(angle), 0), width - 1))
      y = int(min(max(y + r * math.sin(angle), 0), height - 1))
      vertices.append((x, y))
    brush = max(1, int(rng.uniform(min_width, max_width) * width_scale))
    for p, q in zip(vertices[:-1], vertices[1:]):
      cv2.line(mask, p, q, 1, thickness=brush)
    # Discs at the joints round the corners the straight segments leave open.
    for v in vertices:
      cv2.circle(mask, v, brush // 2, 1, thickness=-1)
  if flip:
    if rng.random() < 0.5:
      mask = mask[:, ::-1]
    if rng.random() < 0.5:
      mask = mask[::-1, :]
  return np.ascontiguousarray(mask, dtype=np.float32)


def box_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    max_box: tuple[float, float] = (128, 128),
    max_delta: float = 32,
    margin: float = 0,
    reference_size: int | None = 256,
) -> np.ndarray:
  """DeepFill `random_bbox` + `bbox2mask`, float32 [H, W].

  A `max_box` (h, w) box at a uniform position at least `margin` from the border, each side
  then shrunk at both ends by an integer in [0, max_delta // 2], so at 256x256 the hole sides
  lie in [96, 128]. All sizes are in units of a `reference_size` image.
  """
  _check_size(height, width)
  sy, sx = _scales(height, width, reference_size)
  box_h = min(height, max(1, round(max_box[0] * sy)))
  box_w = min(width, max(1, round(max_box[1] * sx)))
  margin_h, margin_w = round(margin * sy), round(margin * sx)
  if box_h + 2 * margin_h > height or box_w + 2 * margin_w > width:
    raise ValueError(
        f'box {box_h}x{box_w} with margin {margin_h},{margin_w} does not fit in {height}x{width}')
  delta_h = min(round(max_delta * sy) // 2, (box_h - 1) // 2)
  delta_w = min(round(max_delta * sx) // 2, (box_w - 1) // 2)
  top = int(rng.integers(margin_h, height - margin_h - box_h + 1))
  left = int(rng.integers(margin_w, width - margin_w - box_w + 1))
  dh = int(rng.integers(0, delta_h + 1))
  dw = int(rng.integers(0, delta_w + 1))
  mask = np.zeros((height, width), np.float32)
  mask[top + dh:top + box_h - dh, left + dw:left + box_w - dw] = 1
  return mask


def glcic_box_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    min_side: float = 96,
    max_side: float = 128,
    reference_size: int | None = 256,
) -> np.ndarray:
  """GLCIC training hole: one rectangle, each side uniform in [min_side, max_side], float32 [H, W].

  Sides are in units of a `reference_size` image (GLCIC: 96..128 of 256); the position is
  uniform over all placements that fit.
  """
  _check_size(height, width)
  sy, sx = _scales(height, width, reference_size)
  if not 0 < min_side <= max_side:
    raise ValueError(f'need 0 < min_side <= max_side, got {min_side}, {max_side}')
  lo_h, hi_h = max(1, round(min_side * sy)), min(height, round(max_side * sy))
  lo_w, hi_w = max(1, round(min_side * sx)), min(width, round(max_side * sx))
  if lo_h > hi_h or lo_w > hi_w:
    raise ValueError(f'sides {min_side}..{max_side} do not fit in {height}x{width}')
  box_h = int(rng.integers(lo_h, hi_h + 1))
  box_w = int(rng.integers(lo_w, hi_w + 1))
  top = int(rng.integers(0, height - box_h + 1))
  left = int(rng.integers(0, width - box_w + 1))
  mask = np.zeros((height, width), np.float32)
  mask[top:top + box_h, left:left + box_w] = 1
  return mask


def outpaint_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    min_band: float = 0.05,
    max_band: float = 0.25,
    max_sides: int = 4,
) -> np.ndarray:
  """Outpainting holes: bands along 1..max_sides sides of the image, float32 [H, W].

  The number of sides is uniform in 1..max_sides and the sides are distinct, drawn uniformly;
  each band's width is uniform in [min_band, max_band] of the image's width (left, right) or
  height (top, bottom), at least one pixel. Fractions, so the masks scale with the image. The
  defaults match the inpaint tool's --extend steps (flowinpaint.outpaint.STEP: a new band is at
  most 20% of the canvas it is filled in).
  """
  _check_size(height, width)
  if not 0 < min_band <= max_band < 0.5:
    raise ValueError(f'need 0 < min_band <= max_band < 0.5, got {min_band}, {max_band}')
  if not 1 <= max_sides <= 4:
    raise ValueError(f'max_sides must be in 1..4, got {max_sides}')
  mask = np.zeros((height, width), np.float32)
  sides = rng.choice(4, size=int(rng.integers(1, max_sides + 1)), replace=False)
  for side in sides.tolist():
    length = width if side in (0, 2) else height  # 0 left, 1 top, 2 right, 3 bottom
    band = max(1, int(round(rng.uniform(min_band, max_band) * length)))
    if side == 0:
      mask[:, :band] = 1
    elif side == 1:
      mask[:band] = 1
    elif side == 2:
      mask[:, width - band:] = 1
    else:
      mask[height - band:] = 1
  return mask


def _free_form_and_box(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  # DeepFill v2 trains on the union of a box and strokes (inpaint_model.py, build_graph).
  box = box_mask(rng, height, width)
  return np.maximum(box, free_form_mask(rng, height, width))


_SAMPLERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    'free_form': free_form_mask,
    'box': box_mask,
    'glcic_box': glcic_box_mask,
    'free_form_and_box': _free_form_and_box,
    'outpaint': outpaint_mask,
}
MASK_KINDS: tuple[str, ...] = tuple(_SAMPLERS)


def check_kind(kind: str) -> None:
  """Raises ValueError naming the valid kinds if `kind` is not one of MASK_KINDS."""
  if kind not in _SAMPLERS:
    raise ValueError(f'unknown mask kind {kind!r}; valid kinds: {", ".join(MASK_KINDS)}')


def sample_mask(rng: np.random.Generator, height: int, width: int, kind: str) -> np.ndarray:
  """One mask of `kind` (see MASK_KINDS) with default parameters, float32 [H, W]."""
  check_kind(kind)
  return _SAMPLERS[kind](rng, height, width)


def sample_masks(
    seed: int, indices: Sequence[int] | np.ndarray, height: int, width: int, kind: str
) -> np.ndarray:
  """Masks for sample `indices`, float32 [N, H, W, 1].

  Mask i comes from `np.random.default_rng([seed, i])` alone, so it does not depend on the
  batch it is in, the worker that made it, or the masks sampled before it.
  """
  check_kind(kind)
  indices = np.asarray(indices).reshape(-1)
  if seed < 0 or (indices.size and indices.min() < 0):
    raise ValueError('seed and indices must be non-negative')
  out = np.empty((indices.size, height, width, 1), np.float32)
  for n, i in enumerate(indices):
    out[n, ..., 0] = sample_mask(np.random.default_rng([seed, int(i)]), height, width, kind)
  return out


def eval_masks(
    num: int, height: int, width: int, *, seed: int = 2024, kind: str = 'free_form_and_box'
) -> np.ndarray:
  """The fixed evaluation mask set, float32 [num, H, W, 1]; identical on every call and machine.

  Mask i of a larger set equals mask i of a smaller one (same seed, size and kind).
  """
  return sample_masks(seed, np.arange(num), height, width, kind)


def binarize(array: np.ndarray) -> np.ndarray:
  """A mask in any common encoding -> float32 [H, W] with 1 = hole.

  Accepts [H, W] or [H, W, C]. bool: as is. Floats: > 0.5. uint8 (and other integers):
  > 127 (unsigned wider types: > max // 2) in any colour channel. With 2 or 4 channels the
  last one is alpha: colour is composited over black first, so a transparent background is
  not a hole and an opaque black one is not either (use the alpha channel yourself if it is
  the mask).
  """
  a = np.asarray(array)
  if a.ndim == 3:
    if a.shape[-1] in (2, 4):
      floating = a.dtype.kind in 'fb'
      full = 1.0 if floating else float(_int_max(a.dtype))
      threshold = 0.5 if floating else _int_threshold(a.dtype)
      color = a[..., :-1].astype(np.float64) * (a[..., -1:].astype(np.float64) / full)
      return np.any(color > threshold, axis=-1).astype(np.float32)
    if a.shape[-1] not in (1, 3):
      raise ValueError(f'mask must have 1, 2, 3 or 4 channels, got shape {a.shape}')
  elif a.ndim != 2:
    raise ValueError(f'mask must be [H, W] or [H, W, C], got shape {a.shape}')
  if a.dtype == np.bool_:
    hole = a
  elif a.dtype.kind == 'f':
    hole = a > 0.5
  elif a.dtype.kind in 'iu':
    hole = a > _int_threshold(a.dtype)
  else:
    raise ValueError(f'unsupported mask dtype {a.dtype}')
  if hole.ndim == 3:
    hole = np.any(hole, axis=-1)
  return hole.astype(np.float32)


def _int_max(dtype: np.dtype) -> int:
  # Signed arrays usually hold 0..255 data that went through numpy arithmetic.
  return np.iinfo(dtype).max if dtype.kind == 'u' else 255


def _int_threshold(dtype: np.dtype) -> int:
  return _int_max(dtype) // 2


def from_valid_mask(mask: np.ndarray) -> np.ndarray:
  """1 = valid (partial conv, alpha) -> 1 = hole, float32, same shape. Also its own inverse."""
  m = np.asarray(mask)
  if m.dtype == np.bool_:
    return (~m).astype(np.float32)
  return (1 - m).astype(np.float32)


def disk(radius: int) -> np.ndarray:
  """uint8 [2r+1, 2r+1]: 1 where x^2 + y^2 <= r^2 (skimage.morphology.disk's, without importing
  scikit-image, which takes ~0.4 s)."""
  r = np.arange(-radius, radius + 1)
  return (r[:, None] ** 2 + r[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
  """Grows the holes by a disc of radius `pixels` (shrinks them when negative).

  Accepts [H, W] or [..., H, W, 1] (batches, videos); returns float32 of the same shape.
  """
  m = np.asarray(mask)
  if m.ndim == 2:
    planes = m[None]
  elif m.ndim >= 3 and m.shape[-1] == 1:
    planes = m.reshape((-1,) + m.shape[-3:-1])
  else:
    raise ValueError(f'mask must be [H, W] or [..., H, W, 1], got shape {m.shape}')
  planes = (planes > 0.5).astype(np.uint8)
  if pixels != 0:
    kernel = disk(abs(int(pixels)))
    if pixels > 0:
      # Outside the image counts as valid, so dilation adds nothing from beyond the border.
      planes = np.stack([
          cv2.dilate(p, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for p in planes])
    else:
      # Replicated borders: a hole touching the image edge does not shrink from that edge.
      planes = np.stack([cv2.erode(p, kernel, borderType=cv2.BORDER_REPLICATE) for p in planes])
  return planes.astype(np.float32).reshape(m.shape)


def feather_weights(hole: np.ndarray, pixels: int) -> np.ndarray:
  """Blend weights for pasting a fill with a soft edge: 1 on the hole, falling linearly to 0 at
  `pixels` px outside it (Euclidean distance), 0 beyond. bool/float [H, W] -> float32 [H, W]."""
  hole = np.asarray(hole) > 0.5
  if pixels <= 0:
    return hole.astype(np.float32)
  # Distance of every pixel to the nearest hole pixel (0 on the hole).
  distance = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5)
  return np.clip(1.0 - distance / (pixels + 1.0), 0.0, 1.0).astype(np.float32)
