"""A 'VALID' NHWC convolution whose gradients are plain NHWC convolutions too.

XLA:CPU runs the convolutions that autodiff makes for a conv's gradients (input and kernel) 10
to 25 times slower inside a while loop than outside one (jax-ml/jax#12868: the loop keeps XLA
from choosing the operand layouts its fast convolution needs), so a training loop compiled as one
`lax.fori_loop` crawls on a CPU. `conv_nhwc` computes the same numbers with a custom VJP that
writes both gradients as forward NHWC x HWIO convolutions with explicit transposes, which stay
fast inside loops:

  d kernel[i, j, c, f] = sum_{b,y,x} x[b, s*y + i, s*x + j, c] * dy[b, y, x, f]
      = conv(x as [C, H, W, B], dy as a [H', W', B, F] kernel dilated by s)[c, i, j, f]
  d x = conv(zero-pad(k - 1, s-dilate(dy)), kernel flipped in space with in/out swapped)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array, stride: int = 1, dilation: int = 1) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      rhs_dilation=(dilation, dilation), dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_nhwc(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """'VALID' convolution: x [B, H, W, C], kernel [k, k, C, F] -> [B, (H - k)//s + 1, ..., F]."""
  return _conv(x, kernel, stride)


def _fwd(x, kernel, stride):
  return _conv(x, kernel, stride), (x, kernel)


def _bwd(stride, res, dy):
  x, kernel = res
  kh, kw = kernel.shape[:2]
  # Kernel gradient: channels act as the batch, the batch as the input features, and dy is the
  # kernel (dilated by the stride); the output's spatial extent may pass k when rows were unused.
  d_kernel = _conv(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)), 1, stride)
  d_kernel = jnp.transpose(d_kernel[:, :kh, :kw], (1, 2, 0, 3)).astype(kernel.dtype)
  # Input gradient: a full correlation of the stride-dilated dy with the flipped kernel.
  if stride > 1:
    b, h, w, f = dy.shape
    dy = jnp.zeros((b, (h - 1) * stride + 1, (w - 1) * stride + 1, f),
                   dy.dtype).at[:, ::stride, ::stride].set(dy)
  dy = jnp.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
  d_x = _conv(dy, jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2)))
  # Rows and columns a stride skipped at the end get no gradient.
  d_x = jnp.pad(d_x, ((0, 0), (0, x.shape[1] - d_x.shape[1]), (0, x.shape[2] - d_x.shape[2]),
                      (0, 0)))
  return d_x.astype(x.dtype), d_kernel


conv_nhwc.defvjp(_fwd, _bwd)
