"""Tests of the optical-flow estimators."""

import numpy as np
import pytest

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video.flow import make_flow_estimator


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
