r"""Trains and evaluates a model from a config file.

  python -m flowinpaint.main --config configs/deepfill_v2.py --workdir runs/deepfill_v2 \
      [--config.num_train_steps=1000 --config.batch_size=8 ...]

Rerunning the same command resumes from the newest finished checkpoint in --workdir.
"""

import os
import sys
import textwrap

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

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "the training configuration file (required), e.g. configs/default.py; "
    "override any of its knobs with --config.KEY=VALUE", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "the folder for checkpoints, logs and samples "
                               "(required); rerunning with the same folder resumes")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "call jax.distributed.initialize() first (multi-host runs)")
flags.mark_flags_as_required(["config", "workdir"])
_HELP_FLAGS = ("-h", "-help", "--help", "-?", "--helpshort")


def help_text() -> str:
  """What --help prints: the docstring, then this module's own flags (absl's lists them with
  absl's and JAX's defaults, 'None' for the required ones)."""
  rows = [("--config FILE", _CONFIG), ("--workdir DIR", _WORKDIR),
          ("--[no]distributed", _DISTRIBUTED)]
  lines = [__doc__.strip(), "",
           "usage: python -m flowinpaint.main --config FILE --workdir DIR "
           "[--config.KEY=VALUE ...]",
           "                                  [--distributed]", "", "flags:"]
  for name, holder in rows:
    wrapped = textwrap.wrap(flags.FLAGS[holder.name].help, 100 - 22)
    lines.append(f"  {name:<19} {wrapped[0]}")
    lines += [" " * 22 + w for w in wrapped[1:]]
  lines.append(f"  {'--helpfull':<19} every flag, those of the libraries included")
  return "\n".join(lines)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with --help exiting 0 and a bad flag one `error:` line (status 2)."""
  if any(a in _HELP_FLAGS for a in argv[1:]):
    print(help_text())
    sys.exit(0)
  if "--helpfull" in argv[1:]:
    print(flags.FLAGS.get_help())
    sys.exit(0)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())} (see --help)", file=sys.stderr)
    sys.exit(2)


class _QuietLibraries:
  """A logging filter: orbax and grain narrate every save and worker at INFO, and JAX says at
  INFO that it found no TPU on every machine without one; keep warnings."""

  def filter(self, record) -> bool:
    if record.levelno >= 30:
      return True
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "grain"))
    no_tpu = (record.pathname.endswith("xla_bridge.py")
              and record.getMessage().startswith("Unable to initialize backend"))
    return not (noisy or no_tpu)


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
    path = flags.FLAGS["config"].config_filename
    if not os.path.isfile(path):  # config_flags would raise on first use, with a traceback.
      raise UserError(f"--config {path}: no such file (e.g. configs/default.py)")
    config = _CONFIG.value
    if stages.is_chain(config):  # Several stages, each in WORKDIR/<stage>.
      result = stages.train_stages(config, _WORKDIR.value, train.train_and_evaluate)
    else:
      result = train.train_and_evaluate(config, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  logging.info("final: %s", result)
  if result.get("preempted"):
    sys.exit(143)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
