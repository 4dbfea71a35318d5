"""End to end: EdgeConnect's three stages trained with `flowinpaint.main` (configs/edge_connect_tiny
.py), then the chain's checkpoint in `inpaint` and `evaluate` with --save-edges; the option's
errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from skimage import color, data, feature

from tests.tools import cli

ROOT = cli.ROOT


def _run(module, *args, timeout=900):
  return cli.run_module(module, *args, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
  path = tmp_path_factory.mktemp("edge_connect_run")
  proc = _run("flowinpaint.main", "--config", "configs/edge_connect_tiny.py", "--workdir", path,
              "--config.num_train_steps=2", "--config.eval_every_steps=2", timeout=3600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return path


def _photo():
  """A 36 x 48 crop of the astronaut (a multiple of 4: the tool does not pad it)."""
  return data.astronaut()[40:76, 180:228].copy()


@pytest.mark.slow
def test_the_chain_trains_three_stages_and_hands_g1_on(chain):
  import jax
  from flowinpaint.train import checkpointing
  assert json.loads((chain / "stages.json").read_text())["stages"] == ["edge", "inpaint",
                                                                       "joint"]
  for stage in ("edge", "inpaint", "joint"):
    scores = json.loads((chain / stage / "eval_metrics.json").read_text())
    assert scores["step"] == 2 and np.isfinite(scores["psnr"]), stage
  edge_log = [json.loads(l) for l in (chain / "edge" / "metrics.jsonl").read_text().splitlines()]
  trained = [r for r in edge_log if "train/feature_matching_loss" in r]
  assert trained and trained[-1]["train/feature_matching_loss"] > 0
  assert trained[-1]["train/recon_loss"] == 0.0  # G1 has no L1
  inpaint_log = (chain / "inpaint" / "metrics.jsonl").read_text()
  assert '"train/recon_loss"' in inpaint_log
  # Stage 3 started from both stages; G1 (frozen) is stage 1's, spectral-norm state included.
  g1 = checkpointing.load_for_inference(str(chain / "edge")).variables
  joint = checkpointing.load_for_inference(str(chain)).variables  # a chain: its last stage
  assert joint["params"].keys() == {"edge", "inpaint"}
  for collection in ("params", "batch_stats"):
    for a, b in zip(jax.tree.leaves(g1[collection]["edge"]),
                    jax.tree.leaves(joint[collection]["edge"])):
      np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_inpaint_with_the_chain_writes_its_edges(chain, tmp_path):
  image = _photo()
  h, w = image.shape[:2]
  hole = np.zeros((h, w), bool)
  hole[10:24, 14:34] = True
  Image.fromarray(image).save(tmp_path / "in.png")
  Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
  proc = _run("flowinpaint.inpaint", "--checkpoint", chain, "--image", tmp_path / "in.png",
              "--mask", tmp_path / "mask.png", "--output", tmp_path / "out.png",
              "--save-edges", tmp_path / "edges")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "in_edges.png" in proc.stdout
  out = np.asarray(Image.open(tmp_path / "out.png"))
  np.testing.assert_array_equal(out[~hole], image[~hole])
  assert not np.array_equal(out[hole], image[hole])
  edges = Image.open(tmp_path / "edges" / "in_edges.png")
  assert edges.mode == "L" and edges.size == (w, h)
  edges = np.asarray(edges)
  # Outside the hole: the Canny edges (sigma 2) of the known pixels, as skimage computes them.
  want = feature.canny(color.rgb2gray(image), sigma=2.0, mask=~hole)
  assert want.sum() > 20
  np.testing.assert_array_equal(edges[~hole], np.where(want, 255, 0)[~hole])


@pytest.mark.slow
def test_evaluate_with_the_chain_writes_edges(chain, tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  for i in range(2):
    Image.fromarray(np.roll(_photo(), 5 * i, axis=1)).save(folder / f"{i}.png")
  proc = _run("flowinpaint.evaluate", "--checkpoint", chain, "--images", folder, "--size", "32",
              "--save-edges", tmp_path / "edges", "--output", tmp_path / "scores.json")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(tmp_path / "edges")) == ["0000_edges.png", "0001_edges.png"]
  assert Image.open(tmp_path / "edges" / "0000_edges.png").size == (32, 32)
  assert "edges files" in proc.stdout


def test_save_edges_errors(tmp_path, capsys, deepfill_checkpoint):
  from flowinpaint import inpaint
  Image.fromarray(_photo()).save(tmp_path / "in.png")
  Image.fromarray(np.full((36, 48), 255, np.uint8)).save(tmp_path / "m.png")
  io = ["--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "--output",
        str(tmp_path / "out.png")]

  def error(*argv):
    assert inpaint.main(list(map(str, argv))) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]

  msg = error("--method", "telea", *io, "--save-edges", tmp_path / "e")
  assert "--save-edges" in msg and "telea" in msg and "EdgeConnect" in msg
  msg = error("--checkpoint", deepfill_checkpoint, *io, "--save-edges", tmp_path / "e")
  assert "'deepfill_v2'" in msg and "no edges" in msg and "EdgeConnect" in msg
  assert not os.path.exists(tmp_path / "out.png") and not os.path.exists(tmp_path / "e")
