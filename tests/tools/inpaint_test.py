"""End-to-end tests of `python -m flowinpaint.inpaint` (subprocesses in tmp dirs)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, cwd=None):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "flowinpaint.inpaint", *map(str, args)],
                        capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _photo(h, w, seed=0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
  return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _mask(h, w, box=None):
  m = np.zeros((h, w), np.uint8)
  y0, y1, x0, x1 = box or (h // 3, h // 2, w // 3, w // 2)
  m[y0:y1, x0:x1] = 255
  return m


def _assert_user_error(res, *fragments):
  assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
  assert "Traceback" not in res.stderr, res.stderr
  lines = [l for l in res.stderr.strip().splitlines() if l.startswith("error:")]
  assert len(lines) == 1, res.stderr
  for f in fragments:
    assert f in lines[0], (f, lines[0])
  return lines[0]


def test_odd_size_rgb_bit_identical_outside(tmp_path):
  img, mask = _photo(333, 517), _mask(333, 517)
  Image.fromarray(img).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  out = np.asarray(Image.open(tmp_path / "out.png"))
  assert out.shape == img.shape
  hole = mask > 127
  np.testing.assert_array_equal(out[~hole], img[~hole])
  # The hole is filled with something close to the smooth surroundings.
  assert np.abs(out[hole].astype(int) - img[hole].astype(int)).mean() < 25


def test_rgba_alpha_kept_exactly(tmp_path):
  img = _photo(40, 33)
  alpha = np.random.default_rng(1).integers(0, 256, (40, 33), dtype=np.uint8)
  Image.fromarray(np.dstack([img, alpha]), "RGBA").save(tmp_path / "in.png")
  Image.fromarray(_mask(40, 33)).save(tmp_path / "m.png")
  res = run("--method", "ns", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  out = Image.open(tmp_path / "out.png")
  assert out.mode == "RGBA"
  out = np.asarray(out)
  np.testing.assert_array_equal(out[..., 3], alpha)
  hole = _mask(40, 33) > 127
  np.testing.assert_array_equal(out[..., :3][~hole], img[~hole])


def test_grayscale_mode_kept(tmp_path):
  gray = _photo(31, 45)[..., 0]
  Image.fromarray(gray, "L").save(tmp_path / "in.png")
  Image.fromarray(_mask(31, 45)).save(tmp_path / "m.png")
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  out = Image.open(tmp_path / "out.png")
  assert out.mode == "L" and out.size == (45, 31)
  hole = _mask(31, 45) > 127
  np.testing.assert_array_equal(np.asarray(out)[~hole], gray[~hole])


def test_empty_mask_copies_input(tmp_path):
  Image.fromarray(_photo(20, 21)).save(tmp_path / "in.png")
  Image.fromarray(np.zeros((20, 21), np.uint8)).save(tmp_path / "m.png")
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out.png")
  assert res.returncode == 0, res.stderr
  assert "empty" in res.stderr
  assert (tmp_path / "out.png").read_bytes() == (tmp_path / "in.png").read_bytes()


def test_inverted_mask_warning_and_invert(tmp_path):
  img = _photo(30, 30)
  Image.fromarray(img).save(tmp_path / "in.png")
  keep = 255 - _mask(30, 30, (5, 10, 5, 10))  # white = keep: mostly white
  Image.fromarray(keep).save(tmp_path / "m.png")
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out.png")
  assert res.returncode == 0 and "--invert-mask" in res.stderr and "97%" in res.stderr
  res = run("--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
            "--output", tmp_path / "out2.png", "--invert-mask")
  assert res.returncode == 0 and "inverted" not in res.stderr, res.stderr
  out = np.asarray(Image.open(tmp_path / "out2.png"))
  hole = keep <= 127
  np.testing.assert_array_equal(out[~hole], img[~hole])


def test_size_mismatch_and_resize_mask(tmp_path):
  Image.fromarray(_photo(40, 60)).save(tmp_path / "in.png")
  Image.fromarray(_mask(20, 30)).save(tmp_path / "m.png")
  args = ["--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
          "--output", tmp_path / "out.png"]
  _assert_user_error(run(*args), "30x20", "60x40", "--resize-mask")
  assert not (tmp_path / "out.png").exists()
  res = run(*args, "--resize-mask")
  assert res.returncode == 0, res.stderr
  assert Image.open(tmp_path / "out.png").size == (60, 40)


def test_bad_inputs_give_one_line_errors(tmp_path):
  Image.fromarray(_photo(10, 10)).save(tmp_path / "in.png")
  Image.fromarray(_mask(10, 10)).save(tmp_path / "m.png")
  (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  (tmp_path / "empty.png").write_bytes(b"")
  ok = ["--image", tmp_path / "in.png", "--mask", tmp_path / "m.png"]
  # No method / checkpoint chosen.
  _assert_user_error(run(*ok, "--output", tmp_path / "o.png"), "--method", "--checkpoint")
  # Missing and unreadable files.
  _assert_user_error(run("--method", "telea", "--image", tmp_path / "nope.png", "--mask",
                         tmp_path / "m.png", "--output", tmp_path / "o.png"),
                     "nope.png", "does not exist")
  _assert_user_error(run("--method", "telea", "--image", tmp_path / "corrupt.png", "--mask",
                         tmp_path / "m.png", "--output", tmp_path / "o.png"), "corrupt.png")
  _assert_user_error(run("--method", "telea", "--image", tmp_path / "in.png", "--mask",
                         tmp_path / "empty.png", "--output", tmp_path / "o.png"),
                     "empty.png", "0 bytes")
  # Output equal to an input.
  _assert_user_error(run("--method", "telea", *ok, "--output", tmp_path / "in.png"),
                     "overwrite")
  _assert_user_error(run("--method", "telea", *ok, "--output", tmp_path / "m.png"),
                     "overwrite")
  # A folder that is not a checkpoint, and one that does not exist.
  (tmp_path / "notckpt").mkdir()
  (tmp_path / "notckpt" / "readme.txt").write_text("hi")
  _assert_user_error(run("--checkpoint", tmp_path / "notckpt", *ok, "--output",
                         tmp_path / "o.png"), "not a flowinpaint checkpoint")
  _assert_user_error(run("--checkpoint", tmp_path / "missing", *ok, "--output",
                         tmp_path / "o.png"), "does not exist")
  # argparse errors are one line too.
  _assert_user_error(run("--method", "bogus", *ok, "--output", tmp_path / "o.png"), "bogus")
  assert not (tmp_path / "o.png").exists()


def test_folder_mode_broadcast_mask_and_missing_mask(tmp_path):
  src, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
  src.mkdir(), masks.mkdir()
  imgs = {"a": _photo(24, 30, 0), "b": _photo(17, 19, 1), "c": _photo(24, 30, 2)}
  for k, v in imgs.items():
    Image.fromarray(v).save(src / f"{k}.png")
  (src / "notes.txt").write_text("ignored")
  # One mask for all (with resize for the odd-sized one).
  Image.fromarray(_mask(24, 30)).save(tmp_path / "one.png")
  res = run("--method", "telea", "--image", src, "--mask", tmp_path / "one.png", "--output", out,
            "--resize-mask")
  assert res.returncode == 0, res.stderr
  assert sorted(os.listdir(out)) == ["a.png", "b.png", "c.png"]
  hole = _mask(24, 30) > 127
  np.testing.assert_array_equal(np.asarray(Image.open(out / "c.png"))[~hole], imgs["c"][~hole])
  # Masks matched by stem; b has none -> warning, skipped, counted, exit 1.
  Image.fromarray(_mask(24, 30)).save(masks / "a.png")
  Image.fromarray(_mask(24, 30)).save(masks / "c_mask.png")
  res = run("--method", "ns", "--image", src, "--mask", masks, "--output", tmp_path / "out2")
  assert res.returncode == 1, res.stderr
  assert "no mask for" in res.stderr and "b.png" in res.stderr and "Traceback" not in res.stderr
  assert "2 of 3" in res.stdout and "1 failed" in res.stdout
  assert sorted(os.listdir(tmp_path / "out2")) == ["a.png", "c.png"]
  # Writing into the input folder is refused before anything runs.
  _assert_user_error(run("--method", "ns", "--image", src, "--mask", masks, "--output", src),
                     "overwrite")


def test_folder_mode_continues_after_a_corrupt_file(tmp_path):
  src = tmp_path / "in"
  src.mkdir()
  Image.fromarray(_photo(12, 12)).save(src / "good.png")
  (src / "bad.png").write_bytes(b"not a png")
  Image.fromarray(_mask(12, 12)).save(tmp_path / "m.png")
  res = run("--method", "telea", "--image", src, "--mask", tmp_path / "m.png", "--output",
            tmp_path / "out")
  assert res.returncode == 1 and "bad.png" in res.stderr and "Traceback" not in res.stderr
  assert os.listdir(tmp_path / "out") == ["good.png"]


def test_model_path_in_process(tmp_path, monkeypatch, capsys):
  """The --checkpoint path with a tiny generator standing in for load_for_inference."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from flowinpaint import inpaint
  from flowinpaint.train import checkpointing

  class Gen(nn.Module):

    @nn.compact
    def __call__(self, image, mask, *, train):
      assert image.shape[1] % 8 == 0 and image.shape[2] % 8 == 0
      return {"output": jnp.tanh(nn.Conv(3, (3, 3))(jnp.concatenate([image * (1 - mask), mask],
                                                                      -1)))}

  class Flow(nn.Module):

    @nn.compact
    def __call__(self, image, mask, *, train):
      return {"output": nn.Conv(2, (3, 3))(image)}

  def bundle(gen):
    b = type("B", (), {})()
    b.generator, b.multiple, b.model_name, b.config = gen, 8, type(gen).__name__, None
    b.variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                           train=False)
    return b

  monkeypatch.setattr(checkpointing, "load_for_inference", lambda p: bundle(Gen()))
  gray = _photo(29, 35)[..., 0]
  alpha = np.random.default_rng(5).integers(0, 256, (29, 35), dtype=np.uint8)
  Image.fromarray(gray, "L").save(tmp_path / "g.png")
  Image.fromarray(np.dstack([_photo(29, 35), alpha]), "RGBA").save(tmp_path / "a.png")
  Image.fromarray(_mask(29, 35)).save(tmp_path / "m.png")
  hole = _mask(29, 35) > 127
  for name in ("g", "a"):
    rc = inpaint.main(["--checkpoint", str(tmp_path), "--image", str(tmp_path / f"{name}.png"),
                       "--mask", str(tmp_path / "m.png"), "--output",
                       str(tmp_path / f"{name}_out.png")])
    assert rc == 0
    src, out = Image.open(tmp_path / f"{name}.png"), Image.open(tmp_path / f"{name}_out.png")
    assert out.mode == src.mode and out.size == src.size
    np.testing.assert_array_equal(np.asarray(out)[~hole], np.asarray(src)[~hole])
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_out.png"))[..., 3], alpha)

  monkeypatch.setattr(checkpointing, "load_for_inference", lambda p: bundle(Flow()))
  rc = inpaint.main(["--checkpoint", str(tmp_path), "--image", str(tmp_path / "g.png"),
                     "--mask", str(tmp_path / "m.png"), "--output", str(tmp_path / "x.png")])
  assert rc == 2 and "not an image inpainting generator" in capsys.readouterr().err


def test_folder_mode_masks_beside_images_and_format(tmp_path):
  src = tmp_path / "in"
  src.mkdir()
  img = _photo(16, 18)
  Image.fromarray(img).save(src / "x.png")
  Image.fromarray(_mask(16, 18)).save(src / "x_mask.png")
  res = run("--method", "telea", "--image", src, "--mask", src, "--output", tmp_path / "out",
            "--format", "webp")
  assert res.returncode == 0, res.stderr
  assert os.listdir(tmp_path / "out") == ["x.webp"]
  hole = _mask(16, 18) > 127
  out = np.asarray(Image.open(tmp_path / "out" / "x.webp").convert("RGB"))
  np.testing.assert_array_equal(out[~hole], img[~hole])  # lossless WebP


def test_glcic_postprocess_keeps_outside_pixels(tmp_path):
  from flowinpaint import inpaint
  rng = np.random.default_rng(7)
  image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
  mask = np.zeros((60, 80), np.uint8)
  mask[20:40, 30:55] = 255
  Image.fromarray(image).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  for post in ("none", "glcic"):
    assert inpaint.main(["--method", "telea", "--image", str(tmp_path / "in.png"), "--mask",
                         str(tmp_path / "m.png"), "--output", str(tmp_path / f"{post}.png"),
                         "--postprocess", post]) == 0
  plain = np.asarray(Image.open(tmp_path / "none.png"))
  post = np.asarray(Image.open(tmp_path / "glcic.png"))
  outside = mask == 0
  np.testing.assert_array_equal(post[outside], image[outside])
  assert not np.array_equal(post[~outside], plain[~outside])  # Blending changed the hole.
