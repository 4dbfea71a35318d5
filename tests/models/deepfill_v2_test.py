"""DeepFill v2 generator and SN-PatchGAN."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.models import registry
from flowinpaint.models.deepfill_v2 import DeepFillV2Generator, SNPatchGAN


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


def _conv(cin, cout, k):
  return k * k * cin * cout + cout


def _analytic_generator(cnum):
  """From the TF layer list: (cin, conv outputs, kernel); a gated conv passes on half."""
  c = cnum
  coarse = [(5, c, 5), (c // 2, 2 * c, 3), (c, 2 * c, 3), (c, 4 * c, 3)] + [(2 * c, 4 * c, 3)] * 8
  coarse += [(2 * c, 2 * c, 3), (c, 2 * c, 3), (c, c, 3), (c // 2, c // 2, 3), (c // 4, 3, 3)]
  hallu = [(3, c, 5), (c // 2, c, 3), (c // 2, 2 * c, 3), (c, 2 * c, 3), (c, 4 * c, 3)]
  hallu += [(2 * c, 4 * c, 3)] * 5
  attn = [(3, c, 5), (c // 2, c, 3), (c // 2, 2 * c, 3), (c, 4 * c, 3)] + [(2 * c, 4 * c, 3)] * 4
  merged = [(4 * c, 4 * c, 3), (2 * c, 4 * c, 3), (2 * c, 2 * c, 3), (c, 2 * c, 3), (c, c, 3),
            (c // 2, c // 2, 3), (c // 4, 3, 3)]
  return sum(_conv(*layer) for layer in coarse + hallu + attn + merged)


def _analytic_discriminator():
  chans = [4, 64, 128, 256, 256, 256, 256]
  return sum(_conv(a, b, 5) for a, b in zip(chans[:-1], chans[1:]))


def _abstract_variables(module, size):
  x, m = jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1))
  return jax.eval_shape(functools.partial(module.init, train=False), jax.random.PRNGKey(0), x, m)


def test_parameter_counts():
  g = _count(_abstract_variables(DeepFillV2Generator(cnum=48), 256)['params'])
  d = _count(_abstract_variables(SNPatchGAN(), 256)['params'])
  print(f'DeepFill v2 generator: {g} params; SN-PatchGAN: {d} params')
  assert abs(g - _analytic_generator(48)) <= 0.01 * g
  assert abs(d - _analytic_discriminator()) <= 0.01 * d
  assert abs(g - 4.05e6) < 0.01e6 and abs(d - 5.95e6) < 0.01e6


def test_shapes_at_256():
  gen = DeepFillV2Generator(cnum=48)
  x, m = jnp.zeros((2, 256, 256, 3)), jnp.zeros((2, 256, 256, 1))
  variables = _abstract_variables(gen, 256)
  out = jax.eval_shape(functools.partial(gen.apply, train=False), variables, x, m)
  assert out['output'].shape == out['coarse'].shape == (2, 256, 256, 3)
  assert out['offsets'].shape == (2, 256, 256, 2) and out['offsets'].dtype == jnp.int32
  assert out['output'].dtype == jnp.float32
  disc = SNPatchGAN()
  logits = jax.eval_shape(functools.partial(disc.apply, train=False),
                          _abstract_variables(disc, 256), x, m)
  assert logits.shape == (2, 4 * 4 * 256)


def _small_inputs(size=64, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, size=(batch, size, size, 3)).astype(np.float32)
  mask = np.zeros((batch, size, size, 1), np.float32)
  mask[0, 16:40, 8:32] = 1.
  mask[-1, 30:60, 20:50] = 1.
  return jnp.asarray(image), jnp.asarray(mask)


@functools.lru_cache(maxsize=None)
def _small_model(cnum=8, dtype=None, chunk=None):
  gen = DeepFillV2Generator(cnum=cnum, ca_chunk_size=chunk, dtype=dtype)
  image, mask = _small_inputs()
  variables = gen.init(jax.random.PRNGKey(0), image, mask, train=False)
  return variables, jax.jit(functools.partial(gen.apply, train=True))


def test_small_forward_range_and_hole_independence():
  variables, apply = _small_model()
  image, mask = _small_inputs()
  out = apply(variables, image, mask)
  assert out['output'].shape == (2, 64, 64, 3) and out['offsets'].shape == (2, 64, 64, 2)
  for key in ('output', 'coarse'):
    assert bool(jnp.all(jnp.abs(out[key]) <= 1.)) and bool(jnp.all(jnp.isfinite(out[key])))
  # Offsets are multiples of 8 image pixels (the attention grid is 1/8 resolution).
  assert int(jnp.max(jnp.abs(out['offsets'] % 8))) == 0
  noise = jax.random.uniform(jax.random.PRNGKey(1), image.shape, minval=-1., maxval=1.)
  out2 = apply(variables, jnp.where(mask > 0, noise, image), mask)
  for key in out:
    np.testing.assert_array_equal(np.asarray(out2[key]), np.asarray(out[key]))


def test_chunked_attention_matches():
  variables, apply = _small_model()
  _, apply_chunked = _small_model(chunk=5)
  image, mask = _small_inputs()
  out, outc = apply(variables, image, mask), apply_chunked(variables, image, mask)
  np.testing.assert_allclose(outc['output'], out['output'], atol=1e-5)
  np.testing.assert_array_equal(outc['offsets'], out['offsets'])


def test_bf16_compute():
  variables, apply = _small_model(dtype=jnp.bfloat16)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
  image, mask = _small_inputs()
  out = apply(variables, image, mask)
  assert out['output'].dtype == jnp.float32 and out['coarse'].dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out['output'])))
  ref, ref_apply = _small_model()
  np.testing.assert_allclose(out['coarse'], ref_apply(ref, image, mask)['coarse'], atol=0.1)


@pytest.mark.parametrize('dtype', [None, jnp.bfloat16])
def test_discriminator_updates_stats_only_in_training(dtype):
  disc = SNPatchGAN(cnum=8, dtype=dtype)
  image, mask = _small_inputs()
  variables = disc.init(jax.random.PRNGKey(0), image, mask, train=False)
  logits, upd = jax.jit(lambda v: disc.apply(v, image, mask, train=True,
                                             mutable=['batch_stats']))(variables)
  assert logits.shape == (2, 1 * 1 * 32) and logits.dtype == jnp.float32
  # The first sigma estimate can round to its initial value 1.0; u always moves.
  for name, stats in variables['batch_stats'].items():
    u_new = upd['batch_stats'][name]['spectral_norm']['conv/kernel/u']
    assert bool(jnp.any(stats['spectral_norm']['conv/kernel/u'] != u_new)), name
  _, same = disc.apply(variables, image, mask, train=False, mutable=['batch_stats'])
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables['batch_stats'],
                         same['batch_stats'])


def test_registered():
  spec = registry.get('deepfill_v2')
  assert spec.multiple == 8
  gen = spec.make_generator({'cnum': 8, 'ca_chunk_size': 4}, jnp.bfloat16)
  assert isinstance(gen, DeepFillV2Generator) and gen.cnum == 8 and gen.ca_chunk_size == 4
  assert gen.dtype == jnp.bfloat16
  assert isinstance(spec.make_discriminator({}, None), SNPatchGAN)
