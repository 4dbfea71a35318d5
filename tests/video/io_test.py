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


# Audio: a sine track in tiny clips (64x48, 12 fps, 1 s), read back and checked by its spectrum.

def _clip_with_sound(path, codec="aac", rate=22050, seconds=1.0, freq=440.0, **tone_kw):
  from tests.video.audio_util import tone, write_clip
  frames = _frames(int(seconds * 12), 48, 64)
  write_clip(str(path), frames, 12, tone(seconds, rate, freq, **tone_kw), rate=rate, codec=codec)
  return frames


def _write(src, out, frames, **copy_kw):
  audio = vio.AudioCopy(str(src), str(out), **copy_kw)
  writer = vio.VideoWriter(str(out), 12, frames.shape[1], frames.shape[2], audio=audio)
  for f in frames:
    writer.write(f)
  writer.close()
  return audio


def test_probe_reports_the_audio_stream(tmp_path):
  _clip_with_sound(tmp_path / "a.mp4")
  info = vio.probe(str(tmp_path / "a.mp4"))
  assert (info.audio.codec, info.audio.sample_rate, info.audio.channels, info.audio.others) == (
      "aac", 22050, 1, 0)
  assert str(info.audio) == "aac, 22050 Hz, mono"
  vio.write_video(str(tmp_path / "silent.mp4"), _frames(3))
  assert vio.probe(str(tmp_path / "silent.mp4")).audio is None
  with pytest.raises(UserError, match="silent.mp4 has no audio stream"):
    vio.AudioCopy(str(tmp_path / "silent.mp4"), str(tmp_path / "o.mp4"))


def test_audio_is_remuxed_untouched_and_frames_unchanged(tmp_path):
  from tests.video.audio_util import audio_packets, peak_hz, read_audio
  frames = _clip_with_sound(tmp_path / "in.mp4")
  audio = _write(tmp_path / "in.mp4", tmp_path / "out.mp4", frames)
  assert (audio.mode, audio.reason, audio.summary) == ("copy", None, "aac audio copied")
  # Remuxed: the very same AAC packets, no second generation of lossy coding.
  assert audio_packets(str(tmp_path / "out.mp4")) == audio_packets(str(tmp_path / "in.mp4"))
  x, rate, codec, seconds = read_audio(str(tmp_path / "out.mp4"))
  assert (codec, rate, x.shape[0]) == ("aac", 22050, 1)
  assert seconds == pytest.approx(1.0, abs=0.01)
  assert peak_hz(x[0], rate) == pytest.approx(440, abs=3)
  # The frames are encoded as well as without sound. Not compared bit for bit: this libx264
  # build is not always repeatable (two encodings of the same frames differed on ~2% of runs
  # here, up to 7 levels on 19% of the samples, sound or not).
  vio.write_video(str(tmp_path / "silent.mp4"), frames, 12)
  with_sound = vio.read_video(str(tmp_path / "out.mp4"))[0].astype(np.float64)
  silent = vio.read_video(str(tmp_path / "silent.mp4"))[0].astype(np.float64)
  psnr = lambda x: 10 * np.log10(255 ** 2 / np.mean((x - frames) ** 2))
  assert with_sound.shape == silent.shape == frames.shape
  assert psnr(with_sound) > 28 and abs(psnr(with_sound) - psnr(silent)) < 0.3
  assert np.mean(np.abs(with_sound - silent)) < 1.0


@pytest.mark.parametrize("src,codec,rate,out,why", [
    ("in.mkv", "mp2", 22050, "out.m4v", ".m4v files cannot hold mp2"),
    # PCM at a rate AAC lacks: re-encoded at the next rate up.
    ("in.mov", "pcm_s16le", 37800, "out.mp4", "few players read pcm_s16le audio in .mp4")])
def test_audio_reencoded_to_aac_where_the_container_cannot_hold_it(tmp_path, src, codec, rate,
                                                                    out, why):
  from tests.video.audio_util import peak_hz, read_audio
  frames = _clip_with_sound(tmp_path / src, codec, rate, freq=660.0)
  audio = _write(tmp_path / src, tmp_path / out, frames)
  assert audio.mode == "aac" and why in audio.reason, audio.reason
  x, out_rate, out_codec, seconds = read_audio(str(tmp_path / out))
  assert (out_codec, out_rate) == ("aac", 44100 if rate == 37800 else rate)
  assert seconds == pytest.approx(1.0, abs=0.03)
  assert peak_hz(x[0], out_rate) == pytest.approx(660, abs=3)
  assert 0.4 < np.abs(x[0, out_rate // 10:-out_rate // 10]).max() < 0.6  # Level kept (0.5).


@pytest.mark.parametrize("src,codec,out", [("in.mp4", "aac", "out.mp4"),   # remuxed
                                           ("in.mkv", "mp2", "out.m4v")])  # re-encoded
def test_audio_of_a_time_range_is_cut_in_sync(tmp_path, src, codec, out):
  from tests.video.audio_util import peak_hz, read_audio
  # 440 Hz, then 880 Hz from 0.5 s on; the output is [0.25, 0.75) s: the switch at 0.25 s.
  frames = _clip_with_sound(tmp_path / src, codec, switch_at=0.5, freq2=880.0)
  audio = _write(tmp_path / src, tmp_path / out, frames[3:9], start=0.25, end=0.75)
  x, rate, _, seconds = read_audio(str(tmp_path / out))
  assert seconds == pytest.approx(0.5, abs=0.05)  # Remuxing cuts at packets (46 ms here).
  q = rate // 10
  assert peak_hz(x[0, :2 * q], rate) == pytest.approx(440, abs=6)
  assert peak_hz(x[0, 3 * q:5 * q], rate) == pytest.approx(880, abs=6)
  # Where the switch falls: the zero-crossing rate of 10 ms windows doubles at 0.25 s.
  w = rate // 100
  hz = [np.sum(np.diff(np.signbit(x[0, i:i + w])) != 0) * 50 for i in range(0, 5 * q - w, w)]
  switch = (np.argmax(np.array(hz) > 660) + 0.5) * 0.01
  assert switch == pytest.approx(0.25, abs=0.015), (audio.mode, hz)
  with pytest.raises(ValueError, match="empty"):
    vio.AudioCopy(str(tmp_path / src), str(tmp_path / out), start=0.5, end=0.5)


def test_broken_audio_stops_the_sound_not_the_video(tmp_path, monkeypatch):
  import av
  frames = _clip_with_sound(tmp_path / "in.mp4")
  copied = vio.AudioCopy._copied

  def breaks_at_half(self, stream):  # Stands in for a corrupt packet 0.5 s into the track.
    for t, packet in copied(self, stream):
      if t >= 0.5:
        raise av.error.InvalidDataError(1094995529, "Invalid data found")
      yield t, packet

  monkeypatch.setattr(vio.AudioCopy, "_copied", breaks_at_half)
  lines = []
  audio = vio.AudioCopy(str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), log=lines.append)
  writer = vio.VideoWriter(str(tmp_path / "out.mp4"), 12, 48, 64, audio=audio)
  for f in frames:
    writer.write(f)
  writer.close()
  assert len(lines) == 1 and lines[0].startswith("warning: the audio of"), lines
  assert "stops at 0.4" in lines[0] and "Invalid data" in lines[0], lines
  info = vio.probe(str(tmp_path / "out.mp4"))
  assert info.num_frames == 12 and info.audio is not None
