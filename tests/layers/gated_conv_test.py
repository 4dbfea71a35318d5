"""Gated convolution against a numpy loop convolution with TF 'SAME' padding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from flowinpaint.layers import GatedConv, GatedUpConv, same_pads


def _tf_conv(x, w, bias, stride, dilation):
  """Loop conv, x [H, W, Cin], w [k, k, Cin, Cout], TF 'SAME' (extra pad at bottom/right)."""
  h, wd, _ = x.shape
  k = w.shape[0]
  eff = (k - 1) * dilation + 1
  out_h, out_w = -(-h // stride), -(-wd // stride)
  top = max((out_h - 1) * stride + eff - h, 0) // 2
  left = max((out_w - 1) * stride + eff - wd, 0) // 2
  y = np.tile(bias.astype(np.float64), (out_h, out_w, 1))
  for i in range(out_h):
    for j in range(out_w):
      for a in range(k):
        for b in range(k):
          r, c = i * stride - top + a * dilation, j * stride - left + b * dilation
          if 0 <= r < h and 0 <= c < wd:
            y[i, j] += x[r, c] @ w[a, b]
  return y


def _elu(x):
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


@pytest.mark.parametrize('size,kernel,stride,dilation', [
    ((6, 5), 3, 1, 1), ((8, 8), 3, 2, 1), ((7, 6), 3, 2, 1), ((8, 9), 3, 1, 2),
    ((8, 8), 5, 2, 1)])
def test_gated_conv_matches_loops(size, kernel, stride, dilation):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2,) + size + (3,)).astype(np.float32)
  layer = GatedConv(4, kernel, strides=stride, dilation=dilation)
  params = layer.init(jax.random.PRNGKey(0), x)
  # Non-zero bias so the bias path is checked too.
  params = jax.tree_util.tree_map(lambda p: p + 0.1 if p.ndim == 1 else p, params)
  y = np.asarray(jax.jit(layer.apply)(params, x))
  w = np.asarray(params['params']['conv']['kernel'], np.float64)
  bias = np.asarray(params['params']['conv']['bias'])
  assert w.shape == (kernel, kernel, 3, 8)
  for n in range(2):
    raw = _tf_conv(x[n].astype(np.float64), w, bias, stride, dilation)
    expected = _elu(raw[..., :4]) * expit(raw[..., 4:])
    np.testing.assert_allclose(y[n], expected, atol=1e-5, rtol=1e-5)


def test_flax_same_is_tf_same_for_stride_2():
  # Even input, k3 s2: TF pads 0 before and 1 after (not 1/1 as a symmetric pad would).
  assert same_pads(8, 3, 2) == (0, 1)
  assert same_pads(7, 3, 2) == (1, 1)
  assert same_pads(8, 3, 1, dilation=2) == (2, 2)
  x = jnp.arange(8.).reshape(1, 8, 1, 1)
  conv = nn.Conv(1, (3, 1), strides=(2, 1), padding='SAME', use_bias=False)
  w = {'params': {'kernel': jnp.array([1., 10., 100.]).reshape(3, 1, 1, 1)}}
  # Output i reads inputs 2i, 2i+1, 2i+2 (window starts at the row itself).
  np.testing.assert_allclose(conv.apply(w, x)[0, :, 0, 0], [210., 432., 654., 76.])


def test_ungated_output_layer():
  x = np.random.default_rng(1).normal(size=(1, 5, 5, 2)).astype(np.float32)
  layer = GatedConv(3, 3, activation=None)
  params = layer.init(jax.random.PRNGKey(0), x)
  y = layer.apply(params, x)
  w = np.asarray(params['params']['conv']['kernel'], np.float64)
  assert y.shape == (1, 5, 5, 3)
  np.testing.assert_allclose(y[0], _tf_conv(x[0], w, np.zeros(3), 1, 1), atol=1e-5)


def test_custom_activation_and_dtypes():
  x = jnp.ones((1, 4, 4, 2))
  layer = GatedConv(2, 3, activation=nn.relu, dtype=jnp.bfloat16)
  params = layer.init(jax.random.PRNGKey(0), x)
  assert params['params']['conv']['kernel'].dtype == jnp.float32
  y = layer.apply(params, x)
  assert y.dtype == jnp.bfloat16 and bool(jnp.all(y >= 0))


def test_gated_up_conv():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(1, 3, 4, 2)).astype(np.float32)
  layer = GatedUpConv(5)
  params = layer.init(jax.random.PRNGKey(0), x)
  y = np.asarray(layer.apply(params, x))
  assert y.shape == (1, 6, 8, 5)
  up = x[0].repeat(2, axis=0).repeat(2, axis=1)
  inner = params['params']['gated_conv']['conv']
  raw = _tf_conv(up.astype(np.float64), np.asarray(inner['kernel'], np.float64),
                 np.asarray(inner['bias']), 1, 1)
  np.testing.assert_allclose(y[0], _elu(raw[..., :5]) * expit(raw[..., 5:]), atol=1e-5)
