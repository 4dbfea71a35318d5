"""End-to-end tests of `python -m flowinpaint.remove` (tiny synthetic clips)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import io as vio

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "flowinpaint.remove", *map(str, args)],
                        capture_output=True, text=True, env=env, timeout=300)


def _assert_user_error(res, *fragments):
  assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
  assert "Traceback" not in res.stderr, res.stderr
  lines = [l for l in res.stderr.strip().splitlines() if l.startswith("error:")]
  assert len(lines) == 1, res.stderr
  for f in fragments:
    assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def clip():
  return make_clip("astronaut", 8, 64, 96, seed=0, object_size=0.35, fps=12)


def _save_masks(folder, masks):
  os.makedirs(folder, exist_ok=True)
  for i, m in enumerate(masks):
    Image.fromarray((m * 255).astype(np.uint8)).save(os.path.join(folder, f"m{i}.png"))


def test_mp4_in_mp4_out_keeps_fps_count_and_size(tmp_path, clip):
  vio.write_video(str(tmp_path / "in.mp4"), clip.frames, 12)
  _save_masks(tmp_path / "masks", clip.masks)
  res = run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "masks", "--output",
            tmp_path / "out.mp4", "--dilate", 2)
  assert res.returncode == 0, res.stderr
  info = vio.probe(str(tmp_path / "out.mp4"))
  assert (info.num_frames, info.height, info.width, info.fps) == (8, 64, 96, 12)
  assert not os.path.exists(tmp_path / "out.partial.mp4")


def test_folders_in_and_out_exact_outside_masks(tmp_path, clip):
  from flowinpaint import remove
  os.makedirs(tmp_path / "frames")
  for i, f in enumerate(clip.frames):  # unpadded names: natural sort order matters
    Image.fromarray(f).save(tmp_path / "frames" / f"{i}.png")
  _save_masks(tmp_path / "masks", clip.masks)
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                      "--output", str(tmp_path / "out"), "--quiet",
                      "--max-frames-in-memory", "5"]) == 0
  names = vio.list_images(str(tmp_path / "out"))
  assert [os.path.basename(n) for n in names] == [f"{i}.png" for i in range(8)]
  out = np.stack([vio.read_image(n) for n in names])
  np.testing.assert_array_equal(out[~clip.masks], clip.frames[~clip.masks])
  assert not np.array_equal(out[clip.masks], clip.frames[clip.masks])


def test_one_mask_for_all_frames_and_fps_reduction(tmp_path, clip):
  from flowinpaint import remove
  vio.write_video(str(tmp_path / "in.mp4"), clip.frames, 12)
  one = np.zeros((64, 96), np.uint8)
  one[20:40, 30:60] = 255
  Image.fromarray(one).save(tmp_path / "logo.png")
  assert remove.main(["--video", str(tmp_path / "in.mp4"), "--masks", str(tmp_path / "logo.png"),
                      "--output", str(tmp_path / "out"), "--quiet", "--fps", "6",
                      "--resize", "48x32"]) == 0
  out = np.stack([vio.read_image(n) for n in vio.list_images(str(tmp_path / "out"))])
  assert out.shape == (4, 32, 48, 3)


def test_bad_inputs_give_one_clear_error(tmp_path, clip):
  vio.write_video(str(tmp_path / "in.mp4"), clip.frames, 12)
  _save_masks(tmp_path / "masks", clip.masks[:5])
  (tmp_path / "empty.mp4").write_bytes(b"")
  (tmp_path / "junk.mp4").write_bytes(os.urandom(4000))
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
  _assert_user_error(run("--video", tmp_path / "empty.mp4", "--masks", tmp_path / "small.png",
                         "--output", tmp_path / "o.mp4"), "empty")
  _assert_user_error(run("--video", tmp_path / "junk.mp4", "--masks", tmp_path / "small.png",
                         "--output", tmp_path / "o.mp4"), "junk.mp4")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "masks",
                         "--output", tmp_path / "o.mp4"), "5 masks", "8 frames")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "small.png",
                         "--output", tmp_path / "o.mp4"), "10x10", "96x64")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "small.png",
                         "--output", tmp_path / "in.mp4"), "is the input")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "small.png"),
                     "--output")
  assert not os.path.exists(tmp_path / "o.mp4")
