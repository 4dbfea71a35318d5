"""DFC-Net: the reference's parameter counts, the contract, compositing, and that it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import dfc_net_tiny
from flowinpaint.models import registry
from flowinpaint.models.flow_completion import DFCNet
from flowinpaint.train import flow_losses


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def test_resnet50_stages_have_the_reference_parameter_counts():
  # reference/models.md: ~37.0M (stage 1, 33 input channels) and ~37.1M (stages 2-3, 66).
  net = DFCNet()
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 64, 64, 66)),
                                           jnp.zeros((1, 64, 64, 1))))
  counts = {k: _count(v) for k, v in shapes["params"].items()}
  assert counts == {"stage1": 37_004_866, "stage2": 37_108_354, "stage3": 37_108_354}


@pytest.fixture(scope="module")
def small():
  net = DFCNet(window=3, stage_sizes=(1, 1, 1, 1), width=4)
  rng = np.random.default_rng(0)
  image = rng.normal(size=(2, 32, 32, 18)).astype(np.float32)
  mask = np.zeros((2, 32, 32, 1), np.float32)
  mask[:, 8:20, 10:24] = 1
  image[..., 5:6] = mask  # The centre frame's hole channel (frame 1 of 3: channels 3..5).
  variables = jax.jit(lambda: net.init(jax.random.key(0), image, mask))()
  return net, variables, image, mask


def test_contract_and_compositing(small):
  net, variables, image, mask = small
  out = jax.jit(lambda v: net.apply(v, image, mask))(variables)
  assert set(out) == {"output", "coarse", "target"}
  centre = image[..., 3:5]
  np.testing.assert_array_equal(out["target"], centre)
  for key in ("output", "coarse"):
    assert out[key].shape == (2, 32, 32, 2)
    np.testing.assert_array_equal(np.asarray(out[key])[mask[..., 0] == 0],
                                  centre[mask[..., 0] == 0])
  with pytest.raises(ValueError, match="18 channels"):
    net.apply(variables, image[..., :12], mask)


def test_a_few_steps_lower_the_hard_mining_loss(small):
  net, variables, image, mask = small
  target = np.random.default_rng(1).normal(size=(2, 32, 32, 2)).astype(np.float32) + 3.0
  tx = optax.adam(3e-3)

  @jax.jit
  def step(params, stats, opt):
    def loss_fn(p):
      out, new = net.apply({"params": p, "batch_stats": stats}, image, mask, train=True,
                           mutable=["batch_stats"])
      return (flow_losses.hard_flow_l1(out["output"], target, mask) +
              flow_losses.hard_flow_l1(out["coarse"], target, mask)), new["batch_stats"]
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), stats, opt, loss

  params, stats = variables["params"], variables["batch_stats"]
  opt = tx.init(params)
  losses = []
  for _ in range(8):
    params, stats, opt, loss = step(params, stats, opt)
    losses.append(float(loss))
  assert losses[-1] < 0.8 * losses[0], losses


def test_registered_with_the_tiny_config():
  spec = registry.get("dfc_net")
  net = spec.make_generator(dfc_net_tiny.get_config().model, jnp.float32)
  assert (net.window, net.width, tuple(net.stage_sizes)) == (11, 8, (1, 1, 1, 1))
  assert spec.make_discriminator is None and spec.multiple == 32
