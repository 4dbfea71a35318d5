"""Gated convolution (Yu et al., "Free-Form Image Inpainting with Gated Convolution", 2019)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers import conv as conv_lib

Dtype = Any
Activation = Optional[Callable[[jax.Array], jax.Array]]


def _pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class GatedConv(nn.Module):
  """`activation(feature) * sigmoid(gate)` from ONE conv with `2 * features` outputs.

  The conv's outputs are split in half along channels: the first half are features, the
  second half gates (DeepFill v2's `gen_conv` with `cnum = 2 * features`). With
  `activation=None` it is a plain, ungated conv with `features` outputs (the output layer).
  Padding 'SAME' follows TensorFlow (Flax's 'SAME' does, for strides and dilations).

  Input `[..., H, W, C]`; output `[..., ceil(H / s), ceil(W / s), features]`.
  """
  features: int
  kernel_size: Union[int, Sequence[int]]
  strides: Union[int, Sequence[int]] = 1
  dilation: Union[int, Sequence[int]] = 1
  activation: Activation = nn.elu
  padding: Any = 'SAME'
  use_bias: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    gated = self.activation is not None
    y = nn.Conv(
        features=2 * self.features if gated else self.features,
        kernel_size=_pair(self.kernel_size),
        strides=_pair(self.strides),
        kernel_dilation=_pair(self.dilation),
        padding=self.padding,
        use_bias=self.use_bias,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        conv_general_dilated=conv_lib.conv_general_dilated,
        name='conv',
    )(x)
    if not gated:
      return y
    feature, gate = jnp.split(y, 2, axis=-1)
    return self.activation(feature) * nn.sigmoid(gate)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling of `[..., H, W, C]` to `[..., H*f, W*f, C]`.

  Equals TF's `resize_nearest_neighbor(align_corners=True)` for an exact x2 resize.
  """
  x = jnp.repeat(x, factor, axis=-3)
  return jnp.repeat(x, factor, axis=-2)


class GatedUpConv(nn.Module):
  """Nearest x2 upsampling, then a gated 3x3 conv (DeepFill's `gen_deconv`).

  Input `[..., H, W, C]`; output `[..., 2H, 2W, features]`.
  """
  features: int
  activation: Activation = nn.elu
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return GatedConv(
        self.features, 3, activation=self.activation, dtype=self.dtype,
        param_dtype=self.param_dtype, name='gated_conv')(upsample_nearest(x, 2))
