"""DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019).

Two-stage gated-conv generator (coarse net, then a refinement net with a dilated
"hallucination" branch and a contextual-attention branch) and the SN-PatchGAN discriminator.
Layer names follow the TF reference (`conv1`..`conv17`, `xconv*`, `pmconv*`, `allconv*`).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers import ContextualAttention, GatedConv, GatedUpConv, SNConv
from flowinpaint.layers.contextual_attention import DEFAULT_MAX_SCORE_BYTES
from flowinpaint.models import registry

Dtype = Any


class DeepFillV2Generator(nn.Module):
  """Coarse-to-fine gated-conv generator.

  `cnum` counts conv outputs before gating as in the reference, so gated widths are cnum/2,
  cnum, 2*cnum. Contextual attention tiles its score matrix to stay under `ca_max_score_bytes`
  (None: no bound) unless `ca_chunk_size` fixes the tile size (see `contextual_attention`).
  `ca_fuse=False, ca_patch_norm='add'` reproduce the widely used PyTorch port (its converted
  weights expect them); the defaults are the TF reference's.

  `__call__(image [B,H,W,3] in [-1,1], mask [B,H,W,1] 1 = hole, *, train)` with H, W multiples
  of 8 returns float32 `{'output': x2, 'coarse': x1, 'offsets': int32 [B,H,W,2]}`; offsets are
  contextual attention's argmax (dy, dx) in image pixels (multiples of 8).
  """
  cnum: int = 48
  ca_chunk_size: Optional[int] = None
  ca_fuse: bool = True
  ca_patch_norm: str = 'max'
  ca_max_score_bytes: Optional[int] = DEFAULT_MAX_SCORE_BYTES
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    del train  # no dropout or batch norm
    cdtype = self.dtype or jnp.float32
    conv = functools.partial(GatedConv, dtype=self.dtype, param_dtype=self.param_dtype)
    up = functools.partial(GatedUpConv, dtype=self.dtype, param_dtype=self.param_dtype)
    c = self.cnum // 2
    image = image.astype(jnp.float32)
    mask = mask.astype(jnp.float32)
    x_in = image * (1. - mask)

    # Stage 1: coarse network.
    ones = jnp.ones_like(mask)
    x = jnp.concatenate([x_in, ones, ones * mask], axis=-1).astype(cdtype)
    x = conv(c, 5, name='conv1')(x)
    x = conv(2 * c, 3, 2, name='conv2_downsample')(x)
    x = conv(2 * c, 3, name='conv3')(x)
    x = conv(4 * c, 3, 2, name='conv4_downsample')(x)
    x = conv(4 * c, 3, name='conv5')(x)
    x = conv(4 * c, 3, name='conv6')(x)
    for i, rate in zip(range(7, 11), (2, 4, 8, 16)):
      x = conv(4 * c, 3, dilation=rate, name=f'conv{i}_atrous')(x)
    x = conv(4 * c, 3, name='conv11')(x)
    x = conv(4 * c, 3, name='conv12')(x)
    x = up(2 * c, name='conv13_upsample')(x)
    x = conv(2 * c, 3, name='conv14')(x)
    x = up(c, name='conv15_upsample')(x)
    x = conv(c // 2, 3, name='conv16')(x)
    x = conv(3, 3, activation=None, name='conv17')(x)
    x1 = jnp.tanh(x).astype(jnp.float32)

    # Stage 2 sees the coarse result pasted into the hole (3 channels, no mask channel).
    xnow = (x1 * mask + x_in * (1. - mask)).astype(cdtype)
    x = conv(c, 5, name='xconv1')(xnow)
    x = conv(c, 3, 2, name='xconv2_downsample')(x)
    x = conv(2 * c, 3, name='xconv3')(x)
    x = conv(2 * c, 3, 2, name='xconv4_downsample')(x)
    x = conv(4 * c, 3, name='xconv5')(x)
    x = conv(4 * c, 3, name='xconv6')(x)
    for i, rate in zip(range(7, 11), (2, 4, 8, 16)):
      x = conv(4 * c, 3, dilation=rate, name=f'xconv{i}_atrous')(x)
    x_hallu = x

    x = conv(c, 5, name='pmconv1')(xnow)
    x = conv(c, 3, 2, name='pmconv2_downsample')(x)
    x = conv(2 * c, 3, name='pmconv3')(x)
    x = conv(4 * c, 3, 2, name='pmconv4_downsample')(x)
    x = conv(4 * c, 3, name='pmconv5')(x)
    x = conv(4 * c, 3, activation=nn.relu, name='pmconv6')(x)
    # The 1/4-resolution map's mask: nearest resize, i.e. every 4th pixel.
    mask_s = mask[:, ::4, ::4]
    x, offsets = ContextualAttention(
        rate=2, chunk_size=self.ca_chunk_size, fuse=self.ca_fuse,
        patch_norm=self.ca_patch_norm, max_score_bytes=self.ca_max_score_bytes)(x, x, mask_s)
    x = conv(4 * c, 3, name='pmconv9')(x)
    x = conv(4 * c, 3, name='pmconv10')(x)

    x = jnp.concatenate([x_hallu, x], axis=-1)
    x = conv(4 * c, 3, name='allconv11')(x)
    x = conv(4 * c, 3, name='allconv12')(x)
    x = up(2 * c, name='allconv13_upsample')(x)
    x = conv(2 * c, 3, name='allconv14')(x)
    x = up(c, name='allconv15_upsample')(x)
    x = conv(c // 2, 3, name='allconv16')(x)
    x = conv(3, 3, activation=None, name='allconv17')(x)
    x2 = jnp.tanh(x).astype(jnp.float32)

    h, w = image.shape[1:3]
    offsets = jnp.repeat(jnp.repeat(offsets * 8, 4, axis=1), 4, axis=2)[:, :h, :w]
    return {'output': x2, 'coarse': x1, 'offsets': offsets}


class SNPatchGAN(nn.Module):
  """SN-PatchGAN: six 5x5 stride-2 spectral-norm convs with LeakyReLU(0.2).

  `__call__(image [B,H,W,3], mask [B,H,W,1], *, train)` -> float32 [B, H/64 * W/64 * 4*cnum];
  every element is one real/fake score. `train=True` updates the power-iteration state
  (apply with `mutable=['batch_stats']`).
  """
  cnum: int = 64
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.concatenate([image.astype(jnp.float32), mask.astype(jnp.float32)], axis=-1)
    x = x.astype(self.dtype or jnp.float32)
    for i, mult in enumerate((1, 2, 4, 4, 4, 4)):
      x = SNConv(self.cnum * mult, 5, 2, dtype=self.dtype, param_dtype=self.param_dtype,
                 name=f'conv{i + 1}')(x, update_stats=train)
      x = nn.leaky_relu(x, negative_slope=0.2)
    return x.reshape(x.shape[0], -1).astype(jnp.float32)


registry.register(registry.ModelSpec(
    name='deepfill_v2',
    make_generator=lambda cfg, dtype: DeepFillV2Generator(
        cnum=cfg.get('cnum', 48), ca_chunk_size=cfg.get('ca_chunk_size') or None,
        ca_fuse=cfg.get('ca_fuse', True), ca_patch_norm=cfg.get('ca_patch_norm', 'max'),
        ca_max_score_bytes=cfg.get('ca_max_score_bytes', DEFAULT_MAX_SCORE_BYTES) or None,
        dtype=dtype),
    make_discriminator=lambda cfg, dtype: SNPatchGAN(cnum=cfg.get('d_cnum', 64), dtype=dtype),
    multiple=8,
))
