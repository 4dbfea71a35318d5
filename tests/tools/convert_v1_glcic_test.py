"""`convert --from deepfill_v1_tf` and `--from glcic_t7`, then `inpaint --checkpoint` on the result.

The source files are written without TensorFlow or Lua (tests/weights/tf_bundle.py,
tests/weights/torch7_writer.py) at the authors' layouts; tests/weights/ checks the numerics
against the authors' graph (DeepFill v1) and a torch rebuild (GLCIC). Here: the command line
end to end, the checkpoint it writes, and the inpainting tool on it.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.tools import cli
from tests.weights import deepfill_v1_release as R
from tests.weights import glcic_official as G
from tests.weights import torch7_writer as W
from tests.tools.photos import gradient_photo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _photo(h, w, seed=0):
  return gradient_photo(h, w, seed, noise=8)


def _inpaint_files(tmp_path, h, w):
  rgb = _photo(h, w)
  hole = np.zeros((h, w), bool)
  hole[h // 4:h // 2 + 5, w // 3:3 * w // 4] = True
  Image.fromarray(rgb).save(tmp_path / "in.png")
  Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
  return rgb, hole


def _to_uint8(x):
  return np.clip(np.rint((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_deepfill_v1_release_to_checkpoint_to_inpaint(tmp_path):
  from flowinpaint.inference import ModelInpainter
  from flowinpaint.models.deepfill_v1 import Generator
  from flowinpaint.weights import deepfill_v1_tf

  release = R.random_generator(3)
  release.update(R.random_critics(3, (32, 32), (64, 64)))
  folder = R.write_release(str(tmp_path / "release_places2"), R.with_optimizer_slots(release))
  out = tmp_path / "places2"
  res = cli.run_module("flowinpaint.convert", "--from", "deepfill_v1_tf", folder, "--to", out,
                       cwd=ROOT, timeout=600)
  assert res.returncode == 0, res.stderr
  assert "DeepFill v1" in res.stdout and f"--checkpoint {out}" in res.stdout
  config = json.load(open(out / "config.json"))
  assert config["model"]["name"] == "deepfill_v1" and config["model"]["tf_resize"] is True
  # The critics' dense layers fixed the training sizes: 64 images, 32 patches (half: default).
  assert (config["image_size"], config["model"]["local_size"]) == (64, 0)

  inpainter = ModelInpainter.from_checkpoint(str(out))
  g_vars = deepfill_v1_tf.convert_generator(release)
  np.testing.assert_array_equal(
      np.asarray(inpainter.variables["params"]["refine"]["pmconv1"]["kernel"]),
      g_vars["params"]["refine"]["pmconv1"]["kernel"])

  rgb, hole = _inpaint_files(tmp_path, 48, 64)
  res = cli.run_module("flowinpaint.inpaint", "--checkpoint", out, "--image",
                       tmp_path / "in.png", "--mask", tmp_path / "mask.png", "--output",
                       tmp_path / "out.png", cwd=ROOT, timeout=600)
  assert res.returncode == 0, res.stderr
  got = np.asarray(Image.open(tmp_path / "out.png"))
  np.testing.assert_array_equal(got[~hole], rgb[~hole])
  # Inside the hole: the converted release's generator, computed here directly.
  x = rgb[None].astype(np.float32) / 127.5 - 1
  m = hole[None, ..., None].astype(np.float32)
  want = _to_uint8(Generator(tf_resize=True).apply(g_vars, x, m, train=False)["output"])[0]
  assert np.abs(got[hole].astype(int) - want[hole].astype(int)).max() <= 1
  assert np.abs(got[hole].astype(int) - rgb[hole].astype(int)).mean() > 5  # it filled something


@pytest.mark.slow
def test_glcic_t7_to_checkpoint_to_inpaint_with_postprocess(tmp_path):
  from flowinpaint.inference import ModelInpainter
  from flowinpaint.models.glcic import CompletionNetwork
  from flowinpaint.weights import glcic_t7

  layers = G.random_modules(7)
  model = tmp_path / "completionnet_places2.t7"
  W.save(str(model), G.to_t7(layers))
  out = tmp_path / "glcic"
  # The short config's narrow discriminators keep the fine-tuning state small (the default
  # config's are the paper's 45 M weights); the completion network is the file's either way.
  res = cli.run_module("flowinpaint.convert", "--from", "glcic_t7", model, "--to", out,
                       "--config", os.path.join(ROOT, "configs", "glcic_short.py"), cwd=ROOT,
                       timeout=600)
  assert res.returncode == 0, res.stderr
  assert "GLCIC, official Torch7 network (mean 0.4560, 0.4472, 0.4155)" in res.stdout
  assert "no discriminators" in res.stderr
  config = json.load(open(out / "config.json"))["model"]
  assert (config["name"], config["variant"], config["width"]) == ("glcic", "official", 1.0)
  np.testing.assert_allclose(config["fill_value"], 2 * np.asarray(G.MEAN) - 1, rtol=1e-6)
  assert config["fill_from_data_mean"] is False

  inpainter = ModelInpainter.from_checkpoint(str(out))
  g_vars, mean = glcic_t7.read(str(model))
  np.testing.assert_array_equal(np.asarray(inpainter.variables["batch_stats"]["bn7"]["var"]),
                                g_vars["batch_stats"]["bn7"]["var"])

  rgb, hole = _inpaint_files(tmp_path, 44, 60)
  args = ("--checkpoint", out, "--image", tmp_path / "in.png", "--mask", tmp_path / "mask.png")
  res = cli.run_module("flowinpaint.inpaint", *args, "--output", tmp_path / "out.png",
                       cwd=ROOT, timeout=600)
  assert res.returncode == 0, res.stderr
  got = np.asarray(Image.open(tmp_path / "out.png"))
  np.testing.assert_array_equal(got[~hole], rgb[~hole])
  x = rgb[None].astype(np.float32) / 127.5 - 1
  m = hole[None, ..., None].astype(np.float32)
  net = CompletionNetwork(variant="official", fill_value=tuple(2 * mean - 1))
  want = _to_uint8(net.apply(g_vars, x, m, train=False)["output"])[0]
  assert np.abs(got[hole].astype(int) - want[hole].astype(int)).max() <= 1

  res = cli.run_module("flowinpaint.inpaint", *args, "--output", tmp_path / "post.png",
                       "--postprocess", "glcic", cwd=ROOT, timeout=600)
  assert res.returncode == 0, res.stderr
  post = np.asarray(Image.open(tmp_path / "post.png"))
  np.testing.assert_array_equal(post[~hole], rgb[~hole])
  assert np.any(post[hole] != got[hole])  # Telea + Poisson blending changed the fill


@pytest.mark.parametrize("fmt,content,message,extra", [
    ("glcic_t7", b"<html>Not Found</html>", "is not a Torch7 file this reader can read", ()),
    ("glcic_t7", None, "does not exist", ()),
    ("deepfill_v1_tf", None, "does not exist", ()),
    ("glcic_t7", None, "--variant is for DeepFill v2", ("--variant", "tf")),
    ("deepfill_v1_tf", None, "is for model 'deepfill_v2', not deepfill_v1",
     ("--config", os.path.join(ROOT, "configs", "deepfill_v2.py"))),
])
def test_errors_are_one_line(tmp_path, fmt, content, message, extra):
  path = tmp_path / "model.t7"
  if content is not None:
    path.write_bytes(content)
  res = cli.run_module("flowinpaint.convert", "--from", fmt, path, "--to", tmp_path / "out",
                       *extra, cwd=ROOT)
  cli.assert_user_error(res, message)
  assert not (tmp_path / "out").exists()


def test_deepfill_v2_release_given_as_v1_names_the_right_format(tmp_path):
  from tests.weights import deepfill_release
  folder = deepfill_release.write_release(str(tmp_path / "release"),
                                          deepfill_release.random_generator())
  res = cli.run_module("flowinpaint.convert", "--from", "deepfill_v1_tf", folder, "--to",
                       tmp_path / "out", cwd=ROOT)
  cli.assert_user_error(res, "use --from deepfill_v2_tf")
