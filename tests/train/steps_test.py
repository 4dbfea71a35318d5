"""The pure train step: which parameters each phase trains, losses, multi-device equivalence."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flowinpaint.train import sharding
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train.phases import Phase, phase_for_step
from tests.train.toy_models import ToyDiscriminator, ToyGenerator

SIZE, BATCH = 16, 8


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  mask = np.zeros((BATCH, SIZE, SIZE, 1), np.float32)
  for i in range(BATCH):
    y, x = rng.integers(0, SIZE // 2, 2)
    mask[i, y:y + 6, x:x + 5] = 1.0
  return {"image": image, "mask": mask}


def _setup(loss_cfg=steps.LossConfig(), tx=None):
  g, d = ToyGenerator(), ToyDiscriminator()
  g_tx = d_tx = tx or optax.adam(1e-2)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, g_tx, d_tx,
                              image_size=SIZE)
  step = jax.jit(steps.make_train_step(g, d, g_tx, d_tx, loss_cfg), static_argnames="phase")
  return st, step


def _changed(before, after, only_kernels=False):
  leaves_b = jax.tree_util.tree_flatten_with_path(before)[0]
  leaves_a = jax.tree.leaves(after)
  return [not np.array_equal(np.asarray(a), np.asarray(b))
          for (path, b), a in zip(leaves_b, leaves_a)
          if not only_kernels or "kernel" in jax.tree_util.keystr(path)]


@pytest.mark.parametrize("phase,g_changes,d_changes", [
    (Phase.RECONSTRUCTION, True, False),
    (Phase.DISCRIMINATOR, False, True),
    (Phase.JOINT, True, True),
])
def test_each_phase_trains_only_its_players(phase, g_changes, d_changes):
  st, step = _setup()
  before = jax.device_get(st)
  after, metrics = step(st, _batch(), phase=phase)
  after = jax.device_get(after)
  # Every kernel and statistic of a trained player changes (a bias may not: the hinge loss's
  # bias gradients cancel when every margin is active); no leaf of a frozen player changes.
  for player, trained in (("g_vars", g_changes), ("d_vars", d_changes)):
    b, a = getattr(before, player), getattr(after, player)
    if trained:
      assert all(_changed(b, a, only_kernels=True))
      assert all(_changed(b.get("batch_stats", {}), a.get("batch_stats", {})))
    else:
      assert not any(_changed(b, a))
  assert _changed(before.g_opt, after.g_opt).count(True) > 0 if g_changes else not any(
      _changed(before.g_opt, after.g_opt))
  assert int(after.step) == 1
  values = metrics.compute()
  assert all(np.isfinite(float(v)) for v in values.values())
  assert (float(values["d_loss"]) != 0.0) == d_changes
  assert (float(values["recon_loss"]) != 0.0) == g_changes


def test_reconstruction_loss_matches_independent_l1():
  st, step = _setup()
  batch = _batch(1)
  g = ToyGenerator()
  outs = g.apply(st.g_vars, batch["image"], batch["mask"], train=True, mutable=["batch_stats"])[0]
  expected = (np.abs(np.asarray(outs["output"]) - batch["image"]).mean()
              + np.abs(np.asarray(outs["coarse"]) - batch["image"]).mean())
  _, metrics = step(st, batch, phase=Phase.RECONSTRUCTION)
  np.testing.assert_allclose(float(metrics.compute()["recon_loss"]), expected, rtol=1e-5)
  hole_l1 = (np.abs(np.asarray(outs["output"]) - batch["image"]) * batch["mask"]).sum() / (
      batch["mask"].sum() * 3)
  np.testing.assert_allclose(float(metrics.compute()["l1_hole"]), hole_l1, rtol=1e-5)


def test_generator_gradient_matches_direct_differentiation():
  # The step pulls the loss gradient back through a saved vjp; it must equal plain jax.grad.
  loss_cfg = steps.LossConfig()
  g, d = ToyGenerator(), ToyDiscriminator()
  sgd = optax.sgd(1.0)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, sgd,
                              optax.sgd(0.0), image_size=SIZE)
  batch = _batch(2)
  step = jax.jit(steps.make_train_step(g, d, sgd, optax.sgd(0.0), loss_cfg),
                 static_argnames="phase")
  after, _ = step(st, batch, phase=Phase.JOINT)

  # The generator's loss sees the discriminator after its own step (lr 0 leaves its params,
  # but its spectral-norm power iteration has moved): use those variables.
  d_after = after.d_vars

  def direct_loss(params):
    outs, _ = g.apply({**st.g_vars, "params": params}, batch["image"], batch["mask"], train=True,
                      mutable=["batch_stats"])
    recon = (jnp.mean(jnp.abs(outs["output"] - batch["image"]))
             + jnp.mean(jnp.abs(outs["coarse"] - batch["image"])))
    completed = outs["output"] * batch["mask"] + batch["image"] * (1 - batch["mask"])
    return recon - jnp.mean(d.apply(d_after, completed, batch["mask"], train=False))

  grads = jax.grad(direct_loss)(st.g_vars["params"])
  expected = jax.tree.map(lambda p, gr: p - gr, st.g_vars["params"], grads)
  for a, b in zip(jax.tree.leaves(after.g_vars["params"]), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_multi_device_step_equals_single_device():
  assert jax.device_count() == 8, "conftest should provide 8 CPU devices"
  batch = _batch(3)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(devices)
    # SGD, not Adam: Adam turns the rounding noise of a near-zero gradient into a full step.
    st, step = _setup(tx=optax.sgd(0.1))
    st = jax.device_put(st, sharding.replicated(mesh))
    sharded = sharding.shard_batch(batch, mesh)
    assert len(sharded["image"].sharding.device_set) == len(devices)
    st, metrics = step(st, sharded, phase=Phase.JOINT)
    st, metrics = step(st, sharded, phase=Phase.JOINT)
    results.append((jax.device_get(st), {k: float(v) for k, v in metrics.compute().items()}))
  (one, m_one), (eight, m_eight) = results
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
  for k in m_one:
    np.testing.assert_allclose(m_one[k], m_eight[k], rtol=2e-4, atol=1e-5)


def test_no_recompilation_within_a_phase():
  st, step = _setup()
  st, _ = step(st, _batch(0), phase=Phase.JOINT)
  size_before = step._cache_size()
  st, _ = step(st, _batch(1), phase=Phase.JOINT)
  st, _ = step(st, _batch(2), phase=Phase.JOINT)
  assert step._cache_size() == size_before
  step(st, _batch(3), phase=Phase.RECONSTRUCTION)
  assert step._cache_size() == size_before + 1


def test_wgan_gp_and_multiple_critic_steps_run():
  st, step = _setup(steps.LossConfig(adversarial="wgan_gp", d_steps=3))
  st, metrics = step(st, _batch(), phase=Phase.JOINT)
  values = metrics.compute()
  assert float(values["gradient_penalty"]) > 0.0
  assert np.isfinite(float(values["d_loss"]))


def test_phase_schedule():
  kw = dict(reconstruction_steps=3, discriminator_steps=2)
  phases = [phase_for_step(s, **kw) for s in range(7)]
  assert phases == [Phase.RECONSTRUCTION] * 3 + [Phase.DISCRIMINATOR] * 2 + [Phase.JOINT] * 2
  assert phase_for_step(10, **kw, has_discriminator=False) is Phase.RECONSTRUCTION
  assert phase_for_step(0, reconstruction_steps=0, discriminator_steps=0) is Phase.JOINT


class _TargetGenerator(ToyGenerator):
  """Predicts a transformed image (as a structure model would) and adds an extra loss."""

  def __call__(self, image, mask, *, train: bool):
    outs = super().__call__(image, mask, train=train)
    return {**outs, "target": jnp.flip(image, axis=-1) * 0.5,
            "extra_loss": 0.25 * jnp.mean(jnp.square(outs["output"]))}


def test_generator_may_name_its_own_target_and_extra_loss():
  g, d = _TargetGenerator(), ToyDiscriminator()
  tx = optax.sgd(0.0)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, tx, tx,
                              image_size=SIZE)
  batch = _batch(4)
  step = jax.jit(steps.make_train_step(g, d, tx, tx, steps.LossConfig()), static_argnames="phase")
  outs = g.apply(st.g_vars, batch["image"], batch["mask"], train=True, mutable=["batch_stats"])[0]
  target = np.flip(batch["image"], -1) * 0.5
  recon = (np.abs(np.asarray(outs["output"]) - target).mean()
           + np.abs(np.asarray(outs["coarse"]) - target).mean())
  _, metrics = step(st, batch, phase=Phase.RECONSTRUCTION)
  values = metrics.compute()
  np.testing.assert_allclose(float(values["recon_loss"]), recon, rtol=1e-5)
  np.testing.assert_allclose(float(values["g_loss"]), recon + float(outs["extra_loss"]),
                             rtol=1e-5)
  predicted = steps.make_predict_fn(g)(st.g_vars, batch["image"], batch["mask"])
  outside = np.broadcast_to(batch["mask"] == 0, target.shape)
  np.testing.assert_allclose(np.asarray(predicted["output"])[outside], target[outside])


class _TwoLinearCritics(nn.Module):
  """Two critics linear in the image: each one's input gradient is its weight map."""

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    shape = (1,) + image.shape[1:]
    w1 = self.param("w1", nn.initializers.normal(0.5), shape)
    w2 = self.param("w2", nn.initializers.normal(0.5), shape)
    return {"a": jnp.sum(w1 * image, axis=(1, 2, 3)), "b": jnp.sum(w2 * image, axis=(1, 2, 3))}


def test_one_gradient_penalty_per_critic():
  g, d = ToyGenerator(), _TwoLinearCritics()
  tx = optax.sgd(0.0)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, tx, tx,
                              image_size=SIZE)
  batch = _batch(5)
  step = jax.jit(steps.make_train_step(g, d, tx, tx, steps.LossConfig(adversarial="wgan_gp")),
                 static_argnames="phase")
  _, metrics = step(st, batch, phase=Phase.DISCRIMINATOR)
  mask = batch["mask"]
  expected = 0.0
  for name in ("w1", "w2"):
    w = np.asarray(st.d_vars["params"][name])
    norms = np.sqrt((np.broadcast_to(w, (BATCH,) + w.shape[1:]) ** 2 * mask).sum(axis=(1, 2, 3)))
    expected += ((norms - 1.0) ** 2).mean()
  np.testing.assert_allclose(float(metrics.compute()["gradient_penalty"]), expected, rtol=1e-4)


def test_a_phase_that_needs_a_discriminator_says_so():
  g, tx = ToyGenerator(), optax.sgd(0.1)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, None, tx, None,
                              image_size=SIZE)
  step = steps.make_train_step(g, None, tx, None, steps.LossConfig(adversarial="none"))
  with pytest.raises(ValueError, match="'joint' needs a discriminator; this model has none"):
    step(st, _batch(), phase=Phase.JOINT)
  st, metrics = jax.jit(step, static_argnames="phase")(st, _batch(), phase=Phase.RECONSTRUCTION)
  assert float(metrics.compute()["d_loss"]) == 0.0
