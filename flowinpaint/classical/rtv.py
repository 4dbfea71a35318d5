"""Structure extraction by relative total variation (Xu, Yan, Xia, Jia, SIGGRAPH Asia 2012).

RTV removes texture and keeps the main edges ("structure") of an image. StructureFlow trains its
structure reconstructor to predict the RTV structure of the ground truth; the reference computes
it offline in MATLAB (`tsmooth(I, 0.015, 3, 0.001, 3)`). This is the same iteratively reweighted
scheme in JAX, running on device, batched, jit-able and differentiable:

  S_0 = I
  for t in 1..iterations:
    (wx, wy) = texture weights of S_{t-1} at scale sigma_t     (sigma_t halves, floor 0.5)
    S_t = solve (D + lam/2 * L_w) S = D I                      (D = 1: the plain RTV)

where `L_w` is the 4-neighbour graph Laplacian with edge weights `wx` (pixel to its right
neighbour) and `wy` (pixel to the one below), and the weights of an edge are

  wx = 1 / max(mean_c |G_sigma * d_x S|, 1e-3) * 1 / max(mean_c |grad S|, sharpness)

(`grad S` the forward-difference gradient magnitude, `G_sigma` a Gaussian blur): large where the
image is flat or where gradients of opposite sign cancel inside the window (texture), small across
a consistent edge. The sparse SPD system of every iteration is solved matrix-free with
Jacobi-preconditioned conjugate gradients (`jax.scipy.sparse.linalg.cg`: a `lax.while_loop` to a
relative tolerance, differentiated implicitly through `lax.custom_linear_solve`, so gradients cost
one more CG solve and never unroll the loop). The three colour channels share the weights and
are solved together as one block-diagonal system.

Mask-aware variant (`mask=`, for inference on a damaged image, StructureFlow issues #17/#27):
hole pixels carry no data term (`D = 0` there, up to a tiny regulariser towards the mean of the
known pixels, which keeps the system non-singular when a hole touches nothing), the image
gradients inside the dilated hole are zeroed before the weights are computed (as the reference's
modified `computeTextureWeights` does), and the first estimate fills the hole with that mean. So
the hole is filled by diffusion from its boundary and the result does not depend on the hole's
pixel values at all.

Deviations from the MATLAB code, on purpose: the Gaussian blur pads symmetrically by default (the
original RTV release; StructureFlow's modified copy zero-pads with `conv2(..., 'same')`, which
darkens the blurred border and invents edges there: `blur_padding='zero'` does that), and CG runs
to `cg_tol` instead of MATLAB's loose `pcg(A, b, 0.1, 100, ichol)`. StructureFlow's own recipe
for a damaged image (`tsmooth(I_in, ..., mask)`, issues #17/#27) is `mask_mode='gradients'`.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# RTV's floor on the windowed gradient (the paper's epsilon); the sharpness floor is a knob.
_WINDOW_EPS = 1e-3


def gaussian_kernel_1d(sigma: float) -> np.ndarray:
  """MATLAB's `fspecial('gaussian', [1, k], sigma)` with `k = round(5 sigma) | 1` (odd)."""
  # MATLAB's round() rounds halves away from zero; Python's round() would round 2.5 to 2.
  k = int(math.floor(5.0 * sigma + 0.5)) | 1
  x = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
  g = np.exp(-x * x / (2.0 * sigma * sigma))
  return g / g.sum()


def sigma_schedule(sigma: float, iterations: int) -> list[float]:
  """The scale of each iteration: sigma, sigma/2, ... floored at 0.5 (as `tsmooth`)."""
  out, s = [], float(sigma)
  for _ in range(iterations):
    out.append(s)
    s = max(s / 2.0, 0.5)
  return out


def _blur(x: Array, sigma: float, padding: str = 'symmetric') -> Array:
  """Separable Gaussian blur of [B, H, W, C] per channel; `padding` 'symmetric' (mirror) or
  'zero' (MATLAB's `conv2(..., 'same')`)."""
  g = gaussian_kernel_1d(sigma)
  r = (len(g) - 1) // 2
  c = x.shape[-1]
  pad = ((0, 0), (r, r), (r, r), (0, 0))
  x = jnp.pad(x, pad, mode='symmetric') if padding == 'symmetric' else jnp.pad(x, pad)
  dn = ('NHWC', 'HWIO', 'NHWC')
  # Depthwise: one [k, 1] (then [1, k]) filter per channel. The kernel is symmetric, so
  # correlation equals MATLAB's convolution.
  ky = jnp.broadcast_to(jnp.asarray(g, x.dtype)[:, None, None, None], (len(g), 1, 1, c))
  kx = jnp.broadcast_to(jnp.asarray(g, x.dtype)[None, :, None, None], (1, len(g), 1, c))
  x = jax.lax.conv_general_dilated(x, ky, (1, 1), 'VALID', dimension_numbers=dn,
                                   feature_group_count=c)
  return jax.lax.conv_general_dilated(x, kx, (1, 1), 'VALID', dimension_numbers=dn,
                                      feature_group_count=c)


def _forward_diffs(x: Array) -> tuple[Array, Array]:
  """Forward differences along W and H, zero in the last column / row: [B, H, W, C] each."""
  dx = jnp.pad(x[:, :, 1:] - x[:, :, :-1], ((0, 0), (0, 0), (0, 1), (0, 0)))
  dy = jnp.pad(x[:, 1:] - x[:, :-1], ((0, 0), (0, 1), (0, 0), (0, 0)))
  return dx, dy


def _safe_norm(dx: Array, dy: Array) -> Array:
  """sqrt(dx^2 + dy^2) whose gradient is 0 (not NaN) where both are 0."""
  sq = dx * dx + dy * dy
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def texture_weights(x: Array, sigma: float, sharpness: float,
                    flat: Optional[Array] = None, *, flat_window: bool = True,
                    blur_padding: str = 'symmetric') -> tuple[Array, Array]:
  """RTV's smoothness weights of the current estimate (`computeTextureWeights`).

  Args:
    x: [B, H, W, C] current structure estimate (intensities in [0, 1]).
    sigma: scale of the Gaussian window.
    sharpness: floor on the local gradient magnitude (epsilon_s; smaller = sharper edges).
    flat: optional [B, H, W, 1], 1 where gradients are treated as zero (the dilated hole).
    flat_window: whether `flat` also zeroes the windowed (blurred) gradients; False zeroes only
      the pixel gradients, as StructureFlow's modified `computeTextureWeights` (issue #17).
    blur_padding: 'symmetric' or 'zero' (StructureFlow's `conv2(..., 'same')`), see `_blur`.

  Returns:
    (wx, wy), each [B, H, W, 1]: wx couples (i, j) with (i, j + 1) and is 0 in the last column;
    wy couples (i, j) with (i + 1, j) and is 0 in the last row.
  """
  fx, fy = _forward_diffs(x)
  gfx, gfy = _forward_diffs(_blur(x, sigma, blur_padding))
  if flat is not None:
    keep = 1.0 - flat
    fx, fy = fx * keep, fy * keep
    if flat_window:
      gfx, gfy = gfx * keep, gfy * keep
  wto = 1.0 / jnp.maximum(jnp.mean(_safe_norm(fx, fy), axis=-1, keepdims=True), sharpness)
  wtbx = 1.0 / jnp.maximum(jnp.mean(jnp.abs(gfx), axis=-1, keepdims=True), _WINDOW_EPS)
  wtby = 1.0 / jnp.maximum(jnp.mean(jnp.abs(gfy), axis=-1, keepdims=True), _WINDOW_EPS)
  wx = (wtbx * wto).at[:, :, -1].set(0.0)
  wy = (wtby * wto).at[:, -1].set(0.0)
  return wx, wy


def laplacian_matvec(x: Array, wx: Array, wy: Array) -> Array:
  """L_w x for the 4-neighbour weighted graph Laplacian; x [..., H, W, C], weights [..., H, W, 1].

  (L_w x)_p = sum over neighbours q of w_pq (x_p - x_q).
  """
  ex = wx[..., :, :-1, :] * (x[..., :, :-1, :] - x[..., :, 1:, :])  # Flux across each x-edge.
  ey = wy[..., :-1, :, :] * (x[..., :-1, :, :] - x[..., 1:, :, :])
  pad_x = [(0, 0)] * (x.ndim - 2) + [(0, 1), (0, 0)]
  pad_x_pre = [(0, 0)] * (x.ndim - 2) + [(1, 0), (0, 0)]
  pad_y = [(0, 0)] * (x.ndim - 3) + [(0, 1), (0, 0), (0, 0)]
  pad_y_pre = [(0, 0)] * (x.ndim - 3) + [(1, 0), (0, 0), (0, 0)]
  return (jnp.pad(ex, pad_x) - jnp.pad(ex, pad_x_pre) +
          jnp.pad(ey, pad_y) - jnp.pad(ey, pad_y_pre))


def _solve_one(data_w: Array, rhs: Array, wx: Array, wy: Array, x0: Array, lam: float,
               tol: float, maxiter: int) -> Array:
  """Solves (diag(data_w) + lam L_w) x = rhs for one image [H, W, C] by Jacobi-PCG."""

  def matvec(v):
    return data_w * v + lam * laplacian_matvec(v, wx, wy)

  # Diagonal of the system: data weight + lam * (sum of the pixel's edge weights).
  deg = (wx + jnp.pad(wx[:, :-1], ((0, 0), (1, 0), (0, 0))) +
         wy + jnp.pad(wy[:-1], ((1, 0), (0, 0), (0, 0))))
  inv_diag = 1.0 / (data_w + lam * deg)
  x, _ = jax.scipy.sparse.linalg.cg(matvec, rhs, x0=x0, tol=tol, maxiter=maxiter,
                                    M=lambda v: inv_diag * v)
  return x


def dilate(mask: Array, pixels: int) -> Array:
  """Grows a [B, H, W, 1] {0, 1} mask by `pixels` (a (2p+1)^2 max filter)."""
  if pixels <= 0:
    return mask
  k = 2 * pixels + 1
  return jax.lax.reduce_window(mask, jnp.array(-jnp.inf, mask.dtype), jax.lax.max,
                               (1, k, k, 1), (1, 1, 1, 1), 'SAME')


MASK_MODES = ('diffuse', 'gradients')
BLUR_PADDINGS = ('symmetric', 'zero')


@functools.partial(jax.jit, static_argnames=('lam', 'sigma', 'sharpness', 'iterations',
                                             'mask_dilation', 'cg_tol', 'cg_max_iterations',
                                             'hole_regulariser', 'mask_mode', 'blur_padding'))
def rtv(image: Array, lam: float = 0.015, sigma: float = 3.0, sharpness: float = 1e-3,
        iterations: int = 4, *, mask: Optional[Array] = None, mask_dilation: int = 3,
        cg_tol: float = 1e-4, cg_max_iterations: int = 1000,
        hole_regulariser: float = 1e-4, mask_mode: str = 'diffuse',
        blur_padding: str = 'symmetric') -> Array:
  """RTV structure of a batch of images (`tsmooth`).

  StructureFlow's setting is `rtv(x, 0.015, 3.0, 1e-3, iterations=3)`; RTV's own defaults are
  lam 0.01, sharpness 0.02, 4 iterations.

  Args:
    image: [B, H, W, C] or [H, W, C], intensities in [0, 1] (the weights' floors assume that
      range); computed in float32 (or float64 under x64).
    lam: smoothness weight lambda (halved internally, as `tsmooth` does).
    sigma: texture scale of the first iteration; halved every iteration, floored at 0.5.
    sharpness: epsilon_s, the floor on the gradient magnitude; smaller gives sharper edges.
    iterations: number of reweighting iterations (one linear solve each).
    mask: optional [B, H, W, 1] (or [H, W, 1]), 1 = hole: the mask-aware variant (module
      docstring); the hole's pixel values are ignored.
    mask_dilation: pixels by which the hole is grown before its gradients are zeroed.
    cg_tol: relative residual at which each conjugate-gradient solve stops.
    cg_max_iterations: cap on CG iterations per solve.
    hole_regulariser: data weight of hole pixels (towards the known pixels' mean).
    mask_mode: with a mask, 'diffuse' (the module docstring's mask-aware variant) or
      'gradients', StructureFlow's own recipe for a damaged image (issues #17, #27:
      `tsmooth(I_in, 0.015, 3, 0.001, 3, mask)`): the image, hole pixels included, stays the
      data term, and only the pixel gradients inside the (`mask_dilation`-grown) hole are
      zeroed, not the windowed ones.
    blur_padding: 'symmetric' (the original RTV release) or 'zero' (StructureFlow's copy of
      `tsmooth`, `conv2(..., 'same')`).

  Returns:
    The structure, the same shape and dtype as `image`.
  """
  if mask_mode not in MASK_MODES:
    raise ValueError(f'mask_mode must be one of {MASK_MODES}, got {mask_mode!r}')
  if blur_padding not in BLUR_PADDINGS:
    raise ValueError(f'blur_padding must be one of {BLUR_PADDINGS}, got {blur_padding!r}')
  squeeze = image.ndim == 3
  if squeeze:
    image = image[None]
    mask = None if mask is None else mask[None]
  in_dtype = image.dtype
  dtype = jnp.float64 if in_dtype == jnp.float64 else jnp.float32
  img = image.astype(dtype)
  half_lam = lam / 2.0

  if mask is None or mask_mode == 'gradients':
    data_w = jnp.ones(img.shape[:-1] + (1,), dtype)
    rhs = img
    flat = None if mask is None else dilate((mask.astype(dtype) > 0.5).astype(dtype),
                                            mask_dilation)
    x = img
  else:
    hole = (mask.astype(dtype) > 0.5).astype(dtype)
    known = 1.0 - hole
    count = jnp.maximum(jnp.sum(known, axis=(1, 2), keepdims=True), 1.0)
    mean = jnp.sum(img * known, axis=(1, 2), keepdims=True) / count  # [B, 1, 1, C]
    filled = img * known + mean * hole
    data_w = known + hole_regulariser * hole
    rhs = data_w * filled
    flat = dilate(hole, mask_dilation)
    x = filled

  solve = jax.vmap(functools.partial(_solve_one, lam=half_lam, tol=cg_tol,
                                     maxiter=cg_max_iterations))
  for s in sigma_schedule(sigma, iterations):
    wx, wy = texture_weights(x, s, sharpness, flat, flat_window=mask_mode == 'diffuse',
                             blur_padding=blur_padding)
    x = solve(data_w, rhs, wx, wy, x)
  x = x.astype(in_dtype)
  return x[0] if squeeze else x
