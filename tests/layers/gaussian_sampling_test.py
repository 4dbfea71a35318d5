"""Bilinear and Gaussian appearance-flow sampling vs NumPy loops, limits, translations, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers.gaussian_sampling import GaussianSampling
from flowinpaint.layers.gaussian_sampling import bilinear_sample
from flowinpaint.layers.gaussian_sampling import gaussian_sample


def _np_gaussian_sample(f, flow, n, sigma):
  """The reference kernel's formula, one output pixel at a time (float64)."""
  b, hs, ws, c = f.shape
  _, h, w, _ = flow.shape
  out = np.zeros((b, h, w, c))
  for bi in range(b):
    for y in range(h):
      for x in range(w):
        xf, yf = x + flow[bi, y, x, 0], y + flow[bi, y, x, 1]
        alpha, beta = xf - math.floor(xf), yf - math.floor(yf)
        val, total = np.zeros(c), 0.0
        for fy in range(n // 2):
          y_top = min(max(math.floor(yf) - fy, 0), hs - 1)
          y_bot = min(max(math.floor(yf) + fy + 1, 0), hs - 1)
          for fx in range(n // 2):
            x_left = min(max(math.floor(xf) - fx, 0), ws - 1)
            x_right = min(max(math.floor(xf) + fx + 1, 0), ws - 1)
            g = lambda d: math.exp(-d * d / (2 * sigma * sigma))
            for yy, dy in ((y_top, fy + beta), (y_bot, fy + 1 - beta)):
              for xx, dx in ((x_left, fx + alpha), (x_right, fx + 1 - alpha)):
                wgt = g(dy) * g(dx)
                val += wgt * f[bi, yy, xx]
                total += wgt
        out[bi, y, x] = val / total
  return out


def _np_bilinear(f, flow):
  b, hs, ws, c = f.shape
  _, h, w, _ = flow.shape
  out = np.zeros((b, h, w, c))
  for bi in range(b):
    for y in range(h):
      for x in range(w):
        xf, yf = x + flow[bi, y, x, 0], y + flow[bi, y, x, 1]
        x0, y0 = math.floor(xf), math.floor(yf)
        a, bb = xf - x0, yf - y0
        cl = lambda v, n: min(max(v, 0), n - 1)
        out[bi, y, x] = ((1 - a) * (1 - bb) * f[bi, cl(y0, hs), cl(x0, ws)] +
                         a * (1 - bb) * f[bi, cl(y0, hs), cl(x0 + 1, ws)] +
                         (1 - a) * bb * f[bi, cl(y0 + 1, hs), cl(x0, ws)] +
                         a * bb * f[bi, cl(y0 + 1, hs), cl(x0 + 1, ws)])
  return out


@pytest.fixture
def data():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((2, 9, 11, 3)).astype(np.float32)
  flow = rng.uniform(-4, 4, size=(2, 9, 11, 2)).astype(np.float32)
  return f, flow


@pytest.mark.parametrize('n,sigma', [(2, 1.0), (4, 2.0), (16, 4.0)])
def test_gaussian_matches_kernel_formula(data, n, sigma):
  f, flow = data
  got = gaussian_sample(jnp.asarray(f), jnp.asarray(flow), kernel_size=n, sigma=sigma)
  np.testing.assert_allclose(np.asarray(got), _np_gaussian_sample(f, flow, n, sigma),
                             atol=2e-5)


def test_bilinear_matches_numpy(data):
  f, flow = data
  got = bilinear_sample(jnp.asarray(f), jnp.asarray(flow))
  np.testing.assert_allclose(np.asarray(got), _np_bilinear(f, flow), atol=2e-5)


def test_tiny_sigma_limit(data):
  f, flow = data
  f, flow = jnp.asarray(f), jnp.asarray(flow)
  for n in (2, 4, 16):
    # At integer sampling points Gaussian sampling becomes bilinear sampling (both read the
    # pixel itself) ...
    integer = jnp.round(flow)
    np.testing.assert_allclose(
        np.asarray(gaussian_sample(f, integer, kernel_size=n, sigma=1e-3)),
        np.asarray(bilinear_sample(f, integer)), atol=1e-6)
    # ... between them the nearest neighbour's weight dominates: nearest-neighbour sampling.
    np.testing.assert_allclose(
        np.asarray(gaussian_sample(f, flow, kernel_size=n, sigma=1e-3)),
        np.asarray(bilinear_sample(f, jnp.round(flow))), atol=1e-6)


def test_integer_translation_reproduces_the_shifted_image():
  rng = np.random.default_rng(1)
  f = rng.standard_normal((1, 12, 12, 4)).astype(np.float32)
  dx, dy = 3, -2
  flow = np.broadcast_to(np.array([dx, dy], np.float32), (1, 12, 12, 2))
  expected = np.zeros_like(f)  # out[y, x] = f[y + dy, x + dx], clamped at the border.
  for y in range(12):
    for x in range(12):
      expected[0, y, x] = f[0, min(max(y + dy, 0), 11), min(max(x + dx, 0), 11)]
  np.testing.assert_array_equal(np.asarray(bilinear_sample(jnp.asarray(f), jnp.asarray(flow))),
                                expected)
  got = GaussianSampling(kernel_size=4, sigma=0.05).apply({}, jnp.asarray(f), jnp.asarray(flow))
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6)
  # A flow on a coarser grid than the source: output pixel (y, x) reads source (y, x) + flow.
  coarse = bilinear_sample(jnp.asarray(f), jnp.asarray(flow[:, :6, :6]))
  np.testing.assert_array_equal(np.asarray(coarse), expected[:, :6, :6])


def test_fractional_translation_of_a_ramp_is_exact():
  yy, xx = np.mgrid[:10, :10].astype(np.float32)
  f = (2 * xx + 3 * yy)[None, ..., None]
  flow = np.broadcast_to(np.array([0.25, 0.5], np.float32), (1, 10, 10, 2))
  out = np.asarray(bilinear_sample(jnp.asarray(f), jnp.asarray(flow)))
  np.testing.assert_allclose(out[0, :-1, :-1, 0], (f[0, :-1, :-1, 0] + 2 * 0.25 + 3 * 0.5),
                             atol=1e-5)


@pytest.mark.parametrize('sampler', ['bilinear', 'gaussian4'])
def test_gradients_match_finite_differences(sampler):
  rng = np.random.default_rng(2)
  fns = {'bilinear': bilinear_sample,
         'gaussian4': lambda f, w: gaussian_sample(f, w, kernel_size=4, sigma=2.0)}
  fn = fns[sampler]
  with jax.enable_x64(True):
    f = jnp.asarray(rng.standard_normal((1, 7, 8, 2)))
    # Stay away from integer sampling points, where the window jumps.
    flow = jnp.asarray(rng.integers(-3, 3, size=(1, 7, 8, 2)) + rng.uniform(0.2, 0.8,
                                                                            (1, 7, 8, 2)))
    probe = jnp.asarray(rng.standard_normal((1, 7, 8, 2)))
    loss = lambda f, w: jnp.sum(fn(f, w) * probe)
    g_f, g_w = jax.grad(loss, argnums=(0, 1))(f, flow)
    eps = 1e-6
    for grad, arg in ((g_w, 1), (g_f, 0)):
      direction = jnp.asarray(rng.standard_normal(grad.shape))
      plus = [f, flow]
      minus = [f, flow]
      plus[arg] = plus[arg] + eps * direction
      minus[arg] = minus[arg] - eps * direction
      numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
      np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(numeric), rtol=1e-5)


def test_gaussian_flow_gradient_reaches_beyond_the_bilinear_2x2():
  # A single bright pixel 3 columns right of the sampling point: bilinear sampling sees nothing
  # there (zero gradient), Gaussian n=16 sampling pulls the flow towards it.
  f = np.zeros((1, 1, 16, 1), np.float32)
  f[0, 0, 9] = 1.0
  flow = np.zeros((1, 1, 1, 2), np.float32)
  flow[0, 0, 0, 0] = 5.5  # Output pixel x=0 samples at x' = 5.5.
  g = lambda fn: jax.grad(lambda w: jnp.sum(fn(jnp.asarray(f), w)))(jnp.asarray(flow))
  assert float(g(bilinear_sample)[0, 0, 0, 0]) == 0.0
  assert float(g(lambda a, w: gaussian_sample(a, w, kernel_size=16, sigma=4.0))[0, 0, 0, 0]) > 0


def test_bfloat16_features_and_bad_arguments(data):
  f, flow = data
  out = gaussian_sample(jnp.asarray(f, jnp.bfloat16), jnp.asarray(flow))
  assert out.dtype == jnp.bfloat16 and out.shape == f.shape
  with pytest.raises(ValueError, match='even'):
    gaussian_sample(jnp.asarray(f), jnp.asarray(flow), kernel_size=3)
  with pytest.raises(ValueError, match='sigma'):
    gaussian_sample(jnp.asarray(f), jnp.asarray(flow), sigma=0.0)
