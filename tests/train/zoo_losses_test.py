"""The partial-convolution pixel losses against direct numpy loops."""

import jax
import numpy as np

from flowinpaint.train import losses


def _numpy_pconv_loss(pred, target, mask):
  b, h, w, c = pred.shape
  n = pred.size
  hole = np.abs(mask * (pred - target)).sum() / n
  valid = np.abs((1 - mask) * (pred - target)).sum() / n
  comp = mask * pred + (1 - mask) * target
  region = np.zeros((b, h, w), bool)  # The hole dilated by one pixel (8-neighbourhood).
  for n_ in range(b):
    for i in range(h):
      for j in range(w):
        region[n_, i, j] = mask[n_, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].max() > 0
  tv = 0.0
  for n_ in range(b):
    for i in range(h):
      for j in range(w):
        if j + 1 < w and region[n_, i, j] and region[n_, i, j + 1]:
          tv += np.abs(comp[n_, i, j + 1] - comp[n_, i, j]).sum()
        if i + 1 < h and region[n_, i, j] and region[n_, i + 1, j]:
          tv += np.abs(comp[n_, i + 1, j] - comp[n_, i, j]).sum()
  return valid + 6 * hole + 0.1 * tv / pred.size, tv / pred.size


def test_pconv_loss_matches_numpy():
  rng = np.random.default_rng(0)
  pred = rng.uniform(-1, 1, (2, 12, 10, 3)).astype(np.float32)
  target = rng.uniform(-1, 1, (2, 12, 10, 3)).astype(np.float32)
  mask = np.zeros((2, 12, 10, 1), np.float32)
  mask[0, 3:7, 2:5] = 1
  mask[1, 0:4, 6:10] = 1  # Touches the border.
  mask[1, 9, 1] = 1
  expected, expected_tv = _numpy_pconv_loss(pred, target, mask)
  fn = jax.jit(losses.reconstruction_loss("pconv"))
  np.testing.assert_allclose(float(fn(pred, target, mask)), expected, rtol=1e-5)
  np.testing.assert_allclose(float(losses.total_variation_hole(pred, target, mask)), expected_tv,
                             rtol=1e-5)


def test_pconv_loss_weights_and_gradient():
  rng = np.random.default_rng(1)
  target = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
  mask = np.zeros((1, 8, 8, 1), np.float32)
  mask[0, 2:5, 2:5] = 1
  pred = target + 0.5 * mask  # Wrong only in the hole, by a constant: TV sees just the rim.
  loss = float(losses.pconv_loss(pred, target, mask, tv_weight=0.0))
  np.testing.assert_allclose(loss, 6 * 0.5 * 9 * 3 / pred.size, rtol=1e-6)
  assert float(losses.pconv_loss(target, target, mask)) == float(
      0.1 * losses.total_variation_hole(target, target, mask))
  grad = jax.grad(lambda p: losses.pconv_loss(p, target, mask))(pred)
  assert np.all(np.isfinite(np.asarray(grad)))
