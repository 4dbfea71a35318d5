"""Optical flow -> RGB picture with the Middlebury colour wheel (Baker et al., 2011).

Hue is the direction, saturation the magnitude relative to `max_magnitude`: zero flow is white,
flow at the maximum is fully saturated and beyond it darkened. Right (+u) is red, down (+v)
orange-yellow, left cyan-blue, up blue-violet (the usual Middlebury/FlowNet colours).
Non-finite vectors are black.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

# Number of hues between the six primary/secondary colours of the wheel.
_RY, _YG, _GC, _CB, _BM, _MR = 15, 6, 4, 11, 13, 6


def color_wheel() -> np.ndarray:
  """The 55 wheel colours, float [55, 3] in [0, 255]."""
  segments = []
  for n, start, end in ((_RY, (255, 0, 0), (255, 255, 0)), (_YG, (255, 255, 0), (0, 255, 0)),
                        (_GC, (0, 255, 0), (0, 255, 255)), (_CB, (0, 255, 255), (0, 0, 255)),
                        (_BM, (0, 0, 255), (255, 0, 255)), (_MR, (255, 0, 255), (255, 0, 0))):
    ramp = (255 * np.arange(n)) // n
    step = (np.asarray(end) - np.asarray(start)) // 255
    segments.append(np.asarray(start) + ramp[:, None] * step)
  return np.concatenate(segments).astype(np.float64)


def flow_to_rgb(flow: Any, max_magnitude: Optional[float] = None) -> np.ndarray:
  """Colour-codes flow vectors.

  Args:
    flow: [..., H, W, 2] as (u, v) = (dx, dy); numpy or jax array.
    max_magnitude: magnitude drawn fully saturated. None: each image's own maximum (over its
      H, W; leading axes are separate images).

  Returns:
    uint8 [..., H, W, 3].
  """
  flow = np.asarray(flow, np.float64)
  if flow.ndim < 3 or flow.shape[-1] != 2:
    raise ValueError(f'flow must be [..., H, W, 2], got {flow.shape}')
  finite = np.all(np.isfinite(flow), axis=-1)
  flow = np.where(finite[..., None], flow, 0.)
  u, v = flow[..., 0], flow[..., 1]
  rad = np.sqrt(u * u + v * v)
  if max_magnitude is None:
    scale = np.max(rad, axis=(-2, -1), keepdims=True)
  else:
    scale = np.asarray(float(max_magnitude))
  rad = rad / np.maximum(scale, np.finfo(np.float64).eps)

  wheel = color_wheel()
  ncols = len(wheel)
  angle = np.arctan2(-v, -u) / np.pi
  fk = (angle + 1) / 2 * (ncols - 1)
  k0 = np.floor(fk).astype(np.int64)
  k1 = (k0 + 1) % ncols
  frac = (fk - k0)[..., None]
  col = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.
  r = rad[..., None]
  col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
  rgb = np.floor(255 * col * finite[..., None])
  return rgb.astype(np.uint8)
