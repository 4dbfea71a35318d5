"""DFVI's PyTorch port of DeepFill v1 (`imagenet_deepfill.pth`) against the authors' code.

Seeded random weights (3.6 M parameters, regenerated here) are written as the authors' state
dict file, converted by `convert --from deepfill_v1_dfvi_pth` (both variants), loaded as the
tools load a checkpoint, and run on the authors' inputs (two BGR images, one mask); the
authors' outputs under torch 0.4.0's semantics ('port') and their v1.1 branch ('v1.1') are in
tests/weights/data/dfvi_fixture.npz (tests/weights/data/README.md). Tolerance: 1e-4 of the
output's range, in float32. The converted model takes RGB: it is fed the fixture's images with
the channels reversed and compared with reversed outputs.
"""

import json
import os
import re

import jax
import numpy as np
import pytest

from flowinpaint import convert
from flowinpaint.errors import UserError
from flowinpaint.layers.contextual_attention import grid_bilinear_taps
from flowinpaint.models.deepfill_v1 import Generator
from flowinpaint.train import checkpointing
from flowinpaint.weights import deepfill_v1_dfvi
from tests.weights import dfvi_release, torch_legacy

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dfvi_fixture.npz")
OUTPUT = {"port": "torch040", "v1.1": "v1_1"}


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def port_file(tmp_path_factory, fixture):
  path = tmp_path_factory.mktemp("dfvi_port") / "imagenet_deepfill.pth"
  torch_legacy.save(dfvi_release.random_deepfill(int(fixture["deepfill_seed"])), str(path),
                    torch04=True)
  return str(path)


def _inputs(fixture):
  rgb = fixture["deepfill_image_bgr"][..., ::-1].copy()
  mask = np.broadcast_to(fixture["deepfill_mask"][None, ..., None],
                         rgb.shape[:3] + (1,)).astype(np.float32)
  return rgb, mask


@pytest.mark.parametrize("variant", ["port", "v1.1"])
def test_converted_port_matches_the_authors(tmp_path, fixture, port_file, variant):
  target, converted = convert.convert("deepfill_v1_dfvi_pth", port_file, str(tmp_path / "v1"),
                                      variant=None if variant == "port" else variant)
  assert converted.source["variant"] == variant
  with open(os.path.join(target, "config.json")) as f:
    model = json.load(f)["model"]
  assert model["attention_downscale"] == deepfill_v1_dfvi.VARIANTS[variant]
  assert model["tf_resize"] is False
  bundle = checkpointing.load_for_inference(target)
  assert isinstance(bundle.generator, Generator)
  count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(bundle.variables["params"]))
  assert count == dfvi_release.DEEPFILL_PORT_PARAMETERS
  rgb, mask = _inputs(fixture)
  out = jax.jit(lambda v, x, m: bundle.generator.apply(v, x, m, train=False))(
      bundle.variables, rgb, mask)
  for key in ("coarse", "output"):
    want = fixture[f"deepfill_{OUTPUT[variant]}_{key}"][..., ::-1]
    got = np.asarray(out[key])
    span = float(want.max() - want.min())
    assert span > 0.5 and got.shape == want.shape == (2, 64, 96, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * span)


def test_the_attention_downscale_is_what_tells_the_variants_apart(fixture):
  """Under the other variant's downscale the output is off by far more than the tolerance:
  the fixture tells the two apart, so each variant's match above is not luck."""
  v = deepfill_v1_dfvi.convert_generator(
      dfvi_release.random_deepfill(int(fixture["deepfill_seed"])))
  rgb, mask = _inputs(fixture)
  run = jax.jit(lambda v, x, m: Generator(attention_downscale="stride").apply(
      v, x, m, train=False)["output"])
  got = np.asarray(run(v, rgb, mask))
  want = fixture["deepfill_torch040_output"][..., ::-1]
  assert np.abs(got - want).max() > 100 * 1e-4 * float(want.max() - want.min())


def test_grid_bilinear_rows_are_torch_040s_grid_sample():
  """The taps against the authors' grid (`down_sample`: g = i / m * 2 - 1) pushed through
  torch 0.4.0's corner-aligned unnormalisation ((g + 1) / 2 * (n - 1)), in float64: n = 16 ->
  m = 8 gives sources 0, 1.875, 3.75, ..., 13.125."""
  lo, hi, w = grid_bilinear_taps(16, 8)
  src = np.arange(8) / 8 * 2 - 1
  src = (src + 1) / 2 * 15
  np.testing.assert_array_equal(lo, np.floor(src).astype(int))
  np.testing.assert_array_equal(hi, np.minimum(lo + 1, 15))
  np.testing.assert_allclose(w, src - np.floor(src), atol=1e-6)
  assert np.isclose(src[1], 1.875) and lo[-1] == 13


def test_port_names_are_the_authors():
  """The converter's table covers exactly the authors' state-dict names and torch shapes (the
  release table, transcribed from DeepFill.py / ops.py independently)."""
  shapes = deepfill_v1_dfvi.generator_shapes()
  mapped = {}
  for (module, layer, leaf), shape in shapes.items():
    name = deepfill_v1_dfvi.PORT_NAMES[(module, layer)]
    mapped[f"{name}.{'weight' if leaf == 'kernel' else 'bias'}"] = (
        (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape)
  assert mapped == dict(dfvi_release.deepfill_shapes())


def test_errors_name_the_problem(tmp_path, port_file):
  sd = {k: np.zeros(s, np.float32) for k, s in dfvi_release.deepfill_shapes().items()}
  sd.pop("stage_2.CAttn.out.1.conv.0.bias")
  with pytest.raises(deepfill_v1_dfvi.ConversionError,
                     match=re.escape("1 missing (stage_2.CAttn.out.1.conv.0.bias)")):
    deepfill_v1_dfvi.convert_generator(sd)
  stage = {k: np.zeros(s, np.float32) for k, s in
           dfvi_release.dfc_shapes(50, 33, 2, prefix="").items()}
  with pytest.raises(deepfill_v1_dfvi.ConversionError, match="--from dfc_net_pth"):
    deepfill_v1_dfvi.convert_generator(stage)
  with pytest.raises(UserError, match="'port'.*'v1.1'"):
    convert.convert("deepfill_v1_dfvi_pth", port_file, str(tmp_path / "x"), variant="tf")
  with pytest.raises(UserError, match="does not exist"):
    convert.convert("deepfill_v1_dfvi_pth", str(tmp_path / "none.pth"), str(tmp_path / "y"))
