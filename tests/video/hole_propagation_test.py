"""The hole-only NumPy propagation gives the dense JAX propagation's frames."""

import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import hole_propagation, propagation


def _dense(frames, holes, fwd, bwd, **kw):
  out, rem = propagation.propagate(jnp.asarray(frames, jnp.float32), jnp.asarray(holes),
                                   jnp.asarray(fwd), jnp.asarray(bwd), **kw)
  return np.asarray(jnp.clip(jnp.round(out), 0, 255)).astype(np.uint8), np.asarray(rem)


@pytest.mark.parametrize("temperature", [0.0, 2.0])
@pytest.mark.parametrize("zoom", [1.2, 0.9])
def test_same_frames_as_the_dense_propagation(zoom, temperature):
  c = make_clip("astronaut", 7, 40, 64, seed=2, zoom=zoom, pan=0.4, object_speed=0.05,
                object_size=0.45)
  # Perturbed flows: some pixels fail the consistency check, chains break and restart.
  rng = np.random.default_rng(0)
  fwd = c.forward_flow + rng.normal(0, 0.3, c.forward_flow.shape).astype(np.float32)
  bwd = c.backward_flow + rng.normal(0, 0.3, c.backward_flow.shape).astype(np.float32)
  holes = c.masks.copy()
  holes[3] = False  # a frame without holes cuts the chains
  want, want_rem = _dense(c.frames, holes, fwd, bwd, temperature=temperature)
  got, rem = hole_propagation.propagate_holes(c.frames, holes, fwd, bwd,
                                              temperature=temperature)
  assert got.dtype == np.uint8
  assert 0 < rem.sum() < holes.sum()  # some filled, some not
  np.testing.assert_array_equal(rem, want_rem)
  np.testing.assert_array_equal(got[~holes], c.frames[~holes])
  diff = np.abs(got.astype(int) - want)
  # Same float32 arithmetic in another order: at most a rounding step apart, and rarely.
  assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_nothing_to_fill_and_a_single_frame():
  frames = np.random.default_rng(1).integers(0, 255, (3, 8, 10, 3)).astype(np.uint8)
  zero = np.zeros((2, 8, 10, 2), np.float32)
  out, rem = hole_propagation.propagate_holes(frames, np.zeros((3, 8, 10), bool), zero, zero)
  np.testing.assert_array_equal(out, frames)
  assert not rem.any()
  holes = np.ones((1, 8, 10), bool)
  out, rem = hole_propagation.propagate_holes(frames[:1], holes, zero[:0], zero[:0])
  np.testing.assert_array_equal(rem, holes)


def test_temporally_nearest_source_wins():
  t, h, w = 6, 6, 8
  frames = np.stack([np.full((h, w, 3), 10 * i, np.uint8) for i in range(t)])
  holes = np.zeros((t, h, w), bool)
  holes[2:4, 2, 3] = True
  zero = np.zeros((t - 1, h, w, 2), np.float32)
  out, rem = hole_propagation.propagate_holes(frames, holes, zero, zero)
  assert not rem.any()
  assert out[2, 2, 3, 0] == 10 and out[3, 2, 3, 0] == 40
