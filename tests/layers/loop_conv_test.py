"""layers.loop_conv: the same values and gradients as lax.conv with autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers.loop_conv import conv_nhwc


def _reference(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("kernel, stride, size", [
    (3, 1, (9, 12)), (5, 2, (12, 16)), (5, 2, (13, 10)), (3, 2, (11, 11)), (1, 1, (5, 7)),
    (1, 2, (6, 9)),
])
def test_values_and_gradients_match_autodiff(kernel, stride, size):
  rng = np.random.default_rng(kernel * 10 + stride)
  x = jnp.asarray(rng.normal(size=(2, *size, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 3, 4)), jnp.float32)
  y = conv_nhwc(x, w, stride)
  np.testing.assert_allclose(np.asarray(y), np.asarray(_reference(x, w, stride)), atol=1e-5)
  dy = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  got = jax.vjp(lambda a, b: conv_nhwc(a, b, stride), x, w)[1](dy)
  want = jax.vjp(lambda a, b: _reference(a, b, stride), x, w)[1](dy)
  for g, r in zip(got, want):
    assert g.shape == r.shape and g.dtype == r.dtype
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), atol=1e-4)


def test_gradient_inside_a_fori_loop_and_jit():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 10, 10, 2)), jnp.float32)
  w0 = jnp.asarray(rng.normal(size=(3, 3, 2, 2)) * 0.1, jnp.float32)

  def descend(conv):
    loss = lambda w: jnp.sum(conv(x, w, 2) ** 2)  # noqa: E731
    return jax.jit(lambda w: jax.lax.fori_loop(0, 4, lambda _, w: w - 0.01 * jax.grad(loss)(w),
                                               w))(w0)

  np.testing.assert_allclose(np.asarray(descend(conv_nhwc)), np.asarray(descend(_reference)),
                             atol=1e-5)
