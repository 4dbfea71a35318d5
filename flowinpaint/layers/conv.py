"""2-D convolution whose kernel gradient is fast on CPUs.

XLA's CPU backend computes a convolution's kernel gradient as another convolution whose "kernel"
is the whole output gradient (e.g. 256x256) and whose channels are the batch (e.g. 2); its
patch packing then runs over runs of two floats, and the gradient costs 5-15x the forward conv
(experiments/trainer_speed). Here that gradient is an im2col matrix product instead, done a few
output rows at a time so that the patch matrix stays in cache: dW[(a, b, ci), co] =
sum over (n, y, x) of x_pad[n, y*s + a*d, x*s + b*d, ci] * g[n, y, x, co].

Only CPUs take that path (`lax.platform_dependent`); elsewhere (cuDNN, TPU) the kernel gradient
is XLA's own, as before. The forward conv and the input gradient are XLA's everywhere.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
from jax import lax

# Bytes of im2col patches per row chunk of the kernel gradient: small enough to stay in the
# L2 cache, large enough that each matrix product is worth a loop iteration.
CHUNK_BYTES = 512 * 1024

_NHWC = ('NHWC', 'HWIO', 'NHWC')

Padding = Union[str, Sequence[tuple[int, int]]]


def _is_nhwc(lhs_ndim: int, dimension_numbers: Any) -> bool:
  if dimension_numbers is None or lhs_ndim != 4:
    return False
  want = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return tuple(map(tuple, dimension_numbers)) == tuple(map(tuple, want))
  return tuple(dimension_numbers) == _NHWC


def kernel_grad_rows(x: jax.Array, g: jax.Array, kernel_size: tuple[int, int],
                     strides: tuple[int, int], dilation: tuple[int, int],
                     pads: Sequence[tuple[int, int]], *,
                     chunk_bytes: int = CHUNK_BYTES) -> jax.Array:
  """Kernel gradient of an NHWC/HWIO convolution by row-chunked im2col products.

  Args:
    x: the conv's input [B, H, W, Ci].
    g: the gradient of its output [B, Ho, Wo, Co].
    kernel_size, strides, dilation: (h, w) each, as the forward conv.
    pads: ((top, bottom), (left, right)) explicit padding of the forward conv.
    chunk_bytes: patch bytes per loop iteration (`CHUNK_BYTES`).

  Returns:
    [kh, kw, Ci, Co] in float32 (the caller casts).
  """
  (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
  bsz, ho, wo, co = g.shape
  ci = x.shape[-1]
  xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  row_bytes = bsz * wo * kh * kw * ci * x.dtype.itemsize
  rows = max(1, min(ho, chunk_bytes // max(row_bytes, 1)))
  n_chunks = -(-ho // rows)
  if n_chunks * rows != ho:  # Zero rows of g past the end contribute nothing.
    g = jnp.pad(g, ((0, 0), (0, n_chunks * rows - ho), (0, 0), (0, 0)))
    need = (n_chunks * rows - 1) * sh + (kh - 1) * dh + 1
    if need > xp.shape[1]:
      xp = jnp.pad(xp, ((0, 0), (0, need - xp.shape[1]), (0, 0), (0, 0)))
  span_h, span_w = (rows - 1) * sh + 1, (wo - 1) * sw + 1

  def chunk(i):
    taps = []
    for a in range(kh):
      band = lax.dynamic_slice_in_dim(xp, i * rows * sh + a * dh, span_h, axis=1)
      for b in range(kw):
        taps.append(lax.slice(band, (0, 0, b * dw, 0), (bsz, span_h, b * dw + span_w, ci),
                              (1, sh, sw, 1)))
    patches = jnp.stack(taps, axis=3).reshape(-1, kh * kw * ci)
    gi = lax.dynamic_slice_in_dim(g, i * rows, rows, axis=1).reshape(-1, co)
    return lax.dot_general(patches, gi, (((0,), (0,)), ((), ())),
                           preferred_element_type=jnp.float32)

  if n_chunks == 1:
    out = chunk(0)
  else:
    out = lax.fori_loop(1, n_chunks, lambda i, acc: acc + chunk(i), chunk(0))
  return out.reshape(kh, kw, ci, co)


def _conv(x, w, strides, pads, dilation, precision):
  return lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation,
                                  dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _fast(x, w, strides, pads, dilation, precision):
  return _conv(x, w, strides, pads, dilation, precision)


def _fast_fwd(x, w, strides, pads, dilation, precision):
  return _conv(x, w, strides, pads, dilation, precision), (x, w)


def _fast_bwd(strides, pads, dilation, precision, res, g):
  x, w = res
  (dx,) = jax.linear_transpose(lambda v: _conv(v, w, strides, pads, dilation, precision), x)(g)

  def rows(x, g):
    return kernel_grad_rows(x, g, w.shape[:2], strides, dilation, pads).astype(w.dtype)

  def xla(x, g):
    return jax.linear_transpose(lambda v: _conv(x, v, strides, pads, dilation, precision),
                                w)(g)[0]

  return dx, lax.platform_dependent(x, g, cpu=rows, default=xla)


_fast.defvjp(_fast_fwd, _fast_bwd)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Padding, lhs_dilation: Optional[Sequence[int]] = None,
                         rhs_dilation: Optional[Sequence[int]] = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> jax.Array:
  """`lax.conv_general_dilated`, with the fast CPU kernel gradient where it applies.

  It applies to 2-D NHWC/HWIO convolutions without input dilation or groups (what
  `flax.linen.Conv` builds for 4-D inputs); anything else is `lax.conv_general_dilated` itself.
  Pass it as `nn.Conv(..., conv_general_dilated=conv_general_dilated)`.
  """
  plain = (lhs_dilation not in (None, (1, 1), [1, 1]) or feature_group_count != 1
           or batch_group_count != 1 or preferred_element_type is not None
           or not _is_nhwc(lhs.ndim, dimension_numbers) or lhs.dtype != rhs.dtype)
  if plain:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
  strides = tuple(int(s) for s in window_strides)
  dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
  if isinstance(padding, str):
    eff = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:2], dilation)]
    pads = tuple(lax.padtype_to_pads(lhs.shape[1:3], eff, strides, padding))
  else:
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _fast(lhs, rhs, strides, pads, dilation, precision)
