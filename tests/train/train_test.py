"""The training loop end to end on a toy model: artifacts, resume equivalence, guards."""

import glob
import json
import os

import jax
import numpy as np
import pytest

from configs import tiny
from flowinpaint.errors import UserError
from flowinpaint.models import registry
from flowinpaint.train import checkpointing
from flowinpaint.train import train
from tests.train.toy_models import ToyDiscriminator, ToyGenerator

if "toy" not in registry._REGISTRY:
  registry.register(registry.ModelSpec(
      name="toy", make_generator=lambda cfg, dtype: ToyGenerator(features=cfg.get("cnum", 4)),
      make_discriminator=lambda cfg, dtype: ToyDiscriminator(), multiple=4))


def _config(**overrides):
  config = tiny.get_config()
  config.model.name = "toy"
  config.image_size = 16
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def test_train_writes_every_artifact(tmp_path):
  result = train.train_and_evaluate(_config(), str(tmp_path))
  assert result["step"] == 4 and not result["preempted"]
  assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  assert os.path.exists(tmp_path / "samples" / "step_0000004.png")
  with open(tmp_path / "eval_metrics.json") as f:
    scores = json.load(f)
  assert scores["step"] == 4 and np.isfinite(scores["psnr"]) and 0 < scores["hole_ratio"] < 1
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert {"train/g_loss", "train/d_loss", "train/steps_per_sec"} <= set(lines[0])
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()) == [2, 4]
  from PIL import Image
  grid = np.asarray(Image.open(tmp_path / "samples" / "step_0000004.png"))
  assert grid.shape == (2 * 16, 4 * 16, 3)  # 2 rows of masked | mask | output | target.


def test_resume_equals_straight_run(tmp_path):
  straight = tmp_path / "straight"
  train.train_and_evaluate(_config(num_train_steps=4), str(straight))
  resumed = tmp_path / "resumed"
  first = train.train_and_evaluate(_config(num_train_steps=2), str(resumed))
  assert first["step"] == 2
  second = train.train_and_evaluate(_config(num_train_steps=4), str(resumed))
  assert second["step"] == 4
  bundle_a = checkpointing.load_for_inference(str(straight))
  bundle_b = checkpointing.load_for_inference(str(resumed))
  for a, b in zip(jax.tree.leaves(bundle_a.variables), jax.tree.leaves(bundle_b.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  losses = lambda d: [json.loads(l) for l in open(d / "metrics.jsonl")]
  straight_losses = {l["step"]: l["train/g_loss"] for l in losses(straight) if "train/g_loss" in l}
  resumed_losses = {l["step"]: l["train/g_loss"] for l in losses(resumed) if "train/g_loss" in l}
  assert straight_losses == resumed_losses


def test_load_for_inference_rebuilds_the_model(tmp_path):
  train.train_and_evaluate(_config(num_train_steps=2), str(tmp_path))
  bundle = checkpointing.load_for_inference(str(tmp_path))
  assert bundle.model_name == "toy" and bundle.multiple == 4 and bundle.step == 2
  image = np.zeros((1, 16, 16, 3), np.float32)
  mask = np.ones((1, 16, 16, 1), np.float32)
  out = bundle.generator.apply(bundle.variables, image, mask, train=False)["output"]
  assert out.shape == (1, 16, 16, 3)
  # The same step folder works too.
  step_dir = tmp_path / "checkpoints" / "2"
  assert checkpointing.load_for_inference(str(step_dir)).step == 2


def test_load_for_inference_rejects_other_folders(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    checkpointing.load_for_inference(str(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="not a flowinpaint checkpoint"):
    checkpointing.load_for_inference(str(tmp_path / "empty"))


def test_workdir_of_another_model_is_refused(tmp_path):
  train.train_and_evaluate(_config(num_train_steps=2), str(tmp_path))
  with pytest.raises(UserError, match="use a new --workdir"):
    train.train_and_evaluate(_config(**{"model.cnum": 6}), str(tmp_path))


def test_bad_knobs_get_clear_errors(tmp_path):
  with pytest.raises(UserError, match="multiple of 4"):
    train.train_and_evaluate(_config(image_size=18), str(tmp_path / "a"))
  with pytest.raises(UserError, match="does not split over 8 devices"):
    train.train_and_evaluate(_config(batch_size=6), str(tmp_path / "b"))
  with pytest.raises(UserError, match="unknown model 'nope'"):
    train.train_and_evaluate(_config(**{"model.name": "nope"}), str(tmp_path / "c"))
  with pytest.raises(UserError, match="dtype='float8'"):
    train.train_and_evaluate(_config(dtype="float8"), str(tmp_path / "d"))


def test_nan_loss_halts_without_checkpointing_it(tmp_path):
  # A bad input like any other (one `error:` line, exit 2 from main), with advice for this run.
  config = _config(num_train_steps=4)
  config.optimizer.g_learning_rate = float("nan")
  with pytest.raises(UserError, match="became NaN or Inf") as caught:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(caught.value)
  assert "optimizer.g_learning_rate=nan is not a finite number" in message
  assert "float32" not in message and "\n" not in message  # The run is float32 already.
  assert "No checkpoint was written" in message
  assert not [d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]


def test_nonfinite_parameters_are_never_checkpointed(tmp_path):
  # An infinite learning rate: step 1 reports the finite losses of the initial parameters, but
  # leaves NaN / Inf parameters behind. Its checkpoint must not be written.
  config = _config(num_train_steps=4, log_every_steps=1, checkpoint_every_steps=1)
  config.optimizer.g_learning_rate = float("inf")
  with pytest.raises(UserError, match=r"the generator's parameters .*hold NaN or Inf after step "
                     r"1 \(the losses reported so far were finite\); step 1 was not saved"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not [d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
  metrics = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert metrics and all(np.isfinite(m["train/g_loss"]) for m in metrics)


def test_divergence_advice_fits_the_run():
  from flowinpaint.train import divergence
  config = _config()
  text = divergence.advice(config, has_discriminator=True, latest_checkpoint=6)
  assert "lower the learning rate (optimizer.g_learning_rate=0.0001, " \
         "optimizer.d_learning_rate=0.0001)" in text
  assert "optimizer.grad_clip_norm" in text and "float32" not in text
  assert "newest checkpoint (step 6) is finite" in text
  config.dtype, config.optimizer.grad_clip_norm = "bfloat16", 1.0
  text = divergence.advice(config, has_discriminator=False, latest_checkpoint=None)
  assert "train in float32 (dtype=float32; this run uses bfloat16)" in text
  assert "grad_clip_norm" not in text and "d_learning_rate" not in text


def test_sigterm_saves_and_a_rerun_resumes(tmp_path, monkeypatch):
  import signal
  from flowinpaint.data import pipeline
  real_train_batches = pipeline.train_batches

  def preempted_batches(*args, **kwargs):
    it = real_train_batches(*args, **kwargs)

    class Wrapper:
      def __init__(self):
        self.fetched = 0

      def __next__(self):
        self.fetched += 1
        if kwargs.get("start_step", 0) == 0 and self.fetched == 2:
          os.kill(os.getpid(), signal.SIGTERM)  # Arrives while step 2 is being prepared.
        return next(it)

      def close(self):
        it.close()

    return Wrapper()

  monkeypatch.setattr(pipeline, "train_batches", preempted_batches)
  config = _config(num_train_steps=4, checkpoint_every_steps=100, eval_every_steps=100)
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result["preempted"] and result["step"] == 2
  assert [d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()] == ["2"]
  result = train.train_and_evaluate(config, str(tmp_path))
  assert not result["preempted"] and result["step"] == 4


def test_keeps_only_the_newest_checkpoints(tmp_path):
  config = _config(num_train_steps=6, checkpoint_every_steps=1, keep_checkpoints=2,
                   eval_every_steps=100)
  train.train_and_evaluate(config, str(tmp_path))
  steps_kept = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert steps_kept == [5, 6]


def test_leftover_temporary_checkpoint_is_ignored(tmp_path):
  # A run killed mid-save leaves a temporary folder: it is never taken for a finished step.
  train.train_and_evaluate(_config(num_train_steps=2), str(tmp_path))
  (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-123").mkdir()
  result = train.train_and_evaluate(_config(num_train_steps=4), str(tmp_path))
  assert result["step"] == 4
  assert checkpointing.load_for_inference(str(tmp_path)).step == 4


def test_init_generator_from_other_runs(tmp_path):
  first = tmp_path / "first"
  train.train_and_evaluate(_config(num_train_steps=2), str(first))
  trained = checkpointing.load_for_inference(str(first)).variables
  frozen = lambda **kw: _config(num_train_steps=1, seed=7, eval_every_steps=100,
                                **{"optimizer.g_learning_rate": 0.0}, **kw)
  # The whole generator (fine-tuning): lr 0 keeps exactly what was loaded.
  train.train_and_evaluate(frozen(init_generator_from=str(first)), str(tmp_path / "whole"))
  whole = checkpointing.load_for_inference(str(tmp_path / "whole")).variables
  for a, b in zip(jax.tree.leaves(whole["params"]), jax.tree.leaves(trained["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # One part only: the rest keeps this run's own initialisation.
  train.train_and_evaluate(frozen(init_generator_from=f"coarse_out={first}"),
                           str(tmp_path / "part"))
  part = checkpointing.load_for_inference(str(tmp_path / "part")).variables["params"]
  np.testing.assert_array_equal(part["coarse_out"]["kernel"],
                                trained["params"]["coarse_out"]["kernel"])
  assert not np.array_equal(part["fine_out"]["kernel"], trained["params"]["fine_out"]["kernel"])
  with pytest.raises(UserError, match="no part 'nope'"):
    train.train_and_evaluate(frozen(init_generator_from=f"nope={first}"), str(tmp_path / "bad"))
  with pytest.raises(UserError, match="does not fit"):
    train.train_and_evaluate(frozen(init_generator_from=str(first), **{"model.cnum": 6}),
                             str(tmp_path / "wide"))


def test_nan_halts_before_a_checkpoint_between_reports(tmp_path):
  # Checkpoints more often than reports: the save still comes after a finiteness check.
  config = _config(num_train_steps=4, log_every_steps=4, checkpoint_every_steps=2)
  config.optimizer.g_learning_rate = float("nan")
  with pytest.raises(UserError, match=r"within steps \(0, 2\]"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not [d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]


class _DeferredCheckpointer(checkpointing.Checkpointer):
  """Asynchronous saving as the trainer sees it: save() returns at once, the step is on disk only
  after wait() or close(). (orbax's own async saves are not used: with the tests' 8 CPU devices
  their background device-to-host copies can deadlock the runtime against the next train steps.)
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._pending = []

  def save(self, step, state, metadata):
    self._pending.append((step, jax.device_get(state), metadata))
    return True

  def wait(self):
    for step, state, metadata in self._pending:
      super().save(step, state, metadata)
    self._pending.clear()
    super().wait()

  def close(self):
    self.wait()
    super().close()


def test_sigterm_at_random_moments_always_saves_a_resumable_checkpoint(tmp_path, monkeypatch):
  # Preemption can come at any moment of a step (the device work, the report, a save): at every
  # logging cadence the run must stop with a finished checkpoint of the step it names, say
  # "saved" only once that is on disk, and a rerun must resume from it.
  import logging
  import random
  import signal
  import threading
  import time
  from flowinpaint.data import pipeline
  real_train_batches = pipeline.train_batches
  rng = random.Random(1234)  # Random moments, the same ones on every run of the test.
  trial = {}

  def sigterm_soon(*args, **kwargs):
    it = real_train_batches(*args, **kwargs)

    class Batches:
      fetched = 0

      def __next__(self):
        self.fetched += 1
        if trial.get("armed") and self.fetched == 3:  # Compiled and in the loop by now.
          trial["armed"] = False
          delay, pid = rng.uniform(0.0, 0.25), os.getpid()
          threading.Thread(target=lambda: (time.sleep(delay), os.kill(pid, signal.SIGTERM)),
                           daemon=True).start()
        return next(it)

      def close(self):
        it.close()

    return Batches()

  saved_lines = []

  class SavedLines(logging.Handler):
    def emit(self, record):
      message = record.getMessage()
      if message.startswith("SIGTERM: saved step"):
        step = int(message.split()[3].strip(";"))
        # Logged as saved: it must be finished on disk at this very moment.
        saved_lines.append((step, os.path.isdir(trial["workdir"] / "checkpoints" / str(step))))

  handler = SavedLines()
  logging.getLogger("absl").addHandler(handler)
  monkeypatch.setattr(pipeline, "train_batches", sigterm_soon)
  cadences = (1, 1, 1, 1, 2, 2, 3, 5, 5, 20)
  try:
    for i, log_every in enumerate(cadences):
      deferred = i % 2 == 1
      monkeypatch.setattr(checkpointing, "Checkpointer",
                          _DeferredCheckpointer if deferred else _REAL_CHECKPOINTER)
      config = _config(num_train_steps=100_000, log_every_steps=log_every,
                       checkpoint_every_steps=7, eval_every_steps=1_000_000)
      workdir = tmp_path / f"run{i}"
      trial.update(armed=True, workdir=workdir)
      saved_lines.clear()
      result = train.train_and_evaluate(config, str(workdir))
      stopped, where = result["step"], (i, log_every, deferred)
      assert result["preempted"], where
      assert saved_lines == [(stopped, True)], (where, stopped, saved_lines)
      assert _REAL_CHECKPOINTER(str(workdir / "checkpoints")).latest_step() == stopped, where
      config.num_train_steps = stopped + 1
      resumed = train.train_and_evaluate(config, str(workdir))
      assert resumed["step"] == stopped + 1 and not resumed["preempted"], where
  finally:
    logging.getLogger("absl").removeHandler(handler)


_REAL_CHECKPOINTER = checkpointing.Checkpointer
