"""GLCIC's official Torch7 model -> CompletionNetwork(variant='official'), checked on numbers.

The authors' code is Lua Torch, which no machine here runs. data/glcic_t7_torch.npz holds the
output of their network rebuilt in torch from the released model's module list
(glcic_official.py: torch's Conv2d / ConvTranspose2d / BatchNorm2d / ReLU / Sigmoid for Torch7's
SpatialConvolution / SpatialDilatedConvolution / SpatialFullConvolution /
SpatialBatchNormalization / ReLU / Sigmoid), on inpaint.lua's input. Here the same seeded weights
are written as a .t7 file by the independent writer (torch7_writer.py), read and converted
without torch, and the Flax network must give torch's output.
"""

import os
import re

import jax
import numpy as np
import pytest

from flowinpaint.models.glcic import CompletionNetwork
from flowinpaint.weights import glcic_t7, torch7
from flowinpaint.weights.deepfill_v2_torch import ConversionError
from tests.weights import glcic_official as G
from tests.weights import torch7_writer as W

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "glcic_t7_torch.npz")


@pytest.fixture(scope="module")
def fixture():
  return dict(np.load(DATA))


@pytest.fixture(scope="module")
def layers(fixture):
  return G.random_modules(int(fixture["seed"]))


@pytest.fixture(scope="module")
def converted(tmp_path_factory, layers):
  path = str(tmp_path_factory.mktemp("t7") / "completionnet_places2.t7")
  W.save(path, G.to_t7(layers))
  assert os.path.getsize(path) > 24e6  # the real model's size: 6.07 M weights + statistics
  return glcic_t7.read(path)


def _run(variables, mean, image01, mask, variant="official", intermediates=False):
  net = CompletionNetwork(variant=variant, fill_value=tuple(2 * np.asarray(mean) - 1))
  out, state = jax.jit(lambda v, x, m: net.apply(
      v, x, m, train=False, capture_intermediates=True, mutable=["intermediates"]))(
          variables, image01 * 2 - 1, mask)
  result = (np.asarray(out["output"]) + 1) / 2  # back to the official [0, 1]
  if intermediates:
    return result, state["intermediates"]
  return result


def test_converted_model_computes_the_official_network(fixture, converted):
  variables, mean = converted
  np.testing.assert_allclose(mean, G.MEAN, rtol=1e-7)
  got = _run(variables, mean, fixture["image"], fixture["mask"])
  want = fixture["output"]
  assert want.std() > 0.05  # a network that does something
  # Output range [0, 1]: max abs error at most 1e-4 of it in fp32 (measured: ~5e-7).
  err = np.abs(got - want).max()
  assert err <= 1e-4 * 1.0, err
  # The library's own variant (TF-style padding, [-1, 1] input) gives other numbers, so the
  # check above depends on the variant.
  other = _run(variables, mean, fixture["image"], fixture["mask"], variant="flowinpaint")
  assert np.abs(other - want).max() > 1e-2


@pytest.mark.torch
def test_torch_rebuild_matches_the_fixture_and_flax_layer_by_layer(fixture, layers, converted):
  pytest.importorskip("torch")
  want, per_layer = G.torch_forward(layers, G.MEAN, fixture["image"], fixture["mask"])
  # The stored numbers are this torch network's (so the fixture is what the README says).
  np.testing.assert_allclose(want, fixture["output"], atol=2e-6)
  got, inter = _run(*converted, fixture["image"], fixture["mask"], intermediates=True)
  for i, layer in enumerate(per_layer):
    flax_bn = np.asarray(inter[f"bn{i + 1}"]["__call__"][0])
    assert flax_bn.shape == layer.shape, i + 1
    scale = np.abs(layer).max()
    assert np.abs(flax_bn - layer).max() <= 1e-5 * scale, f"layer {i + 1}"
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.torch
def test_file_eps_is_folded_into_the_variance(tmp_path, layers, fixture):
  pytest.importorskip("torch")
  path = str(tmp_path / "eps.t7")
  W.save(path, G.to_t7(layers, eps=1e-2))
  got = _run(*glcic_t7.read(path), fixture["image"], fixture["mask"])
  want, _ = G.torch_forward(layers, G.MEAN, fixture["image"], fixture["mask"], eps=1e-2)
  assert np.abs(got - want).max() <= 1e-5
  assert np.abs(want - fixture["output"]).max() > 1e-3  # eps really changed the output


def _convert(obj, long_size=8):
  return glcic_t7.convert_model(torch7.loads(W.dumps(obj, long_size=long_size))["model"])


def test_layout_variants_give_the_same_variables(layers, converted):
  """Unshared storages, a Windows file's 4-byte longs, SpatialConvolutionMM's 2-D weights and
  the pre-2016 running_std all convert to the same variables."""
  want = converted[0]
  same = lambda got: jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6),
                                  got, want)
  same(_convert(G.to_t7(layers, shared=False), long_size=4))
  obj = G.to_t7(layers, shared=False)
  conv = obj["model"].fields["modules"][1]
  conv.typename = "nn.SpatialConvolutionMM"
  conv.fields["weight"] = W.Tensor.of(layers[0]["weight"].reshape(64, -1))
  bn = obj["model"].fields["modules"][2]
  var = layers[0]["bn"]["running_var"].astype(np.float64)
  bn.fields["running_std"] = W.Tensor.of((1 / np.sqrt(var + G.BN_EPS)).astype(np.float32))
  del bn.fields["running_var"]
  same(_convert(obj))


@pytest.mark.parametrize("overrides,message", [
    ({1: {"nOutputPlane": 32}}, "module 1 (nn.SpatialConvolution) has (in, out, kH, kW, dH, "
     "dW, padH, padW) = (4, 32, 5, 5, 1, 1, 2, 2)"),
    ({4: {"padW": 0}}, "module 4 (nn.SpatialConvolution) has"),
    ({22: {"dilationW": 2}}, "module 22 (nn.SpatialDilatedConvolution) has (in, out, kH, kW, "
     "dH, dW, padH, padW) = (256, 256, 3, 3, 1, 1, 4, 4), dilation (4, 2)"),
    ({37: {"adjW": 1}}, "adj (0, 1)"),
    ({2: {"running_mean": None}}, "module 2 (nn.SpatialBatchNormalization) has no "
     "running_mean"),
])
def test_field_mismatches_name_the_module(layers, overrides, message):
  with pytest.raises(ConversionError, match=re.escape(message)):
    _convert(G.to_t7(layers, overrides=overrides))


def test_module_mismatches(layers):
  obj = G.to_t7(layers)
  modules = obj["model"].fields["modules"]
  modules[3] = W.Module("nn.LeakyReLU", {"negval": 0.2})
  with pytest.raises(ConversionError, match=r"module 3 is a nn.LeakyReLU, expected nn.ReLU"):
    _convert(obj)
  obj = G.to_t7(layers)
  modules = obj["model"].fields["modules"]
  del modules[len(modules)]
  with pytest.raises(ConversionError, match="has 49 modules; the official completion network "
                     "has 50"):
    _convert(obj)
  obj = G.to_t7(layers)
  obj["model"].typename = "nn.gModule"
  with pytest.raises(ConversionError, match="is a nn.gModule, not the nn.Sequential"):
    _convert(obj)


@pytest.mark.parametrize("case,message", [
    ("bare", "it holds a bare nn.Sequential"),
    ("no_mean", "holds no mean pixel"),
    ("bad_mean", r"mean pixel \[.*\] is not in \[0, 1\]"),
    ("garbage", "is not a Torch7 file this reader can read"),
    ("missing", "does not exist"),
])
def test_read_errors_are_user_errors(tmp_path, layers, case, message):
  from flowinpaint.errors import UserError
  path = str(tmp_path / "model.t7")
  small = {"model": W.Module("nn.Sequential", {"modules": {}}), "mean": np.zeros(3, np.float32)}
  if case == "bare":
    W.save(path, small["model"])
  elif case == "no_mean":
    W.save(path, G.to_t7(layers) | {"mean": None})
  elif case == "bad_mean":
    W.save(path, G.to_t7(layers, mean=(0.5, 2.0, 0.5)))
  elif case == "garbage":
    with open(path, "wb") as f:
      f.write(b"<html>not a model</html>")
  with pytest.raises(UserError, match=message):
    glcic_t7.read(path)
