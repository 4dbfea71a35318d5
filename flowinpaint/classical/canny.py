"""Canny edge detection (Canny 1986) in JAX, as `skimage.feature.canny` computes it.

EdgeConnect (Nazeri et al. 2019) trains and runs on Canny edges of the grayscale image computed
with scikit-image (`canny(gray, sigma=2, mask=known)`); this is the same algorithm on device,
batched and jit-able, so the models compute their edge inputs and targets themselves:

1. Smooth with a Gaussian (radius `int(4 sigma + 0.5)`, zeros outside the image) ignoring the
   pixels outside `mask`: `G * (x m) / (G * m + eps)` (with no mask, m = 1: the division undoes
   the darkening of the zero border).
2. Sobel gradients (scipy's `ndimage.sobel`, symmetric border) and their magnitude.
3. Non-maximum suppression across the edge with linear interpolation between the two
   neighbours on each side, in four direction sectors (skimage's bilinear NMS), only on pixels
   whose 3x3 neighbourhood lies inside the mask and the image (the eroded mask) and whose
   magnitude reaches the low threshold.
4. Hysteresis: keep the 8-connected groups of surviving pixels that hold at least one pixel at
   or above the high threshold (connected components by min-label propagation with pointer
   jumping, so a long contour takes O(log length) rounds, not O(length)).

Thresholds are absolute, for images in [0, 1] (skimage's defaults 0.1 and 0.2). Computed in
float32 (skimage: float64): a pixel whose NMS or threshold comparison is a tie within float32
rounding can come out differently. That happens on synthetic images with exact ties (a flat
square), not on photographs (tests/classical/canny_test.py); float64 input under x64 computes in
float64 and matches skimage there too. Not
differentiable (a binary map); callers put it behind stop_gradient.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# The gray conversion skimage.color.rgb2gray uses (ITU-R BT.709 luma).
RGB_TO_GRAY = (0.2125, 0.7154, 0.0721)


def rgb_to_gray(rgb: Array) -> Array:
  """[..., 3] RGB in [0, 1] -> [..., 1] gray, as `skimage.color.rgb2gray`."""
  coeffs = jnp.asarray(RGB_TO_GRAY, jnp.float32)
  return jnp.sum(rgb.astype(jnp.float32) * coeffs, axis=-1, keepdims=True)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
  """scipy.ndimage.gaussian_filter's 1-D taps: radius int(truncate sigma + 0.5), sum 1."""
  radius = int(truncate * float(sigma) + 0.5)
  x = np.arange(-radius, radius + 1)
  phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
  return phi / phi.sum()


def _blur(x: Array, taps: np.ndarray) -> Array:
  """Separable correlation of [B, H, W] with `taps` along H then W, zeros outside."""
  k = jnp.asarray(taps, x.dtype)
  r = (len(taps) - 1) // 2
  y = x[..., None]
  hi = jax.lax.Precision.HIGHEST  # no TF32 on GPUs: the thresholds are sharp
  dn = ("NHWC", "HWIO", "NHWC")
  y = jax.lax.conv_general_dilated(y, k.reshape(-1, 1, 1, 1), (1, 1), ((r, r), (0, 0)),
                                   dimension_numbers=dn, precision=hi)
  y = jax.lax.conv_general_dilated(y, k.reshape(1, -1, 1, 1), (1, 1), ((0, 0), (r, r)),
                                   dimension_numbers=dn, precision=hi)
  return y[..., 0]


def _shift(x: Array, dy: int, dx: int, fill) -> Array:
  """out[b, i, j] = x[b, i + dy, j + dx] (`fill` outside)."""
  h, w = x.shape[1:3]
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
  return p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def _sobel(x: Array) -> tuple[Array, Array]:
  """(isobel, jsobel): scipy.ndimage.sobel along axis 0 (rows) and 1 (columns), 'reflect'."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
  h, w = x.shape[1:3]
  at = lambda dy, dx: p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
  # Derivative [-1, 0, 1] along one axis, smoothing [1, 2, 1] along the other.
  d_rows = [at(1, dx) - at(-1, dx) for dx in (-1, 0, 1)]
  isobel = d_rows[0] + 2.0 * d_rows[1] + d_rows[2]
  d_cols = [at(dy, 1) - at(dy, -1) for dy in (-1, 0, 1)]
  jsobel = d_cols[0] + 2.0 * d_cols[1] + d_cols[2]
  return isobel, jsobel


def _eroded(valid: Array) -> Array:
  """3x3 binary erosion with everything outside the image invalid: [B, H, W] bool."""
  out = valid
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      out = out & _shift(valid, dy, dx, False)
  return out


def _nonmaximum_suppression(isobel: Array, jsobel: Array, magnitude: Array, candidates: Array
                            ) -> Array:
  """Pixels of `candidates` whose magnitude is a local maximum across the edge: bool."""
  m = magnitude
  nb = lambda dy, dx: _shift(m, dy, dx, 0.0)
  abs_i, abs_j = jnp.abs(isobel), jnp.abs(jsobel)
  up, down = isobel >= 0, isobel <= 0
  left, right = jsobel <= 0, jsobel >= 0
  same_sign = (up & right) | (down & left)  # skimage's cond1; cond2 covers the rest
  safe = lambda a, b: a / jnp.where(b == 0, 1.0, b)
  steep = abs_i > abs_j  # cond1 sector split
  flat2 = abs_i < abs_j  # cond2 sector split
  # Neighbours (n1_1, n1_2) on one side and (n2_1, n2_2) on the other, and the weight w of the
  # diagonal one, for the four sectors.
  sectors = [
      (same_sign & steep, safe(abs_j, abs_i), nb(1, 0), nb(1, 1), nb(-1, 0), nb(-1, -1)),
      (same_sign & ~steep, safe(abs_i, abs_j), nb(0, 1), nb(1, 1), nb(0, -1), nb(-1, -1)),
      (~same_sign & flat2, safe(abs_i, abs_j), nb(0, 1), nb(-1, 1), nb(0, -1), nb(1, -1)),
      (~same_sign & ~flat2, safe(abs_j, abs_i), nb(-1, 0), nb(-1, 1), nb(1, 0), nb(1, -1)),
  ]
  keep = jnp.zeros_like(candidates)
  for where, w, n11, n12, n21, n22 in sectors:
    plus = (n12 * w + n11 * (1.0 - w)) <= m
    minus = (n22 * w + n21 * (1.0 - w)) <= m
    keep = keep | (where & plus & minus)
  return keep & candidates


def _hysteresis(low: Array, high: Array) -> Array:
  """The pixels of `low` 8-connected (within `low`) to a pixel of `high`: [B, H, W] bool."""
  shape = low.shape
  size = int(np.prod(shape))
  none = jnp.int32(size)  # label of pixels outside `low`
  index = jnp.arange(size, dtype=jnp.int32).reshape(shape)
  labels = jnp.where(low, index, none)

  def step(state):
    labels, _ = state
    smallest = labels
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        if dy or dx:
          smallest = jnp.minimum(smallest, _shift(labels, dy, dx, none))
    smallest = jnp.where(low, smallest, none)
    # Pointer jumping: a pixel takes the label of the pixel its label names (same component,
    # never larger), which doubles how far a label travels per round.
    flat = smallest.reshape(-1)
    jumped = jnp.where(low, flat[jnp.minimum(flat, size - 1)].reshape(shape), none)
    return jumped, jnp.any(jumped != labels)

  labels, _ = jax.lax.while_loop(lambda s: s[1], step, (labels, jnp.array(True)))
  flat = labels.reshape(-1)
  seeded = jnp.zeros((size + 1,), bool).at[flat].max(high.reshape(-1))
  return low & seeded[flat].reshape(shape)


def canny(gray: Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
          high_threshold: float = 0.2, mask: Optional[Array] = None) -> Array:
  """Binary Canny edges of grayscale images, as `skimage.feature.canny(image, sigma, ...)`.

  Args:
    gray: [B, H, W, 1] (or [B, H, W]) images in [0, 1].
    sigma: the Gaussian's standard deviation (EdgeConnect: 2).
    low_threshold, high_threshold: hysteresis thresholds on the gradient magnitude (absolute,
      for [0, 1] images; skimage's defaults for float images).
    mask: optional, same shape, nonzero = pixels to use (skimage's `mask`: 1 = known). Pixels
      outside it neither feed the smoothing nor get edges; nor do their 8 neighbours.

  Returns:
    edges (1 = edge, 0 elsewhere), the shape of `gray`, float32 (float64 for float64 input
    with x64 enabled: then it is skimage's float64 computation); no gradient.
  """
  if low_threshold > high_threshold:
    raise ValueError("low_threshold must not exceed high_threshold")
  squeeze = gray.ndim == 4
  dtype = jnp.promote_types(gray.dtype, jnp.float32)  # float64 only where x64 is on
  x = jax.lax.stop_gradient(gray.astype(dtype))
  x = x[..., 0] if squeeze else x
  if mask is None:
    valid = jnp.ones(x.shape, bool)
  else:
    m = jax.lax.stop_gradient(mask)
    valid = (m[..., 0] if squeeze else m) > 0
  taps = gaussian_kernel(sigma)
  weights = valid.astype(dtype)
  smoothed = _blur(x * weights, taps) / (_blur(weights, taps) + jnp.finfo(dtype).eps)
  isobel, jsobel = _sobel(smoothed)
  magnitude = jnp.sqrt(isobel * isobel + jsobel * jsobel)
  candidates = _eroded(valid) & (magnitude >= max(float(low_threshold), 1e-14))
  low = _nonmaximum_suppression(isobel, jsobel, magnitude, candidates)
  edges = _hysteresis(low, low & (magnitude >= high_threshold)).astype(dtype)
  return edges[..., None] if squeeze else edges
