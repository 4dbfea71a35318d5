"""Vectorised float64 NumPy contextual attention (DeepFill's semantics), fast enough for 128x128.

Checked against the loop implementation `contextual_attention_test._ref` on small shapes
(contextual_attention_variants_test.py); used as the reference at sizes the loops cannot reach.
"""

from __future__ import annotations

import numpy as np


def _same(n: int, k: int, s: int) -> tuple[int, int, int]:
  """TF 'SAME': (pad before, pad after, number of outputs)."""
  out = -(-n // s)
  total = max((out - 1) * s + k - n, 0)
  return total // 2, total - total // 2, out


def _patches(x: np.ndarray, k: int, s: int) -> np.ndarray:
  """[H, W, C] -> [oh, ow, k, k, C], zero padded as TF 'SAME'."""
  h, w, _ = x.shape
  top, bottom, oh = _same(h, k, s)
  left, right, ow = _same(w, k, s)
  xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
  out = np.empty((oh, ow, k, k, x.shape[2]), x.dtype)
  for a in range(k):
    for e in range(k):
      out[:, :, a, e] = xp[a:a + (oh - 1) * s + 1:s, e:e + (ow - 1) * s + 1:s]
  return out


def _conv_eye(m: np.ndarray, k: int) -> np.ndarray:
  """'SAME' correlation of a matrix with eye(k): out[i, j] = sum_d m[i + d, j + d]."""
  lo = (k - 1) // 2
  out = np.zeros_like(m)
  n, q = m.shape
  for d in range(-lo, k - lo):
    i0, i1 = max(0, -d), min(n, n - d)
    j0, j1 = max(0, -d), min(q, q - d)
    out[i0:i1, j0:j1] += m[i0 + d:i1 + d, j0 + d:j1 + d]
  return out


def reference(f, b, mask, *, ksize=3, stride=1, rate=2, fuse_k=3, scale=10., fuse=True,
              patch_norm='max'):
  """Returns (y [B, Hf, Wf, C], offsets [B, Hf, Wf, 2], float64 / int64)."""
  f, b, mask = (np.asarray(a, np.float64) for a in (f, b, mask))
  mask = np.broadcast_to(mask, b.shape[:3] + (mask.shape[-1],))
  _, hf, wf, c = f.shape
  kr = 2 * rate
  ys, offs = [], []
  for fn, bn, mn in zip(f, b, mask):
    raw = _patches(bn, kr, rate * stride)
    nbh, nbw = raw.shape[:2]
    fd, bd, md = fn[::rate, ::rate], bn[::rate, ::rate], mn[::rate, ::rate]
    fh, fw = fd.shape[:2]
    w = _patches(bd, ksize, stride).reshape(nbh * nbw, -1)
    sq = (w ** 2).sum(1, keepdims=True)
    w = w / (np.maximum(np.sqrt(sq), 1e-4) if patch_norm == 'max'
             else np.sqrt(sq + 1e-4 * w.shape[1]))
    hole = (md != 0).any(-1, keepdims=True).astype(np.float64)
    mm = (_patches(hole, ksize, stride).reshape(nbh * nbw, -1).sum(1) == 0).astype(np.float64)
    s = _patches(fd, ksize, 1).reshape(fh * fw, -1) @ w.T
    if fuse:
      s = _conv_eye(s, fuse_k)
      s = s.reshape(fh, fw, nbh, nbw).transpose(1, 0, 3, 2).reshape(fw * fh, nbw * nbh)
      s = _conv_eye(s, fuse_k)
      s = s.reshape(fw, fh, nbw, nbh).transpose(1, 0, 3, 2).reshape(fh * fw, nbh * nbw)
    z = s * mm * scale
    att = np.exp(z - z.max(1, keepdims=True))
    att = att / att.sum(1, keepdims=True) * mm
    pasted = (att @ raw.reshape(nbh * nbw, -1)).reshape(fh, fw, kr, kr, c)
    canvas = np.zeros(((fh - 1) * rate + kr, (fw - 1) * rate + kr, c))
    for a in range(kr):
      for e in range(kr):
        canvas[a:a + (fh - 1) * rate + 1:rate, e:e + (fw - 1) * rate + 1:rate] += pasted[:, :, a, e]
    top, left = _same(hf, kr, rate)[0], _same(wf, kr, rate)[0]
    ys.append(canvas[top:top + hf, left:left + wf] / 4.)
    idx = att.argmax(1).reshape(fh, fw)
    off = np.stack([idx // nbw * stride - np.arange(fh)[:, None],
                    idx % nbw * stride - np.arange(fw)[None, :]], -1)
    offs.append(np.repeat(np.repeat(off, rate, 0), rate, 1)[:hf, :wf])
  return np.stack(ys), np.stack(offs)
