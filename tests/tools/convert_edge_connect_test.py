"""`convert --from edge_connect_pth FOLDER`, then `inpaint --checkpoint` reproduces the authors'
result (tests/weights/data/edge_connect.npz), with `--save-edges`; the converter's errors."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from flowinpaint import convert
from tests.tools import cli
from tests.weights import edge_connect_release

ROOT = cli.ROOT
FIXTURE = os.path.join(ROOT, "tests", "weights", "data", "edge_connect.npz")


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def release(fixture, tmp_path_factory) -> str:
  folder = tmp_path_factory.mktemp("places2")
  edge_connect_release.write_release(str(folder), int(fixture["seed"]))
  return str(folder)


@pytest.mark.slow
def test_convert_then_inpaint_reproduces_the_authors_result(fixture, release, tmp_path):
  out = tmp_path / "ec"
  res = cli.run_module("flowinpaint.convert", "--from", "edge_connect_pth", release, "--to",
                       out, cwd=ROOT, timeout=900)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "EdgeConnect, edge + inpainting generators" in res.stdout
  config = json.loads((out / "config.json").read_text())
  assert config["model"]["name"] == "edge_connect"
  assert config["model"]["edge_spectral_norm"] is False and config["model"]["merge_edges"]
  assert "stages" not in config

  image, hole = fixture["image"], fixture["mask"] > 0
  Image.fromarray(image).save(tmp_path / "in.png")
  Image.fromarray(fixture["mask"]).save(tmp_path / "mask.png")
  res = cli.run_module("flowinpaint.inpaint", "--checkpoint", out, "--image",
                       tmp_path / "in.png", "--mask", tmp_path / "mask.png", "--output",
                       tmp_path / "out.png", "--save-edges", tmp_path / "edges", cwd=ROOT,
                       timeout=900)
  assert res.returncode == 0, res.stderr[-3000:]
  got = np.asarray(Image.open(tmp_path / "out.png"))
  np.testing.assert_array_equal(got[~hole], image[~hole])
  # The authors' eval()/sample() result (merged edges), at uint8: the same up to rounding.
  want = np.rint(fixture["inpaint_merged"] * 255.0)
  diff = np.abs(got.astype(np.int32) - want)[hole]
  assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
  edges = np.asarray(Image.open(tmp_path / "edges" / "in_edges.png"))
  assert edges.shape == hole.shape  # grayscale, the image's size
  m = fixture["mask_tensor"]
  merged = fixture["edge_output"] * m + fixture["canny_edges"] * (1 - m)
  assert np.abs(edges.astype(np.int32) - np.rint(merged * 255)).max() <= 1
  np.testing.assert_array_equal(edges[~hole] > 127, fixture["canny_edges"][~hole] > 0.5)


def test_an_inpainting_generator_alone_becomes_edge_connect_inpaint(release, tmp_path):
  folder = tmp_path / "only"
  folder.mkdir()
  for name in ("InpaintingModel_gen.pth", "InpaintingModel_dis.pth"):
    os.symlink(os.path.join(release, name), folder / name)
  converted = convert._importer("edge_connect_pth")(str(folder), convert.Options(),
                                                    "edge_connect_pth")
  assert converted.config.model.name == "edge_connect_inpaint"
  assert list(converted.g_vars["params"]) == ["inpaint"]
  assert converted.source["discriminator"] == "converted"
  assert converted.source["iterations"] == {"inpaint": edge_connect_release.ITERATION}
  assert converted.config.loss.feature_recipe == "edge_connect"  # stage 2's losses
  assert set(converted.d_vars) == {"params", "batch_stats"}
  # A file of the folder names the folder.
  again = convert._importer("edge_connect_pth")(str(folder / "InpaintingModel_gen.pth"),
                                                convert.Options(), "edge_connect_pth")
  assert again.config.model.name == "edge_connect_inpaint"


def test_errors_are_one_line(release, tmp_path, capsys):
  def error(*args) -> str:
    assert convert.main(["--from", "edge_connect_pth", *map(str, args)]) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]

  empty = tmp_path / "empty"
  empty.mkdir()
  msg = error(empty, "--to", tmp_path / "o1")
  assert "no EdgeConnect generator" in msg and "EdgeModel_gen.pth" in msg
  assert "does not exist" in error(tmp_path / "missing", "--to", tmp_path / "o2")
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / "InpaintingModel_gen.pth").write_bytes(b"not a checkpoint")
  assert "InpaintingModel_gen.pth" in error(broken, "--to", tmp_path / "o3")
  swapped = tmp_path / "swapped"
  swapped.mkdir()
  shutil.copy(os.path.join(release, "EdgeModel_dis.pth"), swapped / "InpaintingModel_gen.pth")
  assert "no 'generator' entry" in error(swapped, "--to", tmp_path / "o4")
  assert not any(os.path.exists(tmp_path / f"o{i}") for i in range(1, 5))
