"""Correlation layer vs a plain numpy loop over pixels and displacements."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers.correlation import Correlation, correlation, displacements


def _numpy_correlation(f1, f2, max_displacement, stride):
  b, h, w, c = f1.shape
  offsets = displacements(max_displacement, stride)
  out = np.zeros((b, h, w, len(offsets)), np.float64)
  for k, (dx, dy) in enumerate(offsets):
    for y in range(h):
      for x in range(w):
        yy, xx = y + dy, x + dx
        if 0 <= yy < h and 0 <= xx < w:
          out[:, y, x, k] = np.sum(f1[:, y, x] * f2[:, yy, xx], axis=-1) / c
  return out


@pytest.mark.parametrize("max_displacement,stride", [(0, 1), (2, 1), (3, 1), (4, 2)])
def test_matches_numpy_loop(max_displacement, stride):
  rng = np.random.default_rng(0)
  f1 = rng.normal(size=(2, 7, 9, 5)).astype(np.float32)
  f2 = rng.normal(size=(2, 7, 9, 5)).astype(np.float32)
  got = jax.jit(lambda a, b: correlation(a, b, max_displacement=max_displacement,
                                         stride=stride))(f1, f2)
  r = max_displacement // stride
  assert got.shape == (2, 7, 9, (2 * r + 1) ** 2)
  np.testing.assert_allclose(got, _numpy_correlation(f1, f2, max_displacement, stride),
                             rtol=1e-5, atol=1e-6)


def test_shift_peaks_at_the_true_displacement():
  # f2 is f1 moved by (dx, dy) = (2, -1): the cost peaks at that channel away from borders.
  rng = np.random.default_rng(1)
  f1 = rng.normal(size=(1, 12, 12, 16)).astype(np.float32)
  f2 = np.roll(f1, shift=(-1, 2), axis=(1, 2))
  cost = np.asarray(correlation(f1, f2, max_displacement=3))
  best = np.argmax(cost[0, 4:8, 4:8], axis=-1)
  assert (best == displacements(3).index((2, -1))).all()


def test_module_and_gradients():
  rng = np.random.default_rng(2)
  f1 = jnp.asarray(rng.normal(size=(1, 5, 6, 3)), jnp.float32)
  f2 = jnp.asarray(rng.normal(size=(1, 5, 6, 3)), jnp.float32)
  module = Correlation(max_displacement=1)
  assert module.init(jax.random.key(0), f1, f2) == {}
  out = module.apply({}, f1, f2)
  np.testing.assert_allclose(out, correlation(f1, f2, max_displacement=1))
  # d/d f1 of sum(cost) is sum over displacements of f2(x + d) / C: check against finite diffs.
  g = jax.grad(lambda a: jnp.sum(correlation(a, f2, max_displacement=1) ** 2))(f1)
  eps = 1e-3
  e = jnp.zeros_like(f1).at[0, 2, 3, 1].set(eps)
  fd = (jnp.sum(correlation(f1 + e, f2, max_displacement=1) ** 2) -
        jnp.sum(correlation(f1 - e, f2, max_displacement=1) ** 2)) / (2 * eps)
  np.testing.assert_allclose(g[0, 2, 3, 1], fd, rtol=1e-2)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    correlation(jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 5, 2)))
