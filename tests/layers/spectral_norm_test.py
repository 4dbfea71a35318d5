"""Spectral-normalised conv: power iteration converges to the top singular value."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flowinpaint.layers import SNConv


def _init(layer, x):
  return layer.init(jax.random.PRNGKey(0), x, update_stats=False)


def test_normalised_kernel_has_unit_spectral_norm():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 12, 12, 3)), jnp.float32)
  layer = SNConv(8, 5, 2)
  variables = _init(layer, x)

  def step(_, stats):
    v = {'params': variables['params'], 'batch_stats': stats}
    return layer.apply(v, x, update_stats=True, mutable=['batch_stats'])[1]['batch_stats']

  # The top two singular values of a random 75x8 matrix are close: convergence is slow.
  stats = jax.jit(lambda s: lax.fori_loop(0, 1000, step, s))(variables['batch_stats'])
  variables = {'params': variables['params'], 'batch_stats': stats}
  kernel = np.asarray(variables['params']['conv']['kernel'], np.float64)
  assert kernel.shape == (5, 5, 3, 8)
  top = np.linalg.svd(kernel.reshape(-1, 8), compute_uv=False)[0]
  stats = variables['batch_stats']['spectral_norm']
  sigma = float(stats['conv/kernel/sigma'])
  np.testing.assert_allclose(sigma, top, rtol=1e-3)
  normalised = kernel / sigma
  np.testing.assert_allclose(np.linalg.svd(normalised.reshape(-1, 8), compute_uv=False)[0],
                             1., rtol=1e-3)
  # The layer's output is the conv with that normalised kernel.
  y = layer.apply(variables, x, update_stats=False)
  expected = lax.conv_general_dilated(
      x, jnp.asarray(normalised, jnp.float32), (2, 2), 'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + variables['params']['conv']['bias']
  np.testing.assert_allclose(y, expected, atol=1e-4)


def test_stats_update_only_when_asked():
  x = jnp.ones((1, 8, 8, 4))
  layer = SNConv(6, 3, 1)
  variables = _init(layer, x)
  _, frozen = layer.apply(variables, x, update_stats=False, mutable=['batch_stats'])
  _, updated = layer.apply(variables, x, update_stats=True, mutable=['batch_stats'])
  before = jax.tree_util.tree_leaves(variables['batch_stats'])
  for a, b in zip(before, jax.tree_util.tree_leaves(frozen['batch_stats'])):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b)
             for a, b in zip(before, jax.tree_util.tree_leaves(updated['batch_stats'])))


def test_bf16_compute_keeps_fp32_state():
  x = jnp.ones((1, 8, 8, 4))
  layer = SNConv(6, 5, 2, dtype=jnp.bfloat16)
  variables = _init(layer, x)
  y, updated = layer.apply(variables, x, update_stats=True, mutable=['batch_stats'])
  assert y.dtype == jnp.bfloat16 and y.shape == (1, 4, 4, 6)
  assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(updated))
