"""Tests of video IO: probing, decoding, masks, writing, and their clear errors."""

import fractions
import os

import numpy as np
import pytest
from PIL import Image

from flowinpaint.errors import UserError
from flowinpaint.video import io as vio


def _frames(t=5, h=24, w=32, seed=0):
  # Smooth content: a lossy codec keeps it within a few levels (random noise it would not).
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 60.0 + 40 * seed)], -1)
  return np.stack([np.roll(base, i, axis=1) for i in range(t)]).astype(np.uint8)


def test_natural_sort(tmp_path):
  for name in ["10.png", "2.png", "1.png", "notes.txt"]:
    if name.endswith(".png"):
      Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    else:
      (tmp_path / name).write_text("x")
  assert [os.path.basename(p) for p in vio.list_images(str(tmp_path))] == [
      "1.png", "2.png", "10.png"]


@pytest.mark.parametrize("h,w", [(24, 32), (23, 31)])
def test_mp4_round_trip_keeps_fps_count_and_size(tmp_path, h, w):
  frames = _frames(7, h, w)
  path = str(tmp_path / "v.mp4")
  vio.write_video(path, frames, fractions.Fraction(30000, 1001))
  info = vio.probe(path)
  assert (info.num_frames, info.height, info.width) == (7, h, w)
  assert info.fps == fractions.Fraction(30000, 1001)
  decoded, fps = vio.read_video(path)
  assert decoded.shape == frames.shape
  assert np.abs(decoded.astype(int) - frames).mean() < 8  # lossy codec (tiny frames, steep gradients), but close


def test_folder_round_trip_is_exact(tmp_path):
  frames = _frames(3)
  vio.write_video(str(tmp_path / "f"), frames)
  decoded, _ = vio.read_video(str(tmp_path / "f"))
  np.testing.assert_array_equal(decoded, frames)


def test_bad_videos(tmp_path):
  (tmp_path / "empty.mp4").write_bytes(b"")
  (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
  with pytest.raises(UserError, match="empty"):
    vio.probe(str(tmp_path / "empty.mp4"))
  with pytest.raises(UserError, match="junk.mp4"):
    info = vio.probe(str(tmp_path / "junk.mp4"))
    list(vio.iter_frames(info))
  with pytest.raises(UserError, match="does not exist"):
    vio.probe(str(tmp_path / "missing.mp4"))
  os.mkdir(tmp_path / "nothing")
  with pytest.raises(UserError, match="no images"):
    vio.probe(str(tmp_path / "nothing"))


def test_frames_of_different_sizes(tmp_path):
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "0.png")
  Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(tmp_path / "1.png")
  with pytest.raises(UserError, match="one size"):
    list(vio.iter_frames(vio.probe(str(tmp_path))))


def test_masks(tmp_path):
  os.mkdir(tmp_path / "m")
  for i in range(3):
    m = np.zeros((8, 10), np.uint8)
    m[i, i] = 200
    Image.fromarray(m).save(tmp_path / "m" / f"{i}.png")
  src = vio.MaskSource(str(tmp_path / "m"), 3, 8, 10)
  assert src[2][2, 2] and src[2].sum() == 1
  with pytest.raises(UserError, match="3 masks .* 4 frames"):
    vio.MaskSource(str(tmp_path / "m"), 4, 8, 10)
  with pytest.raises(UserError, match="10x8 but the frames are 12x8"):
    vio.MaskSource(str(tmp_path / "m"), 3, 8, 12)
  one = vio.MaskSource(str(tmp_path / "m" / "1.png"), 50, 8, 10)
  assert one[0][1, 1] and one[49][1, 1]


def test_mask_threshold_any_channel(tmp_path):
  rgb = np.zeros((4, 4, 3), np.uint8)
  rgb[0, 0, 2] = 128
  rgb[1, 1] = 127
  Image.fromarray(rgb).save(tmp_path / "m.png")
  m = vio.read_mask(str(tmp_path / "m.png"))
  assert m[0, 0] and not m[1, 1] and m.sum() == 1


def test_check_output(tmp_path):
  inp = str(tmp_path / "in.mp4")
  with pytest.raises(UserError, match="is the input"):
    vio.check_output(inp, inp, str(tmp_path / "m"))
  assert vio.check_output(str(tmp_path / "o.mp4"), inp, "m") == "video"
  assert vio.check_output(str(tmp_path / "o"), inp, "m") == "folder"
  with pytest.raises(UserError, match="use a video file"):
    vio.check_output(str(tmp_path / "o.gif"), inp, "m")
