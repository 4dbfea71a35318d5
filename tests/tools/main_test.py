"""End to end: train DeepFill v2 with `flowinpaint.main`, then use the checkpoint in the tools."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.tools import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args, timeout=600):
  return cli.run_module(module, *args, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def training(tmp_path_factory):
  """(workdir, the finished `main` process: its console output)."""
  path = tmp_path_factory.mktemp("run")
  proc = _run("flowinpaint.main", "--config", "configs/tiny.py", "--workdir", str(path),
              "--config.num_train_steps=2", "--config.eval_every_steps=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return path, proc


@pytest.fixture(scope="module")
def workdir(training):
  return training[0]


@pytest.mark.slow
def test_main_says_what_it_is_doing_in_a_few_lines(training):
  path, proc = training
  console = proc.stdout + proc.stderr
  # Each slow start-up phase gets a line as it starts and its time as it ends.
  for phase in ("initialising deepfill_v2 (compiling its init)",
                "compiling the train step (joint phase) and running step 1",
                "compiling the evaluation and evaluating step 2"):
    assert f"{phase}..." in console and f"{phase}: done in " in console, phase
  summary = [l for l in console.splitlines() if "] parameters: generator " in l]
  assert len(summary) == 1 and "discriminator " in summary[0], summary
  assert str(path / "parameters.txt") in summary[0]
  # The tables are in the workdir, not on the console.
  tables = (path / "parameters.txt").read_text()
  assert "generator parameters:" in tables and "discriminator parameters:" in tables
  assert "| Name" in tables and "| Name" not in console and "+---" not in console
  assert len(console.splitlines()) < 40, console
  assert "libtpu" not in console and "Unable to initialize backend" not in console


@pytest.mark.slow
def test_main_trains_and_leaves_every_artifact(workdir):
  names = set(os.listdir(workdir))
  assert {"checkpoints", "tensorboard", "samples", "eval_metrics.json", "metrics.jsonl",
          "config.json"} <= names
  assert os.listdir(workdir / "tensorboard")
  with open(workdir / "eval_metrics.json") as f:
    scores = json.load(f)
  assert scores["step"] == 2 and np.isfinite(scores["psnr"])
  grid = np.asarray(Image.open(workdir / "samples" / "step_0000002.png"))
  assert grid.shape == (2 * 32, 4 * 32, 3)


@pytest.mark.slow
def test_inpaint_with_the_trained_checkpoint_on_an_odd_size(workdir, tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
  mask = np.zeros((45, 61), np.uint8)
  mask[10:30, 20:44] = 255
  Image.fromarray(image).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "mask.png")
  proc = _run("flowinpaint.inpaint", "--checkpoint", str(workdir), "--image",
              str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--output",
              str(tmp_path / "out.png"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = np.asarray(Image.open(tmp_path / "out.png"))
  assert out.shape == image.shape
  outside = mask == 0
  np.testing.assert_array_equal(out[outside], image[outside])
  assert not np.array_equal(out[~outside], image[~outside])


@pytest.mark.slow
def test_evaluate_the_trained_checkpoint(workdir, tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  rng = np.random.default_rng(1)
  for i in range(2):
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  proc = _run("flowinpaint.evaluate", "--checkpoint", str(workdir), "--images", str(folder),
              "--size", "32", "--output", str(tmp_path / "scores.json"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "scores.json") as f:
    scores = json.load(f)
  text = json.dumps(scores)
  for key in ("psnr", "ssim", "l1_hole", "hole_ratio", "seconds_per_image"):
    assert key in text


def test_main_reports_bad_knobs_in_one_line(tmp_path):
  proc = _run("flowinpaint.main", "--config", "configs/tiny.py", "--workdir", str(tmp_path),
              "--config.image_size=30")
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert "error: image_size=30 must be a multiple of 8 for deepfill_v2" in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--num_processes=2"], "--num_processes and --process_id go together"),
    (["--coordinator_address=10.0.0.1", "--num_processes=2", "--process_id=0"],
     "--coordinator_address=10.0.0.1: expected HOST:PORT of process 0"),
    (["--num_processes=2", "--process_id=2"], "--process_id=2: must be 0 .. 1"),
    (["--num_processes=0", "--process_id=0"], "--num_processes=0: must be at least 1"),
])
def test_multi_host_flags_are_checked_before_anything_starts(tmp_path, flags, message):
  proc = _run("flowinpaint.main", "--config", "configs/tiny.py", "--workdir",
              str(tmp_path / "run"), *flags)
  cli.assert_user_error(proc, message)
  assert not os.path.exists(tmp_path / "run")


def test_no_tpu_line_on_machines_without_one():
  import logging
  from flowinpaint import main

  def record(path, level, message):
    return logging.LogRecord("jax._src.xla_bridge", level, path, 1, message, None, None)
  quiet = main._QuietLibraries()
  bridge = "/venv/site-packages/jax/_src/xla_bridge.py"
  assert not quiet.filter(record(bridge, logging.INFO, "Unable to initialize backend 'tpu': "
                                 "INTERNAL: Failed to open libtpu.so"))
  assert quiet.filter(record(bridge, logging.WARNING, "Unable to initialize backend 'cuda'"))
  assert quiet.filter(record("/repo/flowinpaint/train/train.py", logging.INFO, "step 2/4"))


def test_divergence_is_one_error_line_and_status_2(tmp_path, monkeypatch, capsys):
  from absl import flags
  from flowinpaint import main
  from flowinpaint.train import divergence, train

  def diverge(config, workdir):
    raise divergence.losses_error(["g_loss"], 0, 2, config, has_discriminator=True,
                                  latest_checkpoint=None)
  monkeypatch.setattr(train, "train_and_evaluate", diverge)
  flags.FLAGS(["main", "--config", os.path.join(REPO, "configs", "tiny.py"), "--workdir",
               str(tmp_path)])
  try:
    with pytest.raises(SystemExit) as exited:
      main.main(["main"])
  finally:
    flags.FLAGS.unparse_flags()
  assert exited.value.code == 2
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "training diverged: g_loss became NaN or Inf" in lines[0], err
  assert "Traceback" not in err
