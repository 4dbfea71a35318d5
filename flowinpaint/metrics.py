"""Image quality metrics: PSNR, SSIM, L1, L2, whole-image and inside the hole.

All functions take images shaped [..., H, W, C] (any leading batch axes; give grayscale a channel
axis) as numpy or jax arrays, are written in jax.numpy (so they jit and run inside a trainer's
eval step), and return one value per image: shape [...]. `mask` is [..., H, W] or [..., H, W, 1]
with 1 = hole; with a mask, the metric covers only the hole (NaN where a hole is empty).

SSIM follows Wang et al. (2004) exactly as scikit-image's `structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=-1)`:
an 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), symmetric ('reflect' in scipy)
borders, K1 = 0.01, K2 = 0.03, channels averaged, and the whole-image value is the map's mean
with 5 border pixels cropped. The masked SSIM is the mean of the (uncropped) map over the hole.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray

_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # scipy's truncate=3.5 -> radius 5 -> an 11x11 window
_K1, _K2 = 0.01, 0.03


def _f(x) -> Array:
  return jnp.asarray(x, jnp.float32)


def _hole(mask, like: Array) -> Array:
  """Mask as float [..., H, W, 1] (1 = hole)."""
  m = _f(mask)
  if m.ndim == like.ndim - 1:
    m = m[..., None]
  if m.shape[-3:-1] != like.shape[-3:-1]:
    raise ValueError(f"mask shape {tuple(m.shape)} does not match image shape {tuple(like.shape)}")
  return m


def _mean(x: Array, mask: Optional[Array]) -> Array:
  """Mean over [H, W, C]; with a mask, over the hole only (NaN when the hole is empty)."""
  if mask is None:
    return jnp.mean(x, axis=(-3, -2, -1))
  m = jnp.broadcast_to(mask, x.shape)
  count = jnp.sum(m, axis=(-3, -2, -1))
  total = jnp.sum(x * m, axis=(-3, -2, -1))
  return jnp.where(count > 0, total / jnp.maximum(count, 1e-12), jnp.nan)


def l1(a, b, *, mask=None) -> Array:
  """Mean absolute difference per image (in the images' units)."""
  a, b = _f(a), _f(b)
  return _mean(jnp.abs(a - b), None if mask is None else _hole(mask, a))


def l2(a, b, *, mask=None) -> Array:
  """Mean squared difference per image (the MSE)."""
  a, b = _f(a), _f(b)
  return _mean(jnp.square(a - b), None if mask is None else _hole(mask, a))


def psnr(a, b, *, data_range: float, mask=None) -> Array:
  """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE); +inf when equal."""
  mse = l2(a, b, mask=mask)
  return 10.0 * jnp.log10(data_range**2 / mse)


def _gaussian_kernel() -> np.ndarray:
  x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
  k = np.exp(-0.5 * (x / _SIGMA) ** 2)
  return (k / k.sum()).astype(np.float32)


def _blur(x: Array) -> Array:
  """Separable 11x11 Gaussian over H and W of [..., H, W, C], symmetric borders."""
  k = _gaussian_kernel()
  pad = [(0, 0)] * (x.ndim - 3) + [(_RADIUS, _RADIUS), (_RADIUS, _RADIUS), (0, 0)]
  # numpy's 'symmetric' (edge repeated) is scipy.ndimage's 'reflect', which skimage uses; for an
  # axis shorter than the radius jnp.pad repeats the reflection as scipy does.
  xp = jnp.pad(x, pad, mode="symmetric")
  h, w = x.shape[-3], x.shape[-2]
  out = sum(k[i] * xp[..., i:i + h, :, :] for i in range(k.size))
  return sum(k[j] * out[..., :, j:j + w, :] for j in range(k.size))


def ssim_map(a, b, *, data_range: float) -> Array:
  """The per-pixel SSIM map [..., H, W, C] (before any cropping or averaging)."""
  # Scale to [0, 1] first: the same SSIM (the constants scale along) with better float32 precision.
  a, b = _f(a) / data_range, _f(b) / data_range
  c1, c2 = _K1**2, _K2**2
  ux, uy = _blur(a), _blur(b)
  vx = _blur(a * a) - ux * ux
  vy = _blur(b * b) - uy * uy
  vxy = _blur(a * b) - ux * uy
  num = (2 * ux * uy + c1) * (2 * vxy + c2)
  den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
  return num / den


def ssim(a, b, *, data_range: float, mask=None) -> Array:
  """Structural similarity per image; with a mask, the SSIM map's mean over the hole."""
  a = _f(a)
  s = ssim_map(a, b, data_range=data_range)
  if mask is not None:
    return _mean(s, _hole(mask, a))
  h, w = s.shape[-3], s.shape[-2]
  if h > 2 * _RADIUS and w > 2 * _RADIUS:
    s = s[..., _RADIUS:h - _RADIUS, _RADIUS:w - _RADIUS, :]
  return jnp.mean(s, axis=(-3, -2, -1))


def hole_ratio(mask) -> Array:
  """Fraction of pixels in the hole per mask ([..., H, W] or [..., H, W, 1])."""
  m = _f(mask)
  if m.ndim >= 3 and m.shape[-1] == 1:
    m = m[..., 0]
  return jnp.mean(m, axis=(-2, -1))


def all_metrics(a, b, mask, *, data_range: float) -> dict[str, Array]:
  """Every metric, whole image and inside the hole, per image: the evaluation's row."""
  return {
      "psnr": psnr(a, b, data_range=data_range),
      "ssim": ssim(a, b, data_range=data_range),
      "l1": l1(a, b),
      "l2": l2(a, b),
      "psnr_hole": psnr(a, b, data_range=data_range, mask=mask),
      "ssim_hole": ssim(a, b, data_range=data_range, mask=mask),
      "l1_hole": l1(a, b, mask=mask),
      "l2_hole": l2(a, b, mask=mask),
      "hole_ratio": hole_ratio(mask),
  }
