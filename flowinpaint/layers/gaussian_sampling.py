"""Appearance-flow warping: bilinear and Gaussian sampling (StructureFlow, Ren et al. ICCV 2019).

An appearance flow `flow[b, y, x] = (dx, dy)` says where output pixel (y, x) takes its features
from: the continuous point (x + dx, y + dy) of the source feature map. Bilinear sampling reads the
2 x 2 neighbours of that point, so a flow learns only from them. StructureFlow's Gaussian sampling
(its `resample2d` CUDA kernel) reads an n x n window instead and weights each neighbour q by

  w_q = exp(-dx_q^2 / (2 sigma^2)) * exp(-dy_q^2 / (2 sigma^2)),   out = sum_q w_q f_q / sum_q w_q

with (dx_q, dy_q) the distance from q to the sampling point; the window is the n/2 integer
columns left of the point (floor(x') - n/2 + 1 .. floor(x')) and the n/2 right of it, likewise for
rows. Its gradient w.r.t. the flow gathers evidence from the whole window, which is the paper's
motivation. Out-of-range neighbours are clamped to the border (as the kernel does).

Here both are gathers plus weighted sums, differentiated by JAX (no custom op): the flow receives
gradients through the fractional parts of the sampling point. Each window row is one gather of
n columns, a checkpointed `lax.scan` step, so the backward pass does not store the n^2-fold expanded
features (at StructureFlow's n = 16 on 64 x 64 x 128 features that would be 4 GB per 8 images).

Limits worth knowing: with n = 2 and sigma -> 0, Gaussian sampling tends to nearest-neighbour
sampling (the nearest neighbour's weight dominates), so it equals bilinear sampling only at
integer sampling points; weights are computed relative to the nearest neighbour's, so a tiny
sigma gives exact nearest-neighbour values rather than 0/0.

Shapes: features [B, H, W, C]; flow [B, h, w, 2] in source pixels, channel 0 = x (width),
channel 1 = y (height); output [B, h, w, C]. The flow's grid may differ from the source's (e.g.
StructureFlow pools the flow to a VGG layer's size); the output pixel (y, x) samples around
(x + dx, y + dy) in source pixel units.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _sampling_points(flow: Array) -> tuple[Array, Array]:
  """Continuous source coordinates (x', y'), [B, h, w] each, at least float32."""
  h, w = flow.shape[1:3]
  dtype = jnp.promote_types(flow.dtype, jnp.float32)
  flow = flow.astype(dtype)
  gx = jnp.arange(w, dtype=dtype)[None, None, :]
  gy = jnp.arange(h, dtype=dtype)[None, :, None]
  return gx + flow[..., 0], gy + flow[..., 1]


def _window_sample(features: Array, flow: Array, offsets: tuple[int, ...],
                   weight_fn: Callable[[Array, Array], Array]) -> Array:
  """sum over (oy, ox) of wy * wx * f[floor(y') + oy, floor(x') + ox], normalised.

  `weight_fn(frac [B, h, w], offsets [n]) -> [B, h, w, n]` gives the 1-D weights of the
  neighbours floor(p) + offsets for a point p with fractional part `frac`; the 2-D weight is
  their product (separable), normalised by its sum.
  """
  b, hs, ws, c = features.shape
  xs, ys = _sampling_points(flow)
  x0, y0 = jnp.floor(xs), jnp.floor(ys)
  off = jnp.asarray(offsets, xs.dtype)
  acc_dtype = jnp.promote_types(features.dtype, xs.dtype)
  wx = weight_fn(xs - x0, off)  # [B, h, w, n]
  wy = weight_fn(ys - y0, off)
  norm = jnp.sum(wx, -1) * jnp.sum(wy, -1)  # [B, h, w]
  cols = jnp.clip(x0[..., None] + off, 0, ws - 1).astype(jnp.int32)  # [B, h, w, n]
  flat = features.reshape(b, hs * ws, c)
  out_hw = flow.shape[1:3]
  n = len(offsets)

  # One scan step per window row: a single compiled body (the window size does not grow the
  # program), checkpointed so the backward pass recomputes each row's gather.
  @jax.checkpoint
  def row(acc, row_in):
    oy, wy_row = row_in
    rows = jnp.clip(y0 + oy, 0, hs - 1).astype(jnp.int32)  # [B, h, w]
    idx = (rows[..., None] * ws + cols).reshape(b, -1)  # [B, h*w*n]
    vals = jnp.take_along_axis(flat, idx[..., None], axis=1)  # [B, h*w*n, C]
    vals = vals.reshape(b, *out_hw, n, c)
    weights = (wx * wy_row[..., None]).astype(vals.dtype)  # [B, h, w, n]
    return acc + jnp.einsum('bhwn,bhwnc->bhwc', weights, vals,
                            preferred_element_type=acc_dtype), None

  acc = jnp.zeros((b, *out_hw, c), acc_dtype)
  acc, _ = jax.lax.scan(row, acc, (off, jnp.moveaxis(wy, -1, 0)))
  return (acc / norm[..., None]).astype(features.dtype)


@jax.jit
def bilinear_sample(features: Array, flow: Array) -> Array:
  """Bilinear sampling of `features` [B, H, W, C] at pixel + `flow` [B, h, w, 2] (border clamp).

  Returns [B, h, w, C] in `features.dtype`.
  """
  def tent(frac, off):
    # Neighbours floor(p) and floor(p) + 1 get 1 - frac and frac.
    return jnp.maximum(1.0 - jnp.abs(frac[..., None] - off), 0.0)

  return _window_sample(features, flow, (0, 1), tent)


@functools.partial(jax.jit, static_argnames=('kernel_size', 'sigma'))
def gaussian_sample(features: Array, flow: Array, *, kernel_size: int = 4,
                    sigma: float = 2.0) -> Array:
  """StructureFlow's Gaussian sampling over a `kernel_size` x `kernel_size` window.

  Args:
    features: [B, H, W, C] source features.
    flow: [B, h, w, 2] appearance flow in source pixels ((dx, dy) per output pixel).
    kernel_size: even window size n (the reference uses 16 with sigma 4, and 4 with sigma 2).
    sigma: standard deviation of the Gaussian weights, in source pixels.

  Returns:
    [B, h, w, C] in `features.dtype`.
  """
  if kernel_size < 2 or kernel_size % 2:
    raise ValueError(f'kernel_size must be even and >= 2, got {kernel_size}')
  if sigma <= 0:
    raise ValueError(f'sigma must be > 0, got {sigma}')
  half = kernel_size // 2
  offsets = tuple(range(1 - half, half + 1))  # floor(p) - n/2 + 1 .. floor(p) + n/2.

  def gauss(frac, off):
    d2 = jnp.square(frac[..., None] - off)
    # Relative to the nearest neighbour (min(frac, 1 - frac)): the normalisation cancels this
    # factor, and it keeps the largest weight at 1 so a tiny sigma cannot underflow to 0/0.
    nearest = jnp.square(jnp.minimum(frac, 1.0 - frac))[..., None]
    return jnp.exp(-(d2 - nearest) / (2.0 * sigma * sigma))

  return _window_sample(features, flow, offsets, gauss)


class GaussianSampling(nn.Module):
  """Parameter-free module form of `gaussian_sample` (the reference's `Resample2d(n, 1, sigma)`).

  `__call__(features [B, H, W, C], flow [B, h, w, 2]) -> [B, h, w, C]`.
  """
  kernel_size: int = 4
  sigma: float = 2.0

  @nn.compact
  def __call__(self, features: Array, flow: Array) -> Array:
    return gaussian_sample(features, flow, kernel_size=self.kernel_size, sigma=self.sigma)
