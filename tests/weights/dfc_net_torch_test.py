"""DFVI's DFC-Net stages against the authors' code: each stage kind, both backbones.

Seeded random weights at the real widths (37.0 M to 42.7 M parameters: regenerated here, not
stored) are written in the authors' file format (`save_ckpt`'s dict of a DataParallel model, torch
0.4.0's legacy format: tests/weights/torch_legacy.py), converted by `convert --from
dfc_net_pth` into a checkpoint folder, loaded as the tools load it, and run on the inputs the
authors' `Flow_Branch_Multi` / `Flow_Branch` were given; their outputs are in
tests/weights/data/dfvi_fixture.npz (how it was made: tests/weights/data/README.md).
Tolerance: 1e-4 of the output's range, in float32.
"""

import json
import os
import re

import jax
import numpy as np
import pytest

from flowinpaint import convert
from flowinpaint.errors import UserError
from flowinpaint.models.flow_completion import DFVIStage
from flowinpaint.train import checkpointing
from flowinpaint.weights import dfc_net_torch
from tests.weights import dfvi_release, torch_legacy

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dfvi_fixture.npz")
# (depth, in, out, batch, height, width) as data/make_dfvi_fixture.py's DFC_CASES.
CASES = {"r50_33": (50, 33, 2, 2, 44, 60), "r50_66": (50, 66, 4, 2, 36, 52),
         "r101_33": (101, 33, 2, 2, 44, 60), "r101_66": (101, 66, 4, 1, 36, 52)}
SLOW = {"r101_33", "r101_66"}


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


def _write_stage(path, case, seed, **kwargs):
  depth, cin, cout = CASES[case][:3]
  sd = dfvi_release.random_dfc(seed, depth, cin, cout,
                               batches_tracked=kwargs.pop("batches_tracked", False))
  torch_legacy.save(dfvi_release.dfc_checkpoint(sd, **kwargs), str(path), torch04=True)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                  for c in CASES])
def test_stage_matches_the_authors(tmp_path, capsys, fixture, case):
  depth, cin, cout, batch, h, w = CASES[case]
  seed = int(fixture[f"dfc_{case}_seed"])
  path = tmp_path / "stage.pth"
  # One file as the training scripts save it (with the optimizer), one from newer torch (with
  # num_batches_tracked): both are the authors' format.
  _write_stage(path, case, seed, with_optimizer=case == "r50_33",
               batches_tracked=case == "r50_66")
  # Through the command line, as a user converts one stage.
  assert convert.main(["--from", "dfc_net_pth", str(path), "--to",
                       str(tmp_path / "converted")]) == 0
  target = str(tmp_path / "converted")
  os.remove(path)
  role = "stage 1" if cin == 33 else "refinement stage"
  printed = capsys.readouterr().out
  assert f"(DFC-Net {role}, ResNet-{depth}, {cin} -> {cout} channels" in printed
  assert "--preset dfvi --weights DIR" in printed
  with open(os.path.join(target, "config.json")) as f:
    model = json.load(f)["model"]
  assert (model["name"], model["depth"], model["out_channels"]) == ("dfc_stage", depth, cout)
  bundle = checkpointing.load_for_inference(target)
  assert isinstance(bundle.generator, DFVIStage)
  count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(bundle.variables["params"]))
  assert count == dfvi_release.PARAMETER_COUNTS[(depth, cin, cout)]
  x = dfvi_release.dfc_inputs(seed, batch, cin, h, w).transpose(0, 2, 3, 1)
  got = np.asarray(jax.jit(bundle.generator.apply)(bundle.variables, x, x[..., :1])["output"])
  want = fixture[f"dfc_{case}_output"]
  assert got.shape == want.shape == (batch, h, w, cout) and np.isfinite(got).all()
  span = float(want.max() - want.min())
  assert span > 1.0  # a real flow, not a constant
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * span)


@pytest.mark.parametrize("case", list(CASES))
def test_converter_names_are_the_authors(case):
  """Every Flax variable maps onto exactly the names and torch shapes of the authors' state dict
  (the release table, transcribed independently of the converter)."""
  depth, cin, cout = CASES[case][:3]
  shapes = dfc_net_torch.flax_shapes(depth, cin, cout)
  mapped = {}
  for path, shape in shapes.items():
    mapped[dfc_net_torch.torch_name(path, depth)] = (
        (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape)
  assert mapped == dict(dfvi_release.dfc_shapes(depth, cin, cout, prefix=""))
  assert dfc_net_torch.describe({k: np.empty(s, np.float32) for k, s in
                                 dfvi_release.dfc_shapes(depth, cin, cout, prefix="").items()}
                                ) == (depth, cin, cout)


def _table(depth=50, cin=33, cout=2):
  return {k: np.zeros(s, np.float32) for k, s in
          dfvi_release.dfc_shapes(depth, cin, cout, prefix="").items()}


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("layer3.2.bn1.running_var"), "1 missing (layer3.2.bn1.running_var)"),
    (lambda sd: sd.update({"layer5.conv4.weight": np.zeros(1, np.float32)}),
     "1 unexpected (layer5.conv4.weight)"),
    (lambda sd: sd.update({"layer2.0.conv2.weight": np.zeros((128, 128, 1, 1), np.float32)}),
     "layer2.0.conv2.weight has shape (128, 128, 1, 1), expected (128, 128, 3, 3)"),
    (lambda sd: sd.update({"conv1.bias": np.full(64, np.nan, np.float32)}), "NaN"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("layer5.conv2")
                 or k.startswith("layer5.conv3")], "ResNet-50 with the single-scale head"),
])
def test_bad_state_dicts_are_named(change, message):
  sd = _table()
  change(sd)
  with pytest.raises(dfc_net_torch.ConversionError, match=re.escape(message)):
    dfc_net_torch.convert_state_dict(sd)


def test_half_precision_state_dicts_convert_like_float32():
  """A state dict saved in bfloat16 or float16 (as the other importers accept) converts to the
  float32 of the same values; an integer tensor is named."""
  import ml_dtypes
  rng = np.random.default_rng(0)
  sd = {k: rng.normal(size=v.shape).astype(ml_dtypes.bfloat16) for k, v in _table().items()}
  want = dfc_net_torch.convert_state_dict({k: v.astype(np.float32) for k, v in sd.items()})
  got = dfc_net_torch.convert_state_dict(sd)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(a, b)
  sd = {k: v.astype(np.float16) for k, v in sd.items()}
  sd["conv1.weight"] = sd["conv1.weight"].astype(np.int32)
  with pytest.raises(dfc_net_torch.ConversionError,
                     match=re.escape("conv1.weight has dtype int32, expected floating point")):
    dfc_net_torch.convert_state_dict(sd)


def test_other_files_are_recognised(tmp_path, capsys):
  port = {k: np.zeros(s, np.float32) for k, s in dfvi_release.deepfill_shapes().items()}
  with pytest.raises(dfc_net_torch.ConversionError, match="--from deepfill_v1_dfvi_pth"):
    dfc_net_torch.describe(port)
  sd = _table(cin=30)
  with pytest.raises(dfc_net_torch.ConversionError, match="30 input and 2 output channels"):
    dfc_net_torch.describe(sd)
  (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
  assert convert.main(["--from", "dfc_net_pth", str(tmp_path / "junk.pth"), "--to",
                       str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert err.count("error:") == 1 and "is not a PyTorch checkpoint" in err
  assert "Traceback" not in err
  with pytest.raises(UserError, match="--variant is for the DeepFill importers"):
    convert.convert("dfc_net_pth", str(tmp_path / "junk.pth"), str(tmp_path / "out"),
                    variant="port")
  assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
