"""Cheap checks of experiments/gpu_session (no JAX, no GPU): the step scripts parse and begin with
the GPU host's wheel line, the held-out folder is disjoint from the training photos, and the
summary packs a step into at most 8 files (the device tool returns no more)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.path.join(ROOT, "experiments", "gpu_session")
STEPS = sorted(n for n in os.listdir(KIT) if re.match(r"step\d_.*\.sh$", n))
WHEEL_LINE = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "
              "--upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:")


def test_there_are_three_or_four_steps():
  assert 3 <= len(STEPS) <= 4, STEPS


@pytest.mark.parametrize("name", STEPS + ["common.sh", "prepare.sh"])
def test_scripts_parse(name):
  if shutil.which("bash") is None:
    pytest.skip("no bash")
  subprocess.run(["bash", "-n", os.path.join(KIT, name)], check=True)


@pytest.mark.parametrize("name", STEPS)
def test_steps_install_wheels_first_and_use_python3(name):
  text = open(os.path.join(KIT, name)).read()
  code = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
  assert code[0].startswith("cd "), code[0]
  assert WHEEL_LINE in code[2], code[2]  # Inside `if [ "${SMOKE:-0}" != 1 ]`.
  assert "pip install -e" not in text
  assert not re.search(r"(^|[\s(])python\s", text), "the GPU host has python3, not python"
  assert "source experiments/gpu_session/common.sh" in text
  assert text.rstrip().endswith("finish")


def test_heldout_images_are_not_training_images():
  sys.path.insert(0, KIT)
  try:
    import heldout
  finally:
    sys.path.remove(KIT)
  from flowinpaint.data import datasets
  assert not set(heldout.HELD_OUT) & set(datasets.embedded_names())
  assert "cat" not in heldout.HELD_OUT  # skimage's cat is chelsea, a training photo.


def test_summarize_packs_at_most_eight_files(tmp_path):
  from PIL import Image
  raw, out = tmp_path / "raw", tmp_path / "out"
  (raw / "logs").mkdir(parents=True)
  (raw / "images").mkdir()
  for i in range(6):
    Image.fromarray(np.full((32, 48, 3), i * 40, np.uint8)).save(raw / "images" / f"g{i}.png")
  (raw / "tasks.jsonl").write_text(
      json.dumps({"task": "bench_deepfill_v2", "rc": 124, "seconds": 9.0, "limit_s": 9,
                  "timed_out": True}) + "\n" +
      json.dumps({"task": "train", "skipped": True, "left_s": 3}) + "\n")
  # A bench cut short: its JSON is missing, the rows it printed are in its log.
  (raw / "logs" / "bench_deepfill_v2.log").write_text(
      "deepfill_v2 cnum 48 | 1 x NVIDIA H100 (gpu) | JAX 0.11.2\n"
      "config         workload                   dtype        ms/iter     img/s  compile s   "
      "G params\n"
      "deepfill_v2    infer 256x256 batch 16     float32        20.00     800.0       30.1      "
      "4.05M\n")
  (raw / "eval.jsonl").write_text(json.dumps(
      {"name": "telea", "model": "telea", "checkpoint_step": None, "psnr": 25.0,
       "psnr_hole": 20.0, "ssim": 0.8, "ssim_hole": 0.5, "l1_hole": 0.05,
       "seconds_per_image": 0.01, "num": 20, "images": "h", "size": 256,
       "mask_kind": "free_form_and_box", "mask_seed": 2024, "hole_ratio": 0.3}) + "\n")
  (raw / "trainings.txt").write_text(f"ghost\t{tmp_path / 'nowhere'}\n")
  subprocess.run([sys.executable, os.path.join(KIT, "summarize.py"), "step1", str(raw),
                  str(out)], check=True, capture_output=True)
  files = sorted(os.listdir(out))
  assert len(files) <= 8, files
  assert {"table.md", "results.json", "logs.tar.gz", "images.tar"} <= set(files)
  assert len([f for f in files if f.endswith(".png")]) == 4
  table = (out / "table.md").read_text()
  assert "| infer 256x256 batch 16 | float32 | 20.00 | 800.0 | 30.1 | 31.0 | 1.55x |" in table
  assert "no run / no output" in table and "| bench_deepfill_v2 | 124 |" in table
  results = json.loads((out / "results.json").read_text())
  assert results["bench"][0]["img_per_s"] == 800.0
