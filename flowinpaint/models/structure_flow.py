"""StructureFlow (Ren et al., "Image Inpainting via Structure-aware Appearance Flow", ICCV 2019).

Two generators, trained in three stages (reference `RenYurui/StructureFlow`, `MODEL: 1/2/3`):

* Structure reconstructor G_s (`StructureReconstructor`, the reference's `StructureGen`): from
  the masked image, the masked RTV structure and the mask (7 channels) it predicts the RTV
  structure of the whole image (edge-preserving, texture-free). Encoder to 1/8 with 512 channels,
  a decoder of ResBlocks + nearest x2 + 5x5 conv at three scales with additive skips (a 5x5
  conv of the matching encoder feature), 3x3 conv + tanh. InstanceNorm, ReLU, reflect padding;
  spectral norm on the encoder/decoder convs (the reference leaves it off the ResBlocks, skips
  and output conv). 36.1 M parameters at width 64. `structure_spectral_norm=False` builds plain
  convs instead: the authors' released weights, converted with sigma folded into the kernels
  (flowinpaint.weights.structure_flow_torch), run that way.
* Texture generator G_t (`TextureGenerator`, `FlowGen`): a flow column (InstanceNorm) predicts a
  2-channel appearance flow at 1/4 resolution; a conv column (LayerNorm) encodes the image to
  1/4 (feature f) and 1/8, and its decoder concatenates `f` warped by the flow with Gaussian
  sampling (n = 16, sigma = 4 and n = 4, sigma = 2) at 1/4 before decoding to full resolution.
  No spectral norm (the released config's `use_sn: False`). 56.5 M parameters at width 64.
* Discriminator (`MultiScaleDiscriminator`): the same patch discriminator on the image and on its
  3x3/stride-2 average-pooled copy; each is a 4x4/2 conv, two downsampling residual blocks and a
  1x1 conv to one logit map (spectral norm, LeakyReLU 0.2). It sees only the image.

Stages as the shared trainer's models (registry names; parameter trees nest G_s under
'structure' and G_t under 'texture', so the stage-3 tree is the union of the stage-1 and stage-2
trees, see `joint_variables`):

1. 'structure_flow_structure': G_s alone. Its target, the RTV structure of the full image, is
   computed on the fly (`flowinpaint.classical.rtv`, under stop_gradient) and returned as
   'target', so the trainer's L1 and its discriminator's "real" use it.
2. 'structure_flow_texture': G_t alone on ground-truth structures (the RTV of the full image).
3. 'structure_flow': G_s (frozen: its output is stop-gradient'ed and it runs with train=False,
   so Adam's zero gradients leave it unchanged) reconstructs the structure that G_t then uses.

Where the structure input comes from: in training the paper feeds RTV(full image) * (1 - M),
which lets a few hole pixels leak through the RTV solve near the hole border. With
`train=False` (evaluation, inference) the models never look at the hole: the input structure is
the mask-aware RTV of the masked image (hole excluded from the data term, filled by diffusion),
or, with `rtv_mask_mode='gradients'` (no dilation, `rtv_blur_padding='zero'`: what converted
official weights use), the authors' own test-time recipe, their tsmooth.m on the masked image
with the hole's pixel gradients zeroed (experiments/rtv/README.md compares the two).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.classical.rtv import rtv
from flowinpaint.layers.gaussian_sampling import gaussian_sample
from flowinpaint.layers.spectral_norm import SNConv
from flowinpaint.models import registry, stages

Array = jax.Array
Dtype = Any

# The reference initialises convs with xavier_normal_(gain=sqrt(2)): var = 2 / fan_avg.
_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'normal')
_ACTIVATIONS = {
    'relu': nn.relu,
    'lrelu': lambda x: nn.leaky_relu(x, negative_slope=0.2),
    'tanh': jnp.tanh,
    'none': lambda x: x,
}


def _reflect_pad(x: Array, pad: int) -> Array:
  if pad == 0:
    return x
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def upsample_nearest(x: Array) -> Array:
  """[B, H, W, C] -> [B, 2H, 2W, C] (PyTorch's `nn.Upsample(scale_factor=2)`)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvBlock(nn.Module):
  """Reflect pad ((k - 1) // 2), conv (optionally spectral-normalised), norm, activation.

  The reference's `Conv2dBlock`. norm: 'in' (InstanceNorm, no affine), 'ln' (LayerNorm over
  H, W, C with a per-channel affine, as the reference's `LayerNorm`), 'none'.
  Input [B, H, W, C]; output [B, H / s, W / s, features] (k = 4, s = 2 halves exactly).
  """
  features: int
  kernel_size: int
  strides: int = 1
  norm: str = 'in'
  activation: str = 'relu'
  spectral_norm: bool = False
  use_bias: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = _reflect_pad(x, (self.kernel_size - 1) // 2)
    k, s = (self.kernel_size,) * 2, (self.strides,) * 2
    if self.spectral_norm:
      x = SNConv(self.features, k, s, padding='VALID', use_bias=self.use_bias, dtype=self.dtype,
                 param_dtype=self.param_dtype, name='conv')(x, update_stats=train)
    else:
      x = nn.Conv(self.features, k, s, padding='VALID', use_bias=self.use_bias,
                  kernel_init=_INIT, dtype=self.dtype, param_dtype=self.param_dtype,
                  name='conv')(x)
    x = _norm(self.norm, self.dtype, self.param_dtype)(x)
    return _ACTIVATIONS[self.activation](x)


def _norm(kind: str, dtype, param_dtype, name: str = 'norm'):
  if kind == 'in':
    return nn.InstanceNorm(epsilon=1e-5, use_bias=False, use_scale=False, dtype=dtype,
                           param_dtype=param_dtype, name=name)
  if kind == 'ln':
    return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=-1, dtype=dtype,
                        param_dtype=param_dtype, name=name)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f'unknown norm {kind!r}')


class ResBlocks(nn.Module):
  """`n` residual blocks: x + (conv3 norm act, conv3 norm); no spectral norm (as the reference)."""
  n: int
  features: int
  norm: str = 'in'
  activation: str = 'relu'
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    conv = functools.partial(ConvBlock, self.features, 3, norm=self.norm, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    for i in range(self.n):
      y = conv(activation=self.activation, name=f'block{i}_conv1')(x, train=train)
      y = conv(activation='none', name=f'block{i}_conv2')(y, train=train)
      x = x + y
    return x


class StructureReconstructor(nn.Module):
  """G_s. `__call__(masked_image, masked_structure, mask, *, train) -> structure`.

  Inputs [B, H, W, 3], [B, H, W, 3], [B, H, W, 1] (H, W multiples of 8); output [B, H, W, 3]
  in (-1, 1), float32. `width` is the reference's `dim` (64).
  """
  width: int = 64
  n_res: int = 4
  # False: plain convs, for weights whose spectral normalisation is already folded into the
  # kernels (converted checkpoints: the reference divides by its stored sigma at test time).
  spectral_norm: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, masked_image: Array, masked_structure: Array, mask: Array, *,
               train: bool) -> Array:
    d = self.width
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    sn = functools.partial(ConvBlock, norm='in', activation='relu',
                           spectral_norm=self.spectral_norm, **kw)
    plain = functools.partial(ConvBlock, norm='in', activation='relu', **kw)
    x = jnp.concatenate([masked_image, masked_structure, mask], -1).astype(self.dtype or
                                                                             jnp.float32)
    x0 = sn(d, 7, name='input')(x, train=train)  # 1
    x1 = sn(2 * d, 4, 2, name='down1a')(x0, train=train)  # 1/2
    x1 = sn(2 * d, 5, name='down1b')(x1, train=train)
    x2 = sn(4 * d, 4, 2, name='down2a')(x1, train=train)  # 1/4
    x2 = sn(4 * d, 5, name='down2b')(x2, train=train)
    x3 = sn(8 * d, 4, 2, name='down3')(x2, train=train)  # 1/8

    u = x3
    for i, (skip, c) in enumerate(((x2, 4 * d), (x1, 2 * d), (x0, d))):
      u = ResBlocks(self.n_res, 2 * c, name=f'up{i + 1}_res', **kw)(u, train=train)
      u = sn(c, 5, name=f'up{i + 1}_conv')(upsample_nearest(u), train=train)
      u = u + plain(c, 5, name=f'skip{i + 1}')(skip, train=train)
    out = ConvBlock(3, 3, norm='none', activation='tanh', name='output', **kw)(u, train=train)
    return out.astype(jnp.float32)


class FlowColumn(nn.Module):
  """G_t's flow column: [B, H, W, 7] -> appearance flow [B, H/4, W/4, 2] (x, y) in 1/4 pixels."""
  width: int = 64
  n_res: int = 2
  norm: str = 'in'
  spectral_norm: bool = False
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    d = self.width
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(ConvBlock, norm=self.norm, activation='relu',
                             spectral_norm=self.spectral_norm, **kw)
    x = conv(d // 2, 7, name='down0a')(x, train=train)
    x = conv(d, 4, 2, name='down0b')(x, train=train)
    x = conv(d, 5, name='down0c')(x, train=train)  # 1/2
    x = conv(2 * d, 4, 2, name='down1a')(x, train=train)
    f2 = conv(2 * d, 5, name='down1b')(x, train=train)  # 1/4
    x = conv(4 * d, 4, 2, name='down2a')(f2, train=train)
    f3 = conv(4 * d, 5, name='down2b')(x, train=train)  # 1/8
    x = conv(8 * d, 4, 2, name='down3a')(f3, train=train)
    x = conv(8 * d, 5, name='down3b')(x, train=train)  # 1/16

    def up(x, features, name):
      # PyTorch ConvTranspose2d(k=6, s=2, p=2) doubles the size: in lax terms the dilated input
      # is padded by k - 1 - p = 3 on each side.
      x = nn.ConvTranspose(features, (6, 6), (2, 2), padding=((3, 3), (3, 3)), kernel_init=_INIT,
                           name=name, **kw)(x)
      return nn.relu(_norm(self.norm, self.dtype, self.param_dtype, f'{name}_norm')(x))

    x = ResBlocks(self.n_res, 8 * d, self.norm, name='up1_res', **kw)(x, train=train)
    x = jnp.concatenate([up(x, 4 * d, 'up1_deconv'), f3], -1)  # 1/8, 8d
    x = conv(4 * d, 5, name='up2_conv')(x, train=train)
    x = ResBlocks(self.n_res, 4 * d, self.norm, name='up2_res', **kw)(x, train=train)
    x = jnp.concatenate([up(x, 2 * d, 'up2_deconv'), f2], -1)  # 1/4, 4d
    x = conv(d, 5, name='location1')(x, train=train)
    flow = ConvBlock(2, 3, norm='none', activation='none', use_bias=False, name='location2',
                     **kw)(x, train=train)
    return flow.astype(jnp.float32)


class ConvColumn(nn.Module):
  """G_t's image column: [B, H, W, 7] + flow [B, H/4, W/4, 2] -> image [B, H, W, 3] in (-1, 1)."""
  width: int = 64
  n_res: int = 2
  norm: str = 'ln'
  spectral_norm: bool = False
  sample_windows: tuple[tuple[int, float], ...] = ((16, 4.0), (4, 2.0))
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, flow: Array, *, train: bool) -> Array:
    d = self.width
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(ConvBlock, norm=self.norm, activation='relu',
                             spectral_norm=self.spectral_norm, **kw)
    res = functools.partial(ResBlocks, self.n_res, norm=self.norm, **kw)
    x = conv(d // 2, 7, name='down0a')(x, train=train)
    x = conv(d, 4, 2, name='down0b')(x, train=train)
    x = conv(d, 5, name='down0c')(x, train=train)
    x = conv(2 * d, 4, 2, name='down0d')(x, train=train)
    f1 = conv(2 * d, 5, name='down0e')(x, train=train)  # 1/4: the features that get warped.
    x = conv(4 * d, 5, name='down1a')(f1, train=train)
    x = conv(8 * d, 4, 2, name='down1b')(x, train=train)  # 1/8

    warped = [gaussian_sample(f1, flow.astype(jnp.float32), kernel_size=n, sigma=s)
              for n, s in self.sample_windows]
    x = res(8 * d, name='up1_res')(x, train=train)
    x = conv(4 * d, 5, name='up1_conv')(upsample_nearest(x), train=train)
    x = jnp.concatenate([x] + warped, -1)  # 1/4, 8d
    x = conv(4 * d, 5, name='up2_conv')(x, train=train)
    x = res(4 * d, name='up2_res')(x, train=train)
    x = conv(2 * d, 5, name='up3_conv')(upsample_nearest(x), train=train)
    x = res(2 * d, name='up3_res')(x, train=train)
    x = conv(d, 5, name='up4_conv')(upsample_nearest(x), train=train)
    out = ConvBlock(3, 3, norm='none', activation='tanh', name='output', **kw)(x, train=train)
    return out.astype(jnp.float32)


class TextureGenerator(nn.Module):
  """G_t. `__call__(masked_image, structure, mask, *, train) -> (image, flow)`.

  Inputs [B, H, W, 3], [B, H, W, 3], [B, H, W, 1] (H, W multiples of 16); outputs the image
  [B, H, W, 3] in (-1, 1) and the appearance flow [B, H/4, W/4, 2] (dx, dy in 1/4-resolution
  pixels), both float32.
  """
  width: int = 64
  n_res: int = 2
  spectral_norm: bool = False
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, masked_image: Array, structure: Array, mask: Array, *,
               train: bool) -> tuple[Array, Array]:
    kw = dict(width=self.width, n_res=self.n_res, spectral_norm=self.spectral_norm,
              dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.concatenate([masked_image, structure, mask], -1).astype(self.dtype or jnp.float32)
    flow = FlowColumn(norm='in', name='flow_column', **kw)(x, train=train)
    image = ConvColumn(norm='ln', name='conv_column', **kw)(x, flow, train=train)
    return image, flow


class PatchDiscriminator(nn.Module):
  """4x4/2 conv 64, two downsampling residual blocks (128, 256), 1x1 conv to one logit.

  [B, H, W, 3] -> [B, H/8, W/8, 1]. Spectral norm and LeakyReLU(0.2) everywhere (the reference's
  `Discriminator(n_layers=3)`).
  """
  width: int = 64
  n_layers: int = 3
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    conv = functools.partial(ConvBlock, norm='none', activation='lrelu', spectral_norm=True,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    pool = lambda v: nn.avg_pool(v, (2, 2), (2, 2))
    x = conv(self.width, 4, 2, name='conv0')(x, train=train)
    c_in = self.width
    for i in range(self.n_layers - 1):
      c_out = min(self.width * 8, c_in * 2)
      main = conv(c_in, 3, name=f'down{i + 1}_conv1')(x, train=train)
      main = pool(conv(c_out, 3, name=f'down{i + 1}_conv2')(main, train=train))
      short = conv(c_out, 1, name=f'down{i + 1}_shortcut')(pool(x), train=train)
      x, c_in = main + short, c_out
    return conv(1, 1, activation='none', use_bias=False, name='logits')(x, train=train)


class MultiScaleDiscriminator(nn.Module):
  """Two `PatchDiscriminator`s: on the image and on its 3x3/2 average-pooled copy.

  `__call__(image [B, H, W, 3], mask, *, train) -> [B, 2 * H/8 * W/8]` float32 (H, W multiples
  of 16; the mask is ignored, the reference's discriminator sees only the image). The coarse
  scale's logit map is repeated 2 x 2 so both scales have as many elements: the mean of an
  elementwise GAN loss over the result is then the reference's average of the two scales' means.
  """
  width: int = 64
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> Array:
    del mask
    x = image.astype(self.dtype or jnp.float32)
    kw = dict(width=self.width, dtype=self.dtype, param_dtype=self.param_dtype)
    fine = PatchDiscriminator(name='scale1', **kw)(x, train=train)
    down = nn.avg_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)), count_include_pad=False)
    coarse = upsample_nearest(PatchDiscriminator(name='scale2', **kw)(down, train=train))
    b = image.shape[0]
    return jnp.concatenate([fine.reshape(b, -1), coarse.reshape(b, -1)], -1).astype(jnp.float32)


# --- The trainer-facing models: `__call__(image, mask, *, train) -> dict` (registry contract).


class _StageModel(nn.Module):
  """What the stage models share: the RTV knobs and dtypes; structures are in [-1, 1]."""
  rtv_lam: float = 0.015
  rtv_sigma: float = 3.0
  rtv_sharpness: float = 1e-3
  rtv_iterations: int = 3
  # How the hole is handled at inference (classical.rtv): 'diffuse' (ours: the hole is no data,
  # filled by diffusion; its gradients zeroed over a `rtv_mask_dilation`-grown hole) or
  # 'gradients' (the authors' tsmooth(I_in, ..., mask): black hole kept as data, only its pixel
  # gradients zeroed); and the Gaussian blur's padding, 'symmetric' or 'zero' (the authors').
  rtv_mask_mode: str = 'diffuse'
  rtv_mask_dilation: int = 3
  rtv_blur_padding: str = 'symmetric'
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def structures(self, image: Array, mask: Array, *, train: bool) -> tuple[Array, Array]:
    """(full-image structure or None, structure input of G_s), both [B, H, W, 3] in [-1, 1]."""
    opts = dict(lam=self.rtv_lam, sigma=self.rtv_sigma, sharpness=self.rtv_sharpness,
                iterations=self.rtv_iterations, blur_padding=self.rtv_blur_padding)
    image01 = (image.astype(jnp.float32) + 1.0) / 2.0
    full = jax.lax.stop_gradient(rtv(image01, **opts) * 2.0 - 1.0)
    if train:
      return full, full * (1.0 - mask)
    masked = jax.lax.stop_gradient(rtv(
        image01 * (1.0 - mask), mask=mask, mask_mode=self.rtv_mask_mode,
        mask_dilation=self.rtv_mask_dilation, **opts) * 2.0 - 1.0)
    return full, masked * (1.0 - mask)


class StructureFlowStage1(_StageModel):
  """Stage 1: G_s alone. Returns {'output': structure, 'target': RTV(image), 'structure_input'}.

  `image` [B, H, W, 3] in [-1, 1], `mask` [B, H, W, 1] with 1 = hole; H, W multiples of 16.
  'target' is computed from the full image (it is the training target, like `batch['image']`
  for other models); 'structure_input' and 'output' never see the hole when train=False.
  """
  width: int = 64
  n_res: int = 4
  structure_spectral_norm: bool = True

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    target, s_in = self.structures(image, mask, train=train)
    masked = image.astype(jnp.float32) * (1.0 - mask)
    out = StructureReconstructor(self.width, self.n_res, self.structure_spectral_norm,
                                 self.dtype, self.param_dtype, name='structure')(
                                     masked, s_in, mask, train=train)
    return {'output': out, 'target': target, 'structure_input': s_in}


class StructureFlowStage2(_StageModel):
  """Stage 2: G_t alone on the ground-truth structure (RTV of the full image) in training.

  Returns {'output': image, 'flow': [B, H/4, W/4, 2], 'structure': the structure it used}.
  With train=False the structure is the mask-aware RTV of the masked image (no ground truth at
  inference).
  """
  width: int = 64
  n_res: int = 2

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    full, s_in = self.structures(image, mask, train=train)
    structure = full if train else s_in
    masked = image.astype(jnp.float32) * (1.0 - mask)
    out, flow = TextureGenerator(self.width, self.n_res, dtype=self.dtype,
                                 param_dtype=self.param_dtype, name='texture')(
                                     masked, structure, mask, train=train)
    return {'output': out, 'flow': flow, 'structure': structure}


class StructureFlow(_StageModel):
  """Stage 3 and inference: G_s reconstructs the structure, G_t inpaints with it.

  Returns {'output': image, 'structure': G_s's structure, 'structure_input', 'flow'}. With
  `freeze_structure` (the paper's stage 3) G_s runs with train=False behind stop_gradient, so it
  neither learns nor updates its spectral-norm state; G_t sees G_s's raw output as the
  reference does.
  """
  width: int = 64
  structure_width: Optional[int] = None  # Defaults to `width`.
  structure_n_res: int = 4
  texture_n_res: int = 2
  freeze_structure: bool = True
  structure_spectral_norm: bool = True  # False for converted weights (sigma folded in).

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    _, s_in = self.structures(image, mask, train=train)
    masked = image.astype(jnp.float32) * (1.0 - mask)
    structure = StructureReconstructor(self.structure_width or self.width, self.structure_n_res,
                                       self.structure_spectral_norm, self.dtype,
                                       self.param_dtype, name='structure')(
                                           masked, s_in, mask,
                                           train=train and not self.freeze_structure)
    if self.freeze_structure:
      structure = jax.lax.stop_gradient(structure)
    out, flow = TextureGenerator(self.width, self.texture_n_res, dtype=self.dtype,
                                 param_dtype=self.param_dtype, name='texture')(
                                     masked, structure, mask, train=train)
    return {'output': out, 'structure': structure, 'structure_input': s_in, 'flow': flow}


def joint_variables(stage1_variables: dict, stage2_variables: dict) -> dict:
  """Stage-3 generator variables from trained stage-1 (G_s) and stage-2 (G_t) variables.

  Both are `{'params': ..., 'batch_stats': ...}` trees as the trainer checkpoints them; the
  result has 'structure' from the first and 'texture' from the second in every collection.
  """
  return stages.join_stages(structure=stage1_variables, texture=stage2_variables)


def _rtv_kwargs(cfg) -> dict:
  return dict(rtv_lam=cfg.get('rtv_lam', 0.015), rtv_sigma=cfg.get('rtv_sigma', 3.0),
              rtv_sharpness=cfg.get('rtv_sharpness', 1e-3),
              rtv_iterations=cfg.get('rtv_iterations', 3),
              rtv_mask_mode=cfg.get('rtv_mask_mode', 'diffuse'),
              rtv_mask_dilation=cfg.get('rtv_mask_dilation', 3),
              rtv_blur_padding=cfg.get('rtv_blur_padding', 'symmetric'))


def _discriminator(cfg, dtype) -> MultiScaleDiscriminator:
  return MultiScaleDiscriminator(width=cfg.get('d_width', 64), dtype=dtype)


registry.register(registry.ModelSpec(
    name='structure_flow_structure',
    make_generator=lambda cfg, dtype: StructureFlowStage1(
        width=cfg.get('width', 64), n_res=cfg.get('n_res', 4),
        structure_spectral_norm=cfg.get('structure_spectral_norm', True), dtype=dtype,
        **_rtv_kwargs(cfg)),
    make_discriminator=_discriminator,
    multiple=16,
))
registry.register(registry.ModelSpec(
    name='structure_flow_texture',
    make_generator=lambda cfg, dtype: StructureFlowStage2(
        width=cfg.get('width', 64), n_res=cfg.get('texture_n_res', 2), dtype=dtype,
        **_rtv_kwargs(cfg)),
    make_discriminator=_discriminator,
    multiple=16,
))
registry.register(registry.ModelSpec(
    name='structure_flow',
    make_generator=lambda cfg, dtype: StructureFlow(
        width=cfg.get('width', 64), structure_width=cfg.get('structure_width') or None,
        structure_n_res=cfg.get('n_res', 4), texture_n_res=cfg.get('texture_n_res', 2),
        freeze_structure=cfg.get('freeze_structure', True),
        structure_spectral_norm=cfg.get('structure_spectral_norm', True), dtype=dtype,
        **_rtv_kwargs(cfg)),
    make_discriminator=_discriminator,
    multiple=16,
))
