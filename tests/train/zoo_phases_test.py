"""The zoo models on the shared trainer: GLCIC's three phases, DeepFill v1's WGAN-GP step, PConv."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import deepfill_v1 as deepfill_v1_config
from configs import glcic as glcic_config
from configs import glcic_short
from configs import pconv as pconv_config
from flowinpaint.models import deepfill_v1
from flowinpaint.models import glcic
from flowinpaint.models import pconv_unet
from flowinpaint.models import vgg
from flowinpaint.train import checkpointing
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train import train
from flowinpaint.train.phases import Phase

SIZE, BATCH = 32, 8


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  mask = np.zeros((BATCH, SIZE, SIZE, 1), np.float32)
  for i in range(BATCH):
    y, x = rng.integers(0, SIZE - 14, 2)
    mask[i, y:y + 12, x:x + 14] = 1.0
  return {"image": image, "mask": mask}


def _changed(before, after, only_kernels=False):
  leaves_b = jax.tree_util.tree_flatten_with_path(before)[0]
  return [not np.array_equal(np.asarray(a), np.asarray(b))
          for (path, b), a in zip(leaves_b, jax.tree.leaves(after))
          if not only_kernels or "kernel" in jax.tree_util.keystr(path)]


def _glcic_setup():
  config = glcic_config.get_config()
  g = glcic.CompletionNetwork(width=0.125)
  d = glcic.ContextDiscriminator(width=0.125, fc_units=8)
  g_tx = state_lib.make_optimizer(config.optimizer, config.optimizer.g_learning_rate)
  d_tx = state_lib.make_optimizer(config.optimizer, config.optimizer.d_learning_rate)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, g_tx, d_tx,
                              image_size=SIZE)
  step = jax.jit(steps.make_train_step(g, d, g_tx, d_tx, steps.LossConfig.from_config(config)),
                 static_argnames="phase")
  return st, step


@pytest.fixture(scope="module")
def glcic_setup():
  return _glcic_setup()


@pytest.mark.parametrize("phase,g_trains,d_trains", [
    (Phase.RECONSTRUCTION, True, False),
    (Phase.DISCRIMINATOR, False, True),
    (Phase.JOINT, True, True),
])
def test_glcic_phase_trains_exactly_its_players(glcic_setup, phase, g_trains, d_trains):
  st, step = glcic_setup
  before = jax.device_get(st)
  after, metrics = step(st, _batch(), phase=phase)
  after = jax.device_get(after)
  for player, opt, trained in (("g_vars", "g_opt", g_trains), ("d_vars", "d_opt", d_trains)):
    b, a = getattr(before, player), getattr(after, player)
    if trained:
      # Every conv/dense kernel of the player and every BatchNorm statistic moves.
      assert all(_changed(b["params"], a["params"], only_kernels=True))
      assert all(_changed(b["batch_stats"], a["batch_stats"]))
      assert any(_changed(getattr(before, opt), getattr(after, opt)))
    else:
      assert not any(_changed(b, a))
      assert not any(_changed(getattr(before, opt), getattr(after, opt)))
  values = {k: float(v) for k, v in metrics.compute().items()}
  assert all(np.isfinite(v) for v in values.values())
  assert (values["d_loss"] != 0.0) == d_trains
  assert (values["recon_loss"] != 0.0) == g_trains
  assert (values["g_adv_loss"] != 0.0) == (phase is Phase.JOINT)
  if phase is Phase.JOINT:
    np.testing.assert_allclose(values["g_loss"],
                               values["recon_loss"] + 0.0004 * values["g_adv_loss"], rtol=1e-5)


def test_deepfill_v1_joint_step_with_wgan_gp():
  config = deepfill_v1_config.get_config()
  config.d_steps_per_g_step = 1  # Compile time; the loop over critic steps is the trainer's.
  g, d = deepfill_v1.Generator(cnum=4), deepfill_v1.Critics(cnum=4)
  tx = optax.adam(1e-3, b1=0.5, b2=0.9)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, d, tx, tx,
                              image_size=SIZE)
  step = jax.jit(steps.make_train_step(g, d, tx, tx, steps.LossConfig.from_config(config)),
                 static_argnames="phase")
  before = jax.device_get(st)
  after, metrics = step(st, _batch(1), phase=Phase.JOINT)
  values = {k: float(v) for k, v in metrics.compute().items()}
  assert all(np.isfinite(v) for v in values.values())
  assert values["gradient_penalty"] > 0 and values["recon_loss"] > 0
  after = jax.device_get(after)
  assert all(_changed(before.g_vars, after.g_vars, only_kernels=True))
  assert all(_changed(before.d_vars, after.d_vars, only_kernels=True))


def test_configs_hold_the_papers_settings():
  c = glcic_config.get_config()
  assert (c.phases.reconstruction_steps, c.phases.discriminator_steps, c.num_train_steps) == (
      90_000, 10_000, 500_000)
  assert (c.batch_size, c.image_size, c.optimizer.name, c.data.mask_kind) == (
      96, 256, "adadelta", "glcic_box")
  assert (c.loss.reconstruction, c.loss.adversarial, c.loss.adversarial_weight) == (
      "mse_hole", "bce", 0.0004)
  c = deepfill_v1_config.get_config()
  assert (c.loss.adversarial, c.loss.gp_weight, c.loss.adversarial_weight) == ("wgan_gp", 10.0,
                                                                               0.001)
  assert (c.loss.reconstruction, c.loss.discount_gamma, c.loss.reconstruction_weight) == (
      "discounted_l1", 0.99, 1.2)
  assert (c.optimizer.g_learning_rate, c.optimizer.b1, c.optimizer.b2) == (1e-4, 0.5, 0.9)
  assert (c.d_steps_per_g_step, c.data.mask_kind, c.model.cnum) == (5, "box", 32)
  c = pconv_config.get_config()
  assert c.loss.reconstruction == "pconv" and c.model.name == "pconv_unet"
  assert train.Models(c).discriminator is None


def test_pconv_trains_without_a_discriminator_with_its_vgg_losses():
  config = pconv_config.get_config()
  g = pconv_unet.PConvUNet(depth=3, cnum=4)
  tx = optax.adam(1e-2)
  st = state_lib.create_state(jax.random.key_data(jax.random.key(0)), g, None, tx, None,
                              image_size=SIZE)
  loss_cfg = steps.LossConfig.from_config(config)
  step = jax.jit(steps.make_train_step(g, None, tx, None, loss_cfg), static_argnames="phase")
  batch = _batch(2)
  with pytest.raises(ValueError, match="need VGG weights"):
    step(st, batch, phase=Phase.RECONSTRUCTION)
  # Random VGG-16 weights stand in for ImageNet ones: the wiring, not the features, is tested.
  vgg_params = vgg.VGGFeatures(16, outputs=("pool3",)).init(
      jax.random.key(1), jnp.zeros((1, SIZE, SIZE, 3)))["params"]
  first = None
  for _ in range(4):
    st, metrics = step(st, batch, phase=Phase.RECONSTRUCTION, vgg_params=vgg_params)
    values = {k: float(v) for k, v in metrics.compute().items()}
    first = values["g_loss"] if first is None else first
  assert values["perceptual_loss"] > 0 and values["style_loss"] > 0
  np.testing.assert_allclose(values["g_loss"], values["recon_loss"] + values["perceptual_loss"] +
                             values["style_loss"], rtol=1e-5)
  assert np.isfinite(values["g_loss"]) and values["g_loss"] < first


def test_glcic_short_runs_all_three_phases(tmp_path):
  config = glcic_short.get_config()
  config.image_size = 32
  config.num_train_steps = 6
  config.phases.reconstruction_steps = 2
  config.phases.discriminator_steps = 2
  config.log_every_steps = 2
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 6
  config.num_eval_images = 2
  config.num_sample_images = 2
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result["step"] == 6 and np.isfinite(result["psnr"])
  lines = {l["step"]: l for l in map(json.loads, open(tmp_path / "metrics.jsonl"))
           if "train/g_loss" in l}
  assert sorted(lines) == [2, 4, 6]
  assert lines[2]["train/d_loss"] == 0.0 and lines[2]["train/recon_loss"] > 0.0
  assert lines[4]["train/recon_loss"] == 0.0 and lines[4]["train/d_loss"] > 0.0
  assert lines[6]["train/recon_loss"] > 0.0 and lines[6]["train/d_loss"] > 0.0
  assert lines[6]["train/g_adv_loss"] > 0.0
  # The checkpoint alone rebuilds the model for inference.
  bundle = checkpointing.load_for_inference(str(tmp_path))
  assert bundle.model_name == "glcic" and bundle.multiple == 4
  # Holes were filled with the training data's mean pixel, and the checkpoint keeps that value.
  from flowinpaint.data import pipeline
  batches = pipeline.train_batches(config.data, batch_size=config.batch_size, image_size=32,
                                   seed=config.seed, mask_kind=config.data.mask_kind,
                                   num_workers=0)
  mean = np.mean([next(batches)["image"] for _ in range(8)], axis=(0, 1, 2, 3))
  np.testing.assert_allclose(bundle.generator.fill_value, mean, rtol=1e-5)
  assert np.abs(mean).max() > 0.01
  out = bundle.generator.apply(bundle.variables, jnp.zeros((1, 32, 32, 3)),
                               jnp.ones((1, 32, 32, 1)), train=False)["output"]
  assert out.shape == (1, 32, 32, 3)
