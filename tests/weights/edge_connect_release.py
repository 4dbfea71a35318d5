"""EdgeConnect's released checkpoint folder, rebuilt for the tests with random weights.

The four files of knazeri/edge-connect's releases (`EdgeModel_gen.pth`, `EdgeModel_dis.pth`,
`InpaintingModel_gen.pth`, `InpaintingModel_dis.pth`), in torch's legacy format as torch 1.0
wrote them (`{'iteration': N, 'generator': state dict}` / `{'discriminator': state dict}`), from
a literal table of the reference's layers (transcribed from its src/networks.py, independently
of the converter's mapping). The fixture script checks this table against the state dicts of the
reference's own modules (tests/weights/data/make_edge_connect_fixture.py).

Weights are drawn from a seed: kernels N(0, 0.02) (the reference's initialisation), biases
U(-0.1, 0.1), and spectral norm's stored `weight_u` / `weight_v` from two power iterations from a
random start (so they are close to, but not, the top singular vectors: a converter that
recomputes sigma instead of using them gets a different answer).
"""

from __future__ import annotations

import collections
import os

import numpy as np

from tests.weights import torch_legacy

ITERATION = 123456


def _generator(channels_in: int, channels_out: int, sn: bool, n_res: int = 8) -> list:
  """(module, kind, in, out, kernel, spectral norm, bias) of EdgeGenerator / InpaintGenerator."""
  layers = [("encoder.1", "conv", channels_in, 64, 7, sn, True),
            ("encoder.4", "conv", 64, 128, 4, sn, True),
            ("encoder.7", "conv", 128, 256, 4, sn, True)]
  for i in range(n_res):
    # ResnetBlock(256, 2, use_spectral_norm=sn): its convs have bias=not sn.
    layers += [(f"middle.{i}.conv_block.1", "conv", 256, 256, 3, sn, not sn),
               (f"middle.{i}.conv_block.5", "conv", 256, 256, 3, sn, not sn)]
  layers += [("decoder.0", "deconv", 256, 128, 4, sn, True),
             ("decoder.3", "deconv", 128, 64, 4, sn, True),
             ("decoder.7", "conv", 64, channels_out, 7, False, True)]
  return layers


def _discriminator(channels_in: int) -> list:
  widths = [channels_in, 64, 128, 256, 512, 1]
  return [(f"conv{i}.0", "conv", widths[i - 1], widths[i], 4, True, False) for i in range(1, 6)]


LAYERS = {
    "EdgeModel_gen": _generator(3, 1, sn=True),
    "InpaintingModel_gen": _generator(4, 3, sn=False),
    "EdgeModel_dis": _discriminator(2),
    "InpaintingModel_dis": _discriminator(3),
}


def _weight_shape(kind: str, cin: int, cout: int, k: int) -> tuple:
  return (cin, cout, k, k) if kind == "deconv" else (cout, cin, k, k)


def _power_iteration(weight: np.ndarray, kind: str, rng: np.random.Generator):
  """(u, v) after two power iterations on the weight as torch's spectral_norm views it."""
  # torch flattens with the output channels first: dim 0 for Conv2d, dim 1 for ConvTranspose2d.
  w = np.swapaxes(weight, 0, 1) if kind == "deconv" else weight
  w = w.reshape(w.shape[0], -1).astype(np.float64)
  v = rng.normal(size=w.shape[1])
  v /= np.linalg.norm(v)
  for _ in range(2):
    u = w @ v
    u /= np.linalg.norm(u)
    v = w.T @ u
    v /= np.linalg.norm(v)
  u = w @ v
  u /= np.linalg.norm(u)
  return u.astype(np.float32), v.astype(np.float32)


def state_dict(name: str, rng: np.random.Generator) -> "collections.OrderedDict[str, np.ndarray]":
  """The state dict of one network (a LAYERS name) with random weights, torch's key order."""
  sd = collections.OrderedDict()
  for module, kind, cin, cout, k, sn, bias in LAYERS[name]:
    weight = rng.normal(0.0, 0.02, _weight_shape(kind, cin, cout, k)).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, cout).astype(np.float32) if bias else None
    if sn:  # spectral_norm re-registers the weight as weight_orig, after the bias
      u, v = _power_iteration(weight, kind, rng)
      entries = [("bias", b), ("weight_orig", weight), ("weight_u", u), ("weight_v", v)]
    else:
      entries = [("weight", weight), ("bias", b)]
    sd.update((f"{module}.{leaf}", value) for leaf, value in entries if value is not None)
    if name.endswith("_dis") and module == "conv1.0":
      # `self.conv1 = self.features = nn.Sequential(...)`: one module under two names, so the
      # state dict holds its tensors twice.
      sd.update((f"features.0.{leaf}", value) for leaf, value in entries if value is not None)
  return sd


def state_dicts(seed: int) -> dict[str, "collections.OrderedDict[str, np.ndarray]"]:
  """All four networks' state dicts; each network draws from its own stream of `seed`."""
  return {name: state_dict(name, np.random.default_rng([seed, i]))
          for i, name in enumerate(LAYERS)}


def write_release(folder: str, seed: int, names=tuple(LAYERS)) -> dict[str, str]:
  """Writes the named files (NAME.pth) into `folder`; returns {name: path}."""
  os.makedirs(folder, exist_ok=True)
  dicts = state_dicts(seed)
  paths = {}
  for name in names:
    key = "discriminator" if name.endswith("_dis") else "generator"
    obj = {key: dicts[name]}
    if key == "generator":
      obj = {"iteration": ITERATION, "generator": dicts[name]}
    paths[name] = os.path.join(folder, f"{name}.pth")
    torch_legacy.save(obj, paths[name], torch04=True)
  return paths
