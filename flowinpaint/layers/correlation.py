"""Correlation (cost volume) between two feature maps, as in FlowNetC and PWC-Net.

For every pixel x of `f1` and every displacement d = (dx, dy) with |dx|, |dy| <= max_displacement
(in steps of `stride` pixels), the cost is the channel mean of f1(x) * f2(x + d):

  cost[b, y, x, k] = 1/C * sum_c f1[b, y, x, c] * f2[b, y + dy_k, x + dx_k, c]

with f2 read as zero outside the image. Channel k enumerates displacements row-major: dy outer,
dx inner, both from -max_displacement to +max_displacement, so k = (dy/s + r) * (2r + 1) +
(dx/s + r) with r = max_displacement // stride. Dividing by C (FlowNet's normalisation) keeps the
costs in the range of the features whatever their width.

This is the kernel-size-1 correlation of FlowNetC / PWC-Net, written as a loop over the (2r+1)^2
shifted windows of a zero-padded f2 with a channel reduction each: no custom op, and JAX
differentiates it with respect to both inputs. Memory is B*H*W*(2r+1)^2 outputs; the
O((HW)^2) all-pairs volume of RAFT is not built.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def displacements(max_displacement: int, stride: int = 1) -> list[tuple[int, int]]:
  """The (dx, dy) pixel offsets of the output channels, in channel order."""
  if max_displacement < 0 or stride < 1:
    raise ValueError(f"need max_displacement >= 0 and stride >= 1, got {max_displacement}, "
                     f"{stride}")
  r = max_displacement // stride
  steps = [i * stride for i in range(-r, r + 1)]
  return [(dx, dy) for dy in steps for dx in steps]


def correlation(f1: Array, f2: Array, *, max_displacement: int = 4, stride: int = 1) -> Array:
  """Local cost volume between `f1` and `f2`.

  Args:
    f1, f2: [B, H, W, C] features of the first and second image.
    max_displacement: largest |dx| and |dy| searched, in pixels of these maps.
    stride: spacing of the searched displacements in pixels.

  Returns:
    [B, H, W, D] with D = (2 * (max_displacement // stride) + 1) ** 2, in the promoted dtype of
    the inputs; channel order as in `displacements`.
  """
  if f1.shape != f2.shape or f1.ndim != 4:
    raise ValueError(f"f1 and f2 must be [B,H,W,C] of one shape, got {f1.shape}, {f2.shape}")
  offsets = jnp.asarray(displacements(max_displacement, stride), jnp.int32)  # [D, 2]
  p = (max_displacement // stride) * stride
  padded = jnp.pad(f2, ((0, 0), (p, p), (p, p), (0, 0)))

  def cost(offset: Array) -> Array:
    shifted = jax.lax.dynamic_slice(padded, (0, p + offset[1], p + offset[0], 0), f1.shape)
    return jnp.mean(f1 * shifted, axis=-1)

  # A loop over displacements (lax.map = scan) rather than D unrolled slices: compiles in
  # constant time (unrolled, a radius-4 volume inside a grad took ~10 s per level to compile on
  # CPU) and keeps one shifted copy alive at a time; `batch` displacements run vectorised per
  # iteration, a row of the search window by default.
  rows = int(np.sqrt(offsets.shape[0]))
  costs = jax.lax.map(cost, offsets, batch_size=rows)  # [D, B, H, W]
  return jnp.moveaxis(costs, 0, -1)


class Correlation(nn.Module):
  """Module form of `correlation` (no parameters), for use inside Linen models.

  Attributes:
    max_displacement: largest |dx|, |dy| searched, in pixels of the input maps.
    stride: spacing of the searched displacements.
  """
  max_displacement: int = 4
  stride: int = 1

  @nn.compact
  def __call__(self, f1: Array, f2: Array) -> Array:
    return correlation(f1, f2, max_displacement=self.max_displacement, stride=self.stride)
