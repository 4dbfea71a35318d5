"""Tests of evaluate_inpainter and `python -m flowinpaint.evaluate`."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from flowinpaint import evaluate, inference
from tests.tools import cli
from tests.tools.photos import photo_folder



def _photo(h, w, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 7.0)], -1)
  return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


class _Copy:
  """An 'oracle' that returns the input unchanged: every metric is perfect."""

  def __call__(self, rgb, mask):
    return rgb.copy()


class _Zero:
  """Fills the hole with black."""

  def __call__(self, rgb, mask):
    return np.where(mask[..., None], 0, rgb).astype(np.uint8)


def test_evaluate_inpainter_values():
  images = np.stack([_photo(32, 32, s) for s in range(3)])
  masks = np.zeros((3, 32, 32, 1), np.float32)
  masks[:, 8:16, 8:24] = 1
  perfect = evaluate.evaluate_inpainter(_Copy(), images, masks)
  assert perfect["ssim"] == pytest.approx(1.0, abs=1e-5)
  assert perfect["l1_hole"] == pytest.approx(0.0, abs=1e-6)
  assert perfect["hole_ratio"] == pytest.approx(128 / 1024)
  zero = evaluate.evaluate_inpainter(_Zero(), images, masks)
  # Black holes: L1 inside the hole is the mean intensity there; whole-image is diluted.
  want = np.mean([images[i, 8:16, 8:24] / 255.0 for i in range(3)])
  assert zero["l1_hole"] == pytest.approx(want, rel=1e-4)
  assert zero["l1"] == pytest.approx(want * 128 / 1024, rel=1e-4)
  assert zero["psnr"] > zero["psnr_hole"]
  telea = evaluate.evaluate_inpainter(inference.ClassicalInpainter("telea"), images, masks)
  assert telea["psnr_hole"] > zero["psnr_hole"] + 5
  assert telea["seconds_per_image"] >= 0 and telea["num_images"] == 3


def test_evaluate_accepts_float_images():
  images = np.stack([_photo(16, 16, s) for s in range(2)])
  masks = np.zeros((2, 16, 16), bool)
  masks[:, 4:8, 4:8] = True
  a = evaluate.evaluate_inpainter(_Zero(), images, masks)
  b = evaluate.evaluate_inpainter(_Zero(), images / 127.5 - 1.0, masks)
  for k in evaluate.METRIC_KEYS:
    assert a[k] == pytest.approx(b[k]), k


def _run(*args):
  return cli.run_module("flowinpaint.evaluate", *args)


@pytest.mark.slow
def test_cli_telea_writes_json(tmp_path):
  folder = photo_folder(tmp_path / "imgs", [(80, 100), (90, 70), (64, 64)], _photo)
  out = tmp_path / "res" / "results.json"
  res = _run("--method", "telea", "--images", folder, "--size", 64, "--output", out)
  assert res.returncode == 0, res.stderr
  assert "PSNR" in res.stdout and "Traceback" not in res.stderr
  got = json.loads(out.read_text())
  for k in evaluate.METRIC_KEYS + ("num_images", "seconds_per_image", "compile_seconds",
                                   "first_call_seconds", "mask_seed", "mask_kind", "size"):
    assert k in got, k
  assert got["num_images"] == 3 and got["size"] == 64
  assert 0 < got["hole_ratio"] < 0.9
  assert got["psnr"] > got["psnr_hole"] > 10
  assert 0 < got["ssim_hole"] < got["ssim"] <= 1
  assert 0 < got["l1"] < got["l1_hole"] < 0.5
  # Same seed -> same numbers.
  out2 = tmp_path / "again.json"
  assert _run("--method", "telea", "--images", folder, "--size", 64, "--num", 3, "--output",
              out2).returncode == 0
  again = json.loads(out2.read_text())
  for k in evaluate.METRIC_KEYS:
    assert again[k] == pytest.approx(got[k], abs=1e-9), k


@pytest.mark.slow
def test_cli_patchmatch_records_method_and_seed(tmp_path):
  folder = photo_folder(tmp_path / "imgs", [(60, 50)] * 2, _photo)
  out = tmp_path / "pm.json"
  res = _run("--method", "patchmatch", "--seed", 4, "--images", folder, "--size", 48,
             "--mask-kind", "box", "--output", out)
  assert res.returncode == 0, res.stderr
  got = json.loads(out.read_text())
  assert (got["inpainter"], got["model"], got["seed"], got["num_images"]) == (
      "patchmatch", "patchmatch", 4, 2)
  assert got["psnr"] > got["psnr_hole"] > 5


@pytest.mark.slow
def test_cli_errors(tmp_path):
  res = _run("--images", tmp_path)
  assert res.returncode == 2 and "error: choose" in res.stderr and "Traceback" not in res.stderr
  res = _run("--method", "telea", "--images", tmp_path / "none")
  assert res.returncode == 2 and "not a folder" in res.stderr and "Traceback" not in res.stderr
  res = _run("--method", "telea", "--images", tmp_path)  # empty folder
  assert res.returncode == 2 and "no images" in res.stderr and "Traceback" not in res.stderr
  (tmp_path / "a.png").write_bytes(b"")
  res = _run("--method", "telea", "--images", tmp_path, "--mask-kind", "blobs")
  assert res.returncode == 2 and "blobs" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_cli_refuses_to_overwrite_an_image(tmp_path):
  Image.fromarray(_photo(20, 20, 0)).save(tmp_path / "a.png")
  res = _run("--method", "telea", "--images", tmp_path, "--size", 16, "--output",
             tmp_path / "a.png")
  assert res.returncode == 2 and "overwrite" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_cli_saves_structure_and_flow(tmp_path, capsys, structure_flow_checkpoint,
                                      deepfill_checkpoint):
  from flowinpaint import aux_outputs
  folder = photo_folder(tmp_path / "imgs", [(40, 50), (36, 36)], _photo)
  side = tmp_path / "side"
  assert evaluate.main(["--checkpoint", structure_flow_checkpoint, "--images", str(folder),
                        "--size", "32", "--save-structure", str(side), "--save-flow",
                        str(side)]) == 0
  assert "PSNR" in capsys.readouterr().out
  assert sorted(os.listdir(side)) == [f"000{i}_{k}" for i in range(2)
                                      for k in ("flow.npy", "flow.png", "structure.png")]
  for i in range(2):
    structure = Image.open(side / f"000{i}_structure.png")
    assert structure.mode == "RGB" and structure.size == (32, 32)
    flow = np.load(side / f"000{i}_flow.npy")
    assert flow.shape == (8, 8, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    # The picture draws the saved flow (stored in image pixels, drawn on the 1/4 grid).
    np.testing.assert_array_equal(np.asarray(Image.open(side / f"000{i}_flow.png")),
                                  aux_outputs.flow_picture(flow / 4, (32, 32)))

  def error(*argv):
    assert evaluate.main(list(map(str, argv))) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]

  msg = error("--method", "telea", "--images", folder, "--save-structure", tmp_path / "s")
  assert "--save-structure" in msg and "telea" in msg
  msg = error("--checkpoint", deepfill_checkpoint, "--images", folder, "--size", 16,
              "--save-flow", tmp_path / "f")
  assert "--save-flow" in msg and "'deepfill_v2'" in msg
  msg = error("--checkpoint", structure_flow_checkpoint, "--images", folder, "--save-flow",
              folder / "img0.png")
  assert "is a file" in msg
  named = tmp_path / "named"  # An image named like a structure file of the evaluation.
  named.mkdir()
  Image.fromarray(_photo(20, 20, 0)).save(named / "0000_structure.png")
  msg = error("--checkpoint", structure_flow_checkpoint, "--images", named, "--save-structure",
              named)
  assert "overwrite" in msg
  assert not os.path.exists(tmp_path / "s") and not os.path.exists(tmp_path / "f")


@pytest.mark.slow
def test_cli_saves_what_it_scored_at_the_checkpoints_training_size(tmp_path, capsys, monkeypatch,
                                                                   deepfill_checkpoint):
  from flowinpaint.train import sharding

  monkeypatch.setenv(sharding.SPLIT_CPU_ENV, "1")  # Split over the 8 CPU test devices.
  # No --size: the checkpoint's (configs/tiny.py: 32), not 256. --save-images: the images,
  # masks and outputs the numbers come from.
  folder = photo_folder(tmp_path / "imgs", [(50, 40), (36, 48)], _photo)
  saved, out = tmp_path / "saved", tmp_path / "scores.json"
  assert evaluate.main(["--checkpoint", deepfill_checkpoint, "--images", str(folder),
                        "--save-images", str(saved), "--output", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "wrote 6 images" in printed
  assert "images/s (steady state, 8 cpu devices)" in printed  # conftest: 8 devices.
  got = json.loads(out.read_text())
  assert got["size"] == 32 and got["num_images"] == 2
  assert got["devices"] == 8 and got["images_per_second"] > 0
  assert sorted(os.listdir(saved)) == [f"000{i}_{k}.png" for i in range(2)
                                       for k in ("input", "mask", "output")]
  psnrs, holes = [], []
  for i in range(2):
    image, mask, output = (np.asarray(Image.open(saved / f"000{i}_{k}.png"))
                           for k in ("input", "mask", "output"))
    assert image.shape == mask.shape == output.shape == (32, 32, 3)
    hole = mask[..., 0] > 127
    assert hole.any() and (mask[..., 0] == mask[..., 2]).all()
    np.testing.assert_array_equal(output[~hole], image[~hole])  # Composited.
    mse = np.mean((output / 255.0 - image / 255.0) ** 2)
    psnrs.append(10 * np.log10(1.0 / mse))
    holes.append(hole.mean())
  # The two images ran on two devices; each is what it gives alone on one device.
  import jax
  from flowinpaint import inference
  alone = inference.ModelInpainter.from_checkpoint(deepfill_checkpoint, max_batch=1,
                                                   devices=jax.devices()[:1])
  for i in range(2):
    image, mask, output = (np.asarray(Image.open(saved / f"000{i}_{k}.png"))
                           for k in ("input", "mask", "output"))
    np.testing.assert_array_equal(output, alone(image, mask[..., 0] > 127))
  # The scores are those of the saved pictures (PSNR computed here independently).
  assert got["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)
  assert got["hole_ratio"] == pytest.approx(np.mean(holes), abs=1e-6)
