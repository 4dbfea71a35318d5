"""DeepFill v1: "Generative Image Inpainting with Contextual Attention" (Yu et al., CVPR 2018).

Coarse-to-fine generator of plain convolutions with ELU (the same topology DeepFill v2 gates),
contextual attention in the refinement network's attention branch, outputs clipped to [-1, 1];
global and local WGAN-GP critics. Layer facts: ../shared/reference/models.md section 1.1
(JiahuiYu/generative_inpainting v1.0.0).

The two critics' scores are summed into one score per sample, so the trainer's WGAN losses
`mean(fake) - mean(real)` equal the reference's `d_loss_global + d_loss_local`. The trainer's
gradient penalty is then taken on that sum (one norm over the hole pixels of the full image,
which includes the local critic's gradient through the crop), whereas the reference penalises
each critic's gradient norm separately; see configs/deepfill_v1.py.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers.contextual_attention import DEFAULT_MAX_SCORE_BYTES
from flowinpaint.layers.contextual_attention import (contextual_attention,
                                                     resize_nearest_align_corners)
from flowinpaint.models import registry
from flowinpaint.models.glcic import crop_around_hole

Dtype = Any


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest x2 (the reference's resize with align_corners=True is this for exact x2)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class _Convs(nn.Module):
  """A plain-conv builder: `conv(features, k, stride, dilation, act)` with TF 'SAME' padding."""
  dtype: Optional[Dtype] = None

  def conv(self, x, features, kernel, name, stride=1, dilation=1, act=nn.elu):
    y = nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                kernel_dilation=(dilation, dilation), padding='SAME', dtype=self.dtype,
                name=name)(x)
    return act(y) if act is not None else y


class CoarseNetwork(_Convs):
  """Stage 1: [B, H, W, 5] -> [B, H, W, 3] (before clipping)."""
  cnum: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = self.cnum
    x = self.conv(x, c, 5, 'conv1')
    x = self.conv(x, 2 * c, 3, 'conv2_downsample', stride=2)
    x = self.conv(x, 2 * c, 3, 'conv3')
    x = self.conv(x, 4 * c, 3, 'conv4_downsample', stride=2)
    x = self.conv(x, 4 * c, 3, 'conv5')
    x = self.conv(x, 4 * c, 3, 'conv6')
    for i, rate in enumerate((2, 4, 8, 16)):
      x = self.conv(x, 4 * c, 3, f'conv{7 + i}_atrous', dilation=rate)
    x = self.conv(x, 4 * c, 3, 'conv11')
    x = self.conv(x, 4 * c, 3, 'conv12')
    x = self.conv(_upsample(x), 2 * c, 3, 'conv13_upsample')
    x = self.conv(x, 2 * c, 3, 'conv14')
    x = self.conv(_upsample(x), c, 3, 'conv15_upsample')
    x = self.conv(x, c // 2, 3, 'conv16')
    return self.conv(x, 3, 3, 'conv17', act=None)


class RefineNetwork(_Convs):
  """Stage 2: pasted stage-1 image (+ ones + mask) -> refined image, with contextual attention.

  `__call__(x [B, H, W, 5], mask [B, H, W, 1]) -> (image [B, H, W, 3], offsets or None)`.
  """
  cnum: int = 32
  ca_chunk_size: Optional[int] = None
  ca_max_score_bytes: Optional[int] = DEFAULT_MAX_SCORE_BYTES
  return_offsets: bool = False
  tf_resize: bool = False
  attention_downscale: Optional[str] = None

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array):
    c = self.cnum
    # Conv ("hallucination") branch.
    h = self.conv(x, c, 5, 'xconv1')
    h = self.conv(h, c, 3, 'xconv2_downsample', stride=2)
    h = self.conv(h, 2 * c, 3, 'xconv3')
    h = self.conv(h, 2 * c, 3, 'xconv4_downsample', stride=2)
    h = self.conv(h, 4 * c, 3, 'xconv5')
    h = self.conv(h, 4 * c, 3, 'xconv6')
    for i, rate in enumerate((2, 4, 8, 16)):
      h = self.conv(h, 4 * c, 3, f'xconv{7 + i}_atrous', dilation=rate)
    # Attention branch.
    a = self.conv(x, c, 5, 'pmconv1')
    a = self.conv(a, c, 3, 'pmconv2_downsample', stride=2)
    a = self.conv(a, 2 * c, 3, 'pmconv3')
    a = self.conv(a, 4 * c, 3, 'pmconv4_downsample', stride=2)
    a = self.conv(a, 4 * c, 3, 'pmconv5')
    a = self.conv(a, 4 * c, 3, 'pmconv6', act=nn.relu)  # ReLU here, as in the reference.
    # Nearest resize of the mask to the 1/4-resolution feature map.
    if self.tf_resize:
      mask_s = resize_nearest_align_corners(mask, *a.shape[1:3])
    else:
      mask_s = mask[:, ::4, ::4]
    mask_mode = 'align_corners' if self.tf_resize else 'stride'
    a, offsets = contextual_attention(
        a, a, mask_s, ksize=3, stride=1, rate=2, chunk_size=self.ca_chunk_size,
        max_score_bytes=self.ca_max_score_bytes,
        return_offsets=self.return_offsets, downscale=self.attention_downscale or mask_mode,
        mask_downscale=mask_mode)
    a = self.conv(a, 4 * c, 3, 'pmconv9')
    a = self.conv(a, 4 * c, 3, 'pmconv10')
    # Merged decoder.
    y = jnp.concatenate([h, a], axis=-1)
    y = self.conv(y, 4 * c, 3, 'allconv11')
    y = self.conv(y, 4 * c, 3, 'allconv12')
    y = self.conv(_upsample(y), 2 * c, 3, 'allconv13_upsample')
    y = self.conv(y, 2 * c, 3, 'allconv14')
    y = self.conv(_upsample(y), c, 3, 'allconv15_upsample')
    y = self.conv(y, c // 2, 3, 'allconv16')
    return self.conv(y, 3, 3, 'allconv17', act=None), offsets


class Generator(nn.Module):
  """DeepFill v1's coarse-to-fine generator.

  `__call__(image [B, H, W, 3] in [-1, 1], mask [B, H, W, 1] 1 = hole, *, train)
  -> {'output', 'coarse': [B, H, W, 3] in [-1, 1]}` (+ 'offsets' int32 [B, H/4, W/4, 2] at
  inference: contextual attention's argmax offsets). H and W must be multiples of 8.

  Attributes:
    cnum: base width (paper 32).
    ca_chunk_size: contextual attention's foreground tile, in positions (None: chosen from
      the sizes under ca_max_score_bytes).
    ca_max_score_bytes: contextual attention's score-memory budget (None: no bound).
    tf_resize: the nearest downscales (the mask to 1/4, and f, b and the mask by 1/2 inside
      contextual attention) as the official TF model's `resize_nearest_neighbor(
      align_corners=True)`, which picks rows round(i * (n - 1) / (n / s - 1)); False keeps every
      4th / 2nd pixel. Converted release weights (`--from deepfill_v1_tf`) set it; H and W
      must then be multiples of 8, as the reference requires anyway.
    attention_downscale: how contextual attention downscales its features by 1/2 when it
      differs from the mask's: 'grid_bilinear' is Deep Flow-Guided Video Inpainting's PyTorch
      port as its authors ran it (torch 0.4.0; layers/contextual_attention.py), set by
      `convert --from deepfill_v1_dfvi_pth`; the port's mask is every 8th pixel (tf_resize off).
      None: as the mask.
  """
  cnum: int = 32
  ca_chunk_size: Optional[int] = None
  ca_max_score_bytes: Optional[int] = DEFAULT_MAX_SCORE_BYTES
  tf_resize: bool = False
  attention_downscale: Optional[str] = None
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    ones = jnp.ones_like(mask)

    def stage_input(x):
      # The reference's 5 channels: the stage's image, a constant plane, the mask.
      inp = jnp.concatenate([x, ones, ones * mask], axis=-1)
      return inp.astype(self.dtype) if self.dtype is not None else inp

    masked = image * (1.0 - mask)
    coarse = CoarseNetwork(cnum=self.cnum, dtype=self.dtype, name='coarse')(stage_input(masked))
    coarse = jnp.clip(coarse.astype(jnp.float32), -1.0, 1.0)
    # Stage 2 sees the coarse result in the hole (not zeros), as the reference.
    pasted = coarse * mask + masked * (1.0 - mask)
    refine = RefineNetwork(cnum=self.cnum, ca_chunk_size=self.ca_chunk_size,
                           ca_max_score_bytes=self.ca_max_score_bytes,
                           return_offsets=not train, tf_resize=self.tf_resize,
                           attention_downscale=self.attention_downscale, dtype=self.dtype,
                           name='refine')
    fine, offsets = refine(stage_input(pasted), mask)
    out = {'output': jnp.clip(fine.astype(jnp.float32), -1.0, 1.0), 'coarse': coarse}
    if offsets is not None:
      out['offsets'] = offsets
    return out


class _Critic(nn.Module):
  """WGAN critic: 5x5 stride-2 convs + LeakyReLU(0.2), no normalisation, flatten, dense(1)."""
  features: tuple[int, ...]
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, feats in enumerate(self.features):
      x = nn.leaky_relu(nn.Conv(feats, (5, 5), strides=(2, 2), padding='SAME', dtype=self.dtype,
                                name=f'conv{i + 1}')(x), 0.2)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(1, dtype=self.dtype, name='dense')(x)[:, 0].astype(jnp.float32)


class Critics(nn.Module):
  """Global + local WGAN-GP critics; returns each critic's score per sample.

  `__call__(image [B, H, W, 3], mask [B, H, W, 1], *, train) -> {'global': [B], 'local': [B]}`;
  the trainer adds their losses and takes one gradient penalty per critic, as the reference. The local critic
  sees a `local_size` patch centred on the hole's bounding box (the reference crops the box it
  drew the hole in, 128 of 256). Neither critic sees the mask as an input.

  Attributes:
    cnum: base width (reference 64).
    local_size: local patch side; 0 = half the image side.
  """
  cnum: int = 64
  local_size: int = 0
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    del train  # No normalisation, no state.
    c = self.cnum
    size = self.local_size or min(image.shape[1:3]) // 2
    patch, _ = crop_around_hole(image, mask, size)
    if self.dtype is not None:
      image, patch = image.astype(self.dtype), patch.astype(self.dtype)
    local = _Critic((c, 2 * c, 4 * c, 8 * c), dtype=self.dtype, name='local')(patch)
    glob = _Critic((c, 2 * c, 4 * c, 4 * c), dtype=self.dtype, name='global')(image)
    return {'global': glob, 'local': local}


def make_generator(cfg, dtype) -> Generator:
  chunk = cfg.get('ca_chunk_size', 0)
  budget = cfg.get('ca_max_score_bytes', DEFAULT_MAX_SCORE_BYTES)
  return Generator(cnum=cfg.get('cnum', 32), ca_chunk_size=chunk or None,
                   ca_max_score_bytes=budget or None,
                   tf_resize=cfg.get('tf_resize', False),
                   attention_downscale=cfg.get('attention_downscale', '') or None, dtype=dtype)


def make_discriminator(cfg, dtype) -> Critics:
  return Critics(cnum=cfg.get('d_cnum', 64), local_size=cfg.get('local_size', 0), dtype=dtype)


SPEC = registry.register(registry.ModelSpec(
    name='deepfill_v1', make_generator=make_generator, make_discriminator=make_discriminator,
    multiple=8))
