"""VGG feature extractor: torchvision layout import, layer names, agreement with torchvision."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from flowinpaint.models import vgg


def _random_state_dict(depth, seed=0, prefix="features."):
  """Random weights in torchvision's layout (features.N.weight [O, I, 3, 3], features.N.bias)."""
  rng = np.random.default_rng(seed)
  sd, c_in, i = {}, 3, 0
  for block in vgg.PLANS[depth]:
    for width in block:
      sd[f"{prefix}{i}.weight"] = rng.normal(0, np.sqrt(2 / (9 * c_in)),
                                             (width, c_in, 3, 3)).astype(np.float32)
      sd[f"{prefix}{i}.bias"] = rng.normal(0, 0.1, (width,)).astype(np.float32)
      c_in, i = width, i + 2
    i += 1
  return sd


def test_layer_names_follow_the_network():
  names = vgg.layer_names(19)
  assert names[:5] == ["relu1_1", "relu1_2", "pool1", "relu2_1", "relu2_2"]
  assert names.index("relu3_4") == names.index("relu3_3") + 1
  assert len(names) == 16 + 5 and len(vgg.layer_names(16)) == 13 + 5
  assert vgg.torchvision_index(16)[28] == "conv5_3" and vgg.torchvision_index(19)[34] == "conv5_4"


def test_first_layers_match_a_direct_numpy_computation():
  sd = _random_state_dict(16)
  params = vgg.from_torchvision(sd)  # Depth inferred from 13 convs.
  rng = np.random.default_rng(1)
  image = rng.uniform(-1, 1, (1, 6, 8, 3)).astype(np.float32)
  feats = vgg.VGGFeatures(16, outputs=("relu1_1", "pool1")).apply({"params": params}, image)
  # Independent: ImageNet standardisation, zero padding 1, cross-correlation with OIHW weights.
  x = ((image[0] + 1) / 2 - np.array(vgg.IMAGENET_MEAN)) / np.array(vgg.IMAGENET_STD)
  xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
  w, b = sd["features.0.weight"], sd["features.0.bias"]
  expected = np.zeros((6, 8, 64))
  for dy in range(3):
    for dx in range(3):
      expected += np.einsum("hwi,oi->hwo", xp[dy:dy + 6, dx:dx + 8], w[:, :, dy, dx])
  expected = np.maximum(expected + b, 0)
  np.testing.assert_allclose(feats["relu1_1"][0], expected, rtol=1e-4, atol=1e-4)
  assert feats["pool1"].shape == (1, 3, 4, 64)
  assert set(feats) == {"relu1_1", "pool1"}


def test_features_only_state_dict_and_errors(tmp_path):
  sd = _random_state_dict(19, prefix="")
  params = vgg.from_torchvision(sd)
  assert set(params) == set(vgg.torchvision_index(19).values())
  assert params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
  with pytest.raises(vgg.VGGWeightsError, match="VGG-16 has 13, VGG-19 has 16"):
    vgg.from_torchvision({"features.0.weight": np.zeros((64, 3, 3, 3))})
  with pytest.raises(vgg.VGGWeightsError, match="not a torchvision VGG-16"):
    vgg.from_torchvision(_random_state_dict(19), depth=16)  # A VGG-19 file asked as VGG-16.
  bad = _random_state_dict(16)
  bad["features.2.weight"] = bad["features.2.weight"][:32]
  with pytest.raises(vgg.VGGWeightsError, match=r"features.2.weight has shape \(32, 64, 3, 3\)"):
    vgg.from_torchvision(bad)
  with pytest.raises(vgg.VGGWeightsError, match="does not exist"):
    vgg.load_torchvision(str(tmp_path / "missing.pth"))
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"not a torch file")
  with pytest.raises(vgg.VGGWeightsError, match="cannot read VGG weights"):
    vgg.load_torchvision(str(junk))
  npz = tmp_path / "vgg16.npz"
  np.savez(npz, **_random_state_dict(16))
  loaded = vgg.load_torchvision(str(npz), 16)
  np.testing.assert_array_equal(loaded["conv5_3"]["bias"], vgg.from_torchvision(
      _random_state_dict(16))["conv5_3"]["bias"])
  with pytest.raises(ValueError, match="unknown VGG-16 layers"):
    vgg.VGGFeatures(16, outputs=("relu3_4",)).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


@pytest.mark.parametrize("depth", [16, 19])
def test_equals_torchvision_on_random_weights(tmp_path, depth):
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(depth)
  model = getattr(torchvision.models, f"vgg{depth}")(weights=None).eval()
  path = tmp_path / f"vgg{depth}.pth"
  torch.save(model.state_dict(), path)
  params = vgg.load_torchvision(str(path))  # Read without torch; classifier ignored.
  image = np.random.default_rng(0).uniform(-1, 1, (2, 32, 48, 3)).astype(np.float32)
  names = vgg.layer_names(depth)
  wanted = ("relu1_1", "pool2", "relu3_1", "relu4_2", "pool5")
  ours = vgg.VGGFeatures(depth, outputs=wanted).apply({"params": params}, image)
  mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
  x = (torch.from_numpy(image).permute(0, 3, 1, 2) + 1) / 2
  x = (x - mean) / std
  # Position of each name in torchvision's `features` Sequential (conv, ReLU, ..., MaxPool).
  position, i = {}, 0
  for name in names:
    i += 2 if name.startswith("relu") else 1
    position[name] = i
  with torch.no_grad():
    for name in wanted:
      ref = model.features[:position[name]](x).permute(0, 2, 3, 1).numpy()
      scale = np.abs(ref).max()
      np.testing.assert_allclose(np.asarray(ours[name]) / scale, ref / scale, atol=1e-5,
                                 err_msg=name)
