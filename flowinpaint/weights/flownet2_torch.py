"""FlowNet 2.0 weights from NVIDIA/flownet2-pytorch checkpoints onto `models.flownet2.FlowNet2`.

NVIDIA's files (`FlowNet2_checkpoint.pth.tar`, `FlowNet2-C_...`, `-CS_`, `-CSS_`, `-S_`,
`-SD_...`) are `torch.save({'epoch', 'state_dict', 'best_EPE'})` in torch's legacy format
(flowinpaint.weights.torch_pickle reads them without torch). The state dict's names say which
network it is:

* FlowNet2 / CS / CSS: `flownetc.*`, `flownets_1.*`, `flownets_2.*`, `flownets_d.*`,
  `flownetfusion.*` (the ones present);
* FlowNet2C / S / SD: one network without a prefix (FlowNetC has `conv_redir`, FlowNetSD
  `inter_conv*`), stored under `flownetc` / `flownets` / `flownets_d` here.

Layer `X` is `X.0.*` in torch when it is a Sequential (conv(), deconv(), i_conv()) and `X.*`
for `predict_flow*` and `upsampled_flow*`; the Flax names are the torch ones without `.0`.
Layouts: a conv weight [out, in, kh, kw] becomes [kh, kw, in, out]; a transposed conv
(`deconv*`, `upsampled_flow*`, torch [in, out, kh, kw]) becomes the spatially flipped
[kh, kw, in, out] kernel of the equivalent dilated convolution (flax ConvTranspose with
transpose_kernel=False, padding 2). Colour order needs nothing: NVIDIA's converter already
turned the Caffe models' BGR input filters into RGB ones.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from flowinpaint.weights.deepfill_v2_torch import float32_tensor, mismatch_summary


class ConversionError(ValueError):
  """The state dict is not a FlowNet2 one (the message is one line for the user)."""


_TRANSPOSED = ("deconv", "upsampled_flow")
_PLAIN = ("predict_flow", "upsampled_flow")  # modules that are not a Sequential in torch
_STANDALONE = {"FlowNet2C": "flownetc", "FlowNet2S": "flownets", "FlowNet2SD": "flownets_d"}


def state_dict(obj: Any) -> Mapping[str, Any]:
  """The state dict inside a loaded checkpoint ({'state_dict': ...} or the dict itself)."""
  if not isinstance(obj, Mapping):
    raise ConversionError(f"the file holds a {type(obj).__name__}, not a checkpoint dict")
  if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
    obj = obj["state_dict"]
  if not obj or not all(isinstance(k, str) for k in obj):
    raise ConversionError("the file holds no state dict (expected tensor names as keys)")
  if all(k.startswith("module.") for k in obj):  # saved from a DataParallel wrapper
    obj = {k[len("module."):]: v for k, v in obj.items()}
  return obj


def detect_variant(sd: Mapping[str, Any]) -> str:
  """Which of models.flownet2.VARIANTS the state dict's names belong to."""
  prefixes = {k.split(".", 1)[0] for k in sd}
  if "flownetfusion" in prefixes or "flownets_d" in prefixes:
    return "FlowNet2"
  if "flownets_2" in prefixes:
    return "FlowNet2CSS"
  if "flownets_1" in prefixes or "flownetc" in prefixes:
    return "FlowNet2CS"
  if "conv_redir.0.weight" in sd:
    return "FlowNet2C"
  if "inter_conv5.0.weight" in sd:
    return "FlowNet2SD"
  if "conv1.0.weight" in sd and "predict_flow2.weight" in sd:
    return "FlowNet2S"
  raise ConversionError("not a FlowNet2 state dict (no flownetc./flownets_*/flownetfusion. "
                        f"names and no FlowNet layer names; e.g. {', '.join(sorted(sd)[:3])})")


@functools.lru_cache(maxsize=None)
def flax_shapes(variant: str) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Parameter paths and shapes of FlowNet2(variant), traced without computing anything."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.flownet2 import FlowNet2

  image = jax.ShapeDtypeStruct((1, 64, 64, 6), jnp.float32)
  shapes = jax.eval_shape(lambda x: FlowNet2(variant=variant).init(jax.random.key(0), x), image)
  flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def torch_name(path: tuple[str, ...], variant: str) -> str:
  """Flax path -> NVIDIA's state-dict key, e.g. ('flownetc', 'conv1', 'kernel') ->
  'flownetc.conv1.0.weight' (FlowNet2) or 'conv1.0.weight' (FlowNet2C)."""
  subnet, layer, leaf = path
  name = layer if layer.startswith(_PLAIN) else layer + ".0"
  prefix = "" if variant in _STANDALONE else subnet + "."
  return prefix + name + "." + {"kernel": "weight", "bias": "bias"}[leaf]


def _to_flax(value: np.ndarray, layer: str) -> np.ndarray:
  if layer.startswith(_TRANSPOSED):  # [in, out, kh, kw] -> flipped [kh, kw, in, out]
    return np.ascontiguousarray(value[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
  return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # [out, in, kh, kw] -> [kh, kw, in, out]


def _torch_shape(shape: tuple[int, ...], layer: str) -> tuple[int, ...]:
  if len(shape) != 4:
    return shape
  kh, kw, cin, cout = shape
  return (cin, cout, kh, kw) if layer.startswith(_TRANSPOSED) else (cout, cin, kh, kw)


def convert(obj: Any, *, consume: bool = False) -> tuple[str, dict[str, Any]]:
  """A loaded checkpoint (or state dict) -> (variant, `{'params': ...}` of FlowNet2(variant)).

  Arrays are float32 numpy. `consume`: empty the state dict while converting, so that the
  650 MB of FlowNet2 are not held twice. Raises ConversionError naming missing, unexpected or
  mis-shaped tensors (checked before anything is consumed), or non-float or non-finite ones.
  """
  sd = state_dict(obj)
  variant = detect_variant(sd)
  shapes = flax_shapes(variant)
  expected = {torch_name(p, variant): p for p in shapes}
  missing = sorted(set(expected) - set(sd))
  unexpected = sorted(set(sd) - set(expected))
  if missing or unexpected:
    raise ConversionError(f"not a complete NVIDIA {variant} state dict: "
                          + mismatch_summary(missing, unexpected) + " tensor names")
  for name, path in expected.items():
    shape, layer = tuple(np.shape(sd[name])), path[1]
    if shape != _torch_shape(shapes[path], layer):
      raise ConversionError(f"{name} has shape {shape}, expected "
                            f"{_torch_shape(shapes[path], layer)}")
  params: dict[str, Any] = {}
  for name, path in expected.items():
    value = float32_tensor(name, sd.pop(name) if consume else sd[name])
    layer = path[1]
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = _to_flax(value, layer) if value.ndim == 4 else value.copy()
  return variant, {"params": params}
