"""End-to-end tests of `python -m flowinpaint.inpaint` (subprocesses in tmp dirs)."""

import os

import numpy as np
import pytest
from PIL import Image

from tests.tools import cli
from tests.tools.photos import gradient_photo

pytestmark = pytest.mark.slow



def run(*args, cwd=None):
  return cli.run_module("flowinpaint.inpaint", *args, cwd=cwd)


def _photo(h, w, seed=0):
  return gradient_photo(h, w, seed, noise=8)


def _mask(h, w, box=None):
  m = np.zeros((h, w), np.uint8)
  y0, y1, x0, x1 = box or (h // 3, h // 2, w // 3, w // 2)
  m[y0:y1, x0:x1] = 255
  return m


_assert_user_error = cli.assert_user_error


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


def test_patchmatch_rgba_grey_folder_and_seed(tmp_path):
  # A texture that repeats every 8 pixels: PatchMatch continues it into the hole.
  tile = np.random.default_rng(4).integers(0, 256, (8, 8, 3), dtype=np.uint8)
  img = np.tile(tile, (6, 5, 1))  # 48 x 40
  alpha = np.random.default_rng(5).integers(0, 256, (48, 40), dtype=np.uint8)
  src = tmp_path / "src"
  src.mkdir()
  Image.fromarray(np.dstack([img, alpha]), "RGBA").save(src / "a.png")
  Image.fromarray(img[..., 1], "L").save(src / "b.png")
  mask = _mask(48, 40, (18, 30, 12, 28))
  Image.fromarray(mask).save(tmp_path / "m.png")
  hole = mask > 127
  outs = []
  for name in ("out1", "out2"):
    res = run("--method", "patchmatch", "--seed", 3, "--image", src, "--mask",
              tmp_path / "m.png", "--output", tmp_path / name)
    assert res.returncode == 0, res.stderr
    outs.append([Image.open(tmp_path / name / f) for f in ("a.png", "b.png")])
  rgba, grey = outs[0]
  assert rgba.mode == "RGBA" and grey.mode == "L"
  rgba, grey = np.asarray(rgba), np.asarray(grey)
  np.testing.assert_array_equal(rgba[..., 3], alpha)
  np.testing.assert_array_equal(rgba[..., :3][~hole], img[~hole])
  np.testing.assert_array_equal(grey[~hole], img[..., 1][~hole])
  assert np.abs(rgba[..., :3][hole].astype(int) - img[hole]).mean() < 10
  assert np.abs(grey[hole].astype(int) - img[..., 1][hole]).mean() < 10
  for first, second in zip(*outs):  # same seed, same result
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_patchmatch_all_hole_is_one_error(tmp_path):
  Image.fromarray(_photo(20, 24)).save(tmp_path / "in.png")
  Image.fromarray(np.full((20, 24), 255, np.uint8)).save(tmp_path / "m.png")
  _assert_user_error(run("--method", "patchmatch", "--image", tmp_path / "in.png", "--mask",
                         tmp_path / "m.png", "--output", tmp_path / "o.png"),
                     "covers the whole image")
  assert not os.path.exists(tmp_path / "o.png")


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


def test_exif_rotated_photo_with_a_mask_drawn_on_the_stored_pixels(tmp_path):
  # Stored 60x40 with EXIF orientation 6: viewers (and the tool) show it 40x60, turned 90
  # degrees clockwise. A mask drawn on the stored pixels is 60x40: resizing it would be wrong.
  from PIL import ImageOps
  stored, mask = _photo(40, 60), _mask(40, 60, (5, 15, 10, 30))
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(stored).save(tmp_path / "in.png", exif=exif)
  Image.fromarray(mask).save(tmp_path / "m.png")
  args = ["--method", "telea", "--image", tmp_path / "in.png", "--mask", tmp_path / "m.png",
          "--output", tmp_path / "out.png"]
  line = _assert_user_error(run(*args), "60x40", "40x60", "EXIF orientation",
                            "rotated 90 degrees clockwise", "--mask-orientation stored")
  assert "--resize-mask" not in line
  res = run(*args, "--mask-orientation", "stored")
  assert res.returncode == 0, res.stderr
  out = np.asarray(Image.open(tmp_path / "out.png"))
  # The expected picture and hole: Pillow's own EXIF transpose of the stored image and mask.
  shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "in.png")))
  tagged = Image.fromarray(mask)
  tagged.getexif()[0x0112] = 6
  hole = np.asarray(ImageOps.exif_transpose(tagged)) > 127
  assert out.shape == shown.shape == (60, 40, 3) and hole.shape == (60, 40)
  np.testing.assert_array_equal(out[~hole], shown[~hole])
  assert not np.array_equal(out[hole], shown[hole])


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


def test_dilate_and_feather_against_an_independent_computation(tmp_path, capsys):
  import cv2
  from scipy import ndimage
  from flowinpaint import inpaint
  image = _photo(50, 70, seed=3)
  mask = np.zeros((50, 70), np.uint8)
  mask[20:26, 30:33] = 255
  Image.fromarray(image).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  common = ["--method", "telea", "--radius", "3", "--image", str(tmp_path / "in.png"),
            "--mask", str(tmp_path / "m.png")]
  yy, xx = np.mgrid[-4:5, -4:5]
  disc = (yy ** 2 + xx ** 2 <= 16).astype(np.uint8)
  grown = cv2.dilate((mask > 127).astype(np.uint8), disc) > 0  # Hole grown by a 4-px disc.

  assert inpaint.main(common + ["--output", str(tmp_path / "d.png"), "--dilate", "4"]) == 0
  out = np.asarray(Image.open(tmp_path / "d.png"))
  expected = cv2.inpaint(image, grown.astype(np.uint8), 3, cv2.INPAINT_TELEA)
  np.testing.assert_array_equal(out, np.where(grown[..., None], expected, image))

  assert inpaint.main(common + ["--output", str(tmp_path / "f.png"), "--feather", "5"]) == 0
  out = np.asarray(Image.open(tmp_path / "f.png")).astype(int)
  hole = mask > 127
  distance = ndimage.distance_transform_edt(~hole)  # Exact Euclidean distance to the hole.
  weight = np.clip(1 - distance / 6.0, 0, 1)
  band = weight > 0
  fill = cv2.inpaint(image, band.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(int)
  expected = np.rint(weight[..., None] * fill + (1 - weight[..., None]) * image)
  np.testing.assert_array_equal(out[~band], image[~band])  # Beyond the band: bit-identical.
  np.testing.assert_array_equal(out[hole], fill[hole])  # The hole: the fill as it is.
  # In the band, the blend (cv2's 5x5 distance transform is within a few % of the exact one).
  assert np.abs(out[band] - expected[band]).max() <= 3
  assert np.abs(out - image).max() > 0 and band.sum() > hole.sum()

  assert inpaint.main(common + ["--output", str(tmp_path / "x.png"), "--dilate", "-1"]) == 2
  assert "--dilate must be >= 0, got -1" in capsys.readouterr().err


def _direct_outputs(checkpoint, image, hole, multiple=16):
  """The generator's outputs for one image, computed here: pad by reflection, apply, crop."""
  import jax
  from flowinpaint.train import checkpointing
  bundle = checkpointing.load_for_inference(checkpoint)
  assert bundle.multiple == multiple
  h, w = hole.shape
  pad = ((0, (-h) % multiple), (0, (-w) % multiple))
  x = np.pad(image.astype(np.float32) / 127.5 - 1.0, pad + ((0, 0),), mode="reflect")
  m = np.pad(hole.astype(np.float32), pad, mode="reflect")[..., None]

  def run(variables, image, mask):
    out = bundle.generator.apply(variables, image, mask, train=False)
    # Shaped (and named) like the tool's jitted function: the same program, so the persistent
    # compilation cache (tests/conftest.py) serves it instead of a second ~10 s compile.
    return out["output"], {"structure": out["structure"], "flow": out["flow"]}

  output, aux = jax.jit(run)(bundle.variables, x[None], m[None])
  return {"output": np.asarray(output[0]), **{k: np.asarray(v[0]) for k, v in aux.items()}}


def test_save_structure_and_flow_match_the_model(tmp_path, structure_flow_checkpoint):
  from flowinpaint import inpaint
  from flowinpaint.flow_vis import flow_to_rgb
  from flowinpaint.inference import to_uint8
  h, w = 38, 54  # Pads to 48x64; the 1/4 flow grid is cut to 10x14 (partial last cells).
  img, mask = _photo(h, w), _mask(h, w, (8, 24, 12, 40))
  Image.fromarray(img).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  side = tmp_path / "side"  # Missing folders are created.
  assert inpaint.main(["--checkpoint", structure_flow_checkpoint, "--image",
                       str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "--output",
                       str(tmp_path / "out.png"), "--save-structure", str(side / "s"),
                       "--save-flow", str(side / "f")]) == 0
  assert os.listdir(side / "s") == ["in_structure.png"]
  assert sorted(os.listdir(side / "f")) == ["in_flow.npy", "in_flow.png"]
  structure = Image.open(side / "s" / "in_structure.png")
  flow_png = Image.open(side / "f" / "in_flow.png")
  assert structure.mode == flow_png.mode == "RGB" and structure.size == flow_png.size == (w, h)
  flow_npy = np.load(side / "f" / "in_flow.npy")
  assert flow_npy.shape == (10, 14, 2) and flow_npy.dtype == np.float32

  want = _direct_outputs(structure_flow_checkpoint, img, mask > 127)
  np.testing.assert_array_equal(np.asarray(structure), to_uint8(want["structure"][:h, :w]))
  flow = want["flow"][:10, :14]
  assert np.abs(flow).max() > 0  # Random weights: a flow that draws as more than white.
  picture = np.repeat(np.repeat(flow_to_rgb(flow), 4, axis=0), 4, axis=1)[:h, :w]
  np.testing.assert_array_equal(np.asarray(flow_png), picture)
  np.testing.assert_allclose(flow_npy, flow * 4, rtol=1e-6)
  # The inpainted image is the model's output, composited as without the options.
  out, hole = np.asarray(Image.open(tmp_path / "out.png")), mask > 127
  np.testing.assert_array_equal(out[~hole], img[~hole])
  np.testing.assert_array_equal(out[hole], to_uint8(want["output"][:h, :w])[hole])


def test_save_structure_and_flow_errors(tmp_path, capsys, deepfill_checkpoint):
  from flowinpaint import inpaint
  Image.fromarray(_photo(20, 24)).save(tmp_path / "in.png")
  Image.fromarray(_mask(20, 24)).save(tmp_path / "m.png")
  (tmp_path / "afile").write_text("x")
  io = ["--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "--output",
        str(tmp_path / "out.png")]

  def error(*argv):
    assert inpaint.main(list(map(str, argv))) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]

  msg = error("--method", "telea", *io, "--save-structure", tmp_path / "s")
  assert "--save-structure" in msg and "telea" in msg
  msg = error("--checkpoint", deepfill_checkpoint, *io, "--save-flow", tmp_path / "f")
  assert "--save-flow" in msg and "'deepfill_v2'" in msg and "no flow" in msg
  msg = error("--checkpoint", deepfill_checkpoint, *io, "--save-structure", tmp_path / "s")
  assert "--save-structure" in msg and "'deepfill_v2'" in msg and "no structure" in msg
  msg = error("--checkpoint", deepfill_checkpoint, *io, "--save-flow", tmp_path / "afile")
  assert "afile" in msg and "is a file" in msg
  msg = error("--checkpoint", deepfill_checkpoint, *io, "--save-flow", tmp_path / "f",
              "--strategy", "crop")
  assert "--strategy full" in msg
  # A side file that is an input, and two images of one stem (they would share side files).
  Image.fromarray(_mask(20, 24)).save(tmp_path / "in_structure.png")
  msg = error("--checkpoint", deepfill_checkpoint, "--image", tmp_path / "in.png", "--mask",
              tmp_path / "in_structure.png", "--output", tmp_path / "out.png",
              "--save-structure", tmp_path)
  assert "overwrite" in msg
  src = tmp_path / "two"
  src.mkdir()
  Image.fromarray(_photo(20, 24)).save(src / "a.png")
  Image.fromarray(_photo(20, 24)).save(src / "a.bmp")
  msg = error("--checkpoint", deepfill_checkpoint, "--image", src, "--mask", tmp_path / "m.png",
              "--output", tmp_path / "outs", "--save-flow", tmp_path / "f")
  assert "a_flow.png" in msg and "twice" in msg
  assert not os.path.exists(tmp_path / "out.png") and not os.path.exists(tmp_path / "s")
  assert not os.path.exists(tmp_path / "f")


def test_folder_batches_size_buckets_over_every_device(tmp_path, monkeypatch, capsys,
                                                       deepfill_checkpoint):
  """Images that pad to one size run together, split over the 8 test devices; each result is
  what one image alone on one device gives."""
  import jax
  from flowinpaint import inference, inpaint
  from flowinpaint.train import sharding

  monkeypatch.setenv(sharding.SPLIT_CPU_ENV, "1")  # On a CPU, one device by default.

  made = []
  real_make = inference.make_inpainter
  monkeypatch.setattr(inference, "make_inpainter",
                      lambda *a, **k: made.append(real_make(*a, **k)) or made[-1])
  sizes = [(40, 48)] * 4 + [(37, 45), (38, 41), (24, 30)]  # Pad (to 8) to 40x48 x6, 24x32 x1.
  (tmp_path / "in").mkdir()
  (tmp_path / "masks").mkdir()
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(_photo(h, w, seed=i)).save(tmp_path / "in" / f"{i}.png")
    Image.fromarray(_mask(h, w, (3 + i, 20, 5, 30 - i))).save(tmp_path / "masks" / f"{i}.png")
  assert inpaint.main(["--checkpoint", deepfill_checkpoint, "--image", str(tmp_path / "in"),
                       "--mask", str(tmp_path / "masks"), "--output", str(tmp_path / "out")]) == 0
  printed = capsys.readouterr().out
  throughput = [l for l in printed.splitlines() if l.startswith("throughput: ")]
  assert len(throughput) == 1 and " images/s (7 in " in throughput[0], printed
  assert throughput[0].endswith(", 8 cpu devices)"), throughput
  model = made[0]
  assert model.compiled_shapes == {(6, 40, 48, 3), (1, 24, 32, 3)}
  assert model._run.device_counts == {6, 1}
  alone = inference.ModelInpainter.from_checkpoint(deepfill_checkpoint, max_batch=1,
                                                   devices=jax.devices()[:1])
  for i, (h, w) in enumerate(sizes):
    img, hole = _photo(h, w, seed=i), _mask(h, w, (3 + i, 20, 5, 30 - i)) > 127
    out = np.asarray(Image.open(tmp_path / "out" / f"{i}.png"))
    np.testing.assert_array_equal(out, alone(img, hole), err_msg=f"image {i}")
    assert not np.array_equal(out[hole], img[hole])
