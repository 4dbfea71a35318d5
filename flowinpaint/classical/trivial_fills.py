"""Trivial hole fills, the floor a learned model must beat: mean colour and Telea diffusion.

Both take float images in [-1, 1], NHWC, with masks [N, H, W, 1] (1 = hole), and return float32
images of the same shape whose pixels outside the hole are the input's.
"""

from __future__ import annotations

import numpy as np

from flowinpaint.classical.opencv import inpaint_opencv


def _check(images: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  images, mask = np.asarray(images, np.float32), np.asarray(mask, np.float32)
  if images.ndim != 4 or mask.shape != images.shape[:3] + (1,):
    raise ValueError(f"need images [N, H, W, C] and mask [N, H, W, 1], got {images.shape} and "
                     f"{mask.shape}")
  return images, mask


def mean_fill(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Each image's hole painted with the mean colour of its own known pixels.

  Args:
    images: float [N, H, W, C] in [-1, 1].
    mask: [N, H, W, 1], 1 = hole.

  Returns:
    float32 [N, H, W, C]; an image with no known pixel is filled with 0 (mid grey).
  """
  images, mask = _check(images, mask)
  known = 1.0 - mask
  count = known.sum(axis=(1, 2), keepdims=True)
  mean = (images * known).sum(axis=(1, 2), keepdims=True) / np.maximum(count, 1.0)
  return np.where(mask > 0.5, mean, images).astype(np.float32)


def telea_fill(images: np.ndarray, mask: np.ndarray, *, radius: int = 3) -> np.ndarray:
  """Each hole diffused inward from its border by Telea's fast marching (OpenCV), in 8 bits.

  Args:
    images: float [N, H, W, C] in [-1, 1], C = 1 or 3.
    mask: [N, H, W, 1], 1 = hole.
    radius: the neighbourhood each filled pixel averages over, in pixels.

  Returns:
    float32 [N, H, W, C]: the 8-bit fill inside the hole, the input (not requantised) outside.
  """
  images, mask = _check(images, mask)
  if images.shape[-1] not in (1, 3):
    raise ValueError(f"telea_fill needs 1 or 3 channels, got {images.shape[-1]}")
  as_uint8 = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  filled = np.stack([inpaint_opencv(img, m[..., 0] > 0.5, method="telea", radius=radius)
                     for img, m in zip(as_uint8, mask)])
  filled = filled.reshape(images.shape).astype(np.float32) / 127.5 - 1.0
  return np.where(mask > 0.5, filled, images).astype(np.float32)


FILLS = {"mean_fill": mean_fill, "telea_fill": telea_fill}
