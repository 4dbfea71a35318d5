"""VGG-16 / VGG-19 feature extractors (Simonyan & Zisserman 2015) for perceptual losses.

The convolutional part of torchvision's `vgg16` / `vgg19` in Flax, returning the named
activations the inpainting losses read: `relu{block}_{k}` (after each 3x3 conv + ReLU) and
`pool{block}` (after each 2x2 max pool). PConv's losses use VGG-16 pool1-pool3; StructureFlow's
use VGG-19 relu1_1 ... relu5_2.

Weights come from the user's own torchvision state dict (`vgg16-397923af.pth`,
`vgg19-dcbb9e9d.pth`, or `torch.save(model.state_dict(), path)`); nothing is downloaded and torch
is not needed to read them (flowinpaint.weights.torch_pickle). Inputs are images in [-1, 1];
they are standardised with the ImageNet mean and std the torchvision weights were trained with.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Widths of the 3x3 convs in each of the five blocks (torchvision cfgs 'D' and 'E').
PLANS = {
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512),
         (512, 512, 512, 512)),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(depth: int) -> list[str]:
  """Every output name in network order: relu1_1, relu1_2, pool1, relu2_1, ..., pool5."""
  names = []
  for b, widths in enumerate(_plan(depth), 1):
    names += [f"relu{b}_{k}" for k in range(1, len(widths) + 1)] + [f"pool{b}"]
  return names


def _plan(depth: int):
  if depth not in PLANS:
    raise ValueError(f"VGG depth must be 16 or 19, got {depth}")
  return PLANS[depth]


class VGGFeatures(nn.Module):
  """`__call__(images [B, H, W, 3] in [-1, 1]) -> {name: [B, h, w, C]}` for `outputs`.

  Only the layers up to the deepest requested output are built and run. Params are named
  `conv{block}_{k}` with Flax kernels [3, 3, in, out].

  Attributes:
    depth: 16 or 19.
    outputs: names from `layer_names(depth)`.
    dtype: compute dtype (params stay float32).
    imagenet_standardise: False feeds the [0, 1] image as it is (EdgeConnect's losses do: their
      VGG-19 sees [0, 1] images without the ImageNet mean and std).
  """
  depth: int = 19
  outputs: Sequence[str] = ("relu3_1",)
  dtype: Optional[Any] = None
  imagenet_standardise: bool = True

  @nn.compact
  def __call__(self, images: Array) -> dict[str, Array]:
    names = layer_names(self.depth)
    unknown = [n for n in self.outputs if n not in names]
    if unknown:
      raise ValueError(f"unknown VGG-{self.depth} layers {unknown}; choose from {names}")
    last = max(names.index(n) for n in self.outputs)
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    x = (images.astype(jnp.float32) + 1.0) * 0.5
    if self.imagenet_standardise:
      x = (x - mean) / std
    x = x.astype(self.dtype or jnp.float32)
    feats, position = {}, 0
    for b, widths in enumerate(_plan(self.depth), 1):
      for k, width in enumerate(widths, 1):
        # torchvision pads every 3x3 conv by 1 on each side.
        x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                            name=f"conv{b}_{k}")(x))
        position = self._keep(feats, f"relu{b}_{k}", x, position)
        if position > last:
          return feats
      x = nn.max_pool(x, (2, 2), (2, 2))
      position = self._keep(feats, f"pool{b}", x, position)
      if position > last:
        return feats
    return feats

  def _keep(self, feats: dict, name: str, x: Array, position: int) -> int:
    if name in self.outputs:
      feats[name] = x.astype(jnp.float32)
    return position + 1


# --- torchvision weights.


class VGGWeightsError(ValueError):
  """The file or state dict is not a torchvision VGG-16/19 state dict (the message says why)."""


def torchvision_index(depth: int) -> dict[int, str]:
  """torchvision `features.{i}` index of each conv -> Flax module name `conv{b}_{k}`."""
  table, i = {}, 0
  for b, widths in enumerate(_plan(depth), 1):
    for k in range(1, len(widths) + 1):
      table[i] = f"conv{b}_{k}"
      i += 2  # conv, ReLU
    i += 1  # max pool
  return table


def _conv_indices(state_dict: Mapping[str, Any]) -> dict[int, str]:
  """features index -> the key prefix ('features.0' or '0') of every conv weight found."""
  found = {}
  for key in state_dict:
    parts = key.split(".")
    if parts[-1] != "weight":
      continue
    if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit():
      found[int(parts[1])] = f"features.{parts[1]}"
    elif len(parts) == 2 and parts[0].isdigit():  # `model.features.state_dict()`
      found[int(parts[0])] = parts[0]
  return found


def from_torchvision(state_dict: Mapping[str, Any], depth: Optional[int] = None) -> dict:
  """torchvision VGG state dict -> Flax params for `VGGFeatures(depth)`.

  Accepts the whole model's state dict (`features.*` and `classifier.*`, the classifier is
  ignored) or the `features` module's alone. Conv weights [O, I, 3, 3] become kernels
  [3, 3, I, O]. `depth` is inferred from the number of convs (13 or 16) when not given.

  Raises:
    VGGWeightsError: naming the missing or mis-shaped tensors.
  """
  found = _conv_indices(state_dict)
  if depth is None:
    depth = {13: 16, 16: 19}.get(len(found))
    if depth is None:
      raise VGGWeightsError(
          f"not a torchvision VGG-16/19 state dict: found {len(found)} conv weights under "
          "'features.N.weight' (VGG-16 has 13, VGG-19 has 16)")
  params, problems = {}, []
  c_in = 3
  widths = [w for block in _plan(depth) for w in block]
  for (index, name), width in zip(sorted(torchvision_index(depth).items()), widths):
    prefix = found.get(index)
    if prefix is None:
      problems.append(f"features.{index}.weight missing")
      c_in = width
      continue
    weight = np.asarray(state_dict[f"{prefix}.weight"], np.float32)
    bias = state_dict.get(f"{prefix}.bias")
    if weight.shape != (width, c_in, 3, 3):
      problems.append(f"{prefix}.weight has shape {weight.shape}, VGG-{depth} needs "
                      f"{(width, c_in, 3, 3)}")
    elif bias is None or np.shape(bias) != (width,):
      problems.append(f"{prefix}.bias missing or not of shape ({width},)")
    else:
      params[name] = {"kernel": np.transpose(weight, (2, 3, 1, 0)),
                      "bias": np.asarray(bias, np.float32)}
    c_in = width
  extra = sorted(set(found) - set(torchvision_index(depth)))
  if extra:
    problems.append(f"unexpected conv weights at features indices {extra[:5]}")
  if problems:
    raise VGGWeightsError(f"not a torchvision VGG-{depth} state dict: " + "; ".join(problems[:4]))
  return params


def load_torchvision(path: str, depth: Optional[int] = None) -> dict:
  """Reads torchvision VGG weights (no torch needed) -> Flax params; see from_torchvision.

  `path` is a `.pth` state dict, or an `.npz` holding the same names (`features.0.weight`, ...),
  e.g. `np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})`.
  """
  from flowinpaint.weights import torch_pickle
  if not os.path.isfile(path):
    raise VGGWeightsError(f"VGG weights file {path!r} does not exist")
  try:
    if path.endswith(".npz"):
      with np.load(path) as archive:
        state_dict = {k: archive[k] for k in archive.files}
    else:
      state_dict = torch_pickle.load(path)
  except (torch_pickle.NotAStateDict, OSError, ValueError) as e:
    raise VGGWeightsError(f"cannot read VGG weights from {path!r}: {e}") from e
  if not isinstance(state_dict, Mapping):
    raise VGGWeightsError(f"{path!r} holds a {type(state_dict).__name__}, not a state dict")
  return from_torchvision(state_dict, depth)
