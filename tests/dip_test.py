"""flowinpaint.dip: the fit fills a hole, and DIPInpainter keeps the Inpainter contract.

A small network (depth 3, widths 8-16; the default setting's shape, narrower) keeps the tests
to one compilation of a few seconds; every test here fits a padded 32x32 image, so they share it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint import dip as dip_fit
from flowinpaint import inference
from flowinpaint.models import dip

SMALL = dataclasses.replace(
    dip.PRESETS["large_hole"], channels_down=(8, 16, 16), channels_up=(8, 16, 16),
    channels_skip=(0, 0, 0), filter_down=3, iterations=150)


def _gradient(h: int = 32, w: int = 32) -> np.ndarray:
  yy, xx = np.mgrid[0:h, 0:w]
  return np.stack([40 + 170 * xx / w, 60 + 120 * yy / h, 220 - 120 * (xx + yy) / (h + w)],
                  -1).round().astype(np.uint8)


def _hole(h: int = 32, w: int = 32) -> np.ndarray:
  hole = np.zeros((h, w), bool)
  hole[10:20, 12:24] = True
  return hole


def test_short_fit_fills_a_smooth_gradient_better_than_the_mean_colour():
  rgb, hole = _gradient(), _hole()
  inpainter = dip_fit.DIPInpainter(preset=SMALL, progress=False)
  out = inpainter(rgb, hole)
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  err = np.abs(out[hole].astype(float) - rgb[hole]).mean()
  mean_fill = np.abs(rgb[~hole].mean(axis=0) - rgb[hole]).mean()
  assert inpainter.last_fit.iterations == 150 and not inpainter.last_fit.stopped_early
  assert err < 0.5 * mean_fill, (err, mean_fill)


def test_odd_size_is_padded_and_cropped_back_bit_identical_outside():
  rgb, hole = _gradient(27, 30), _hole(27, 30)
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=3, progress=False)
  assert inpainter.padded_shape(27, 30) == (32, 32)  # The multiple is 8; at least 2 x 8.
  assert inpainter.padded_shape(5, 3) == (16, 16) and inpainter.padded_shape(33, 8) == (40, 16)
  out = inpainter(rgb, hole)
  assert out.shape == rgb.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_same_seed_same_fill_other_seed_other_fill():
  rgb, hole = _gradient(), _hole()
  a = dip_fit.DIPInpainter(preset=SMALL, iterations=5, seed=1, progress=False)(rgb, hole)
  b = dip_fit.DIPInpainter(preset=SMALL, iterations=5, seed=1, progress=False)(rgb, hole)
  c = dip_fit.DIPInpainter(preset=SMALL, iterations=5, seed=2, progress=False)(rgb, hole)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a[hole], c[hole])


def test_time_limit_stops_after_a_chunk_and_returns_the_fit_so_far():
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=1000, time_limit=1e-6,
                                   progress=False)
  out = inpainter(_gradient(), _hole())
  fit = inpainter.last_fit
  assert fit.stopped_early and fit.iterations == dip_fit.PROGRESS_EVERY
  assert out.shape == (32, 32, 3)
  # A caller's deadline (the web demo's budget for one request) bounds the fit the same way.
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=1000, progress=False)
  inpainter.deadline = 0.0  # Long past.
  inpainter(_gradient(), _hole())
  assert inpainter.last_fit.stopped_early
  assert inpainter.last_fit.iterations == dip_fit.PROGRESS_EVERY


def test_empty_hole_returns_the_input_without_fitting():
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=5, progress=False)
  rgb = _gradient()
  out = inpainter(rgb, np.zeros((32, 32), bool))
  np.testing.assert_array_equal(out, rgb)
  assert out is not rgb and inpainter.last_fit is None


def test_progress_bar_shows_the_loss(capsys):
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=30, progress=True)
  inpainter(_gradient(), _hole())
  err = capsys.readouterr().err
  assert "dip 32x32" in err and "loss=" in err and "30/30" in err


def test_fit_reports_the_loss_per_chunk_and_compiles_once():
  rgb, hole = _gradient(), _hole()
  seen = []
  x = rgb.astype(np.float32) / 255.0
  out, result = dip_fit.fit(x, ~hole, settings=SMALL, iterations=60,
                            progress=lambda done, loss: seen.append((done, loss)))
  assert [d for d, _ in seen] == [25, 50, 60]
  assert seen[-1][1] < seen[0][1]  # The loss on the known pixels falls.
  assert result.iterations == 60 and result.loss == pytest.approx(seen[-1][1])
  assert out.shape == (32, 32, 3) and 0.0 <= out.min() and out.max() <= 1.0
  fitter = dip_fit.shared_fitter(SMALL)
  assert fitter.run._cache_size() == 1  # Chunks of 25 and 10 steps: one compilation.


def test_warm_up_compiles_everything_a_fit_runs():
  inpainter = dip_fit.DIPInpainter(preset=SMALL, iterations=30, progress=False)
  inpainter.fitter = fitter = dip_fit.Fitter(SMALL)  # Fresh: nothing compiled yet.
  rgb, hole = _gradient(), _hole()
  inpainter.warm_up(rgb, hole)
  compiled = [f._cache_size() for f in (fitter.init, fitter.run, fitter.output)]
  assert compiled == [1, 1, 1] and inpainter.last_fit is None
  inpainter(rgb, hole)
  assert [f._cache_size() for f in (fitter.init, fitter.run, fitter.output)] == compiled


def test_output_averaging_starts_at_the_first_output():
  # avg = w * avg + (1 - w) * out, started at the first step's output: after one step (no
  # input noise in this setting) it is the initial network's output on z.
  fitter = dip_fit.Fitter(SMALL, average=0.99)
  x = jnp.asarray(_gradient(), jnp.float32)[None] / 255.0
  known = jnp.asarray(~_hole(), jnp.float32)[None, ..., None]
  state = fitter.init(jax.random.key(0), x, known)
  first = np.asarray(fitter.net.apply(state["params"], state["z"]))
  state = fitter.run(state, x, known, jnp.int32(1))
  np.testing.assert_allclose(np.asarray(fitter.output(state)), first, atol=1e-6)
  state = fitter.run(state, x, known, jnp.int32(1))
  second = np.asarray(fitter.output(state))
  assert 0 < np.abs(second - first).max()
  with pytest.raises(ValueError, match="average"):
    dip_fit.Fitter(SMALL, average=1.0)


def test_registered_as_a_method_with_the_tools_options():
  factory, description = inference.METHODS["dip"]
  assert "Deep Image Prior" in description
  made = inference.make_inpainter("dip", radius=5, iterations=7, seed=3, progress=False)
  assert isinstance(made, dip_fit.DIPInpainter)
  assert (made.iterations, made.seed, made.preset) == (7, 3, dip.DEFAULT_PRESET)
  assert factory().iterations == inference.DIP_ITERATIONS
  assert inference.DIP_ITERATIONS == dip.PRESETS[dip.DEFAULT_PRESET].iterations
  with pytest.raises(ValueError, match="iterations"):
    dip_fit.DIPInpainter(iterations=0)
