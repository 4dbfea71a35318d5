"""Losses of the flow models: end-point error, and DFC-Net's L1 with hard flow example mining.

Flows are [B, H, W, 2] (dx, dy) in pixels; masks [B, H, W, 1] with 1 = hole. Both functions have
the trainer's reconstruction-loss signature `fn(pred, target, mask) -> scalar`
(flowinpaint.train.losses looks them up by the config names 'epe' and 'flow_l1_hard').
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def end_point_error(pred: Array, target: Array) -> Array:
  """Per-pixel Euclidean distance between flows: [B, H, W, 1].

  The square root gets a tiny epsilon so its gradient at zero error is finite.
  """
  sq = jnp.sum(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1,
               keepdims=True)
  return jnp.sqrt(sq + 1e-12)


def epe(pred: Array, target: Array, mask: Array | None = None) -> Array:
  """Average end-point error over every pixel (the flow network's loss and metric).

  The mask is accepted for the trainer's signature and ignored: a flow estimator is judged
  everywhere (its batches carry an all-zero mask).
  """
  del mask
  return jnp.mean(end_point_error(pred, target))


def hard_flow_l1(pred: Array, target: Array, mask: Array, *, hard_weight: float = 2.0,
                 hard_fraction: float = 0.5) -> Array:
  """DFC-Net's loss: masked L1 in the hole plus hard flow example mining.

    l1   = sum(|pred - target| * M) / sum(M)               (|.| summed over the 2 channels,
                                                            M = hole, per batch as DFVI)
    hard = per sample, mean |error| over the hole pixels whose error is in the top
           `hard_fraction` of that sample's hole errors (above their median for 1/2)
    loss = l1 + hard_weight * mean over samples of hard

  DFVI weights the hard term 2 in stage 1 and 1 in the refinement stages; this single loss
  applies one weight to the trainer's 'output' and 'coarse' alike. The selection of hard
  pixels is not differentiated (a mask), the error on them is. A sample without hole pixels
  contributes zero.

  Args:
    pred, target: [B, H, W, 2].
    mask: [B, H, W, 1], 1 = hole.
    hard_weight: weight of the hard-example term.
    hard_fraction: fraction of each sample's hole pixels counted as hard.
  """
  err = jnp.sum(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1)
  hole = mask[..., 0].astype(jnp.float32)
  l1 = jnp.sum(err * hole) / jnp.maximum(jnp.sum(hole), 1.0)

  b = err.shape[0]
  flat_err, flat_hole = err.reshape(b, -1), hole.reshape(b, -1)
  count = jnp.sum(flat_hole > 0.5, axis=1)  # Hole pixels per sample.
  # Rank errors in each sample with non-hole pixels pushed to the end (-inf), so the first
  # k = ceil(hard_fraction * count) sorted values are that sample's hardest hole pixels.
  ranked = jnp.sort(jnp.where(flat_hole > 0.5, jax.lax.stop_gradient(flat_err), -jnp.inf),
                    axis=1)[:, ::-1]
  k = jnp.ceil(hard_fraction * count).astype(jnp.int32)
  threshold = jnp.take_along_axis(ranked, jnp.maximum(k - 1, 0)[:, None], axis=1)
  hard = (flat_hole > 0.5) & (jax.lax.stop_gradient(flat_err) >= threshold) & (k[:, None] > 0)
  hard = hard.astype(jnp.float32)
  per_sample = jnp.sum(flat_err * hard, axis=1) / jnp.maximum(jnp.sum(hard, axis=1), 1.0)
  return l1 + hard_weight * jnp.mean(per_sample)
