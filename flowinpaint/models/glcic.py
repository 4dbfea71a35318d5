"""GLCIC: "Globally and Locally Consistent Image Completion" (Iizuka et al., SIGGRAPH 2017).

Completion network (17 conv layers, BatchNorm + ReLU, sigmoid output) and the two context
discriminators (global on the whole image, local on a patch centred on the hole), whose
1024-unit outputs are concatenated and mapped to one real/fake logit per sample. Trained with the
shared trainer's three phases (configs/glcic.py).

Layer facts: ../shared/reference/models.md section 1.4 (paper; otenim/GLCIC-PyTorch). Deviations:
BatchNorm comes before the ReLU as in the paper (otenim applies it after), and the input holes
are filled with `fill_value` in [-1, 1] space (the paper fills with the training set's mean pixel;
0 is mid-grey, set your data's mean).

`variant='official'` is the authors' released Torch7 network (satoshiiizuka/siggraph2017_inpainting,
`completionnet_places2.t7`, imported by `--from glcic_t7`): the same 17 layers, BatchNorm before
ReLU, sigmoid output, but (1) its input is the image in [0, 1] minus the mean pixel, holes set to
0 (i.e. to the mean), plus the mask; and (2) Torch pads every conv by (k - 1) / 2 * dilation on
all sides, so its stride-2 convs sample rows -1, 1, 3, ... where TF-style 'SAME' ('flowinpaint')
samples 0, 2, 4, ... (padding only after). (1) equals 'flowinpaint' with fill_value = 2 * mean -
1 up to an affine map of the input that conv1 could absorb, except where conv1's zero padding
meets it at the image border; (2) changes every output. The transposed convs agree (Torch's
padding 1 with a 4x4 kernel is 'SAME' here).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from flowinpaint.models import registry

Dtype = Any

# (kind, features, kernel, stride, dilation) of the completion network's 17 layers.
# kind 'c' = conv, 't' = transposed conv ("deconv" in the paper), 'o' = output conv.
_COMPLETION_LAYERS = (
    ('c', 64, 5, 1, 1),
    ('c', 128, 3, 2, 1),
    ('c', 128, 3, 1, 1),
    ('c', 256, 3, 2, 1),
    ('c', 256, 3, 1, 1),
    ('c', 256, 3, 1, 1),
    ('c', 256, 3, 1, 2),
    ('c', 256, 3, 1, 4),
    ('c', 256, 3, 1, 8),
    ('c', 256, 3, 1, 16),
    ('c', 256, 3, 1, 1),
    ('c', 256, 3, 1, 1),
    ('t', 128, 4, 2, 1),
    ('c', 128, 3, 1, 1),
    ('t', 64, 4, 2, 1),
    ('c', 32, 3, 1, 1),
    ('o', 3, 3, 1, 1),
)


def _batch_norm(train: bool, dtype: Optional[Dtype], name: str) -> nn.BatchNorm:
  # Torch's default momentum 0.1 is Flax's 0.9 (the weight of the old running average).
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      name=name)


class CompletionNetwork(nn.Module):
  """GLCIC's generator.

  `__call__(image [B, H, W, 3] in [-1, 1], mask [B, H, W, 1] 1 = hole, *, train)
  -> {'output': [B, H, W, 3] in [-1, 1]}`, H and W multiples of 4.

  Attributes:
    width: multiplies every layer's channels (1.0 = the paper's 64..256; tests use less).
    fill_value: the pixel value (in [-1, 1]) written into the holes of the input; with
      variant 'official', the mean pixel (2 * mean - 1) subtracted from the input.
    variant: 'flowinpaint' (input in [-1, 1] with holes filled, TF-style 'SAME' padding) or
      'official' (the authors' Torch7 network: input in [0, 1] minus the mean pixel with holes
      set to 0, Torch's symmetric padding); see the module docstring.
  """
  width: float = 1.0
  fill_value: Sequence[float] = (0.0, 0.0, 0.0)
  variant: str = 'flowinpaint'
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    fill = jnp.asarray(self.fill_value, image.dtype).reshape(1, 1, 1, -1)
    if self.variant == 'official':
      # inpaint.lua: I - mean (I in [0, 1]), then the holes zeroed.
      x = ((image - fill) * 0.5) * (1.0 - mask)
    elif self.variant == 'flowinpaint':
      x = image * (1.0 - mask) + fill * mask
    else:
      raise ValueError(f"variant must be 'flowinpaint' or 'official', got {self.variant!r}")
    x = jnp.concatenate([x, mask], axis=-1)
    if self.dtype is not None:
      x = x.astype(self.dtype)
    for i, (kind, feats, k, s, d) in enumerate(_COMPLETION_LAYERS):
      if kind == 'o':
        x = nn.Conv(feats, (k, k), padding='SAME', dtype=self.dtype, name='out')(x)  # stride 1
        break
      feats = max(1, round(feats * self.width))
      if kind == 't':
        x = nn.ConvTranspose(feats, (k, k), strides=(s, s), padding='SAME', dtype=self.dtype,
                             name=f'deconv{i + 1}')(x)
      else:
        pad = d * (k - 1) // 2
        padding = ((pad, pad), (pad, pad)) if self.variant == 'official' else 'SAME'
        x = nn.Conv(feats, (k, k), strides=(s, s), kernel_dilation=(d, d), padding=padding,
                    dtype=self.dtype, name=f'conv{i + 1}')(x)
      x = nn.relu(_batch_norm(train, self.dtype, f'bn{i + 1}')(x))
    # Sigmoid as in the paper, mapped from [0, 1] to the library's [-1, 1].
    return {'output': 2.0 * nn.sigmoid(x.astype(jnp.float32)) - 1.0}


def hole_center(mask: jax.Array) -> jax.Array:
  """Centre (row, col) of each sample's hole bounding box: [B, H, W, 1] -> int32 [B, 2].

  A sample without a hole gets the image centre.
  """
  h, w = mask.shape[1:3]
  hole = mask[..., 0] > 0.5

  def center(occupied: jax.Array, n: int) -> jax.Array:
    first = jnp.argmax(occupied, axis=-1)
    last = n - 1 - jnp.argmax(occupied[:, ::-1], axis=-1)
    return jnp.where(jnp.any(occupied, axis=-1), (first + last + 1) // 2, n // 2)

  return jnp.stack([center(jnp.any(hole, axis=2), h), center(jnp.any(hole, axis=1), w)],
                   axis=-1).astype(jnp.int32)


def crop_around_hole(image: jax.Array, mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
  """A size x size patch of each sample centred on its hole's bounding box, kept inside the image.

  Args:
    image: [B, H, W, C].
    mask: [B, H, W, 1], 1 = hole.
    size: patch side, <= min(H, W).

  Returns:
    (patches [B, size, size, C], their top-left corners int32 [B, 2]).
  """
  h, w = image.shape[1:3]
  if not 0 < size <= min(h, w):
    raise ValueError(f'local patch size {size} does not fit in a {h}x{w} image')
  corner = hole_center(mask) - size // 2
  corner = jnp.clip(corner, 0, jnp.array([h - size, w - size], jnp.int32))
  crop = lambda img, c: lax.dynamic_slice(img, (c[0], c[1], jnp.zeros((), c.dtype)),
                                          (size, size, img.shape[-1]))
  return jax.vmap(crop)(image, corner), corner


class _ContextBranch(nn.Module):
  """Stride-2 5x5 convs (BatchNorm + ReLU), then a 1024-unit fully connected layer + ReLU."""
  features: Sequence[int]
  fc_units: int
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for i, feats in enumerate(self.features):
      x = nn.Conv(feats, (5, 5), strides=(2, 2), padding='SAME', dtype=self.dtype,
                  name=f'conv{i + 1}')(x)
      x = nn.relu(_batch_norm(train, self.dtype, f'bn{i + 1}')(x))
    x = x.reshape(x.shape[0], -1)
    return nn.relu(nn.Dense(self.fc_units, dtype=self.dtype, name='fc')(x))


class ContextDiscriminator(nn.Module):
  """GLCIC's global + local discriminator: one logit per sample.

  `__call__(image [B, H, W, 3], mask [B, H, W, 1], *, train) -> logits [B, 1]`. The local branch
  sees a `local_size` patch centred on each sample's hole; the mask itself is not an input (as in
  the paper). H and W must be multiples of 2**6 (global) and `local_size` of 2**5 for the
  paper's flatten sizes (4x4 at 256 / 128); other sizes work, the FC input just differs.

  Attributes:
    width: multiplies the conv channels (1.0 = the paper's 64..512).
    fc_units: the width of each branch's last layer (paper 1024).
    local_size: local patch side; 0 = half the image side (the paper's 128 of 256).
  """
  width: float = 1.0
  fc_units: int = 1024
  local_size: int = 0
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, image: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    scale = lambda chans: [max(1, round(c * self.width)) for c in chans]
    size = self.local_size or min(image.shape[1:3]) // 2
    patch, _ = crop_around_hole(image, mask, size)
    if self.dtype is not None:
      image, patch = image.astype(self.dtype), patch.astype(self.dtype)
    local = _ContextBranch(scale((64, 128, 256, 512, 512)), self.fc_units, self.dtype,
                           name='local')(patch, train=train)
    glob = _ContextBranch(scale((64, 128, 256, 512, 512, 512)), self.fc_units, self.dtype,
                          name='global')(image, train=train)
    both = jnp.concatenate([glob, local], axis=-1)
    # One logit; the sigmoid of the paper lives in the BCE loss.
    return nn.Dense(1, dtype=self.dtype, name='out')(both).astype(jnp.float32)


def make_generator(cfg, dtype) -> CompletionNetwork:
  return CompletionNetwork(width=cfg.get('width', 1.0),
                           fill_value=tuple(cfg.get('fill_value', (0.0, 0.0, 0.0))),
                           variant=cfg.get('variant', 'flowinpaint'), dtype=dtype)


def make_discriminator(cfg, dtype) -> ContextDiscriminator:
  return ContextDiscriminator(width=cfg.get('d_width', 1.0), fc_units=cfg.get('fc_units', 1024),
                              local_size=cfg.get('local_size', 0), dtype=dtype)


SPEC = registry.register(registry.ModelSpec(
    name='glcic', make_generator=make_generator, make_discriminator=make_discriminator,
    multiple=4))
