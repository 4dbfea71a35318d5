"""2-D convolution whose kernel gradient is fast on CPUs.

XLA's CPU backend computes a convolution's kernel gradient as another convolution whose "kernel"
is the whole output gradient (e.g. 256x256) and whose channels are the batch (e.g. 2); its
patch packing then runs over runs of two floats, and the gradient costs 5-15x the forward conv
(experiments/trainer_speed). Here that gradient is an im2col matrix product instead, done a few
output rows at a time so that the patch matrix stays in cache: dW[(a, b, ci), co] =
sum over (n, y, x) of x_pad[n, y*s + a*d, x*s + b*d, ci] * g[n, y, x, co].

The input gradient of a strided conv with many input channels (the SN-PatchGAN's 5x5/2 convs)
is likewise one stride-1 conv per stride phase (`input_grad_phases`) instead of XLA's conv over
the stride-dilated output gradient, three quarters of whose products are with zeros.

Only CPUs take these paths (`lax.platform_dependent`); elsewhere (cuDNN, TPU) both gradients
are XLA's own, as before. The forward conv is XLA's everywhere.
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

# Strided convs with at least this many input channels take the phase-split input gradient on
# CPUs (the SN-PatchGAN's 5x5/2 convs: 1.5-1.9x faster); below it XLA's own was as fast or faster.
PHASE_MIN_CHANNELS = 64

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
                     chunk_bytes: Optional[int] = None) -> jax.Array:
  """Kernel gradient of an NHWC/HWIO convolution by row-chunked im2col products.

  Args:
    x: the conv's input [B, H, W, Ci].
    g: the gradient of its output [B, Ho, Wo, Co].
    kernel_size, strides, dilation: (h, w) each, as the forward conv.
    pads: ((top, bottom), (left, right)) explicit padding of the forward conv.
    chunk_bytes: patch bytes per loop iteration (None: `CHUNK_BYTES`).

  Returns:
    [kh, kw, Ci, Co] in float32 (the caller casts).
  """
  (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
  chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
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


def phases_apply(kernel_size: tuple[int, int], strides: tuple[int, int],
                 dilation: tuple[int, int], pads: Sequence[tuple[int, int]]) -> bool:
  """Whether `input_grad_phases` handles this conv: strided, undilated, taps in every phase."""
  return (strides != (1, 1) and dilation == (1, 1) and all(p >= 0 for pp in pads for p in pp)
          and all(k >= s for k, s in zip(kernel_size, strides)))


def input_grad_phases(g: jax.Array, w: jax.Array, x_hw: tuple[int, int],
                      strides: tuple[int, int], pads: Sequence[tuple[int, int]],
                      precision: Any = None) -> jax.Array:
  """Input gradient of a strided, undilated NHWC/HWIO conv as one stride-1 conv per phase.

  XLA computes it as a convolution over the output gradient dilated by the stride (mostly
  zeros). Input rows p = s*m + r of the padded input only meet kernel rows a = r + s*t, so
  for each phase (r, c) the gradient is dx_pad[s*m + r] = sum_t g[m - t] w[r + s*t]^T, an
  ordinary stride-1 conv of g with the flipped, transposed sub-kernel w[r::s, c::s]; the
  phases are then interleaved and the padding cropped.

  Args:
    g: gradient of the conv's output [B, Ho, Wo, Co].
    w: the kernel [kh, kw, Ci, Co].
    x_hw: the conv input's (H, W).
    strides, pads: as the forward conv (`phases_apply` must hold).
    precision: passed to the phase convs.

  Returns:
    [B, H, W, Ci].
  """
  (sh, sw), (kh, kw) = strides, w.shape[:2]
  (h, wd), ci = x_hw, w.shape[2]
  bsz, ho, wo, _ = g.shape
  mh, mw = -(-(h + sum(pads[0])) // sh), -(-(wd + sum(pads[1])) // sw)
  rows = []
  for r in range(sh):
    th = -(-(kh - r) // sh)
    cols = []
    for c in range(sw):
      tw = -(-(kw - c) // sw)
      k = jnp.flip(w[r::sh, c::sw], (0, 1)).transpose(0, 1, 3, 2)
      cols.append(lax.conv_general_dilated(g, k, (1, 1), ((th - 1, mh - ho), (tw - 1, mw - wo)),
                                           dimension_numbers=_NHWC, precision=precision))
    rows.append(jnp.stack(cols, axis=3))  # [B, mh, mw, sw, Ci]
  full = jnp.stack(rows, axis=2).reshape(bsz, mh * sh, mw * sw, ci)
  return full[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + wd]


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

  def dx_xla(g, w):
    return jax.linear_transpose(lambda v: _conv(v, w, strides, pads, dilation, precision), x)(g)[0]

  def dx_phases(g, w):
    return input_grad_phases(g, w, x.shape[1:3], strides, pads, precision).astype(x.dtype)

  split = x.shape[-1] >= PHASE_MIN_CHANNELS and phases_apply(w.shape[:2], strides, dilation, pads)

  def rows(x, g):
    return kernel_grad_rows(x, g, w.shape[:2], strides, dilation, pads).astype(w.dtype)

  def xla(x, g):
    return jax.linear_transpose(lambda v: _conv(x, v, strides, pads, dilation, precision),
                                w)(g)[0]

  dx = lax.platform_dependent(g, w, cpu=dx_phases, default=dx_xla) if split else dx_xla(g, w)
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
