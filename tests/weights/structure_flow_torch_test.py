"""Converted StructureFlow weights: the Flax networks compute what the authors' networks do.

The expected numbers were made once by the authors' own `src/network.py` (RenYurui/StructureFlow,
random weights, the Gaussian sampling's CUDA kernel re-stated on CPU; see data/README.md and
data/make_structure_flow_fixture.py). Here the files are converted and G_s and G_t run on the
inputs the authors' test.py `--model 3` gives them; every output (structure, image, flow) must
agree to 1e-4 of its range (max abs error, fp32).
"""

import os

import jax
import numpy as np
import pytest

from flowinpaint.models.structure_flow import StructureReconstructor, TextureGenerator
from flowinpaint.weights import structure_flow_torch as sft
from flowinpaint.weights import torch_pickle
from tests.weights import structure_flow_weights as sfw

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "structure_flow")
CHECKPOINTS = os.path.join(DATA, "checkpoints")
TOLERANCE = 1e-4  # of each output's range


def run_networks(variables, sizes, expected, *, chained: bool):
  """The converted G_s and G_t on the fixture's inputs, jitted, fp32.

  structure = G_s([x * (1 - m), smooth * (1 - m), m]); image, flow = G_t([x * (1 - m), S, m])
  with S the authors' structure (each network on the authors' inputs) or, `chained`, ours (the
  whole `--model 3` pipeline; G_t then also amplifies G_s's rounding differences).
  """
  g_s = StructureReconstructor(sizes["width_s"], sizes["n_res_s"], spectral_norm=False)
  g_t = TextureGenerator(sizes["width_t"], sizes["n_res_t"])

  @jax.jit
  def run(params, image, smooth, mask, authors_structure):
    masked = image * (1 - mask)
    structure = g_s.apply({"params": params["structure"]}, masked, smooth * (1 - mask), mask,
                          train=False)
    output, flow = g_t.apply({"params": params["texture"]}, masked,
                             structure if chained else authors_structure, mask, train=False)
    return {"structure": structure, "output": output, "flow": flow}

  got = run(variables["params"], expected["image"], expected["smooth"], expected["mask"],
            expected["structure"])
  return {k: np.asarray(v) for k, v in got.items()}


def relative_errors(got, expected) -> dict:
  """max |got - expected| / (max - min of expected), per output."""
  return {k: float(np.max(np.abs(got[k] - expected[k])) / np.ptp(expected[k])) for k in got}


def _check_not_degenerate(expected):
  # Outputs that vary (not saturated or constant), and a flow that sends some sampling points
  # outside the 1/4 feature map (the kernel's border clamp is exercised).
  assert np.std(expected["output"]) > 0.1 and np.std(expected["structure"]) > 0.3
  assert np.mean(np.abs(expected["structure"]) > 0.99) < 0.05
  flow = expected["flow"]
  h, w = flow.shape[1:3]
  xs = np.arange(w)[None, None, :] + flow[..., 0]
  ys = np.arange(h)[None, :, None] + flow[..., 1]
  outside = (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)
  assert 0.02 < outside.mean() < 0.5


def test_converted_release_files_match_the_authors_networks():
  expected = dict(np.load(os.path.join(DATA, "expected_dim4.npz")))
  _check_not_degenerate(expected)
  files = sft.find_files(CHECKPOINTS)
  variables, sizes = sft.convert_generators(sft.read_state_dict(files["s_gen"]),
                                            sft.read_state_dict(files["f_gen"]))
  assert sizes == {"width_s": 4, "n_res_s": 4, "width_t": 4, "n_res_t": 2}
  for chained in (False, True):
    errors = relative_errors(run_networks(variables, sizes, expected, chained=chained),
                             expected)
    assert max(errors.values()) <= TOLERANCE, (chained, errors)


@pytest.mark.slow
def test_release_size_matches_the_authors_networks():
  # dim 64 as released (92.5 M parameters): the weights are regenerated from the fixture's seed.
  expected = dict(np.load(os.path.join(DATA, "expected_dim64.npz")))
  _check_not_degenerate(expected)
  shapes = sft.expected_state_dicts()
  s_gen = sfw.random_state_dict("s_gen", shapes["s_gen"], int(expected["seed"]))
  f_gen = sfw.random_state_dict("f_gen", shapes["f_gen"], int(expected["seed"]))
  variables, sizes = sft.convert_generators(s_gen, f_gen)
  del s_gen, f_gen
  assert sizes == {"width_s": 64, "n_res_s": 4, "width_t": 64, "n_res_t": 2}
  n_params = sum(np.size(x) for x in jax.tree.leaves(variables))
  assert n_params == 36_057_411 + 56_473_475  # the authors' StructureGen + FlowGen
  # Each network on the authors' inputs. (Chained, G_t's random flow column amplifies G_s's
  # fp32 rounding differences ~5x: 7e-5 of the flow's range on the machine the fixture was
  # made on; data/README.md.)
  errors = relative_errors(run_networks(variables, sizes, expected, chained=False), expected)
  assert max(errors.values()) <= TOLERANCE, errors


def test_spectral_norm_uses_the_stored_vectors():
  # The kernel is weight_orig / (u . W v) with the file's u, v (the reference's eval mode),
  # not the largest singular value: the fixture's u, v are one power step from random.
  sd = sft.read_state_dict(os.path.join(CHECKPOINTS, "latest_net_s_gen.pth"))
  variables, _ = sft.convert_generators(sd, sft.read_state_dict(
      os.path.join(CHECKPOINTS, "latest_net_f_gen.pth")))
  w = sd["down_sample.1.0.conv.weight_orig"]
  u, v = sd["down_sample.1.0.conv.weight_u"], sd["down_sample.1.0.conv.weight_v"]
  sigma = float(u @ (w.reshape(w.shape[0], -1) @ v))
  top = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]
  assert sigma < 0.9 * top
  kernel = variables["params"]["structure"]["down2a"]["conv"]["kernel"]
  np.testing.assert_allclose(kernel, (w / sigma).transpose(2, 3, 1, 0), rtol=1e-6)


def test_names_and_shapes_are_the_authors():
  # The table the converter checks against, at the release's size, against the names the
  # authors' modules have (listed in the fixture: same names at width 4).
  small = {net: dict(sft.read_state_dict(os.path.join(CHECKPOINTS, f"latest_net_{net}.pth")))
           for net in ("s_gen", "f_gen")}
  table = sft.expected_state_dicts(width_s=4, width_t=4)
  for net in ("s_gen", "f_gen"):
    assert {k: v.shape for k, v in small[net].items()} == table[net]
  full = sft.expected_state_dicts()
  assert full["s_gen"]["input_layer.conv.weight_orig"] == (64, 7, 7, 7)
  assert full["f_gen"]["flow_column.up_sample_flow.0.1.transConv.weight"] == (512, 256, 6, 6)
  assert full["f_gen"]["conv_column.down_sample.0.4.norm.weight"] == (128, 1, 1)
  # Parameters without the spectral-norm vectors: the authors' StructureGen and FlowGen.
  count = lambda net: sum(int(np.prod(shape)) for name, shape in full[net].items()
                          if not name.endswith(("weight_u", "weight_v")))
  assert (count("s_gen"), count("f_gen")) == (36_057_411, 56_473_475)


def _small_dicts():
  return {net: dict(sft.read_state_dict(os.path.join(CHECKPOINTS, f"latest_net_{net}.pth")))
          for net in ("s_gen", "f_gen")}


@pytest.mark.parametrize("case,message", [
    ("missing", "s_gen: not a StructureFlow structure reconstructor (StructureGen) state dict as "
                "released: 1 missing (down_sample.1.1.conv.weight_v)"),
    ("unexpected", "f_gen: not a StructureFlow texture generator (FlowGen) state dict as "
                   "released: 1 unexpected (flow_column.extra.weight)"),
    ("shape", "f_gen: conv_column.up_sample.1.7.conv.conv.bias has shape (4,), expected (3,)"),
    ("nan", "s_gen: image_net.conv.conv.bias holds NaN"),
    ("sigma", "s_gen: down_sample.2.0: spectral norm sigma = u . (W v) is -"),
    ("swapped", "not a StructureFlow structure reconstructor (StructureGen) state dict: it has "
                "no input_layer.conv.weight_orig"),
])
def test_conversion_errors(case, message):
  d = _small_dicts()
  if case == "missing":
    del d["s_gen"]["down_sample.1.1.conv.weight_v"]
  elif case == "unexpected":
    d["f_gen"]["flow_column.extra.weight"] = np.zeros(3, np.float32)
  elif case == "shape":
    d["f_gen"]["conv_column.up_sample.1.7.conv.conv.bias"] = np.zeros(4, np.float32)
  elif case == "nan":
    d["s_gen"]["image_net.conv.conv.bias"] = np.full(3, np.nan, np.float32)
  elif case == "sigma":
    d["s_gen"]["down_sample.2.0.conv.weight_u"] *= -1
  elif case == "swapped":
    d = {"s_gen": d["f_gen"], "f_gen": d["s_gen"]}
  with pytest.raises(sft.ConversionError) as e:
    sft.convert_generators(d["s_gen"], d["f_gen"])
  assert message in str(e.value)


def test_spectral_norm_state_version_0_is_accepted():
  # Early torch saved the normalised `weight` instead of `weight_v`; eval mode used it as is.
  d = _small_dicts()
  old = dict(d["s_gen"])
  for name in [k for k in old if k.endswith(".weight_v")]:
    prefix = name[:-len("_v")]
    w = old[prefix + "_orig"]
    old[prefix] = (w / sft.sn_sigma(w, old[prefix + "_u"], old.pop(name))).astype(np.float32)
  a, _ = sft.convert_generators(old, d["f_gen"])
  b, _ = sft.convert_generators(d["s_gen"], d["f_gen"])
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a, b)


def test_data_parallel_prefix_is_accepted():
  d = _small_dicts()
  wrapped = {f"module.{k}": v for k, v in d["s_gen"].items()}
  a, _ = sft.convert_generators(wrapped, d["f_gen"])
  b, _ = sft.convert_generators(d["s_gen"], d["f_gen"])
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.torch
def test_release_files_read_as_torch_reads_them():
  # The fixture is in torch's legacy (pre-1.6) format, as the 2019 release; torch_pickle reads
  # it without torch.
  torch = pytest.importorskip("torch", reason="torch is an optional extra")
  for net in ("s_gen", "f_gen"):
    path = os.path.join(CHECKPOINTS, f"latest_net_{net}.pth")
    got, want = torch_pickle.load(path), torch.load(path, weights_only=True)
    assert list(got) == list(want)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k].numpy())
