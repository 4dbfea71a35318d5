"""Tests of flow-guided propagation (JAX, lax.scan over frames)."""

import jax.numpy as jnp
import numpy as np

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import propagation


def _run(frames, holes, fwd, bwd, **kw):
  out, rem = propagation.propagate(jnp.asarray(frames, jnp.float32), jnp.asarray(holes),
                                   jnp.asarray(fwd), jnp.asarray(bwd), **kw)
  return np.asarray(out), np.asarray(rem)


def test_known_flow_restores_hidden_region_exactly():
  # Whole-pixel camera pan: a region hidden in some frames is visible in others.
  c = make_clip("astronaut", 8, 48, 72, seed=0, integer_pan=True, pan=0.5, object_speed=0.05,
                object_size=0.4)
  out, rem = _run(c.frames, c.masks, c.forward_flow, c.backward_flow)
  restored = c.masks & ~rem
  assert restored.sum() > 0.8 * c.masks.sum()
  np.testing.assert_array_equal(out[restored], c.background[restored].astype(np.float32))
  np.testing.assert_array_equal(out[~c.masks], c.frames[~c.masks].astype(np.float32))


def test_never_seen_region_stays_a_hole():
  frames = np.random.default_rng(0).integers(0, 255, (5, 16, 20, 3)).astype(np.uint8)
  holes = np.zeros((5, 16, 20), bool)
  holes[:, 4:9, 5:11] = True  # Static camera, static hole: no frame shows it.
  zero = np.zeros((4, 16, 20, 2), np.float32)
  out, rem = _run(frames, holes, zero, zero)
  np.testing.assert_array_equal(rem, holes)
  np.testing.assert_array_equal(out[~holes], frames[~holes].astype(np.float32))


def test_temporally_nearest_source_wins():
  # Static camera, every frame a flat colour; pixel (2, 3) is hidden in frames 2 and 3.
  t, h, w = 6, 6, 8
  frames = np.stack([np.full((h, w, 3), 10 * i, np.uint8) for i in range(t)])
  holes = np.zeros((t, h, w), bool)
  holes[2:4, 2, 3] = True
  zero = np.zeros((t - 1, h, w, 2), np.float32)
  out, rem = _run(frames, holes, zero, zero)
  assert not rem.any()
  assert out[2, 2, 3, 0] == 10  # from frame 1 (distance 1) rather than frame 4 (distance 2)
  assert out[3, 2, 3, 0] == 40  # from frame 4
  holes[:, 2, 3] = False
  holes[2, 2, 3] = True  # tie between frames 1 and 3: both blended
  out, _ = _run(frames, holes, zero, zero)
  assert out[2, 2, 3, 0] == 20


def test_inconsistent_flow_is_not_followed():
  t, h, w = 3, 8, 8
  frames = np.stack([np.full((h, w, 3), 50 * i, np.uint8) for i in range(t)])
  holes = np.zeros((t, h, w), bool)
  holes[1, 3:5, 3:5] = True
  fwd = np.zeros((t - 1, h, w, 2), np.float32)
  bwd = np.zeros_like(fwd)
  bwd[0, 3:5, 3:5] = 3.0  # frame 1 -> 0 says "+3 px" but frame 0 -> 1 says "0": inconsistent
  out, rem = _run(frames, holes, fwd, bwd)
  assert (out[1, 3:5, 3:5, 0] == 100).all()  # from frame 2, the consistent side
  bad = np.asarray(propagation.inconsistent(jnp.asarray(bwd), jnp.asarray(fwd)))
  assert bad[0, 3:5, 3:5].all() and not bad[0, :2].any()


def test_single_frame_is_returned_unchanged():
  frames = np.zeros((1, 4, 4, 3), np.uint8)
  holes = np.ones((1, 4, 4), bool)
  out, rem = _run(frames, holes, np.zeros((0, 4, 4, 2)), np.zeros((0, 4, 4, 2)))
  assert rem.all() and out.shape == (1, 4, 4, 3)
