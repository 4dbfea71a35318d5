"""StructureFlow: parameter counts at the paper's widths, shapes, and one trainer step per stage."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import structure_flow_stage1
from configs import structure_flow_stage2
from configs import structure_flow_stage3
from configs import structure_flow_tiny
from flowinpaint.models import registry
from flowinpaint.models import vgg
from flowinpaint.models import structure_flow as sf
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train.phases import Phase

SIZE, BATCH = 32, 2


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


def _conv(cin, cout, k, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def _analytic_structure(d=64, n_res=4):
  """The reference's StructureGen layer list (InstanceNorm has no parameters)."""
  enc = [(7, d, 7), (d, 2 * d, 4), (2 * d, 2 * d, 5), (2 * d, 4 * d, 4), (4 * d, 4 * d, 5),
         (4 * d, 8 * d, 4)]
  dec = []
  for c in (4 * d, 2 * d, d):
    dec += [(2 * c, 2 * c, 3)] * (2 * n_res) + [(2 * c, c, 5), (c, c, 5)]
  return sum(_conv(*l) for l in enc + dec + [(d, 3, 3)])


def _analytic_texture(d=64, n_res=2):
  ln = lambda c: 2 * c  # The conv column's LayerNorm: per-channel scale and bias.
  flow = [(7, d // 2, 7), (d // 2, d, 4), (d, d, 5), (d, 2 * d, 4), (2 * d, 2 * d, 5),
          (2 * d, 4 * d, 4), (4 * d, 4 * d, 5), (4 * d, 8 * d, 4), (8 * d, 8 * d, 5)]
  flow += [(8 * d, 8 * d, 3)] * (2 * n_res) + [(8 * d, 4 * d, 6)]  # ResBlocks, deconv.
  flow += [(8 * d, 4 * d, 5)] + [(4 * d, 4 * d, 3)] * (2 * n_res) + [(4 * d, 2 * d, 6)]
  flow += [(4 * d, d, 5)]
  n_flow = sum(_conv(*l) for l in flow) + _conv(d, 2, 3, bias=False)
  conv = [(7, d // 2, 7), (d // 2, d, 4), (d, d, 5), (d, 2 * d, 4), (2 * d, 2 * d, 5),
          (2 * d, 4 * d, 5), (4 * d, 8 * d, 4)]
  conv += [(8 * d, 8 * d, 3)] * (2 * n_res) + [(8 * d, 4 * d, 5), (8 * d, 4 * d, 5)]
  conv += [(4 * d, 4 * d, 3)] * (2 * n_res) + [(4 * d, 2 * d, 5)]
  conv += [(2 * d, 2 * d, 3)] * (2 * n_res) + [(2 * d, d, 5)]
  n_conv = sum(_conv(*l) + ln(l[1]) for l in conv) + _conv(d, 3, 3)
  return n_flow, n_conv


def _params(module, size, *, image_only=False):
  x, m = jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1))
  args = (x, m) if image_only else (x, x, m)
  return jax.eval_shape(functools.partial(module.init, train=False), jax.random.key(0),
                        *args)['params']


def test_parameter_counts_at_the_papers_widths():
  g_s = _count(_params(sf.StructureReconstructor(), 256))
  texture = _params(sf.TextureGenerator(), 256)
  g_t = _count(texture)
  flow, conv = _count(texture['flow_column']), _count(texture['conv_column'])
  d = _count(_params(sf.MultiScaleDiscriminator(), 256, image_only=True))
  print(f'G_s {g_s:,}; G_t {g_t:,} (flow {flow:,} + conv {conv:,}); D {d:,}')
  assert g_s == _analytic_structure()
  assert (flow, conv) == _analytic_texture()
  assert abs(g_s - 36.1e6) < 0.03 * 36.1e6 and abs(g_t - 56.5e6) < 0.03 * 56.5e6
  assert abs(d - 1.2e6) < 0.03 * 1.2e6


def test_shapes_and_spectral_norm_placement():
  gen = sf.TextureGenerator(width=8)
  x, m = jnp.zeros((2, 64, 48, 3)), jnp.zeros((2, 64, 48, 1))
  variables = jax.eval_shape(functools.partial(gen.init, train=False), jax.random.key(0), x, x, m)
  assert 'batch_stats' not in variables  # G_t: no spectral norm in the released config.
  image, flow = jax.eval_shape(functools.partial(gen.apply, train=False), variables, x, x, m)
  assert image.shape == (2, 64, 48, 3) and flow.shape == (2, 16, 12, 2)
  g_s = sf.StructureReconstructor(width=8)
  variables = jax.eval_shape(functools.partial(g_s.init, train=False), jax.random.key(0), x, x,
                             m)
  sn_layers = set(variables['batch_stats'])
  assert {'input', 'down1a', 'down3', 'up1_conv', 'up3_conv'} <= sn_layers
  assert not sn_layers & {'skip1', 'output', 'up1_res'}
  d = sf.MultiScaleDiscriminator(width=8)
  logits = jax.eval_shape(
      lambda: d.init_with_output(jax.random.key(0), x, m, train=False)[0])
  assert logits.shape == (2, 2 * 8 * 6)


def test_stage_models_outputs_and_the_hole_is_ignored_at_inference():
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.uniform(-1, 1, (1, SIZE, SIZE, 3)), jnp.float32)
  mask = jnp.zeros((1, SIZE, SIZE, 1)).at[:, 8:20, 10:24].set(1.0)
  other = jnp.where(mask > 0, -image, image)
  model = sf.StructureFlow(width=8, structure_n_res=1, texture_n_res=1)
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), image, mask)
  apply = jax.jit(functools.partial(model.apply, train=False))
  out = apply(variables, image, mask)
  assert out['output'].shape == out['structure'].shape == (1, SIZE, SIZE, 3)
  assert out['flow'].shape == (1, SIZE // 4, SIZE // 4, 2)
  out_other = apply(variables, other, mask)
  for key in ('output', 'structure', 'structure_input', 'flow'):
    np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(out_other[key]))
  assert float(jnp.max(jnp.abs(out['structure_input'] * mask))) == 0.0


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  mask = np.zeros((BATCH, SIZE, SIZE, 1), np.float32)
  mask[:, 6:22, 8:24] = 1.0
  return {'image': jnp.asarray(image), 'mask': jnp.asarray(mask)}


def _changed(before, after):
  return jax.tree.map(lambda a, b: not np.array_equal(np.asarray(a), np.asarray(b)), before,
                      after)


@pytest.mark.parametrize('stage', [1, 2, 3])
def test_one_train_step_per_stage_trains_the_right_parameters(stage):
  module = {1: structure_flow_stage1, 2: structure_flow_stage2, 3: structure_flow_stage3}[stage]
  config = module.get_config()
  tiny = structure_flow_tiny.get_config()
  config.model.update({k: tiny.model[k] for k in ('width', 'd_width', 'n_res', 'texture_n_res')})
  spec = registry.get(config.model.name)
  gen = spec.make_generator(config.model, jnp.float32)
  disc = spec.make_discriminator(config.model, jnp.float32)
  g_tx = state_lib.make_optimizer(config.optimizer, config.optimizer.g_learning_rate)
  d_tx = state_lib.make_optimizer(config.optimizer, config.optimizer.d_learning_rate)
  state = jax.jit(functools.partial(state_lib.create_state, generator=gen, discriminator=disc,
                                    g_tx=g_tx, d_tx=d_tx, image_size=SIZE))(
                                        jax.random.key_data(jax.random.key(0)))
  before = jax.device_get(state)
  step = jax.jit(steps.make_train_step(gen, disc, g_tx, d_tx, steps.LossConfig.from_config(config)),
                 static_argnames='phase')
  # Stages 2 and 3 add VGG-19 losses (random weights here: the wiring is what is tested).
  vgg_params = None if stage == 1 else vgg.VGGFeatures(19, outputs=('relu5_2',)).init(
      jax.random.key(5), jnp.zeros((1, SIZE, SIZE, 3)))['params']
  after, metrics = step(state, _batch(), phase=Phase.JOINT, vgg_params=vgg_params)
  after = jax.device_get(after)
  values = {k: float(v) for k, v in metrics.compute().items()}
  assert all(np.isfinite(v) for v in values.values()), values
  assert values['d_loss'] != 0 and values['g_adv_loss'] != 0
  # Stage 2: sampling correctness (0.25); stage 3 adds content (0.1) and style (250).
  assert (values['correctness_loss'] > 0) == (stage > 1)
  assert (values['perceptual_loss'] > 0) == (values['style_loss'] > 0) == (stage == 3)

  g_changed = _changed(before.g_vars['params'], after.g_vars['params'])
  expected_trees = {1: {'structure'}, 2: {'texture'}, 3: {'structure', 'texture'}}[stage]
  assert set(g_changed) == expected_trees
  trained = {1: 'structure', 2: 'texture', 3: 'texture'}[stage]
  assert all(jax.tree.leaves(g_changed[trained]))  # Every G parameter of the trained net moved.
  if stage == 3:
    assert not any(jax.tree.leaves(g_changed['structure']))  # G_s is frozen ...
    for a, b in zip(jax.tree.leaves(before.g_vars['batch_stats']),
                    jax.tree.leaves(after.g_vars['batch_stats'])):
      np.testing.assert_array_equal(a, b)  # ... spectral-norm state included.
  assert all(jax.tree.leaves(_changed(before.d_vars['params'], after.d_vars['params'])))
  if stage == 1:
    # The structure stage is judged against RTV structures, not the image: recon = 4 x L1 to
    # the full-image RTV.
    outs = jax.jit(functools.partial(gen.apply, train=True, mutable=['batch_stats']))(
        before.g_vars, _batch()['image'], _batch()['mask'])[0]
    l1 = float(jnp.mean(jnp.abs(outs['output'] - outs['target'])))
    np.testing.assert_allclose(values['recon_loss'], 4.0 * l1, rtol=1e-4)


def test_joint_variables_merge_the_two_stages():
  x, m = jnp.zeros((1, SIZE, SIZE, 3)), jnp.zeros((1, SIZE, SIZE, 1))
  kw = dict(rtv_iterations=1)
  v1 = sf.StructureFlowStage1(width=8, n_res=1, **kw).init(jax.random.key(1), x, m, train=False)
  v2 = sf.StructureFlowStage2(width=8, n_res=1, **kw).init(jax.random.key(2), x, m, train=False)
  joint = sf.StructureFlow(width=8, structure_n_res=1, texture_n_res=1, **kw)
  v3 = joint.init(jax.random.key(3), x, m, train=False)
  merged = sf.joint_variables(v1, v2)
  assert jax.tree.structure(merged) == jax.tree.structure(v3)
  out = joint.apply(merged, x, m, train=False)
  assert out['output'].shape == (1, SIZE, SIZE, 3)
