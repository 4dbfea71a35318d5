r"""Trains and evaluates a model from a config file.

  python -m flowinpaint.main --config configs/deepfill_v2.py --workdir runs/deepfill_v2 \
      [--config.num_train_steps=1000 --config.batch_size=8 ...]

Rerunning the same command resumes from the newest finished checkpoint in --workdir.

Several hosts: the same command on each, with --distributed (SLURM, Open MPI, Cloud TPU: nothing
else; elsewhere also --coordinator_address=HOST0:PORT --num_processes=N --process_id=I).
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
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "multi-host: join the other processes first "
    "(jax.distributed.initialize; on SLURM / Open MPI / Cloud TPU it finds them by itself)")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "multi-host: HOST:PORT of process 0, the same on every process "
    "(default $JAX_COORDINATOR_ADDRESS, else found by the cluster); implies --distributed")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "multi-host: how many processes take part (implies --distributed)")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "multi-host: this process's index, 0 .. num_processes-1 (implies "
    "--distributed)")
flags.mark_flags_as_required(["config", "workdir"])
_HELP_FLAGS = ("-h", "-help", "--help", "-?", "--helpshort")


def help_text() -> str:
  """What --help prints: the docstring, then this module's own flags (absl's lists them with
  absl's and JAX's defaults, 'None' for the required ones)."""
  rows = [("--config FILE", _CONFIG), ("--workdir DIR", _WORKDIR),
          ("--[no]distributed", _DISTRIBUTED), ("--coordinator_address", _COORDINATOR),
          ("--num_processes N", _NUM_PROCESSES), ("--process_id I", _PROCESS_ID)]
  lines = [__doc__.strip(), "",
           "usage: python -m flowinpaint.main --config FILE --workdir DIR "
           "[--config.KEY=VALUE ...]",
           "                                  [--distributed [--coordinator_address HOST:PORT "
           "--num_processes N --process_id I]]", "", "flags:"]
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


def distributed_arguments() -> dict | None:
  """jax.distributed.initialize's arguments from the flags; None for a single-process run.

  Only the ones given are passed: JAX finds the rest in a SLURM, Open MPI or Cloud TPU job, and
  the coordinator in $JAX_COORDINATOR_ADDRESS.
  """
  from flowinpaint.errors import UserError

  given = {name: holder.value for name, holder in (
      ("coordinator_address", _COORDINATOR), ("num_processes", _NUM_PROCESSES),
      ("process_id", _PROCESS_ID)) if holder.value is not None}
  if not (_DISTRIBUTED.value or given):
    return None
  address = given.get("coordinator_address")
  if address is not None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
      raise UserError(f"--coordinator_address={address}: expected HOST:PORT of process 0, e.g. "
                      "10.0.0.1:12345 (the same on every process)")
  n, i = given.get("num_processes"), given.get("process_id")
  if n is not None and n < 1:
    raise UserError(f"--num_processes={n}: must be at least 1")
  if i is not None and (i < 0 or (n is not None and i >= n)):
    bound = f"0 .. {n - 1}" if n is not None else "at least 0"
    raise UserError(f"--process_id={i}: must be {bound} (one distinct index per process)")
  if n is not None and i is None or i is not None and n is None:
    raise UserError("--num_processes and --process_id go together: give both (or neither, "
                    "where the cluster tells JAX, e.g. under SLURM)")
  return given


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import jax  # After flag parsing, so --help stays fast.

  from flowinpaint.errors import UserError
  from flowinpaint.train import stages
  from flowinpaint.train import train

  try:
    distributed = distributed_arguments()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if distributed is not None:
    jax.distributed.initialize(**distributed)
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
