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
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowinpaint.models import registry
from flowinpaint.models.segmentation import ResNet

Array = jax.Array


def _resize(x: Array, height: int, width: int) -> Array:
  if x.shape[1:3] == (height, width):
    return x
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), "bilinear")


class FlowHead(nn.Module):
  """DFVI's FlowModule_MultiScale: 1/8 features -> full-resolution flow."""
  width: int = 64
  out_channels: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, height: int, width: int) -> Array:
    x = _resize(x, -(-height // 4), -(-width // 4))
    x = nn.relu(nn.Conv(self.width * 4, (5, 5), padding=2, dtype=self.dtype, name="conv4")(x))
    x = _resize(x, -(-height // 2), -(-width // 2))
    x = nn.relu(nn.Conv(self.width * 2, (3, 3), padding=1, dtype=self.dtype, name="conv2")(x))
    x = _resize(x, height, width)
    return nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, name="flow",
                   kernel_init=nn.initializers.variance_scaling(0.1, "fan_in", "normal"))(x)


class DFCStage(nn.Module):
  """One subnetwork: dilated ResNet + multi-scale flow head."""
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  norm: str = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    h, w = x.shape[1:3]
    feats = ResNet(self.stage_sizes, self.width, norm=self.norm, dtype=self.dtype,
                   name="backbone")(x, train)
    return FlowHead(self.width, dtype=self.dtype, name="head")(feats, h, w).astype(jnp.float32)


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
