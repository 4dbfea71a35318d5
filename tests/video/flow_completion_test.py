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


def _direct_harmonic_fill(flow: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """The same graph Laplace problem (4-neighbours, Neumann image border, known pixels as
  Dirichlet data) solved exactly with a sparse LU factorisation on the hole pixels."""
  import scipy.sparse
  import scipy.sparse.linalg

  h, w = hole.shape
  ys, xs = np.nonzero(hole)
  index = np.full((h, w), -1)
  index[ys, xs] = np.arange(len(ys))
  rows, cols, vals = [], [], []
  b = np.zeros((len(ys), 2))
  for i, (y, x) in enumerate(zip(ys, xs)):
    for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
      if 0 <= ny < h and 0 <= nx < w:
        rows.append(i)
        cols.append(i)
        vals.append(1.0)
        if hole[ny, nx]:
          rows.append(i)
          cols.append(index[ny, nx])
          vals.append(-1.0)
        else:
          b[i] += flow[ny, nx]
  a = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(len(ys), len(ys)))
  out = flow.astype(np.float64).copy()
  out[ys, xs] = scipy.sparse.linalg.splu(a).solve(b)
  return out


def test_matches_a_direct_solve_whatever_the_batch():
  # A curl-free but non-linear field and holes of several shapes, one touching the border;
  # also the shape the pipeline uses (flows a few px long), shorter side > COARSEST: 2 levels.
  rng = np.random.default_rng(0)
  h, w = 72, 100
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  flows = np.stack([np.stack([4 * np.sin(xs / 17 + k) + 0.02 * ys, np.cos(ys / 11 - k) * 3], -1)
                    for k in range(3)]).astype(np.float32)
  masks = np.zeros((3, h, w), bool)
  masks[0, 10:50, 20:60] = True
  masks[1, 0:30, 70:100] = True
  masks[1, 40:60, 5:25] = True
  masks[2] = rng.random((h, w)) < 0.3  # scattered pixels, as inconsistent flow gives
  masks[2, 20:60, 30:45] = True
  corrupt = np.where(masks[..., None], 50.0, flows).astype(np.float32)
  completer = LaplacianFlowCompleter()
  out = np.asarray(completer(corrupt, masks))
  for i in range(3):
    exact = _direct_harmonic_fill(corrupt[i], masks[i])
    err = np.abs(out[i] - exact)[masks[i]]
    assert err.max() < 0.02 and err.mean() < 2e-3, (i, err.max(), err.mean())
    assert np.abs(out[i] - flows[i])[masks[i]].mean() < 1.0  # and it is a sensible fill
    # A flow's completion does not depend on the flows batched with it.
    alone = np.asarray(completer(corrupt[i:i + 1], masks[i:i + 1]))[0]
    np.testing.assert_allclose(alone, out[i], atol=1e-5)
  np.testing.assert_array_equal(out[~masks], corrupt[~masks])


def test_prepare_compiles_once_per_size_in_the_background():
  completer = LaplacianFlowCompleter(batch_size=3)
  completer.prepare(20, 24)
  pending = completer._programs[20, 24]
  completer.prepare(20, 24)  # the same size: nothing more
  assert completer._programs[20, 24] is pending and len(completer._programs) == 1
  flow = np.ones((4, 20, 24, 2), np.float32)
  masks = np.zeros((4, 20, 24), bool)
  masks[:, 5:15, 5:15] = True
  out = np.asarray(completer(np.where(masks[..., None], 0.0, flow), masks))
  np.testing.assert_allclose(out, flow, atol=1e-3)
  assert pending.done() and len(completer._programs) == 1
