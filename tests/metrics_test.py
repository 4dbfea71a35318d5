"""Metrics against scikit-image (an independent implementation) and hand values."""

import jax
import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from flowinpaint import metrics


def _pair(h=40, w=37, c=3, seed=0, noise=20):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = (np.sin(xx / 5.0)[..., None] * 80 + yy[..., None] * 2 + 60 + rng.normal(0, 10, (h, w, c)))
  a = np.clip(base, 0, 255).astype(np.uint8)
  b = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
  return a, b


def _sk_ssim(a, b, data_range, full=False):
  return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, channel_axis=-1, full=full)


def test_hand_values():
  a = np.zeros((2, 2, 1), np.float32)
  b = np.array([[1, 0], [0, 3]], np.float32)[..., None]
  assert float(metrics.l1(a, b)) == pytest.approx(1.0)
  assert float(metrics.l2(a, b)) == pytest.approx(2.5)
  assert float(metrics.psnr(a, b, data_range=10)) == pytest.approx(10 * np.log10(100 / 2.5))
  mask = np.array([[1, 0], [0, 0]])
  assert float(metrics.l1(a, b, mask=mask)) == pytest.approx(1.0)
  assert float(metrics.psnr(a, b, data_range=10, mask=mask)) == pytest.approx(20.0)
  assert float(metrics.hole_ratio(mask)) == 0.25
  assert np.isinf(float(metrics.psnr(a, a, data_range=1)))
  assert float(metrics.ssim(b, b, data_range=3)) == pytest.approx(1.0, abs=1e-6)
  assert np.isnan(float(metrics.l1(a, b, mask=np.zeros((2, 2)))))


@pytest.mark.parametrize("seed", [0, 1])
def test_against_skimage_uint8(seed):
  a, b = _pair(seed=seed)
  assert float(metrics.psnr(a, b, data_range=255)) == pytest.approx(
      peak_signal_noise_ratio(a, b, data_range=255), abs=1e-4)
  assert float(metrics.l2(a, b)) == pytest.approx(mean_squared_error(a, b), rel=1e-5)
  assert float(metrics.ssim(a, b, data_range=255)) == pytest.approx(
      _sk_ssim(a, b, 255), abs=2e-5)


def test_against_skimage_float_and_gray():
  a, b = _pair(h=23, w=31, c=1, seed=3)
  af, bf = a / 255.0 * 2 - 1, b / 255.0 * 2 - 1
  assert float(metrics.ssim(af, bf, data_range=2.0)) == pytest.approx(
      _sk_ssim(af, bf, 2.0), abs=2e-5)
  assert float(metrics.psnr(af, bf, data_range=2.0)) == pytest.approx(
      peak_signal_noise_ratio(af, bf, data_range=2.0), abs=1e-4)


def test_masked_against_skimage_map():
  a, b = _pair(seed=4)
  mask = np.zeros(a.shape[:2], bool)
  mask[3:20, 10:30] = True
  mask[0:4, 0:3] = True  # touches the border
  _, smap = _sk_ssim(a, b, 255, full=True)
  assert float(metrics.ssim(a, b, data_range=255, mask=mask)) == pytest.approx(
      smap[mask].mean(), abs=2e-5)
  d = a.astype(np.float64) - b
  assert float(metrics.l1(a, b, mask=mask)) == pytest.approx(np.abs(d)[mask].mean(), rel=1e-5)
  mse = (d**2)[mask].mean()
  assert float(metrics.psnr(a, b, data_range=255, mask=mask[..., None])) == pytest.approx(
      10 * np.log10(255**2 / mse), abs=1e-4)


def test_batched_and_jit():
  pairs = [_pair(seed=s) for s in range(3)]
  a = np.stack([p[0] for p in pairs])
  b = np.stack([p[1] for p in pairs])
  masks = np.zeros(a.shape[:3], np.float32)
  masks[:, 5:15, 5:15] = 1
  got = jax.jit(lambda x, y, m: metrics.all_metrics(x, y, m, data_range=255))(a, b, masks)
  assert set(got) == {"psnr", "ssim", "l1", "l2", "psnr_hole", "ssim_hole", "l1_hole",
                      "l2_hole", "hole_ratio"}
  for k, v in got.items():
    assert v.shape == (3,), k
  for i in range(3):
    assert float(got["ssim"][i]) == pytest.approx(_sk_ssim(a[i], b[i], 255), abs=2e-5)
    assert float(got["psnr"][i]) == pytest.approx(
        peak_signal_noise_ratio(a[i], b[i], data_range=255), abs=1e-4)
  np.testing.assert_allclose(got["hole_ratio"], 100 / (40 * 37))
