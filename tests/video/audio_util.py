"""Test helpers: tiny video files with a sine-wave audio track, and reading the sound back."""

from __future__ import annotations

import av
import numpy as np


def tone(seconds: float, rate: int, freq: float, switch_at: float | None = None,
         freq2: float | None = None) -> np.ndarray:
  """float32 [N] sine at `freq` Hz (at `freq2` from `switch_at` seconds on), amplitude 0.5."""
  t = np.arange(int(round(seconds * rate))) / rate
  f = freq if switch_at is None else np.where(t < switch_at, freq, freq2)
  # The phase integrates the frequency, so that the switch has no jump.
  phase = 2 * np.pi * np.cumsum(np.broadcast_to(f, t.shape)) / rate
  return (0.5 * np.sin(phase)).astype(np.float32)


def write_clip(path: str, frames: np.ndarray, fps: int, audio: np.ndarray | None = None, *,
               rate: int = 22050, codec: str = "aac", layout: str = "mono") -> None:
  """Writes uint8 [T,H,W,3] frames (H.264) and a mono float signal (`codec`) into `path`."""
  container = av.open(path, "w")
  video = container.add_stream("libx264", rate=fps)
  video.height, video.width = frames.shape[1:3]
  video.pix_fmt = "yuv420p"
  sound = None
  if audio is not None:
    sound = container.add_stream(codec, rate=rate, layout=layout)
  for i, f in enumerate(frames):
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
    vf.pts = i
    container.mux(video.encode(vf))
  container.mux(video.encode())
  if sound is not None:
    fmt = sound.format
    channels = av.AudioLayout(layout).nb_channels
    x = (audio * 32767).astype(np.int16) if fmt.name.startswith("s16") else audio
    x = np.repeat(x[None], channels, 0) if fmt.is_planar else np.repeat(x[:, None], channels,
                                                                        1).reshape(1, -1)
    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format=fmt.name, layout=layout)
    af.sample_rate, af.pts = rate, 0
    container.mux(sound.encode(af))  # The encoder cuts it into its own frame size.
    container.mux(sound.encode())
  container.close()


def read_audio(path: str) -> tuple[np.ndarray, int, str, float] | None:
  """(float64 [C,N] samples, sample rate, codec, stream seconds) of the first audio stream."""
  with av.open(path) as container:
    if not container.streams.audio:
      return None
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    chunks = []
    for frame in container.decode(stream):
      a = frame.to_ndarray()
      if not frame.format.is_planar:
        a = a.reshape(-1, ctx.channels).T
      if a.dtype == np.int16:
        a = a / 32768.0
      chunks.append(a.astype(np.float64))
    seconds = (float(stream.duration * stream.time_base) if stream.duration else
               float(container.duration / 1e6))
    return np.concatenate(chunks, 1), ctx.sample_rate, ctx.codec.canonical_name, seconds


def peak_hz(x: np.ndarray, rate: int) -> float:
  """The strongest frequency of a signal (Hann-windowed FFT)."""
  spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return float(np.argmax(spectrum) * rate / len(x))


def audio_packets(path: str) -> list[bytes]:
  """The payloads of the first audio stream's packets (what remuxing must keep as they are)."""
  with av.open(path) as container:
    return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]
