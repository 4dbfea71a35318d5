"""The reconstruction warm-up: its learning rate, its wiring in the trainer, what it buys."""

import json

import jax
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from configs import tiny
from flowinpaint.errors import UserError
from flowinpaint.models import registry
from flowinpaint.train import checkpointing
from flowinpaint.train import state as state_lib
from flowinpaint.train import train
from tests.train.toy_models import ToyDiscriminator, ToyGenerator

if "toy" not in registry._REGISTRY:
  registry.register(registry.ModelSpec(
      name="toy", make_generator=lambda cfg, dtype: ToyGenerator(features=cfg.get("cnum", 4)),
      make_discriminator=lambda cfg, dtype: ToyDiscriminator(), multiple=4))


def _rates(rate, warm, steps):
  config = ml_collections.ConfigDict({
      "optimizer": {"g_learning_rate": rate, "reconstruction_g_learning_rate": warm},
      "phases": {"reconstruction_steps": steps}})
  return state_lib.generator_learning_rate(config)


def test_without_a_warm_up_rate_the_rate_is_a_constant():
  assert _rates(1e-4, 0.0, 100) == 1e-4
  assert _rates(1e-4, 1e-3, 0) == 1e-4  # No reconstruction phase: nothing to warm up.


def test_warm_up_rate_holds_for_the_reconstruction_updates_then_hands_over():
  schedule = _rates(1e-4, 1e-3, 5)
  values = [float(schedule(i)) for i in range(8)]
  np.testing.assert_allclose(values, [1e-3] * 5 + [1e-4] * 3, rtol=1e-6)
  with pytest.raises(ValueError, match="reconstruction_g_learning_rate must be >= 0"):
    _rates(1e-4, -1.0, 5)


def test_adam_steps_at_the_scheduled_rate():
  # With a constant gradient every bias-corrected Adam update is -lr * g / (|g| + eps).
  opt = ml_collections.ConfigDict({"name": "adam", "b1": 0.5, "b2": 0.999, "grad_clip_norm": 0.0})
  tx = state_lib.make_optimizer(opt, _rates(1e-4, 1e-2, 3))
  params = {"w": np.zeros(2, np.float32)}
  grads = {"w": np.array([2.0, -0.5], np.float32)}
  opt_state = tx.init(params)
  sizes = []
  for _ in range(5):
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    sizes.append(np.abs(np.asarray(updates["w"])))
  expected = [1e-2] * 3 + [1e-4] * 2
  for size, lr in zip(sizes, expected):
    np.testing.assert_allclose(size, [lr, lr], rtol=1e-4)


def _toy_config(**overrides):
  config = tiny.get_config()
  config.model.name = "toy"
  config.image_size = 16
  config.update_from_flattened_dict(overrides)
  return config


def test_trainer_switches_rate_at_the_phase_boundary(tmp_path):
  # 2 reconstruction steps at a warm-up rate, 2 discriminator-only steps, 2 joint steps at a
  # generator rate of 0: the generator moves during warm-up only, so the discriminator-only
  # steps do not shift the schedule and the joint steps run at rate 0.
  config = _toy_config(**{
      "num_train_steps": 6, "checkpoint_every_steps": 2, "keep_checkpoints": 5,
      "eval_every_steps": 100, "phases.reconstruction_steps": 2,
      "phases.discriminator_steps": 2, "optimizer.g_learning_rate": 0.0,
      "optimizer.reconstruction_g_learning_rate": 1e-2})
  train.train_and_evaluate(config, str(tmp_path))
  g = {}
  for step in (2, 6):
    bundle = checkpointing.load_for_inference(str(tmp_path / "checkpoints" / str(step)))
    g[step] = jax.tree.leaves(bundle.variables["params"])
  models = train.Models(config)
  init = state_lib.create_state(jax.random.key_data(jax.random.key(config.seed)),
                                models.generator, models.discriminator, models.g_tx,
                                models.d_tx, image_size=16).g_vars["params"]
  assert any(not np.array_equal(a, b) for a, b in zip(g[2], jax.tree.leaves(init)))
  for a, b in zip(g[2], g[6]):
    np.testing.assert_array_equal(a, b)


def test_negative_warm_up_rate_is_a_user_error(tmp_path):
  config = _toy_config(**{"phases.reconstruction_steps": 2,
                          "optimizer.reconstruction_g_learning_rate": -1e-3})
  with pytest.raises(UserError, match="reconstruction_g_learning_rate must be >= 0"):
    train.train_and_evaluate(config, str(tmp_path))


def test_eval_reports_the_trivial_fills(tmp_path):
  train.train_and_evaluate(_toy_config(num_train_steps=2, eval_every_steps=2), str(tmp_path))
  scores = json.load(open(tmp_path / "eval_metrics.json"))
  for fill in ("mean_fill", "telea_fill"):
    for key in ("psnr_hole", "ssim_hole", "l1_hole", "l2_hole"):
      assert np.isfinite(scores[f"{fill}/{key}"]), (fill, key)
  # Telea continues the surroundings; the mean colour does not: closer in the hole.
  assert scores["telea_fill/l1_hole"] < scores["mean_fill/l1_hole"]
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert any("eval/telea_fill/psnr_hole" in line for line in lines)  # TensorBoard's tags too.


def test_default_config_warms_up_and_model_configs_do_not():
  config = default.get_config()
  assert config.phases.reconstruction_steps > 0
  assert config.optimizer.reconstruction_g_learning_rate > config.optimizer.g_learning_rate
  # The model configs start from base_config(): no warm-up they did not ask for.
  assert default.base_config().phases.reconstruction_steps == 0
  assert tiny.get_config().phases.reconstruction_steps == 0


def test_warm_up_beats_the_mean_colour_fill_on_a_tiny_budget(tmp_path):
  # DeepFill v2 at configs/tiny.py's size (32 px, cnum 8): 300 reconstruction steps at the
  # warm-up rate on crops at the evaluation's scale fill the holes of the evaluation photos
  # closer (L1) than painting each hole with its image's mean known colour. (At lr 1e-4 with
  # the adversarial loss from step 0, main's 300-step recipe ended with a larger hole L1 than
  # that fill.)
  config = tiny.get_config()
  config.update_from_flattened_dict({
      "num_train_steps": 300, "phases.reconstruction_steps": 300,
      "optimizer.reconstruction_g_learning_rate": 1e-3, "data.min_crop_fraction": 0.75,
      "log_every_steps": 300, "eval_every_steps": 300, "checkpoint_every_steps": 300,
      "num_eval_images": 8})
  train.train_and_evaluate(config, str(tmp_path))
  scores = json.load(open(tmp_path / "eval_metrics.json"))
  assert scores["step"] == 300
  assert scores["l1_hole"] < 0.95 * scores["mean_fill/l1_hole"], scores
