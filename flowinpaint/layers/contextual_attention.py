"""Contextual attention (Yu et al., "Generative Image Inpainting with Contextual Attention", 2018).

Foreground positions borrow background features: 3x3 patches of the (1/rate downscaled)
background are matched against the foreground by normalised correlation, the score map is
"fused" (propagated along the flattened foreground/background indices, first row-major then
column-major, wrapping across rows exactly as the TF reference does), patches touching the hole
are excluded, and the softmax-weighted raw (2*rate)x(2*rate) full-resolution patches are pasted
back with a transposed conv of stride `rate`.

The 1/rate downscale for matching (`downscale`): 'stride' keeps every `rate`-th pixel starting
at 0 (`x[:, ::rate, ::rate]`, ceil(H / rate) rows), as PyTorch's nearest resize by 1/rate does;
the ceil grid matches the TF-'SAME' raw patch grid, so any size works. 'align_corners' is the TF
reference's `resize_nearest_neighbor(align_corners=True)` (`resize_nearest_align_corners`):
row round(i * (H - 1) / (H / rate - 1)), i.e. even rows in the first half and odd rows in the
second; like the reference it needs sizes divisible by `rate`. Weights trained in TF reproduce
its outputs exactly only with 'align_corners'. 'grid_bilinear' is what Deep Flow-Guided Video
Inpainting's PyTorch port of DeepFill v1 computed under the torch it names (0.4.0): its
`down_sample(mode='nearest')` calls `F.grid_sample`, which in 0.4.0 ignored `mode` and sampled
bilinearly with corner-aligned coordinates, at the grid i / (H / rate) * 2 - 1, i.e. rows
i * (H - 1) / (H / rate) blended with their neighbours (`grid_bilinear_taps`).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flowinpaint.layers import attention_tiles
from flowinpaint.layers.padding import same_pads

# Default budget of contextual attention's score temporaries (see `contextual_attention`).
DEFAULT_MAX_SCORE_BYTES = 2 * 1024**3


def align_corners_index(n_in: int, n_out: int) -> np.ndarray:
  """Source rows of TF's nearest resize with align_corners=True (half_pixel_centers=False).

  TF computes in float32: scale = (n_in - 1) / (n_out - 1), source = min(roundf(i * scale),
  n_in - 1); reproduced here bit for bit (roundf rounds halves away from zero).
  """
  scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
  src = np.arange(n_out, dtype=np.float32) * np.float32(scale)
  return np.minimum(np.floor(src.astype(np.float64) + 0.5), n_in - 1).astype(np.int64)


def resize_nearest_align_corners(x: jax.Array, height: int, width: int) -> jax.Array:
  """TF 1's `resize_nearest_neighbor(x, (height, width), align_corners=True)`, [B,H,W,C]."""
  rows = align_corners_index(x.shape[1], height)
  cols = align_corners_index(x.shape[2], width)
  return x[:, rows][:, :, cols]


def grid_bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(lower rows, upper rows, upper weights) of the DFVI port's 1/rate downscale under torch
  0.4.0: grid g = i / n_out * 2 - 1 and source (g + 1) / 2 * (n_in - 1), bilinear; computed
  in float32 in the same order as the port and the grid sampler."""
  g = np.arange(n_out, dtype=np.float32) / np.float32(n_out) * np.float32(2) - np.float32(1)
  src = (g + np.float32(1)) / np.float32(2) * np.float32(n_in - 1)
  lo = np.floor(src).astype(np.int64)
  return lo, np.minimum(lo + 1, n_in - 1), (src - lo.astype(np.float32)).astype(np.float32)


def _grid_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  ylo, yhi, wy = grid_bilinear_taps(x.shape[1], height)
  xlo, xhi, wx = grid_bilinear_taps(x.shape[2], width)
  wy = jnp.asarray(wy, x.dtype)[None, :, None, None]
  wx = jnp.asarray(wx, x.dtype)[None, None, :, None]
  rows = x[:, ylo] * (1 - wy) + x[:, yhi] * wy
  return rows[:, :, xlo] * (1 - wx) + rows[:, :, xhi] * wx


def _downscale(x: jax.Array, rate: int, mode: str) -> jax.Array:
  if mode == 'stride':
    return x[:, ::rate, ::rate]
  if mode == 'grid_bilinear':
    return _grid_bilinear(x, x.shape[1] // rate, x.shape[2] // rate)
  if mode == 'align_corners':
    h, w = x.shape[1:3]
    if h % rate or w % rate:
      raise ValueError(f"downscale='align_corners' needs sizes divisible by rate {rate} (as "
                       f'the TF reference), got {h}x{w}')
    return resize_nearest_align_corners(x, h // rate, w // rate)
  raise ValueError(f"downscale must be 'stride', 'align_corners' or 'grid_bilinear', got "
                   f'{mode!r}')


def _extract_patches(x: jax.Array, k: int, stride: int) -> jax.Array:
  """TF-'SAME' zero-padded patches: [B, H, W, C] -> [B, ceil(H/s), ceil(W/s), k, k, C]."""
  _, h, w, _ = x.shape
  ph, pw = same_pads(h, k, stride), same_pads(w, k, stride)
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  oh, ow = math.ceil(h / stride), math.ceil(w / stride)
  rows = []
  for a in range(k):
    cols = [xp[:, a:a + (oh - 1) * stride + 1:stride, c:c + (ow - 1) * stride + 1:stride]
            for c in range(k)]
    rows.append(jnp.stack(cols, axis=3))
  return jnp.stack(rows, axis=3)


def _overlap_add(p: jax.Array, rate: int) -> jax.Array:
  """Transposed conv with identity weights, stride `rate`, no cropping.

  p: [B, fh, fw, k, k, C] patches on the `rate`-strided grid -> canvas
  [B, (fh - 1) * rate + k, (fw - 1) * rate + k, C].
  """
  _, fh, fw, k, _, _ = p.shape
  canvas_h, canvas_w = (fh - 1) * rate + k, (fw - 1) * rate + k
  zero = jnp.zeros((), p.dtype)
  out = None
  for a in range(k):
    for b in range(k):
      # Interior padding spreads the grid `rate` apart; edge padding shifts it by (a, b).
      placed = lax.pad(p[:, :, :, a, b, :], zero, (
          (0, 0, 0),
          (a, canvas_h - a - (fh - 1) * rate - 1, rate - 1),
          (b, canvas_w - b - (fw - 1) * rate - 1, rate - 1),
          (0, 0, 0)))
      out = placed if out is None else out + placed
  return out


def _crop(canvas: jax.Array, out_h: int, out_w: int, k: int, rate: int) -> jax.Array:
  """TF 'SAME' transposed-conv crop of an overlap-add canvas to [B, out_h, out_w, C]."""
  top, left = same_pads(out_h, k, rate)[0], same_pads(out_w, k, rate)[0]
  return canvas[:, top:top + out_h, left:left + out_w, :]


def _shift_last(x: jax.Array, d: int) -> jax.Array:
  """y[..., j] = x[..., j + d], zero outside."""
  if d == 0:
    return x
  n = x.shape[-1]
  pad = [(0, 0)] * (x.ndim - 1)
  if d > 0:
    return jnp.pad(x[..., d:], pad + [(0, d)])
  return jnp.pad(x[..., :n + d], pad + [(-d, 0)])


def _diag_sum(s: jax.Array, k: int) -> jax.Array:
  """2-D 'SAME' correlation of [N, M] with eye(k): out[i, j] = sum_d s[i+d, j+d]."""
  lo, hi = (k - 1) // 2, k // 2
  n, m = s.shape
  sp = jnp.pad(s, ((lo, hi), (lo, hi)))
  return sum(sp[a:a + n, a:a + m] for a in range(k))


def _fuse_full(s: jax.Array, fg: tuple[int, int], bg: tuple[int, int], k: int) -> jax.Array:
  """Row-major then column-major identity-kernel propagation of one sample's scores [Nf, Nb]."""
  if k == 1:
    return s
  (fh, fw), (bh, bw) = fg, bg
  s = _diag_sum(s, k)
  s = s.reshape(fh, fw, bh, bw).transpose(1, 0, 3, 2).reshape(fw * fh, bw * bh)
  s = _diag_sum(s, k)
  return s.reshape(fw, fh, bw, bh).transpose(1, 0, 3, 2).reshape(fh * fw, bh * bw)


def _fuse_tile(s: jax.Array, t: dict[str, jax.Array], bg: tuple[int, int],
               k: int) -> jax.Array:
  """Fused scores of one tile [c, Nb] from the raw scores of its window [|W|, Nb] (tables `t`
  of `attention_tiles.tile_tables`)."""
  bh, bw = bg
  ds = range(-((k - 1) // 2), k // 2 + 1)

  def to_cm(x: jax.Array) -> jax.Array:  # Background axis row-major -> column-major.
    return x.reshape(-1, bh, bw).swapaxes(1, 2).reshape(x.shape)

  def to_rm(x: jax.Array) -> jax.Array:
    return x.reshape(-1, bw, bh).swapaxes(1, 2).reshape(x.shape)

  h = sum(_shift_last(jnp.take(s, t['src1'][:, a], axis=0), d) * t['val1'][:, a, None]
          for a, d in enumerate(ds))
  h = to_cm(h)
  g = sum(_shift_last(jnp.take(h, t['src2'][:, a], axis=0), d) * t['val2'][:, a, None]
          for a, d in enumerate(ds))
  return to_rm(g)


def _attend(scores: jax.Array, mm: jax.Array, scale: float) -> jax.Array:
  """Masked softmax over the background axis: [P, Nb] x [Nb] -> [P, Nb] (f32)."""
  # A no-op for f32 that XLA keeps as its own op: it stops the CPU backend from fusing the
  # score matmul and the softmax into one YNNPACK fusion, which jaxlib 0.10.2 miscompiles
  # (segfaults, NaNs; issue 18, experiments/contextual_attention/xla_ynn_fusion_bug.py) and
  # which runs 3x slower than the two apart. (optimization_barrier is dropped before fusion.)
  scores = lax.reduce_precision(scores, exponent_bits=8, mantissa_bits=23)
  # Masked scores become 0 (not -inf) before the softmax, exactly as in the reference.
  return jax.nn.softmax(scores * mm * scale, axis=-1) * mm


def _per_sample(fn, *args):
  """fn on one sample's arrays, over the batch; batch 1 runs without a batch axis at all
  (size-1 axes are what jaxlib 0.10.2's YNNPACK fusions mishandle)."""
  if args[0].shape[0] == 1:
    return jax.tree.map(lambda x: x[None], fn(*(a[0] for a in args)))
  return jax.vmap(fn)(*args)


def contextual_attention(
    f: jax.Array,
    b: jax.Array,
    mask: Optional[jax.Array] = None,
    *,
    ksize: int = 3,
    stride: int = 1,
    rate: int = 2,
    fuse_k: int = 3,
    softmax_scale: float = 10.,
    fuse: bool = True,
    chunk_size: Optional[int] = None,
    return_offsets: bool = True,
    patch_norm: str = 'max',
    downscale: str = 'stride',
    mask_downscale: Optional[str] = None,
    max_score_bytes: Optional[int] = DEFAULT_MAX_SCORE_BYTES,
) -> tuple[jax.Array, Optional[jax.Array]]:
  """Contextual attention with DeepFill's exact semantics, batched over samples.

  Memory: the scores are a [foreground x background positions] matrix per sample (quadratic in
  the pixel count: 16,384^2 floats = 1 GiB for a 1024x1024 DeepFill image). By default the
  foreground is processed in tiles chosen from the sizes so that the score temporaries stay
  under `max_score_bytes` (2 GiB); the result does not depend on the tiling.

  Args:
    f: foreground features [B, Hf, Wf, C].
    b: background features [B, Hb, Wb, C] (DeepFill passes b = f).
    mask: [B or 1, Hb, Wb, 1] at b's resolution, 1 = hole (non-zero counts as hole); background
      patches touching the hole get no attention. None: every patch is valid.
    ksize: matching patch size on the downscaled maps.
    stride: stride of background patches on the downscaled maps.
    rate: downscale factor for matching; raw patches are (2*rate)x(2*rate).
    fuse_k: size of the identity kernel that propagates scores.
    softmax_scale: softmax temperature (scores are cosine-like, so 10 sharpens them).
    fuse: whether to propagate scores.
    chunk_size: if set, at most this many foreground positions (of the downscaled map) per
      tile, overriding `max_score_bytes`; >= all positions: one pass. Fusion needs a halo of
      one position around each tile, recomputed per tile.
    return_offsets: whether to compute the argmax offsets.
    patch_norm: how background patches are L2-normalised. 'max': divide by
      max(||w||, 1e-4) (the TF reference). 'add': divide by sqrt(sum(w**2 + 1e-4)), i.e. 1e-4
      added per element before the sum (the PyTorch port nipponjo/deepfillv2-pytorch, whose
      converted DeepFill v2 weights reproduce exactly only this way).
    downscale: how f, b and the mask are downscaled by 1/rate for matching: 'stride' (every
      `rate`-th pixel; any size), 'align_corners' (the TF reference's nearest resize; sizes
      divisible by `rate`) or 'grid_bilinear' (DFVI's port under torch 0.4.0). See the module
      docstring.
    mask_downscale: the mask's downscale, when it differs from f's and b's (DFVI's port takes
      its 1/8 mask as every 8th pixel: 'stride' of the 1/4 mask); None: `downscale`.
    max_score_bytes: budget for the score-sized temporaries (estimated, f32, whole batch) when
      `chunk_size` is None; None: no bound (one pass). Inputs, patches (~(ksize^2 +
      (2 * rate)^2 / rate^2) x f's size) and outputs come on top. A single-position tile that
      exceeds it still runs.

  Returns:
    y: [B, Hf, Wf, C] in f's dtype.
    offsets: int32 [B, Hf, Wf, 2] as (dy, dx): argmax source position minus own position in
      downscaled-map units, nearest-upsampled by `rate` to f's size (as the reference's flow
      picture); None when `return_offsets` is False.
  """
  bsz, hf, wf, c = f.shape
  _, hb, wb, _ = b.shape
  dtype = jnp.result_type(f.dtype, b.dtype)
  f, b = f.astype(dtype), b.astype(dtype)

  k_raw = 2 * rate
  raw = _extract_patches(b, k_raw, rate * stride)
  nbh, nbw = raw.shape[1:3]
  nb = nbh * nbw
  raw = raw.reshape(bsz, nb, k_raw * k_raw * c)

  fd, bd = _downscale(f, rate, downscale), _downscale(b, rate, downscale)
  fh, fw = fd.shape[1:3]
  nf = fh * fw

  w = _extract_patches(bd, ksize, stride).reshape(bsz, nb, ksize * ksize * c)
  w32 = w.astype(jnp.float32)
  if patch_norm == 'max':
    # max(norm, 1e-4) written so that all-zero patches keep finite gradients.
    norm = jnp.sqrt(jnp.maximum(jnp.sum(w32 * w32, axis=-1, keepdims=True), 1e-8))
  elif patch_norm == 'add':
    norm = jnp.sqrt(jnp.sum(w32 * w32 + 1e-4, axis=-1, keepdims=True))
  else:
    raise ValueError(f"patch_norm must be 'max' or 'add', got {patch_norm!r}")
  wn = (w32 / norm).astype(dtype)
  fp = _extract_patches(fd, ksize, 1).reshape(bsz, nf, ksize * ksize * c)

  if mask is None:
    mm = jnp.ones((bsz, nb), jnp.float32)
  else:
    md = _downscale(jnp.broadcast_to(mask, (bsz, hb, wb, mask.shape[-1])), rate,
                    mask_downscale or downscale)
    hole = jnp.any(md != 0, axis=-1, keepdims=True).astype(jnp.float32)
    pads = (same_pads(hole.shape[1], ksize, stride), same_pads(hole.shape[2], ksize, stride))
    count = lax.reduce_window(hole, 0., lax.add, (1, ksize, ksize, 1), (1, stride, stride, 1),
                              ((0, 0),) + pads + ((0, 0),))
    mm = (count == 0).astype(jnp.float32).reshape(bsz, nb)

  def scores(fpatches: jax.Array, wn: jax.Array) -> jax.Array:
    return jnp.einsum('pk,qk->pq', fpatches, wn, preferred_element_type=jnp.float32)

  def finish(fused: jax.Array, mm: jax.Array, raw: jax.Array) -> tuple[jax.Array, jax.Array]:
    att = _attend(fused, mm, softmax_scale)
    pasted = jnp.einsum('pq,qk->pk', att.astype(dtype), raw)
    return pasted, jnp.argmax(att, axis=-1).astype(jnp.int32)

  k = fuse_k if fuse else 1
  tile = attention_tiles.choose_tile(
      fh, fw, k, score_row_bytes=4 * bsz * nb, match_depth=fp.shape[-1],
      paste_depth=raw.shape[-1], max_bytes=max_score_bytes, max_positions=chunk_size)
  if tile is None:
    def whole(fp, wn, mm, raw):
      return finish(_fuse_full(scores(fp, wn), (fh, fw), (nbh, nbw), k), mm, raw)

    pasted, idx = _per_sample(whole, fp, wn, mm, raw)
    pasted = pasted.reshape(bsz, fh, fw, k_raw, k_raw, c)
    y = _crop(_overlap_add(pasted, rate), hf, wf, k_raw, rate)
    idx = idx.reshape(bsz, fh, fw)
  else:
    y, idx = _tiled(fp, wn, mm, raw, scores, finish, (fh, fw), (nbh, nbw), k, tile, rate, c)
    y = _crop(y, hf, wf, k_raw, rate)
  # Each output pixel is covered by rate x rate pasted patches; the reference divides by 4.
  y = (y / 4.).astype(dtype)

  offsets = None
  if return_offsets:
    src = jnp.stack([(idx // nbw) * stride, (idx % nbw) * stride], axis=-1)
    own = jnp.stack(jnp.meshgrid(jnp.arange(fh), jnp.arange(fw), indexing='ij'), axis=-1)
    offsets = (src - own).astype(jnp.int32)
    offsets = jnp.repeat(jnp.repeat(offsets, rate, axis=1), rate, axis=2)[:, :hf, :wf]
  return y, offsets


def _tiled(fp, wn, mm, raw, scores, finish, fg, bg, k, tile, rate, c):
  """Tile-by-tile attention (`lax.scan`): returns the overlap-add canvas [B, ~Hf, ~Wf, C] and
  the argmax indices [B, fh, fw]."""
  (fh, fw), (ty, tx) = fg, tile
  bsz = fp.shape[0]
  k_raw = 2 * rate
  tables = {key: jnp.asarray(v) for key, v in
            attention_tiles.tile_tables(fh, fw, ty, tx, k).items()}
  n_ty, n_tx = -(-fh // ty), -(-fw // tx)

  # Rematerialised under differentiation, so the backward pass holds one tile's scores too.
  @jax.checkpoint
  def one_tile(fp, wn, mm, raw, t):
    if k == 1:
      s = scores(jnp.take(fp, t['pos'], axis=0), wn)
    else:
      s = _fuse_tile(scores(jnp.take(fp, t['window'], axis=0), wn), t, bg, k)
    return finish(s, mm, raw)

  def body(canvas, t):
    pasted, idx = _per_sample(lambda *a: one_tile(*a, t), fp, wn, mm, raw)
    pasted = pasted * t['valid'][None, :, None].astype(pasted.dtype)  # Slots outside the map.
    local = _overlap_add(pasted.reshape(bsz, ty, tx, k_raw, k_raw, c), rate)
    at = (0, t['corner'][0] * rate, t['corner'][1] * rate, 0)
    canvas = lax.dynamic_update_slice(canvas, lax.dynamic_slice(canvas, at, local.shape) + local,
                                      at)
    return canvas, idx

  canvas = jnp.zeros((bsz, (n_ty * ty - 1) * rate + k_raw, (n_tx * tx - 1) * rate + k_raw, c),
                     raw.dtype)
  canvas, idx = lax.scan(body, canvas, tables)
  idx = idx.reshape(n_ty, n_tx, bsz, ty, tx).transpose(2, 0, 3, 1, 4)
  return canvas, idx.reshape(bsz, n_ty * ty, n_tx * tx)[:, :fh, :fw]


class ContextualAttention(nn.Module):
  """Module wrapper of `contextual_attention` (it has no parameters).

  `__call__(f [B,Hf,Wf,C], b [B,Hb,Wb,C], mask [B|1,Hb,Wb,1] | None) -> (y, offsets)`.
  """
  ksize: int = 3
  stride: int = 1
  rate: int = 2
  fuse_k: int = 3
  softmax_scale: float = 10.
  fuse: bool = True
  chunk_size: Optional[int] = None
  return_offsets: bool = True
  dtype: Optional[Any] = None
  patch_norm: str = 'max'
  downscale: str = 'stride'
  mask_downscale: Optional[str] = None
  max_score_bytes: Optional[int] = DEFAULT_MAX_SCORE_BYTES

  def __call__(self, f: jax.Array, b: jax.Array,
               mask: Optional[jax.Array] = None) -> tuple[jax.Array, Optional[jax.Array]]:
    if self.dtype is not None:
      f, b = f.astype(self.dtype), b.astype(self.dtype)
    return contextual_attention(
        f, b, mask, ksize=self.ksize, stride=self.stride, rate=self.rate, fuse_k=self.fuse_k,
        softmax_scale=self.softmax_scale, fuse=self.fuse, chunk_size=self.chunk_size,
        return_offsets=self.return_offsets, patch_norm=self.patch_norm,
        downscale=self.downscale, mask_downscale=self.mask_downscale,
        max_score_bytes=self.max_score_bytes)
