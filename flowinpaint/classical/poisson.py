"""GLCIC's optional post-processing: fast-marching fill, then Poisson blending of the completion.

As the official `inpaint.lua` (satoshiiizuka/siggraph2017_inpainting): the hole is first filled
with OpenCV's Telea fast marching (radius 1), and the network's completion is Poisson-blended
into that image (`cv2.seamlessClone`, NORMAL_CLONE) over the hole, so its colours follow the hole
border. Finally the pixels outside the hole are pasted back, bit-identical to the input.

Placement: `seamlessClone` centres the mask's bounding box on the point given; we pass the
point that maps the box onto itself (`x + w // 2`, `y + h // 2` of OpenCV's bounding rectangle).
The Lua reference passes the box's centre rounded down, which shifts even-sized boxes by one
pixel. OpenCV clears the mask's outermost image row and column before cloning, so hole pixels
on the image border keep the Telea fill (as in the reference).
"""

from __future__ import annotations

import cv2
import numpy as np


def glcic_postprocess(image_uint8: np.ndarray, completed_uint8: np.ndarray,
                      mask_bool: np.ndarray) -> np.ndarray:
  """Telea (radius 1) + seamlessClone NORMAL_CLONE of the completion over the hole.

  Args:
    image_uint8: HxWx3 uint8, the input (its hole content is ignored).
    completed_uint8: HxWx3 uint8, the network's completion (only its hole pixels are used).
    mask_bool: HxW or HxWx1, truthy = hole.

  Returns:
    HxWx3 uint8: outside the hole exactly `image_uint8`.
  """
  image = np.asarray(image_uint8)
  completed = np.asarray(completed_uint8)
  hole = np.asarray(mask_bool)
  if hole.ndim == 3 and hole.shape[-1] == 1:
    hole = hole[..., 0]
  hole = hole.astype(bool)
  if image.dtype != np.uint8 or completed.dtype != np.uint8:
    raise ValueError(f'images must be uint8, got {image.dtype} and {completed.dtype}')
  if image.ndim != 3 or image.shape[-1] != 3 or completed.shape != image.shape:
    raise ValueError(f'need two HxWx3 images of one size, got {image.shape} and {completed.shape}')
  if hole.shape != image.shape[:2]:
    raise ValueError(f'mask shape {hole.shape} does not match image size {image.shape[:2]}')
  if not hole.any():
    return image.copy()

  mask_u8 = hole.astype(np.uint8) * 255
  # As the reference, both steps work on the composited completion (OpenCV's Telea reads the
  # hole's pixels at its rim, so the content there matters).
  completed = np.where(hole[..., None], completed, image)
  filled = cv2.inpaint(completed, mask_u8, 1, cv2.INPAINT_TELEA)
  # The box seamlessClone will use: OpenCV zeroes the mask's 1-pixel image border first.
  inner = mask_u8.copy()
  inner[0, :] = inner[-1, :] = 0
  inner[:, 0] = inner[:, -1] = 0
  blended = filled
  if inner.any():
    x, y, w, h = cv2.boundingRect(inner)
    blended = cv2.seamlessClone(completed, filled, mask_u8,
                                (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
  out = image.copy()
  out[hole] = blended[hole]
  return out
