"""Flow losses vs numpy: end-point error and DFC-Net's hard flow example mining."""

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.train import flow_losses
from flowinpaint.train import losses


def _hard_numpy(pred, target, mask, hard_weight, fraction):
  err = np.abs(pred - target).sum(-1)
  hole = mask[..., 0] > 0.5
  l1 = (err * hole).sum() / max(hole.sum(), 1)
  terms = []
  for e, h in zip(err, hole):
    values = np.sort(e[h])[::-1]
    k = int(np.ceil(fraction * len(values)))
    terms.append(values[:k].mean() if k else 0.0)
  return l1 + hard_weight * np.mean(terms)


def test_epe_matches_numpy_and_ignores_the_mask():
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(2, 2, 5, 6, 2)).astype(np.float32)
  want = np.sqrt(((pred - target) ** 2).sum(-1)).mean()
  mask = (rng.random((2, 5, 6, 1)) > 0.5).astype(np.float32)
  np.testing.assert_allclose(jax.jit(flow_losses.epe)(pred, target, mask), want, rtol=1e-6)
  np.testing.assert_allclose(flow_losses.epe(pred, target, np.zeros_like(mask)), want, rtol=1e-6)
  g = jax.grad(flow_losses.epe)(jnp.asarray(target), jnp.asarray(target), mask)
  assert np.isfinite(np.asarray(g)).all()  # Zero error: finite gradient.


def test_hard_flow_l1_matches_numpy():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(2, 3, 8, 9, 2)).astype(np.float32)
  mask = (rng.random((3, 8, 9, 1)) > 0.6).astype(np.float32)
  mask[2] = 0  # A sample without a hole adds nothing to the hard term.
  for weight, fraction in ((2.0, 0.5), (1.0, 0.25)):
    got = jax.jit(lambda p, t, m: flow_losses.hard_flow_l1(
        p, t, m, hard_weight=weight, hard_fraction=fraction))(pred, target, mask)
    np.testing.assert_allclose(got, _hard_numpy(pred, target, mask, weight, fraction),
                               rtol=1e-5)


def test_hard_flow_l1_is_zero_outside_the_hole_and_differentiable():
  rng = np.random.default_rng(2)
  target = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
  mask = np.zeros((2, 6, 6, 1), np.float32)
  mask[:, 2:4, 2:5] = 1
  pred = np.where(mask > 0, target, target + 5.0)  # Wrong only outside the hole.
  assert float(flow_losses.hard_flow_l1(pred, target, mask)) == 0.0
  g = jax.grad(flow_losses.hard_flow_l1)(jnp.asarray(target + 1.0), target, mask)
  assert np.all(np.asarray(g)[mask[..., 0] == 0] == 0) and np.abs(g).sum() > 0


def test_trainer_finds_them_by_config_name():
  assert losses.reconstruction_loss("epe") is flow_losses.epe
  assert losses.reconstruction_loss("flow_l1_hard") is flow_losses.hard_flow_l1
