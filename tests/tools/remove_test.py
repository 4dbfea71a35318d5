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
                      "--max-frames-in-memory", "5", "--window-overlap", "2"]) == 0
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


def test_dip_fill_warns_of_its_cost_on_a_cpu(tmp_path, clip, monkeypatch, capsys):
  from flowinpaint import dip, remove
  calls = []

  def quick(self, rgb, mask):  # Stands in for hours of fitting: the warning is what is tested.
    calls.append(1)
    return np.where(np.asarray(mask)[..., None] > 0, 0, rgb).astype(np.uint8)

  monkeypatch.setattr(dip.DIPInpainter, "__call__", quick)
  one = np.zeros((64, 96), np.uint8)
  one[24:40, 36:60] = 255
  Image.fromarray(one).save(tmp_path / "logo.png")
  os.makedirs(tmp_path / "frames")
  for i, f in enumerate(clip.frames[:3]):
    Image.fromarray(f).save(tmp_path / "frames" / f"{i}.png")
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "logo.png"),
                      "--output", str(tmp_path / "out"), "--quiet", "--fill-method", "dip"]) == 0
  err = capsys.readouterr().err
  assert calls and "warning: --fill-method dip" in err and "hours per frame on a CPU" in err


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
  os.link(tmp_path / "in.mp4", tmp_path / "linked.mp4")  # Another name, the same file.
  Image.fromarray(np.full((64, 96), 255, np.uint8)).save(tmp_path / "all.png")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "all.png",
                         "--output", tmp_path / "linked.mp4"), "is the input")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "all.png",
                         "--output", tmp_path / "o.mp4", "--max-frames-in-memory", "5",
                         "--window-overlap", "3"), "--window-overlap", "between 0 and 2")
  assert not os.path.exists(tmp_path / "o.mp4")


def _write_vfr(path, frames, times_ms):
  """An H.264 mp4 whose frames are shown at `times_ms` (a variable frame rate)."""
  import fractions
  import av
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fractions.Fraction(4))
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, 1000)
    for frame, t in zip(frames, times_ms):
      vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
      vf.pts, vf.time_base = t, fractions.Fraction(1, 1000)
      for packet in stream.encode(vf):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def _frame_times(path):
  import av
  with av.open(str(path)) as container:
    return [round(f.time, 3) for f in container.decode(video=0)]


def test_variable_frame_rate_keeps_every_frames_time(tmp_path, clip, capsys):
  from flowinpaint import remove
  times_ms = [0, 100, 200, 800, 900, 1000, 1320, 2040]
  _write_vfr(tmp_path / "vfr.mp4", clip.frames, times_ms)
  assert _frame_times(tmp_path / "vfr.mp4") == [t / 1000 for t in times_ms]
  _save_masks(tmp_path / "masks", clip.masks)
  args = ["--video", str(tmp_path / "vfr.mp4"), "--masks", str(tmp_path / "masks"), "--quiet"]
  assert remove.main(args + ["--output", str(tmp_path / "out.mp4")]) == 0
  assert _frame_times(tmp_path / "out.mp4") == [t / 1000 for t in times_ms]
  err = capsys.readouterr().err
  assert "note: " in err and "variable frame rate (frames 100 to 720 ms apart)" in err, err
  # --fps keeps the first frame of each 1/2 s and its time.
  assert remove.main(args + ["--output", str(tmp_path / "half.mp4"), "--fps", "2"]) == 0
  assert _frame_times(tmp_path / "half.mp4") == [0.0, 0.8, 1.0, 2.04]


def test_one_progress_bar_without_made_up_rates(tmp_path, clip, capsys):
  from flowinpaint import remove
  os.makedirs(tmp_path / "frames")
  for i, f in enumerate(clip.frames):
    Image.fromarray(f).save(tmp_path / "frames" / f"{i}.png")
  _save_masks(tmp_path / "masks", clip.masks)
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                      "--output", str(tmp_path / "out"), "--max-frames-in-memory", "5"]) == 0
  err = capsys.readouterr().err
  bars = [p for p in err.replace("\r", "\n").splitlines() if "%|" in p]
  assert bars and {b.split("%|")[0].rsplit(" ", 1)[0].strip() for b in bars} == {"removing"}
  # No rate or time left computed over wall time that other stages share.
  assert not any("/s" in b or "s/" in b or "<" in b for b in bars), bars[-3:]
  assert "8/8 frames written" in bars[-1] and bars[-1].split("%|")[0].endswith("100"), bars[-1]
  summary = [l for l in err.splitlines() if l.startswith("time per stage: ")]
  assert len(summary) == 1 and all(f"{s} " in summary[0] for s in (
      "read", "flow", "complete", "propagate", "fill", "write")), err


def test_flownet2_flow_from_converted_weights(tmp_path, clip):
  """`--flow flownet2:DIR` with NVIDIA-format weights converted by the convert tool (random
  FlowNet2S weights: plumbing and shapes; the numerics are tests/weights/flownet2_torch_test.py)."""
  from flowinpaint import convert
  from tests.weights import flownet2_release, torch_legacy
  sd = flownet2_release.random_state_dict(0, network=flownet2_release.flownets(6))
  torch_legacy.save(flownet2_release.checkpoint(sd), str(tmp_path / "FlowNet2-S.pth.tar"))
  target, _ = convert.convert("flownet2_pth", str(tmp_path / "FlowNet2-S.pth.tar"),
                              str(tmp_path / "fn2"))
  _save_masks(tmp_path / "masks", clip.masks)
  vio.write_video(str(tmp_path / "in.mp4"), clip.frames, 12)
  res = run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "masks", "--output",
            tmp_path / "out", "--flow", f"flownet2:{target}", "--quiet")
  assert res.returncode == 0, res.stderr
  out = np.stack([vio.read_image(n) for n in vio.list_images(str(tmp_path / "out"))])
  assert out.shape == (8, 64, 96, 3) and out.dtype == np.uint8
  decoded = np.stack(list(vio.iter_frames(vio.probe(str(tmp_path / "in.mp4")))))
  np.testing.assert_array_equal(out[~clip.masks], decoded[~clip.masks])
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "masks",
                         "--output", tmp_path / "o", "--flow", f"flownet2:{tmp_path / 'nope'}"),
                     f"--flow flownet2:{tmp_path / 'nope'}", "does not exist", "flownet2_pth")
  _assert_user_error(run("--video", tmp_path / "in.mp4", "--masks", tmp_path / "masks",
                         "--output", tmp_path / "o", "--flow",
                         f"flownet2:{tmp_path / 'FlowNet2-S.pth.tar'}"), "is a file", "convert")
  assert not os.path.exists(tmp_path / "o")


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
