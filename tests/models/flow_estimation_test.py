"""The PWC-style flow network: shapes, contract, sizes, and a short training run that learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import flow_net_tiny
from flowinpaint.models import registry
from flowinpaint.models.flow_estimation import FlowNet, resize_flow
from flowinpaint.train import train


def _small():
  return FlowNet(pyramid_widths=(4, 8, 8), estimator_widths=(8,), max_displacement=2)


def test_shapes_contract_and_any_multiple_size():
  net = _small()
  image = jnp.zeros((2, 24, 40, 6))
  variables = net.init(jax.random.key(0), image)
  out = net.apply(variables, image)
  assert out["output"].shape == out["coarse"].shape == (2, 24, 40, 2)
  assert net.multiple == 8
  with pytest.raises(ValueError, match="multiples of 8"):
    net.apply(variables, jnp.zeros((1, 20, 40, 6)))
  with pytest.raises(ValueError, match="6"):
    net.apply(variables, jnp.zeros((1, 24, 40, 3)))


def test_registered_generator_is_its_own_target_at_inference():
  spec = registry.get("flow_net")
  config = flow_net_tiny.get_config()
  gen = spec.make_generator(config.model, jnp.float32)
  image, mask = jnp.zeros((1, 32, 32, 6)), jnp.zeros((1, 32, 32, 1))
  variables = gen.init(jax.random.key(0), image, mask, train=False)
  train_out = gen.apply(variables, image, mask, train=True)
  assert "target" not in train_out  # Training compares with the batch's ground truth.
  infer = gen.apply(variables, image, mask, train=False)
  np.testing.assert_array_equal(infer["target"], infer["output"])


def test_resize_flow_keeps_units():
  flow = jnp.ones((1, 4, 4, 2)) * jnp.array([2.0, -3.0])
  np.testing.assert_allclose(resize_flow(flow, 8, 8), jnp.ones((1, 8, 8, 2)) *
                             jnp.array([2.0, -3.0]), rtol=1e-6)


def test_tiny_training_lowers_the_held_out_epe(tmp_path):
  config = flow_net_tiny.get_config()
  config.model.pyramid_widths = (8, 16, 24)
  config.model.estimator_widths = (16, 16)
  config.model.max_displacement = 2
  config.image_size = 32
  config.num_eval_images = 8
  config.optimizer.g_learning_rate = 2e-3
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 100
  config.num_train_steps = 0  # Evaluates the initial network.
  before = train.train_and_evaluate(config, str(tmp_path / "a"))["epe"]
  config.num_train_steps = 200
  after = train.train_and_evaluate(config, str(tmp_path / "b"))["epe"]
  # Measured with OpenCV 5.0 (exact bilinear weights in its warps): 1.23 -> 0.84 at 200 steps;
  # 100 steps sit on a plateau (1.18) that OpenCV 4's fixed-point warps happened to leave
  # sooner (1.16 -> 1.05), so the test takes 200.
  assert np.isfinite(before) and after < 0.95 * before, (before, after)
