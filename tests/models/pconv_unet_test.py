"""PConv U-Net: parameter count, any input size, masks, the paper's layer plan."""

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.models import pconv_unet
from flowinpaint.models import registry


def _count(module, size):
  variables = jax.eval_shape(lambda: module.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1)),
      train=False))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


def _analytic_count(depth, cnum=64):
  """Convs + biases, BatchNorm affine on encoder layers 2.. and decoder layers but the last."""
  plan = pconv_unet.encoder_plan(depth, cnum)
  total, c_in = 0, 3
  for i, (f, k) in enumerate(plan):
    total += k * k * c_in * f + f + (2 * f if i else 0)
    c_in = f
  skips = [3] + [f for f, _ in plan[:-1]]
  for j, skip in enumerate(reversed(skips)):
    f = 3 if j == depth - 1 else skip
    total += 9 * (c_in + skip) * f + f + (0 if j == depth - 1 else 2 * f)
    c_in = f
  return total


def test_parameter_count_and_plan():
  assert pconv_unet.encoder_plan(8) == [(64, 7), (128, 5), (256, 5), (512, 3), (512, 3),
                                        (512, 3), (512, 3), (512, 3)]
  paper = _count(pconv_unet.PConvUNet(depth=8), 512)
  assert paper == _analytic_count(8) == 32_865_236
  assert _count(pconv_unet.PConvUNet(depth=7), 256) == _analytic_count(7)


def test_any_size_and_hole_content_is_ignored():
  model = pconv_unet.PConvUNet(depth=3, cnum=4)
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.uniform(-1, 1, (2, 20, 28, 3)), jnp.float32)
  mask = jnp.zeros((2, 20, 28, 1)).at[:, 5:12, 6:20].set(1.0)
  variables = model.init(jax.random.key(0), image, mask, train=False)
  out, updated = model.apply(variables, image, mask, train=True, mutable=["batch_stats"])
  assert out["output"].shape == (2, 20, 28, 3) and "batch_stats" in updated
  a = model.apply(variables, image, mask, train=False)["output"]
  b = model.apply(variables, image - 4.0 * mask, mask, train=False)["output"]
  np.testing.assert_array_equal(a, b)
  assert np.all(np.isfinite(np.asarray(a)))


def test_registered_without_discriminator():
  spec = registry.get("pconv_unet")
  assert spec.make_discriminator is None and spec.multiple == 1
