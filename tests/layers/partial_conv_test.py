"""PartialConv against a direct numpy loop of the paper's definition, and against a plain conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers.partial_conv import PartialConv


def _numpy_partial_conv(x, hole, kernel, bias, stride, pad):
  """The paper's formula, one output pixel at a time (valid = 1 - hole, zero padding invalid)."""
  b, h, w, c = x.shape
  k = kernel.shape[0]
  valid = 1.0 - np.broadcast_to(hole, x.shape[:3] + (hole.shape[-1],))
  xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
  vp = np.pad(valid, ((0, 0), pad[0], pad[1], (0, 0)))
  oh = (h + sum(pad[0]) - k) // stride + 1
  ow = (w + sum(pad[1]) - k) // stride + 1
  window = k * k * valid.shape[-1]
  y = np.zeros((b, oh, ow, kernel.shape[-1]))
  new_hole = np.ones((b, oh, ow, 1))
  for n in range(b):
    for i in range(oh):
      for j in range(ow):
        xs = xp[n, i * stride:i * stride + k, j * stride:j * stride + k]
        vs = vp[n, i * stride:i * stride + k, j * stride:j * stride + k]
        total = vs.sum()
        if total > 0:
          y[n, i, j] = np.einsum("abc,abcd->d", xs * vs, kernel) * window / total + bias
          new_hole[n, i, j] = 0.0
  return y, new_hole


@pytest.mark.parametrize("stride,padding,mask_channels", [
    (1, 1, 1), (2, 1, 1), (1, "VALID", 1), (2, ((1, 2), (1, 2)), 3), (1, 2, 3)])
def test_matches_numpy_loop(stride, padding, mask_channels):
  rng = np.random.default_rng(0)
  k = 5 if padding == 2 else 3
  x = rng.normal(size=(2, 9, 10, 3)).astype(np.float32)
  hole = (rng.uniform(size=(2, 9, 10, mask_channels)) < 0.6).astype(np.float32)
  hole[0, :5, :6] = 1.0  # A region large enough that some windows see no valid pixel.
  layer = PartialConv(4, k, strides=stride, padding=padding)
  variables = layer.init(jax.random.key(0), x, hole)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # Non-zero bias.
  y, new_hole = jax.jit(layer.apply)(variables, x, hole)
  pad = {1: ((1, 1), (1, 1)), 2: ((2, 2), (2, 2)), "VALID": ((0, 0), (0, 0))}.get(
      padding if not isinstance(padding, tuple) else None, padding)
  ref_y, ref_hole = _numpy_partial_conv(x, hole, np.asarray(variables["params"]["conv"]["kernel"]),
                                        np.asarray(variables["params"]["bias"]), stride, pad)
  assert ref_hole.min() == 0.0
  np.testing.assert_allclose(np.asarray(y), ref_y, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(np.asarray(new_hole), ref_hole)
  if stride == 1 and padding == 1 and mask_channels == 1:
    assert ref_hole.max() == 1.0  # Some windows were entirely hole: output 0 there.
    assert np.all(np.asarray(y)[np.broadcast_to(ref_hole == 1, y.shape)] == 0.0)


def test_all_valid_mask_is_a_plain_conv():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
  no_hole = jnp.zeros((2, 8, 8, 1))
  for padding in ("VALID", "SAME"):
    layer = PartialConv(5, 3, padding=padding)
    variables = layer.init(jax.random.key(0), x, no_hole)
    variables = jax.tree.map(lambda v: v + 0.05, variables)
    y, new_hole = layer.apply(variables, x, no_hole)
    conv = nn.Conv(5, (3, 3), padding=padding)
    plain = conv.apply({"params": {"kernel": variables["params"]["conv"]["kernel"],
                                   "bias": variables["params"]["bias"]}}, x)
    assert not np.asarray(new_hole).any()
    if padding == "VALID":
      np.testing.assert_allclose(y, plain, rtol=1e-5, atol=1e-5)
    else:
      # Zero padding counts as invalid: the border is re-normalised, the interior is plain.
      np.testing.assert_allclose(y[:, 1:-1, 1:-1], plain[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
      assert not np.allclose(y[:, 0], plain[:, 0])


def test_hole_content_and_mask_gradient_do_not_leak():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(1, 8, 8, 2)), jnp.float32)
  hole = jnp.zeros((1, 8, 8, 1)).at[:, 2:6, 2:6].set(1.0)
  layer = PartialConv(3, 3)
  variables = layer.init(jax.random.key(0), x, hole)
  y1, _ = layer.apply(variables, x, hole)
  y2, _ = layer.apply(variables, x + 100.0 * hole, hole)
  np.testing.assert_array_equal(y1, y2)
  grad = jax.grad(lambda m: jnp.sum(layer.apply(variables, x, m)[0]))(hole)
  assert not np.asarray(grad).any()


def test_mask_shrinks_as_the_paper_defines():
  # A 4x4 hole under a 3x3 stride-1 conv: every window touching a valid pixel becomes valid, so
  # the hole loses one pixel on each side.
  hole = np.zeros((1, 10, 10, 1), np.float32)
  hole[0, 3:7, 3:7] = 1.0
  layer = PartialConv(1, 3)
  x = jnp.zeros((1, 10, 10, 1))
  _, new_hole = layer.apply(layer.init(jax.random.key(0), x, hole), x, hole)
  expected = np.zeros_like(hole)
  expected[0, 4:6, 4:6] = 1.0
  np.testing.assert_array_equal(new_hole, expected)


def test_bad_mask_channels():
  layer = PartialConv(2, 3)
  with pytest.raises(ValueError, match="need 1 or 3"):
    layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 2)))
