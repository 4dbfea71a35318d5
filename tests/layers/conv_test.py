"""layers/conv: same values and gradients as lax's convolution; CPU-only kernel-gradient path."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from flowinpaint.layers import GatedConv, SNConv
from flowinpaint.layers import conv as conv_lib

_DN = ('NHWC', 'HWIO', 'NHWC')

# (H, W, Ci, Co, kernel, stride, dilation, padding): the shapes DeepFill v2 uses, in miniature,
# plus odd sizes and explicit, asymmetric padding.
CASES = [
    (17, 13, 3, 5, 3, 1, 1, 'SAME'),
    (16, 16, 4, 6, 5, 2, 1, 'SAME'),
    (15, 18, 3, 4, 3, 2, 1, 'SAME'),
    (20, 20, 3, 4, 3, 1, 4, 'SAME'),
    (15, 15, 2, 3, 3, 2, 2, ((1, 2), (0, 1))),
    (12, 11, 3, 4, 3, 1, 1, 'VALID'),
    (9, 9, 5, 2, 1, 1, 1, 'SAME'),
]


def _pair(fast: bool, stride: int, dilation: int, padding):
  fn = conv_lib.conv_general_dilated if fast else lax.conv_general_dilated
  return lambda x, w: fn(x, w, (stride, stride), padding, rhs_dilation=(dilation, dilation),
                         dimension_numbers=_DN)


def _inputs(h, w, ci, co, k, seed=0):
  kx, kw = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, (2, h, w, ci)), jax.random.normal(kw, (k, k, ci, co))


@pytest.mark.parametrize('case', CASES)
def test_value_and_both_gradients_equal_lax(case):
  h, w, ci, co, k, s, d, pad = case
  x, kern = _inputs(h, w, ci, co, k)
  ref_f, fast_f = _pair(False, s, d, pad), _pair(True, s, d, pad)
  y_ref, vjp_ref = jax.vjp(ref_f, x, kern)
  y, vjp = jax.vjp(fast_f, x, kern)
  np.testing.assert_array_equal(y, y_ref)
  ct = jax.random.normal(jax.random.key(7), y.shape)
  dx_ref, dw_ref = vjp_ref(ct)
  dx, dw = jax.jit(vjp)(ct)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
  # The kernel gradient sums the same products in another order: float32 rounding only.
  np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(dw_ref))))


@pytest.mark.parametrize('chunk_bytes', [1, 700, 4096, 1 << 30])
def test_kernel_grad_rows_any_chunking_against_einsum(chunk_bytes):
  # An independent formula:
  # dW[a, b, ci, co] = sum x_pad[n, y*s + a*d, x*s + b*d, ci] g[n, y, x, co].
  h, w, ci, co, k, s, d = 13, 10, 3, 4, 3, 2, 2
  pads = ((2, 3), (1, 2))
  x, _ = _inputs(h, w, ci, co, k)
  xn = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  ho, wo = (xn.shape[1] - (k - 1) * d - 1) // s + 1, (xn.shape[2] - (k - 1) * d - 1) // s + 1
  g = np.asarray(jax.random.normal(jax.random.key(3), (2, ho, wo, co)), np.float64)
  want = np.zeros((k, k, ci, co))
  for a in range(k):
    for b in range(k):
      tap = xn[:, a * d: a * d + (ho - 1) * s + 1: s, b * d: b * d + (wo - 1) * s + 1: s]
      want[a, b] = np.einsum('nyxc,nyxo->co', tap, g)
  got = conv_lib.kernel_grad_rows(x, jnp.asarray(g, jnp.float32), (k, k), (s, s), (d, d), pads,
                                  chunk_bytes=chunk_bytes)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_second_order_gradient_equals_lax():
  # A gradient penalty differentiates a gradient: the custom VJP must be differentiable too.
  x, kern = _inputs(10, 10, 3, 4, 3)

  def penalty(fast):
    conv = _pair(fast, 2, 1, 'SAME')
    gx = lambda kern, x: jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, kern))))(x)
    return jax.grad(lambda kern: jnp.sum(gx(kern, x) ** 2))(kern)

  np.testing.assert_allclose(penalty(True), penalty(False), rtol=1e-4, atol=1e-4)


def test_other_layouts_and_groups_are_lax_itself():
  x = jax.random.normal(jax.random.key(0), (2, 4, 9, 9))  # NCHW, grouped.
  w = jax.random.normal(jax.random.key(1), (6, 2, 3, 3))
  args = dict(dimension_numbers=('NCHW', 'OIHW', 'NCHW'), feature_group_count=2)
  f = lambda x, w: conv_lib.conv_general_dilated(x, w, (1, 1), 'SAME', **args)
  assert 'custom_vjp' not in str(jax.make_jaxpr(f)(x, w))
  np.testing.assert_array_equal(f(x, w), lax.conv_general_dilated(x, w, (1, 1), 'SAME', **args))
  nhwc = jax.make_jaxpr(_pair(True, 1, 1, 'SAME'))(*_inputs(8, 8, 2, 3, 3))
  assert 'custom_vjp' in str(nhwc)


def _lowered_ops(f, args, platform):
  text = jax.export.export(jax.jit(f), platforms=[platform])(*args).mlir_module()
  return {op: len(re.findall(rf'stablehlo\.{op}\b', text))
          for op in ('convolution', 'dot_general', 'while')}


@pytest.mark.parametrize('platform', ['cuda', 'rocm', 'tpu'])
def test_accelerators_lower_to_xlas_own_convolutions(platform):
  # Off the CPU the kernel gradient stays XLA's convolution (cuDNN's): same ops as plain lax.
  args = _inputs(32, 32, 8, 16, 3)
  grads = lambda fast: lambda x, w: jax.grad(
      lambda x, w: jnp.sum(_pair(fast, 1, 1, 'SAME')(x, w) ** 2), argnums=(0, 1))(x, w)
  ops = _lowered_ops(grads(True), args, platform)
  assert ops == _lowered_ops(grads(False), args, platform)
  assert ops['convolution'] == 3 and ops['dot_general'] == 0


def test_cpu_kernel_gradient_is_a_matmul():
  args = _inputs(32, 32, 8, 16, 3)
  grads = lambda x, w: jax.grad(
      lambda w: jnp.sum(_pair(True, 1, 1, 'SAME')(x, w) ** 2))(w)
  ops = _lowered_ops(grads, args, 'cpu')
  assert ops['convolution'] == 1 and ops['dot_general'] >= 1  # The forward conv, then dots.


@pytest.mark.parametrize('layer', ['gated', 'sn'])
def test_layers_use_it_and_keep_their_gradients(layer, monkeypatch):
  x = jax.random.normal(jax.random.key(0), (2, 12, 12, 3))
  if layer == 'gated':
    module, kw = GatedConv(4, 3, strides=2, dilation=1), {}
  else:
    module, kw = SNConv(5, 5, 2), {'update_stats': False}
  variables = module.init(jax.random.key(1), x, **kw)

  def grads():  # Traced anew at each call (no cached trace of the other formulation).
    def loss(params, x):
      return jnp.sum(module.apply({**variables, 'params': params}, x, **kw) ** 2)
    return jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(variables['params'], x)

  def run(jaxpr):
    leaves = jax.tree.leaves((variables['params'], x))
    return jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *leaves)

  # The gradient's jaxpr holds the CPU / elsewhere choice only when the layer uses conv_lib.
  fast = grads()
  assert 'branches_platforms' in str(fast)
  monkeypatch.setattr(conv_lib, 'conv_general_dilated', lax.conv_general_dilated)
  plain = grads()
  assert 'branches_platforms' not in str(plain)
  fast, plain = run(fast), run(plain)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


# (H, W, Ci, Co, kernel, stride, pads): strided, undilated convs, odd sizes, asymmetric pads.
PHASE_CASES = [
    (16, 16, 3, 4, 5, 2, ((1, 2), (1, 2))),
    (15, 18, 2, 3, 3, 2, ((0, 1), (1, 1))),
    (17, 13, 3, 2, 4, 3, ((2, 0), (1, 3))),
    (9, 11, 2, 3, 2, 2, ((0, 0), (0, 1))),
]


@pytest.mark.parametrize('case', PHASE_CASES)
def test_input_grad_phases_equals_lax_transpose(case):
  h, w, ci, co, k, s, pads = case
  x, kern = _inputs(h, w, ci, co, k)
  conv = lambda v: lax.conv_general_dilated(v, kern, (s, s), pads, dimension_numbers=_DN)
  ct = jax.random.normal(jax.random.key(5), conv(x).shape)
  (want,) = jax.linear_transpose(conv, x)(ct)
  assert conv_lib.phases_apply((k, k), (s, s), (1, 1), pads)
  got = conv_lib.input_grad_phases(ct, kern, (h, w), (s, s), pads)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_phases_apply_only_where_every_phase_has_taps():
  assert not conv_lib.phases_apply((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))  # Not strided.
  assert not conv_lib.phases_apply((3, 3), (2, 2), (2, 2), ((2, 2), (2, 2)))  # Dilated.
  assert not conv_lib.phases_apply((1, 1), (2, 2), (1, 1), ((0, 0), (0, 0)))  # Kernel < stride.


def test_wide_strided_conv_takes_the_phase_gradient_on_cpu_only():
  # The SN-PatchGAN's shape in miniature: 5x5/2 with PHASE_MIN_CHANNELS inputs.
  ci = conv_lib.PHASE_MIN_CHANNELS
  x, kern = _inputs(9, 10, ci, 8, 5)
  grads = lambda fast: lambda x, w: jax.grad(
      lambda x, w: jnp.sum(_pair(fast, 2, 1, 'SAME')(x, w) ** 2), argnums=(0, 1))(x, w)
  (dx, dw), (dx_ref, dw_ref) = jax.jit(grads(True))(x, kern), jax.jit(grads(False))(x, kern)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(dx_ref))))
  np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(dw_ref))))
  cpu = _lowered_ops(grads(True), (x, kern), 'cpu')
  assert cpu['convolution'] == 1 + 4  # The forward conv and one per phase; no dilated one.
  for platform in ('cuda', 'tpu'):
    assert _lowered_ops(grads(True), (x, kern), platform) == _lowered_ops(grads(False), (x, kern),
                                                                          platform)
