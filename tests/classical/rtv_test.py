"""RTV structure extraction vs an independent float64 NumPy/SciPy implementation (direct solves)."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from flowinpaint.classical.rtv import rtv


def _np_gaussian(sigma):
  k = int(math.floor(5 * sigma + 0.5)) | 1
  x = np.arange(k) - (k - 1) / 2
  g = np.exp(-x ** 2 / (2 * sigma ** 2))
  return g / g.sum()


def _np_weights(x, sigma, sharpness, flat=None):
  """computeTextureWeights on one [H, W, C] float64 image, written from the paper's formulas."""
  h, w, c = x.shape
  fx = np.zeros_like(x)
  fy = np.zeros_like(x)
  fx[:, :-1] = x[:, 1:] - x[:, :-1]
  fy[:-1] = x[1:] - x[:-1]
  g = _np_gaussian(sigma)
  # scipy's 'reflect' mode is MATLAB's 'symmetric' (the edge sample repeated).
  blurred = ndimage.convolve1d(x, g, axis=0, mode='reflect')
  blurred = ndimage.convolve1d(blurred, g, axis=1, mode='reflect')
  gfx = np.zeros_like(x)
  gfy = np.zeros_like(x)
  gfx[:, :-1] = blurred[:, 1:] - blurred[:, :-1]
  gfy[:-1] = blurred[1:] - blurred[:-1]
  if flat is not None:
    keep = (1 - flat)[..., None]
    fx, fy, gfx, gfy = fx * keep, fy * keep, gfx * keep, gfy * keep
  wto = 1 / np.maximum(np.sqrt(fx ** 2 + fy ** 2).mean(-1), sharpness)
  wx = wto / np.maximum(np.abs(gfx).mean(-1), 1e-3)
  wy = wto / np.maximum(np.abs(gfy).mean(-1), 1e-3)
  wx[:, -1] = 0
  wy[-1] = 0
  return wx, wy


def _np_system(wx, wy, lam, data):
  """Sparse (diag(data) + lam L_w) over row-major pixel indices, built edge by edge."""
  h, w = wx.shape
  idx = np.arange(h * w).reshape(h, w)
  rows, cols, vals = [], [], []
  diag = data.astype(np.float64).ravel().copy()
  for (a, b, wt) in ((idx[:, :-1], idx[:, 1:], wx[:, :-1]), (idx[:-1], idx[1:], wy[:-1])):
    a, b, wt = a.ravel(), b.ravel(), lam * wt.ravel()
    rows += [a, b]
    cols += [b, a]
    vals += [-wt, -wt]
    np.add.at(diag, a, wt)
    np.add.at(diag, b, wt)
  rows.append(np.arange(h * w))
  cols.append(np.arange(h * w))
  vals.append(diag)
  return sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(h * w, h * w))


def _np_rtv(img, lam, sigma, sharpness, iterations, mask=None, dilation=3, reg=1e-4):
  img = img.astype(np.float64)
  h, w, c = img.shape
  data = np.ones((h, w))
  flat = None
  x = img.copy()
  rhs = img.copy()
  if mask is not None:
    hole = mask[..., 0] > 0.5
    mean = img[~hole].mean(0)
    x = np.where(hole[..., None], mean, img)
    data = np.where(hole, reg, 1.0)
    rhs = data[..., None] * x
    flat = ndimage.maximum_filter(hole.astype(np.float64), size=2 * dilation + 1,
                                  mode='constant')
  s = sigma
  for _ in range(iterations):
    wx, wy = _np_weights(x, s, sharpness, flat)
    a = _np_system(wx, wy, lam / 2, data)
    x = np.stack([sparse_linalg.spsolve(a, rhs[..., k].ravel()).reshape(h, w)
                  for k in range(c)], -1)
    s = max(s / 2, 0.5)
  return x


def _textured_image(rng, size=24):
  """Two flat regions (left dark, right bright) with a fine checker texture and noise."""
  yy, xx = np.mgrid[:size, :size]
  base = np.where(xx < size // 2, 0.3, 0.7)
  texture = 0.1 * ((yy + xx) % 2 * 2 - 1)
  img = base + texture + 0.02 * rng.standard_normal((size, size))
  return np.stack([img, 0.8 * img + 0.1, 1.0 - img], -1)


def test_matches_scipy_direct_solve():
  rng = np.random.default_rng(0)
  imgs = np.stack([_textured_image(rng), rng.uniform(size=(24, 24, 3))])
  expected = np.stack([_np_rtv(im, 0.015, 3.0, 1e-3, 3) for im in imgs])
  got = rtv(jnp.asarray(imgs, jnp.float32), 0.015, 3.0, 1e-3, 3, cg_tol=1e-6)
  np.testing.assert_allclose(np.asarray(got), expected, atol=2e-3)
  with jax.enable_x64(True):
    got64 = rtv(jnp.asarray(imgs, jnp.float64), 0.015, 3.0, 1e-3, 3, cg_tol=1e-11)
    assert got64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got64), expected, atol=1e-7)


def test_mask_aware_matches_scipy_and_ignores_the_hole():
  rng = np.random.default_rng(1)
  img = _textured_image(rng)
  mask = np.zeros((24, 24, 1))
  mask[8:14, 3:9] = 1
  expected = _np_rtv(img, 0.015, 3.0, 1e-3, 3, mask=mask)
  other = np.where(mask > 0, rng.uniform(size=img.shape), img)  # Different hole content.
  got = rtv(jnp.asarray(np.stack([img, other]), jnp.float32), 0.015, 3.0, 1e-3, 3,
            mask=jnp.asarray(np.stack([mask, mask]), jnp.float32), cg_tol=1e-6)
  np.testing.assert_allclose(np.asarray(got[0]), expected, atol=3e-3)
  np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(got[1]))
  # The hole lies in the dark half: it is filled from its boundary with dark values, not zeros.
  hole = np.asarray(got[0])[8:14, 3:9, 0]
  assert np.all(np.abs(hole - 0.3) < 0.05), hole


def test_stripes_on_two_regions_become_two_flat_regions_with_a_sharp_edge():
  size = 32
  yy, xx = np.mgrid[:size, :size]
  base = np.where(xx < size // 2, 0.3, 0.7)
  stripes = 0.15 * np.where((yy // 2) % 2 == 0, 1.0, -1.0)  # Horizontal stripes, period 4.
  img = np.repeat((base + stripes)[..., None], 3, -1)
  out = np.asarray(rtv(jnp.asarray(img, jnp.float32), 0.015, 3.0, 1e-3, 4))
  assert out.shape == img.shape
  left, right = out[:, 2:size // 2 - 2, 0], out[:, size // 2 + 2:-2, 0]
  # The texture (std 0.15 in the input) is gone ...
  assert left.std() < 0.01 and right.std() < 0.01, (left.std(), right.std())
  assert abs(left.mean() - 0.3) < 0.03 and abs(right.mean() - 0.7) < 0.03
  # ... and the edge stays a step: nearly the whole 0.4 jump happens between two pixels.
  row = out[:, :, 0].mean(0)
  jump = row[size // 2] - row[size // 2 - 1]
  assert jump > 0.3, row


def test_gradient_matches_finite_differences():
  rng = np.random.default_rng(2)
  with jax.enable_x64(True):
    img = jnp.asarray(rng.uniform(0.2, 0.8, size=(1, 8, 8, 3)), jnp.float64)
    probe = jnp.asarray(rng.standard_normal((1, 8, 8, 3)), jnp.float64)
    f = lambda x: jnp.sum(rtv(x, 0.015, 2.0, 1e-2, 2, cg_tol=1e-12) * probe)
    grad = jax.grad(f)(img)
    direction = jnp.asarray(rng.standard_normal(img.shape), jnp.float64)
    eps = 1e-6
    numeric = (f(img + eps * direction) - f(img - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(numeric), rtol=1e-4)


def test_unbatched_input_and_jit():
  img = jnp.asarray(np.random.default_rng(3).uniform(size=(16, 16, 3)), jnp.float32)
  out = jax.jit(lambda x: rtv(x, iterations=2))(img)
  assert out.shape == (16, 16, 3) and out.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out), np.asarray(rtv(img[None], iterations=2)[0]),
                             atol=1e-6)


# --- The StructureFlow authors' own tsmooth.m, run once in Octave (data/make_tsmooth_fixture.py).

_TSMOOTH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tsmooth_octave.npz")


def test_zero_padded_blur_matches_the_authors_tsmooth():
  ref = np.load(_TSMOOTH)
  x = jnp.asarray(ref["images"], jnp.float32)
  got = np.asarray(rtv(x, 0.015, 3.0, 1e-3, 3, blur_padding="zero", cg_tol=1e-6))
  np.testing.assert_allclose(got, ref["full"], atol=2e-4)
  # The default (mirror padding, the original RTV release) is another structure near borders.
  default = np.asarray(rtv(x, 0.015, 3.0, 1e-3, 3, cg_tol=1e-6))
  assert np.abs(default - ref["full"]).max() > 0.02
  # MATLAB's loose pcg(A, b, 0.1) lands within a few grey levels of the exact solve.
  assert np.abs(got - ref["full_pcg"]).mean() < 2 / 255


def test_gradients_mask_mode_is_the_authors_damaged_image_recipe():
  ref = np.load(_TSMOOTH)
  mask = np.broadcast_to(ref["mask"][None, ..., None], ref["images"].shape[:3] + (1,))
  x = jnp.asarray(ref["images"] * (1 - mask), jnp.float32)
  m = jnp.asarray(mask, jnp.float32)
  got = np.asarray(rtv(x, 0.015, 3.0, 1e-3, 3, mask=m, mask_mode="gradients", mask_dilation=0,
                       blur_padding="zero", cg_tol=1e-6))
  np.testing.assert_allclose(got, ref["masked"], atol=2e-4)
  # Ours ('diffuse') differs from it next to the hole, where G_s reads it.
  diffuse = np.asarray(rtv(x, 0.015, 3.0, 1e-3, 3, mask=m, cg_tol=1e-6))
  known = np.broadcast_to(mask == 0, got.shape)
  assert np.abs(diffuse - ref["masked"])[known].max() > 0.05


def test_unknown_modes_are_refused():
  x = jnp.zeros((8, 8, 3))
  for kwargs in ({"mask_mode": "inpaint"}, {"blur_padding": "reflect"}):
    try:
      rtv(x, **kwargs)
    except ValueError as e:
      assert list(kwargs.values())[0] in str(e)
    else:
      raise AssertionError(f"{kwargs} accepted")
