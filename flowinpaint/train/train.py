"""The training loop shared by every model: `train_and_evaluate(config, workdir)`."""

import dataclasses
import json
import os
import signal
from typing import Any, Optional

from absl import logging
from clu import parameter_overview
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flowinpaint.errors import UserError
from flowinpaint.models import registry
from flowinpaint.train import checkpointing
from flowinpaint.train import divergence
from flowinpaint.train import multihost
from flowinpaint.train import reporting
from flowinpaint.train import sharding
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train import warm_start
from flowinpaint.train.phases import Phase, phase_for_step

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(config) -> Any:
  if config.dtype not in _DTYPES:
    raise UserError(f"dtype={config.dtype!r} is not supported; choose one of {sorted(_DTYPES)}")
  return _DTYPES[config.dtype]


class Models:
  """The generator, discriminator and their optimisers built from a config."""

  def __init__(self, config):
    try:
      self.spec = registry.get(config.model.name)
    except KeyError as e:
      raise UserError(e.args[0])
    dtype = compute_dtype(config)
    self.generator = self.spec.make_generator(config.model, dtype)
    wants_d = config.loss.adversarial != "none" and self.spec.make_discriminator is not None
    self.discriminator = self.spec.make_discriminator(config.model, dtype) if wants_d else None
    try:
      g_rate = state_lib.generator_learning_rate(config)
    except ValueError as e:
      raise UserError(e.args[0])
    self.g_tx = state_lib.make_optimizer(config.optimizer, g_rate)
    self.d_tx = (state_lib.make_optimizer(config.optimizer, config.optimizer.d_learning_rate)
                 if self.discriminator is not None else None)


def resolve_feature_losses(config, loss_cfg: steps.LossConfig
                           ) -> tuple[steps.LossConfig, Optional[dict]]:
  """(loss config, frozen VGG params) for the VGG feature losses the config asks for.

  Without a weights file (`loss.vgg_weights`) the feature losses are switched off and the log
  says so: ImageNet weights cannot be downloaded here, and random VGG features teach nothing.
  """
  features = loss_cfg.features
  if not features.active:
    return loss_cfg, None
  terms = ", ".join(name for name, w in (("perceptual", features.perceptual_weight),
                                         ("style", features.style_weight),
                                         ("sampling-correctness", features.correctness_weight))
                    if w > 0)
  path = config.loss.get("vgg_weights", "")
  depth = features.vgg_depth
  if not path:
    logging.warning(
        "The %s loss(es) of the %r recipe are OFF: they need ImageNet VGG-%d weights. Pass "
        "--config.loss.vgg_weights=/path/to/vgg%d.pth (torchvision's state dict, e.g. %s; "
        "nothing is downloaded) to switch them on.", terms, features.recipe, depth, depth,
        "vgg16-397923af.pth" if depth == 16 else "vgg19-dcbb9e9d.pth")
    return dataclasses.replace(loss_cfg, features=features.off()), None
  from flowinpaint.models import vgg
  try:
    params = vgg.load_torchvision(os.path.expanduser(path), depth)
  except vgg.VGGWeightsError as e:
    raise UserError(f"loss.vgg_weights: {e}") from e
  logging.info("VGG-%d feature losses on (%s) with weights from %s", depth, terms, path)
  return loss_cfg, params


def validate_config(config, spec) -> None:
  """Catches the knob values that would otherwise fail deep inside jit."""
  if config.image_size % spec.multiple:
    raise UserError(f"image_size={config.image_size} must be a multiple of {spec.multiple} for "
                    f"{spec.name}")
  if config.num_train_steps < 0 or config.batch_size < 1:
    raise UserError("num_train_steps must be >= 0 and batch_size >= 1")
  for key in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps"):
    if config[key] < 1:
      raise UserError(f"{key} must be >= 1 (got {config[key]})")
  if not 0 <= config.data.get("min_crop_fraction", 0.0) <= 1:
    raise UserError(f"data.min_crop_fraction must be in [0, 1] (got "
                    f"{config.data.min_crop_fraction}); 0 crops at the images' own resolution")
  if config.nan_policy != "halt":
    raise UserError(f"nan_policy={config.nan_policy!r}: only 'halt' is implemented")


def _phase(config, step: int, has_d: bool) -> Phase:
  return phase_for_step(step, reconstruction_steps=config.phases.reconstruction_steps,
                        discriminator_steps=config.phases.discriminator_steps,
                        has_discriminator=has_d)


def _check_workdir_config(workdir: str, config) -> None:
  """Refuses to resume a workdir that was trained with another model."""
  path = os.path.join(workdir, "config.json")
  current = checkpointing.config_to_json(config)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved.get("model") != current["model"]:
      raise UserError(f"{workdir} holds a run of model {saved.get('model')}, but this config asks "
                      f"for {current['model']}; use a new --workdir")
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    # Renamed into place: the other processes of a multi-host run read it meanwhile.
    with open(path + ".tmp", "w") as f:
      json.dump(current, f, indent=2)
    os.replace(path + ".tmp", path)


class _StopRequest:
  """SIGTERM (preemption) sets a flag; the loop saves and stops at the next step boundary.

  Several processes must stop after the same step (saving is collective): there JAX's preemption
  service, started by jax.distributed.initialize, catches the SIGTERM that any of them gets and
  names the step at which all stop.
  """

  def __init__(self):
    self.requested = False
    self._previous = None
    self._shared = multihost.is_multiprocess()

  def __enter__(self):
    if self._shared:
      return self
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: leave signals alone.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def check(self, step: int) -> bool:
    """Whether to save and stop after `step`; every process calls this after every step."""
    if self._shared and not self.requested:
      from jax.experimental import multihost_utils
      self.requested = multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def evaluate(predict, g_vars, eval_batch: dict[str, np.ndarray]
             ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
  """Scores the generator on the fixed eval batch; returns (metrics, outputs, targets)."""
  from flowinpaint import metrics as metrics_lib

  predicted = predict(g_vars, np.asarray(eval_batch["image"]), np.asarray(eval_batch["mask"]))
  output, target = np.asarray(predicted["output"]), np.asarray(predicted["target"])
  if "target" in eval_batch:
    target = np.asarray(eval_batch["target"])
  hole = np.asarray(eval_batch["mask"])
  if target.shape[-1] == 2:  # Optical flow: end-point error, everywhere and inside the hole.
    epe = np.sqrt(np.sum(np.square(output - target), axis=-1, keepdims=True))
    scores = {"epe": float(epe.mean()), "hole_ratio": float(hole.mean())}
    if hole.sum() > 0:
      scores["epe_hole"] = float((epe * hole).sum() / hole.sum())
    return scores, output, target
  # Images: scores in [0, 1] units, as the evaluate tool reports them.
  per_image = metrics_lib.all_metrics((output + 1.0) / 2.0, (target + 1.0) / 2.0, hole,
                                      data_range=1.0)
  scores = {k: float(np.nanmean(np.asarray(v))) for k, v in per_image.items()}
  return scores, output, target


def trivial_fill_scores(target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
  """Hole metrics of the trivial fills of `target` (images in [-1, 1]), named 'FILL/METRIC'.

  The floor a model must beat on the same images and masks: each hole painted with the mean
  colour of the image's known pixels ('mean_fill'), and Telea's diffusion of the known pixels
  into the hole ('telea_fill'). Empty for anything but 1- or 3-channel images (e.g. flows).
  """
  from flowinpaint import metrics as metrics_lib
  from flowinpaint.classical import trivial_fills

  if target.shape[-1] not in (1, 3):
    return {}
  scores = {}
  for name, fill in trivial_fills.FILLS.items():
    filled = fill(target, mask)
    per_image = metrics_lib.all_metrics((filled + 1.0) / 2.0, (target + 1.0) / 2.0, mask,
                                        data_range=1.0)
    for key in ("psnr_hole", "ssim_hole", "l1_hole", "l2_hole"):
      scores[f"{name}/{key}"] = float(np.nanmean(np.asarray(per_image[key])))
  return scores


def _displayable(x: np.ndarray, max_flow: float) -> np.ndarray:
  """Images as they are; flows as colour-wheel pictures, both in [-1, 1]."""
  if x.shape[-1] != 2:
    return x
  from flowinpaint.flow_vis import flow_to_rgb
  return flow_to_rgb(x, max_magnitude=max_flow).astype(np.float32) / 127.5 - 1.0


def _data_module(config):
  """The input pipeline of the config's dataset (images, or synthetic flow clips)."""
  if config.data.dataset.startswith("synthetic_flow"):
    from flowinpaint.data import flow_pipeline
    return flow_pipeline
  from flowinpaint.data import pipeline
  return pipeline


def data_mean_pixel(config, pipeline, num_batches: int = 8) -> tuple[float, ...]:
  """The mean RGB of the first `num_batches` training batches (seeded: the same on resume)."""
  batches = pipeline.train_batches(config.data, batch_size=config.batch_size,
                                   image_size=config.image_size, seed=config.seed,
                                   mask_kind=config.data.mask_kind, num_workers=0)
  images = np.stack([next(batches)["image"] for _ in range(num_batches)])
  return tuple(float(v) for v in images.reshape(-1, images.shape[-1]).mean(axis=0))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config.model` for `config.num_train_steps`, resuming from `workdir` if it can.

  Returns the final evaluation metrics (and 'preempted': True when stopped by SIGTERM).
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  pipeline = _data_module(config)
  if config.model.get("fill_from_data_mean"):
    # GLCIC fills holes with the training set's mean pixel; the value is recorded in the
    # checkpoint's config, so inference uses the same one.
    with reporting.timed("computing the training data's mean pixel"):
      config.model.fill_value = data_mean_pixel(config, pipeline)
    logging.info("Hole fill value = data mean pixel %s ([-1, 1] RGB)",
                 ", ".join(f"{v:.4f}" for v in config.model.fill_value))
  models = Models(config)
  validate_config(config, models.spec)
  has_d = models.discriminator is not None
  mesh = sharding.make_mesh()
  local_batch = sharding.check_batch_size(config.batch_size, mesh)
  _check_workdir_config(workdir, config)
  is_main = jax.process_index() == 0
  writer = reporting.MetricWriter(workdir, enabled=is_main)

  eval_data = config.data
  if config.data.get("eval_path"):
    eval_data = ml_collections.ConfigDict(dict(config.data.to_dict(), dataset="folder",
                                               path=config.data.eval_path))
  eval_batch = pipeline.eval_batch(eval_data, num_images=config.num_eval_images,
                                   image_size=config.image_size, seed=config.eval_mask_seed,
                                   mask_kind=config.data.mask_kind)

  # --- State: born replicated, then replaced by the newest finished checkpoint if any.
  replicated = sharding.replicated(mesh)
  example = {k: np.zeros((1,) + v.shape[1:], np.float32) for k, v in eval_batch.items()}
  init = jax.jit(lambda rng: state_lib.create_state(
      rng, models.generator, models.discriminator, models.g_tx, models.d_tx,
      example_batch=example), out_shardings=replicated)
  rng = jax.random.key_data(jax.random.key(config.seed))
  with reporting.timed(f"initialising {models.spec.name} (compiling its init)"):
    state = jax.block_until_ready(init(rng))
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=config.keep_checkpoints,
                                    async_save=config.async_checkpointing)
  start_step = 0
  latest = ckpt.latest_step()
  if latest is not None:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            state)
    with reporting.timed(f"restoring step {latest} of {ckpt.directory}"):
      try:
        state, meta = ckpt.restore(latest, abstract)
      except Exception as e:  # pylint: disable=broad-except  # A damaged file: any type.
        raise UserError(f"cannot resume from {ckpt.directory} step {latest}: "
                        f"{checkpointing.damage_report(e)}") from None
    start_step = int(meta["data_position"])
  elif config.get("init_generator_from"):
    g_vars = warm_start.load_generator_variables(jax.device_get(state.g_vars),
                                                 config.init_generator_from)
    state = state.replace(g_vars=jax.device_put(g_vars, replicated),
                          g_opt=jax.jit(models.g_tx.init, out_shardings=replicated)(
                              g_vars["params"]))
    logging.info("Generator initialised from %s", config.init_generator_from)
  if is_main:
    parts = [(name, variables["params"]) for name, variables in
             (("generator", state.g_vars), ("discriminator", state.d_vars)) if variables]
    tables = reporting.write_parameter_tables(workdir, parts)
    logging.info("%s; tables in %s", reporting.parameter_summary(parts), tables)
    if latest is None:
      for name, params in parts:
        writer.write_text(0, f"parameters/{name}",
                          f"```\n{parameter_overview.get_parameter_overview(params)}\n```")

  loss_cfg, vgg_params = resolve_feature_losses(config, steps.LossConfig.from_config(config))
  if vgg_params is not None:
    vgg_params = jax.device_put(vgg_params, replicated)
  train_step = jax.jit(
      steps.make_train_step(models.generator, models.discriminator, models.g_tx, models.d_tx,
                            loss_cfg),
      static_argnames="phase", donate_argnums=0)
  # Replicated in and out: every process holds the whole (small) eval batch and its scores.
  predict = jax.jit(steps.make_predict_fn(models.generator), in_shardings=replicated,
                    out_shardings=replicated)
  batches = pipeline.train_batches(
      config.data, batch_size=local_batch, image_size=config.image_size, seed=config.seed,
      mask_kind=config.data.mask_kind, start_step=start_step,
      process_index=jax.process_index(), process_count=jax.process_count())

  def metadata(step: int) -> dict[str, Any]:
    return {"config": checkpointing.config_to_json(config), "model": models.spec.name,
            "data_position": step, "step": step}

  baselines: dict[str, float] = {}
  evaluated = []

  def run_eval(step: int) -> dict[str, float]:
    if evaluated:
      scores, output, target = evaluate(predict, state.g_vars, eval_batch)
    else:
      with reporting.timed(f"compiling the evaluation and evaluating step {step}"):
        scores, output, target = evaluate(predict, state.g_vars, eval_batch)
      evaluated.append(step)
    if not baselines:  # The eval set is fixed: its trivial fills are scored once.
      baselines.update(trivial_fill_scores(target, np.asarray(eval_batch["mask"])))
    scores = {**scores, **baselines}
    writer.write_scalars(step, scores, prefix="eval/")
    if is_main:
      n = config.num_sample_images
      mask, target, output = eval_batch["mask"][:n], target[:n], output[:n]
      max_flow = float(np.abs(target).max()) if target.shape[-1] == 2 else 0.0
      target, output = _displayable(target, max_flow), _displayable(output, max_flow)
      grid = reporting.sample_grid(target * (1 - mask), mask, output, target)
      writer.write_image(step, "samples", grid)
      os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
      from PIL import Image
      Image.fromarray(grid).save(os.path.join(workdir, "samples", f"step_{step:07d}.png"))
      with open(os.path.join(workdir, "eval_metrics.json"), "w") as f:
        json.dump({"step": step, **scores}, f, indent=2)
    logging.info("eval step %d: %s", step,
                 ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())))
    return scores

  progress = reporting.Progress(config.num_train_steps, start_step)
  accumulated, scores, preempted, reported_step = None, {}, False, start_step
  compiled_phases = set()
  logging.info("Training %s from step %d to %d on %d device(s), global batch %d, %s",
               models.spec.name, start_step, config.num_train_steps, mesh.devices.size,
               config.batch_size, config.dtype)

  def report(step: int, phase: Phase) -> None:
    """Logs the losses since the last report; halts (nothing saved) when one is not finite."""
    nonlocal accumulated, reported_step
    values = {k: float(v) for k, v in accumulated.compute().items()}  # Waits for the step.
    accumulated = None
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
      raise divergence.losses_error(bad, reported_step, step, config, has_discriminator=has_d,
                                    latest_checkpoint=ckpt.latest_step())
    reported_step = step
    timing = progress.report(step)
    writer.write_scalars(step, {**values, **timing}, prefix="train/")
    logging.info("step %d/%d [%s] g_loss=%.4f d_loss=%.4f recon=%.4f | %.2f steps/s, ETA %s",
                 step, config.num_train_steps, phase.value, values["g_loss"],
                 values["d_loss"], values["recon_loss"], timing["steps_per_sec"],
                 reporting.format_duration(timing["eta_sec"]))

  def save(step: int) -> None:
    """Saves `state` at `step`, never with a NaN or an Inf in it."""
    parts = divergence.nonfinite_parts(state)
    if parts:
      raise divergence.state_error(parts, step, config, has_discriminator=has_d,
                                   latest_checkpoint=ckpt.latest_step())
    ckpt.save(step, state, metadata(step))

  try:
    with _StopRequest() as stop:
      step = start_step
      while step < config.num_train_steps:
        phase = _phase(config, step, has_d)
        batch = sharding.shard_batch(next(batches), mesh)
        if phase not in compiled_phases:
          compiled_phases.add(phase)
          # The first step of a phase compiles it: minutes for the big models, said as such.
          with reporting.timed(f"compiling the train step ({phase.value} phase) and running "
                               f"step {step + 1}"):
            multihost.compile_then_meet(train_step, f"train step {phase.value}", state, batch,
                                        vgg_params=vgg_params, phase=phase)
            state, step_metrics = jax.block_until_ready(
                train_step(state, batch, vgg_params=vgg_params, phase=phase))
        else:
          state, step_metrics = train_step(state, batch, vgg_params=vgg_params, phase=phase)
        accumulated = step_metrics if accumulated is None else accumulated.merge(step_metrics)
        step += 1
        last = step == config.num_train_steps
        due_save = step % config.checkpoint_every_steps == 0 or last
        reported = step % config.log_every_steps == 0 or due_save
        if reported:  # Every save is preceded by a finite report.
          report(step, phase)
        # The stop flag is read once, after everything above that waits (the step itself, the
        # report): a SIGTERM that arrived meanwhile is acted on now, one that comes later at
        # the next step.
        stopping = stop.check(step)
        if stopping:
          logging.warning("SIGTERM: saving step %d and stopping", step)
          if not reported:
            report(step, phase)
        if due_save or stopping:
          save(step)
        if stopping:
          ckpt.wait()  # An asynchronous save is only saved once it is on disk.
          logging.warning("SIGTERM: saved step %d; rerun the same command to resume", step)
          preempted = True
          break
        if step % config.eval_every_steps == 0 or last:
          scores = run_eval(step)
      if start_step >= config.num_train_steps and not scores:
        scores = run_eval(start_step)
  finally:
    batches.close()
    ckpt.close()
    writer.close()
  return {**scores, "step": int(state.step), "preempted": preempted}
