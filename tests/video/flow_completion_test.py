"""Tests of the classical (Laplacian) flow completion."""

import numpy as np

from flowinpaint.video.flow_completion import LaplacianFlowCompleter


def test_linear_flow_is_restored_inside_the_hole():
  # A zooming camera has a linear flow field, which is harmonic: the fill is exact.
  h, w = 40, 56
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  flow = np.stack([0.05 * xs - 1.0, -0.03 * ys + 2.0], -1)[None].repeat(2, 0)
  masks = np.zeros((2, h, w), bool)
  masks[0, 8:30, 10:40] = True
  masks[1, 5:20, 30:52] = True
  corrupt = np.where(masks[..., None], 100.0, flow).astype(np.float32)
  out = np.asarray(LaplacianFlowCompleter()(corrupt, masks))
  np.testing.assert_allclose(out[masks], flow[masks], atol=0.02)
  np.testing.assert_array_equal(out[~masks], flow[~masks])


def test_hole_on_the_border_gets_the_nearby_flow():
  # The image border is a Neumann boundary: a constant flow is continued exactly.
  flow = np.tile(np.array([1.5, -0.5], np.float32), (1, 24, 32, 1))
  masks = np.zeros((1, 24, 32), bool)
  masks[0, :10, :12] = True
  out = np.asarray(LaplacianFlowCompleter()(np.where(masks[..., None], 0.0, flow), masks))
  np.testing.assert_allclose(out, flow, atol=1e-3)


def test_empty_and_full_masks():
  flow = np.random.default_rng(0).normal(size=(2, 16, 16, 2)).astype(np.float32)
  masks = np.zeros((2, 16, 16), bool)
  masks[1] = True
  out = np.asarray(LaplacianFlowCompleter()(flow, masks))
  np.testing.assert_array_equal(out[0], flow[0])
  assert np.isfinite(out[1]).all()
