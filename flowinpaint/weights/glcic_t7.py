"""GLCIC's completion network from the authors' Torch7 model (siggraph2017_inpainting).

`completionnet_places2.t7` (and the later `completionnet_places2_freeform.t7` and
`completionnet_celeba.t7`, if they share the layout) is `torch.save` of a Lua table
`{model = nn.Sequential, mean = FloatTensor(3)}` (read by flowinpaint.weights.torch7, no Lua):

* `mean`: the training set's mean pixel, RGB in [0, 1]; inpaint.lua subtracts it from the
  [0, 1] image, zeroes the holes and appends the mask as a 4th channel;
* `model`: 50 modules, each of the 17 layers a convolution followed, except the last, by
  `nn.SpatialBatchNormalization` and `nn.ReLU`; the last by `nn.Sigmoid` (output RGB in [0, 1]).
  The convolutions are `nn.SpatialConvolution` (layers 1-4, 14, 16, 17),
  `nn.SpatialDilatedConvolution` (5-12, dilation 1, 1, 2, 4, 8, 16, 1, 1) and
  `nn.SpatialFullConvolution` (13, 15: 4x4, stride 2, padding 1), all padded (k - 1) / 2 *
  dilation on every side.

Layouts: a convolution's weight is [out, in, kh, kw] (`SpatialConvolutionMM` may store it as
[out, in * kh * kw]) and Flax's [kh, kw, in, out]; a full (transposed) convolution's is
[in, out, kh, kw] and is spatially flipped for Flax's ConvTranspose (which correlates with its
kernel over the stride-dilated input, where Torch scatters with it). BatchNorm's weight, bias,
running_mean and running_var are Flax's scale, bias, mean and var; a file's eps other than Flax's
1e-5 is folded into var.

The converted model is `CompletionNetwork(variant='official', fill_value=2 * mean - 1)`, which
takes the official network's input layout (see models/glcic.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import numpy as np

from flowinpaint.weights import torch7
from flowinpaint.weights.deepfill_v2_torch import ConversionError

FLAX_BN_EPS = 1e-5
_CONV = ('SpatialConvolution', 'SpatialConvolutionMM', 'SpatialDilatedConvolution')
_FULL_CONV = ('SpatialFullConvolution',)
_BN = ('SpatialBatchNormalization',)
_RELU = ('ReLU',)
_SIGMOID = ('Sigmoid',)


def _is(module: Any, names: tuple[str, ...]) -> bool:
  """nn.X or cudnn.X (cudnn's modules keep nn's fields)."""
  return isinstance(module, torch7.TorchObject) and module.typename in (
      {f'nn.{n}' for n in names} | {f'cudnn.{n}' for n in names})


def _typename(module: Any) -> str:
  return module.typename if isinstance(module, torch7.TorchObject) else type(module).__name__


def _int(module: torch7.TorchObject, field: str, default: Optional[int] = None) -> int:
  value = module.get(field, default)
  if not isinstance(value, (int, float)) or float(value) != int(value):
    raise ConversionError(f'{module.typename} has no integer field {field!r}')
  return int(value)


def _array(module: torch7.TorchObject, field: str, shape: tuple[int, ...], where: str,
           optional: bool = False) -> Optional[np.ndarray]:
  value = module.get(field)
  if value is None or (isinstance(value, np.ndarray) and value.size == 0 and optional):
    if optional:
      return None
    raise ConversionError(f'{where} ({module.typename}) has no {field}')
  if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
    raise ConversionError(f'{where} ({module.typename}) {field} is not a floating-point tensor')
  if value.size != int(np.prod(shape)):
    raise ConversionError(f'{where} ({module.typename}) {field} has shape {value.shape}, '
                          f'expected {shape}')
  value = value.reshape(shape).astype(np.float32)
  if not np.all(np.isfinite(value)):
    raise ConversionError(f'{where} ({module.typename}) {field} holds NaN or infinite values')
  return value


def modules_of(model: Any) -> list:
  """The module list of an nn.Sequential (Lua's 1-based array -> a Python list)."""
  if not _is(model, ('Sequential',)):
    raise ConversionError(f'the model is a {_typename(model)}, not the nn.Sequential of the '
                          'official completion network')
  table = model.get('modules')
  if not isinstance(table, dict) or sorted(table) != list(range(1, len(table) + 1)):
    raise ConversionError('the nn.Sequential has no module list')
  return [table[i] for i in range(1, len(table) + 1)]


def layer_plan(width: float = 1.0) -> list[tuple[str, str, int, int, int, int, int]]:
  """(flax name, kind, in, out, kernel, stride, dilation) of the completion network's layers."""
  from flowinpaint.models.glcic import _COMPLETION_LAYERS
  plan, cin = [], 4
  for i, (kind, feats, k, s, d) in enumerate(_COMPLETION_LAYERS):
    if kind != 'o':
      feats = max(1, round(feats * width))
    name = {'c': f'conv{i + 1}', 't': f'deconv{i + 1}', 'o': 'out'}[kind]
    plan.append((name, kind, cin, feats, k, s, d))
    cin = feats
  return plan


def _check_conv(module, where: str, kind: str, cin: int, cout: int, k: int, s: int,
                d: int) -> None:
  classes = _FULL_CONV if kind == 't' else _CONV
  if not _is(module, classes):
    raise ConversionError(f'{where} is a {_typename(module)}, expected '
                          f'nn.{" or nn.".join(classes)}')
  pad = 1 if kind == 't' else d * (k - 1) // 2
  got = tuple(_int(module, f) for f in ('nInputPlane', 'nOutputPlane', 'kH', 'kW', 'dH', 'dW',
                                        'padH', 'padW'))
  want = (cin, cout, k, k, s, s, pad, pad)
  dil = (_int(module, 'dilationH', 1), _int(module, 'dilationW', 1))
  adj = (_int(module, 'adjH', 0), _int(module, 'adjW', 0))
  if got != want or dil != (d, d) or adj != (0, 0):
    names = 'in, out, kH, kW, dH, dW, padH, padW'
    raise ConversionError(f'{where} ({module.typename}) has ({names}) = {got}, dilation '
                          f'{dil}, adj {adj}; the official network has {want}, dilation '
                          f'{(d, d)}, adj (0, 0)')


def convert_model(model: Any, width: float = 1.0) -> dict[str, Any]:
  """The official nn.Sequential -> `{'params', 'batch_stats'}` of CompletionNetwork(width)."""
  modules = modules_of(model)
  plan = layer_plan(width)
  expected = 3 * (len(plan) - 1) + 2
  if len(modules) != expected:
    raise ConversionError(f'the nn.Sequential has {len(modules)} modules; the official '
                          f'completion network has {expected} (17 convolutions, 16 BatchNorm '
                          '+ ReLU, a Sigmoid)')
  params: dict[str, Any] = {}
  stats: dict[str, Any] = {}
  pos = 0
  for n, (name, kind, cin, cout, k, s, d) in enumerate(plan):
    conv = modules[pos]
    where = f'module {pos + 1}'
    _check_conv(conv, where, kind, cin, cout, k, s, d)
    if kind == 't':
      weight = _array(conv, 'weight', (cin, cout, k, k), where)
      kernel = weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
    else:
      weight = _array(conv, 'weight', (cout, cin, k, k), where)
      kernel = weight.transpose(2, 3, 1, 0)
    bias = _array(conv, 'bias', (cout,), where, optional=True)
    params[name] = {'kernel': np.ascontiguousarray(kernel),
                    'bias': np.zeros(cout, np.float32) if bias is None else bias}
    if kind == 'o':
      if not _is(modules[pos + 1], _SIGMOID):
        raise ConversionError(f'module {pos + 2} is a {_typename(modules[pos + 1])}, expected '
                              'nn.Sigmoid')
      break
    bn, relu = modules[pos + 1], modules[pos + 2]
    if not _is(bn, _BN):
      raise ConversionError(f'module {pos + 2} is a {_typename(bn)}, expected '
                            'nn.SpatialBatchNormalization')
    if not _is(relu, _RELU):
      raise ConversionError(f'module {pos + 3} is a {_typename(relu)}, expected nn.ReLU')
    params[f'bn{n + 1}'], stats[f'bn{n + 1}'] = _batch_norm(bn, f'module {pos + 2}', cout)
    pos += 3
  return {'params': params, 'batch_stats': stats}


def _batch_norm(bn: torch7.TorchObject, where: str, n: int) -> tuple[dict, dict]:
  eps = float(bn.get('eps', 1e-5))
  mean = _array(bn, 'running_mean', (n,), where)
  var = _array(bn, 'running_var', (n,), where, optional=True)
  if var is None:
    # Files of nn before 2016 keep running_std = 1 / sqrt(var + eps) instead.
    std = _array(bn, 'running_std', (n,), where)
    var = (1.0 / np.square(std.astype(np.float64)) - eps).astype(np.float32)
  scale = _array(bn, 'weight', (n,), where, optional=True)
  bias = _array(bn, 'bias', (n,), where, optional=True)
  # Flax normalises with var + 1e-5: move the file's eps into var.
  var = (var.astype(np.float64) + eps - FLAX_BN_EPS).astype(np.float32)
  if np.any(var <= 0):
    raise ConversionError(f'{where} has a non-positive running variance')
  return ({'scale': np.ones(n, np.float32) if scale is None else scale,
           'bias': np.zeros(n, np.float32) if bias is None else bias},
          {'mean': mean, 'var': var})


def mean_pixel(obj: Any) -> np.ndarray:
  """The file's mean pixel, RGB in [0, 1]."""
  mean = obj.get('mean') if isinstance(obj, dict) else None
  if not isinstance(mean, np.ndarray) or mean.size != 3:
    raise ConversionError('the file holds no mean pixel (the official files are a table '
                          '{model = nn.Sequential, mean = 3 values})')
  mean = mean.reshape(3).astype(np.float64)
  if not np.all((mean >= 0) & (mean <= 1)):
    raise ConversionError(f'its mean pixel {mean.tolist()} is not in [0, 1]')
  return mean


def read(path: str) -> tuple[dict[str, Any], np.ndarray]:
  """(CompletionNetwork variables, mean pixel RGB in [0, 1]) from an official .t7 file."""
  from flowinpaint.errors import UserError
  if not os.path.exists(path):
    raise UserError(f'model file {path!r} does not exist')
  try:
    obj = torch7.load(path)
  except torch7.T7Error as e:
    raise UserError(f'{path!r} is not a Torch7 file this reader can read: {e}') from e
  except OSError as e:
    raise UserError(f'cannot read {path!r}: {e}') from e
  try:
    if isinstance(obj, torch7.TorchObject):
      raise ConversionError(f'it holds a bare {obj.typename}; the official files are a table '
                            '{model = nn.Sequential, mean = 3 values}')
    if not isinstance(obj, dict) or 'model' not in obj:
      raise ConversionError(f'it holds a {_typename(obj)} without a model; the official files '
                            'are a table {model = nn.Sequential, mean = 3 values}')
    return convert_model(obj['model']), mean_pixel(obj)
  except ConversionError as e:
    raise UserError(f'{path!r} is not the official GLCIC completion network: {e}') from e


def convert(path: str, options, fmt: str):
  """`--from glcic_t7`: the official Torch7 model -> a glcic checkpoint (variant 'official')."""
  from flowinpaint import convert as convert_lib
  from flowinpaint.errors import UserError
  config_path = options.config_path or os.path.join(convert_lib._CONFIGS, 'glcic.py')
  config = convert_lib.load_config(config_path)
  if config.model.name != 'glcic':
    raise UserError(f'--config {config_path!r} is for model {config.model.name!r}, not glcic')
  if options.variant is not None:
    raise UserError('--variant is for DeepFill v2; GLCIC runs as the official network')
  g_vars, mean = read(path)
  config.model.width = 1.0
  config.model.variant = 'official'
  config.model.fill_value = tuple(float(2 * m - 1) for m in mean)
  config.model.fill_from_data_mean = False
  print('note: the file holds no discriminators; fine-tuning starts from fresh ones',
        file=sys.stderr)
  source = {'format': fmt, 'file': os.path.basename(path), 'variant': 'official',
            'mean_pixel': [float(m) for m in mean], 'discriminator': 'fresh'}
  return convert_lib.Converted(config, g_vars, None, source,
                               summary='GLCIC, official Torch7 network (mean '
                               + ', '.join(f'{m:.4f}' for m in mean) + ')')
