"""VGG feature losses: Gram, perceptual/style recipes, sampling correctness, wiring in the step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers.gaussian_sampling import gaussian_sample
from flowinpaint.models import vgg
from flowinpaint.train import feature_losses as fl


def _vgg_params(depth, size=32):
  return vgg.VGGFeatures(depth, outputs=(vgg.layer_names(depth)[-1],)).init(
      jax.random.key(depth), jnp.zeros((1, size, size, 3)))["params"]


def test_gram_against_numpy():
  f = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  expected = np.stack([x.reshape(-1, 4).T @ x.reshape(-1, 4) / (3 * 5 * 4) for x in f])
  np.testing.assert_allclose(fl.gram(jnp.asarray(f)), expected, rtol=1e-5)


def test_resizing_of_masks_and_flows():
  mask = np.zeros((1, 8, 8, 1), np.float32)
  mask[0, 4:, :2] = 1
  small = np.asarray(fl.resize_nearest(jnp.asarray(mask), (4, 4)))
  np.testing.assert_array_equal(small[0, :, :, 0], mask[0, ::2, ::2, 0])  # floor(i * 8 / 4)
  flow = np.broadcast_to(np.float32([4.0, 2.0]), (1, 8, 8, 2))
  np.testing.assert_allclose(fl.resize_flow(jnp.asarray(flow), (2, 2)), np.broadcast_to(
      np.float32([1.0, 0.5]), (1, 2, 2, 2)))  # Average-pooled, then in the small grid's pixels.
  assert fl.resize_flow(jnp.asarray(flow), (8, 8)) is not None


def _correctness_numpy(t, s, sampled, hole, eps=1e-8):
  """Independent per-location loop of StructureFlow's loss given the sampled features."""
  b, h, w, c = t.shape
  total, count = 0.0, 0.0
  for i in range(b):
    src = s[i].reshape(-1, c)
    for y in range(h):
      for x in range(w):
        v = t[i, y, x]
        cos_all = src @ v / ((np.linalg.norm(src, axis=1) + eps) * (np.linalg.norm(v) + eps))
        q = sampled[i, y, x]
        cos = q @ v / max(np.linalg.norm(q) * np.linalg.norm(v), eps)
        total += np.exp(-cos / (cos_all.max() + eps)) * hole[i, y, x]
        count += hole[i, y, x]
  return total / (count + eps)


def test_sampling_correctness_against_a_loop_and_its_minimum():
  rng = np.random.default_rng(0)
  t = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  s = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  flow = rng.normal(0, 1.5, (2, 4, 5, 2)).astype(np.float32)
  mask = (rng.uniform(size=(2, 8, 10, 1)) > 0.5).astype(np.float32)
  got = fl.sampling_correctness(jnp.asarray(t), jnp.asarray(s), jnp.asarray(flow),
                                jnp.asarray(mask))
  sampled = np.asarray(gaussian_sample(jnp.asarray(s), jnp.asarray(flow), kernel_size=4,
                                       sigma=2.0))
  hole = mask[:, ::2, ::2, 0]
  np.testing.assert_allclose(got, _correctness_numpy(t, s, sampled, hole), rtol=1e-5)

  # A source that is the target moved right by one pixel, a flow that says so and a tiny sigma:
  # every sample is its best match, the minimum exp(-1).
  src = np.roll(t, 1, axis=2)
  flow_true = np.zeros((2, 4, 5, 2), np.float32)
  flow_true[..., 0] = 1.0
  inner = np.zeros((2, 4, 5, 1), np.float32)
  inner[:, :, :4] = 1.0  # The last column's source is outside the map.
  best = fl.sampling_correctness(jnp.asarray(t), jnp.asarray(src), jnp.asarray(flow_true),
                                 jnp.asarray(inner), sigma=1e-3)
  np.testing.assert_allclose(best, np.exp(-1.0), rtol=1e-4)
  wrong = fl.sampling_correctness(jnp.asarray(t), jnp.asarray(src), jnp.zeros_like(flow_true),
                                  jnp.asarray(inner), sigma=1e-3)
  assert wrong > best + 0.05
  grad = jax.grad(lambda f: fl.sampling_correctness(jnp.asarray(t), jnp.asarray(src), f,
                                                    jnp.asarray(inner)))(jnp.asarray(flow))
  assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_pconv_recipe_compares_output_and_composite_on_vgg16_pools():
  params = _vgg_params(16)
  rng = np.random.default_rng(0)
  out, gt = (jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)) for _ in "ab")
  mask = np.zeros((2, 32, 32, 1), np.float32)
  mask[:, 8:20, 4:28] = 1
  mask = jnp.asarray(mask)
  cfg = fl.FeatureLossConfig("pconv", perceptual_weight=0.05, style_weight=120.0)
  terms = fl.feature_losses(cfg, params, {"output": out}, gt, gt, mask)
  net = vgg.VGGFeatures(16, outputs=("pool1", "pool2", "pool3"))
  feats = lambda x: net.apply({"params": params}, x)
  comp = out * mask + gt * (1 - mask)
  f_out, f_comp, f_gt = feats(out), feats(comp), feats(gt)
  perc = sum(np.mean(np.abs(a[k] - f_gt[k])) for a in (f_out, f_comp) for k in f_gt)
  sty = sum(np.mean(np.abs(fl.gram(a[k]) - fl.gram(f_gt[k]))) for a in (f_out, f_comp)
            for k in f_gt)
  np.testing.assert_allclose(terms["perceptual_loss"], 0.05 * perc, rtol=1e-4)
  np.testing.assert_allclose(terms["style_loss"], 120.0 * sty, rtol=1e-4)
  assert float(terms["correctness_loss"]) == 0.0
  same = fl.feature_losses(cfg, params, {"output": gt}, gt, gt, mask)
  assert float(same["perceptual_loss"]) == 0.0 and float(same["style_loss"]) == 0.0


def test_structure_flow_recipe_needs_a_flow_and_off_means_zero():
  cfg = fl.FeatureLossConfig("structure_flow", correctness_weight=0.25)
  x = jnp.zeros((1, 16, 16, 3))
  with pytest.raises(ValueError, match="returns 'flow'"):
    fl.feature_losses(cfg, _vgg_params(19, 16), {"output": x}, x, x, jnp.ones((1, 16, 16, 1)))
  off = fl.feature_losses(fl.FeatureLossConfig("pconv"), None, {"output": x}, x, x, x[..., :1])
  assert all(float(v) == 0 for v in off.values())
  with pytest.raises(ValueError, match="unknown feature loss recipe"):
    fl.FeatureLossConfig("lpips")


def test_training_switches_the_losses_on_with_a_weights_file_and_says_when_off(tmp_path, caplog):
  import json
  import logging
  from configs import pconv as pconv_config
  from configs import tiny
  from flowinpaint.errors import UserError
  from flowinpaint.train import steps, train
  from tests.models.vgg_test import _random_state_dict

  config = tiny.small_run(pconv_config.get_config())
  config.model.depth, config.model.cnum = 3, 4
  config.num_train_steps = config.log_every_steps = 2
  with caplog.at_level(logging.WARNING):
    loss_cfg, params = train.resolve_feature_losses(config, steps.LossConfig.from_config(config))
  assert params is None and not loss_cfg.features.active
  assert "perceptual, style loss(es) of the 'pconv' recipe are OFF" in caplog.text
  assert "vgg16-397923af.pth" in caplog.text

  config.loss.vgg_weights = str(tmp_path / "missing.pth")
  with pytest.raises(UserError, match="loss.vgg_weights: VGG weights file .* does not exist"):
    train.train_and_evaluate(config, str(tmp_path / "run_missing"))
  weights = tmp_path / "vgg16.npz"
  np.savez(weights, **_random_state_dict(16))
  config.loss.vgg_weights = str(weights)
  train.train_and_evaluate(config, str(tmp_path / "run"))
  logged = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  train_lines = [l for l in logged if "train/perceptual_loss" in l]
  assert train_lines and train_lines[-1]["train/perceptual_loss"] > 0
  assert train_lines[-1]["train/style_loss"] > 0
