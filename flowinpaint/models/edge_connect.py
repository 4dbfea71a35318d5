"""EdgeConnect (Nazeri et al., "EdgeConnect: Generative Image Inpainting with Adversarial Edge
Learning", ICCV Workshops 2019; reference `knazeri/edge-connect`).

Two generators of one design (`Generator`, the reference's `EdgeGenerator` / `InpaintGenerator`):
reflect pad 3 + 7x7 conv (64), two 4x4 stride-2 convs (128, 256), eight residual blocks at 256
(reflect pad 2 + 3x3 conv dilated 2, IN, ReLU, reflect pad 1 + 3x3 conv, IN; no ReLU after the
sum), two 4x4 stride-2 transposed convs (128, 64), reflect pad 3 + 7x7 conv. InstanceNorm without
affine or running statistics after every conv but the last, ReLU.

* Edge generator G1 (10.8 M params): in [gray, edges, mask] (gray * (1 - M) + M, Canny edges *
  (1 - M), M), out sigmoid edges. Spectral norm on every conv but the last (the residual blocks'
  convs then have no bias).
* Inpainting generator G2 (10.8 M): in [image * (1 - M) + M (RGB), edges], out (tanh + 1) / 2.
  No spectral norm.
* Discriminator (`Discriminator`, 2.8 M): 4x4 convs 64/128/256 stride 2, 512 and 1 stride 1,
  zero padding 1, LeakyReLU 0.2, spectral norm, no bias; its five activations are the feature
  matching loss's features. G1's sees [gray, edges], G2's the RGB image.

The reference works in [0, 1]; here models take and return [-1, 1] (the registry contract) and
convert at their boundary: `output` = 2 x the reference's output - 1 (tanh(x) for G2), edges as
2 e - 1, and the discriminators map their input back to [0, 1] first.

Edges are Canny's (`flowinpaint.classical.canny`, skimage's algorithm; the reference computes
them with `skimage.feature.canny(gray, sigma=2)`) of the grayscale image (`rgb2gray`). In
training, of the full image (the reference's training data: its `mask=None`); with train=False
(evaluation, inference), of the known pixels only (its test mode passes `mask=known`), so the
models never look into the hole.

Stages as the shared trainer's models (registry names; G1 lives under 'edge', G2 under
'inpaint', so the last stage's tree is the union of the first two's):

1. 'edge_connect_edge' (the reference's MODEL 1): G1 alone; 'target' = Canny of the full image,
   'condition' = the gray image (its discriminator sees [gray, edges]).
2. 'edge_connect_inpaint' (MODEL 2): G2 alone on the Canny edges of the full image (ground
   truth); with train=False on the edges of the known pixels.
3. 'edge_connect' (MODEL 3, and inference): G1 (frozen: train=False behind stop_gradient)
   predicts the edges, G2 inpaints with them. `merge_edges` (default, as the reference's
   training, evaluation and sampling do): G2 sees G1's edges inside the hole and the known
   Canny edges outside; off: G1's whole map, as the reference's `test()` (test.py) feeds it.
   The reference's MODEL 4 (both trained jointly) is not implemented.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.classical.canny import canny, rgb_to_gray
from flowinpaint.models import registry, stages

Array = jax.Array
Dtype = Any

# The reference's init_weights('normal', 0.02): N(0, 0.02) kernels, zero biases.
_INIT = nn.initializers.normal(0.02)


def _reflect_pad(x: Array, pad: int) -> Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def _instance_norm(dtype, param_dtype, name: str):
  # PyTorch's InstanceNorm2d(affine=False, track_running_stats=False): two-pass variance.
  return nn.InstanceNorm(epsilon=1e-5, use_bias=False, use_scale=False, use_fast_variance=False,
                         dtype=dtype, param_dtype=param_dtype, name=name)


class Conv(nn.Module):
  """A PyTorch Conv2d / ConvTranspose2d (zero padding `padding`), optionally spectral-normed.

  `transpose`: ConvTranspose2d(k, stride, padding) (output (H - 1) s - 2p + k); its Flax kernel
  is the PyTorch weight flipped spatially ([kh, kw, in, out] of w[in, out, ::-1, ::-1]).
  Spectral norm's power-iteration state (`u`, `sigma`) is in 'batch_stats', updated only with
  `update_stats=True`.
  """
  features: int
  kernel_size: int
  strides: int = 1
  padding: int = 0
  dilation: int = 1
  transpose: bool = False
  use_bias: bool = True
  spectral_norm: bool = False
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, update_stats: bool) -> Array:
    k, s = (self.kernel_size,) * 2, (self.strides,) * 2
    kw = dict(use_bias=self.use_bias, kernel_init=_INIT, dtype=self.dtype,
              param_dtype=self.param_dtype, name='conv')
    if self.transpose:
      p = self.kernel_size - 1 - self.padding
      layer = nn.ConvTranspose(self.features, k, s, padding=((p, p), (p, p)), **kw)
    else:
      p = self.padding
      layer = nn.Conv(self.features, k, s, padding=((p, p), (p, p)),
                      kernel_dilation=(self.dilation,) * 2, **kw)
    if not self.spectral_norm:
      return layer(x)
    return nn.SpectralNorm(layer, epsilon=1e-12, param_dtype=self.param_dtype,
                           name='spectral_norm')(x, update_stats=update_stats)


class ResnetBlock(nn.Module):
  """x + IN(conv3(pad1(ReLU(IN(conv3_dilated(pad_d(x))))))): [B, H, W, C] -> same."""
  features: int
  dilation: int = 2
  spectral_norm: bool = False
  use_bias: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    conv = functools.partial(Conv, self.features, 3, use_bias=self.use_bias,
                             spectral_norm=self.spectral_norm, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    y = conv(dilation=self.dilation, name='conv1')(_reflect_pad(x, self.dilation),
                                                   update_stats=train)
    y = nn.relu(_instance_norm(self.dtype, self.param_dtype, 'norm1')(y))
    y = conv(name='conv2')(_reflect_pad(y, 1), update_stats=train)
    return x + _instance_norm(self.dtype, self.param_dtype, 'norm2')(y)


class Generator(nn.Module):
  """G1 / G2: [B, H, W, C_in] (reference units, [0, 1]) -> pre-activation [B, H, W, out].

  H, W multiples of 4. `spectral_norm`: on every conv but the last (G1; off for G2, and for G1
  weights imported with their spectral norm folded in). `res_bias`: whether the residual
  blocks' convs have biases (G2 yes, G1 no: the reference drops them where it puts spectral
  norm). Returns float32 logits: sigmoid for G1, tanh for G2.
  """
  out_channels: int = 3
  width: int = 64
  n_res: int = 8
  spectral_norm: bool = False
  res_bias: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    d = self.width
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    sn = functools.partial(Conv, spectral_norm=self.spectral_norm, **kw)

    def block(x, conv, i):
      x = conv(x, update_stats=train)
      return nn.relu(_instance_norm(self.dtype, self.param_dtype, f'norm{i}')(x))

    x = x.astype(self.dtype or jnp.float32)
    x = block(_reflect_pad(x, 3), sn(d, 7, name='enc1'), 1)
    x = block(x, sn(2 * d, 4, 2, 1, name='enc2'), 2)
    x = block(x, sn(4 * d, 4, 2, 1, name='enc3'), 3)
    for i in range(self.n_res):
      x = ResnetBlock(4 * d, 2, self.spectral_norm, self.res_bias, name=f'res{i}', **kw)(
          x, train=train)
    x = block(x, sn(2 * d, 4, 2, 1, transpose=True, name='dec1'), 4)
    x = block(x, sn(d, 4, 2, 1, transpose=True, name='dec2'), 5)
    x = Conv(self.out_channels, 7, name='out', **kw)(_reflect_pad(x, 3), update_stats=train)
    return x.astype(jnp.float32)


class Discriminator(nn.Module):
  """The reference's `Discriminator`: [B, H, W, C] in [-1, 1] -> logits [B, H/8 - 2, W/8 - 2, 1].

  `__call__(x, mask, *, train, return_features=False)`; the mask is ignored (it sees only its
  input). With `return_features` it returns (logits, [the five activations]): the reference's
  feature-matching features (conv5's is the logit map itself, before the sigmoid that the
  reference applies for its BCE loss; here the loss takes logits). Its input goes to [0, 1]
  first, the reference's units.
  """
  width: int = 64
  spectral_norm: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None, *, train: bool,
               return_features: bool = False):
    del mask
    d = self.width
    conv = functools.partial(Conv, kernel_size=4, padding=1, use_bias=not self.spectral_norm,
                             spectral_norm=self.spectral_norm, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    h = ((x.astype(jnp.float32) + 1.0) / 2.0).astype(self.dtype or jnp.float32)
    features = []
    for i, (c, s) in enumerate(((d, 2), (2 * d, 2), (4 * d, 2), (8 * d, 1), (1, 1)), 1):
      h = conv(c, strides=s, name=f'conv{i}')(h, update_stats=train)
      if i < 5:
        h = nn.leaky_relu(h, negative_slope=0.2)
      features.append(h.astype(jnp.float32))
    logits = features[-1]
    return (logits, features) if return_features else logits


# --- The trainer-facing models: `__call__(image, mask, *, train) -> dict` (registry contract).


class _EdgeConnectModel(nn.Module):
  """What the stage models share: the Canny knobs, the widths and the dtypes."""
  width: int = 64
  n_res: int = 8
  edge_spectral_norm: bool = True
  canny_sigma: float = 2.0
  canny_low: float = 0.1
  canny_high: float = 0.2
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def prepare(self, image: Array, mask: Array, *, train: bool, want_full: bool = False):
    """(image01, gray, full-image edges or None, known edges), in [0, 1], no gradient.

    The known edges are the full image's in training and those of the known pixels otherwise;
    the full image's are computed with train=False only when `want_full`.
    """
    image01 = (jax.lax.stop_gradient(image).astype(jnp.float32) + 1.0) / 2.0
    gray = rgb_to_gray(image01)
    opts = dict(sigma=self.canny_sigma, low_threshold=self.canny_low,
                high_threshold=self.canny_high)
    full = canny(gray, **opts) if train or want_full else None
    known = full if train else canny(gray, mask=1.0 - mask, **opts)
    return image01, gray, full, known

  def edge_generator(self) -> Generator:
    return Generator(1, self.width, self.n_res, spectral_norm=self.edge_spectral_norm,
                     res_bias=False, dtype=self.dtype, param_dtype=self.param_dtype, name='edge')

  def inpaint_generator(self) -> Generator:
    return Generator(3, self.width, self.n_res, spectral_norm=False, res_bias=True,
                     dtype=self.dtype, param_dtype=self.param_dtype, name='inpaint')


def edge_inputs(gray: Array, edges: Array, mask: Array) -> Array:
  """G1's input [gray * (1 - M) + M, edges * (1 - M), M]: [B, H, W, 3], reference units."""
  return jnp.concatenate([gray * (1.0 - mask) + mask, edges * (1.0 - mask), mask], -1)


def inpaint_inputs(image01: Array, edges: Array, mask: Array) -> Array:
  """G2's input [image * (1 - M) + M, edges]: [B, H, W, 4], reference units."""
  return jnp.concatenate([image01 * (1.0 - mask) + mask, edges], -1)


class EdgeConnectEdge(_EdgeConnectModel):
  """Stage 1: G1 alone. `image` [B, H, W, 3] in [-1, 1], `mask` [B, H, W, 1] (1 = hole).

  Returns {'output': predicted edges [B, H, W, 1] in (-1, 1) (2 sigmoid - 1), 'target': the
  full image's Canny edges (-1 / 1), 'condition': the gray image (the discriminator's first
  channel), 'edges_input': the known edges G1 saw}.
  """

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    _, gray, full, known = self.prepare(image, mask, train=train, want_full=True)
    logits = self.edge_generator()(edge_inputs(gray, known, mask), train=train)
    return {'output': 2.0 * jax.nn.sigmoid(logits) - 1.0, 'target': 2.0 * full - 1.0,
            'condition': 2.0 * gray - 1.0, 'edges_input': 2.0 * known * (1.0 - mask) - 1.0}


class EdgeConnectInpaint(_EdgeConnectModel):
  """Stage 2: G2 alone on Canny edges (the full image's in training, the known pixels' with
  train=False). Returns {'output': image in (-1, 1), 'edges': the edges it used (-1 / 1)}."""

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    image01, _, full, known = self.prepare(image, mask, train=train)
    edges = full if train else known
    logits = self.inpaint_generator()(inpaint_inputs(image01, edges, mask), train=train)
    return {'output': jnp.tanh(logits), 'edges': 2.0 * edges - 1.0}


class EdgeConnect(_EdgeConnectModel):
  """Stage 3 and inference: G1 predicts the edges, G2 inpaints with them.

  Returns {'output': image in (-1, 1) ((tanh + 1) / 2 in reference units), 'edges': the edge map
  G2 used, 'edges_input': the known edges G1 saw, both in [-1, 1]}. With `freeze_edge` (the
  reference's MODEL 3) G1 runs with train=False behind stop_gradient: it neither learns nor
  updates its spectral-norm state.
  """
  merge_edges: bool = True
  freeze_edge: bool = True

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    mask = mask.astype(jnp.float32)
    image01, gray, _, known = self.prepare(image, mask, train=train)
    logits = self.edge_generator()(edge_inputs(gray, known, mask),
                                   train=train and not self.freeze_edge)
    predicted = jax.nn.sigmoid(logits)
    if self.freeze_edge:
      predicted = jax.lax.stop_gradient(predicted)
    edges = predicted * mask + known * (1.0 - mask) if self.merge_edges else predicted
    out = self.inpaint_generator()(inpaint_inputs(image01, edges, mask), train=train)
    return {'output': jnp.tanh(out), 'edges': 2.0 * edges - 1.0,
            'edges_input': 2.0 * known * (1.0 - mask) - 1.0}


def joint_variables(edge_variables: dict, inpaint_variables: dict) -> dict:
  """Stage-3 generator variables from trained stage-1 (G1) and stage-2 (G2) variables."""
  return stages.join_stages(edge=edge_variables, inpaint=inpaint_variables)


def _kwargs(cfg) -> dict:
  return dict(width=cfg.get('width', 64), n_res=cfg.get('n_res', 8),
              edge_spectral_norm=cfg.get('edge_spectral_norm', True),
              canny_sigma=cfg.get('canny_sigma', 2.0), canny_low=cfg.get('canny_low', 0.1),
              canny_high=cfg.get('canny_high', 0.2))


registry.register(registry.ModelSpec(
    name='edge_connect_edge',
    make_generator=lambda cfg, dtype: EdgeConnectEdge(dtype=dtype, **_kwargs(cfg)),
    make_discriminator=lambda cfg, dtype: Discriminator(cfg.get('d_width', 64), dtype=dtype),
    multiple=4,
))
registry.register(registry.ModelSpec(
    name='edge_connect_inpaint',
    make_generator=lambda cfg, dtype: EdgeConnectInpaint(dtype=dtype, **_kwargs(cfg)),
    make_discriminator=lambda cfg, dtype: Discriminator(cfg.get('d_width', 64), dtype=dtype),
    multiple=4,
))
registry.register(registry.ModelSpec(
    name='edge_connect',
    make_generator=lambda cfg, dtype: EdgeConnect(
        merge_edges=cfg.get('merge_edges', True), freeze_edge=cfg.get('freeze_edge', True),
        dtype=dtype, **_kwargs(cfg)),
    make_discriminator=lambda cfg, dtype: Discriminator(cfg.get('d_width', 64), dtype=dtype),
    multiple=4,
))
