"""OpenCV's classical inpainting (Telea's fast marching, Navier-Stokes), composited.

`cv2.inpaint` takes an 8-bit 1- or 3-channel image and a non-zero = hole 8-bit mask. This wrapper
takes the project's convention (bool / 0-1 mask, 1 = hole) and pastes the original pixels back
outside the hole so they are bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def _as_hole(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """A bool HxW hole map from a bool / 0-1 / 0-255 mask (HxW or HxWx1)."""
  mask = np.asarray(mask)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.shape != shape:
    raise ValueError(f"mask shape {mask.shape} does not match image size {shape}")
  if mask.dtype == bool:
    return mask
  if np.issubdtype(mask.dtype, np.floating):
    return mask >= 0.5
  # Integers: 0/1 masks and 0/255 masks both work; > 127 is the file rule, 1 is the array rule.
  return mask >= 1 if mask.max(initial=0) <= 1 else mask > 127


def inpaint_opencv(image: np.ndarray, mask: np.ndarray, *, method: str = "telea",
                   radius: int = 3) -> np.ndarray:
  """Fills the hole of `image` (uint8 HxWx3 or HxW) where `mask` is set (1 = hole).

  Args:
    image: uint8 HxWx3 (RGB or BGR: the methods treat channels alike) or HxW.
    mask: bool / 0-1 HxW (or HxWx1), 1 = hole.
    method: 'telea' or 'ns'.
    radius: neighbourhood radius in pixels that each method looks at.

  Returns:
    uint8 array of `image`'s shape; pixels outside the hole are the input's, bit for bit.
  """
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"image must be uint8, got {image.dtype}")
  if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
    raise ValueError(f"image must be HxW or HxWx3, got shape {image.shape}")
  hole = _as_hole(mask, image.shape[:2])
  if not hole.any():
    return image.copy()
  squeeze = image.ndim == 3 and image.shape[-1] == 1
  src = np.ascontiguousarray(image[..., 0] if squeeze else image)
  filled = cv2.inpaint(src, hole.astype(np.uint8) * 255, float(max(int(radius), 1)),
                       METHODS[method])
  if squeeze:
    filled = filled[..., None]
  sel = hole if image.ndim == 2 else hole[..., None]
  return np.where(sel, filled, image).astype(np.uint8)
