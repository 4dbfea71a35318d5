"""Converted DeepFill v2 port weights make the Flax generator compute what the port computes.

The reference is `torch_reference.Generator` (written for these tests from the published layer
definitions of nipponjo/deepfillv2-pytorch's networks_tf.py) with random weights; its state dict
goes through the converter and both generators run on the same random image and mask.
"""

import os
import pickle
import zipfile

import jax
import numpy as np
import pytest

from flowinpaint.layers.contextual_attention import contextual_attention
from flowinpaint.models.deepfill_v2 import DeepFillV2Generator
from flowinpaint.weights import deepfill_v2_torch, torch_pickle

torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install torch)")
pytestmark = pytest.mark.torch

from tests.weights import torch_reference  # noqa: E402  (needs torch)

_HAS_CA_FIELDS = all(f in DeepFillV2Generator.__dataclass_fields__
                     for f in ("ca_fuse", "ca_patch_norm"))


def _reference(seed: int = 0, **kwargs) -> "torch_reference.Generator":
  torch.manual_seed(seed)
  model = torch_reference.Generator(cnum=48, **kwargs).eval()
  gen = torch.Generator().manual_seed(seed + 1)
  for name, module in model.named_modules():
    if isinstance(module, torch.nn.Conv2d):
      # The port's initialisation (kaiming uniform, fan_out) keeps activations O(1) through
      # the 40 layers; random biases check that biases are mapped too.
      torch.nn.init.kaiming_uniform_(module.weight, mode="fan_out", nonlinearity="relu")
      with torch.no_grad():
        module.bias.copy_(torch.rand(module.bias.shape, generator=gen) * 0.2 - 0.1)
  return model


def _inputs(size: int, batch: int = 1, seed: int = 0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  mask = np.zeros((batch, size, size, 1), np.float32)
  mask[:, size // 4:size // 2 + 8, size // 3:3 * size // 4] = 1.
  mask[:, 3 * size // 4:, :size // 5] = 1.
  return image, mask


def _run_torch(model, image, mask):
  to_t = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
  return torch_reference.run(model, to_t(image), to_t(mask))


def _rel(a, b) -> float:
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _state_dict_numpy(model) -> dict:
  return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("size", [128, 256])
def test_tf_variant_matches_flax_generator(size):
  # Fusion on and TF's patch norm: what the Flax generator computes by default.
  model = _reference(fuse=True, patch_norm="max")
  variables = deepfill_v2_torch.convert_generator({"G": _state_dict_numpy(model)})
  image, mask = _inputs(size)
  want_x1, want_x2 = _run_torch(model, image, mask)
  out = jax.jit(lambda v, x, m: DeepFillV2Generator(cnum=48).apply(v, x, m, train=False))(
      variables, image, mask)
  assert np.std(want_x2) > 0.01  # not a degenerate (saturated or constant) network
  assert _rel(np.asarray(out["coarse"]), want_x1) < 1e-4
  assert _rel(np.asarray(out["output"]), want_x2) < 1e-4


@pytest.mark.skipif(not _HAS_CA_FIELDS, reason="DeepFillV2Generator has no ca_fuse / "
                    "ca_patch_norm fields yet (needed to run the port's variant)")
def test_port_variant_matches_flax_generator():
  model = _reference(seed=3)  # the port: fuse=False, 1e-4 added per element
  variables = deepfill_v2_torch.convert_generator(_state_dict_numpy(model))
  image, mask = _inputs(256, seed=1)
  want_x1, want_x2 = _run_torch(model, image, mask)
  gen = DeepFillV2Generator(cnum=48, **deepfill_v2_torch.VARIANTS["port"])
  out = jax.jit(lambda v, x, m: gen.apply(v, x, m, train=False))(variables, image, mask)
  assert _rel(np.asarray(out["coarse"]), want_x1) < 1e-4
  assert _rel(np.asarray(out["output"]), want_x2) < 1e-4


@pytest.mark.parametrize("fuse,patch_norm", [(False, "add"), (True, "add"), (False, "max")])
def test_contextual_attention_variants_match_port(fuse, patch_norm):
  # The layer alone, batch of 2 with one shared mask (the port uses the first sample's mask).
  rng = np.random.default_rng(5)
  f = np.maximum(rng.normal(size=(2, 32, 32, 16)), 0).astype(np.float32) * 0.3
  mask = np.zeros((1, 128, 128, 1), np.float32)
  mask[:, 40:90, 30:100] = 1.
  want = torch_reference.contextual_attention(
      torch.from_numpy(f.transpose(0, 3, 1, 2).copy()), torch.from_numpy(f.transpose(
          0, 3, 1, 2).copy()), torch.from_numpy(np.repeat(mask, 2, 0).transpose(0, 3, 1, 2)),
      fuse=fuse, patch_norm=patch_norm).numpy().transpose(0, 2, 3, 1)
  got, _ = contextual_attention(f, f, mask[:, ::4, ::4], rate=2, fuse=fuse,
                                       patch_norm=patch_norm)
  assert _rel(np.asarray(got), want) < 1e-5
  # The variants really differ (so matching one is a real check).
  other, _ = contextual_attention(f, f, mask[:, ::4, ::4], rate=2, fuse=not fuse,
                                         patch_norm=patch_norm)
  assert _rel(np.asarray(other), want) > 1e-3


def test_torch_pickle_reads_what_torch_saves(tmp_path):
  sd = {"a": torch.randn(2, 3), "b": torch.randn(4, 5).t(), "c": torch.tensor(7),
        "d": torch.randn(3).to(torch.float16), "e": torch.randn(6)[1:4]}
  torch.save({"G": sd, "n_iter": 5}, tmp_path / "x.pth")
  got = torch_pickle.load(str(tmp_path / "x.pth"))
  assert got["n_iter"] == 5
  for k, v in sd.items():
    np.testing.assert_array_equal(got["G"][k], v.numpy())


def test_torch_pickle_refuses_code(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))

  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("evil/data.pkl", pickle.dumps({"G": Evil()}, protocol=2))
  with pytest.raises(torch_pickle.NotAStateDict, match="refused"):
    torch_pickle.load(str(path))


def test_convert_generator_errors():
  model = _reference()
  sd = _state_dict_numpy(model)
  with pytest.raises(deepfill_v2_torch.ConversionError, match="1 missing .*conv1.conv.bias"):
    deepfill_v2_torch.convert_generator({k: v for k, v in sd.items() if k != "conv1.conv.bias"})
  with pytest.raises(deepfill_v2_torch.ConversionError, match="unexpected .*extra.weight"):
    deepfill_v2_torch.convert_generator(dict(sd, **{"extra.weight": np.zeros(3)}))
  bad = dict(sd, **{"conv3.conv.weight": np.zeros((96, 48, 5, 5), np.float32)})
  with pytest.raises(deepfill_v2_torch.ConversionError, match=r"conv3.conv.weight has shape "
                     r"\(96, 48, 5, 5\), expected \(96, 48, 3, 3\)"):
    deepfill_v2_torch.convert_generator(bad)
  with pytest.raises(deepfill_v2_torch.ConversionError, match="networks.py"):
    deepfill_v2_torch.convert_generator({"stage1.conv1.conv.weight": np.zeros(1)})
