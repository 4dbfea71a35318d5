"""Optical flow between neighbouring frames behind one small interface.

Convention (shared with flowinpaint.data.synthetic_video): a flow is float32 (dx, dy) in pixels;
`forward[t]` maps a pixel of frame t to frame t + 1 and `backward[t]` maps a pixel of frame t + 1
to frame t. A learned estimator implements the same `__call__` and plugs into the pipeline.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Protocol

import cv2
import numpy as np


class FlowEstimator(Protocol):
  """`estimator(frames uint8 [T,H,W,3]) -> (forward [T-1,H,W,2], backward [T-1,H,W,2])`."""

  def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ...


def _grey(frames: np.ndarray) -> list[np.ndarray]:
  return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


class _PairwiseFlow:
  """Runs a two-frame OpenCV estimator on every neighbouring pair, both directions."""

  incremental = True  # a few pairs per call cost what they cost in one call (pipeline._FlowTrack)

  def __init__(self, progress: Callable[[int], None] | None = None):
    self.progress = progress

  def pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w = frames.shape[:3]
    fwd = np.zeros((max(t - 1, 0), h, w, 2), np.float32)
    bwd = np.zeros_like(fwd)
    grey = _grey(frames)
    for i in range(t - 1):
      fwd[i] = self.pair(grey[i], grey[i + 1])
      bwd[i] = self.pair(grey[i + 1], grey[i])
      if self.progress is not None:
        self.progress(1)
    return fwd, bwd


class DISFlow(_PairwiseFlow):
  """OpenCV's DIS optical flow (Kroeger et al. 2016): fast and dependable on CPU."""

  PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
             "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
             "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

  def __init__(self, preset: str = "medium", progress: Callable[[int], None] | None = None):
    super().__init__(progress)
    self.dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

  def pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return self.dis.calc(a, b, None)


class FarnebackFlow(_PairwiseFlow):
  """OpenCV's Farneback dense flow: slower and smoother than DIS; a second opinion."""

  def pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=5, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def inconsistent(flow_ab: np.ndarray, flow_ba: np.ndarray, *, alpha: float = 0.01,
                 beta: float = 0.5) -> np.ndarray:
  """Pixels of frame a whose flow does not come back: bool [H,W] (OpenCV, no compilation).

  flow_ab [H,W,2] is on frame a's grid (a -> b), flow_ba on frame b's grid (b -> a); the test
  is `propagation.inconsistent`'s, |ab + ba(x + ab)|^2 >= alpha (|ab|^2 + |ba(x + ab)|^2) + beta,
  with ba read bilinearly (OpenCV's remap, 1/32 pixel steps). Pixels that leave the image count
  as inconsistent.
  """
  h, w = flow_ab.shape[:2]
  ab = np.asarray(flow_ab, np.float32)
  xy = _pixel_grid(h, w) + ab  # where each pixel lands, one (x, y) map for remap
  back = cv2.remap(np.asarray(flow_ba, np.float32), xy, None, cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)
  err = _squared_norm(ab + back)
  bad = err >= alpha * (_squared_norm(ab) + _squared_norm(back)) + beta
  xs, ys = xy[..., 0], xy[..., 1]
  return bad | (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> np.ndarray:
  """float32 [h,w,2]: (x, y) of every pixel (read-only, shared)."""
  grid = np.empty((h, w, 2), np.float32)
  grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
  grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
  grid.setflags(write=False)
  return grid


def _squared_norm(v: np.ndarray) -> np.ndarray:
  """|v|^2 of [..., 2] vectors (the same sum as np.sum(v ** 2, -1), 3x faster here)."""
  return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


FLOW_METHODS = ("dis", "farneback")
FLOWNET2_PREFIX = "flownet2:"
_CONVERT_HINT = ("python -m flowinpaint.convert --from flownet2_pth FlowNet2_checkpoint.pth.tar "
                 "--to DIR")


def _flownet2_dir(path: str) -> str:
  """The checkpoint folder of 'flownet2:DIR', or a ValueError saying what is wrong with it."""
  if not path:
    raise ValueError(f"give the folder of a converted FlowNet2 checkpoint ({_CONVERT_HINT})")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist; make it from NVIDIA's checkpoint with "
                            f"{_CONVERT_HINT}")
  if not os.path.isdir(path):
    raise ValueError(f"{path} is a file, not a converted checkpoint folder; convert it first: "
                     f"{_CONVERT_HINT.replace('FlowNet2_checkpoint.pth.tar', path)}")
  return path


def make_flow_estimator(name: str, progress: Callable[[int], None] | None = None
                        ) -> FlowEstimator:
  """'dis', 'farneback', 'flownet2:DIR' (a checkpoint converted from NVIDIA's FlowNet 2.0), or
  the path of a trained flow_net checkpoint (video.learned)."""
  if name.startswith(FLOWNET2_PREFIX):
    from flowinpaint.video.learned import FlowNet2Estimator  # Lazy: the model stack.
    return FlowNet2Estimator(_flownet2_dir(name[len(FLOWNET2_PREFIX):]), progress=progress)
  if name not in FLOW_METHODS and os.path.exists(name):
    from flowinpaint.video.learned import LearnedFlowEstimator  # Lazy: the model stack.
    return LearnedFlowEstimator(name, progress=progress)
  if name == "dis":
    return DISFlow(progress=progress)
  if name == "farneback":
    return FarnebackFlow(progress=progress)
  raise ValueError(f"unknown flow method {name!r}; choose one of {', '.join(FLOW_METHODS)}, "
                   "flownet2:DIR (converted FlowNet 2.0 weights) or a flow_net checkpoint folder")
