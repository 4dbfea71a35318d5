"""Tests for image / mask file IO."""

import os

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from flowinpaint import image_io
from flowinpaint.errors import UserError


def _rgb(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_roundtrip_png(tmp_path):
  arr = _rgb(33, 51)
  Image.fromarray(arr).save(tmp_path / "a.png")
  img = image_io.read_image(str(tmp_path / "a.png"))
  assert img.mode == "RGB" and img.alpha is None and img.format == "PNG"
  np.testing.assert_array_equal(img.rgb, arr)
  image_io.save_loaded(str(tmp_path / "b.png"), img.rgb, img)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), arr)


def test_rgba_alpha_kept(tmp_path):
  arr = np.dstack([_rgb(9, 7), np.random.default_rng(3).integers(0, 256, (9, 7), np.uint8)])
  Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
  img = image_io.read_image(str(tmp_path / "a.png"))
  assert img.mode == "RGBA"
  np.testing.assert_array_equal(img.alpha, arr[..., 3])
  image_io.save_loaded(str(tmp_path / "b.png"), img.rgb, img)
  back = Image.open(tmp_path / "b.png")
  assert back.mode == "RGBA"
  np.testing.assert_array_equal(np.asarray(back), arr)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grayscale_mode_kept(tmp_path, mode):
  gray = _rgb(10, 12)[..., 0]
  im = Image.fromarray(gray, "L")
  if mode == "LA":
    im.putalpha(Image.fromarray(np.full_like(gray, 77)))
  im.save(tmp_path / "g.png")
  img = image_io.read_image(str(tmp_path / "g.png"))
  assert img.mode == mode and img.is_gray and img.rgb.shape == (10, 12, 3)
  image_io.save_loaded(str(tmp_path / "o.png"), img.rgb, img)
  back = Image.open(tmp_path / "o.png")
  assert back.mode == mode
  np.testing.assert_array_equal(np.asarray(back.convert("L")), gray)


def test_16bit_gray_is_scaled_with_a_note(tmp_path):
  arr = np.array([[0, 65535], [257 * 100, 30000]], np.uint16)
  Image.fromarray(arr).save(tmp_path / "g16.png")
  img = image_io.read_image(str(tmp_path / "g16.png"))
  np.testing.assert_array_equal(img.rgb[..., 0], [[0, 255], [100, 117]])
  assert any("8 bits" in n for n in img.notes)


def test_palette_image(tmp_path):
  arr = _rgb(8, 8)
  Image.fromarray(arr).convert("P").save(tmp_path / "p.png")
  img = image_io.read_image(str(tmp_path / "p.png"))
  np.testing.assert_array_equal(img.rgb, np.asarray(Image.open(tmp_path / "p.png").convert("RGB")))


def test_exif_transpose_and_metadata(tmp_path):
  arr = _rgb(4, 6)
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 CW to display
  exif[0x010F] = "Maker"
  pnginfo = PngImagePlugin.PngInfo()
  pnginfo.add_text("Comment", "hello")
  Image.fromarray(arr).save(tmp_path / "r.png", exif=exif, dpi=(300, 300), pnginfo=pnginfo)
  img = image_io.read_image(str(tmp_path / "r.png"))
  assert img.rgb.shape == (6, 4, 3)
  np.testing.assert_array_equal(img.rgb, np.rot90(arr, k=-1))
  image_io.save_loaded(str(tmp_path / "o.png"), img.rgb, img)
  back = Image.open(tmp_path / "o.png")
  assert back.getexif().get(0x0112) == 1 and back.getexif().get(0x010F) == "Maker"
  assert round(back.info["dpi"][0]) == 300 and back.text["Comment"] == "hello"
  # Reading again changes nothing (orientation was reset).
  np.testing.assert_array_equal(image_io.read_image(str(tmp_path / "o.png")).rgb, img.rgb)


def test_bad_files(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    image_io.read_image(str(tmp_path / "missing.png"))
  (tmp_path / "empty.png").write_bytes(b"")
  with pytest.raises(UserError, match=r"empty\.png.*0 bytes"):
    image_io.read_image(str(tmp_path / "empty.png"))
  (tmp_path / "text.png").write_text("not an image")
  with pytest.raises(UserError, match=r"text\.png.*not an image"):
    image_io.read_image(str(tmp_path / "text.png"))
  Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
  data = (tmp_path / "full.png").read_bytes()
  (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
  with pytest.raises(UserError, match=r"trunc\.png.*corrupt or truncated"):
    image_io.read_image(str(tmp_path / "trunc.png"))
  with pytest.raises(UserError, match="folder"):
    image_io.read_image(str(tmp_path))


def test_decompression_bomb(tmp_path):
  # A tiny file whose header claims 30000x30000 pixels.
  Image.new("1", (30000, 30000)).save(tmp_path / "bomb.png")
  assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
  with pytest.raises(UserError, match=r"bomb\.png.*30000x30000.*decompression"):
    image_io.read_image(str(tmp_path / "bomb.png"))
  with pytest.raises(UserError, match="decompression"):
    image_io.read_image(str(tmp_path / "bomb.png"), max_pixels=1000)


def test_mask_rules(tmp_path):
  m = np.zeros((6, 5), np.uint8)
  m[1:3, 1:4] = 255
  Image.fromarray(m).save(tmp_path / "m.png")
  want = m > 127
  np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / "m.png")), want)
  # Any channel > 127 counts.
  rgb = np.zeros((6, 5, 3), np.uint8)
  rgb[..., 2] = m
  rgb[0, 0, 1] = 127  # not a hole
  Image.fromarray(rgb).save(tmp_path / "c.png")
  np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / "c.png")), want)
  # 0/1 masks.
  Image.fromarray((m > 0).astype(np.uint8)).save(tmp_path / "01.png")
  np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / "01.png")), want)
  # JPEG noise around a white stroke stays outside the hole.
  big = np.zeros((32, 32), np.uint8)
  big[8:24, 8:24] = 255
  Image.fromarray(big).save(tmp_path / "j.jpg", quality=60)
  got = image_io.read_mask(str(tmp_path / "j.jpg"))
  assert (got != (big > 127)).mean() < 0.02


def test_rgba_mask_rules(tmp_path):
  alpha = np.zeros((6, 5), np.uint8)
  alpha[2:5, 1:3] = 255
  # White strokes on a transparent layer whose hidden colour is white too.
  white = np.dstack([np.full((6, 5, 3), 255, np.uint8), alpha])
  Image.fromarray(white, "RGBA").save(tmp_path / "w.png")
  for rule in ("auto", "alpha"):
    np.testing.assert_array_equal(
        image_io.read_mask(str(tmp_path / "w.png"), mask_from=rule), alpha > 127)
  assert image_io.read_mask(str(tmp_path / "w.png"), mask_from="color").all()
  # Black strokes on a transparent layer: auto falls back to the alpha.
  black = np.dstack([np.zeros((6, 5, 3), np.uint8), alpha])
  Image.fromarray(black, "RGBA").save(tmp_path / "b.png")
  np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / "b.png")), alpha > 127)
  # An opaque RGBA mask: the colour decides.
  opaque = np.dstack([np.repeat((alpha)[..., None], 3, -1), np.full((6, 5), 255, np.uint8)])
  Image.fromarray(opaque, "RGBA").save(tmp_path / "o.png")
  np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / "o.png")), alpha > 127)


def test_mask_size_mismatch_and_resize(tmp_path):
  m = np.zeros((4, 6), np.uint8)
  m[:, :3] = 255
  Image.fromarray(m).save(tmp_path / "m.png")
  with pytest.raises(UserError, match=r"6x4.*12x8.*--resize-mask"):
    image_io.read_mask(str(tmp_path / "m.png"), like_shape=(8, 12))
  got = image_io.read_mask(str(tmp_path / "m.png"), like_shape=(8, 12), resize=True)
  assert got.shape == (8, 12)
  np.testing.assert_array_equal(got, np.repeat(np.repeat(m > 127, 2, 0), 2, 1))


def test_refuses_to_overwrite_input(tmp_path):
  arr = _rgb(4, 4)
  Image.fromarray(arr).save(tmp_path / "a.png")
  img = image_io.read_image(str(tmp_path / "a.png"))
  with pytest.raises(UserError, match="overwrite"):
    image_io.save_loaded(str(tmp_path / "a.png"), img.rgb, img)
  with pytest.raises(UserError, match="overwrite"):
    image_io.write_image(str(tmp_path / "." / "a.png"), arr, inputs=[str(tmp_path / "a.png")])
  with pytest.raises(UserError, match="extension"):
    image_io.write_image(str(tmp_path / "a.xyz"), arr)


def test_jpeg_drops_alpha_with_note(tmp_path):
  notes = image_io.write_image(str(tmp_path / "a.jpg"), _rgb(4, 4), np.zeros((4, 4), np.uint8),
                               "RGBA")
  assert notes and "alpha" in notes[0]
  assert Image.open(tmp_path / "a.jpg").mode == "RGB"


def test_16bit_rgb_png_gets_a_note(tmp_path):
  import cv2
  cv2.imwrite(str(tmp_path / "rgb16.png"), np.full((3, 4, 3), 40000, np.uint16))
  img = image_io.read_image(str(tmp_path / "rgb16.png"))
  assert img.rgb.shape == (3, 4, 3) and any("8 bits" in n for n in img.notes)


def test_input_files_find_an_input_by_path_link_or_inode(tmp_path):
  a, b = tmp_path / "a.png", tmp_path / "b.png"
  a.write_bytes(b"x")
  b.write_bytes(b"y")
  (tmp_path / "link.png").symlink_to(a)
  os.link(b, tmp_path / "hard.png")
  files = image_io.InputFiles([str(a), str(b), "", str(tmp_path / "later.png")])
  assert files == (str(a), str(b), str(tmp_path / "later.png"))  # A tuple of the paths.
  assert files.find(str(tmp_path / "link.png")) == str(a)
  assert files.find(str(tmp_path / "hard.png")) == str(b)  # Another name of the same file.
  assert files.find(str(tmp_path / "sub" / ".." / "later.png")) == str(tmp_path / "later.png")
  assert files.find(str(tmp_path / "c.png")) is None
  with pytest.raises(UserError, match="is the input file"):
    image_io.check_not_input(str(tmp_path / "hard.png"), files)
