"""Flow-guided pixel propagation on device (DFVI step 3, in JAX).

Two passes along the completed flows, each a `lax.scan` over frames with fixed shapes: every hole
pixel follows the flow to the neighbouring frame, checks forward-backward consistency there and
inherits that frame's *source* (time stamp and sub-pixel position in the frame where the colour is
known). Carrying source coordinates instead of colours means a pixel copied along a chain of k
frames is sampled once, from the original frame, so it does not blur k times (DFVI rounds each
hop to the nearest pixel instead). The merge takes, for each hole pixel, the temporally nearest of
the forward and backward sources and blends them (a tie, or a soft temperature, averages them).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _grid(h: int, w: int) -> jax.Array:
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  return jnp.stack([xs, ys], -1)


def _corners(pos: jax.Array, h: int, w: int):
  """Integer corners (clamped) and bilinear weights of sub-pixel positions [..., 2] (x, y)."""
  fx, fy = jnp.floor(pos[..., 0]), jnp.floor(pos[..., 1])
  ax, ay = pos[..., 0] - fx, pos[..., 1] - fy
  x0 = jnp.clip(fx.astype(jnp.int32), 0, w - 1)
  y0 = jnp.clip(fy.astype(jnp.int32), 0, h - 1)
  x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
  idx = [(y0, x0), (y0, x1), (y1, x0), (y1, x1)]
  wts = [(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay]
  return idx, wts


def _bilinear(img: jax.Array, pos: jax.Array) -> jax.Array:
  """Samples img [H,W,C] at pos [H,W,2] (x, y), clamped at the border."""
  h, w = img.shape[:2]
  idx, wts = _corners(pos, h, w)
  return sum(wt[..., None] * img[y, x] for (y, x), wt in zip(idx, wts))


def _step(carry, xs, *, grid, alpha, beta):
  """One frame of a pass: inherit sources from the neighbour frame's state (the carry)."""
  nb_src_t, nb_src_xy = carry
  hole, to_nb, from_nb, t = xs
  h, w = hole.shape
  pos = grid + to_nb
  inside = ((pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) & (pos[..., 1] >= 0) &
            (pos[..., 1] <= h - 1))
  # Forward-backward consistency (the ProPainter/FGVC form): the round trip returns home.
  back = _bilinear(from_nb, pos)
  err = jnp.sum((to_nb + back) ** 2, -1)
  consistent = err < alpha * (jnp.sum(to_nb ** 2, -1) + jnp.sum(back ** 2, -1)) + beta

  idx, wts = _corners(pos, h, w)
  st = jnp.stack([nb_src_t[y, x] for y, x in idx])          # [4,H,W]
  sxy = jnp.stack([nb_src_xy[y, x] for y, x in idx])        # [4,H,W,2]
  wt = jnp.stack(wts)                                       # [4,H,W]
  nearest = jnp.argmax(wt, 0)
  st_n = jnp.take_along_axis(st, nearest[None], 0)[0]
  xy_n = jnp.take_along_axis(sxy, nearest[None, ..., None], 0)[0]
  corner_pos = jnp.stack([jnp.stack([x, y], -1).astype(jnp.float32) for y, x in idx])
  pos_n = jnp.take_along_axis(corner_pos, nearest[None, ..., None], 0)[0]
  # Interpolate the source position where all four corners share one source frame; elsewhere
  # (near a hole edge) use the nearest corner shifted by the sub-pixel offset.
  same = jnp.all(st == st_n[None], 0)
  interp = jnp.sum(wt[..., None] * sxy, 0)
  xy = jnp.where(same[..., None], interp, xy_n + (pos - pos_n))
  ok = inside & consistent & (st_n >= 0)
  src_t = jnp.where(hole, jnp.where(ok, st_n, -1), t)
  src_xy = jnp.where(hole[..., None], xy, grid)
  return (src_t, src_xy), (src_t, src_xy)


def _sample_sources(frames, known, src_t, src_xy):
  """Colours at the sources: bilinear over the known corners only. Returns colour, valid."""
  t_count, h, w = known.shape
  idx, wts = _corners(src_xy, h, w)
  ti = jnp.clip(src_t, 0, t_count - 1)
  colour = 0.0
  weight = 0.0
  for (y, x), wt in zip(idx, wts):
    wk = wt * known[ti, y, x]
    colour = colour + wk[..., None] * frames[ti, y, x]
    weight = weight + wk
  valid = (src_t >= 0) & (weight > 1e-3)
  return colour / jnp.maximum(weight, 1e-3)[..., None], valid


@functools.partial(jax.jit, static_argnames=("alpha", "beta", "temperature"))
def propagate(frames: jax.Array, holes: jax.Array, forward: jax.Array, backward: jax.Array, *,
              alpha: float = 0.01, beta: float = 0.5,
              temperature: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Fills holes with pixels propagated along the flows from other frames.

  Args:
    frames: float32 [T,H,W,3]; values inside the holes are ignored.
    holes: bool [T,H,W], True where the colour is unknown.
    forward: completed flows [T-1,H,W,2], frame t -> t+1 (on frame t's grid).
    backward: completed flows [T-1,H,W,2], frame t+1 -> t (on frame t+1's grid).
    alpha, beta: consistency check `|f + b(x+f)|^2 < alpha (|f|^2 + |b(x+f)|^2) + beta`.
    temperature: 0 takes the temporally nearest source (both on a tie); > 0 blends the forward
      and backward sources with weights `exp(-distance / temperature)`.

  Returns:
    (frames with propagated pixels, bool [T,H,W] holes that no frame could fill).
  """
  frames = frames.astype(jnp.float32)
  holes = holes.astype(bool)
  t_count, h, w = holes.shape
  if t_count < 2:
    return frames, holes
  grid = _grid(h, w)
  step = functools.partial(_step, grid=grid, alpha=alpha, beta=beta)
  ts = jnp.arange(t_count, dtype=jnp.int32)

  def init(k):
    return jnp.where(holes[k], -1, k).astype(jnp.int32), grid

  # Forward pass: frame t inherits from frame t-1 via backward[t-1] (t -> t-1).
  first = init(0)
  _, (ft, fxy) = jax.lax.scan(step, first, (holes[1:], backward, forward, ts[1:]))
  ft = jnp.concatenate([first[0][None], ft])
  fxy = jnp.concatenate([first[1][None], fxy])
  # Backward pass: frame t inherits from frame t+1 via forward[t] (t -> t+1).
  last = init(t_count - 1)
  _, (bt, bxy) = jax.lax.scan(step, last, (holes[:-1], forward, backward, ts[:-1]),
                              reverse=True)
  bt = jnp.concatenate([bt, last[0][None]])
  bxy = jnp.concatenate([bxy, last[1][None]])

  known = (~holes).astype(jnp.float32)
  cf, vf = _sample_sources(frames, known, ft, fxy)
  cb, vb = _sample_sources(frames, known, bt, bxy)
  tt = ts[:, None, None]
  df = jnp.where(vf, tt - ft, jnp.inf).astype(jnp.float32)
  db = jnp.where(vb, bt - tt, jnp.inf).astype(jnp.float32)
  dmin = jnp.minimum(df, db)
  if temperature > 0:
    wf = jnp.where(vf, jnp.exp(-(df - dmin) / temperature), 0.0)
    wb = jnp.where(vb, jnp.exp(-(db - dmin) / temperature), 0.0)
  else:
    wf = (vf & (df == dmin)).astype(jnp.float32)
    wb = (vb & (db == dmin)).astype(jnp.float32)
  total = wf + wb
  blend = (wf[..., None] * cf + wb[..., None] * cb) / jnp.maximum(total, 1e-6)[..., None]
  filled = holes & (total > 0)
  out = jnp.where(filled[..., None], blend, frames)
  return out, holes & ~filled


@functools.partial(jax.jit, static_argnames=("alpha", "beta"))
def inconsistent(flow_ab: jax.Array, flow_ba: jax.Array, *, alpha: float = 0.01,
                 beta: float = 0.5) -> jax.Array:
  """Pixels of frame a whose flow does not come back: bool [N,H,W].

  flow_ab [N,H,W,2] is on frame a's grid (a -> b), flow_ba on frame b's grid (b -> a). Pixels
  that leave the image count as inconsistent.
  """
  n, h, w = flow_ab.shape[:3]
  grid = _grid(h, w)

  def one(ab, ba):
    pos = grid + ab
    back = _bilinear(ba, pos)
    err = jnp.sum((ab + back) ** 2, -1)
    bad = err >= alpha * (jnp.sum(ab ** 2, -1) + jnp.sum(back ** 2, -1)) + beta
    outside = ((pos[..., 0] < 0) | (pos[..., 0] > w - 1) | (pos[..., 1] < 0) |
               (pos[..., 1] > h - 1))
    return bad | outside

  return jax.vmap(one)(flow_ab.astype(jnp.float32), flow_ba.astype(jnp.float32))
