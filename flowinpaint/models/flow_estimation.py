"""A small PWC-Net-style optical flow network (pyramid, warping, cost volume), in Flax.

Design (why not FlowNet2 or RAFT): DFVI used FlowNet2, a stack of five networks (~162M
parameters, inputs a multiple of 64, custom CUDA correlation) trained in several stages on
FlyingChairs/Things. RAFT is more accurate but refines a 1/8-resolution flow with a recurrent
unit 12-32 times over an all-pairs cost volume of (HW/64)^2 entries, which is slow on CPU and
large at video resolution. PWC-Net's recipe (Sun et al. 2018) is the one that stays small and
trains end to end in one stage: a shared feature pyramid for both frames; from the coarsest level
down, the second frame's features are warped by the upsampled current flow, a local cost volume
(flowinpaint.layers.correlation, search radius 4) is built against the first frame's features and
a few convolutions predict a residual flow. Large motions are found at coarse levels with a small
search radius, so cost and memory grow linearly with the pixel count.

Simplifications of PWC-Net: widths are a knob (the paper's are 16..196 over 6 levels), there is
no DenseNet connection and no dilated context network, and the finest estimated level (stride 4,
as the paper) is upsampled bilinearly to the input size.

Units: flows are (dx, dy) in pixels of the input image at every level (a level's features are
warped by flow / stride); `forward` maps a pixel of frame 1 to frame 2, as in
flowinpaint.video.flow.

Generator contract (flowinpaint.models.registry): `image` [B, H, W, 6] = the two frames in
[-1, 1] stacked on channels; `mask` [B, H, W, 1] is unused (flow is estimated everywhere).
Returns 'output' [B, H, W, 2] (the flow) and 'coarse' (the next coarser level's flow, upsampled,
trained with the same loss at config.loss.coarse_weight: PWC-Net's multi-scale supervision, one
level of it). H and W must be multiples of 2 ** num_levels.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.layers.correlation import correlation
from flowinpaint.layers.gaussian_sampling import bilinear_sample
from flowinpaint.models import registry

Array = jax.Array


def _leaky(x: Array) -> Array:
  return nn.leaky_relu(x, 0.1)


def _unit(x: Array) -> Array:
  """Per-pixel L2-normalised features."""
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-6)


def resize_flow(flow: Array, height: int, width: int) -> Array:
  """Bilinear resize of [B, h, w, 2] flows that keeps their pixel units (same values).

  Values are in input-image pixels at every level, so only the grid changes.
  """
  b, _, _, c = flow.shape
  return jax.image.resize(flow, (b, height, width, c), "bilinear").astype(flow.dtype)


class FeaturePyramid(nn.Module):
  """Strided conv pyramid: level i has stride 2 ** (i + 1) and widths[i] channels."""
  widths: Sequence[int]
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> list[Array]:
    levels = []
    for i, width in enumerate(self.widths):
      conv = lambda s, name: nn.Conv(width, (3, 3), strides=s, padding=1, dtype=self.dtype,
                                     param_dtype=self.param_dtype, name=name)
      x = _leaky(conv(2, f"down{i}")(x))
      x = _leaky(conv(1, f"conv{i}a")(x))
      x = _leaky(conv(1, f"conv{i}b")(x))
      levels.append(x)
    return levels


class FlowEstimator(nn.Module):
  """Convolutions from [cost volume, features, flow] to a residual flow (2 channels)."""
  widths: Sequence[int]
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for i, width in enumerate(self.widths):
      x = _leaky(nn.Conv(width, (3, 3), padding=1, dtype=self.dtype,
                         param_dtype=self.param_dtype, name=f"conv{i}")(x))
    # Small initial residuals: the first coarse-to-fine pass starts near the upsampled flow.
    return nn.Conv(2, (3, 3), padding=1, dtype=self.dtype, param_dtype=self.param_dtype,
                   kernel_init=nn.initializers.variance_scaling(0.1, "fan_in", "normal"),
                   name="flow")(x)


class FlowNet(nn.Module):
  """PWC-style two-frame flow network.

  Attributes:
    pyramid_widths: feature widths of the levels at strides 2, 4, 8, ... (len = num_levels).
    estimator_widths: widths of each level's flow-estimator convolutions.
    max_displacement: cost-volume search radius in pixels of each level.
    finest_level: index of the finest level that estimates flow (1 = stride 4, as PWC-Net).
  """
  pyramid_widths: Sequence[int] = (16, 32, 64, 96, 128)
  estimator_widths: Sequence[int] = (96, 64, 32)
  max_displacement: int = 4
  finest_level: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def multiple(self) -> int:
    return 2 ** len(self.pyramid_widths)

  @nn.compact
  def __call__(self, image: Array, mask: Array | None = None, *, train: bool = False
               ) -> dict[str, Array]:
    del train  # No dropout or batch statistics.
    b, h, w, c = image.shape
    if c != 6:
      raise ValueError(f"FlowNet takes two RGB frames stacked on channels (6), got {c}")
    if h % self.multiple or w % self.multiple:
      raise ValueError(f"height and width must be multiples of {self.multiple}, got {h}x{w}")
    pyramid = FeaturePyramid(self.pyramid_widths, self.dtype, self.param_dtype, name="features")
    # One module called on both frames: shared weights, as PWC-Net (one batched call). The two
    # frames of a sample sit next to each other in that batch (not one half after the other),
    # so a batch sharded over devices is split and rejoined without moving data between them.
    pairs = jnp.stack([image[..., :3], image[..., 3:]], axis=1).reshape(2 * b, h, w, 3)
    feats = [f.reshape((b, 2) + f.shape[1:]) for f in pyramid(pairs)]
    feats1 = [f[:, 0] for f in feats]
    feats2 = [f[:, 1] for f in feats]

    flow, flows = None, []
    for level in range(len(self.pyramid_widths) - 1, self.finest_level - 1, -1):
      f1, f2 = feats1[level], feats2[level]
      stride = 2 ** (level + 1)
      lh, lw = f1.shape[1:3]
      if flow is None:
        flow = jnp.zeros((b, lh, lw, 2), jnp.float32)
        warped = f2
      else:
        flow = resize_flow(flow, lh, lw)
        warped = bilinear_sample(f2, (flow / stride).astype(f2.dtype))
      # Cosine similarities (features L2-normalised per pixel) rather than raw dot products:
      # the cost volume is informative from initialisation on (random conv features are
      # already local descriptors), which shortens the plateau at the start of training.
      cost = correlation(_unit(f1), _unit(warped), max_displacement=self.max_displacement)
      cost = cost * f1.shape[-1]  # correlation averages over channels; a cosine is a sum.
      x = jnp.concatenate([cost, f1, (flow / stride).astype(f1.dtype)], axis=-1)
      residual = FlowEstimator(self.estimator_widths, self.dtype, self.param_dtype,
                               name=f"estimator{level}")(x)
      # The estimator speaks in pixels of its level; the flow is kept in input pixels.
      flow = flow + residual.astype(jnp.float32) * stride
      flows.append(flow)

    out = {"output": resize_flow(flows[-1], h, w)}
    if len(flows) > 1:
      out["coarse"] = resize_flow(flows[-2], h, w)
    return out


class FlowNetGenerator(nn.Module):
  """FlowNet behind the trainer's generator contract (see the module docstring)."""
  net: FlowNet

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool = False) -> dict[str, Array]:
    out = self.net(image, mask, train=train)
    if not train:
      # The trainer's predict composites 'output' with outs['target'] (else the 6-channel
      # image) outside the hole; nothing is known here, so the estimate is its own "known" part
      # and the composite is the estimate whatever the mask.
      out["target"] = out["output"]
    return out


def make_generator(cfg, dtype) -> nn.Module:
  return FlowNetGenerator(FlowNet(
      pyramid_widths=tuple(cfg.get("pyramid_widths", (16, 32, 64, 96, 128))),
      estimator_widths=tuple(cfg.get("estimator_widths", (96, 64, 32))),
      max_displacement=cfg.get("max_displacement", 4),
      finest_level=cfg.get("finest_level", 1), dtype=dtype))


# 32 covers the default five levels; a config with more levels needs image sizes to match.
SPEC = registry.register(registry.ModelSpec(
    name="flow_net", make_generator=make_generator, make_discriminator=None, multiple=32))
