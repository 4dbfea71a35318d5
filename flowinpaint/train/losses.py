"""Loss functions of the inpainting GANs. Images are [B, H, W, C] in [-1, 1]; masks [B, H, W, 1], 1 = hole."""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def l1(pred: Array, target: Array) -> Array:
  """Mean absolute error over every pixel (DeepFill v2's reconstruction loss)."""
  return jnp.mean(jnp.abs(pred - target))


def l1_over_hole(pred: Array, target: Array, mask: Array) -> Array:
  """EdgeConnect's L1: the mean absolute error over every pixel divided by the hole fraction.

  (`l1(out, gt) / mean(M)`: the loss of a batch with small holes is scaled up.) The fraction is
  floored at one pixel of the batch, so an empty mask gives a large but finite loss.
  """
  fraction = jnp.maximum(jnp.mean(mask), 1.0 / mask.size)
  return jnp.mean(jnp.abs(pred - target)) / fraction


def mse_hole(pred: Array, target: Array, mask: Array) -> Array:
  """GLCIC's masked MSE: mean over pixels of (M * (pred - target))^2."""
  return jnp.mean(jnp.square(mask * (pred - target)))


def spatial_discount(mask: Array, *, gamma: float) -> Array:
  """DeepFill v1's spatial discount: gamma ** (distance to the nearest known pixel).

  Computed per sample from the hole's bounding box as the reference does (the distance of a
  hole pixel to the box border), so pixels deep inside a hole weigh less.

  Args:
    mask: [B, H, W, 1], 1 = hole.
    gamma: discount per pixel of distance (paper 0.99).

  Returns:
    [B, H, W, 1] weights, 1 outside the hole.
  """
  h, w = mask.shape[1:3]
  rows = jnp.any(mask[..., 0] > 0.5, axis=2)  # [B, H]
  cols = jnp.any(mask[..., 0] > 0.5, axis=1)  # [B, W]

  def distance_to_box_border(occupied: Array, n: int) -> Array:
    idx = jnp.arange(n)
    first = jnp.argmax(occupied, axis=-1)[:, None]
    last = (n - 1 - jnp.argmax(occupied[:, ::-1], axis=-1))[:, None]
    return jnp.minimum(idx[None] - first, last - idx[None])  # [B, n], >= 0 inside the box.

  dy = distance_to_box_border(rows, h)[:, :, None]
  dx = distance_to_box_border(cols, w)[:, None, :]
  weight = jnp.maximum(gamma ** jnp.maximum(dy, 0), gamma ** jnp.maximum(dx, 0))
  weight = weight[..., None].astype(mask.dtype)
  return jnp.where(mask > 0.5, weight, 1.0)


def discounted_l1(pred: Array, target: Array, mask: Array, *, gamma: float) -> Array:
  """DeepFill v1: spatially discounted L1 inside the hole plus plain L1 outside it.

  Each term is a mean over its own region, as the reference's: its hole loss averages over the
  local (hole) patch, and its known-pixel ("ae") loss is divided by the known fraction.
  """
  diff = jnp.abs(pred - target)
  channels = pred.shape[-1]
  weight = spatial_discount(mask, gamma=gamma)
  hole = jnp.sum(diff * weight * mask) / jnp.maximum(jnp.sum(mask) * channels, 1.0)
  known = jnp.sum(diff * (1.0 - mask)) / jnp.maximum(jnp.sum(1.0 - mask) * channels, 1.0)
  return hole + known


def reconstruction_loss(kind: str, *, gamma: float = 0.99) -> Callable[[Array, Array, Array], Array]:
  """Returns `fn(pred, target, mask) -> scalar` for a config name."""
  if kind == "l1":
    return lambda p, t, m: l1(p, t)
  if kind == "mse_hole":
    return mse_hole
  if kind == "l1_over_hole":
    return l1_over_hole
  if kind == "discounted_l1":
    return lambda p, t, m: discounted_l1(p, t, m, gamma=gamma)
  if kind == "pconv":
    return pconv_loss
  if kind in _FLOW_LOSSES:  # Defined next to the flow models; imported only when asked for.
    import importlib
    return getattr(importlib.import_module("flowinpaint.train.flow_losses"), _FLOW_LOSSES[kind])
  raise ValueError(f"unknown reconstruction loss {kind!r}; choose l1, mse_hole, l1_over_hole, "
                   f"discounted_l1, pconv, {', '.join(_FLOW_LOSSES)}")


# Flow losses: config name -> fn(pred, target, mask) in flowinpaint/train/flow_losses.py.
_FLOW_LOSSES = {"epe": "epe", "flow_l1_hard": "hard_flow_l1"}


# --- Adversarial losses: (discriminator loss on real/fake logits, generator loss on fake logits).


def hinge_d(real: Array, fake: Array) -> Array:
  """SN-PatchGAN hinge loss with neuralgym's 0.5 factors."""
  return 0.5 * jnp.mean(jax.nn.relu(1.0 - real)) + 0.5 * jnp.mean(jax.nn.relu(1.0 + fake))


def hinge_g(fake: Array) -> Array:
  return -jnp.mean(fake)


def bce_d(real: Array, fake: Array) -> Array:
  """GLCIC's binary cross-entropy on logits (real -> 1, fake -> 0)."""
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def bce_g(fake: Array) -> Array:
  return jnp.mean(jax.nn.softplus(-fake))


def nsgan_d(real: Array, fake: Array) -> Array:
  """EdgeConnect's non-saturating GAN: the mean of the BCE on real (-> 1) and fake (-> 0)."""
  return 0.5 * bce_d(real, fake)


def wgan_d(real: Array, fake: Array) -> Array:
  """WGAN critic loss (the gradient penalty is added by the step, it needs the critic)."""
  return jnp.mean(fake) - jnp.mean(real)


def wgan_g(fake: Array) -> Array:
  return -jnp.mean(fake)


def lsgan_d(real: Array, fake: Array) -> Array:
  """Least-squares GAN (StructureFlow): real scores pulled to 1, fake to 0."""
  return 0.5 * jnp.mean(jnp.square(real - 1.0)) + 0.5 * jnp.mean(jnp.square(fake))


def lsgan_g(fake: Array) -> Array:
  return 0.5 * jnp.mean(jnp.square(fake - 1.0))


ADVERSARIAL = {
    "hinge": (hinge_d, hinge_g),
    "bce": (bce_d, bce_g),
    "nsgan": (nsgan_d, bce_g),
    "wgan_gp": (wgan_d, wgan_g),
    "lsgan": (lsgan_d, lsgan_g),
}


def gradient_penalty(critic: Callable[[Array], Array], real: Array, fake: Array, mask: Array,
                     alpha: Array) -> Array:
  """WGAN-GP penalty, masked by the hole as DeepFill v1 does.

  Args:
    critic: x [B, H, W, C] -> scores (any shape, summed per sample).
    real, fake: [B, H, W, C].
    mask: [B, H, W, 1], 1 = hole; the gradient norm is taken over hole pixels only.
    alpha: [B, 1, 1, 1] interpolation weights in [0, 1].

  Returns:
    mean over the batch of (||grad * mask|| - 1)^2.
  """
  x = real + alpha * (fake - real)
  grads = jax.grad(lambda v: jnp.sum(critic(v)))(x)
  norm = jnp.sqrt(jnp.sum(jnp.square(grads * mask), axis=(1, 2, 3)) + 1e-12)
  return jnp.mean(jnp.square(norm - 1.0))


# --- Partial convolution (Liu et al. 2018) pixel losses; the VGG terms are in feature_losses.


def dilate_hole(mask: Array, pixels: int = 1) -> Array:
  """The hole grown by `pixels` in every direction (a (2p+1)^2 max filter): [B, H, W, 1]."""
  k = 2 * pixels + 1
  return jax.lax.reduce_window(mask, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, 1, 1, 1), "SAME")


def total_variation_hole(pred: Array, target: Array, mask: Array) -> Array:
  """PConv's total variation on the composited image over the 1-pixel-dilated hole region P.

  Sums |I(i, j+1) - I(i, j)| over horizontal neighbour pairs with both pixels in P and the
  vertical counterpart, divided by the number of image elements B*H*W*C (the L1 terms' N).
  """
  comp = pred * mask + target * (1.0 - mask)
  region = dilate_hole(mask)
  pair_x = region[:, :, 1:] * region[:, :, :-1]
  pair_y = region[:, 1:] * region[:, :-1]
  tv_x = jnp.sum(jnp.abs(comp[:, :, 1:] - comp[:, :, :-1]) * pair_x)
  tv_y = jnp.sum(jnp.abs(comp[:, 1:] - comp[:, :-1]) * pair_y)
  return (tv_x + tv_y) / pred.size


def pconv_loss(pred: Array, target: Array, mask: Array, *, hole_weight: float = 6.0,
               valid_weight: float = 1.0, tv_weight: float = 0.1) -> Array:
  """Liu et al.'s pixel losses: valid L1 + 6 x hole L1 + 0.1 x TV (VGG terms: feature_losses).

  Args:
    pred, target: [B, H, W, C].
    mask: [B, H, W, 1], 1 = hole.

  Returns:
    scalar; each L1 term is normalised by the number of elements B*H*W*C as in the paper.
  """
  diff = jnp.abs(pred - target)
  hole = jnp.mean(diff * mask)
  valid = jnp.mean(diff * (1.0 - mask))
  return (valid_weight * valid + hole_weight * hole +
          tv_weight * total_variation_hole(pred, target, mask))
