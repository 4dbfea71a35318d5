"""Losses against independent NumPy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.train import losses


def test_hinge_matches_numpy():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(4, 16)), rng.normal(size=(4, 16))
  expected = 0.5 * np.maximum(0, 1 - real).mean() + 0.5 * np.maximum(0, 1 + fake).mean()
  np.testing.assert_allclose(jax.jit(losses.hinge_d)(real, fake), expected, rtol=1e-6)
  np.testing.assert_allclose(losses.hinge_g(fake), -fake.mean(), rtol=1e-6)


def test_bce_matches_numpy():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=8), rng.normal(size=8)
  sig = lambda x: 1 / (1 + np.exp(-x))
  expected = -np.log(sig(real)).mean() - np.log(1 - sig(fake)).mean()
  np.testing.assert_allclose(losses.bce_d(real, fake), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.bce_g(fake), -np.log(sig(fake)).mean(), rtol=1e-5)


def test_gradient_penalty_of_a_linear_critic():
  # critic(x) = sum(w * x): its input gradient is w everywhere, so the penalty is
  # (||w * mask|| - 1)^2 per sample, whatever the interpolation point.
  rng = np.random.default_rng(2)
  w = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
  real = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
  fake = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
  mask = np.zeros((2, 6, 6, 1), np.float32)
  mask[0, 1:4, 1:4] = 1
  mask[1, 2:6, 0:3] = 1
  alpha = np.array([0.3, 0.8], np.float32).reshape(2, 1, 1, 1)
  critic = lambda x: jnp.sum(w * x, axis=(1, 2, 3))
  norms = np.sqrt((np.broadcast_to(w, real.shape) ** 2 * mask).sum(axis=(1, 2, 3)))
  expected = ((norms - 1) ** 2).mean()
  got = jax.jit(lambda r, f: losses.gradient_penalty(critic, r, f, mask, alpha))(real, fake)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_spatial_discount_matches_loops():
  mask = np.zeros((1, 10, 12, 1), np.float32)
  mask[0, 2:8, 3:11] = 1  # A 6 x 8 box.
  gamma = 0.9
  got = np.asarray(losses.spatial_discount(jnp.asarray(mask), gamma=gamma))
  expected = np.ones_like(mask)
  for i in range(6):
    for j in range(8):
      expected[0, 2 + i, 3 + j, 0] = max(gamma ** min(i, 5 - i), gamma ** min(j, 7 - j))
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_discounted_l1_averages_each_region_like_the_reference():
  rng = np.random.default_rng(3)
  pred, target = rng.normal(size=(2, 10, 12, 3)), rng.normal(size=(2, 10, 12, 3))
  mask = np.zeros((2, 10, 12, 1))
  mask[0, 2:8, 3:11] = 1
  mask[1, 0:4, 0:5] = 1
  gamma = 0.9
  weight = np.asarray(losses.spatial_discount(jnp.asarray(mask, jnp.float32), gamma=gamma))
  diff = np.abs(pred - target)
  # The reference: mean over the hole patch of the discounted difference, plus the known-pixel
  # mean divided by the known fraction (= the mean over known pixels).
  hole = np.concatenate([(diff * weight)[0, 2:8, 3:11].ravel(), (diff * weight)[1, :4, :5].ravel()])
  known = diff[np.broadcast_to(mask, diff.shape) == 0]
  expected = hole.mean() + known.mean()
  got = losses.reconstruction_loss("discounted_l1", gamma=gamma)(
      jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mse_hole_and_reconstruction_lookup():
  pred, target = np.full((1, 2, 2, 3), 0.5), np.zeros((1, 2, 2, 3))
  mask = np.array([1.0, 0, 0, 0]).reshape(1, 2, 2, 1)
  np.testing.assert_allclose(losses.mse_hole(pred, target, mask), 0.25 * 3 / 12)
  np.testing.assert_allclose(losses.reconstruction_loss("l1")(pred, target, mask), 0.5)
  with pytest.raises(ValueError, match="unknown reconstruction loss 'l3'"):
    losses.reconstruction_loss("l3")


def test_lsgan_matches_numpy():
  rng = np.random.default_rng(4)
  real, fake = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
  expected = 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
  np.testing.assert_allclose(losses.lsgan_d(real, fake), expected, rtol=1e-6)
  np.testing.assert_allclose(losses.lsgan_g(fake), 0.5 * ((fake - 1) ** 2).mean(), rtol=1e-6)
  assert "lsgan" in losses.ADVERSARIAL
