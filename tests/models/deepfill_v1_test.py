"""DeepFill v1: parameter counts, shapes, critics, and the trainer's WGAN-GP penalty on them."""

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.models import deepfill_v1
from flowinpaint.models import glcic
from flowinpaint.models import registry
from flowinpaint.train import losses


def _params(module, size):
  variables = jax.eval_shape(lambda: module.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1)),
      train=False))
  return variables["params"]


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_counts_match_the_reference():
  g = _params(deepfill_v1.Generator(), 64)
  total, coarse, refine = _count(g), _count(g["coarse"]), _count(g["refine"])
  assert (total, coarse, refine) == (3_601_542, 1_448_227, 2_153_315)
  assert abs(total - 3.60e6) / 3.60e6 < 0.02
  d = _params(deepfill_v1.Critics(), 256)
  assert abs(_count(d["local"]) - 4.34e6) / 4.34e6 < 0.02
  assert abs(_count(d["global"]) - 2.73e6) / 2.73e6 < 0.02
  assert d["local"]["dense"]["kernel"].shape == (8 * 8 * 512, 1)
  assert d["global"]["dense"]["kernel"].shape == (16 * 16 * 256, 1)


def _tiny_batch(size=32, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  image = jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32)
  mask = np.zeros((batch, size, size, 1), np.float32)
  mask[0, 8:20, 6:18] = 1
  mask[-1, 16:28, 14:30] = 1
  return image, jnp.asarray(mask)


def test_generator_shapes_range_and_masking():
  g = deepfill_v1.Generator(cnum=8, ca_chunk_size=3)
  image, mask = _tiny_batch()
  variables = g.init(jax.random.key(0), image, mask, train=False)
  assert set(variables) == {"params"}
  train_out = g.apply(variables, image, mask, train=True)
  assert set(train_out) == {"output", "coarse"}
  out = g.apply(variables, image, mask, train=False)
  assert out["output"].shape == out["coarse"].shape == (2, 32, 32, 3)
  assert out["offsets"].shape == (2, 8, 8, 2) and out["offsets"].dtype == jnp.int32
  for key in ("output", "coarse"):
    assert float(jnp.max(jnp.abs(out[key]))) <= 1.0
  np.testing.assert_allclose(train_out["output"], out["output"], atol=1e-6)
  other = g.apply(variables, image + 3.0 * mask, mask, train=False)
  np.testing.assert_array_equal(out["output"], other["output"])


def test_critics_score_the_image_and_the_hole_patch():
  d = deepfill_v1.Critics(cnum=4)
  image, mask = _tiny_batch()
  variables = d.init(jax.random.key(0), image, mask, train=False)
  scores = d.apply(variables, image, mask, train=True)
  assert scores["global"].shape == scores["local"].shape == (2,)
  patch, _ = glcic.crop_around_hole(image, mask, 16)
  critic = lambda name, feats, x: deepfill_v1._Critic(feats).apply(
      {"params": variables["params"][name]}, x)
  np.testing.assert_allclose(scores["local"], critic("local", (4, 8, 16, 32), patch), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(scores["global"], critic("global", (4, 8, 16, 16), image),
                             rtol=1e-5, atol=1e-6)


def test_gradient_penalty_against_an_independent_computation():
  """The trainer's hole-masked WGAN-GP on DeepFill v1's critics, computed another way:
  per-sample gradients via vmap, and the directional derivative checked by finite differences."""
  d = deepfill_v1.Critics(cnum=4)
  real, mask = _tiny_batch(seed=1)
  fake, _ = _tiny_batch(seed=2)
  variables = d.init(jax.random.key(0), real, mask, train=False)
  alpha = jnp.asarray([0.3, 0.8]).reshape(2, 1, 1, 1)
  # The sum of both critics' scores: a penalty on it checks the penalty code on a real model.
  critic = lambda x: sum(d.apply(variables, x, mask, train=False).values())
  gp = losses.gradient_penalty(critic, real, fake, mask, alpha)

  x = np.asarray(real + alpha * (fake - real), np.float64)

  def one(xi, mi):
    return sum(d.apply(variables, xi[None], mi[None], train=False).values())[0]

  grads = jax.vmap(jax.grad(one))(jnp.asarray(x, jnp.float32), mask)
  hole_grads = np.asarray(grads, np.float64) * np.asarray(mask)
  norms = np.sqrt((hole_grads ** 2).reshape(2, -1).sum(-1))
  np.testing.assert_allclose(float(gp), np.mean((norms - 1.0) ** 2), rtol=1e-4)
  # The critic's score changes along a direction inside the hole as the gradient says.
  # A few hole pixels of each sample, small steps: no LeakyReLU changes side.
  rng = np.random.default_rng(3)
  direction = np.zeros(x.shape)
  direction[0, 10:12, 8:10] = rng.normal(size=(2, 2, 3))
  direction[1, 20:22, 20:22] = rng.normal(size=(2, 2, 3))
  assert np.all(direction * (1 - np.asarray(mask)) == 0)
  eps = 1e-3
  plus = critic(jnp.asarray(x + eps * direction, jnp.float32))
  minus = critic(jnp.asarray(x - eps * direction, jnp.float32))
  numeric = (np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / (2 * eps)
  analytic = (np.asarray(grads, np.float64) * direction).reshape(2, -1).sum(-1)
  assert np.all(np.abs(analytic) > 1e-3)
  np.testing.assert_allclose(numeric, analytic, rtol=1e-2, atol=1e-4)
  assert np.all(norms > 0)


def test_registered():
  spec = registry.get("deepfill_v1")
  assert spec.multiple == 8 and spec.make_discriminator is not None
