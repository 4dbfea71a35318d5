"""Trains and evaluates a model from a config file.

  python -m flowinpaint.main --config configs/deepfill_v2.py --workdir runs/deepfill_v2 \
      [--config.num_train_steps=1000 --config.batch_size=8 ...]

Rerunning the same command resumes from the newest finished checkpoint in --workdir.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


def _add_config_root_to_path(argv) -> None:
  # Config files import their siblings (`from configs import default`): make the folder that
  # holds configs/ importable wherever the command runs from.
  for i, arg in enumerate(argv):
    value = None
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
    if value:
      root = os.path.dirname(os.path.dirname(os.path.abspath(value.split(":")[0])))
      if root not in sys.path:
        sys.path.insert(0, root)


_add_config_root_to_path(sys.argv)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() first (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries:
  """A logging filter: orbax and grain narrate every save and worker at INFO; keep warnings."""

  def filter(self, record) -> bool:
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "grain"))
    return record.levelno >= 30 or not noisy


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import jax  # After flag parsing, so --help stays fast.

  from flowinpaint.errors import UserError
  from flowinpaint.train import stages
  from flowinpaint.train import train

  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.info("JAX %s, process %d/%d, devices: %s", jax.__version__, jax.process_index(),
               jax.process_count(), jax.devices())
  try:
    if stages.is_chain(_CONFIG.value):  # Several stages, each in WORKDIR/<stage>.
      result = stages.train_stages(_CONFIG.value, _WORKDIR.value, train.train_and_evaluate)
    else:
      result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  logging.info("final: %s", result)
  if result.get("preempted"):
    sys.exit(143)


if __name__ == "__main__":
  app.run(main)
