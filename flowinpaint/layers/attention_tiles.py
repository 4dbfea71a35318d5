"""Foreground tiling for contextual attention: tile sizes under a memory budget, gather tables.

Contextual attention's score matrix has one row per foreground position and one column per
background position. Processing the foreground in rectangular tiles bounds the score memory to
(a few) x rows(tile) x columns. Score fusion needs a halo: the fused score of position (y, x)
reads raw scores of (y - 1 .. y + 1, x - 1 .. x + 1) (for fuse_k = 3; the flattened-index
propagation also wraps across row and column ends), so a ty x tx tile costs about
(ty + 2)(tx + 2) score rows. Square-ish tiles keep that overhead small; whole-width bands of rows
would cost 3x at large sizes where a band of one row already exceeds the budget.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

# Score-sized f32 temporaries live at once per tile, in units of one score row (one row per
# position of the tile's window / of the tile), from XLA's memory analysis on CPU (checked by
# test_budget_bounds_compiled_memory; at DeepFill's 1024x1024 attention the 2 GiB default
# compiles to 1.7 GB of temporaries, experiments/contextual_attention/README.md): the window's
# raw scores and the first fusion pass (window), the second pass and the softmax (tile).
# Unfused tiles need only the latter.
WINDOW_ROWS = 2.
TILE_ROWS = 3.
# One pass: with fusion the raw, padded and transposed score copies live at once (per
# foreground position); without, the scores and the softmax.
FULL_ROWS = {True: 4.5, False: 2.5}
# Per-tile loop overhead, in foreground positions' worth of work (keeps tiles from being tiny).
_TILE_OVERHEAD = 64


def window_size(ty, tx, fh: int, fw: int, k: int):
  """Upper bound of the raw score rows a ty x tx tile needs for fuse kernel k (0 for k = 1: no
  fusion, the tile's own rows); works on arrays of ty, tx."""
  if k == 1:
    return 0 * ty * tx
  # k - 1 halo rows/columns, plus k - 1 rows for the wrap across the map's top/bottom edge.
  return np.minimum(fh * fw, (np.minimum(ty + k - 1, fh) + k - 1) * np.minimum(tx + k - 1, fw))


def tile_bytes(ty, tx, fh: int, fw: int, k: int, score_row_bytes: int):
  """Estimated score memory of one tile (all samples)."""
  return (WINDOW_ROWS * window_size(ty, tx, fh, fw, k) + TILE_ROWS * ty * tx) * score_row_bytes


def full_bytes(fh: int, fw: int, k: int, score_row_bytes: int) -> float:
  """Estimated score memory of the one-pass computation (all samples)."""
  return FULL_ROWS[k > 1] * fh * fw * score_row_bytes


def choose_tile(fh: int, fw: int, k: int, *, score_row_bytes: int, match_depth: int,
                paste_depth: int, max_bytes: Optional[float] = None,
                max_positions: Optional[int] = None) -> Optional[tuple[int, int]]:
  """The (ty, tx) foreground tile of least estimated work within the limits; None: one pass.

  Args:
    fh, fw: foreground grid (downscaled map) size.
    k: fuse kernel size (1 = no fusion, no halo).
    score_row_bytes: bytes of one score row for all samples (batch x background positions x 4).
    match_depth, paste_depth: contraction lengths of the score and paste matmuls (work model).
    max_bytes: score memory budget; one pass when the whole computation fits.
    max_positions: at most this many foreground positions per tile (the layer's `chunk_size`);
      replaces `max_bytes`.
  When no tile fits the budget, returns (1, 1).
  """
  if max_positions is not None:
    if max_positions >= fh * fw:
      return None
  elif max_bytes is None or full_bytes(fh, fw, k, score_row_bytes) <= max_bytes:
    return None
  ty = np.arange(1, fh + 1)[:, None]
  tx = np.arange(1, fw + 1)[None, :]
  if max_positions is not None:
    ok = ty * tx <= max_positions
  else:
    ok = tile_bytes(ty, tx, fh, fw, k, score_row_bytes) <= max_bytes
  if not ok.any():
    return 1, 1
  rows = np.maximum(window_size(ty, tx, fh, fw, k), ty * tx)
  n = np.ceil(fh / ty) * np.ceil(fw / tx)
  work = n * (rows * match_depth + ty * tx * paste_depth
              + _TILE_OVERHEAD * (match_depth + paste_depth))
  i, j = np.unravel_index(np.argmin(np.where(ok, work, np.inf)), work.shape)
  return int(i) + 1, int(j) + 1


def tile_tables(fh: int, fw: int, ty: int, tx: int, k: int) -> dict[str, np.ndarray]:
  """Static gather tables for a grid of ty x tx tiles (row-major tile order).

  Positions are row-major indices into the fh x fw grid. Per tile t (c = ty * tx slots):
    pos [n, c]: the tile's positions (clipped into the grid), valid [n, c]: slot inside the grid.
    corner [n, 2]: (y, x) of the tile's top-left position.
  With fusion (k > 1), pass 2 (column-major propagation) reads pass-1 rows `src2` [n, c, k] of
  the halo set Q (weights val2), and pass 1 (row-major propagation) reads raw score rows `src1`
  [n, |Q|, k] of the `window` [n, |W|] (weights val1); out-of-range neighbours weigh 0.
  """
  nf = fh * fw
  n_ty, n_tx = math.ceil(fh / ty), math.ceil(fw / tx)
  ys = (np.arange(n_ty)[:, None] * ty + np.arange(ty))[:, None, :, None]
  xs = (np.arange(n_tx)[:, None] * tx + np.arange(tx))[None, :, None, :]
  valid = (ys < fh) & (xs < fw)
  pos = np.minimum(ys, fh - 1) * fw + np.minimum(xs, fw - 1)
  n, c = n_ty * n_tx, ty * tx
  corner = np.stack(np.meshgrid(np.arange(n_ty) * ty, np.arange(n_tx) * tx, indexing='ij'), -1)
  out = dict(pos=pos.reshape(n, c), valid=valid.reshape(n, c).astype(np.float32),
             corner=corner.reshape(n, 2))
  if k == 1:
    return {key: v.astype(np.int32) if v.dtype.kind == 'i' else v for key, v in out.items()}
  lo = (k - 1) // 2
  ds = np.arange(-lo, k - lo)
  pos = out['pos']
  # Pass 2 neighbours: +-d in column-major order (wrapping to the next/previous column).
  cm = (pos % fw) * fh + pos // fw
  cmn = cm[..., None] + ds
  val2 = (cmn >= 0) & (cmn < nf)
  cmn = np.where(val2, cmn, cm[..., None])
  q_pos = (cmn % fh) * fw + cmn // fh
  # Pass 1 neighbours of Q: +-d in row-major order.
  qs, src2 = _index_sets(q_pos)
  rmn = qs[..., None] + ds
  val1 = (rmn >= 0) & (rmn < nf)
  rmn = np.where(val1, rmn, qs[..., None])
  window, src1 = _index_sets(rmn)
  out.update(window=window, src1=src1, val1=val1.astype(np.float32), src2=src2,
             val2=val2.astype(np.float32))
  return {key: v.astype(np.int32) if v.dtype.kind == 'i' else v for key, v in out.items()}


def _index_sets(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per row of idx [n, ...]: its sorted distinct values (edge-padded to one width) and where
  each entry of idx sits in them."""
  flat = idx.reshape(len(idx), -1)
  uniq = [np.unique(row) for row in flat]
  width = max(len(u) for u in uniq)
  sets = np.stack([np.pad(u, (0, width - len(u)), mode='edge') for u in uniq])
  where = np.stack([np.searchsorted(u, row) for u, row in zip(uniq, flat)])
  return sets, where.reshape(idx.shape)
