"""Deep Flow-Guided Video Inpainting's own propagation and key-frame choice, on device.

The authors' tools/propagation_inpaint.py and utils/flow.py::get_warp_label, restated (the
removal pipeline's default propagation is flowinpaint's own, video/propagation.py):

* A forward pass t = 1 .. T-1 and a backward pass t = T-2 .. 0. In the forward pass a pixel p of
  frame t looks up frame t-1: q = p + b_t(p) (b_t: the flow t -> t-1 on frame t's grid), reads
  the flow f_{t-1} (t-1 -> t) there bilinearly, and is *consistent* when q lies on the inner
  grid (floor(q) in [0, H-2] x [0, W-2]) and the round trip misses p by less than `th_warp`
  pixels: |q + f_{t-1}(q) - p| < th_warp. It then copies, from frame t-1's pass result, the
  pixel nearest to p + (b_t(p) - f_{t-1}(q)) / 2 (rounded half to even, as numpy), if that
  point lies in [0, H-1) x [0, W-1): colour and *time stamp* (the frame the colour was known
  in; -1 = none). Known pixels keep their colour and take stamp t. The backward pass mirrors it
  with the flows swapped.
* Merge: a hole pixel filled by one pass takes it; filled by both, it takes the backward pass's
  colour when (t - s_f) / max(s_b - s_f, 1) > 0.5 (the backward source is strictly nearer in
  time), else the forward's. Pixels neither pass filled stay holes.
* Key frames (`key_frames`): the first and last frame of each run of frames that still have
  holes, found by two scans that start at both ends and meet in the middle; they are inpainted
  with the image model, count as known, and everything is propagated again until no hole is
  left.

Colours are copied whole (no interpolation), so a pixel that travels k frames is the source
pixel itself. Departures from the authors' script, both in frames it mishandles: its passes and
merge leave out the last frame (it writes T - 1 frames, and after the first round its backward
pass starts from an all-black "known" last frame); here the last frame is merged, filled and
written like the others.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _warp_step(carry, xs, *, th_warp: float):
  """One frame of a pass: pull colours and stamps from the previous frame's pass result.

  carry: (colour [H, W, 3], stamp [H, W] int32) of the neighbour frame's pass result.
  xs: (to_nb [H, W, 2]: this frame -> neighbour, on this grid; from_nb [H, W, 2]: neighbour ->
  this frame, on the neighbour's grid; frame colour [H, W, 3]; hole [H, W]; t).
  """
  nb_colour, nb_stamp = carry
  to_nb, from_nb, colour, hole, t = xs
  h, w = hole.shape
  rows = jnp.arange(h, dtype=jnp.float32)[:, None]
  cols = jnp.arange(w, dtype=jnp.float32)[None, :]
  qr, qc = rows + to_nb[..., 1], cols + to_nb[..., 0]
  r0, c0 = jnp.floor(qr), jnp.floor(qc)
  ok = (r0 >= 0) & (r0 < h - 1) & (c0 >= 0) & (c0 < w - 1)
  ar, ac = qr - r0, qc - c0
  ri = jnp.clip(r0.astype(jnp.int32), 0, h - 1)
  ci = jnp.clip(c0.astype(jnp.int32), 0, w - 1)
  r1, c1 = jnp.minimum(ri + 1, h - 1), jnp.minimum(ci + 1, w - 1)
  back = ((1 - ar) * (1 - ac))[..., None] * from_nb[ri, ci] + \
      (ar * (1 - ac))[..., None] * from_nb[r1, ci] + \
      ((1 - ar) * ac)[..., None] * from_nb[ri, c1] + (ar * ac)[..., None] * from_nb[r1, c1]
  miss = jnp.sqrt((qr + back[..., 1] - rows) ** 2 + (qc + back[..., 0] - cols) ** 2)
  ok = ok & (miss < th_warp)
  mid = (to_nb - back) / 2.0
  sr, sc = rows + mid[..., 1], cols + mid[..., 0]
  ok = ok & (sr >= 0) & (sr < h - 1) & (sc >= 0) & (sc < w - 1)
  si = jnp.clip(jnp.round(sr).astype(jnp.int32), 0, h - 1)
  sj = jnp.clip(jnp.round(sc).astype(jnp.int32), 0, w - 1)
  pulled = jnp.where(ok[..., None], nb_colour[si, sj], 0.0)
  pulled_stamp = jnp.where(ok, nb_stamp[si, sj], -1)
  new_colour = jnp.where(hole[..., None], pulled, colour)
  new_stamp = jnp.where(hole, pulled_stamp, t)
  return (new_colour, new_stamp), (new_colour, new_stamp)


@functools.partial(jax.jit, static_argnames=("th_warp",))
def propagate(frames: jax.Array, holes: jax.Array, forward: jax.Array, backward: jax.Array, *,
              th_warp: float = 40.0) -> tuple[jax.Array, jax.Array]:
  """One round of DFVI's propagation (both passes and the merge).

  Args:
    frames: float32 [T, H, W, 3]; values inside the holes are ignored (taken as 0).
    holes: bool [T, H, W], True where the colour is unknown.
    forward: flows [T-1, H, W, 2], frame t -> t+1 on frame t's grid (x, y).
    backward: flows [T-1, H, W, 2], frame t+1 -> t on frame t+1's grid.
    th_warp: the forward-backward round trip must miss by less than this many pixels.

  Returns:
    (frames with the propagated colours, bool [T, H, W] holes no pass filled).
  """
  frames = jnp.where(holes[..., None], 0.0, frames.astype(jnp.float32))
  holes = holes.astype(bool)
  t_count = holes.shape[0]
  if t_count < 2:
    return frames, holes
  ts = jnp.arange(t_count, dtype=jnp.int32)
  stamps = jnp.where(holes, -1, ts[:, None, None])
  step = functools.partial(_warp_step, th_warp=float(th_warp))
  forward, backward = forward.astype(jnp.float32), backward.astype(jnp.float32)
  # Forward pass: frame t pulls from t-1 with b_t = backward[t-1] and f_{t-1} = forward[t-1].
  _, (fc, fs) = jax.lax.scan(step, (frames[0], stamps[0]),
                             (backward, forward, frames[1:], holes[1:], ts[1:]))
  fc, fs = jnp.concatenate([frames[:1], fc]), jnp.concatenate([stamps[:1], fs])
  # Backward pass: frame t pulls from t+1 with forward[t] (t -> t+1), backward[t] (t+1 -> t).
  _, (bc, bs) = jax.lax.scan(step, (frames[-1], stamps[-1]),
                             (forward, backward, frames[:-1], holes[:-1], ts[:-1]),
                             reverse=True)
  bc, bs = jnp.concatenate([bc, frames[-1:]]), jnp.concatenate([bs, stamps[-1:]])
  tt = ts[:, None, None]
  nearer_back = (tt - fs) / jnp.maximum(bs - fs, 1) > 0.5
  take_back = (fs < 0) | ((bs >= 0) & nearer_back)
  out = jnp.where(take_back[..., None], bc, fc)
  left = (fs < 0) & (bs < 0)
  return jnp.where(left[..., None], 0.0, out), holes & left


def _scan_runs(has_holes: Sequence[bool], order: Sequence[int], step: int) -> set[int]:
  """Run ends seen by one scanner: the first frame of each run it enters, and the last one
  (the frame before the first hole-free frame it meets after it)."""
  keys, inside = set(), False
  for i in order:
    if not inside and has_holes[i]:
      keys.add(i)
      inside = True
    elif inside and not has_holes[i]:
      keys.add(i - step)
      inside = False
  return keys


def key_frames(has_holes: Sequence[bool]) -> list[int]:
  """DFVI's key frames among frames that still have holes (`has_holes[t]`), sorted.

  A scanner from the start visits frames 0 .. ceil(T/2) - 1 and one from the end frames
  T-1 .. floor(T/2); each marks where it enters and leaves runs of frames with holes. A run
  that one scanner enters but does not leave gets its other end only if the other scanner
  enters it from the other side.
  """
  n = len(has_holes)
  half = (n + 1) // 2
  flags = [bool(v) for v in has_holes]
  keys = _scan_runs(flags, range(half), 1) | _scan_runs(flags, range(n - 1, n - 1 - half, -1),
                                                        -1)
  return sorted(keys)


def key_frames_of(remaining: np.ndarray) -> list[int]:
  """`key_frames` of bool holes [T, H, W]."""
  return key_frames(np.asarray(remaining).reshape(len(remaining), -1).any(1))
