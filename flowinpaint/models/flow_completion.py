"""DFC-Net (Xu et al., CVPR 2019): three stacked networks complete a flow inside its hole.

Input (flowinpaint.data.flow_pipeline 'synthetic_flow_completion' and video.learned): a window of
N frames (N = 11 in the paper) around the centre frame c; for each frame i, its forward flow
fwd_i (2 channels, pre-filled inside the hole) and hole m_i (1 channel), then the same for the
backward flows on the same frames' grids: image [B, H, W, 6N] = [fwd_i, m_i]_i ++ [bwd_i, m_i]_i.
`mask` [B, H, W, 1] is the centre frame's hole. Output: the centre forward flow [B, H, W, 2].

Stages (coarse to fine, DFVI's DFC-Net):
  1. the forward window only ([fwd_i, m_i]: 3N = 33 channels) at `stage_scales[0]` of the input
     size (1/2 in the paper) -> the centre forward flow;
  2. forward and backward windows (6N = 66 channels) at `stage_scales[1]`, the centre forward
     flow replaced by stage 1's completion -> a refined centre forward flow;
  3. the same at `stage_scales[2]` (full size) with stage 2's completion.
Each stage predicts a correction to the centre flow it is given (the pre-filled input for stage 1,
the previous stage's completion after that) and is composited, `pred * M + flow * (1 - M)`,
before the next stage.

Differences from the paper, and why: DFVI's stages 2 and 3 predict the centre forward and
backward flows together (4 channels) from windows of stage-1 completed flows, which needs stage 1
run on every frame first (a separate training stage). Here each generator pass completes one
direction from one window, so the whole stack trains end to end in one run of the shared
trainer; the backward flows are completed by the same network on the time-reversed clip (the
forward and backward windows swap roles), see video.learned.DFCNetCompleter. Stage 3 is not
initialised from stage 2's weights. The stages predict residuals rather than the flow itself:
a briefly trained from-scratch network that predicts the whole flow is worse than its own
pre-filled input (measured: EPE in the hole 0.45 vs 0.08 after 400 tiny steps).

Each stage is a dilated ResNet (output stride 8; ResNet-50 = stage_sizes (3, 4, 6, 3), width 64,
the reference) with DFVI's multi-scale flow head: upsample to 1/4, 5x5 conv, to 1/2, 3x3 conv,
to full size, 1x1 conv. Flows enter divided by `flow_norm` (pixels at the input size, scaled with
each stage's resolution) and leave multiplied by it.

Returns {'output': stage 3 [B, H, W, 2], 'coarse': stage 1 upsampled (trained with
config.loss.coarse_weight)}; at inference (train=False) also 'target': the centre input flow, the
known flow outside the hole, which the trainer's predict composites with.

The authors' released stages (`dfc_stage`, `DFVIStage`, converted by `convert --from
dfc_net_pth`, run by flowinpaint.video.dfvi as the authors' test scripts run them) are single
networks with `DFCStage(variant='dfvi')`. Compared with the from-scratch stack above, layer by
layer:
* backbone: their Caffe-style dilated ResNet (`segmentation.ResNet(style='dfvi')`: stem conv
  with a bias, ceil-mode max pool, stride in the bottleneck's 1x1 conv, every block of layer3 /
  layer4 dilated 2 / 4) with frozen BatchNorm;
* multi-scale head (ResNet-50, `FlowModule_MultiScale`): the same three convs, but its sizes
  are floor(H / 4), floor(H / 2) (here ceil) and its resizes torch's bilinear with
  align_corners=False, never antialiased (`segmentation.resize_bilinear`);
* single-scale head (ResNet-101, `FlowModule_SingleScale`, the movie demo's stage): a 1x1
  conv to the flow channels at 1/8, then bilinear to the input size;
* the stage predicts the flow itself (2 channels at stage 1, forward + backward = 4 at the
  refinement stages), in pixels: no residual, no `flow_norm`, no rescaling inside; the caller
  resizes flows and composites (`pred * M + flow * (1 - M)`).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.models import registry
from flowinpaint.models.segmentation import ResNet, resize_bilinear

Array = jax.Array


def _resize(x: Array, height: int, width: int) -> Array:
  if x.shape[1:3] == (height, width):
    return x
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), "bilinear")


class FlowHead(nn.Module):
  """DFVI's FlowModule_MultiScale: 1/8 features -> full-resolution flow.

  `variant='dfvi'` takes the authors' floor sizes and torch's bilinear resize (see the module
  docstring); the default rounds the 1/4 and 1/2 sizes up and resizes with jax.image.
  """
  width: int = 64
  out_channels: int = 2
  dtype: Any = jnp.float32
  variant: str = "flowinpaint"

  @nn.compact
  def __call__(self, x: Array, height: int, width: int) -> Array:
    if self.variant == "dfvi":
      size = lambda n, d: n // d
      resize = lambda y, h, w: resize_bilinear(y, h, w) if y.shape[1:3] != (h, w) else y
    else:
      size = lambda n, d: -(-n // d)
      resize = _resize
    x = resize(x, size(height, 4), size(width, 4))
    x = nn.relu(nn.Conv(self.width * 4, (5, 5), padding=2, dtype=self.dtype, name="conv4")(x))
    x = resize(x, size(height, 2), size(width, 2))
    x = nn.relu(nn.Conv(self.width * 2, (3, 3), padding=1, dtype=self.dtype, name="conv2")(x))
    x = resize(x, height, width)
    return nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, name="flow",
                   kernel_init=nn.initializers.variance_scaling(0.1, "fan_in", "normal"))(x)


class SingleScaleFlowHead(nn.Module):
  """DFVI's FlowModule_SingleScale (the ResNet-101 stage): 1x1 conv at 1/8, then bilinear
  (torch, align_corners=False) to the input size."""
  out_channels: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, height: int, width: int) -> Array:
    x = nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, name="flow")(x)
    return resize_bilinear(x.astype(jnp.float32), height, width)


class DFCStage(nn.Module):
  """One subnetwork: dilated ResNet + flow head.

  Attributes:
    stage_sizes, width, norm: the backbone (ResNet-50: (3, 4, 6, 3), 64; ResNet-101:
      (3, 4, 23, 3)).
    out_channels: flow channels out (2; DFVI's refinement stages 4: forward and backward).
    variant: 'flowinpaint' (trained here) or 'dfvi' (the authors' released stages: their
      backbone and head sizes, see the module docstring).
    head: 'multi' (FlowModule_MultiScale) or 'single' (FlowModule_SingleScale).
  """
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  norm: str = "batch"
  dtype: Any = jnp.float32
  out_channels: int = 2
  variant: str = "flowinpaint"
  head: str = "multi"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if self.variant not in ("flowinpaint", "dfvi"):
      raise ValueError(f"unknown DFC-Net variant {self.variant!r}; choose flowinpaint or dfvi")
    h, w = x.shape[1:3]
    style = "dfvi" if self.variant == "dfvi" else "torchvision"
    feats = ResNet(self.stage_sizes, self.width, norm=self.norm, style=style, dtype=self.dtype,
                   name="backbone")(x, train)
    if self.head == "single":
      out = SingleScaleFlowHead(self.out_channels, dtype=self.dtype, name="head")(feats, h, w)
    elif self.head == "multi":
      out = FlowHead(self.width, self.out_channels, dtype=self.dtype, variant=self.variant,
                     name="head")(feats, h, w)
    else:
      raise ValueError(f"unknown DFC-Net head {self.head!r}; choose multi or single")
    return out.astype(jnp.float32)


BACKBONES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class DFVIStage(nn.Module):
  """One of Deep Flow-Guided Video Inpainting's released DFC-Net stages, as a generator.

  `__call__(image [B, H, W, 33 or 66], mask (unused), *, train) -> {'output': flow [B, H, W,
  out_channels]}`: the stage's raw prediction in pixels at the input's size (any size). The
  image is the authors' input: per frame of the window (u, v, hole) for 11 frames (stage 1),
  or 11 forward then 11 backward (refinement stages). Compositing, resizing and the windows are
  the caller's (flowinpaint.video.dfvi).

  Attributes:
    depth: 50 (Flow_Branch_Multi, multi-scale head) or 101 (Flow_Branch, single-scale head).
    out_channels: 2 (stage 1) or 4 (stages 2 and 3: forward and backward flow).
  """
  depth: int = 50
  out_channels: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool = False) -> dict[str, Array]:
    del mask, train  # The hole is a channel of the image; BatchNorm is frozen.
    if self.depth not in BACKBONES:
      raise ValueError(f"DFVI stages are ResNet-50 or ResNet-101, not {self.depth}")
    stage = DFCStage(BACKBONES[self.depth], 64, norm="frozen", dtype=self.dtype,
                     out_channels=self.out_channels, variant="dfvi",
                     head="multi" if self.depth == 50 else "single", name="stage")
    return {"output": stage(jnp.asarray(image, jnp.float32), False)}


class DFCNet(nn.Module):
  """Three-stage DFC-Net under the trainer's generator contract (see the module docstring).

  Attributes:
    window: frames per window (N; input channels 6N).
    stage_scales: each stage's resolution as a fraction of the input's.
    stage_sizes, width, norm: each stage's backbone (ResNet-50: (3, 4, 6, 3), 64).
    flow_norm: flows are divided by this (pixels at the input size) on the way in.
  """
  window: int = 11
  stage_scales: Sequence[float] = (0.5, 0.75, 1.0)
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  norm: str = "batch"
  flow_norm: float = 10.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool = False) -> dict[str, Array]:
    b, h, w, c = image.shape
    n, r = self.window, self.window // 2
    if c != 6 * n:
      raise ValueError(f"DFC-Net with a window of {n} frames takes {6 * n} channels, got {c}")
    image = jnp.asarray(image, jnp.float32)
    hole = jnp.asarray(mask, jnp.float32)
    is_x = jnp.tile(jnp.array([1.0, 0.0, 0.0]), 2 * n)  # Channel roles: flow x, flow y, mask.
    is_y = jnp.tile(jnp.array([0.0, 1.0, 0.0]), 2 * n)
    centre = image[..., 3 * r:3 * r + 2]

    def run(k: int, x: Array, start: Array) -> Array:
      """Stage k at its scale: windows [B, H, W, C] -> composited centre flow [B, H, W, 2].

      The stage predicts a correction to `start` (the centre flow it is given): at
      initialisation the output is its input, so training starts from the pre-filled flow
      instead of from zero and the stack can only learn to improve on it.
      """
      s = self.stage_scales[k]
      sh, sw = max(int(round(h * s)), 8), max(int(round(w * s)), 8)
      fy, fx = sh / h, sw / w
      x = _resize(x, sh, sw)
      # Flow values shrink with the image (and are normalised); masks stay in [0, 1].
      cx, cy = is_x[:x.shape[-1]], is_y[:x.shape[-1]]
      scale = cx * (fx / self.flow_norm) + cy * (fy / self.flow_norm) + (1 - cx - cy)
      pred = DFCStage(self.stage_sizes, self.width, self.norm, self.dtype,
                      name=f"stage{k + 1}")(x * scale, train)
      pred = start + _resize(pred * self.flow_norm / jnp.array([fx, fy]), h, w)
      return pred * hole + centre * (1.0 - hole)

    flows = [run(0, image[..., :3 * n], centre)]
    for k in (1, 2):
      x = image.at[..., 3 * r:3 * r + 2].set(flows[-1])
      flows.append(run(k, x, flows[-1]))
    out = {"output": flows[-1], "coarse": flows[0]}
    if not train:
      # The trainer's predict composites 'output' with 'target' outside the hole; the known
      # flow there is the centre input (the 6N-channel image would not broadcast).
      out["target"] = centre
    return out


def make_generator(cfg, dtype) -> nn.Module:
  return DFCNet(window=cfg.get("window", 11),
                stage_scales=tuple(cfg.get("stage_scales", (0.5, 0.75, 1.0))),
                stage_sizes=tuple(cfg.get("stage_sizes", (3, 4, 6, 3))),
                width=cfg.get("width", 64), norm=cfg.get("norm", "batch"),
                flow_norm=cfg.get("flow_norm", 10.0), dtype=dtype)


# 32: a 3/4-scale stage still has sizes divisible by the backbone's stride 8.
SPEC = registry.register(registry.ModelSpec(
    name="dfc_net", make_generator=make_generator, make_discriminator=None, multiple=32))


def make_dfvi_stage(cfg, dtype) -> nn.Module:
  return DFVIStage(depth=cfg.get("depth", 50), out_channels=cfg.get("out_channels", 2),
                   dtype=dtype)


# Inference only (converted weights); any input size works.
DFVI_SPEC = registry.register(registry.ModelSpec(
    name="dfc_stage", make_generator=make_dfvi_stage, make_discriminator=None, multiple=1))
