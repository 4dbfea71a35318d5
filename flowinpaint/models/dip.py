"""Deep Image Prior (Ulyanov, Vedaldi and Lempitsky, CVPR 2018): the encoder-decoder it fits.

DIP needs no training data and no pretrained weights: a randomly initialised network with a
fixed random input `z` is fitted to the known pixels of one photo, and its output inside the hole
is the fill (the structure of the network is the prior). This module holds the network ("skip",
the authors' `models/skip.py`) and the settings of the paper's inpainting figures as the
authors' `inpainting.ipynb` sets them; the fitting loop is flowinpaint.dip.

The network, per scale i (input x at resolution R; the deepest scale has no inner part):

  skip = act(bn(conv_1x1(x)))                      (only when channels_skip[i] > 0)
  d = act(bn(conv_kd_stride2(x)))                   R/2
  d = act(bn(conv_kd(d)))                           R/2
  d = upsample_x2(scale_{i+1}(d))                   R
  y = bn(concat(skip, d))
  y = act(bn(conv_ku(y)))
  y = act(bn(conv_1x1(y)))                         (only with need_1x1_up)

then a 1x1 conv to 3 channels and a sigmoid. Every conv pads by reflection, act is LeakyReLU
(0.2), bn is batch normalisation with the statistics of the current batch: the reference never
switches its network to eval mode, so its BatchNorm always normalises with the batch's own
mean and (biased) variance, which for DIP's batch of one is a per-channel normalisation over the
image. Initialisation follows PyTorch's defaults (conv weights and biases uniform in
+-1/sqrt(fan_in), bn scale 1 and offset 0), the distribution the reference's results come from.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers import loop_conv

Dtype = Any

# PyTorch's default conv init (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), ...).
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


@dataclasses.dataclass(frozen=True)
class DIPSettings:
  """One inpainting setting of the reference (network, input, optimiser, iterations).

  Attributes:
    input_depth: channels of the fixed input z.
    input_kind: 'noise' (z ~ U(0, 1) * noise_scale) or 'meshgrid' (2 channels: x and y in
      [0, 1]).
    channels_down, channels_up, channels_skip: widths per scale (one entry per scale, so
      their length is the depth; the input size must be a multiple of 2**depth). A skip width
      of 0 means no skip connection at that scale.
    filter_down, filter_up, filter_skip: kernel sizes of the encoder convs, the decoder conv
      and the skip conv.
    need_1x1_up: a 1x1 conv (+ bn + act) after each decoder conv.
    upsample: 'nearest' or 'bilinear'.
    learning_rate: Adam's step size (PyTorch's Adam defaults otherwise: betas (0.9, 0.999),
      eps 1e-8).
    iterations: Adam steps.
    reg_noise_std: each step fits `z + N(0, reg_noise_std^2)` (fresh noise every step); 0: z.
    noise_scale: the 'noise' input's scale (the reference's `var = 1/10`).
    description: where the setting comes from.
  """
  input_depth: int
  input_kind: str
  channels_down: tuple[int, ...]
  channels_up: tuple[int, ...]
  channels_skip: tuple[int, ...]
  filter_down: int
  filter_up: int
  filter_skip: int
  need_1x1_up: bool
  upsample: str
  learning_rate: float
  iterations: int
  reg_noise_std: float
  noise_scale: float = 0.1
  description: str = ""

  @property
  def depth(self) -> int:
    return len(self.channels_down)

  @property
  def multiple(self) -> int:
    """Input height and width must be a multiple of this (2**depth)."""
    return 2 ** self.depth

  def network(self, dtype: Optional[Dtype] = None, conv_impl: str = "auto") -> "SkipNet":
    return SkipNet(channels_down=self.channels_down, channels_up=self.channels_up,
                   channels_skip=self.channels_skip, filter_down=self.filter_down,
                   filter_up=self.filter_up, filter_skip=self.filter_skip,
                   need_1x1_up=self.need_1x1_up, upsample=self.upsample, conv_impl=conv_impl,
                   dtype=dtype)


# The reference notebook's three inpainting settings (DmitryUlyanov/deep-image-prior,
# inpainting.ipynb). Its 'library' branch also sets param_noise = True, but the code that
# would perturb the weights rebinds a local name and changes nothing, so it is left out here.
PRESETS: dict[str, DIPSettings] = {
    # Fig. 8 (library, a large hole), NET_TYPE 'skip_depth6'.
    "large_hole": DIPSettings(
        input_depth=1, input_kind="noise",
        channels_down=(16, 32, 64, 128, 128, 128), channels_up=(16, 32, 64, 128, 128, 128),
        channels_skip=(0, 0, 0, 0, 0, 0), filter_down=5, filter_up=3, filter_skip=1,
        need_1x1_up=False, upsample="nearest", learning_rate=0.01, iterations=3001,
        reg_noise_std=0.0,
        description="paper Fig. 8 (library): skip net of depth 6, widths 16-128, no skip "
        "connections, 1-channel noise input, Adam 0.01, 3001 steps"),
    # Fig. 7 top (kate / peppers: text and scribbles), "same as super-resolution and denoising".
    "text": DIPSettings(
        input_depth=32, input_kind="noise",
        channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(128,) * 5,
        filter_down=3, filter_up=3, filter_skip=1, need_1x1_up=True, upsample="nearest",
        learning_rate=0.01, iterations=6001, reg_noise_std=0.03,
        description="paper Fig. 7 top (kate, text removal): skip net of depth 5, width 128, "
        "128-wide skips, 32-channel noise input perturbed by N(0, 0.03^2) each step, "
        "Adam 0.01, 6001 steps"),
    # Fig. 6 (vase): a meshgrid input instead of noise.
    "meshgrid": DIPSettings(
        input_depth=2, input_kind="meshgrid",
        channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(0,) * 5,
        filter_down=3, filter_up=3, filter_skip=1, need_1x1_up=True, upsample="nearest",
        learning_rate=0.01, iterations=5001, reg_noise_std=0.03,
        description="paper Fig. 6 (vase): skip net of depth 5, width 128, no skip "
        "connections, meshgrid input perturbed by N(0, 0.03^2) each step, Adam 0.01, 5001 "
        "steps"),
}
DEFAULT_PRESET = "large_hole"


def preset(name: str) -> DIPSettings:
  if name not in PRESETS:
    raise ValueError(f"unknown DIP preset {name!r}; choose one of {', '.join(PRESETS)}")
  return PRESETS[name]


def fixed_input(settings: DIPSettings, key: jax.Array, height: int, width: int) -> jax.Array:
  """The network's fixed input z, float32 [1, H, W, input_depth]."""
  if settings.input_kind == "noise":
    return jax.random.uniform(key, (1, height, width, settings.input_depth)) * \
        settings.noise_scale
  if settings.input_kind == "meshgrid":
    if settings.input_depth != 2:
      raise ValueError(f"a meshgrid input has 2 channels, not {settings.input_depth}")
    # x then y, each 0 at the first pixel and 1 at the last (the reference's get_meshgrid).
    ys = jnp.linspace(0.0, 1.0, height) if height > 1 else jnp.zeros((1,))
    xs = jnp.linspace(0.0, 1.0, width) if width > 1 else jnp.zeros((1,))
    grid = jnp.stack(jnp.meshgrid(xs, ys, indexing="xy"), axis=-1)
    return grid[None].astype(jnp.float32)
  raise ValueError(f"unknown input kind {settings.input_kind!r}; 'noise' or 'meshgrid'")


def _bias_init(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def conv_impl_for_backend(backend: Optional[str] = None) -> str:
  """'loop' on CPUs, 'xla' elsewhere: XLA:CPU runs autodiff's gradient convolutions 10-25x
  slower inside a while loop than outside one (jax-ml/jax#12868), and DIP's whole fit is one
  loop; layers.loop_conv's gradients stay fast there."""
  return "loop" if (backend or jax.default_backend()) == "cpu" else "xla"


class ReflectConv(nn.Module):
  """Reflection-padded conv ('valid' after padding (k - 1) // 2 each side), PyTorch init.

  [B, H, W, C] -> [B, H / stride, W / stride, features] for even H, W. Parameters 'kernel'
  [k, k, C, features] and 'bias' [features] whatever `impl`: 'xla' (lax.conv_general_dilated,
  autodiff's gradients) or 'loop' (layers.loop_conv: the same numbers, gradients written as
  forward convolutions).
  """
  features: int
  kernel: int
  stride: int = 1
  impl: str = "xla"
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, c = self.kernel, x.shape[-1]
    kernel = self.param("kernel", _torch_kernel_init, (k, k, c, self.features))
    bias = self.param("bias", _bias_init(k * k * c), (self.features,))
    dtype = self.dtype or x.dtype
    x, kernel, bias = x.astype(dtype), kernel.astype(dtype), bias.astype(dtype)
    p = (k - 1) // 2
    if p:
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    if self.impl == "xla":
      y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    elif self.impl == "loop":
      y = loop_conv.conv_nhwc(x, kernel, self.stride)
    else:
      raise ValueError(f"unknown conv impl {self.impl!r}; 'xla' or 'loop'")
    return y + bias


class BatchStatNorm(nn.Module):
  """BatchNorm as PyTorch's in training mode: the current batch's per-channel mean and biased
  variance over (B, H, W), eps 1e-5, a learned scale and offset. No running statistics."""
  epsilon: float = 1e-5
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    # Statistics in float32 even when computing in bf16: a variance is a small difference.
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axis=(0, 1, 2))
    var = jnp.square(x32 - mean).mean(axis=(0, 1, 2))
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(self.dtype or x.dtype)


def _upsample(x: jax.Array, mode: str) -> jax.Array:
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  if mode == "bilinear":
    # Half-pixel centres, as PyTorch's Upsample(mode='bilinear', align_corners=False).
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "bilinear").astype(x.dtype)
  raise ValueError(f"unknown upsample mode {mode!r}; 'nearest' or 'bilinear'")


class SkipNet(nn.Module):
  """The reference's `skip` encoder-decoder: `__call__(z [B, H, W, Cin]) -> [B, H, W, 3]` in
  [0, 1] (sigmoid). H and W must be multiples of 2**len(channels_down).

  Parameters are named `down{i}_a` / `down{i}_b` (the stride-2 and the second encoder conv,
  with their norms `down{i}_a_bn` ...), `skip{i}` (+ `_bn`), `merge{i}_bn` (the norm of the
  concatenation), `up{i}` (+ `_bn`), `up{i}_1x1` (+ `_bn`), and `output` (the final 1x1 conv).
  """
  channels_down: Sequence[int] = (16, 32, 64, 128, 128)
  channels_up: Sequence[int] = (16, 32, 64, 128, 128)
  channels_skip: Sequence[int] = (4, 4, 4, 4, 4)
  filter_down: int = 3
  filter_up: int = 3
  filter_skip: int = 1
  need_1x1_up: bool = True
  upsample: str = "nearest"
  out_channels: int = 3
  conv_impl: str = "auto"
  dtype: Optional[Dtype] = None

  def _impl(self) -> str:
    return conv_impl_for_backend() if self.conv_impl == "auto" else self.conv_impl

  def _block(self, x: jax.Array, features: int, kernel: int, name: str,
             stride: int = 1) -> jax.Array:
    x = ReflectConv(features, kernel, stride, impl=self._impl(), dtype=self.dtype, name=name)(x)
    x = BatchStatNorm(dtype=self.dtype, name=f"{name}_bn")(x)
    return nn.leaky_relu(x, 0.2)

  def _scale(self, x: jax.Array, i: int) -> jax.Array:
    skip = None
    if self.channels_skip[i]:
      skip = self._block(x, self.channels_skip[i], self.filter_skip, f"skip{i}")
    d = self._block(x, self.channels_down[i], self.filter_down, f"down{i}_a", stride=2)
    d = self._block(d, self.channels_down[i], self.filter_down, f"down{i}_b")
    if i + 1 < len(self.channels_down):
      d = self._scale(d, i + 1)
    d = _upsample(d, self.upsample)
    y = d if skip is None else jnp.concatenate([skip, d], axis=-1)
    y = BatchStatNorm(dtype=self.dtype, name=f"merge{i}_bn")(y)
    y = self._block(y, self.channels_up[i], self.filter_up, f"up{i}")
    if self.need_1x1_up:
      y = self._block(y, self.channels_up[i], 1, f"up{i}_1x1")
    return y

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    depth = len(self.channels_down)
    if not len(self.channels_up) == len(self.channels_skip) == depth:
      raise ValueError("channels_down, channels_up and channels_skip need one entry per scale")
    m = 2 ** depth
    if z.shape[1] % m or z.shape[2] % m:
      raise ValueError(f"input {z.shape[2]}x{z.shape[1]} (WxH) is not a multiple of {m} "
                       f"(2**depth); pad it first")
    x = z.astype(self.dtype) if self.dtype is not None else z
    y = self._scale(x, 0)
    y = ReflectConv(self.out_channels, 1, impl=self._impl(), dtype=self.dtype, name="output")(y)
    return jax.nn.sigmoid(y.astype(jnp.float32))
