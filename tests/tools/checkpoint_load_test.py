"""Loading a checkpoint for inference: quiet when it is fine, one `error:` line when it is not
(a damaged file, a diverged run's NaN weights)."""

import logging
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from configs import tiny
from flowinpaint.errors import UserError
from flowinpaint.train import checkpointing
from tests.tools import cli
from tests.tools.conftest import save_random_checkpoint


def test_loading_logs_no_warnings(deepfill_checkpoint, caplog):
  with caplog.at_level(logging.INFO):
    bundle = checkpointing.load_for_inference(deepfill_checkpoint)
  assert bundle.model_name == "deepfill_v2"
  noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert not noisy, noisy


def _nan_checkpoint(workdir):
  def poison(state):
    params = state.g_vars["params"]
    first = jax.tree.leaves(params)[0]
    first[...] = np.nan  # One NaN leaf, as a diverged run leaves them.
    return state
  return save_random_checkpoint(workdir, tiny.get_config(), edit=poison)


def test_nonfinite_weights_are_refused(tmp_path, capsys):
  path = _nan_checkpoint(tmp_path / "nan")
  with pytest.raises(UserError, match=r"step 1 holds a generator with [\d,]+ NaN or Inf values"):
    checkpointing.load_for_inference(path)
  from flowinpaint import inpaint
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in.png")
  Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
  assert inpaint.main(["--checkpoint", path, "--image", str(tmp_path / "in.png"), "--mask",
                       str(tmp_path / "m.png"), "--output", str(tmp_path / "out.png")]) == 2
  err = capsys.readouterr().err
  assert [l for l in err.splitlines() if l.startswith("error:")] and "NaN or Inf" in err
  assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_a_truncated_file_is_one_error_line_every_time(deepfill_checkpoint, tmp_path):
  copy = tmp_path / "ckpt"
  shutil.copytree(deepfill_checkpoint, copy)
  step = copy / "checkpoints" / "1" / "generator"
  data = max((os.path.join(d, f) for d, _, files in os.walk(step) for f in files),
             key=os.path.getsize)  # The file that holds the weights.
  with open(data, "r+b") as f:
    f.truncate(10)
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in.png")
  Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
  for i in range(2):  # The damage used to show one way in one run, another in the next.
    res = cli.run_module("flowinpaint.inpaint", "--checkpoint", copy, "--image",
                         tmp_path / "in.png", "--mask", tmp_path / "m.png", "--output",
                         tmp_path / f"out{i}.png")
    cli.assert_user_error(res, "step 1 is not a readable flowinpaint checkpoint", "truncated")
    assert "Event loop" not in res.stderr and "WARNING" not in res.stderr, res.stderr


def test_a_failed_restore_silences_only_the_reads_it_orphans(caplog):
  # After a failed restore, asyncio may log the other failed reads' tasks as 'Task exception was
  # never retrieved' with a traceback (CI saw it under the truncated-file test above).
  asyncio_log = logging.getLogger("asyncio")
  saved = list(asyncio_log.filters)
  try:
    checkpointing._silence_orphaned_reads()
    checkpointing._silence_orphaned_reads()  # Every restore calls it: the filter is added once.
    assert sum(isinstance(f, checkpointing._UnretrievedTaskFilter)
               for f in asyncio_log.filters) == 1
    with caplog.at_level(logging.ERROR, logger="asyncio"):
      asyncio_log.error("Task exception was never retrieved\nfuture: <Task finished>")
      asyncio_log.error("Task was destroyed but it is pending!\ntask: <Task pending>")
      asyncio_log.error("_GatheringFuture exception was never retrieved\nfuture: <...>")
      asyncio_log.error("Future exception was never retrieved\nfuture: <Future finished>")
      asyncio_log.error("Unclosed client session")
    assert [r.getMessage() for r in caplog.records] == ["Unclosed client session"]
  finally:
    asyncio_log.filters[:] = saved


def test_orphaned_reads_are_recognised_and_nothing_else():
  # Unraisable errors a failed restore leaves behind: orbax's read coroutines ('Exception
  # ignored in: <coroutine object _read_array_index_and_device_put>', seen in CI) and callbacks
  # into a closed loop. Anything else still reaches the previous hook.
  import types

  async def read():
    pass

  def unraisable(obj, error):
    return types.SimpleNamespace(object=obj, exc_value=error)

  ours = read()
  try:
    orbax_code = ours.cr_code.replace(
        co_filename=os.path.join("site-packages", "orbax", "checkpoint", "serialization.py"))
    orbax_coroutine = types.SimpleNamespace(cr_code=orbax_code)
    assert checkpointing._is_orphaned_read(unraisable(orbax_coroutine, Exception("read")))
    assert checkpointing._is_orphaned_read(
        unraisable(None, RuntimeError("Event loop is closed")))
    assert not checkpointing._is_orphaned_read(unraisable(ours, Exception("read")))
    assert not checkpointing._is_orphaned_read(unraisable(None, RuntimeError("other")))
  finally:
    ours.close()
