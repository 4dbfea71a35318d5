"""Two processes on 127.0.0.1 train configs/tiny.py together, as two hosts would.

Each process has 4 CPU devices (8 in all) and JAX's Gloo collectives between them. The run
trains 2 steps and saves, then a second launch resumes and trains step 3; every parameter and
optimiser state equals those of one process with 8 devices on the same global batches, and each
process read only its own half of every batch.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import tiny
from flowinpaint.train import checkpointing
from flowinpaint.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# One launch (two processes compiling DeepFill v2 on a busy 2-core machine) may take this long;
# past it both are killed, so a hang fails the test instead of blocking CI.
LAUNCH_TIMEOUT_S = float(os.environ.get("FLOWINPAINT_MULTIHOST_TIMEOUT_S", 900))
PROCESSES, LOCAL_DEVICES = 2, 4


def _free_port() -> int:
  """A TCP port nobody listens on now (the OS picks it; the coordinator binds it moments later)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, steps: int, logs, reads) -> None:
  """Runs `main` as PROCESSES processes until all exit; fails with their logs if one fails."""
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(LOCAL_DEVICES),
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  procs, files = [], []
  for i in range(PROCESSES):
    files.append(open(logs / f"steps{steps}_process{i}.log", "w"))
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "tests.train.multihost_worker", str(reads / f"process{i}.txt"),
         "--config", "configs/tiny.py", "--workdir", str(workdir),
         f"--config.num_train_steps={steps}", f"--coordinator_address=127.0.0.1:{port}",
         f"--num_processes={PROCESSES}", f"--process_id={i}"],
        cwd=ROOT, env=env, stdout=files[-1], stderr=subprocess.STDOUT,
        start_new_session=True))  # Its own process group: killed with its children.
  deadline = time.monotonic() + LAUNCH_TIMEOUT_S
  try:
    # Stop waiting as soon as one fails: the other would wait for it at the next collective.
    while (any(p.poll() is None for p in procs) and time.monotonic() < deadline
           and not any(p.returncode for p in procs)):
      time.sleep(0.5)
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    for f in files:
      f.close()
  for i, p in enumerate(procs):
    text = (logs / f"steps{steps}_process{i}.log").read_text()
    assert p.returncode == 0, (f"process {i} of the {steps}-step launch: exit status "
                               f"{p.returncode} (-9: killed after {LAUNCH_TIMEOUT_S:.0f} s)\n"
                               + text[-4000:])


def _assert_same_run(mine, want, scale, what: str) -> float:
  """Integer leaves (step, rng) equal; float leaves equal up to summation order.

  Two processes add the devices' gradients in another order than one process does (Gloo's
  all-reduce against XLA's in-process one), so float leaves differ in their last bits. A leaf may
  differ by at most 1% of how much one training step changes it (`scale`: the run's step 3 minus
  its step 2; seen: 0.02%): a wrong shard, batch or mask changes it by the whole step. Returns
  the largest difference found, as a fraction of that step.
  """
  leaves = jax.tree_util.tree_leaves_with_path(want)
  got, steps = jax.tree.leaves(mine), jax.tree.leaves(scale)
  assert len(leaves) == len(got) == len(steps) > 0, what
  worst = 0.0
  for (path, y), x, d in zip(leaves, got, steps):
    x, y, d = np.asarray(x), np.asarray(y), np.asarray(d)
    name = f"{what}{jax.tree_util.keystr(path)}"
    if not np.issubdtype(y.dtype, np.floating) or not np.abs(d).max(initial=0) > 0:
      np.testing.assert_array_equal(x, y, err_msg=name)
      continue
    step = float(np.abs(d).max())
    error = float(np.abs(x.astype(np.float64) - y).max()) / step
    assert error <= 1e-2, f"{name}: differs by {error:.2g} of one step's change"
    worst = max(worst, error)
  return worst


@pytest.mark.slow
def test_two_processes_train_save_and_resume_as_one(tmp_path):
  together, logs, reads = tmp_path / "together", tmp_path / "logs", tmp_path / "reads"
  logs.mkdir()
  reads.mkdir()
  _launch(together, 2, logs, reads)  # Saves step 2 (both processes take part in the save).
  assert checkpointing.Checkpointer(str(together / "checkpoints")).all_steps() == [2]
  _launch(together, 3, logs, reads)  # Resumes from step 2, trains and saves step 3.
  resumed = [l for l in (logs / "steps3_process1.log").read_text().splitlines()
             if "restoring step 2" in l]
  assert resumed, "the second launch did not resume from step 2"

  # One process with all 8 devices (this one: tests/conftest.py) on the same global batches.
  config = tiny.get_config()
  config.num_train_steps = 3
  alone = tmp_path / "alone"
  train.train_and_evaluate(config, str(alone))
  saved = {(run, step): checkpointing.read_step(str(run / "checkpoints"), step)
           for run in (together, alone) for step in (2, 3)}
  worst = 0.0
  for item in ("generator", "train"):
    change = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                          saved[alone, 3][item], saved[alone, 2][item])
    for step in (2, 3):
      assert saved[together, step]["metadata"]["data_position"] == step
      worst = max(worst, _assert_same_run(saved[together, step][item], saved[alone, step][item],
                                          change, f"step {step} {item}"))
  print(f"largest difference from one process: {worst:.2g} of one step's change")

  # The global batch of step s holds positions 8s .. 8s+7: process p reads 8s+4p .. 8s+4p+3.
  batch = config.batch_size // PROCESSES
  for p in range(PROCESSES):
    read = {int(l) for l in (reads / f"process{p}.txt").read_text().split()}
    own = {8 * s + batch * p + b for s in range(3) for b in range(batch)}
    assert own <= read, f"process {p} did not read {sorted(own - read)}"
    # Prefetching may read ahead, but only this process's half of later batches.
    assert all((g % config.batch_size) // batch == p for g in read), (p, sorted(read))

  # The tools load a model trained on several hosts on this one.
  bundle = checkpointing.load_for_inference(str(together))
  assert bundle.step == 3 and bundle.model_name == "deepfill_v2"
