"""DFC-Net stage weights of Deep Flow-Guided Video Inpainting (nbei/Deep-Flow-Guided-Video-
Inpainting) onto `models.flow_completion.DFVIStage`.

The authors publish one file per stage (Google Drive, linked from their README):
`resnet50_stage1.pth` (stage 1, 33 -> 2 channels), `DAVIS_model/davis_stage2.pth` and
`davis_stage3.pth` (the refinement stages, 66 -> 4), all ResNet-50 with the multi-scale head
(`Flow_Branch_Multi`), and `resnet101_movie.pth` (the movie demo's single stage, ResNet-101 with
the single-scale head, `Flow_Branch`). Each is `utils/io.py::save_ckpt`'s
`torch.save({'n_iter': int, 'model': state_dict[, 'optimizer': ...]})` of an `nn.DataParallel`
model (names start with `module.`); flowinpaint.weights.torch_pickle reads them without torch.

What the file's names and shapes say: the backbone's depth (blocks in layer3: 6 -> ResNet-50,
23 -> ResNet-101), the head (`layer5.conv1..3` multi-scale, `layer5.conv1` alone single-scale),
the input channels (`conv1.weight`: 33 for stage 1, 66 for the refinement stages) and the flow
channels out (2 or 4). Name map (torch -> Flax, under `stage/`): `conv1` -> `backbone/conv1`
(kernel and bias), `bn1` -> `backbone/bn1`, `layerI.J.convK` / `.bnK` ->
`backbone/layerI_J/convK` / `bnK`, `layerI.J.downsample.0` / `.1` -> `downsample_conv` /
`downsample_bn`; `layer5.conv1, conv2, conv3` (multi-scale) -> `head/conv4, conv2, flow`,
`layer5.conv1` (single-scale) -> `head/flow`. BatchNorm `weight, bias` -> params `scale, bias`,
`running_mean, running_var` -> batch_stats `mean, var`; `num_batches_tracked` (torch >= 0.4.1)
is ignored. Conv weights [out, in, kh, kw] -> [kh, kw, in, out]. No colour order is involved:
the inputs are flows and masks.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import numpy as np

from flowinpaint.weights.deepfill_v2_torch import mismatch_summary, torch_tensor_as_flax


class ConversionError(ValueError):
  """The file is not one of the DFC-Net stages (the message is one line for the user)."""


_BN_LEAVES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_MULTI_HEAD = {"conv4": "layer5.conv1", "conv2": "layer5.conv2", "flow": "layer5.conv3"}


def state_dict(obj: Any) -> Mapping[str, Any]:
  """The stage's state dict inside a loaded file ({'model': ...} or the dict itself), without
  the `module.` prefix of a DataParallel model."""
  if not isinstance(obj, Mapping):
    raise ConversionError(f"the file holds a {type(obj).__name__}, not a checkpoint dict")
  if "model" in obj and isinstance(obj["model"], Mapping):
    obj = obj["model"]
  elif "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
    obj = obj["state_dict"]
  if not obj or not all(isinstance(k, str) for k in obj):
    raise ConversionError("the file holds no state dict (expected tensor names as keys)")
  if all(k.startswith("module.") for k in obj):
    obj = {k[len("module."):]: v for k, v in obj.items()}
  return obj


def describe(sd: Mapping[str, Any]) -> tuple[int, int, int]:
  """(depth, input channels, output channels) of a stage's state dict."""
  if "conv1.weight" not in sd or "layer5.conv1.weight" not in sd:
    hint = ""
    if any(k.startswith(("stage_1.", "stage_2.")) for k in sd):
      hint = " (it is DFVI's DeepFill v1: use --from deepfill_v1_dfvi_pth)"
    elif any(k.startswith(("flownetc.", "flownets")) for k in sd):
      hint = " (it is FlowNet 2.0: use --from flownet2_pth)"
    raise ConversionError("not a DFC-Net stage: it has no conv1 / layer5 (flow head) weights; "
                          f"e.g. {', '.join(sorted(sd)[:3])}{hint}")
  blocks = sum(1 for k in sd if k.startswith("layer3.") and k.endswith(".conv1.weight"))
  depth = {6: 50, 23: 101}.get(blocks)
  if depth is None:
    raise ConversionError(f"layer3 has {blocks} blocks: neither the ResNet-50 (6) nor the "
                          "ResNet-101 (23) stage of DFVI")
  multi = "layer5.conv3.weight" in sd
  if multi != (depth == 50):
    raise ConversionError(f"a ResNet-{depth} with the {'multi' if multi else 'single'}-scale "
                          "head: the authors' stages pair ResNet-50 with the multi-scale head "
                          "and ResNet-101 with the single-scale one")
  cin = int(np.shape(sd["conv1.weight"])[1])
  out = "layer5.conv3.weight" if multi else "layer5.conv1.weight"
  cout = int(np.shape(sd[out])[0])
  if (cin, cout) not in ((33, 2), (66, 4)):
    raise ConversionError(f"{cin} input and {cout} output channels: DFVI's stages take 33 -> 2 "
                          "(stage 1) or 66 -> 4 (refinement)")
  return depth, cin, cout


@functools.lru_cache(maxsize=None)
def flax_shapes(depth: int, in_channels: int, out_channels: int
                ) -> dict[tuple[str, ...], tuple[int, ...]]:
  """(collection, *path) -> shape of DFVIStage's variables, traced without computing."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.flow_completion import DFVIStage

  image = jax.ShapeDtypeStruct((1, 64, 64, in_channels), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda x, m: DFVIStage(depth, out_channels).init(
      jax.random.key(0), x, m), image, mask)
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def torch_name(path: tuple[str, ...], depth: int) -> str:
  """Flax (collection, 'stage', part, ..., leaf) -> the authors' name (without `module.`)."""
  _, _, part, *layers, leaf = path
  if part == "head":
    (layer,) = layers
    base = _MULTI_HEAD[layer] if depth == 50 else "layer5.conv1"
    return f"{base}.{'weight' if leaf == 'kernel' else 'bias'}"
  if len(layers) == 1:  # stem: conv1, bn1
    base = layers[0]
  else:
    block, layer = layers
    i, j = block[len("layer"):].split("_")
    sub = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(layer, layer)
    base = f"layer{i}.{j}.{sub}"
  if leaf == "kernel":
    return base + ".weight"
  return f"{base}.{_BN_LEAVES[leaf] if 'bn' in layers[-1] else leaf}"


def convert_state_dict(sd: Mapping[str, Any]) -> tuple[tuple[int, int, int], dict[str, Any]]:
  """A stage's state dict -> ((depth, in, out), {'params': ..., 'batch_stats': ...}).

  Arrays are float32 numpy. Raises ConversionError naming missing, unexpected or mis-shaped
  tensors, or non-float or non-finite ones.
  """
  depth, cin, cout = describe(sd)
  shapes = flax_shapes(depth, cin, cout)
  expected = {torch_name(p, depth): p for p in shapes}
  present = {k for k in sd if not k.endswith(".num_batches_tracked")}
  missing, unexpected = sorted(set(expected) - present), sorted(present - set(expected))
  if missing or unexpected:
    raise ConversionError(f"not a complete DFVI ResNet-{depth} stage ({cin} -> {cout}): "
                          + mismatch_summary(missing, unexpected) + " tensor names")
  out: dict[str, Any] = {}
  for name, path in expected.items():
    value = torch_tensor_as_flax(name, sd[name], shapes[path], ConversionError)
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return (depth, cin, cout), out


def read(path: str) -> tuple[tuple[int, int, int], dict[str, Any], dict[str, Any]]:
  """(depth, in, out), the variables and the file's extras ('n_iter') of a stage file."""
  from flowinpaint.errors import UserError
  from flowinpaint.weights import torch_pickle
  obj = torch_pickle.load_file(path, "PyTorch checkpoint")
  try:
    kind, variables = convert_state_dict(state_dict(obj))
  except ConversionError as e:
    raise UserError(f"{path!r}: {e}") from e
  extra = {"n_iter": obj["n_iter"]} if isinstance(obj, Mapping) and isinstance(
      obj.get("n_iter"), int) else {}
  return kind, variables, extra


def convert(path: str, options, fmt: str):
  """`--from dfc_net_pth`: one DFVI stage file -> an inference-only `dfc_stage` checkpoint."""
  from flowinpaint import convert as convert_lib
  from flowinpaint.errors import UserError
  if options.variant is not None:
    raise UserError("--variant is for the DeepFill importers; dfc_net_pth reads the stage's "
                    "kind from the file")
  config_path = options.config_path or os.path.join(convert_lib._CONFIGS, "dfvi_stage.py")
  config = convert_lib.load_config(config_path)
  if config.model.name != "dfc_stage":
    raise UserError(f"--config {config_path!r} is for model {config.model.name!r}, not "
                    "dfc_stage")
  (depth, cin, cout), variables, extra = read(path)
  config.model.depth = depth
  config.model.out_channels = cout
  count = sum(int(np.prod(v.shape)) for v in _leaves(variables["params"]))
  role = "stage 1" if cin == 33 else "refinement stage"
  source = {"format": fmt, "file": os.path.basename(path), "depth": depth,
            "in_channels": cin, "out_channels": cout, "parameters": count, **extra}
  return convert_lib.Converted(
      config, variables, source=source, image_channels=cin, inference_only=True,
      summary=f"DFC-Net {role}, ResNet-{depth}, {cin} -> {cout} channels, "
      f"{count / 1e6:.1f} M parameters, for inference")


def _leaves(tree):
  for v in tree.values():
    if isinstance(v, dict):
      yield from _leaves(v)
    else:
      yield v
