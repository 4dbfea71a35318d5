"""PConv U-Net: "Image Inpainting for Irregular Holes Using Partial Convolutions" (Liu et al.,
ECCV 2018).

Encoder: `depth` partial convs of stride 2 (7x7 then 5x5, 5x5, then 3x3; widths 64, 128, 256,
then 512; BatchNorm from the second layer on; ReLU). Decoder: nearest x2 upsampling of the
features *and* the mask, concatenation with the encoder's skip features *and* their masks, a 3x3
partial conv (BatchNorm, LeakyReLU 0.2); the last layer concatenates the input image and mask
and outputs 3 channels without normalisation or activation. The paper uses depth 8 at 512x512
(the bottleneck is 2x2); depth 7 gives the same bottleneck at 256.

No discriminator: the model trains with the reconstruction loss 'pconv' (valid + 6 hole L1 +
0.1 total variation) of flowinpaint.train.losses, plus the paper's VGG-16 perceptual (0.05) and
style (120) terms (flowinpaint.train.feature_losses, recipe 'pconv') when VGG weights are given. Inputs of any size work: the image is padded
inside the model to a multiple of 2**depth with the padding marked as hole (partial convs
ignore it), and the output is cropped back.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers.partial_conv import PartialConv
from flowinpaint.models import registry

Dtype = Any


def encoder_plan(depth: int, cnum: int = 64) -> list[tuple[int, int]]:
  """(features, kernel) of each encoder layer: Liu et al.'s 64/7, 128/5, 256/5, 512/3 ..."""
  plan = []
  for i in range(depth):
    feats = cnum * min(2 ** i, 8)
    kernel = 7 if i == 0 else 5 if i < 3 else 3
    plan.append((feats, kernel))
  return plan


def _upsample(x: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class PConvUNet(nn.Module):
  """`__call__(image [B, H, W, 3] in [-1, 1], mask [B, H, W, 1] 1 = hole, *, train)
  -> {'output': [B, H, W, 3]}` (not clipped, not composited).

  Attributes:
    depth: number of stride-2 encoder layers (paper: 8 at 512 px).
    cnum: width of the first layer (paper 64; layers widen x2 up to 8 * cnum).
  """
  depth: int = 7
  cnum: int = 64
  dtype: Optional[Dtype] = None

  def _bn(self, x: jax.Array, train: bool, name: str) -> jax.Array:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=self.dtype, name=name)(x)

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    b, h, w, _ = image.shape
    m = 2 ** self.depth
    ph, pw = -h % m, -w % m
    hole = mask.astype(jnp.float32)
    x = image * (1.0 - hole)
    if ph or pw:
      x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
      hole = jnp.pad(hole, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=1.0)
    if self.dtype is not None:
      x = x.astype(self.dtype)

    skips = [(x, hole)]
    for i, (feats, k) in enumerate(encoder_plan(self.depth, self.cnum)):
      # Symmetric (k - 1) / 2 padding as in the paper's code, not TF 'SAME'.
      x, hole = PartialConv(feats, k, strides=2, padding=(k - 1) // 2, dtype=self.dtype,
                            name=f'enc{i + 1}')(x, hole)
      if i > 0:
        x = self._bn(x, train, f'enc{i + 1}_bn')
      x = nn.relu(x)
      skips.append((x, hole))

    x, hole = skips.pop()
    for j in range(self.depth):
      skip_x, skip_hole = skips.pop()
      last = j == self.depth - 1
      feats = 3 if last else skip_x.shape[-1]
      x = jnp.concatenate([_upsample(x), skip_x.astype(x.dtype)], axis=-1)
      # One mask channel per feature channel, so each part keeps its own validity.
      up_hole = jnp.broadcast_to(_upsample(hole), x.shape[:-1] + (x.shape[-1] - skip_x.shape[-1],))
      hole = jnp.concatenate(
          [up_hole, jnp.broadcast_to(skip_hole, skip_x.shape[:-1] + (skip_x.shape[-1],))], -1)
      x, hole = PartialConv(feats, 3, padding=1, dtype=self.dtype,
                            name=f'dec{self.depth + j + 1}')(x, hole)
      if not last:
        x = nn.leaky_relu(self._bn(x, train, f'dec{self.depth + j + 1}_bn'), 0.2)
    return {'output': x[:, :h, :w].astype(jnp.float32)}


def make_generator(cfg, dtype) -> PConvUNet:
  return PConvUNet(depth=cfg.get('depth', 7), cnum=cfg.get('cnum', 64), dtype=dtype)


SPEC = registry.register(registry.ModelSpec(
    name='pconv_unet', make_generator=make_generator, make_discriminator=None, multiple=1))
