"""Checkpoints: the only module that imports orbax.

A checkpoint step holds three items: 'generator' (the generator's variables, enough for
inference), 'train' (optimiser states, discriminator, step, PRNG key) and 'metadata' (JSON: the
model name and config, the data position). Saves are async and atomic; only finalised steps are
ever restored, so a run killed mid-save resumes from the previous one. An inference-only step
(`save_generator`, e.g. converted weights too large to carry fresh optimiser states) has no
'train' item and metadata 'inference_only': true; tools load it, training does not resume it.
"""

import dataclasses
import json
import logging
import os
import sys
from typing import Any, Optional

import jax
import ml_collections
import orbax.checkpoint as ocp

from flowinpaint.errors import UserError
from flowinpaint.train import multihost

PyTree = Any
_ITEMS = ("generator", "train", "metadata")


class Checkpointer:
  """Periodic async saves under `directory`, keeping the newest `keep` steps."""

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    if multihost.is_multiprocess():
      _use_coordination_barriers()
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, metadata: dict[str, Any]) -> bool:
    """Saves `state` (a GanState) at `step` unless that step exists. Returns whether it saved."""
    if step in self._manager.all_steps():
      return False
    generator, train = _split_state(state)
    return self._manager.save(step, args=ocp.args.Composite(
        generator=ocp.args.StandardSave(generator), train=ocp.args.StandardSave(train),
        metadata=ocp.args.JsonSave(metadata)), force=True)

  def save_generator(self, step: int, g_vars, metadata: dict[str, Any]) -> bool:
    """Saves an inference-only step: the generator's variables and the metadata."""
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.Composite(
        generator=ocp.args.StandardSave(g_vars),
        metadata=ocp.args.JsonSave(dict(metadata, inference_only=True))), force=True)

  def restore(self, step: int, abstract_state) -> tuple[Any, dict[str, Any]]:
    """Restores into the structure, shapes and shardings of `abstract_state`."""
    if not os.path.isdir(os.path.join(self.directory, str(step), "train")):
      workdir = os.path.dirname(self.directory)
      raise UserError(f"{self.directory} step {step} holds a network for inference only (e.g. "
                      "converted weights), not a training state; to fine-tune it, start a new "
                      f"--workdir with --config.init_generator_from={workdir}")
    generator, train = _split_state(abstract_state)
    _silence_orphaned_reads()
    restored = self._manager.restore(step, args=ocp.args.Composite(
        generator=ocp.args.StandardRestore(generator), train=ocp.args.StandardRestore(train),
        metadata=ocp.args.JsonRestore()))
    return _merge_state(abstract_state, restored.generator, restored.train), restored.metadata

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _use_coordination_barriers() -> None:
  """Makes orbax's barriers between processes wait on jax.distributed's coordination service
  (with a timeout) instead of a device collective, which on CPU fails when a process arrives
  30 s after another (flowinpaint.train.multihost)."""
  from absl import flags
  from orbax.checkpoint._src.multihost import multihost  # Defines the flag.
  del multihost
  flags.FLAGS["experimental_orbax_use_distributed_barrier"].value = True


def _split_state(state) -> tuple[PyTree, PyTree]:
  train = {"step": state.step, "rng": state.rng, "g_opt": state.g_opt, "d_vars": state.d_vars,
           "d_opt": state.d_opt}
  return state.g_vars, train


def _merge_state(like, generator: PyTree, train: PyTree):
  return like.replace(g_vars=generator, **train)


@dataclasses.dataclass
class InferenceBundle:
  """What a tool needs to run a trained generator."""
  model_name: str
  config: ml_collections.ConfigDict
  generator: Any  # flax.linen.Module
  variables: dict[str, Any]
  multiple: int
  step: int


def find_checkpoint(path: str) -> tuple[str, Optional[int]]:
  """Accepts a workdir (a multi-stage one: its last stage), its checkpoints/ folder or one step
  folder; returns (dir, step or None)."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.exists(path):
    raise UserError(f"checkpoint {path} does not exist")
  from flowinpaint.train import stages  # A multi-stage run stands for its last stage.
  path = stages.final_stage_dir(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return os.path.join(path, "checkpoints"), None
  if os.path.isdir(os.path.join(path, "metadata")) and os.path.basename(path).isdigit():
    return os.path.dirname(path), int(os.path.basename(path))
  if os.path.isdir(path) and any(name.isdigit() for name in os.listdir(path)):
    return path, None
  raise UserError(f"{path} is not a flowinpaint checkpoint (expected a training workdir, its "
                  "checkpoints/ folder, or one numbered step folder inside it)")


def load_for_inference(path: str) -> InferenceBundle:
  """Loads the newest (or the given) step's generator with the model recorded in its metadata.

  UserError when the folder is not a readable flowinpaint checkpoint, or when its generator holds
  NaN or Inf (a diverged run's: such a model would fill every hole with garbage).
  """
  from flowinpaint.models import registry  # Lazy: keeps orbax-free users light.
  from flowinpaint.train import divergence

  directory, step = find_checkpoint(path)
  try:
    restored = read_step(directory, step, items=("generator",))
  except NoCheckpointError as e:
    raise UserError(str(e)) from None
  except UnreadableStepError as e:
    raise UserError(f"{directory} step {e.step} is not a readable flowinpaint checkpoint "
                    f"({damage_report(e.cause)}); is a file missing or truncated? Use another "
                    "step or copy the checkpoint again") from None
  step = restored["step"]
  metadata = restored["metadata"] or {}
  if "config" not in metadata or "model" not in metadata.get("config", {}):
    raise UserError(f"{directory} step {step} has no flowinpaint metadata; is it a checkpoint of "
                    "another program?")
  bad = divergence.nonfinite_count(restored["generator"])
  if bad:
    raise UserError(f"{directory} step {step} holds a generator with {bad:,} NaN or Inf values "
                    "(the run diverged); use an earlier step's folder, or retrain with a lower "
                    "learning rate")
  config = ml_collections.ConfigDict(metadata["config"])
  try:
    spec = registry.get(config.model.name)
  except KeyError as e:
    raise UserError(f"checkpoint model: {e.args[0]}")
  from flowinpaint.train.train import compute_dtype
  generator = spec.make_generator(config.model, compute_dtype(config))
  variables = restored["generator"]
  return InferenceBundle(model_name=spec.name, config=config, generator=generator,
                         variables=variables, multiple=spec.multiple, step=step)


class NoCheckpointError(ValueError):
  """The folder holds no finished step."""


class UnreadableStepError(ValueError):
  """A step that cannot be read (a file missing or damaged): `step`, and the `cause`."""

  def __init__(self, step: int, cause: Exception):
    super().__init__(f"step {step}: {cause}")
    self.step, self.cause = step, cause


def read_step(directory: str, step: Optional[int] = None, *,
              items: tuple[str, ...] = ("generator", "train")) -> dict[str, Any]:
  """One step's `items` and its metadata, as arrays on this process's first device.

  Whatever devices and hosts saved the step (8 GPUs, two hosts, ...), it loads on this one: the
  saved arrays are read whole. `step` None: the newest finished one. Returns {item: pytree,
  'metadata': dict, 'step': int}. NoCheckpointError when no step is finished; a damaged step
  raises UnreadableStepError.
  """
  # Not read_only: that mode logs three warnings on every load. create=False and no save or
  # cleanup: nothing is written either way. Handlers named, so the items' metadata is readable.
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False),
                                  item_handlers={"generator": ocp.StandardCheckpointHandler(),
                                                 "train": ocp.StandardCheckpointHandler(),
                                                 "metadata": ocp.JsonCheckpointHandler()})
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise NoCheckpointError(f"{directory} holds no finished checkpoint")
    try:
      saved = manager.item_metadata(step)
      here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      args = {}
      for item in items:
        # The saved shapes on this device: without a target orbax would put each array back on
        # the devices that saved it, and fail where those do not exist.
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                              saved[item])
        args[item] = ocp.args.StandardRestore(target)
      _silence_orphaned_reads()
      restored = manager.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore(),
                                                               **args))
    except Exception as e:  # pylint: disable=broad-except
      # A damaged file surfaces as ValueError, KeyError, OSError or TensorStore's bare
      # Exception, depending on which file it is.
      raise UnreadableStepError(step, e) from e
  finally:
    manager.close()
  return {**{item: restored[item] for item in items}, "metadata": restored.metadata,
          "step": step}


def damage_report(error: Exception, limit: int = 300) -> str:
  """A failed restore's exception as one short line, for the `error:` line."""
  text = " ".join(str(error).split()) or type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_orphaned_read(unraisable) -> bool:
  """Whether an unraisable error is one a failed restore leaves behind (_silence_orphaned_reads)."""
  error = unraisable.exc_value
  if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
    return True
  code = getattr(unraisable.object, "cr_code", None)  # A coroutine of orbax's reads.
  return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


def _silence_orphaned_reads() -> None:
  """Drops (from now on) the errors a failed restore leaves behind; called before every restore.

  When one read of a damaged step fails, the restore raises while its other reads still run;
  they finish later, in threads, and each prints a traceback: 'RuntimeError: Event loop is
  closed' or an orbax coroutine's 'Exception ignored in' (through sys.unraisablehook), or
  asyncio's 'Task / Future / _GatheringFuture exception was never retrieved' records (all seen
  on a truncated file). They can come before the caller has caught the restore's exception, so
  the hook (installed once) and the asyncio log filter (added once) must be in place first.
  """
  logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _UnretrievedTaskFilter) for f in logger.filters):
    logger.addFilter(_UnretrievedTaskFilter())
  previous = sys.unraisablehook
  if getattr(previous, "drops_orphaned_reads", False):
    return

  def hook(unraisable):
    if not _is_orphaned_read(unraisable):
      previous(unraisable)

  hook.drops_orphaned_reads = True
  sys.unraisablehook = hook


class _UnretrievedTaskFilter(logging.Filter):
  """Drops asyncio's records of tasks left behind by a failed restore (_silence_orphaned_reads)."""

  def filter(self, record: logging.LogRecord) -> bool:
    # asyncio's messages: '<Task|Future|_GatheringFuture> exception was never retrieved', and
    # 'Task was destroyed but it is pending!' (each with the object on the next line).
    first = record.getMessage().split("\n", 1)[0]
    return not (first.endswith("exception was never retrieved")
                or first.startswith("Task was destroyed but it is pending"))


def config_to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())
