"""Partial convolution (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018).

The paper (and NVIDIA/partialconv) works with a *valid* mask M (1 = known pixel):

  out = W^T (X * M) * (sum(1) / sum(M)) + b    where sum(M) > 0 in the window, else 0,
  M'  = 1 where sum(M) > 0, else 0.

The public API here takes the library's convention, 1 = hole, and returns the updated hole mask;
`valid = 1 - hole` lives only inside the layer. Zero padding counts as *invalid*, so near the
image border the output is re-normalised as well (the "partial convolution based padding" use
of the same layer); with `padding='VALID'` and an all-valid mask the layer is a plain conv.

A mask with one channel applies to every input channel (window size k*k). A mask with as many
channels as the input marks each input channel separately (NVIDIA's `multi_channel=True`,
window size k*k*C): this is what a U-Net decoder needs when it concatenates features with
different masks.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Dtype = Any
Padding = Union[str, int, Sequence[tuple[int, int]]]


def _pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _lax_padding(padding: Padding) -> Union[str, Sequence[tuple[int, int]]]:
  """Flax-style padding ('SAME' | 'VALID' | int | pairs) in the form lax's conv takes."""
  if isinstance(padding, str):
    return padding.upper()
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  return tuple(tuple(p) for p in padding)


def hole_to_valid(hole: jax.Array) -> jax.Array:
  """The paper's mask (1 = valid) from the library's (1 = hole)."""
  return 1.0 - hole


def mask_window_sum(valid: jax.Array, kernel_size: tuple[int, int], strides: tuple[int, int],
                    dilation: tuple[int, int], padding: Padding) -> jax.Array:
  """sum(M) over each conv window and every mask channel: [B, H, W, Cm] -> [B, H', W', 1].

  Zero padding contributes nothing, i.e. pixels outside the image count as holes.
  """
  ones = jnp.ones(kernel_size + (valid.shape[-1], 1), valid.dtype)
  return lax.conv_general_dilated(
      valid, ones, window_strides=strides, padding=_lax_padding(padding),
      rhs_dilation=dilation, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class PartialConv(nn.Module):
  """Mask-aware, re-normalised convolution with mask update.

  `__call__(x [B, H, W, C], hole [B, H, W, 1 or C]) -> (y [B, H', W', features],
  new_hole [B, H', W', 1])`, 1 = hole. `H' = ceil(H / stride)` for 'SAME' padding.

  Attributes:
    features: output channels.
    kernel_size, strides, dilation: as `nn.Conv`.
    padding: 'SAME', 'VALID', an int, or ((top, bottom), (left, right)).
    use_bias: the bias is added after the re-normalisation and zeroed with the output where
      the window saw no valid pixel (as the reference does).
  """
  features: int
  kernel_size: Union[int, Sequence[int]] = 3
  strides: Union[int, Sequence[int]] = 1
  dilation: Union[int, Sequence[int]] = 1
  padding: Padding = 'SAME'
  use_bias: bool = True
  kernel_init: Any = nn.initializers.lecun_normal()
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, hole: jax.Array) -> tuple[jax.Array, jax.Array]:
    k, s, d = _pair(self.kernel_size), _pair(self.strides), _pair(self.dilation)
    c = x.shape[-1]
    if hole.shape[-1] not in (1, c):
      raise ValueError(f'hole mask has {hole.shape[-1]} channels; need 1 or {c} (the input\'s)')
    # The mask arithmetic stays in float32 whatever the compute dtype: ratios like 9/1 must be
    # exact enough, and the mask carries no gradient.
    valid = lax.stop_gradient(hole_to_valid(hole.astype(jnp.float32)))
    window = k[0] * k[1] * hole.shape[-1]
    count = mask_window_sum(valid, k, s, d, self.padding)  # [B, H', W', 1]
    new_valid = jnp.clip(count, 0.0, 1.0)
    ratio = window / jnp.maximum(count, 1.0) * new_valid  # 0 where the window saw no valid pixel.

    y = nn.Conv(self.features, k, strides=s, kernel_dilation=d, padding=self.padding,
                use_bias=False, kernel_init=self.kernel_init, dtype=self.dtype,
                param_dtype=self.param_dtype, name='conv')(x * valid.astype(x.dtype))
    y = y * ratio.astype(y.dtype)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), self.param_dtype)
      y = y + (bias.astype(y.dtype) * new_valid.astype(y.dtype))
    return y, 1.0 - new_valid
