"""FlowNet 2.0 against NVIDIA's flownet2-pytorch: the full chain at the real widths once.

Seeded random weights (162.5 M parameters: regenerated here, not stored) are written in NVIDIA's
file format (torch's legacy format as Python 2 + torch 0.3 wrote it, tests/weights/
torch_legacy.py), converted by `convert --from flownet2_pth` into a checkpoint folder, loaded as
the tools load it, and run: each sub-network on the inputs the authors' code gave it, and the
whole network through the remove-facing estimator, against the authors' outputs stored in
tests/weights/data/flownet2_fixture.npz (how it was made: tests/weights/data/README.md).
Tolerance: 1e-4 of the output's range, in float32.
"""

import json
import os

import jax
import numpy as np
import pytest

from flowinpaint import convert
from flowinpaint.errors import UserError
from flowinpaint.models import flownet2
from flowinpaint.train import checkpointing
from flowinpaint.video.flow import make_flow_estimator
from flowinpaint.video.learned import FlowNet2Estimator
from flowinpaint.weights import flownet2_torch
from tests.weights import flownet2_release, torch_legacy

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                       "flownet2_fixture.npz")
NETS = {"flownetc": flownet2.FlowNetC, "flownets_1": flownet2.FlowNetS,
        "flownets_2": flownet2.FlowNetS, "flownets_d": flownet2.FlowNetSD,
        "flownetfusion": flownet2.FlowNetFusion}
_JITTED = {}


def assert_close_to_range(got, want, tol=1e-4):
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape and np.isfinite(got).all()
  span = float(want.max() - want.min())
  assert span > 0.05  # a real output, not a constant
  np.testing.assert_allclose(got, want, rtol=0, atol=tol * span)


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, fixture):
  root = tmp_path_factory.mktemp("flownet2")
  path = str(root / "FlowNet2_checkpoint.pth.tar")
  sd = flownet2_release.random_state_dict(int(fixture["seed"]))
  torch_legacy.save(flownet2_release.checkpoint(sd), path)
  del sd
  target, converted = convert.convert("flownet2_pth", path, str(root / "fn2"))
  os.remove(path)  # 650 MB
  assert converted.summary.startswith("FlowNet2, 162.5 M parameters")
  return target


@pytest.fixture(scope="module")
def estimator(checkpoint):
  """The remove tool's FlowNet2 estimator; its weights serve every test (one copy, 650 MB)."""
  return make_flow_estimator("flownet2:" + checkpoint)


@pytest.fixture(scope="module")
def params(estimator):
  return estimator.variables["params"]


def test_checkpoint_is_inference_only_and_records_its_source(checkpoint, estimator):
  assert isinstance(estimator, FlowNet2Estimator) and estimator.multiple == 64
  assert isinstance(estimator.generator, flownet2.FlowNet2)
  assert estimator.generator.variant == "FlowNet2"
  count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(estimator.variables))
  assert count == flownet2_release.PARAMETER_COUNT
  with open(os.path.join(checkpoint, "config.json")) as f:
    config = json.load(f)
  assert config["model"] == {**config["model"], "name": "flownet2", "variant": "FlowNet2"}
  ckpt = checkpointing.Checkpointer(os.path.join(checkpoint, "checkpoints"), async_save=False)
  try:
    with pytest.raises(UserError, match="inference only.*init_generator_from"):
      ckpt.restore(0, None)
  finally:
    ckpt.close()


@pytest.mark.parametrize("name", list(NETS))
def test_each_subnetwork_matches_the_authors(params, fixture, name):
  cls = NETS[name]
  if cls not in _JITTED:  # flownets_1 and flownets_2: one compiled function
    _JITTED[cls] = jax.jit(cls().apply)
  got = _JITTED[cls]({"params": params[name]}, fixture[f"{name}_in"])
  assert_close_to_range(got, fixture[f"{name}_out"])


def test_flownet2_through_the_remove_estimator_matches_the_authors(estimator, fixture):
  frames = fixture["frames"]  # [pair, frame, 64, 128, 3] uint8 RGB
  # The fixture's two pairs and, third, the first pair reversed: one batch.
  got = estimator.pairs(np.concatenate([frames[:, 0], frames[:1, 1]]),
                        np.concatenate([frames[:, 1], frames[:1, 0]]))
  assert got.dtype == np.float32 and got.shape == (3, 64, 128, 2)
  assert_close_to_range(got[:2], fixture["FlowNet2"])
  # The pipeline's interface on one clip: forward = (frame 1 -> 2), backward = (2 -> 1).
  fwd, bwd = estimator(frames[0])
  assert fwd.shape == bwd.shape == (1, 64, 128, 2)
  np.testing.assert_allclose(fwd[0], got[0], atol=1e-5)
  np.testing.assert_allclose(bwd[0], got[2], atol=1e-5)
  assert np.abs(got[2] - got[0]).max() > 0.01


def _variant_params(params, variant):
  if variant == "FlowNet2S":  # as flownet2_release.variant_state_dict makes it
    sub = jax.tree.map(np.asarray, params["flownets_1"])
    sub["conv1"] = dict(sub["conv1"], kernel=sub["conv1"]["kernel"][:, :, :6])
    return {"flownets": sub}
  return {k: params[k] for k in flownet2.SUBNETS[variant]}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["FlowNet2C", "FlowNet2S", "FlowNet2SD", "FlowNet2CS",
                                     "FlowNet2CSS"])
def test_variants_match_the_authors(params, fixture, variant):
  frames = fixture["frames"].astype(np.float32) / 127.5 - 1
  image = np.concatenate([frames[:, 0], frames[:, 1]], axis=-1)
  got = jax.jit(flownet2.FlowNet2(variant=variant).apply)(
      {"params": _variant_params(params, variant)}, image)["output"]
  assert_close_to_range(got, fixture[variant])


@pytest.mark.parametrize("variant", list(flownet2.VARIANTS))
def test_converter_names_are_nvidias(variant):
  """Every variant's Flax parameters map onto exactly the names and torch shapes of NVIDIA's
  state dict (from the release table, written independently of the converter)."""
  empty = {k: np.broadcast_to(np.float32(0), s) for k, s in flownet2_release.shapes().items()}
  sd = flownet2_release.variant_state_dict(empty, variant)
  assert flownet2_torch.detect_variant(sd) == variant
  shapes = flownet2_torch.flax_shapes(variant)
  mapped = {flownet2_torch.torch_name(p, variant):
            flownet2_torch._torch_shape(s, p[1]) for p, s in shapes.items()}
  assert mapped == {k: v.shape for k, v in sd.items()}
