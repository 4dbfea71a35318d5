"""Tests of the optical-flow estimators."""

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import propagation
from flowinpaint.video.flow import inconsistent, make_flow_estimator


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_flow_follows_a_camera_pan(name):
  c = make_clip("astronaut", 3, 64, 96, seed=0, integer_pan=True, pan=0.06, num_objects=0)
  fwd, bwd = make_flow_estimator(name)(c.background)
  assert fwd.shape == bwd.shape == (2, 64, 96, 2) and fwd.dtype == np.float32
  inner = (slice(None), slice(12, -12), slice(12, -12))
  assert np.abs(fwd - c.forward_flow)[inner].mean() < 0.5
  assert np.abs(bwd - c.backward_flow)[inner].mean() < 0.5


def test_bad_input_and_name():
  with pytest.raises(ValueError):
    make_flow_estimator("dis")(np.zeros((2, 8, 8), np.uint8))
  with pytest.raises(ValueError, match="unknown flow"):
    make_flow_estimator("raft")


def test_flownet2_folder_errors(tmp_path):
  with pytest.raises(ValueError, match="give the folder of a converted FlowNet2 checkpoint"):
    make_flow_estimator("flownet2:")
  with pytest.raises(FileNotFoundError, match="does not exist.*--from flownet2_pth"):
    make_flow_estimator(f"flownet2:{tmp_path / 'nope'}")
  weights = tmp_path / "FlowNet2_checkpoint.pth.tar"
  weights.write_bytes(b"...")
  with pytest.raises(ValueError, match=f"is a file.*--from flownet2_pth {weights} --to DIR"):
    make_flow_estimator(f"flownet2:{weights}")
  from flowinpaint.errors import UserError
  with pytest.raises(UserError, match="not a flowinpaint checkpoint"):
    make_flow_estimator(f"flownet2:{tmp_path}")


def _smooth_flows(seed, h, w):
  rng = np.random.default_rng(seed)
  a = cv2.resize(rng.normal(0, 0.7, (6, 8, 2)).astype(np.float32), (w, h))
  b = -a + cv2.resize(rng.normal(0, 0.1, (6, 8, 2)).astype(np.float32), (w, h))
  b[10:20, 30:50] += 4.0  # a block that does not come back
  return a, b


def test_inconsistent_matches_the_plain_formula_and_the_device_version():
  h, w = 48, 80
  for seed in range(3):
    ab, ba = _smooth_flows(seed, h, w)
    bad = inconsistent(ab, ba)
    # The formula written out plainly (separate x and y maps, np.sum): bit for bit.
    xs = np.arange(w, dtype=np.float32)[None, :] + ab[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + ab[..., 1]
    back = cv2.remap(ba, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    plain = (np.sum((ab + back) ** 2, -1) >= 0.01 * (np.sum(ab ** 2, -1) + np.sum(back ** 2, -1))
             + 0.5) | (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)
    np.testing.assert_array_equal(bad, plain)
    assert 0.05 < bad.mean() < 0.5 and bad[13:17, 34:46].all()  # the block, the borders
    # propagation.inconsistent (JAX, exact bilinear weights) differs only on the edge cases.
    dense = np.asarray(propagation.inconsistent(jnp.asarray(ab[None]), jnp.asarray(ba[None])))[0]
    assert (dense != bad).mean() < 0.01
