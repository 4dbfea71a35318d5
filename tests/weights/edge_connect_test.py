"""EdgeConnect's released weights, converted, make the Flax models compute what the authors' code
computes.

The fixture tests/weights/data/edge_connect.npz holds the authors' outputs (knazeri/edge-connect
run once on CPU, see tests/weights/data/README.md) for release files with random weights drawn
from a seed; here the same files are rebuilt from that seed (tests/weights/edge_connect_release.py:
the real-size files are 108 MB), read without torch, converted, and run in Flax on the same
image and mask. Required: max |Flax - authors| <= 1e-4 of the output's range (fp32).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.classical.canny import canny, rgb_to_gray
from flowinpaint.models import edge_connect as ec
from flowinpaint.weights import edge_connect_torch as ect
from flowinpaint.weights import torch_pickle
from tests.weights import edge_connect_release

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "edge_connect.npz")
TOLERANCE = 1e-4  # of the output's range


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def release(fixture, tmp_path_factory):
  """{name: the file, loaded without torch} of the release rebuilt from the fixture's seed."""
  folder = tmp_path_factory.mktemp("edge_connect_release")
  paths = edge_connect_release.write_release(str(folder), int(fixture["seed"]))
  return {name: torch_pickle.load(path) for name, path in paths.items()}


def _relative_error(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (got.shape, want.shape)
  return float(np.abs(got - want).max() / (want.max() - want.min()))


def test_the_release_table_is_the_authors_state_dicts(fixture):
  # The fixture script checked names and shapes against the reference's modules; their names
  # are stored with the outputs, so a change to the table is caught here too.
  ours = edge_connect_release.state_dicts(int(fixture["seed"]))
  for name, sd in ours.items():
    assert list(sd) == list(fixture[f"keys_{name}"]), name


def test_the_files_are_what_torch_1_0_wrote(release):
  gen = release["EdgeModel_gen"]
  assert gen["iteration"] == edge_connect_release.ITERATION
  assert gen["generator"]["encoder.1.weight_orig"].shape == (64, 3, 7, 7)
  assert gen["generator"]["decoder.0.weight_u"].shape == (128,)  # ConvTranspose: dim 1
  assert set(release["InpaintingModel_dis"]) == {"discriminator"}


@functools.lru_cache(maxsize=None)
def _run_all():
  """One jitted function: the three ways the reference runs its generators."""

  def run(variables, image, mask):
    merged = ec.EdgeConnect(edge_spectral_norm=False)
    unmerged = ec.EdgeConnect(edge_spectral_norm=False, merge_edges=False)
    stage2 = ec.EdgeConnectInpaint(edge_spectral_norm=False)
    return {"merged": merged.apply(variables, image, mask, train=False),
            "test": unmerged.apply(variables, image, mask, train=False),
            "canny": stage2.apply({"params": {"inpaint": variables["params"]["inpaint"]}},
                                  image, mask, train=False)}

  return jax.jit(run)


def test_generators_compute_what_the_authors_code_computes(fixture, release):
  edge, width, n_res = ect.convert_generator(release["EdgeModel_gen"], "edge")
  inpaint, _, _ = ect.convert_generator(release["InpaintingModel_gen"], "inpaint")
  assert (width, n_res) == (64, 8)
  assert "batch_stats" not in edge  # spectral norm folded into the kernels
  variables = {"params": {"edge": edge["params"], "inpaint": inpaint["params"]}}
  image = jnp.asarray(fixture["image"], jnp.float32)[None] / 127.5 - 1.0
  hole = (fixture["mask"] > 0).astype(np.float32)
  np.testing.assert_array_equal(hole, fixture["mask_tensor"])
  mask = jnp.asarray(hole)[None, ..., None]

  # The inputs the reference builds (rgb2gray, skimage's Canny with sigma 2 on the known pixels).
  gray = rgb_to_gray((image + 1.0) / 2.0)
  np.testing.assert_allclose(np.asarray(gray)[0, ..., 0], fixture["gray"], atol=3e-7)
  edges = np.asarray(canny(gray, sigma=2.0, mask=1.0 - mask))[0, ..., 0]
  assert fixture["canny_edges"].sum() > 100
  np.testing.assert_array_equal(edges, fixture["canny_edges"])

  out = _run_all()(variables, image, mask)
  to01 = lambda x: (np.asarray(x)[0] + 1.0) / 2.0
  errors = {
      # test(): G1's edges, then G2 on them (unmerged).
      "edge generator": _relative_error(to01(out["test"]["edges"])[..., 0],
                                        fixture["edge_output"]),
      "test() (MODEL 3)": _relative_error(to01(out["test"]["output"]), fixture["inpaint_test"]),
      # eval() / sample(): G1's edges in the hole, Canny's outside.
      "merged edges": _relative_error(to01(out["merged"]["output"]),
                                      fixture["inpaint_merged"]),
      # test() with MODEL 2: G2 on the Canny edges.
      "test() (MODEL 2)": _relative_error(to01(out["canny"]["output"]),
                                          fixture["inpaint_canny"]),
  }
  print("max |Flax - authors| / output range:",
        ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  assert max(errors.values()) <= TOLERANCE, errors
  for key in ("inpaint_test", "inpaint_merged", "edge_output"):
    assert np.std(fixture[key]) > 0.05  # not a saturated, constant network


@pytest.mark.parametrize("name, channels", [("EdgeModel_dis", 2), ("InpaintingModel_dis", 3)])
def test_discriminators_compute_what_the_authors_code_computes(fixture, release, name,
                                                               channels):
  variables, width = ect.convert_discriminator(release[name], channels)
  assert width == 64
  if channels == 2:  # [gray, edges], the edge model's conditional input
    x01 = np.stack([fixture["gray"], fixture["canny_edges"]], -1)
    prefix = "d_edge"
  else:
    x01 = fixture["image_tensor"]
    prefix = "d_inpaint"
  x = jnp.asarray(x01)[None] * 2.0 - 1.0
  # Training mode (one power iteration from the stored u, as in training): the reference's
  # eval mode skips the iteration, flax's SpectralNorm always runs one.
  (logits, feats), _ = jax.jit(lambda v, x: ec.Discriminator(width).apply(
      v, x, train=True, return_features=True, mutable=["batch_stats"]))(variables, x)
  for i, f in enumerate(feats, 1):
    assert _relative_error(np.asarray(f)[0], fixture[f"{prefix}_feature{i}"]) <= TOLERANCE, i
  np.testing.assert_allclose(jax.nn.sigmoid(logits)[0], fixture[f"{prefix}_sigmoid"],
                             atol=1e-6)


def test_spectral_norm_uses_the_stored_vectors(release):
  """The folded kernel is W / (u . W v) with the stored u, v, not W / sigma_max."""
  sd = release["EdgeModel_gen"]["generator"]
  w, u, v = (sd[f"encoder.4.{k}"] for k in ("weight_orig", "weight_u", "weight_v"))
  stored = ect.spectral_sigma(w, u, v, transpose=False)
  exact = np.linalg.svd(w.reshape(w.shape[0], -1).astype(np.float64), compute_uv=False)[0]
  assert 1e-4 < abs(stored - exact) / exact < 0.5  # close, but not the converged value
  edge, _, _ = ect.convert_generator(release["EdgeModel_gen"], "edge")
  kernel = edge["params"]["enc2"]["conv"]["kernel"]
  np.testing.assert_allclose(kernel, (w / stored).transpose(2, 3, 1, 0), rtol=1e-6)


def test_data_parallel_names_are_accepted(release):
  sd = release["InpaintingModel_gen"]["generator"]
  plain, _, _ = ect.convert_generator(release["InpaintingModel_gen"], "inpaint")
  wrapped, _, _ = ect.convert_generator(
      {"generator": {f"module.{k}": v for k, v in sd.items()}}, "inpaint")
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(wrapped)):
    np.testing.assert_array_equal(a, b)


def test_conversion_errors_name_the_problem(release):
  gen = dict(release["InpaintingModel_gen"])
  with pytest.raises(ect.ConversionError, match="no 'generator' entry"):
    ect.convert_generator(release["InpaintingModel_dis"], "inpaint")
  sd = dict(gen["generator"])
  del sd["decoder.7.bias"]
  sd["decoder.9.weight"] = sd["decoder.7.weight"]
  with pytest.raises(ect.ConversionError, match=r"1 unexpected \(decoder.9.weight\)"):
    ect.convert_generator({"generator": sd}, "inpaint")
  sd = dict(gen["generator"])
  sd["encoder.4.weight"] = sd["encoder.4.weight"][:, :3]
  with pytest.raises(ect.ConversionError, match="shapes differ"):
    ect.convert_generator({"generator": sd}, "inpaint")
  # An edge generator read as the inpainting one: its input has 3 channels, not 4.
  with pytest.raises(ect.ConversionError, match="inpaint generator"):
    ect.convert_generator(release["EdgeModel_gen"], "inpaint")
  sd = dict(release["EdgeModel_gen"]["generator"])
  del sd["encoder.1.weight_v"]
  with pytest.raises(ect.ConversionError, match="encoder.1.weight_v is missing"):
    ect.convert_generator({"generator": sd}, "edge")
  sd = dict(gen["generator"])
  sd["encoder.1.bias"] = np.full_like(sd["encoder.1.bias"], np.nan)
  with pytest.raises(ect.ConversionError, match="NaN"):
    ect.convert_generator({"generator": sd}, "inpaint")
