"""`--pretrained NAME` in inpaint, evaluate, serve and remove: the authors' weights by name.

The release here is a random DeepFill v2 port state dict (tests/tools/convert_test.py) served by a
loopback HTTP server and described in the weights folder's catalogue.json, as a mirror would be.
"""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.pretrained_test import serve_bytes
from tests.tools import cli
from tests.tools.convert_test import random_state_dict, save_pth


def _photo_and_mask(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
  mask = np.zeros((40, 56), np.uint8)
  mask[10:25, 20:40] = 255
  Image.fromarray(rgb).save(tmp_path / "photo.png")
  Image.fromarray(mask).save(tmp_path / "mask.png")
  return rgb, mask > 127


@pytest.mark.parametrize("tool,args", [
    ("flowinpaint.inpaint", ["--image", "photo.png", "--mask", "mask.png", "--output", "o.png"]),
    ("flowinpaint.evaluate", ["--images", "."]),
])
def test_missing_release_is_one_error_line(tmp_path, tool, args):
  _photo_and_mask(tmp_path)
  res = cli.run_module(tool, "--pretrained", "glcic_places2", "--weights-dir",
                       str(tmp_path / "w"), *args, cwd=tmp_path)
  cli.assert_user_error(res, "completionnet_places2.t7", str(tmp_path / "w" / "glcic_places2"),
                        "siggraph2017_inpainting", "--download")
  assert not os.path.exists(tmp_path / "o.png")


def test_remove_and_serve_take_pretrained_too(tmp_path):
  res = cli.run_module("flowinpaint.serve", "--pretrained", "edge_connect_celeba",
                       "--weights-dir", str(tmp_path), "--port", "0")
  cli.assert_user_error(res, "EdgeModel_gen.pth", "knazeri/edge-connect")
  frames = tmp_path / "frames"
  frames.mkdir()
  for i in range(3):
    Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(frames / f"{i:03d}.png")
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "m.png")
  res = cli.run_module("flowinpaint.remove", "--video", str(frames), "--masks",
                       str(tmp_path / "m.png"), "--output", str(tmp_path / "out"),
                       "--pretrained", "nope", "--weights-dir", str(tmp_path))
  cli.assert_user_error(res, "unknown pretrained model 'nope'")
  res = cli.run_module("flowinpaint.remove", "--video", str(frames), "--masks",
                       str(tmp_path / "m.png"), "--output", str(tmp_path / "out"),
                       "--pretrained", "glcic_celeba", "--fill-method", "ns")
  cli.assert_user_error(res, "--pretrained and --fill-method")


@pytest.mark.slow
def test_inpaint_downloads_converts_and_reuses_a_release(tmp_path):
  rgb, hole = _photo_and_mask(tmp_path)
  save_pth(random_state_dict(), tmp_path / "g.pth")
  body = (tmp_path / "g.pth").read_bytes()
  weights = tmp_path / "weights"
  weights.mkdir()
  with serve_bytes({"g.pth": body}) as url:
    (weights / "catalogue.json").write_text(json.dumps([{
        "name": "my_mirror", "system": "DeepFill v2", "dataset": "test",
        "converter": "deepfill_v2_pytorch", "page": "https://example.org", "licence": "test",
        "src": "g.pth", "files": [{"name": "g.pth", "url": f"{url}/g.pth",
                                   "sha256": hashlib.sha256(body).hexdigest()}]}]))
    args = ["--pretrained", "my_mirror", "--weights-dir", str(weights), "--image", "photo.png",
            "--mask", "mask.png"]
    res = cli.run_module("flowinpaint.inpaint", *args, "--output", "a.png", cwd=tmp_path)
    cli.assert_user_error(res, "g.pth", "--download")  # Nothing is fetched unless asked.
    res = cli.run_module("flowinpaint.inpaint", *args, "--output", "a.png", "--download",
                         cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr
    assert "downloading" in res.stderr and "converting my_mirror" in res.stderr
  assert (weights / "my_mirror" / "g.pth").read_bytes() == body
  out = np.asarray(Image.open(tmp_path / "a.png"))
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  # Second use: the cached conversion, no server needed.
  res = cli.run_module("flowinpaint.inpaint", *args, "--output", "b.png", cwd=tmp_path,
                       timeout=900)
  assert res.returncode == 0, res.stderr
  assert "converting" not in res.stderr and "downloading" not in res.stderr
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), out)
