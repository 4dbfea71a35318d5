"""Tests for contextual attention, against an independent float64 loop implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.layers import ContextualAttention
from flowinpaint.layers import attention_tiles
from flowinpaint.layers import contextual_attention as _contextual_attention

# Jitted once per shape/option set: eager dispatch of the many small ops is slow on CPU.
contextual_attention = jax.jit(_contextual_attention, static_argnames=(
    'ksize', 'stride', 'rate', 'fuse_k', 'softmax_scale', 'fuse', 'chunk_size',
    'return_offsets', 'patch_norm', 'max_score_bytes', 'downscale', 'mask_downscale'))


def _same(n, k, s):
  """TF 'SAME': (pad before, number of outputs)."""
  out = -(-n // s)
  return max((out - 1) * s + k - n, 0) // 2, out


def _pix(img, y, x):
  h, w = img.shape[:2]
  return img[y, x] if 0 <= y < h and 0 <= x < w else np.zeros(img.shape[2:])


def _ref(f, b, mask, ksize=3, stride=1, rate=2, fuse_k=3, scale=10., fuse=True,
         patch_norm='max', rows=None):
  """Loop implementation of DeepFill's contextual attention (one sample at a time).

  `rows(n_in, n_out)`: the source rows of the 1/rate downscale (default every rate-th).
  """
  f, b, mask = (np.asarray(a, np.float64) for a in (f, b, mask))
  nbatch, hf, wf, c = f.shape
  _, hb, wb, _ = b.shape
  kr = 2 * rate
  ys, offs = [], []
  for n in range(nbatch):
    # Raw patches from full-resolution b.
    top, nbh = _same(hb, kr, rate * stride)
    left, nbw = _same(wb, kr, rate * stride)
    raw = np.zeros((nbh, nbw, kr, kr, c))
    for u in range(nbh):
      for v in range(nbw):
        for a in range(kr):
          for e in range(kr):
            raw[u, v, a, e] = _pix(b[n], u * rate * stride - top + a, v * rate * stride - left + e)
    if rows is None:
      fd, bd, md = f[n, ::rate, ::rate], b[n, ::rate, ::rate], mask[n, ::rate, ::rate]
    else:
      pick = lambda a: a[rows(a.shape[0], a.shape[0] // rate)][:, rows(a.shape[1],
                                                                       a.shape[1] // rate)]
      fd, bd, md = pick(f[n]), pick(b[n]), pick(mask[n])
    fh, fw = fd.shape[:2]
    # Normalised matching patches and their validity.
    top, _ = _same(bd.shape[0], ksize, stride)
    left, _ = _same(bd.shape[1], ksize, stride)
    w = np.zeros((nbh, nbw, ksize, ksize, c))
    mm = np.zeros((nbh, nbw))
    for u in range(nbh):
      for v in range(nbw):
        total = 0.
        for a in range(ksize):
          for e in range(ksize):
            w[u, v, a, e] = _pix(bd, u * stride - top + a, v * stride - left + e)
            total += _pix(md, u * stride - top + a, v * stride - left + e).sum()
        sq = (w[u, v] ** 2).sum()
        w[u, v] /= (max(np.sqrt(sq), 1e-4) if patch_norm == 'max'
                    else np.sqrt(sq + 1e-4 * w[u, v].size))
        mm[u, v] = float(total == 0)
    # Scores: SAME conv of fd with each normalised patch.
    p = (ksize - 1) // 2
    s = np.zeros((fh, fw, nbh, nbw))
    for y in range(fh):
      for x in range(fw):
        win = np.array([[_pix(fd, y - p + a, x - p + e) for e in range(ksize)]
                        for a in range(ksize)])
        s[y, x] = np.einsum('aec,uvaec->uv', win, w)
    s = s.reshape(fh * fw, nbh * nbw)
    if fuse:
      def conv_eye(m):
        lo = (fuse_k - 1) // 2
        out = np.zeros_like(m)
        for i in range(m.shape[0]):
          for j in range(m.shape[1]):
            for a in range(fuse_k):
              ii, jj = i + a - lo, j + a - lo
              if 0 <= ii < m.shape[0] and 0 <= jj < m.shape[1]:
                out[i, j] += m[ii, jj]
        return out
      s = conv_eye(s)
      s = s.reshape(fh, fw, nbh, nbw).transpose(1, 0, 3, 2).reshape(fw * fh, nbw * nbh)
      s = conv_eye(s)
      s = s.reshape(fw, fh, nbw, nbh).transpose(1, 0, 3, 2).reshape(fh * fw, nbh * nbw)
    mmf = mm.reshape(-1)
    z = s * mmf * scale
    att = np.exp(z - z.max(axis=1, keepdims=True))
    att = att / att.sum(axis=1, keepdims=True) * mmf
    idx = att.argmax(axis=1)
    off = np.zeros((fh, fw, 2), np.int64)
    # Transposed conv (stride rate, SAME, output f's size) with the raw patches.
    top, _ = _same(hf, kr, rate)
    left, _ = _same(wf, kr, rate)
    y_n = np.zeros((hf, wf, c))
    for yy in range(fh):
      for xx in range(fw):
        i = yy * fw + xx
        off[yy, xx] = (idx[i] // nbw * stride - yy, idx[i] % nbw * stride - xx)
        patch = np.einsum('l,laec->aec', att[i], raw.reshape(-1, kr, kr, c))
        for a in range(kr):
          for e in range(kr):
            r, q = yy * rate - top + a, xx * rate - left + e
            if 0 <= r < hf and 0 <= q < wf:
              y_n[r, q] += patch[a, e]
    ys.append(y_n / 4.)
    offs.append(np.repeat(np.repeat(off, rate, 0), rate, 1)[:hf, :wf])
  return np.stack(ys), np.stack(offs)


def _inputs(shape, seed=0):
  """Random features and a random rectangular hole per sample (about a quarter of the area)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(np.float32)
  n, h, w = shape[:3]
  mask = np.zeros((n, h, w, 1), np.float32)
  for i in range(n):
    top, left = rng.integers(0, h // 2 + 1), rng.integers(0, w // 2 + 1)
    mask[i, top:top + h // 2, left:left + w // 2] = 1.
  return x, mask


@pytest.mark.parametrize('shape,stride,fuse', [
    ((2, 10, 6, 3), 1, True),     # non-square: catches row/column-major mix-ups
    ((2, 12, 8, 2), 2, True),
    ((1, 9, 7, 2), 1, True),      # not divisible by rate (our documented convention)
    ((2, 8, 8, 3), 1, False),
])
def test_matches_numpy_loops(shape, stride, fuse):
  f, mask = _inputs(shape, seed=1)
  b, _ = _inputs(shape, seed=2)
  b[0, :2] = 0.  # all-zero patches exercise the 1e-4 norm floor
  y, off = contextual_attention(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask),
                                stride=stride, fuse=fuse)
  y_ref, off_ref = _ref(f, b, mask, stride=stride, fuse=fuse)
  np.testing.assert_allclose(np.asarray(y), y_ref, atol=1e-4, rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(off), off_ref)


def test_different_f_and_b_sizes():
  f, _ = _inputs((2, 8, 6, 3), seed=3)
  b, mask = _inputs((2, 12, 10, 3), seed=4)
  y, off = contextual_attention(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask))
  y_ref, off_ref = _ref(f, b, mask)
  assert y.shape == f.shape and off.shape == (2, 8, 6, 2)
  np.testing.assert_allclose(np.asarray(y), y_ref, atol=1e-4, rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(off), off_ref)


@pytest.mark.parametrize('shape,stride,fuse', [
    ((2, 14, 10, 3), 1, True), ((1, 16, 12, 2), 2, True), ((2, 11, 9, 2), 1, True),
    ((2, 10, 10, 2), 1, False)])
@pytest.mark.parametrize('chunk', [1, 7, 16])
def test_chunked_equals_unchunked(shape, stride, fuse, chunk):
  f, mask = _inputs(shape, seed=5)
  f, mask = jnp.asarray(f), jnp.asarray(mask)
  y, off = contextual_attention(f, f, mask, stride=stride, fuse=fuse)
  yc, offc = contextual_attention(f, f, mask, stride=stride, fuse=fuse, chunk_size=chunk)
  np.testing.assert_allclose(np.asarray(yc), np.asarray(y), atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(offc), np.asarray(off))


def test_reconstructs_copied_content():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 40, 40, 4)).astype(np.float32)
  x[:, 20:36, 20:36] = x[:, 2:18, 2:18]  # the hole's content also exists outside it
  mask = np.zeros((1, 40, 40, 1), np.float32)
  mask[:, 20:36, 20:36] = 1.
  y, off = contextual_attention(jnp.asarray(x), jnp.asarray(x), jnp.asarray(mask))
  inner = (slice(None), slice(23, 33), slice(23, 33))
  np.testing.assert_allclose(np.asarray(y)[inner], x[inner], atol=1e-3)
  np.testing.assert_array_equal(np.asarray(off)[inner], -9)  # 18 px / rate 2


def test_masked_background_gets_no_attention():
  # A perfect match placed inside the hole must be ignored. Without fusion y cannot depend on
  # b there at all (with fusion, hole scores leak into their neighbours' fused scores, as in the
  # reference).
  rng = np.random.default_rng(1)
  f = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
  b = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
  mask = np.zeros((2, 16, 16, 1), np.float32)
  mask[0, 4:10, 6:12] = 1.  # even-aligned, so no valid raw patch touches the hole
  mask[1, 8:14, 2:8] = 1.
  b2 = b.copy()
  b2[mask[..., 0] > 0] = 0.
  b2[0, 4:10, 6:12] = f[0, 4:10, 6:12]
  f, b, b2, mask = (jnp.asarray(a) for a in (f, b, b2, mask))
  y1, off1 = contextual_attention(f, b, mask, fuse=False)
  y2, off2 = contextual_attention(f, b2, mask, fuse=False)
  np.testing.assert_allclose(np.asarray(y2), np.asarray(y1), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(off2), np.asarray(off1))
  # With fusion, argmax sources are still patches with a hole-free 3x3 (downscaled) window.
  md = np.asarray(mask)[:, ::2, ::2, 0]
  for fuse in (True, False):
    _, off = contextual_attention(f, b2, mask, fuse=fuse)
    off = np.asarray(off)[:, ::2, ::2]
    for n in range(2):
      for yy in range(8):
        for xx in range(8):
          sy, sx = yy + off[n, yy, xx, 0], xx + off[n, yy, xx, 1]
          assert md[n, max(sy - 1, 0):sy + 2, max(sx - 1, 0):sx + 2].sum() == 0


def test_per_sample_mask_and_broadcast_mask():
  f, mask = _inputs((2, 8, 8, 2), seed=7)
  f, mask = jnp.asarray(f), jnp.asarray(mask)
  y, _ = contextual_attention(f, f, mask)
  y0, _ = contextual_attention(f[:1], f[:1], mask[:1])
  y1, _ = contextual_attention(f[1:], f[1:], mask[1:])
  np.testing.assert_allclose(np.asarray(y), np.concatenate([y0, y1]), atol=1e-6)
  yb, _ = contextual_attention(f, f, mask[:1])
  yb1, _ = contextual_attention(f[1:], f[1:], mask[:1])
  np.testing.assert_allclose(np.asarray(yb[1:]), np.asarray(yb1), atol=1e-6)


@pytest.mark.parametrize('chunk', [None, 5])
def test_gradients_finite(chunk):
  f, mask = _inputs((2, 8, 10, 3), seed=8)
  b, _ = _inputs((2, 8, 10, 3), seed=9)
  f, b = 0.05 * f, 0.05 * b  # keeps the softmax unsaturated, so gradients are non-zero
  b[:, :4] = 0.
  def loss(f, b):
    y, _ = _contextual_attention(f, b, jnp.asarray(mask), chunk_size=chunk,
                                 return_offsets=False)
    return jnp.sum(jnp.sin(y))
  gf, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(f), jnp.asarray(b))
  assert np.all(np.isfinite(gf)) and np.all(np.isfinite(gb))
  assert np.abs(gf).sum() > 0 and np.abs(gb).sum() > 0


def test_module_wrapper_and_dtype():
  f, mask = _inputs((1, 8, 8, 4), seed=10)
  layer = ContextualAttention(chunk_size=3, return_offsets=False)
  y, off = jax.jit(layer.apply)({}, jnp.asarray(f), jnp.asarray(f), jnp.asarray(mask))
  assert off is None and y.shape == f.shape
  yb, _ = contextual_attention(jnp.asarray(f, jnp.bfloat16), jnp.asarray(f, jnp.bfloat16),
                               jnp.asarray(mask))
  assert yb.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(yb, np.float32), np.asarray(y), atol=0.1)


def _tile(shape, fuse, budget):
  """The tile `contextual_attention` picks for f = b of `shape` under `budget` (None: one pass)."""
  n, h, w, c = shape
  fh, fw = -(-h // 2), -(-w // 2)
  return attention_tiles.choose_tile(fh, fw, 3 if fuse else 1, score_row_bytes=4 * n * fh * fw,
                                     match_depth=9 * c, paste_depth=16 * c, max_bytes=budget)


@pytest.mark.parametrize('shape,fuse', [((2, 30, 22, 3), True), ((1, 26, 34, 2), False)])
def test_budget_tiles_equal_one_pass(shape, fuse):
  f, mask = _inputs(shape, seed=11)
  full = 4 * shape[0] * (-(-shape[1] // 2) * -(-shape[2] // 2)) ** 2  # bytes of the scores
  budget = full // 8
  assert _tile(shape, fuse, budget) is not None and _tile(shape, fuse, None) is None
  f, mask = jnp.asarray(f), jnp.asarray(mask)
  y, off = contextual_attention(f, f, mask, fuse=fuse, max_score_bytes=None)
  yt, offt = contextual_attention(f, f, mask, fuse=fuse, max_score_bytes=budget)
  np.testing.assert_allclose(np.asarray(yt), np.asarray(y), atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(offt), np.asarray(off))


@pytest.mark.parametrize('fuse', [True, False])
def test_budget_bounds_compiled_memory(fuse):
  # XLA's own accounting of the temporaries, without running: the one-pass scores of this
  # shape take ~4 x 21 MB; under a 4 MB budget only the patch tensors (~10x f's 0.6 MB) remain.
  shape = (1, 96, 96, 16)
  f = jax.ShapeDtypeStruct(shape, jnp.float32)
  m = jax.ShapeDtypeStruct(shape[:3] + (1,), jnp.float32)

  def temp(budget):
    fn = jax.jit(lambda f, m: _contextual_attention(f, f, m, fuse=fuse, max_score_bytes=budget))
    analysis = fn.lower(f, m).compile().memory_analysis()
    if analysis is None:
      pytest.skip('no memory analysis on this backend')
    return analysis.temp_size_in_bytes

  f_bytes, budget = np.prod(shape) * 4, 4 * 2**20
  tiled, whole = temp(budget), temp(None)
  assert whole > 48**4 * 4 * 2  # the one-pass scores: at least two [2304, 2304] f32 copies
  assert tiled <= budget + 12 * f_bytes, (tiled, budget)


def test_choose_tile_limits():
  # One pass when it fits; otherwise the estimate fits and tiles are much smaller than the map.
  row = 4 * 64 * 64
  assert attention_tiles.choose_tile(64, 64, 3, score_row_bytes=row, match_depth=9,
                                     paste_depth=16, max_bytes=10 * 64 * 64 * row) is None
  for k in (1, 3):
    budget = 200 * row
    ty, tx = attention_tiles.choose_tile(64, 64, k, score_row_bytes=row, match_depth=9,
                                         paste_depth=16, max_bytes=budget)
    assert attention_tiles.tile_bytes(ty, tx, 64, 64, k, row) <= budget
    assert 20 <= ty * tx <= 200
    assert attention_tiles.choose_tile(64, 64, k, score_row_bytes=row, match_depth=9,
                                       paste_depth=16, max_positions=37) is not None
    ty, tx = attention_tiles.choose_tile(64, 64, k, score_row_bytes=row, match_depth=9,
                                         paste_depth=16, max_positions=37)
    assert ty * tx <= 37
  # Nothing fits: single positions.
  assert attention_tiles.choose_tile(64, 64, 3, score_row_bytes=row, match_depth=9,
                                     paste_depth=16, max_bytes=row) == (1, 1)


def test_tile_tables_cover_the_grid_once():
  for ty, tx in ((3, 4), (10, 7), (1, 1)):
    t = attention_tiles.tile_tables(10, 7, ty, tx, 3)
    inside = t['pos'][t['valid'] > 0]
    np.testing.assert_array_equal(np.sort(inside), np.arange(70))
    # The window holds every raw score row the tile's fused rows read (row-major +-1 of the
    # column-major +-1 neighbours).
    for i in range(len(t['pos'])):
      assert set(t['window'][i][t['src1'][i]].ravel()) <= set(t['window'][i])


@pytest.mark.parametrize('fuse', [True, False])
def test_tiled_gradients_equal_one_pass(fuse):
  f, mask = _inputs((2, 12, 10, 3), seed=12)
  b, _ = _inputs((2, 12, 10, 3), seed=13)
  f, b = 0.05 * f, 0.05 * b

  def grads(**kw):
    def loss(f, b):
      y, _ = _contextual_attention(f, b, jnp.asarray(mask), fuse=fuse, return_offsets=False,
                                   **kw)
      return jnp.sum(jnp.sin(y))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(f), jnp.asarray(b))

  for got, want in zip(grads(chunk_size=7), grads(max_score_bytes=None)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-4)


# TF 2.21's tf.compat.v1.image.resize_nearest_neighbor(align_corners=True) on arange(n_in),
# printed once (the DeepFill reference's resize; (6, 3) shows roundf's halves away from zero).
_TF_ALIGN_CORNERS = {
    (64, 16): [0, 4, 8, 13, 17, 21, 25, 29, 34, 38, 42, 46, 50, 55, 59, 63],
    (16, 8): [0, 2, 4, 6, 9, 11, 13, 15],
    (24, 12): [0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21, 23],
    (6, 3): [0, 3, 5],
    (90, 45): list(range(0, 43, 2)) + list(range(45, 90, 2)),
}


def test_align_corners_index_is_tf_resize():
  from flowinpaint.layers.contextual_attention import align_corners_index
  for (n_in, n_out), want in _TF_ALIGN_CORNERS.items():
    assert align_corners_index(n_in, n_out).tolist() == want, (n_in, n_out)


def test_align_corners_downscale_matches_numpy_loops():
  from flowinpaint.layers.contextual_attention import align_corners_index
  rng = np.random.default_rng(5)
  f = rng.normal(size=(2, 12, 16, 3)).astype(np.float32)
  mask = np.zeros((2, 12, 16, 1), np.float32)
  mask[0, 3:9, 5:11] = 1
  mask[1, 6:12, 2:6] = 1
  y, _ = contextual_attention(f, f, mask, downscale='align_corners')
  want, _ = _ref(f, f, mask, rows=align_corners_index)
  np.testing.assert_allclose(np.asarray(y), want, atol=1e-4)
  plain, _ = contextual_attention(f, f, mask)
  assert np.abs(np.asarray(plain) - want).max() > 1e-2  # the rows picked matter
  with pytest.raises(ValueError, match="divisible by rate 2"):
    _contextual_attention(f[:, :11], f[:, :11], mask[:, :11], downscale='align_corners')
