"""FlowNet 2.0 (Ilg et al., CVPR 2017) in Flax, for inference with NVIDIA's converted weights.

Architecture facts from NVIDIA/flownet2-pytorch (models.py, networks/*.py), whose checkpoints
(converted from the authors' Caffe models) `flowinpaint.weights.flownet2_torch` reads:

* FlowNetC: a shared 3-conv tower (7x7/2 64, 5x5/2 128, 5x5/2 256) on each frame, a correlation
  of the two 1/8-resolution maps (kernel 1, displacements -20..20 in steps of 2: 441 channels,
  divided by the channel count, zero outside the map; leaky ReLU after it), `conv_redir`
  (1x1, 32) on frame 1's map, then an encoder to 1/64 and FlowNet's refinement decoder.
* FlowNetS: one tower on stacked inputs; FlowNetSD: 3x3 convs only, a stride-1 `conv0` and one
  `inter_conv` before each flow prediction; the fusion net: three scales (1, 1/2, 1/4).
* Decoder (`_decode`): at each scale, the coarser flow is upsampled by a 4x4/2 transposed conv,
  the features by another (+ leaky ReLU), both concatenated with the encoder's skip features,
  and a 3x3 conv predicts the flow. Leaky ReLU slope 0.1 after every conv except the flow
  predictions, `inter_conv`s and flow upsamplers.
* FlowNet2 = C -> S -> S (each later net sees both frames, frame 2 warped by the current flow,
  the flow / 20, and the channel norm of the brightness error) and, in parallel, SD on the
  frames; the fusion net merges the SD and CSS flows (11 channels: frame 1, both flows, their
  channel norms and the norms of their warping errors) into the full-resolution flow.
* Scaling (`div_flow` = 20): sub-networks predict flow / 20 at 1/4 resolution; FlowNet2 uses
  upsample4(C * 20) and upsample4(S1 * 20) (bilinear, half-pixel centres as
  torch.nn.Upsample(mode='bilinear') with its default align_corners=False), upsample4(S2 * 20)
  nearest, and for SD **upsample4(SD / 20)** nearest (the authors' code divides there; the
  fusion weights were trained with that input, so it is kept).
* Input: two RGB frames with values 0..255; each sample's per-channel mean over both frames is
  subtracted and the result divided by 255 (`rgb_max`). The converted weights take RGB (the
  Caffe models' BGR filters were reversed by NVIDIA's converter). Output: flow in pixels,
  channel 0 = dx, 1 = dy, mapping a pixel of frame 1 to frame 2 (frame 2 warped by it
  reproduces frame 1), the convention of flowinpaint.video.flow.

The CUDA ops are plain JAX: the correlation is flowinpaint.layers.correlation with
max_displacement=20, stride=2 (its definition is the kernel's for pad 20, kernel 1, stride1 1);
NVIDIA's `Resample2d` (bilinear, sample indices clamped to the image, weights from the
unclamped fractional part) is flowinpaint.layers.bilinear_sample, which samples the same way;
`ChannelNorm` is the L2 norm over channels (`channel_norm`).

Generator contract (flowinpaint.models.registry, as flow_net): `image` [B, H, W, 6] = the two
frames in [-1, 1] stacked on channels, H and W multiples of 64 (`flow_any_size` takes any size);
`mask` is unused. Returns {'output': flow [B, H, W, 2]} (+ 'target' = 'output' at inference).

Variants (`variant`, as NVIDIA's model classes and checkpoints): 'FlowNet2' (the full stack),
'FlowNet2C', 'FlowNet2S', 'FlowNet2SD' (one network: upsample4(flow * 20), bilinear),
'FlowNet2CS', 'FlowNet2CSS'.
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

DIV_FLOW = 20.0
MULTIPLE = 64
VARIANTS = ("FlowNet2", "FlowNet2C", "FlowNet2S", "FlowNet2SD", "FlowNet2CS", "FlowNet2CSS")
# The sub-networks each variant holds, as named in NVIDIA's state dicts (a standalone
# FlowNet2C/S/SD checkpoint has no prefix; its network is stored under this name here).
SUBNETS = {
    "FlowNet2": ("flownetc", "flownets_1", "flownets_2", "flownets_d", "flownetfusion"),
    "FlowNet2C": ("flownetc",),
    "FlowNet2S": ("flownets",),
    "FlowNet2SD": ("flownets_d",),
    "FlowNet2CS": ("flownetc", "flownets_1"),
    "FlowNet2CSS": ("flownetc", "flownets_1", "flownets_2"),
}


def _leaky(x: Array) -> Array:
  return nn.leaky_relu(x, 0.1)


def channel_norm(x: Array) -> Array:
  """NVIDIA's ChannelNorm: the L2 norm over channels, [B, H, W, C] -> [B, H, W, 1]."""
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))


def warp(image: Array, flow: Array) -> Array:
  """NVIDIA's Resample2d: `image` [B, H, W, C] sampled at pixel + `flow` [B, H, W, 2].

  Bilinear, neighbour indices clamped to the image (far outside it, the border pixel).
  """
  return bilinear_sample(image, flow.astype(jnp.float32)).astype(image.dtype)


def upsample4(x: Array, method: str) -> Array:
  """x4 upsampling: 'bilinear' (half-pixel centres, edge-clamped) or 'nearest'."""
  b, h, w, c = x.shape
  if method == "nearest":
    return jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2)
  return jax.image.resize(x, (b, 4 * h, 4 * w, c), "bilinear").astype(x.dtype)


class _Parts(nn.Module):
  """Shared layer constructors (dtype plumbing) of the FlowNet sub-networks."""
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def conv(self, features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    p = (kernel - 1) // 2
    return nn.Conv(features, (kernel, kernel), strides=stride, padding=((p, p), (p, p)),
                   dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  def deconv(self, features: int, name: str, use_bias: bool = True) -> nn.ConvTranspose:
    # torch ConvTranspose2d(k=4, s=2, p=1) = input dilated by 2, padded by k - 1 - p = 2, and
    # correlated with the spatially flipped kernel (the converter flips it): output 2x.
    return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            use_bias=use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
                            name=name)

  def decode(self, top: Array, skips: Sequence[Array], levels: Sequence[int],
             widths: Sequence[int], *, inter: bool, flow_bias: bool) -> Array:
    """FlowNet's refinement: flow at `top`'s scale, then one finer scale per skip.

    `levels` names the scales from top to finest (e.g. 6, 5, 4, 3, 2), as the layer names do.
    Returns the finest flow prediction (flow / 20 in the units of that scale's network).
    """
    flow = self.conv(2, 3, 1, f"predict_flow{levels[0]}")(top)
    x = top
    for coarse, level, skip, width in zip(levels, levels[1:], skips, widths):
      flow_up = self.deconv(2, f"upsampled_flow{coarse}_to_{level}", use_bias=flow_bias)(flow)
      features = _leaky(self.deconv(width, f"deconv{level}")(x))
      x = jnp.concatenate([skip, features, flow_up.astype(skip.dtype)], axis=-1)
      y = self.conv(width, 3, 1, f"inter_conv{level}")(x) if inter else x
      flow = self.conv(2, 3, 1, f"predict_flow{level}")(y)
    return flow


class FlowNetC(_Parts):
  """FlowNetC on a normalised pair [B, H, W, 6] -> flow / 20 at 1/4 resolution [B, H/4, W/4, 2]."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b = x.shape[0]
    conv1, conv2, conv3 = (self.conv(64, 7, 2, "conv1"), self.conv(128, 5, 2, "conv2"),
                           self.conv(256, 5, 2, "conv3"))
    # Both frames through the one tower in a single batched call (shared weights).
    pair = jnp.concatenate([x[..., :3], x[..., 3:]], axis=0)
    c2 = _leaky(conv2(_leaky(conv1(pair))))
    c3 = _leaky(conv3(c2))
    c2a, c3a, c3b = c2[:b], c3[:b], c3[b:]
    corr = _leaky(correlation(c3a, c3b, max_displacement=20, stride=2).astype(c3a.dtype))
    redir = _leaky(self.conv(32, 1, 1, "conv_redir")(c3a))
    c3_1 = _leaky(self.conv(256, 3, 1, "conv3_1")(jnp.concatenate([redir, corr], axis=-1)))
    c4 = _leaky(self.conv(512, 3, 1, "conv4_1")(_leaky(self.conv(512, 3, 2, "conv4")(c3_1))))
    c5 = _leaky(self.conv(512, 3, 1, "conv5_1")(_leaky(self.conv(512, 3, 2, "conv5")(c4))))
    c6 = _leaky(self.conv(1024, 3, 1, "conv6_1")(_leaky(self.conv(1024, 3, 2, "conv6")(c5))))
    return self.decode(c6, (c5, c4, c3_1, c2a), (6, 5, 4, 3, 2), (512, 256, 128, 64),
                       inter=False, flow_bias=True)


class FlowNetS(_Parts):
  """FlowNetS on stacked inputs [B, H, W, C] (6 or 12) -> flow / 20 at 1/4 resolution."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c1 = _leaky(self.conv(64, 7, 2, "conv1")(x))
    c2 = _leaky(self.conv(128, 5, 2, "conv2")(c1))
    c3 = _leaky(self.conv(256, 3, 1, "conv3_1")(_leaky(self.conv(256, 5, 2, "conv3")(c2))))
    c4 = _leaky(self.conv(512, 3, 1, "conv4_1")(_leaky(self.conv(512, 3, 2, "conv4")(c3))))
    c5 = _leaky(self.conv(512, 3, 1, "conv5_1")(_leaky(self.conv(512, 3, 2, "conv5")(c4))))
    c6 = _leaky(self.conv(1024, 3, 1, "conv6_1")(_leaky(self.conv(1024, 3, 2, "conv6")(c5))))
    # FlowNetS's flow upsamplers have no bias (C's, SD's and the fusion net's do).
    return self.decode(c6, (c5, c4, c3, c2), (6, 5, 4, 3, 2), (512, 256, 128, 64),
                       inter=False, flow_bias=False)


class FlowNetSD(_Parts):
  """FlowNetSD (small displacements) on a normalised pair -> flow / 20 at 1/4 resolution."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    def block(x, width, name):  # A stride-2 conv and a stride-1 conv, both 3x3.
      x = _leaky(self.conv(width, 3, 2, name)(x))
      return _leaky(self.conv(width if name != "conv1" else 128, 3, 1, name + "_1")(x))

    c0 = _leaky(self.conv(64, 3, 1, "conv0")(x))
    c1 = block(c0, 64, "conv1")
    c2 = block(c1, 128, "conv2")
    c3 = block(c2, 256, "conv3")
    c4 = block(c3, 512, "conv4")
    c5 = block(c4, 512, "conv5")
    c6 = block(c5, 1024, "conv6")
    return self.decode(c6, (c5, c4, c3, c2), (6, 5, 4, 3, 2), (512, 256, 128, 64),
                       inter=True, flow_bias=True)


class FlowNetFusion(_Parts):
  """The fusion net on its 11 input channels [B, H, W, 11] -> flow in pixels [B, H, W, 2]."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c0 = _leaky(self.conv(64, 3, 1, "conv0")(x))
    c1 = _leaky(self.conv(128, 3, 1, "conv1_1")(_leaky(self.conv(64, 3, 2, "conv1")(c0))))
    c2 = _leaky(self.conv(128, 3, 1, "conv2_1")(_leaky(self.conv(128, 3, 2, "conv2")(c1))))
    return self.decode(c2, (c1, c0), (2, 1, 0), (32, 16), inter=True, flow_bias=True)


def normalize_pair(image: Array) -> Array:
  """[-1, 1] frames [B, H, W, 6] -> NVIDIA's input: (v - mean over both frames) / 255 per
  channel with v = 0..255, i.e. (x - mean) / 2 for x = v / 127.5 - 1."""
  b, h, w, _ = image.shape
  pair = image.reshape(b, h, w, 2, 3)
  mean = jnp.mean(pair, axis=(1, 2, 3), keepdims=True)
  return ((pair - mean) / 2).reshape(b, h, w, 6)


class FlowNet2(nn.Module):
  """FlowNet 2.0 (or one of its variants) behind the generator contract (module docstring)."""
  variant: str = "FlowNet2"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def multiple(self) -> int:
    return MULTIPLE

  @nn.compact
  def __call__(self, image: Array, mask: Array | None = None, *, train: bool = False
               ) -> dict[str, Array]:
    del mask
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown FlowNet2 variant {self.variant!r}; one of {', '.join(VARIANTS)}")
    b, h, w, c = image.shape
    if c != 6:
      raise ValueError(f"FlowNet2 takes two RGB frames stacked on channels (6), got {c}")
    if h % MULTIPLE or w % MULTIPLE:
      raise ValueError(f"height and width must be multiples of {MULTIPLE}, got {h}x{w} "
                       "(flownet2.flow_any_size adapts other sizes)")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = normalize_pair(image.astype(jnp.float32)).astype(self.dtype)
    single = {"FlowNet2C": FlowNetC, "FlowNet2S": FlowNetS, "FlowNet2SD": FlowNetSD}
    if self.variant in single:
      net = single[self.variant](**kw, name=SUBNETS[self.variant][0])
      flow = upsample4(net(x).astype(jnp.float32) * DIV_FLOW, "bilinear")
    else:
      flow = self._stack(x, kw)
    out = {"output": flow}
    if not train:
      out["target"] = flow  # Nothing is "known": the estimate is the composite (as flow_net).
    return out

  def _stack(self, x: Array, kw: dict) -> Array:
    """The C(S(S)) chain, and for FlowNet2 the SD branch and the fusion; flow in pixels."""
    img0 = x[..., :3].astype(jnp.float32)
    img1 = x[..., 3:].astype(jnp.float32)

    def refine_input(flow: Array) -> Array:
      warped = warp(img1, flow)
      return jnp.concatenate([x.astype(jnp.float32), warped, flow / DIV_FLOW,
                              channel_norm(img0 - warped)], axis=-1).astype(self.dtype)

    def run(net: nn.Module, inputs: Array) -> Array:
      return net(inputs).astype(jnp.float32)

    flow = upsample4(run(FlowNetC(**kw, name="flownetc"), x) * DIV_FLOW, "bilinear")
    flow = upsample4(run(FlowNetS(**kw, name="flownets_1"), refine_input(flow)) * DIV_FLOW,
                     "bilinear")
    if self.variant == "FlowNet2CS":
      return flow
    flow_s2 = upsample4(run(FlowNetS(**kw, name="flownets_2"), refine_input(flow)) * DIV_FLOW,
                        "nearest")
    if self.variant == "FlowNet2CSS":
      return flow_s2
    flow_sd = upsample4(run(FlowNetSD(**kw, name="flownets_d"), x) / DIV_FLOW, "nearest")
    fusion_in = jnp.concatenate([
        img0, flow_sd, flow_s2, channel_norm(flow_sd), channel_norm(flow_s2),
        channel_norm(img0 - warp(img1, flow_sd)), channel_norm(img0 - warp(img1, flow_s2))],
                                axis=-1)
    return run(FlowNetFusion(**kw, name="flownetfusion"), fusion_in.astype(self.dtype))


def adapted_size(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int]:
  """The smallest multiples of `multiple` at least (height, width)."""
  return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def flow_any_size(apply_fn, image: Array, *, fit: str = "resize",
                  multiple: int = MULTIPLE) -> Array:
  """Flow for frames of any size through a network that takes multiples of `multiple`.

  Args:
    apply_fn: `image [B, H', W', 6] -> flow [B, H', W', 2]` in pixels, H', W' multiples.
    image: [B, H, W, 6] frames in [-1, 1].
    fit: 'resize': bilinear resize to the next multiples, and the flow resized back with its
      vectors scaled by W / W' and H / H' (what the authors' Caffe deploy script does);
      'pad': edge padding at the bottom/right, the flow cropped back.

  Returns:
    [B, H, W, 2] float32 flow in pixels of the input.
  """
  b, h, w, _ = image.shape
  ah, aw = adapted_size(h, w, multiple)
  if (ah, aw) == (h, w):
    return apply_fn(image).astype(jnp.float32)
  if fit == "pad":
    padded = jnp.pad(image, ((0, 0), (0, ah - h), (0, aw - w), (0, 0)), mode="edge")
    return apply_fn(padded)[:, :h, :w].astype(jnp.float32)
  if fit != "resize":
    raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
  resized = jax.image.resize(image, (b, ah, aw, image.shape[-1]), "bilinear")
  flow = jax.image.resize(apply_fn(resized).astype(jnp.float32), (b, h, w, 2), "bilinear")
  return flow * jnp.asarray([w / aw, h / ah], jnp.float32)


def make_generator(cfg, dtype) -> nn.Module:
  return FlowNet2(variant=cfg.get("variant", "FlowNet2"), dtype=dtype)


SPEC = registry.register(registry.ModelSpec(
    name="flownet2", make_generator=make_generator, make_discriminator=None,
    multiple=MULTIPLE))
