"""DeepFill v2 weights from nipponjo/deepfillv2-pytorch's TF-compatible generator.

`states_tf_places2.pth` / `states_tf_celebahq.pth` are the official TF release converted to the
port's `model/networks_tf.py::Generator(cnum_in=5, cnum=48)`; `torch.load(f)['G']` is the
generator's state dict with flat names: `conv1.conv.weight` ... `conv17.conv.bias` (coarse),
`xconv*` (hallucination branch), `pmconv*` (attention branch), `allconv11` ... `allconv17`, and
`*_upsample.conv.conv.*` for the upsampling convs (nearest x2 + gated conv). The same names as
the Flax generator, by design; only the layout differs:

* a conv weight is `[out, in, kh, kw]` in torch and `[kh, kw, in, out]` in Flax;
* a gated conv's output channels are [features | gates] in both, so nothing is permuted;
* padding is TF 'SAME' in both (the port pads by hand to match TF).

Which contextual attention the weights are run with matters (`VARIANTS`):

* 'port': as the port runs them: no score fusion (`fuse=False` at its Generator's call site)
  and 1e-4 added per element inside the patch norm. Reproduces the port's outputs.
* 'tf': as the official TF model (the one the weights were trained with): fusion on, norm
  max(||w||, 1e-4). Differs from TF only in the 1/2 downscale inside the attention (every 2nd
  pixel here; TF's align_corners resize picks odd rows in the second half).

The files of the port's other generator (`model/networks.py`, names `stage1.*` / `stage2.*`,
fine-tuned with PyTorch padding) are a different architecture and are refused.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

CNUM = 48
VARIANTS = {
    'port': {'ca_fuse': False, 'ca_patch_norm': 'add'},
    'tf': {'ca_fuse': True, 'ca_patch_norm': 'max'},
}


class ConversionError(ValueError):
  """The state dict does not fit the generator (the message is one line for the user)."""


@functools.lru_cache(maxsize=None)
def _flax_shapes(cnum: int = CNUM) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Parameter paths and shapes of DeepFillV2Generator(cnum), without computing anything."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.deepfill_v2 import DeepFillV2Generator

  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda x, m: DeepFillV2Generator(cnum=cnum).init(
      jax.random.key(0), x, m, train=False), image, mask)
  flat = jax.tree_util.tree_flatten_with_path(shapes['params'])[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def torch_name(path: tuple[str, ...]) -> str:
  """Flax param path -> the port's state-dict key, e.g.

  ('conv1', 'conv', 'kernel') -> 'conv1.conv.weight';
  ('conv13_upsample', 'gated_conv', 'conv', 'bias') -> 'conv13_upsample.conv.conv.bias'.
  """
  *modules, leaf = path
  modules = ['conv' if m == 'gated_conv' else m for m in modules]
  return '.'.join(modules + [{'kernel': 'weight', 'bias': 'bias'}[leaf]])


def generator_state_dict(obj: Any) -> Mapping[str, np.ndarray]:
  """The generator state dict inside a loaded `.pth` object ({'G': ...} or the dict itself)."""
  if not isinstance(obj, Mapping):
    raise ConversionError(f'the file holds a {type(obj).__name__}, not a state dict')
  if 'G' in obj and isinstance(obj['G'], Mapping):
    obj = obj['G']
  if not obj or not all(isinstance(k, str) for k in obj):
    raise ConversionError('the file holds no state dict (expected tensor names as keys)')
  if any(k.startswith(('stage1.', 'stage2.')) for k in obj):
    raise ConversionError(
        "this is a state dict of the port's model/networks.py generator (names 'stage1.*'), "
        "fine-tuned with PyTorch padding; only the TF-compatible files (states_tf_*.pth, "
        "model/networks_tf.py) are supported")
  return obj


def convert_generator(state_dict: Mapping[str, Any], *, cnum: int = CNUM) -> dict[str, Any]:
  """Port state dict -> `{'params': ...}` of `DeepFillV2Generator(cnum)` (float32 numpy).

  Raises ConversionError naming missing, unexpected or mis-shaped tensors.
  """
  state_dict = generator_state_dict(state_dict)
  shapes = _flax_shapes(cnum)
  expected = {torch_name(p): p for p in shapes}
  missing = sorted(set(expected) - set(state_dict), key=_layer_order)
  unexpected = sorted(set(state_dict) - set(expected), key=_layer_order)
  if missing or unexpected:
    raise ConversionError('not a DeepFill v2 (networks_tf.py, cnum=48) generator state dict: '
                          + mismatch_summary(missing, unexpected) + ' tensor names')
  params: dict[str, Any] = {}
  for name, path in expected.items():
    value = float32_tensor(name, state_dict[name])
    if path[-1] == 'kernel':
      if value.ndim != 4:
        raise ConversionError(f'{name} has shape {value.shape}, expected a 4-d conv weight')
      value = value.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
    if value.shape != shapes[path]:
      raise ConversionError(f'{name} has shape {_torch_shape(value, path)}, expected '
                            f'{_torch_shape(np.empty(shapes[path]), path)}')
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return {'params': params}


def _torch_shape(value: np.ndarray, path: tuple[str, ...]) -> tuple[int, ...]:
  return tuple(value.transpose(3, 2, 0, 1).shape) if path[-1] == 'kernel' else value.shape


def _some(names: list[str], n: int = 3) -> str:
  return ', '.join(names[:n]) + (', ...' if len(names) > n else '')


def float32_tensor(name: str, value: Any, error: type[Exception] = ConversionError
                   ) -> np.ndarray:
  """A checkpoint tensor (any float dtype, bfloat16 included) as finite float32, else `error`."""
  value = np.asarray(value)
  if not (np.issubdtype(value.dtype, np.floating) or value.dtype.name == 'bfloat16'):
    raise error(f'{name} has dtype {value.dtype}, expected floating point')
  value = value.astype(np.float32)
  if not np.all(np.isfinite(value)):
    raise error(f'{name} holds NaN or infinite values')
  return value


def torch_tensor_as_flax(name: str, value: Any, flax_shape: tuple[int, ...],
                         error: type[Exception] = ConversionError) -> np.ndarray:
  """A state-dict tensor as a float32 Flax array of `flax_shape`, or `error` saying what is wrong.

  The shape is checked in PyTorch's layout (a 4-d conv weight [out, in, kh, kw] becomes Flax's
  [kh, kw, in, out]); the tensor must be floating point and finite.
  """
  value = np.asarray(value)
  want = (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1]) if len(
      flax_shape) == 4 else tuple(flax_shape)
  if value.shape != want:
    raise error(f"{name} has shape {value.shape}, expected {want}")
  value = float32_tensor(name, value, error)
  return np.ascontiguousarray(value.transpose(2, 3, 1, 0)) if value.ndim == 4 else value


def mismatch_summary(missing: list[str], unexpected: list[str]) -> str:
  """'2 missing (a, b); 1 unexpected (c)': the first few names of each kind."""
  parts = []
  if missing:
    parts.append(f'{len(missing)} missing ({_some(missing)})')
  if unexpected:
    parts.append(f'{len(unexpected)} unexpected ({_some(unexpected)})')
  return '; '.join(parts)


def _layer_order(name: str) -> tuple[int, str]:
  prefix = name.split('.')[0]
  digits = ''.join(ch for ch in prefix if ch.isdigit())
  return (int(digits) if digits else 0, name)
