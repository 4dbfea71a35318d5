"""Video IO: decode video files (PyAV) or frame folders, read masks, write mp4 or PNG frames.

Readers stream frames so that long videos never sit in memory whole. Every bad input raises a
UserError with one line that names the file and the fix.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import re
from typing import Iterator, Sequence

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
class VideoInfo:
  """What is known about an input before decoding: frame count, size and frame rate."""
  path: str
  num_frames: int
  height: int
  width: int
  fps: fractions.Fraction
  is_folder: bool
  frame_names: tuple[str, ...] = ()


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
      n = stream.frames
      if not n:
        # Some containers carry no frame count: count the packets (no decoding).
        n = sum(1 for p in container.demux(stream) if p.size)
      h, w = stream.codec_context.height, stream.codec_context.width
  except UserError:
    raise
  except (av.FFmpegError, OSError, ValueError) as e:
    raise UserError(f"cannot open video {path}: {e}") from None
  if n == 0 or not h or not w:
    raise UserError(f"video {path} has no frames")
  return VideoInfo(path, int(n), int(h), int(w), fractions.Fraction(fps), False)


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
    if out == os.path.realpath(p):
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


class VideoWriter:
  """Writes RGB uint8 frames as H.264 (libx264) into mp4/mkv/mov/avi at a fixed fps.

  Even sizes use yuv420p (plays everywhere); odd sizes use yuv444p so that the output keeps the
  input size exactly (4:2:0 needs even dimensions).
  """

  def __init__(self, path: str, fps: fractions.Fraction | float, height: int, width: int, *,
               crf: int = 17):
    av = _av()
    self.container = av.open(path, "w")
    rate = fractions.Fraction(fps).limit_denominator(100000)
    self.stream = self.container.add_stream("libx264", rate=rate)
    self.stream.width, self.stream.height = width, height
    self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    self.stream.options = {"crf": str(crf), "preset": "medium"}
    self.stream.codec_context.time_base = 1 / rate
    self.count = 0

  def write(self, frame: np.ndarray) -> None:
    av = _av()
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    vf.pts = self.count
    self.count += 1
    for packet in self.stream.encode(vf):
      self.container.mux(packet)

  def close(self) -> None:
    for packet in self.stream.encode():
      self.container.mux(packet)
    self.container.close()


class FolderWriter:
  """Writes frames as lossless PNGs named after the input frames (or 00000.png ...)."""

  def __init__(self, folder: str, names: Sequence[str] | None = None):
    os.makedirs(folder, exist_ok=True)
    self.folder, self.names, self.count = folder, names, 0

  def write(self, frame: np.ndarray) -> None:
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
