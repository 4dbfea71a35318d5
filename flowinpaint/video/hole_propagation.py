"""Flow-guided propagation computed on the hole pixels only (NumPy, for the CPU).

The same algorithm as `propagation.propagate` (two passes that hand each hole pixel the source,
frame and sub-pixel position, of the neighbour frame's pixel it flows to; then the temporally
nearest of the two sources), but only the pixels inside the holes are visited. Holes are a few
per cent of a frame, so on a CPU this is an order of magnitude less work than the dense `lax.scan`
(which suits accelerators), needs no compilation, and holds a few arrays per hole pixel instead
of whole-frame state. A neighbour's state at a known pixel is implicit: its own frame and
position.
"""

from __future__ import annotations

import numpy as np


def _corners(px: np.ndarray, py: np.ndarray, h: int, w: int):
  """Flat indices (clamped) and bilinear weights of the 4 corners of positions [N] (x, y)."""
  fx, fy = np.floor(px), np.floor(py)
  ax, ay = px - fx, py - fy
  x0 = np.clip(fx, 0, w - 1).astype(np.int64)
  y0 = np.clip(fy, 0, h - 1).astype(np.int64)
  x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
  xs, ys = (x0, x1, x0, x1), (y0, y0, y1, y1)
  wts = ((1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay)
  return xs, ys, wts


class _Pass:
  """One pass along the clip: the source (frame, x, y) of every hole pixel of every frame."""

  def __init__(self, holes_flat: list[np.ndarray], h: int, w: int, alpha: float, beta: float):
    self.holes_flat, self.h, self.w = holes_flat, h, w
    self.alpha, self.beta = np.float32(alpha), np.float32(beta)
    self.index = np.full(h * w, -1, np.int64)  # neighbour's hole pixel -> its row in the state

  def step(self, t: int, nb: int, nb_state, to_nb: np.ndarray, from_nb: np.ndarray):
    """State of frame t from frame nb's: to_nb [H*W,2] (t -> nb, on t's grid), from_nb
    [H*W,2] (nb -> t, on nb's grid)."""
    h, w = self.h, self.w
    flat = self.holes_flat[t]
    gx = (flat % w).astype(np.float32)
    gy = (flat // w).astype(np.float32)
    to = to_nb[flat]
    px, py = gx + to[:, 0], gy + to[:, 1]
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    xs, ys, wts = _corners(px, py, h, w)
    back = sum(wt[:, None] * from_nb[y * w + x] for x, y, wt in zip(xs, ys, wts))
    err = np.sum((to + back) ** 2, -1)
    consistent = err < self.alpha * (np.sum(to ** 2, -1) + np.sum(back ** 2, -1)) + self.beta

    nb_flat, nb_t, nb_xy = nb_state
    self.index[nb_flat] = np.arange(len(nb_flat))
    st, sxy = [], []
    for x, y in zip(xs, ys):
      own = np.stack([x, y], -1).astype(np.float32)
      if not len(nb_flat):  # every neighbour pixel is known: its own source
        st.append(np.full(len(flat), nb, np.int64))
        sxy.append(own)
        continue
      j = self.index[y * w + x]
      hole = j >= 0
      st.append(np.where(hole, nb_t[j], nb))
      sxy.append(np.where(hole[:, None], nb_xy[j], own))
    self.index[nb_flat] = -1
    st, sxy, wt = np.stack(st), np.stack(sxy), np.stack(wts)      # [4,N], [4,N,2], [4,N]
    nearest = np.argmax(wt, 0)
    rows = np.arange(len(flat))
    st_n, xy_n = st[nearest, rows], sxy[nearest, rows]
    pos_n = np.stack([np.stack(xs)[nearest, rows], np.stack(ys)[nearest, rows]],
                     -1).astype(np.float32)
    same = np.all(st == st_n[None], 0)
    interp = np.sum(wt[..., None] * sxy, 0)
    pos = np.stack([px, py], -1)
    xy = np.where(same[:, None], interp, xy_n + (pos - pos_n))
    ok = inside & consistent & (st_n >= 0)
    return flat, np.where(ok, st_n, -1), xy.astype(np.float32)


def _sample(frames_flat: np.ndarray, known_flat: np.ndarray, src_t: np.ndarray,
            src_xy: np.ndarray, t_count: int, h: int, w: int):
  """Colours [N,3] at the sources (bilinear over their known corners) and their validity [N]."""
  xs, ys, wts = _corners(src_xy[:, 0], src_xy[:, 1], h, w)
  base = np.clip(src_t, 0, t_count - 1).astype(np.int64) * (h * w)
  colour = np.zeros((len(src_t), frames_flat.shape[-1]), np.float32)
  weight = np.zeros(len(src_t), np.float32)
  for x, y, wt in zip(xs, ys, wts):
    i = base + y * w + x
    wk = wt * known_flat[i]
    colour += wk[:, None] * frames_flat[i]
    weight += wk
  valid = (src_t >= 0) & (weight > 1e-3)
  return colour / np.maximum(weight, np.float32(1e-3))[:, None], valid


def propagate_holes(frames: np.ndarray, holes: np.ndarray, forward: np.ndarray,
                    backward: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5,
                    temperature: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """Fills holes with pixels propagated along the flows; `propagation.propagate` on the holes.

  Args:
    frames: uint8 [T,H,W,C]; values inside the holes are ignored.
    holes: bool [T,H,W], True where the colour is unknown.
    forward: flows [T-1,H,W,2], frame t -> t+1 (on frame t's grid).
    backward: flows [T-1,H,W,2], frame t+1 -> t (on frame t+1's grid).
    alpha, beta, temperature: as `propagation.propagate`.

  Returns:
    (uint8 [T,H,W,C]: the frames with the propagated colours, rounded, in the filled holes;
    bool [T,H,W] holes that no frame could fill). Rounding here is what the dense version's
    caller does after each round, so rounds of either give the same frames.
  """
  holes = np.asarray(holes, bool)
  t_count, h, w = holes.shape
  frames = np.asarray(frames, np.uint8)
  out = frames.copy()
  if t_count < 2 or not holes.any():
    return out, holes.copy()
  c = out.shape[-1]
  frames_flat = frames.reshape(-1, c)
  known_flat = ~holes.reshape(-1)
  holes_flat = [np.flatnonzero(m) for m in holes]
  fwd = [np.asarray(f, np.float32).reshape(-1, 2) for f in forward]
  bwd = [np.asarray(f, np.float32).reshape(-1, 2) for f in backward]
  empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.float32))

  def run(order, to_nb, from_nb):
    """Sampled colour, validity and temporal distance of every frame's holes in one pass."""
    p = _Pass(holes_flat, h, w, alpha, beta)
    first = order[0]
    flat = holes_flat[first]
    state = (flat, np.full(len(flat), -1, np.int64),
             np.stack([flat % w, flat // w], -1).astype(np.float32))
    results = {first: (np.zeros((len(flat), c), np.float32), np.zeros(len(flat), bool),
                       np.zeros(len(flat), np.int64))}
    for nb, t in zip(order[:-1], order[1:]):
      if not len(holes_flat[t]):  # a frame without holes: all its pixels are their own source
        state = empty
        continue
      state = p.step(t, nb, state, to_nb(t), from_nb(t))
      colour, valid = _sample(frames_flat, known_flat, state[1], state[2], t_count, h, w)
      results[t] = (colour, valid, np.abs(t - state[1]))
    return results

  ts = list(range(t_count))
  ahead = run(ts, lambda t: bwd[t - 1], lambda t: fwd[t - 1])            # from earlier frames
  behind = run(ts[::-1], lambda t: fwd[t], lambda t: bwd[t])             # from later frames
  remaining = holes.copy()
  for t in ts:
    flat = holes_flat[t]
    if not len(flat):
      continue
    cf, vf, df = ahead[t]
    cb, vb, db = behind[t]
    df = np.where(vf, df, np.inf).astype(np.float32)
    db = np.where(vb, db, np.inf).astype(np.float32)
    dmin = np.minimum(df, db)
    if temperature > 0:
      with np.errstate(invalid="ignore"):  # inf - inf where neither pass found a source
        wf = np.where(vf, np.exp(-(df - dmin) / np.float32(temperature)), 0).astype(np.float32)
        wb = np.where(vb, np.exp(-(db - dmin) / np.float32(temperature)), 0).astype(np.float32)
    else:
      wf = (vf & (df == dmin)).astype(np.float32)
      wb = (vb & (db == dmin)).astype(np.float32)
    total = wf + wb
    filled = total > 0
    blend = (wf[:, None] * cf + wb[:, None] * cb) / np.maximum(total, 1e-6)[:, None]
    frame = out[t].reshape(-1, c)
    frame[flat[filled]] = np.clip(np.round(blend[filled]), 0, 255)
    remaining[t].reshape(-1)[flat[filled]] = False
  return out, remaining
