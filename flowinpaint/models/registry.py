"""Model registry: a name -> (generator, discriminator) factory table.

Every inpainting system the trainer can train registers here. The contract:

* generator: a Linen module, `__call__(image, mask, *, train: bool) -> dict` where `image` is
  the ground-truth-sized image in [-1, 1] (NHWC, 3 channels) and `mask` is NHW1 with 1 = hole.
  The generator masks the image itself (the hole content never leaks in). The dict holds
  `'output'` (the final prediction, not composited) and optionally `'coarse'` (an earlier
  stage's prediction, trained with the same reconstruction loss) and `'offsets'`.
* discriminator: a Linen module, `__call__(image, mask, *, train: bool) -> logits` (any shape;
  every element is one real/fake score), or None for models trained without one.
* Both may keep state in the `batch_stats` collection (BatchNorm, spectral-norm power
  iteration); the trainer threads it through the step.
* `multiple`: input height and width must be a multiple of this (the inpaint tool pads).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  # (config.model, compute dtype) -> module. Factories read knobs with .get(key, default).
  make_generator: Callable[[Any, Any], nn.Module]
  make_discriminator: Optional[Callable[[Any, Any], nn.Module]]
  multiple: int


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
  if spec.name in _REGISTRY:
    raise ValueError(f"model {spec.name!r} is registered twice")
  _REGISTRY[spec.name] = spec
  return spec


def get(name: str) -> ModelSpec:
  _import_builtin_models()
  if name not in _REGISTRY:
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
  return _REGISTRY[name]


def names() -> list[str]:
  _import_builtin_models()
  return sorted(_REGISTRY)


def _import_builtin_models() -> None:
  # Importing a model module registers it; missing optional modules are skipped.
  import importlib
  for module in ("deepfill_v2", "deepfill_v1", "glcic", "pconv_unet", "structure_flow",
                 "flow_estimation", "flow_completion", "flownet2",
                 "edge_connect"):
    try:
      importlib.import_module(f"flowinpaint.models.{module}")
    except ModuleNotFoundError as e:
      if e.name != f"flowinpaint.models.{module}":
        raise
