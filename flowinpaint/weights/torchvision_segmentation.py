"""torchvision `fcn_resnet50` / `deeplabv3_resnet50` state dicts -> Flax SegmentationModel.

The user's own `.pth` file (e.g. torchvision's `fcn_resnet50_coco-1167a1af.pth` or
`deeplabv3_resnet50_coco-cd0a2569.pth`, or `torch.save(model.state_dict(), path)`) is read
without torch (flowinpaint.weights.torch_pickle; nothing is downloaded) and mapped name by name:

  backbone.conv1 / bn1                        -> backbone/conv1, bn1
  backbone.layer{L}.{j}.conv{k} / bn{k}       -> backbone/layer{L}_{j}/conv{k}, bn{k}
  backbone.layer{L}.{j}.downsample.{0,1}      -> .../downsample_conv, downsample_bn
  FCN:       classifier.{0,1,4}               -> classifier/conv, bn, classifier
  DeepLabv3: classifier.0.convs.{0..3}.{0,1}  -> classifier/aspp/b{i}_conv, b{i}_bn
             classifier.0.convs.4.{1,2}       -> classifier/aspp/b4_conv, b4_bn (image pooling)
             classifier.0.project.{0,1}       -> classifier/aspp/project_conv, project_bn
             classifier.{1,2,4}               -> classifier/conv, bn, classifier

Conv weights [O, I, kh, kw] become kernels [kh, kw, I, O]; BatchNorm weight/bias go to params
(scale/bias), running_mean/var to batch_stats (mean/var). `aux_classifier.*` (the training-only
auxiliary head) and `num_batches_tracked` are skipped. The head is recognised from the keys.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from flowinpaint.models.segmentation import SegmentationModel
from flowinpaint.weights import torch_pickle


class ConversionError(ValueError):
  """The state dict is not a torchvision FCN / DeepLabv3 ResNet state dict."""


_DEEPLAB = {"classifier.1": "classifier/conv", "classifier.2": "classifier/bn",
            "classifier.4": "classifier/classifier",
            "classifier.0.project.0": "classifier/aspp/project_conv",
            "classifier.0.project.1": "classifier/aspp/project_bn",
            "classifier.0.convs.4.1": "classifier/aspp/b4_conv",
            "classifier.0.convs.4.2": "classifier/aspp/b4_bn"}
_FCN = {"classifier.0": "classifier/conv", "classifier.1": "classifier/bn",
        "classifier.4": "classifier/classifier"}


def detect_head(state_dict: Mapping[str, Any]) -> str:
  return "deeplabv3" if any(k.startswith("classifier.0.convs") for k in state_dict) else "fcn"


def _module_path(prefix: str, head: str) -> str | None:
  """torch module name -> Flax module path ('a/b/c'), None for skipped modules."""
  if prefix.startswith("aux_classifier"):
    return None
  m = re.fullmatch(r"backbone\.layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])", prefix)
  if m:
    leaf = {"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}.get(m[3], m[3])
    return f"backbone/layer{m[1]}_{m[2]}/{leaf}"
  if prefix in ("backbone.conv1", "backbone.bn1"):
    return prefix.replace(".", "/")
  table = _DEEPLAB if head == "deeplabv3" else _FCN
  if prefix in table:
    return table[prefix]
  m = re.fullmatch(r"classifier\.0\.convs\.([0-3])\.([01])", prefix)
  if m and head == "deeplabv3":
    return f"classifier/aspp/b{m[1]}_{'conv' if m[2] == '0' else 'bn'}"
  raise ConversionError(f"unexpected torch module {prefix!r} in a {head} state dict")


def _set(tree: dict, path: str, leaf: str, value: np.ndarray) -> None:
  node = tree
  for part in path.split("/"):
    node = node.setdefault(part, {})
  node[leaf] = value


def convert(state_dict: Mapping[str, Any], head: str | None = None
            ) -> tuple[str, dict[str, Any]]:
  """Returns (head, Flax variables {'params', 'batch_stats'}) for a torchvision state dict."""
  if "model" in state_dict and isinstance(state_dict["model"], Mapping):
    state_dict = state_dict["model"]  # torchvision reference-script checkpoints.
  detected = detect_head(state_dict)
  if head is not None and head != detected:
    raise ConversionError(f"the file holds {detected} weights, not {head}")
  head = detected
  if not any(k.startswith("backbone.layer4") for k in state_dict):
    raise ConversionError("no backbone.layer4.* keys: not a torchvision ResNet segmentation "
                          "state dict")
  params: dict = {}
  stats: dict = {}
  for name, value in state_dict.items():
    prefix, _, leaf = name.rpartition(".")
    path = _module_path(prefix, head)
    if path is None or leaf == "num_batches_tracked":
      continue
    value = np.asarray(value, np.float32)
    last = path.rsplit("/", 1)[-1]
    is_bn = last.startswith("bn") or last.endswith("_bn")
    if leaf == "weight" and value.ndim == 4:
      _set(params, path, "kernel", value.transpose(2, 3, 1, 0))
    elif leaf == "weight" and is_bn:
      _set(params, path, "scale", value)
    elif leaf == "bias":
      _set(params, path, "bias", value)
    elif leaf == "running_mean":
      _set(stats, path, "mean", value)
    elif leaf == "running_var":
      _set(stats, path, "var", value)
    else:
      raise ConversionError(f"unexpected tensor {name} {value.shape}")
  return head, {"params": params, "batch_stats": stats}


def load(path: str, head: str | None = None, *, num_classes: int | None = None
         ) -> tuple[SegmentationModel, dict[str, Any]]:
  """Reads a torchvision segmentation `.pth` and returns (model, variables) ready to apply.

  The model's class count comes from the file (21 for the VOC-label COCO weights).
  """
  try:
    state_dict = torch_pickle.load(path)
  except torch_pickle.NotAStateDict as e:
    raise ConversionError(f"{path}: {e}") from e
  if not isinstance(state_dict, Mapping):
    raise ConversionError(f"{path} does not hold a state dict")
  head, variables = convert(state_dict, head)
  classes = variables["params"]["classifier"]["classifier"]["kernel"].shape[-1]
  if num_classes is not None and num_classes != classes:
    raise ConversionError(f"{path} predicts {classes} classes, not {num_classes}")
  return SegmentationModel(head=head, num_classes=classes), variables
