"""Losses on ImageNet VGG features: perceptual, style (Gram) and sampling correctness.

Two recipes, each as its paper defines it (images [B, H, W, 3] in [-1, 1], masks 1 = hole):

* 'pconv' (Liu et al. 2018, VGG-16 pool1-pool3): perceptual = sum over layers of
  mean|F(out) - F(gt)| + mean|F(comp) - F(gt)|; style = the same with Gram matrices
  (normalised by C*H*W); comp is the output pasted into the ground truth's hole. Paper weights
  0.05 and 120.
* 'structure_flow' (Ren et al. 2019, VGG-19): content = sum over relu1_1 ... relu5_1 of
  mean|F(out) - F(gt)| (0.1); style on the hole only, Gram of F(out * M) vs F(gt * M) at relu2_2,
  relu3_4, relu4_4, relu5_2 (250); sampling correctness at relu3_1 (0.25), see
  `sampling_correctness`.
* 'edge_connect' (Nazeri et al. 2019, VGG-19): the same content and hole-style terms as
  EdgeConnect's code computes them: its VGG sees [0, 1] images without ImageNet standardisation,
  and the hole is cut out in [0, 1] units (out01 * M, black outside the hole). Paper weights 0.1
  and 250.

The VGG weights are frozen: they arrive as an argument of the train step, never trained.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from flowinpaint.layers.gaussian_sampling import gaussian_sample
from flowinpaint.models.vgg import VGGFeatures

Array = jax.Array

RECIPES = ("none", "pconv", "structure_flow", "edge_connect")
_PCONV_LAYERS = ("pool1", "pool2", "pool3")
_SF_CONTENT = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_SF_STYLE = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
_SF_CORRECTNESS = "relu3_1"


@dataclasses.dataclass(frozen=True)
class FeatureLossConfig:
  """Which feature losses the generator gets (hashable: it is part of the jitted step)."""
  recipe: str = "none"
  perceptual_weight: float = 0.0
  style_weight: float = 0.0
  correctness_weight: float = 0.0

  def __post_init__(self):
    if self.recipe not in RECIPES:
      raise ValueError(f"unknown feature loss recipe {self.recipe!r}; choose from {RECIPES}")

  @property
  def active(self) -> bool:
    weights = (self.perceptual_weight, self.style_weight, self.correctness_weight)
    return self.recipe != "none" and any(w > 0 for w in weights)

  @property
  def vgg_depth(self) -> int:
    return 16 if self.recipe == "pconv" else 19

  def off(self) -> "FeatureLossConfig":
    return FeatureLossConfig()


def gram(features: Array) -> Array:
  """[B, H, W, C] -> [B, C, C] Gram matrices divided by C * H * W."""
  b, h, w, c = features.shape
  f = features.reshape(b, h * w, c).astype(jnp.float32)
  return jnp.einsum("bnc,bnd->bcd", f, f) / (h * w * c)


def perceptual(feats: dict[str, Array], target_feats: dict[str, Array], layers) -> Array:
  """Sum over `layers` of the mean absolute feature difference."""
  return sum(jnp.mean(jnp.abs(feats[n] - target_feats[n])) for n in layers)


def style(feats: dict[str, Array], target_feats: dict[str, Array], layers) -> Array:
  """Sum over `layers` of the mean absolute Gram-matrix difference."""
  return sum(jnp.mean(jnp.abs(gram(feats[n]) - gram(target_feats[n]))) for n in layers)


def resize_nearest(x: Array, size: tuple[int, int]) -> Array:
  """PyTorch's `interpolate(mode='nearest')`: output (i, j) reads input (floor(i*H/h), ...)."""
  h, w = x.shape[1:3]
  rows = (jnp.arange(size[0]) * h) // size[0]
  cols = (jnp.arange(size[1]) * w) // size[1]
  return x[:, rows][:, :, cols]


def resize_flow(flow: Array, size: tuple[int, int]) -> Array:
  """A flow [B, h, w, 2] (in its own pixels) at another resolution, in that resolution's pixels.

  Integer downscales average-pool (the reference's adaptive average pooling); other sizes
  resize bilinearly. Vectors are rescaled with the grid (the reference keeps the magnitudes,
  which only matters when the sizes differ: at 256 px both the flow and relu3_1 are at 1/4).
  """
  h, w = flow.shape[1:3]
  if (h, w) == tuple(size):
    return flow
  if h % size[0] == 0 and w % size[1] == 0:
    fy, fx = h // size[0], w // size[1]
    pooled = flow.reshape(flow.shape[0], size[0], fy, size[1], fx, 2).mean(axis=(2, 4))
  else:
    pooled = jax.image.resize(flow, (flow.shape[0], *size, 2), "bilinear")
  scale = jnp.asarray([size[1] / w, size[0] / h], flow.dtype)
  return pooled * scale


def sampling_correctness(target_feats: Array, source_feats: Array, flow: Array, mask: Array, *,
                         kernel_size: int = 4, sigma: float = 2.0, eps: float = 1e-8) -> Array:
  """StructureFlow's sampling-correctness loss.

  For each target location l: c = cosine similarity between the target feature V_t(l) and the
  source feature Gaussian-sampled at l + flow(l), normalised by the best cosine similarity of
  V_t(l) to any source location; the loss is the mean of exp(-c / max) over hole locations
  (minimum exp(-1) where the flow points at the best match).

  Args:
    target_feats: [B, h, w, C] features of the ground truth.
    source_feats: [B, h, w, C] features of the masked input.
    flow: [B, H', W', 2] appearance flow (dx, dy) in its own pixels; resized to (h, w).
    mask: [B, H, W, 1] 1 = hole; nearest-resized to (h, w).

  Returns:
    scalar.
  """
  b, h, w, c = target_feats.shape
  flow = resize_flow(flow.astype(jnp.float32), (h, w))
  hole = resize_nearest(mask.astype(jnp.float32), (h, w)).reshape(b, h * w)
  t = target_feats.reshape(b, h * w, c)
  s = source_feats.reshape(b, h * w, c)
  t_unit = t / (jnp.linalg.norm(t, axis=-1, keepdims=True) + eps)
  s_unit = s / (jnp.linalg.norm(s, axis=-1, keepdims=True) + eps)
  best = jnp.max(jnp.einsum("bsc,btc->bst", s_unit, t_unit), axis=1)  # [B, h*w] over sources
  sampled = gaussian_sample(source_feats, flow, kernel_size=kernel_size,
                            sigma=sigma).reshape(b, h * w, c)
  norms = jnp.linalg.norm(sampled, axis=-1) * jnp.linalg.norm(t, axis=-1)
  cos = jnp.sum(sampled * t, axis=-1) / jnp.maximum(norms, eps)
  loss_map = jnp.exp(-cos / (best + eps))
  return jnp.sum(loss_map * hole) / (jnp.sum(hole) + eps)


def _features(vgg_params, depth: int, layers, *images: Array, standardise: bool = True
              ) -> list[dict[str, Array]]:
  """VGG features of several image batches in one forward pass.

  The batches are interleaved per sample (not concatenated) so that a batch sharded over
  devices stays on its devices.
  """
  net = VGGFeatures(depth=depth, outputs=tuple(sorted(set(layers))),
                    imagenet_standardise=standardise)
  b, k = images[0].shape[0], len(images)
  both = jnp.stack(images, axis=1).reshape((b * k,) + images[0].shape[1:])
  feats = net.apply({"params": vgg_params}, both)
  split = {name: v.reshape((b, k) + v.shape[1:]) for name, v in feats.items()}
  return [{name: v[:, i] for name, v in split.items()} for i in range(k)]


def feature_losses(cfg: FeatureLossConfig, vgg_params, preds: dict[str, Array], target: Array,
                   image: Array, mask: Array) -> dict[str, Array]:
  """The weighted terms {'perceptual_loss', 'style_loss', 'correctness_loss'} (zeros when off).

  Args:
    cfg: the recipe and weights.
    vgg_params: Flax params of `VGGFeatures(cfg.vgg_depth)`.
    preds: generator outputs; 'output' [B, H, W, 3], and 'flow' for the correctness loss.
    target: [B, H, W, 3] what the output should match (the ground truth).
    image: [B, H, W, 3] the input image (its known pixels are the correctness loss's source).
    mask: [B, H, W, 1], 1 = hole.
  """
  zero = jnp.zeros((), jnp.float32)
  out = {"perceptual_loss": zero, "style_loss": zero, "correctness_loss": zero}
  if not cfg.active:
    return out
  output = preds["output"]
  target = jax.lax.stop_gradient(target)
  if cfg.recipe == "pconv":
    comp = output * mask + target * (1.0 - mask)
    f_out, f_comp, f_gt = _features(vgg_params, 16, _PCONV_LAYERS, output, comp, target)
    if cfg.perceptual_weight:
      out["perceptual_loss"] = cfg.perceptual_weight * (
          perceptual(f_out, f_gt, _PCONV_LAYERS) + perceptual(f_comp, f_gt, _PCONV_LAYERS))
    if cfg.style_weight:
      out["style_loss"] = cfg.style_weight * (
          style(f_out, f_gt, _PCONV_LAYERS) + style(f_comp, f_gt, _PCONV_LAYERS))
    return out

  if cfg.recipe == "edge_connect":
    if cfg.perceptual_weight or cfg.style_weight:
      # x01 * M in [-1, 1] units is (x + 1) * M - 1.
      f_out, f_gt, f_out_hole, f_gt_hole = _features(
          vgg_params, 19, _SF_CONTENT + _SF_STYLE, output, target, (output + 1.0) * mask - 1.0,
          (target + 1.0) * mask - 1.0, standardise=False)
      out["perceptual_loss"] = cfg.perceptual_weight * perceptual(f_out, f_gt, _SF_CONTENT)
      out["style_loss"] = cfg.style_weight * style(f_out_hole, f_gt_hole, _SF_STYLE)
    return out

  # structure_flow
  if cfg.perceptual_weight or cfg.style_weight:
    f_out, f_gt, f_out_hole, f_gt_hole = _features(
        vgg_params, 19, _SF_CONTENT + _SF_STYLE, output, target, output * mask, target * mask)
    out["perceptual_loss"] = cfg.perceptual_weight * perceptual(f_out, f_gt, _SF_CONTENT)
    out["style_loss"] = cfg.style_weight * style(f_out_hole, f_gt_hole, _SF_STYLE)
  if cfg.correctness_weight:
    if "flow" not in preds:
      raise ValueError("the sampling-correctness loss needs a generator that returns 'flow' "
                       "(StructureFlow's texture stages); set loss.correctness_weight=0")
    f_gt, f_src = _features(vgg_params, 19, (_SF_CORRECTNESS,), target, image * (1.0 - mask))
    out["correctness_loss"] = cfg.correctness_weight * sampling_correctness(
        f_gt[_SF_CORRECTNESS], f_src[_SF_CORRECTNESS], preds["flow"], mask)
  return out
