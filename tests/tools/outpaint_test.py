"""Outpainting through the tools: `inpaint --extend / --extend-to`, the 'outpaint' mask kind in
training and `evaluate --mask-kind outpaint`."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import deepfill_v2
from configs import deepfill_v2_outpaint
from tests.tools import cli
from tests.tools.photos import gradient_photo

REPO = cli.ROOT


def run(*args, timeout=600):
  return cli.run_module("flowinpaint.inpaint", *args, cwd=REPO, timeout=timeout)


def test_outpaint_config_is_deepfill_v2_with_outpaint_masks():
  config, base = deepfill_v2_outpaint.get_config(), deepfill_v2.get_config()
  assert config.data.mask_kind == "outpaint"
  config.data.mask_kind = base.data.mask_kind
  assert config.to_dict() == base.to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("extend, margins", [
    ("12,0,0,0", (12, 0, 0, 0)),
    ("0,7,0,0", (0, 7, 0, 0)),
    ("0,0,20%,0", (0, 0, 11, 0)),
    ("0,0,0,50%", (0, 0, 0, 20)),
    ("5", (5, 5, 5, 5)),
])
def test_extend_sides_canvas_and_photo_bit_identical(tmp_path, extend, margins):
  img = gradient_photo(40, 53)
  Image.fromarray(img).save(tmp_path / "in.png")
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--extend", extend, "--output",
            tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  left, top, right, bottom = margins
  out = np.asarray(Image.open(tmp_path / "out.png"))
  assert out.shape == (40 + top + bottom, 53 + left + right, 3)
  np.testing.assert_array_equal(out[top:top + 40, left:left + 53], img)
  assert f"{53 + left + right}x{40 + top + bottom}" in res.stdout


@pytest.mark.slow
def test_extend_to_aspect_with_alpha_and_a_mask_in_steps(tmp_path):
  img = gradient_photo(30, 40)
  alpha = np.random.default_rng(2).integers(0, 256, (30, 40), dtype=np.uint8)
  Image.fromarray(np.dstack([img, alpha]), "RGBA").save(tmp_path / "in.png")
  mask = np.zeros((30, 40), np.uint8)
  mask[10:15, 10:20] = 255
  Image.fromarray(mask).save(tmp_path / "m.png")
  res = run("--method", "ns", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--extend-to", "16:9", "--extend-step", "0.1", "--output", tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  out = np.asarray(Image.open(tmp_path / "out.png"))
  # 16:9 of a 30 px tall photo is 53 px wide: 6 left, 7 right, grown 4 px per step at most.
  assert out.shape == (30, 53, 4) and "in 2 steps" in res.stdout
  keep = mask <= 127
  np.testing.assert_array_equal(out[:, 6:46, :3][keep], img[keep])
  assert not np.array_equal(out[:, 6:46, :3][~keep], img[~keep])
  np.testing.assert_array_equal(out[:, 6:46, 3], alpha)
  assert (out[:, :6, 3] == 255).all() and (out[:, 46:, 3] == 255).all()  # Painted = opaque.


@pytest.mark.slow
def test_extend_a_folder_without_masks(tmp_path):
  folder = tmp_path / "photos"
  folder.mkdir()
  for i, (h, w) in enumerate([(20, 30), (25, 25)]):
    Image.fromarray(gradient_photo(h, w, i)).save(folder / f"p{i}.png")
  res = run("--method", "telea", "--image", folder, "--extend", "10%", "--output",
            tmp_path / "out")
  assert res.returncode == 0, res.stderr
  assert Image.open(tmp_path / "out" / "p0.png").size == (36, 24)
  assert Image.open(tmp_path / "out" / "p1.png").size == (31, 31)


@pytest.mark.slow
def test_extend_errors(tmp_path):
  Image.fromarray(gradient_photo(20, 20)).save(tmp_path / "in.png")
  Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "m.png")
  base = ["--method", "telea", "--image", tmp_path / "in.png", "--output", tmp_path / "o.png"]
  cli.assert_user_error(run(*base), "--mask is required", "--extend")
  cli.assert_user_error(run(*base, "--extend", "1,2,3"), "--extend", "3 values")
  cli.assert_user_error(run(*base, "--extend", "x%"), "--extend", "percentage")
  cli.assert_user_error(run(*base, "--extend-to", "wide"), "--extend-to", "aspect ratio")
  cli.assert_user_error(run(*base, "--extend", "4", "--extend-to", "1:1"), "not allowed")
  cli.assert_user_error(run(*base, "--extend", "4", "--feather", "3"), "--feather",
                        "--extend")
  cli.assert_user_error(run(*base, "--extend", "4", "--save-edges", tmp_path / "e"),
                        "--save-edges", "--extend")
  cli.assert_user_error(run(*base, "--extend", "4", "--extend-step", "-1"), "--extend-step")
  cli.assert_user_error(run(*base, "--extend", "4", "--max-pixels", "500"), "28x28",
                        "--max-pixels")
  assert not (tmp_path / "o.png").exists()


@pytest.fixture(scope="module")
def outpaint_run(tmp_path_factory):
  """DeepFill v2 (tiny) trained two steps on 'outpaint' masks by the trainer."""
  path = tmp_path_factory.mktemp("outpaint_run")
  proc = cli.run_module("flowinpaint.main", "--config", "configs/tiny.py", "--workdir", path,
                        "--config.num_train_steps=2", "--config.eval_every_steps=2",
                        "--config.data.mask_kind=outpaint", cwd=REPO, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return path


@pytest.mark.slow
def test_a_model_trained_on_outpaint_masks_extends_through_the_tools(outpaint_run, tmp_path):
  with open(os.path.join(outpaint_run, "config.json")) as f:
    assert "outpaint" in f.read()
  img = gradient_photo(45, 61)
  Image.fromarray(img).save(tmp_path / "in.png")
  res = run("--checkpoint", outpaint_run, "--image", tmp_path / "in.png", "--extend",
            "8,0,30,6", "--output", tmp_path / "out.png", timeout=900)
  assert res.returncode == 0, res.stderr[-3000:]
  out = np.asarray(Image.open(tmp_path / "out.png"))
  assert out.shape == (51, 99, 3)
  np.testing.assert_array_equal(out[0:45, 8:69], img)
  folder = tmp_path / "eval"
  folder.mkdir()
  Image.fromarray(img).save(folder / "a.png")
  res = cli.run_module("flowinpaint.evaluate", "--checkpoint", outpaint_run, "--images", folder,
                       "--size", 32, "--num", 3, "--mask-kind", "outpaint", "--output",
                       tmp_path / "scores.json", cwd=REPO, timeout=900)
  assert res.returncode == 0, res.stderr[-3000:]
  scores = json.loads((tmp_path / "scores.json").read_text())
  assert scores["mask_kind"] == "outpaint" and 0.05 < scores["hole_ratio"] < 0.7
