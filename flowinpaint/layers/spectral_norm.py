"""Spectral-normalised convolution (Miyato et al., 2018) for GAN discriminators."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers import conv as conv_lib

Dtype = Any


def _pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class SNConv(nn.Module):
  """`nn.Conv` whose kernel is divided by its largest singular value.

  The kernel is viewed as a [kh*kw*cin, cout] matrix (as TF's neuralgym does). Power iteration
  state (`u`, `sigma`) lives in the 'batch_stats' collection and is written only when
  `update_stats=True` (apply with `mutable=['batch_stats']`). The power iteration and the
  normalised kernel stay in `param_dtype`; the conv computes in `dtype`.

  Input `[..., H, W, C]`; output `[..., ceil(H / s), ceil(W / s), features]`.
  """
  features: int
  kernel_size: Union[int, Sequence[int]] = 5
  strides: Union[int, Sequence[int]] = 2
  padding: Any = 'SAME'
  use_bias: bool = True
  n_steps: int = 1
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, update_stats: bool) -> jax.Array:
    conv = nn.Conv(
        features=self.features,
        kernel_size=_pair(self.kernel_size),
        strides=_pair(self.strides),
        padding=self.padding,
        use_bias=self.use_bias,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        conv_general_dilated=conv_lib.conv_general_dilated,
        name='conv',
    )
    return nn.SpectralNorm(conv, n_steps=self.n_steps, param_dtype=self.param_dtype,
                           name='spectral_norm')(x, update_stats=update_stats)
