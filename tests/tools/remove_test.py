"""End-to-end tests of `python -m flowinpaint.remove` (tiny synthetic clips)."""

import os

import numpy as np
import pytest
from PIL import Image

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import io as vio
from tests.tools import cli

pytestmark = pytest.mark.slow



def run(*args):
  return cli.run_module("flowinpaint.remove", *args)


_assert_user_error = cli.assert_user_error


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
  assert info.audio is None and "audio" not in res.stderr  # A silent input stays silent.


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


def test_patchmatch_fills_what_no_frame_shows(tmp_path, clip, monkeypatch):
  from flowinpaint import inference, remove
  calls = []
  original = inference.PatchMatchInpainter.__call__

  def counted(self, rgb, mask):
    calls.append(int(np.asarray(mask).sum()))
    return original(self, rgb, mask)

  monkeypatch.setattr(inference.PatchMatchInpainter, "__call__", counted)
  os.makedirs(tmp_path / "frames")
  for i, f in enumerate(clip.frames):
    Image.fromarray(f).save(tmp_path / "frames" / f"{i}.png")
  # One mask for every frame: no frame ever shows what is under it, so the fill method does it.
  one = np.zeros((64, 96), np.uint8)
  one[24:40, 36:60] = 255
  Image.fromarray(one).save(tmp_path / "logo.png")
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "logo.png"),
                      "--output", str(tmp_path / "out"), "--quiet",
                      "--fill-method", "patchmatch"]) == 0
  assert calls and all(n > 0 for n in calls)
  out = np.stack([vio.read_image(n) for n in vio.list_images(str(tmp_path / "out"))])
  hole = one > 127
  np.testing.assert_array_equal(out[:, ~hole], clip.frames[:, ~hole])


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


# Sound: the clip with a 440 Hz track as long as its 8 frames at 12 fps (2/3 s).

@pytest.fixture(scope="module")
def sound_clip(tmp_path_factory, clip):
  from tests.video.audio_util import tone, write_clip
  folder = tmp_path_factory.mktemp("sound")
  write_clip(str(folder / "in.mp4"), clip.frames, 12, tone(8 / 12, 22050, 440.0))
  write_clip(str(folder / "in.mkv"), clip.frames, 12, tone(8 / 12, 22050, 440.0), codec="mp2")
  _save_masks(folder / "masks", clip.masks)
  return folder


def _check_sound(path, seconds=8 / 12):
  from tests.video.audio_util import peak_hz, read_audio
  sound = read_audio(str(path))
  assert sound is not None, f"{path} has no audio stream"
  x, rate, codec, got = sound
  assert (codec, rate, x.shape[0]) == ("aac", 22050, 1)
  assert got == pytest.approx(seconds, abs=0.03)
  assert peak_hz(x[0], rate) == pytest.approx(440, abs=4)


def test_video_output_keeps_the_sound(tmp_path, sound_clip):
  from tests.video.audio_util import audio_packets
  res = run("--video", sound_clip / "in.mp4", "--masks", sound_clip / "masks", "--output",
            tmp_path / "out.mp4", "--quiet")
  assert res.returncode == 0, res.stderr
  assert "with the aac audio copied" in res.stderr.strip().splitlines()[-1], res.stderr
  assert "note:" not in res.stderr, res.stderr
  _check_sound(tmp_path / "out.mp4")
  assert audio_packets(str(tmp_path / "out.mp4")) == audio_packets(str(sound_clip / "in.mp4"))
  assert vio.probe(str(tmp_path / "out.mp4")).num_frames == 8


def test_fewer_frames_per_second_keep_all_the_sound_and_no_audio_drops_it(tmp_path, sound_clip,
                                                                           capsys):
  from flowinpaint import remove
  args = ["--video", str(sound_clip / "in.mp4"), "--masks", str(sound_clip / "masks"),
          "--quiet", "--fps", "6"]
  assert remove.main(args + ["--output", str(tmp_path / "out.mp4")]) == 0
  info = vio.probe(str(tmp_path / "out.mp4"))
  assert (info.num_frames, info.fps) == (4, 6)  # Still 2/3 s, so is the sound.
  _check_sound(tmp_path / "out.mp4")
  assert remove.main(args + ["--output", str(tmp_path / "mute.mp4"), "--no-audio"]) == 0
  assert vio.probe(str(tmp_path / "mute.mp4")).audio is None
  assert "audio" not in capsys.readouterr().err.replace("audio copied", "")


def test_sound_the_output_container_cannot_hold_is_reencoded(tmp_path, sound_clip, capsys):
  from flowinpaint import remove
  assert remove.main(["--video", str(sound_clip / "in.mkv"), "--masks", str(sound_clip / "masks"),
                      "--output", str(tmp_path / "out.m4v"), "--quiet"]) == 0
  err = capsys.readouterr().err
  notes = [l for l in err.splitlines() if l.startswith("note:")]
  assert notes == ["note: .m4v files cannot hold mp2 audio as it is: re-encoding the audio to "
                   "AAC"], err
  assert "with the mp2 audio re-encoded to AAC" in err
  _check_sound(tmp_path / "out.m4v")


def test_frame_folder_output_ignores_the_sound_with_one_note(tmp_path, sound_clip, capsys):
  from flowinpaint import remove
  args = ["--video", str(sound_clip / "in.mp4"), "--masks", str(sound_clip / "masks"), "--quiet"]
  assert remove.main(args + ["--output", str(tmp_path / "out")]) == 0
  assert len(vio.list_images(str(tmp_path / "out"))) == 8
  notes = [l for l in capsys.readouterr().err.splitlines() if "audio" in l]
  assert len(notes) == 1 and notes[0].startswith("note: ") and "not kept" in notes[0], notes
  assert remove.main(args + ["--output", str(tmp_path / "out2"), "--no-audio"]) == 0
  assert "audio" not in capsys.readouterr().err
