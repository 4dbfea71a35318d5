"""The video object-removal pipeline (DFVI): flow -> complete flow -> propagate -> keyframe fill.

`remove_stream` removes the masked regions of a video streamed frame by frame, in overlapping
windows sized from a memory budget, so memory does not grow with the video's length:

* Flow is per pair of neighbouring frames: as frames arrive they are shrunk to the working size
  (`RemovalConfig.flow_size`), their holes pre-filled, the forward and backward flows estimated
  and completed there, once per pair, including the pairs a window shares with the next one.
* Propagation and the keyframe fill run per window. Around the frames it outputs a window holds
  context (`overlap` frames each side, `windows`): the previous window's last outputs as known
  frames (but for what the image inpainter made up), so no seam appears, and the next input
  frames with their holes, so its last outputs borrow from later frames as in the whole clip.
  With every frame in one window, the result is the whole-clip one (`remove_clip`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Callable, Iterable, Iterator

import cv2
import jax.numpy as jnp
import numpy as np

from flowinpaint.data import masks as masks_lib
from flowinpaint.inference import inpaint_many
from flowinpaint.video import dfvi_propagation
from flowinpaint.video.flow import FlowEstimator, inconsistent, make_flow_estimator
from flowinpaint.video.flow_completion import FlowCompleter, LaplacianFlowCompleter
from flowinpaint.video.hole_propagation import propagate_holes
from flowinpaint.video.propagation import propagate

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
STAGES = ("read", "flow", "complete", "propagate", "fill", "write")
PROPAGATIONS = ("sources", "sources-dense", "dfvi")


@dataclasses.dataclass
class RemovalConfig:
  """Knobs of the removal pipeline.

  Attributes:
    flow_size: estimate and complete the flow on frames shrunk so that their shorter side is at
      most this many pixels (None: at full size); the flows are scaled back up for propagation.
      Where it matters the flow is smooth (inside the holes it is interpolated anyway), and the
      flow and its completion cost grow with the pixels, so a bounded working size keeps them
      from dominating at high resolutions.
    flow_mask_dilation: grow the holes by this many pixels (of the full-size frame) before
      completing the flow, as flow estimated next to an object follows the object, not the
      background (DIS aggregates over patches and smooths across edges). None: min(H, W) / 15,
      between 4 and 32.
    prefill_for_flow: estimate the flow on frames whose holes are pre-filled (OpenCV's Telea
      inpainting at the working size), so that the removed object's texture does not drag the
      flow around it.
    drop_inconsistent_flow: also complete the flow where the raw forward and backward flows
      disagree (occlusions, the object's wake).
    pair_holes: complete both flows of a pair where either frame has a hole (on the same grid
      position, holes dilated), not only where the flow's own frame has one: the flow towards
      a hole was matched against the pre-filled guess there, so a background that a leaving
      object uncovers would fail the consistency check and never be copied back into the
      frames it covered.
    max_rounds: propagate / keyframe-fill rounds; whatever is left after them is filled frame by
      frame with the image inpainter.
    alpha, beta, temperature: see `propagation.propagate`.
    little_motion: warn when propagation fills less than this fraction of the holes.
    propagation: 'sources' (flowinpaint's, on the hole pixels: video/hole_propagation.py),
      'sources-dense' (the same on whole frames on device, video/propagation.py: for
      accelerators) or 'dfvi' (the DFVI authors', video/dfvi_propagation.py, with `th_warp`).
    th_warp: DFVI's forward-backward threshold in pixels.
    keyframes: 'most_holes' (one frame a round: the one with the most holes) or 'dfvi' (the
      ends of every run of frames with holes, dfvi_propagation.key_frames).
    memory_mb: working memory for the frames of one window (an estimate from their size and the
      propagation's arrays, not a hard limit); `remove_stream` takes the window length from it.
  """
  flow_size: int | None = 240
  flow_mask_dilation: int | None = None
  prefill_for_flow: bool = True
  drop_inconsistent_flow: bool = True
  pair_holes: bool = True
  max_rounds: int = 8
  alpha: float = 0.01
  beta: float = 0.5
  temperature: float = 0.0
  little_motion: float = 0.05
  propagation: str = "sources"
  th_warp: float = 40.0
  keyframes: str = "most_holes"
  memory_mb: float = 1024.0

  @classmethod
  def dfvi(cls, th_warp: float = 40.0) -> "RemovalConfig":
    """Deep Flow-Guided Video Inpainting's settings (tools/video_inpaint.py): flow on the
    frames as they are, the flow's holes are the masks, its propagation and key frames, rounds
    until no hole is left."""
    return cls(flow_size=None, flow_mask_dilation=0, prefill_for_flow=False,
               drop_inconsistent_flow=False, pair_holes=False, max_rounds=1_000_000,
               propagation="dfvi", th_warp=th_warp, keyframes="dfvi")


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
    self.cpu_seconds = {s: 0.0 for s in stages}  # the process's CPU time (all threads)
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
    self._t0[stage] = (time.perf_counter(), time.process_time())
    if self.bar is not None:
      self._show(stage)

  def stop(self, stage: str, frames: int = 0) -> None:
    wall, cpu = self._t0.pop(stage)
    self.seconds[stage] += time.perf_counter() - wall
    self.cpu_seconds[stage] += time.process_time() - cpu
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


def working_size(height: int, width: int, flow_size: int | None) -> tuple[int, int]:
  """(h, w) the flow is estimated at: the frame's size, shrunk so the shorter side is at most
  `flow_size` (None: the frame's size)."""
  if not flow_size or min(height, width) <= flow_size:
    return height, width
  s = flow_size / min(height, width)
  return max(int(round(height * s)), 1), max(int(round(width * s)), 1)


# Bytes per pixel of a frame in a window (uint8 frame, its output, mask and remaining holes,
# full-size float32 forward and backward flows; the dense propagations add float32 frames and
# per-pass state), and per working-size pixel (pre-filled frame, masks, completed flows, and the
# raw flows a window-wide completer reads). Estimates, checked by experiments/video_removal.
_BYTES_PER_PIXEL = {"sources": 28, "sources-dense": 110, "dfvi": 110}
_BYTES_PER_WORKING_PIXEL = 24
_BYTES_PER_WORKING_PIXEL_RAW = 20


def frame_bytes(height: int, width: int, config: RemovalConfig, *, raw_flows: bool = False
                ) -> int:
  """Estimated working memory of one frame in a window."""
  h, w = working_size(height, width, config.flow_size)
  small = _BYTES_PER_WORKING_PIXEL + (_BYTES_PER_WORKING_PIXEL_RAW if raw_flows else 0)
  return height * width * _BYTES_PER_PIXEL.get(config.propagation, 110) + h * w * small


def max_frames_for(height: int, width: int, config: RemovalConfig, *,
                   raw_flows: bool = False) -> int:
  """The window length `config.memory_mb` holds (at least 4 frames)."""
  return max(int(config.memory_mb * 2 ** 20 // frame_bytes(height, width, config,
                                                             raw_flows=raw_flows)), 4)


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  h, w = size
  if image.shape[:2] == (h, w):
    return image
  return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _grow_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
  """A working-size flow [h,w,2] at the frame size, its vectors scaled to frame pixels."""
  h, w = flow.shape[:2]
  if (h, w) == (height, width):
    return np.asarray(flow, np.float32)
  big = cv2.resize(np.asarray(flow, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
  return big * np.array([width / w, height / h], np.float32)


class _FlowTrack:
  """Flows of neighbouring frames at the working size, each pair estimated once as the frames
  arrive (the last frame is kept to pair it with the next one).

  `add(frames, masks)` returns one item per new pair: completed (forward, backward) flows, or,
  for a completer that reads a window of flows (`complete_both`), the raw flows and their holes
  (forward, backward, holes_f, holes_b), completed per window by `complete`.
  """

  CHUNK = 4  # pairs estimated, then completed in a thread while the next ones are estimated

  def __init__(self, estimator: FlowEstimator, completer: FlowCompleter, config: RemovalConfig,
               height: int, width: int, stages: Stages):
    self.estimator, self.completer, self.config, self.stages = (estimator, completer, config,
                                                                stages)
    self.size = working_size(height, width, config.flow_size)
    scale = self.size[0] / height
    d = config.flow_mask_dilation
    if d is None:
      d = int(np.clip(min(height, width) // 15, 4, 32))
    self.dilation = max(int(round(d * scale)), 1) if d > 0 else 0
    self.prefill_dilation = max(int(round(2 * scale)), 1)
    self.window_wide = hasattr(completer, "complete_both")
    self.last = None  # (flow input, dilated hole) of the last frame added
    prepare = getattr(completer, "prepare", None)
    if prepare is not None:  # e.g. compile in a thread while the first flows are estimated
      prepare(*self.size)

  def reset(self) -> None:
    self.last = None

  def _flow_input(self, frame: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    small = _shrink(frame, self.size)
    hole = _shrink(mask.astype(np.float32), self.size) > 0  # any part of a hole is a hole
    if self.config.prefill_for_flow and hole.any():
      fill = dilate(hole, self.prefill_dilation).astype(np.uint8)
      small = cv2.inpaint(np.ascontiguousarray(small), fill, 3, cv2.INPAINT_TELEA)
    return small, dilate(hole, self.dilation)

  def _estimate(self, seq: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """(forward, backward, holes_f, holes_b) of the pairs of `seq`'s neighbouring frames."""
    forward, backward = self.estimator(np.stack([x[0] for x in seq]))
    forward, backward = np.asarray(forward, np.float32), np.asarray(backward, np.float32)
    holes_f = np.stack([x[1] for x in seq[:-1]])
    holes_b = np.stack([x[1] for x in seq[1:]])
    if self.config.pair_holes:  # see RemovalConfig.pair_holes
      holes_f = holes_f | holes_b
      holes_b = holes_f.copy()
    if self.config.drop_inconsistent_flow:
      for i in range(len(forward)):
        holes_f[i] |= inconsistent(forward[i], backward[i], alpha=self.config.alpha,
                                   beta=self.config.beta)
        holes_b[i] |= inconsistent(backward[i], forward[i], alpha=self.config.alpha,
                                   beta=self.config.beta)
    return forward, backward, holes_f, holes_b

  def _complete_pairs(self, forward, backward, holes_f, holes_b) -> list[tuple]:
    n = len(forward)
    done = np.asarray(self.completer(np.concatenate([forward, backward]),
                                     np.concatenate([holes_f, holes_b])), np.float32)
    return list(zip(done[:n], done[n:]))

  def add(self, frames: list[np.ndarray], masks: list[np.ndarray],
          new_frames: int | None = None) -> list[tuple]:
    """Flows of the pairs the frames make with the last one added and with each other;
    `new_frames`: how many of them count as new for progress (default all).

    With an estimator that runs pair by pair anyway (`incremental`, the OpenCV ones), the pairs
    go `CHUNK` at a time: while a thread completes a chunk's flows (JAX and OpenCV release the
    GIL), the next chunk's flows are estimated on the other core. A learned estimator gets all
    the pairs at once (its batches stay full). The 'complete' stage's time is what is left to
    wait for after the last flows.
    """
    count = len(frames) if new_frames is None else new_frames
    self.stages.start("flow")
    seq = [self.last] if self.last is not None else []
    pairs, futures = [], []
    pool = (None if self.window_wide else
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flow-completion"))
    chunk = self.CHUNK if getattr(self.estimator, "incremental", False) else len(frames)
    try:
      for i, (frame, mask) in enumerate(zip(frames, masks)):
        seq.append(self._flow_input(frame, mask))
        if len(seq) == chunk + 1 or (i == len(frames) - 1 and len(seq) > 1):
          raw = self._estimate(seq)
          if pool is None:
            pairs.extend(zip(*raw))
          else:
            futures.append(pool.submit(self._complete_pairs, *raw))
          seq = seq[-1:]
      self.last = seq[-1] if seq else None
      self.stages.stop("flow", count)
      if not futures:
        return pairs
      self.stages.start("complete")
      for future in futures:
        pairs.extend(future.result())
      self.stages.stop("complete", count)
      return pairs
    finally:
      if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)

  def complete(self, pairs: list[tuple]) -> list[tuple]:
    """Completed (forward, backward) of a window's pairs, as `add` returned them."""
    if not self.window_wide or not pairs:
      return pairs
    forward, backward, holes_f, holes_b = (np.stack(x) for x in zip(*pairs))
    forward, backward = self.completer.complete_both(forward, backward, holes_f, holes_b)
    return list(zip(np.asarray(forward, np.float32), np.asarray(backward, np.float32)))


def _propagate_round(frames: np.ndarray, holes: np.ndarray, forward: np.ndarray,
                     backward: np.ndarray, config: RemovalConfig
                     ) -> tuple[np.ndarray, np.ndarray]:
  """One propagation round: (uint8 frames, bool remaining holes)."""
  if config.propagation == "sources":
    return propagate_holes(frames, holes, forward, backward, alpha=config.alpha,
                           beta=config.beta, temperature=config.temperature)
  args = (jnp.asarray(frames, jnp.float32), jnp.asarray(holes), jnp.asarray(forward),
          jnp.asarray(backward))
  if config.propagation == "dfvi":
    work, remaining = dfvi_propagation.propagate(*args, th_warp=config.th_warp)
  elif config.propagation == "sources-dense":
    work, remaining = propagate(*args, alpha=config.alpha, beta=config.beta,
                                temperature=config.temperature)
  else:
    raise ValueError(f"unknown propagation {config.propagation!r}; choose one of "
                     f"{', '.join(PROPAGATIONS)}")
  return np.asarray(jnp.clip(jnp.round(work), 0, 255)).astype(np.uint8), np.array(remaining)


def _fill_window(frames: np.ndarray, masks: np.ndarray, forward: np.ndarray,
                 backward: np.ndarray, *, inpainter: Inpainter, config: RemovalConfig,
                 stages: Stages, new_frames: int, warned: list[bool]
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Propagation and keyframe-fill rounds over one window: (uint8 [T,H,W,3], bool [T,H,W] the
  hole pixels no frame of the window showed: filled by the image inpainter, or from its fill)."""
  current, remaining = frames, masks
  total_holes = int(masks.sum())
  unseen = masks
  for round_ in range(config.max_rounds + 1):
    stages.start("propagate")
    current, remaining = _propagate_round(current, remaining, forward, backward, config)
    stages.stop("propagate", new_frames if round_ == 0 else 0)
    if round_ == 0:
      unseen = remaining.copy()
    if round_ == 0 and total_holes and len(frames) > 1 and not warned[0]:
      borrowed = 1.0 - remaining.sum() / total_holes
      if borrowed < config.little_motion:
        warned[0] = True
        stages.log(f"little motion: propagation has little to borrow (filled {borrowed:.0%} of "
                   "the holes); the image inpainter fills the rest")
    if not remaining.any():
      break
    stages.start("fill")
    if round_ >= config.max_rounds:
      keys = np.flatnonzero(remaining.any((1, 2)))
    elif config.keyframes == "dfvi":
      keys = dfvi_propagation.key_frames_of(remaining)
    else:
      keys = [pick_keyframe(remaining)]
    remaining = remaining.copy()
    # A model fills a round's frames together, split over every device.
    filled = inpaint_many(inpainter, [current[k] for k in keys], [remaining[k] for k in keys])
    for k, frame in zip(keys, filled):
      current[k] = frame
      remaining[k] = False
    stages.stop("fill", 0)
    if not remaining.any():
      break
  return np.where(masks[..., None], current, frames), unseen


def windows(num_frames: int, max_frames: int | None, overlap: int
            ) -> list[tuple[int, int, int, int]]:
  """The windows `remove_stream` reads: (start, out_start, out_end, end) per window, which holds
  frames [start, end) and outputs [out_start, out_end). Before its outputs a window holds up to
  `overlap` earlier outputs (known frames), after them up to `overlap` later input frames
  (look-ahead, output by the next window), so each output frame can borrow from `overlap`
  frames on either side; at most `max_frames` are held (None: the whole clip)."""
  if not max_frames or max_frames >= num_frames:
    return [(0, 0, num_frames, num_frames)]
  if max_frames <= 2 * overlap:
    raise ValueError(f"a window of {max_frames} frames cannot hold {overlap} frames of context "
                     f"on each side and output any; use an overlap below {max_frames / 2:g}")
  out, out_start = [], 0
  while out_start < num_frames:
    start = max(out_start - overlap, 0)
    end = min(start + max_frames, num_frames)
    out_end = end if end == num_frames else end - overlap
    out.append((start, out_start, out_end, end))
    out_start = out_end
  return out


def default_overlap(max_frames: int) -> int:
  """Context frames on each side of a window's outputs: a quarter of the window (half of what
  it holds is context, so each frame is propagated about twice; the flows once)."""
  return max(max_frames // 4, 0)


def remove_clip(frames: np.ndarray, masks: np.ndarray, *, flow_estimator: FlowEstimator,
                flow_completer: FlowCompleter, inpainter: Inpainter,
                config: RemovalConfig = RemovalConfig(), stages: Stages | None = None
                ) -> np.ndarray:
  """Removes the masked regions from a clip held in memory (one window: the whole clip).

  Args:
    frames: uint8 [T,H,W,3].
    masks: bool [T,H,W], True = remove.

  Returns:
    uint8 [T,H,W,3]; pixels outside `masks` are the input's, bit for bit.
  """
  frames = np.asarray(frames, np.uint8)
  masks = np.asarray(masks, bool)
  out = list(remove_stream(iter(frames), iter(masks), num_frames=len(frames),
                           flow_estimator=flow_estimator, flow_completer=flow_completer,
                           inpainter=inpainter, config=config, max_frames=max(len(frames), 2),
                           overlap=0, stages=stages))
  return np.stack(out) if out else frames.copy()


def remove_stream(frames: Iterable[np.ndarray], masks: Iterable[np.ndarray], *,
                  num_frames: int, flow_estimator: FlowEstimator, flow_completer: FlowCompleter,
                  inpainter: Inpainter, config: RemovalConfig = RemovalConfig(),
                  max_frames: int | None = None, overlap: int | None = None,
                  stages: Stages | None = None) -> Iterator[np.ndarray]:
  """Yields the output frames of a streamed video, holding one window of frames at a time.

  Args:
    frames, masks: uint8 [H,W,3] and bool [H,W] per frame (iterables, read as needed).
    num_frames: the expected frame count (for progress and to end the last window without
      reading past it); a stream that ends early or runs longer is handled.
    max_frames: the most frames held at once, context included; None: as many as
      `config.memory_mb` holds (`max_frames_for`).
    overlap: context frames on each side of a window's outputs (`windows`); None:
      `default_overlap`, a quarter of the window.

  A window holds up to `overlap` outputs of the previous window as known frames, so propagation
  continues across the boundary without a seam, then the frames it outputs, then up to `overlap`
  input frames after them (with their holes) that the next window outputs, so its last outputs
  can borrow from later frames too. Only what propagation brought from frames that showed it is
  known in the carried outputs: pixels the image inpainter made up stay holes there, so that a
  later window fills them from the frames it shows instead of propagating the guess. The flows
  between frames are estimated (and completed, unless the completer reads a whole window) once
  per pair, whichever windows share it; only propagation and the keyframe fill are repeated on
  the context.
  """
  stages = stages or Stages(num_frames, progress=False)
  if max_frames is not None and max_frames < 2:
    raise ValueError("max_frames must be at least 2")
  frame_iter, mask_iter = iter(frames), iter(masks)

  def read():
    stages.start("read")
    frame = next(frame_iter, None)
    mask = next(mask_iter, None) if frame is not None else None
    stages.stop("read", 1 if frame is not None else 0)
    if frame is None:
      return None
    return np.asarray(frame, np.uint8), np.asarray(mask, bool)

  first = read()
  if first is None:
    return
  height, width = first[0].shape[:2]
  track = _FlowTrack(flow_estimator, flow_completer, config, height, width, stages)
  if max_frames is None:
    max_frames = max_frames_for(height, width, config, raw_flows=track.window_wide)
  if overlap is None:
    overlap = default_overlap(max_frames)
  if overlap < 0 or max_frames <= 2 * overlap:
    raise ValueError(f"overlap {overlap} must be between 0 and {(max_frames - 1) // 2} for "
                     f"windows of {max_frames} frames")
  warned = [False]
  ctx: list[np.ndarray] = []  # outputs of the previous window, held as known frames
  ctx_unseen: list[np.ndarray] = []  # ... but for the pixels its frames did not show
  ahead: list[tuple[np.ndarray, np.ndarray]] = []  # (frame, mask) read, not yet output
  pairs_kept: list[tuple] | None = []  # flows between the frames held over; None: not estimated
  pending, count, ended = [first], 1, False
  while True:
    new, pending = pending, []
    while len(ctx) + len(ahead) + len(new) < max_frames:
      item = read()
      if item is None:
        ended = True
        break
      count += 1
      new.append(item)
    if not ended and count >= num_frames:  # the announced end: does the stream stop there?
      item = read()
      if item is None:
        ended = True
      else:
        count += 1
        pending = [item]
    raw = ahead + new
    n_ctx = len(ctx)
    n_out = len(raw) if ended else max(len(raw) - overlap, 1)
    clip = np.stack(ctx + [f for f, _ in raw])
    holes = np.stack(ctx_unseen + [m for _, m in raw])
    out, unseen = clip, holes
    if holes.any():
      if pairs_kept is None:  # the held-over frames had no holes: their flows were not needed
        track.reset()
        pairs = track.add(list(clip), list(holes), new_frames=len(new))
      else:
        both = pairs_kept + track.add([f for f, _ in new], [m for _, m in new])
        pairs = both[len(both) - (len(clip) - 1):]  # without a link to an unheld frame
      if holes[n_ctx:n_ctx + n_out].any():
        stages.start("complete")
        done = track.complete(pairs)
        forward = np.stack([_grow_flow(f, height, width) for f, _ in done])
        backward = np.stack([_grow_flow(b, height, width) for _, b in done])
        stages.stop("complete", len(new) if track.window_wide else 0)
        out, unseen = _fill_window(clip, holes, forward, backward, inpainter=inpainter,
                                   config=config, stages=stages, new_frames=n_out,
                                   warned=warned)
        del forward, backward, done
      else:  # no output has holes: the next window fills the look-ahead's
        stages.advance("complete", len(new) if track.window_wide else 0)
        stages.advance("propagate", n_out)
    else:
      pairs = None
      track.reset()
      stages.advance("flow", len(new))
      stages.advance("complete", len(new))
      stages.advance("propagate", n_out)
    stages.advance("fill", n_out)
    for f in out[n_ctx:n_ctx + n_out]:
      yield f
    if ended:
      return
    s = n_ctx + n_out - min(overlap, n_ctx + n_out)  # the first frame held over
    ctx = [f.copy() for f in out[s:n_ctx + n_out]]  # copies: `out` is freed below
    ctx_unseen = [m.copy() for m in unseen[s:n_ctx + n_out]]
    ahead = raw[n_out:]
    pairs_kept = None if pairs is None else pairs[s:]
    del out, clip, holes, unseen


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
