"""The video object-removal pipeline (DFVI): flow -> complete flow -> propagate -> keyframe fill.

`remove_clip` removes the masked regions of a clip held in memory. `remove_stream` runs it over a
long video in overlapping windows of at most `max_frames` frames: the last `overlap` outputs of a
window are the first (fully known) frames of the next one, so the next window copies from them
and no seam appears, while memory stays bounded by the window.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.data import masks as masks_lib
from flowinpaint.video import dfvi_propagation
from flowinpaint.video.flow import FlowEstimator, make_flow_estimator
from flowinpaint.video.flow_completion import FlowCompleter, LaplacianFlowCompleter
from flowinpaint.video.flow_completion import laplacian_fill
from flowinpaint.video.propagation import inconsistent, propagate

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
STAGES = ("read", "flow", "complete", "propagate", "fill", "write")


@dataclasses.dataclass
class RemovalConfig:
  """Knobs of the removal pipeline.

  Attributes:
    flow_mask_dilation: grow the holes by this many pixels before completing the flow, as flow
      estimated next to an object follows the object, not the background (DIS aggregates over
      patches and smooths across edges). None: min(H, W) / 15, between 4 and 32.
    prefill_for_flow: estimate the flow on frames whose holes are pre-filled smoothly (Laplacian
      fill), so that the removed object's texture does not drag the flow around it.
    drop_inconsistent_flow: also complete the flow where the raw forward and backward flows
      disagree (occlusions, the object's wake).
    max_rounds: propagate / keyframe-fill rounds; whatever is left after them is filled frame by
      frame with the image inpainter.
    alpha, beta, temperature: see `propagation.propagate`.
    little_motion: warn when propagation fills less than this fraction of the holes.
    propagation: 'sources' (flowinpaint's, video/propagation.py) or 'dfvi' (the DFVI
      authors', video/dfvi_propagation.py, with `th_warp`).
    th_warp: DFVI's forward-backward threshold in pixels.
    keyframes: 'most_holes' (one frame a round: the one with the most holes) or 'dfvi' (the
      ends of every run of frames with holes, dfvi_propagation.key_frames).
  """
  flow_mask_dilation: int | None = None
  prefill_for_flow: bool = True
  drop_inconsistent_flow: bool = True
  max_rounds: int = 8
  alpha: float = 0.01
  beta: float = 0.5
  temperature: float = 0.0
  little_motion: float = 0.05
  propagation: str = "sources"
  th_warp: float = 40.0
  keyframes: str = "most_holes"

  @classmethod
  def dfvi(cls, th_warp: float = 40.0) -> "RemovalConfig":
    """Deep Flow-Guided Video Inpainting's settings (tools/video_inpaint.py): flow on the
    frames as they are, the flow's holes are the masks, its propagation and key frames, rounds
    until no hole is left."""
    return cls(flow_mask_dilation=0, prefill_for_flow=False, drop_inconsistent_flow=False,
               max_rounds=1_000_000, propagation="dfvi", th_warp=th_warp, keyframes="dfvi")


class Stages:
  """One progress bar for the whole removal, and wall-clock seconds and frames per stage.

  The stages run in bursts (a window's flow, then its completion, ...), so a bar per stage would
  sit still or show a rate diluted by the other stages' time. The one bar counts stage-frames
  (every frame passes every stage), names the stage that is running, and shows no rate or ETA;
  `summary()` gives each stage's own speed at the end.
  """

  def __init__(self, total: int, *, progress: bool = True, stages=STAGES):
    self.total = total
    self.seconds = {s: 0.0 for s in stages}
    self.frames = {s: 0 for s in stages}
    self.bar = None
    if progress:
      from tqdm import tqdm  # Lazy: only the tools show bars.
      self.bar = tqdm(total=total * len(stages), desc="removing", dynamic_ncols=True,
                      bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix} [{elapsed}]")
      self._show(stages[0])
    self._t0 = {}

  def _show(self, stage: str) -> None:
    written = self.frames.get("write", 0)
    self.bar.set_postfix_str(f"{stage}, {written}/{self.total} frames written", refresh=True)

  def start(self, stage: str) -> None:
    self._t0[stage] = time.perf_counter()
    if self.bar is not None:
      self._show(stage)

  def stop(self, stage: str, frames: int = 0) -> None:
    self.seconds[stage] += time.perf_counter() - self._t0.pop(stage)
    self.advance(stage, frames)

  def advance(self, stage: str, frames: int) -> None:
    self.frames[stage] += frames
    if self.bar is not None and frames:
      self.bar.update(frames)
      self._show(stage)

  def summary(self) -> str:
    """'flow 12.1 s (9.9 frames/s), ...': each stage's time and its own throughput."""
    parts = []
    for stage, seconds in self.seconds.items():
      rate = self.frames[stage] / seconds if seconds > 0 else float("inf")
      parts.append(f"{stage} {seconds:.1f} s ({rate:.1f} frames/s)" if self.frames[stage]
                   else f"{stage} {seconds:.1f} s")
    return ", ".join(parts)

  def log(self, message: str) -> None:
    if self.bar is not None:
      self.bar.write(message)
    else:
      import sys
      print(message, file=sys.stderr)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
  """Grows bool masks [..., H, W] by `pixels` with a disc (flowinpaint.data.masks.dilate)."""
  if pixels <= 0:
    return masks
  return masks_lib.dilate(np.asarray(masks, np.float32)[..., None], pixels)[..., 0] > 0.5


def pick_keyframe(remaining: np.ndarray) -> int:
  """The frame with the most unfilled pixels: filling it lets propagation reach the most."""
  return int(np.argmax(remaining.reshape(len(remaining), -1).sum(1)))


def remove_clip(frames: np.ndarray, masks: np.ndarray, *, flow_estimator: FlowEstimator,
                flow_completer: FlowCompleter, inpainter: Inpainter,
                config: RemovalConfig = RemovalConfig(), stages: Stages | None = None,
                new_frames: int | None = None) -> np.ndarray:
  """Removes the masked regions from a clip.

  Args:
    frames: uint8 [T,H,W,3].
    masks: bool [T,H,W], True = remove.
    new_frames: how many of the frames count as new for progress (the rest are known context).

  Returns:
    uint8 [T,H,W,3]; pixels outside `masks` are the input's, bit for bit.
  """
  frames = np.asarray(frames, np.uint8)
  masks = np.asarray(masks, bool)
  stages = stages or Stages(len(frames), progress=False)
  n_new = len(frames) if new_frames is None else new_frames
  if not masks.any():
    for s in ("flow", "complete", "propagate", "fill"):
      stages.advance(s, n_new)
    return frames.copy()

  stages.start("flow")
  flow_input = frames
  if config.prefill_for_flow:
    flow_input = np.asarray(jnp.clip(jnp.round(laplacian_fill(
        jnp.asarray(frames, jnp.float32), jnp.asarray(dilate(masks, 2)))), 0, 255)
                            ).astype(np.uint8)
  forward, backward = flow_estimator(flow_input)
  stages.stop("flow", n_new)

  stages.start("complete")
  d = config.flow_mask_dilation
  if d is None:
    d = int(np.clip(min(frames.shape[1:3]) // 15, 4, 32))
  holes_f = holes_b = dilate(masks, d)
  holes_f, holes_b = jnp.asarray(holes_f[:-1]), jnp.asarray(holes_b[1:])
  if config.drop_inconsistent_flow:
    holes_f = holes_f | inconsistent(forward, backward, alpha=config.alpha, beta=config.beta)
    holes_b = holes_b | inconsistent(backward, forward, alpha=config.alpha, beta=config.beta)
  if hasattr(flow_completer, "complete_both"):  # A completer that reads both directions.
    forward, backward = flow_completer.complete_both(forward, backward, holes_f, holes_b)
  else:
    forward = flow_completer(forward, holes_f)
    backward = flow_completer(backward, holes_b)
  forward, backward = jax.block_until_ready((jnp.asarray(forward), jnp.asarray(backward)))
  stages.stop("complete", n_new)

  work = jnp.asarray(frames, jnp.float32)
  holes = jnp.asarray(masks)
  total_holes = int(masks.sum())
  for round_ in range(config.max_rounds + 1):
    stages.start("propagate")
    if config.propagation == "dfvi":
      work, remaining = dfvi_propagation.propagate(work, holes, forward, backward,
                                                   th_warp=config.th_warp)
    else:
      work, remaining = propagate(work, holes, forward, backward, alpha=config.alpha,
                                  beta=config.beta, temperature=config.temperature)
    remaining = np.array(remaining)
    stages.stop("propagate", n_new if round_ == 0 else 0)
    if round_ == 0 and total_holes and len(frames) > 1:
      borrowed = 1.0 - remaining.sum() / total_holes
      if borrowed < config.little_motion:
        stages.log(f"little motion: propagation has little to borrow (filled {borrowed:.0%} of "
                   "the holes); the image inpainter fills the rest")
    if not remaining.any():
      break
    stages.start("fill")
    current = np.asarray(jnp.clip(jnp.round(work), 0, 255)).astype(np.uint8)
    if round_ >= config.max_rounds:
      keys = np.flatnonzero(remaining.any((1, 2)))
    elif config.keyframes == "dfvi":
      keys = dfvi_propagation.key_frames_of(remaining)
    else:
      keys = [pick_keyframe(remaining)]
    # A model fills a round's frames together, split over every device.
    many = getattr(inpainter, "inpaint_many", None)
    filled = (many([current[k] for k in keys], [remaining[k] for k in keys]) if many else
              [inpainter(current[k], remaining[k]) for k in keys])
    for k, frame in zip(keys, filled):
      current[k] = frame
      remaining[k] = False
    stages.stop("fill", 0)
    work, holes = jnp.asarray(current, jnp.float32), jnp.asarray(remaining)
    if not remaining.any():
      break
  stages.advance("fill", n_new)
  out = np.asarray(jnp.clip(jnp.round(work), 0, 255)).astype(np.uint8)
  return np.where(masks[..., None], out, frames)


def windows(num_frames: int, max_frames: int | None, overlap: int) -> list[tuple[int, int]]:
  """[start, end) frame ranges of windows of at most `max_frames`, overlapping by `overlap`."""
  if not max_frames or max_frames >= num_frames:
    return [(0, num_frames)]
  if overlap >= max_frames:
    raise ValueError(f"overlap {overlap} must be smaller than the window {max_frames}")
  out, start = [], 0
  while True:
    end = min(start + max_frames, num_frames)
    out.append((start, end))
    if end == num_frames:
      return out
    start = end - overlap


def default_overlap(max_frames: int) -> int:
  """Context frames carried into the next window: a quarter of it, 2 to 8."""
  return int(np.clip(max_frames // 4, 1, 8))


def remove_stream(frames: Iterable[np.ndarray], masks: Iterable[np.ndarray], *,
                  num_frames: int, flow_estimator: FlowEstimator, flow_completer: FlowCompleter,
                  inpainter: Inpainter, config: RemovalConfig = RemovalConfig(),
                  max_frames: int | None = None, overlap: int | None = None,
                  stages: Stages | None = None) -> Iterator[np.ndarray]:
  """Yields the output frames of a streamed video, holding at most `max_frames` frames.

  Each window after the first starts with the last `overlap` outputs of the previous one as known
  frames (empty masks), so propagation continues across the boundary without a seam.
  """
  stages = stages or Stages(num_frames, progress=False)
  if max_frames is not None and max_frames < 2:
    raise ValueError("max_frames must be at least 2")
  overlap = default_overlap(max_frames) if overlap is None and max_frames else (overlap or 0)
  window = max_frames or num_frames
  context: list[np.ndarray] = []
  buf_f: list[np.ndarray] = []
  buf_m: list[np.ndarray] = []
  frame_iter, mask_iter = iter(frames), iter(masks)

  def run():
    n_ctx = len(context)
    clip = np.stack(context + buf_f)
    hole = np.stack([np.zeros(clip.shape[1:3], bool)] * n_ctx + buf_m)
    out = remove_clip(clip, hole, flow_estimator=flow_estimator, flow_completer=flow_completer,
                      inpainter=inpainter, config=config, stages=stages,
                      new_frames=len(buf_f))
    return out[n_ctx:]

  while True:
    stages.start("read")
    frame = next(frame_iter, None)
    mask = next(mask_iter, None) if frame is not None else None
    stages.stop("read", 1 if frame is not None else 0)
    if frame is not None:
      buf_f.append(frame)
      buf_m.append(np.asarray(mask, bool))
    if buf_f and (frame is None or len(context) + len(buf_f) >= window):
      out = run()
      for f in out:
        yield f
      context = (context + list(out))[-overlap:] if overlap else []
      buf_f, buf_m = [], []
    if frame is None:
      return


def make_flow_completer(name: str = "laplacian") -> FlowCompleter:
  """'laplacian' (classical) or the path of a trained dfc_net checkpoint (video.learned)."""
  if name == "laplacian":
    return LaplacianFlowCompleter()
  import os
  if not os.path.exists(name):
    raise ValueError(f"unknown flow completion {name!r}; use 'laplacian' or a dfc_net "
                     "checkpoint folder")
  from flowinpaint.video.learned import DFCNetCompleter  # Lazy: the model stack.
  return DFCNetCompleter(name)


def make_pipeline_parts(flow: str = "dis", fill_method: str = "telea",
                        flow_completion: str = "laplacian"
                        ) -> tuple[FlowEstimator, FlowCompleter, Inpainter]:
  """The estimator, completer and image inpainter for the given names (or checkpoints)."""
  from flowinpaint.inference import make_inpainter  # Lazy: pulls in the model stack.

  return (make_flow_estimator(flow), make_flow_completer(flow_completion),
          make_inpainter(fill_method, max_batch=1))  # A frame per device per call.
