"""Video IO: decode video files (PyAV) or frame folders, read masks, write mp4 or PNG frames.

Readers stream frames so that long videos never sit in memory whole. Every bad input raises a
UserError with one line that names the file and the fix. `AudioCopy` carries the audio track of an
input video into a `VideoWriter`'s output (remuxed, or re-encoded to AAC where it must be).
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import re
import sys
import tempfile
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from flowinpaint.errors import UserError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(name: str) -> list:
  """Sort key so that '2.png' < '10.png'."""
  return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def list_images(folder: str) -> list[str]:
  """Image files in `folder`, natural sort order."""
  names = [n for n in os.listdir(folder)
           if n.lower().endswith(IMAGE_EXTS) and not n.startswith(".")]
  return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def read_image(path: str) -> np.ndarray:
  """An RGB uint8 [H,W,3] image (alpha dropped, grey expanded); UserError when unreadable."""
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ("I;16", "I", "F"):
        im = Image.fromarray((np.asarray(im, np.float64) / 256).clip(0, 255).astype(np.uint8))
      return np.asarray(im.convert("RGB"))
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f"cannot read image {path}: {e}") from None


def mask_from_image(img: np.ndarray) -> np.ndarray:
  """Hole mask from a mask image: a pixel > 127 in any channel is a hole."""
  img = np.asarray(img)
  return (img > 127).any(-1) if img.ndim == 3 else img > 127


def read_mask(path: str) -> np.ndarray:
  """A bool [H,W] hole mask (> 127 in any channel; alpha counts as a channel)."""
  try:
    with Image.open(path) as im:
      im.load()
      arr = np.asarray(im.convert("RGBA") if im.mode in ("RGBA", "LA", "PA") else
                       im.convert("L") if im.mode == "P" else im)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read mask {path}: {e}") from None
  if arr.dtype == np.uint16 or arr.dtype == np.int32:
    arr = arr / 257.0
  if arr.ndim == 3 and arr.shape[-1] == 4:
    # White strokes on a transparent layer and black-on-white masks both work: a pixel is a
    # hole when its colour is bright and it is not fully transparent.
    return (arr[..., :3] > 127).any(-1) & (arr[..., 3] > 127)
  return mask_from_image(arr)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  """The audio stream of a video file that a player would pick (`streams.best("audio")`)."""
  index: int
  codec: str  # Canonical name (mp3, not the decoder's mp3float).
  sample_rate: int
  channels: int
  others: int = 0  # Further audio streams in the file (not copied).

  def __str__(self) -> str:
    ch = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
    return f"{self.codec}, {self.sample_rate} Hz, {ch}"


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What is known about an input before decoding: frame count, size and frame rate."""
  path: str
  num_frames: int
  height: int
  width: int
  fps: fractions.Fraction
  is_folder: bool
  frame_names: tuple[str, ...] = ()
  audio: AudioInfo | None = None  # None: a frame folder, or a file without sound.
  # Each frame's presentation time in seconds from the first (video files whose packets all
  # carry one); None: a frame folder, or times unknown (then frames are 1 / fps apart).
  frame_times: tuple[float, ...] | None = None

  def variable_rate(self) -> tuple[float, float] | None:
    """(shortest, longest) seconds between frames when they differ by more than half a frame
    at the average rate (a variable-frame-rate video), else None."""
    if not self.frame_times or len(self.frame_times) < 3:
      return None
    gaps = np.diff(np.asarray(self.frame_times))
    if gaps.max() - gaps.min() <= 0.5 / float(self.fps):
      return None
    return float(gaps.min()), float(gaps.max())


def _av():
  import av  # Lazy: PyAV is only needed for video files.
  return av


def probe(path: str, *, default_fps: float = 24.0) -> VideoInfo:
  """Frame count, size and fps of a video file or a frame folder; UserError when unusable."""
  if not os.path.exists(path):
    raise UserError(f"input {path} does not exist")
  if os.path.isdir(path):
    files = list_images(path)
    if not files:
      raise UserError(f"frame folder {path} has no images ({', '.join(IMAGE_EXTS)})")
    first = read_image(files[0])
    return VideoInfo(path, len(files), first.shape[0], first.shape[1],
                     fractions.Fraction(default_fps).limit_denominator(1001), True,
                     tuple(os.path.basename(f) for f in files))
  if os.path.getsize(path) == 0:
    raise UserError(f"video {path} is empty (0 bytes)")
  av = _av()
  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise UserError(f"{path} has no video stream")
      stream = container.streams.video[0]
      fps = stream.average_rate or stream.guessed_rate or fractions.Fraction(default_fps)
      h, w = stream.codec_context.height, stream.codec_context.width
      audio = _audio_info(container)
      # Some containers carry no frame count: the packets are counted (no decoding), in the
      # same pass that reads their times.
      count, times = _packet_times(container, stream)
      n = stream.frames or count
      if times is not None and len(times) != n:
        times = None
  except UserError:
    raise
  except (av.FFmpegError, OSError, ValueError) as e:
    raise UserError(f"cannot open video {path}: {e}") from None
  if n == 0 or not h or not w:
    raise UserError(f"video {path} has no frames")
  return VideoInfo(path, int(n), int(h), int(w), fractions.Fraction(fps), False, audio=audio,
                   frame_times=times)


def _packet_times(container, stream) -> tuple[int, tuple[float, ...] | None]:
  """(number of video packets, their presentation times in seconds from the first, sorted; None
  when a packet has no timestamp)."""
  stamps = [p.pts for p in container.demux(stream) if p.size]
  if not stamps or any(t is None for t in stamps) or stream.time_base is None:
    return len(stamps), None
  stamps.sort()
  return len(stamps), tuple(float((t - stamps[0]) * stream.time_base) for t in stamps)


def _audio_info(container) -> AudioInfo | None:
  stream = container.streams.best("audio")
  if stream is None:
    return None
  ctx = stream.codec_context
  try:
    codec = ctx.codec.canonical_name
  except Exception:  # No decoder for it in this FFmpeg: the stream can still be remuxed.
    codec = ctx.name or "unknown"
  return AudioInfo(stream.index, codec, int(ctx.sample_rate or 0), int(ctx.channels or 0),
                   len(container.streams.audio) - 1)


def iter_frames(info: VideoInfo) -> Iterator[np.ndarray]:
  """Yields RGB uint8 [H,W,3] frames in order; UserError on a corrupt file or frame."""
  if info.is_folder:
    for name in info.frame_names:
      path = os.path.join(info.path, name)
      frame = read_image(path)
      if frame.shape[:2] != (info.height, info.width):
        raise UserError(f"frame {path} is {frame.shape[1]}x{frame.shape[0]}, but the first frame "
                        f"is {info.width}x{info.height}; all frames must have one size")
      yield frame
    return
  av = _av()
  count = 0
  try:
    with av.open(info.path) as container:
      stream = container.streams.video[0]
      stream.thread_type = "AUTO"
      for frame in container.decode(stream):
        count += 1
        yield _to_rgb(frame)
  except av.FFmpegError as e:
    raise UserError(f"cannot decode video {info.path} after {count} frames: {e}") from None
  if count == 0:
    raise UserError(f"video {info.path} has no decodable frames (corrupt?)")


def _to_rgb(frame) -> np.ndarray:
  """RGB uint8 from a decoded frame.

  Subsampled YUV goes through 4:4:4 (bicubic chroma) first: swscale's direct yuv420p -> rgb24
  path darkens every channel by about one level on average, which would show up as a visible
  difference between frames that went through the tool and those that did not.
  """
  name = frame.format.name
  if name.startswith("yuv") and not name.startswith("yuv444"):
    frame = frame.reformat(format="yuv444p", interpolation="BICUBIC")
  return frame.to_ndarray(format="rgb24")


class MaskSource:
  """Per-frame hole masks from a folder (one per frame) or one image for every frame."""

  def __init__(self, path: str, num_frames: int, height: int, width: int):
    if not os.path.exists(path):
      raise UserError(f"masks {path} do not exist")
    if os.path.isdir(path):
      self.files = list_images(path)
      if not self.files:
        raise UserError(f"mask folder {path} has no images")
      if len(self.files) == 1:
        self.single = read_mask(self.files[0])
      elif len(self.files) != num_frames:
        raise UserError(f"{len(self.files)} masks in {path} but the video has {num_frames} "
                        "frames; give one mask per frame, or a single mask for all frames")
      else:
        self.single = None
    else:
      self.files = [path]
      self.single = read_mask(path)
    self.path, self.height, self.width = path, height, width
    first = self.single if self.single is not None else read_mask(self.files[0])
    self._check(first, self.files[0])

  def _check(self, mask: np.ndarray, path: str) -> None:
    if mask.shape != (self.height, self.width):
      raise UserError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but the frames are "
                      f"{self.width}x{self.height}")

  def __getitem__(self, i: int) -> np.ndarray:
    if self.single is not None:
      return self.single
    mask = read_mask(self.files[i])
    self._check(mask, self.files[i])
    return mask


def check_output(output: str, input_path: str, masks_path: str) -> str:
  """Returns 'video' or 'folder' for OUT; UserError when OUT would overwrite an input."""
  out = os.path.realpath(output)
  for p, what in ((input_path, "input"), (masks_path, "masks")):
    if out == os.path.realpath(p) or _same_inode(output, p):
      raise UserError(f"output {output} is the {what}; choose another output path")
  ext = os.path.splitext(output)[1].lower()
  if ext in (".mp4", ".mov", ".mkv", ".avi", ".m4v"):
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
      raise UserError(f"output folder {parent} does not exist")
    return "video"
  if ext:
    raise UserError(f"output {output}: use a video file (.mp4, .mkv, .mov, .avi) or a folder")
  if os.path.isdir(out) and os.path.realpath(input_path) == out:
    raise UserError(f"output {output} is the input folder")
  return "folder"


def _same_inode(a: str, b: str) -> bool:
  """Whether two existing paths are one file (a hard link has another name, the same inode)."""
  try:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
  except OSError:
    return False


# FFmpeg stores PCM in mp4 (ISO/IEC 23003-5), but few players read it there: such audio is
# re-encoded to AAC for these outputs so that the result plays everywhere (.mov/.mkv keep it).
_PCM_TO_AAC_EXTS = (".mp4", ".m4v")


def _trial_header(ext: str, add_stream: Callable) -> None:
  """Writes the header of a scratch `ext` file with the stream `add_stream(container)` adds.

  Some muxers accept a codec in principle and refuse it (or its settings) only when they write the
  header (flac in .mov, say): finding that out now, rather than after the whole video was
  processed, needs a header written.
  """
  av = _av()
  with tempfile.TemporaryDirectory() as tmp, av.logging.Capture():
    container = av.open(os.path.join(tmp, "trial" + ext), "w")
    try:
      add_stream(container)
      container.start_encoding()
    finally:
      try:
        container.close()
      except Exception:  # The error that matters is the one above.
        pass


class AudioCopy:
  """Carries the audio track of a video file into a VideoWriter's output, in sync with the frames.

  Packets are copied as they are (remuxed) when the output container takes the codec (AAC, MP3,
  Opus ... in mp4), and re-encoded to AAC otherwise. `start` and `end` are seconds on the source
  video's clock (0 = its first frame): the audio of [start, end) is copied and shifted so that
  `start` is the output's time 0, which keeps a clip cut from the middle of a video in sync. With
  end None the audio runs to its own end (it may outlast the video, as it does in the source).
  A remuxed cut keeps the packet just before `start` as decoder pre-roll (timestamps before 0,
  which mp4/mov hide with an edit list); a re-encoded cut is sample exact.

  Attributes:
    source: the input video file.
    info: its audio stream.
    mode: "copy" (remux) or "aac" (re-encode).
    reason: why it is re-encoded, or None.
    log: where a mid-run warning goes (one line; stderr by default).
  """

  def __init__(self, source: str, output: str, *, start: float = 0.0, end: float | None = None,
               log: Callable[[str], None] | None = None):
    if start < 0 or (end is not None and end <= start):
      raise ValueError(f"audio range [{start}, {end}) is empty or negative")
    av = _av()
    self.source, self.log = source, log or (lambda m: print(m, file=sys.stderr))
    ext = os.path.splitext(output)[1].lower()
    try:
      with av.open(source) as container:
        info = _audio_info(container)
        if info is None:
          raise UserError(f"{source} has no audio stream")
        stream = container.streams[info.index]
        video = container.streams.video[0] if container.streams.video else None
        # Times are relative to the first video frame, which is the output's first frame.
        t0 = (video.start_time * video.time_base
              if video is not None and video.start_time is not None else 0)
        self.info, self.mode, self.reason = info, "copy", None
        if info.codec.startswith("pcm_") and ext in _PCM_TO_AAC_EXTS:
          self.reason = f"few players read {info.codec} audio in {ext}"
        else:
          try:
            _trial_header(ext, lambda c: c.add_stream_from_template(stream))
          except (ValueError, av.FFmpegError):
            self.reason = f"{ext} files cannot hold {info.codec} audio as it is"
        if self.reason is not None:
          self.mode = "aac"
          self._rate, self._layout = self._aac_settings(stream, ext)
    except UserError:
      raise
    except (av.FFmpegError, OSError) as e:
      raise UserError(f"cannot read the audio of {source}: {e}") from None
    self._offset = fractions.Fraction(t0) + fractions.Fraction(start)
    self._limit = None if end is None else fractions.Fraction(end) - fractions.Fraction(start)
    self._src = self._out = self._items = self._pending = None

  @property
  def summary(self) -> str:
    """What happens to the sound, for the tool's last line."""
    return (f"{self.info.codec} audio copied" if self.mode == "copy" else
            f"{self.info.codec} audio re-encoded to AAC")

  def _aac_settings(self, stream, ext: str) -> tuple[int, str]:
    """Sample rate and channel layout for the AAC encoder; UserError when it cannot be had."""
    av = _av()
    try:
      stream.codec_context.codec  # A decoder must exist to re-encode.
    except Exception:
      raise UserError(f"{ext} files cannot hold the {self.info.codec} audio of {self.source} as "
                      "it is and this FFmpeg cannot decode it; --no-audio writes the video "
                      "without sound") from None
    rates = sorted(av.Codec("aac", "w").audio_rates or [48000])
    rate = self.info.sample_rate
    if rate not in rates:  # The next rate up keeps every frequency the source has.
      rate = next((r for r in rates if r > rate), rates[-1])
    named = stream.codec_context.layout.name
    layout = named if "channels" not in named else {1: "mono", 2: "stereo"}.get(
        self.info.channels, "stereo")
    error = None
    for lay in dict.fromkeys([layout, "stereo"]):  # Exotic layouts: down-mix to stereo.
      try:
        _trial_header(ext, lambda c: self._add_aac(c, rate, lay))
        return rate, lay
      except (ValueError, av.FFmpegError) as e:
        error = e
    raise UserError(f"cannot re-encode the {self.info} audio of {self.source} to AAC: {error}; "
                    "--no-audio writes the video without sound")

  @staticmethod
  def _add_aac(container, rate: int, layout: str):
    stream = container.add_stream("aac", rate=rate, layout=layout)
    # 96 kbit/s a channel for the first two, 64 for more: transparent for most material.
    n = _av().AudioLayout(layout).nb_channels
    stream.codec_context.bit_rate = 96000 * min(n, 2) + 64000 * max(n - 2, 0)
    return stream

  def attach(self, container) -> None:
    """Adds the audio stream to `container` (before its first packet) and opens the source."""
    self._src = _av().open(self.source)
    stream = self._src.streams[self.info.index]
    if self.mode == "copy":
      self._out = container.add_stream_from_template(stream)
      self._items = self._copied(stream)
    else:
      self._out = self._add_aac(container, self._rate, self._layout)
      self._items = self._encoded(stream)

  def _copied(self, stream) -> Iterator[tuple[float, object]]:
    """(output seconds, packet) of the range, timestamps shifted onto the output's clock."""
    tb = stream.time_base
    shift = round(self._offset / tb)
    preroll = None
    for packet in self._src.demux(stream):
      ts = packet.pts if packet.pts is not None else packet.dts
      if ts is None:  # The demuxer's end-of-stream marker.
        continue
      t = (ts - shift) * tb
      if self._limit is not None and t >= self._limit:
        return
      if t < 0 and (ts + (packet.duration or 0) - shift) * tb <= 0:
        # Wholly before the range; the last such packet primes the decoder (AAC's first
        # packet, or the overlap a cut needs).
        preroll = (float(t), packet)
        continue
      for t_, p in ([preroll] if preroll else []) + [(float(t), packet)]:
        p.pts = None if p.pts is None else p.pts - shift
        p.dts = None if p.dts is None else p.dts - shift
        p.stream = self._out
        yield t_, p
      preroll = None

  def _encoded(self, stream) -> Iterator[tuple[float, object]]:
    """(output seconds, packet) of the range, decoded, cut sample exact and encoded to AAC."""
    av = _av()
    rate, layout = self._rate, self._layout
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    first = round(self._offset * rate)  # Source sample (at `rate`) that becomes output sample 0.
    stop = None if self._limit is None else round(self._limit * rate)
    pos = None  # Source sample index of the next decoded sample.

    def cut(frame) -> Iterator[tuple[float, object]]:
      nonlocal pos
      if pos is None:
        pos = round(frame.pts * frame.time_base * rate) if frame.pts is not None else 0
      n = frame.samples
      lo, hi = pos - first, pos - first + n  # Output sample range of this frame.
      pos += n
      a, b = max(lo, 0), hi if stop is None else min(hi, stop)
      if b <= a:
        return
      if (a, b) != (lo, hi):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(frame.to_ndarray()[:, a - lo:b - lo]), format="fltp",
            layout=layout)
        frame.sample_rate = rate
      frame.pts, frame.time_base = a, fractions.Fraction(1, rate)
      yield from self._packets(frame)

    for packet in self._src.demux(stream):
      for decoded in packet.decode():
        for frame in resampler.resample(decoded):
          yield from cut(frame)
      if stop is not None and pos is not None and pos - first >= stop:
        break
    for frame in resampler.resample(None):
      yield from cut(frame)
    yield from self._packets(None)

  def _packets(self, frame) -> Iterator[tuple[float, object]]:
    for packet in self._out.encode(frame):
      yield (float(packet.pts * packet.time_base) if packet.pts is not None else 0.0), packet

  def mux_until(self, container, seconds: float | None) -> None:
    """Muxes the audio that starts before `seconds` of the output (all that is left: None).

    A broken audio track must not cost the processed video: on a decoding or muxing error the
    sound stops there, with one warning line.
    """
    av = _av()
    t = 0.0
    try:
      while self._items is not None:
        if self._pending is None:
          self._pending = next(self._items, None)
          if self._pending is None:
            self._items = None
            break
        t, packet = self._pending
        if seconds is not None and t >= seconds:
          break
        container.mux(packet)
        self._pending = None
    except av.FFmpegError as e:
      self._items = self._pending = None
      self.log(f"warning: the audio of {self.source} stops at {t:.2f} s ({e}); the video goes "
               "on without it")

  def close(self) -> None:
    if self._src is not None:
      self._src.close()
      self._src = None


class VideoWriter:
  """Writes RGB uint8 frames as H.264 (libx264) into mp4/mkv/mov/avi at a fixed fps.

  Even sizes use yuv420p (plays everywhere); odd sizes use yuv444p so that the output keeps the
  input size exactly (4:2:0 needs even dimensions). With `audio`, that sound goes along,
  interleaved with the frames.
  """

  def __init__(self, path: str, fps: fractions.Fraction | float, height: int, width: int, *,
               crf: int = 17, audio: AudioCopy | None = None, timed: bool = False):
    av = _av()
    self.container = av.open(path, "w")
    rate = fractions.Fraction(fps).limit_denominator(100000)
    self.stream = self.container.add_stream("libx264", rate=rate)
    self.stream.width, self.stream.height = width, height
    self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    self.stream.options = {"crf": str(crf), "preset": "medium"}
    # timed: every frame comes with its own time (a variable frame rate), on MPEG's 90 kHz clock.
    self.time_base = fractions.Fraction(1, 90000) if timed else 1 / rate
    self.stream.codec_context.time_base = self.time_base
    self.rate, self.count, self.audio, self.timed = rate, 0, audio, timed
    if audio is not None:
      audio.attach(self.container)

  def write(self, frame: np.ndarray, time: float | None = None) -> None:
    """Appends a frame: 1 / fps after the previous one, or at `time` seconds (timed writers)."""
    if self.timed != (time is not None):
      raise ValueError("a timed VideoWriter takes each frame's time, an untimed one none")
    av = _av()
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    vf.pts = self.count if time is None else round(time / self.time_base)
    vf.time_base = self.time_base
    self.count += 1
    for packet in self.stream.encode(vf):
      self.container.mux(packet)
    if self.audio is not None:
      # The sound of the frames so far: interleaved, so that players and the muxer need not
      # hold a whole track.
      end = self.count / self.rate if time is None else time + 1 / self.rate
      self.audio.mux_until(self.container, float(end))

  def close(self) -> None:
    for packet in self.stream.encode():
      self.container.mux(packet)
    if self.audio is not None:
      self.audio.mux_until(self.container, None)
    self.container.close()
    if self.audio is not None:
      self.audio.close()

  def abort(self) -> None:
    """Closes the files after a failure; the partial output is the caller's to remove."""
    for close in (self.container.close, self.audio.close if self.audio else None):
      try:
        if close is not None:
          close()
      except Exception:  # The run failed already; this is cleanup.
        pass


class FolderWriter:
  """Writes frames as lossless PNGs named after the input frames (or 00000.png ...)."""

  def __init__(self, folder: str, names: Sequence[str] | None = None):
    os.makedirs(folder, exist_ok=True)
    self.folder, self.names, self.count = folder, names, 0

  def write(self, frame: np.ndarray, time: float | None = None) -> None:
    del time  # PNG frames carry no time.
    if self.names:
      name = os.path.splitext(self.names[self.count])[0] + ".png"
    else:
      name = f"{self.count:05d}.png"
    Image.fromarray(frame).save(os.path.join(self.folder, name))
    self.count += 1

  def close(self) -> None:
    pass


def read_video(path: str) -> tuple[np.ndarray, fractions.Fraction]:
  """All frames of a video file or folder, uint8 [T,H,W,3], and the fps."""
  info = probe(path)
  return np.stack(list(iter_frames(info))), info.fps


def write_video(path: str, frames: np.ndarray, fps: float | fractions.Fraction = 24) -> None:
  """Writes uint8 [T,H,W,3] frames to a video file, or PNGs when `path` has no extension."""
  if os.path.splitext(path)[1]:
    writer = VideoWriter(path, fps, frames.shape[1], frames.shape[2])
  else:
    writer = FolderWriter(path)
  for f in frames:
    writer.write(f)
  writer.close()
