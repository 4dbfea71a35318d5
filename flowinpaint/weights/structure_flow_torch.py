"""StructureFlow's official PyTorch weights (RenYurui/StructureFlow) as the Flax 'structure_flow'.

The authors' test.py (`--model 3`) loads two state dicts from `<path>/<name>/checkpoints/`:
`latest_net_s_gen.pth`, the structure reconstructor (`StructureGen`, our G_s under 'structure')
and `latest_net_f_gen.pth`, the texture generator (`FlowGen`, our G_t under 'texture'), each
written by `torch.save(net.state_dict(), ...)` ('latest' is their default WHICH_ITER; numbered
saves are `<iteration>_net_*.pth`). The discriminators (`*_net_s_dis.pth`, `*_net_f_dis.pth`)
are not needed to inpaint and are not read.

The architectures are ours layer for layer (models/structure_flow.py); what the conversion does:

* conv weights [out, in, kh, kw] -> [kh, kw, in, out];
* transposed convs (the flow column's 6x6/2 up-samplers) [in, out, kh, kw] -> [kh, kw, in, out]
  flipped in space: PyTorch's ConvTranspose2d scatters, lax's transposed conv correlates the
  dilated input, so the kernel is the spatial mirror;
* the conv column's LayerNorm affine (C, 1, 1) -> [C];
* G_s's spectral norm: each SN conv stores `weight_orig`, `weight_u`, `weight_v`; in eval mode
  the reference divides `weight_orig` by sigma = u . (W v) from the stored vectors, with no power
  iteration. The converter divides by that sigma and the model is built with
  `structure_spectral_norm=False` (plain convs), which computes exactly the reference's kernel.
  (Flax's SpectralNorm always runs a power-iteration step, which would give another sigma.)
  Files saved with torch's first spectral-norm version (state version 0) hold the normalised
  `weight` instead of `weight_v`, which eval mode used as it is; so does the converter.

The width (`dim`) and the ResBlocks per decoder scale (`n_res`) of each network are read from
the shapes: 64 and 4 (G_s), 64 and 2 (G_t) in the release.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any, Iterator, Mapping

import numpy as np

from flowinpaint.weights.deepfill_v2_torch import ConversionError, float32_tensor, mismatch_summary

S_GEN, F_GEN = 's_gen', 'f_gen'


def _res_blocks(flax: tuple[str, ...], torch: str, n_res: int, file: str
                ) -> Iterator[tuple[tuple[str, ...], tuple[str, str, str]]]:
  for j in range(n_res):
    for k in (1, 2):
      yield flax + (f'block{j}_conv{k}',), (file, f'{torch}.model.{j}.model.{k - 1}', 'block')


def module_table(n_res_s: int, n_res_t: int) -> dict[tuple[str, ...], tuple[str, str, str]]:
  """Flax module path -> (file, the reference's module name, kind).

  kind: 'block' (a `Conv2dBlock`: conv and, in the conv column, LayerNorm), 'sn' (a
  spectral-normalised `Conv2dBlock`) or 'deconv' (a `TransConv2dBlock`'s ConvTranspose2d).
  """
  t: dict[tuple[str, ...], tuple[str, str, str]] = {}
  s = ('structure',)
  t[s + ('input',)] = (S_GEN, 'input_layer', 'sn')
  for name, torch in (('down1a', '0.0'), ('down1b', '0.1'), ('down2a', '1.0'),
                      ('down2b', '1.1'), ('down3', '2.0')):
    t[s + (name,)] = (S_GEN, f'down_sample.{torch}', 'sn')
  for i in range(3):
    t.update(_res_blocks(s + (f'up{i + 1}_res',), f'up_sample.{i}.0', n_res_s, S_GEN))
    t[s + (f'up{i + 1}_conv',)] = (S_GEN, f'up_sample.{i}.2', 'sn')
    t[s + (f'skip{i + 1}',)] = (S_GEN, f'content_param.{i}', 'block')
  t[s + ('output',)] = (S_GEN, 'image_net.conv', 'block')

  f = ('texture', 'flow_column')
  for name, torch in (('down0a', '0.0'), ('down0b', '0.1'), ('down0c', '0.2'),
                      ('down1a', '1.0'), ('down1b', '1.1'), ('down2a', '2.0'),
                      ('down2b', '2.1'), ('down3a', '3.0'), ('down3b', '3.1')):
    t[f + (name,)] = (F_GEN, f'flow_column.down_sample_flow.{torch}', 'block')
  up = 'flow_column.up_sample_flow'
  t.update(_res_blocks(f + ('up1_res',), f'{up}.0.0', n_res_t, F_GEN))
  t[f + ('up1_deconv',)] = (F_GEN, f'{up}.0.1', 'deconv')
  t[f + ('up2_conv',)] = (F_GEN, f'{up}.1.0', 'block')
  t.update(_res_blocks(f + ('up2_res',), f'{up}.1.1', n_res_t, F_GEN))
  t[f + ('up2_deconv',)] = (F_GEN, f'{up}.1.2', 'deconv')
  t[f + ('location1',)] = (F_GEN, 'flow_column.location.0', 'block')
  t[f + ('location2',)] = (F_GEN, 'flow_column.location.1', 'block')

  c = ('texture', 'conv_column')
  for name, torch in (('down0a', '0.0'), ('down0b', '0.1'), ('down0c', '0.2'),
                      ('down0d', '0.3'), ('down0e', '0.4'), ('down1a', '1.0'),
                      ('down1b', '1.1')):
    t[c + (name,)] = (F_GEN, f'conv_column.down_sample.{torch}', 'block')
  up = 'conv_column.up_sample'
  t.update(_res_blocks(c + ('up1_res',), f'{up}.0.0', n_res_t, F_GEN))
  t[c + ('up1_conv',)] = (F_GEN, f'{up}.0.2', 'block')
  t[c + ('up2_conv',)] = (F_GEN, f'{up}.1.0', 'block')
  t.update(_res_blocks(c + ('up2_res',), f'{up}.1.1', n_res_t, F_GEN))
  t[c + ('up3_conv',)] = (F_GEN, f'{up}.1.3', 'block')
  t.update(_res_blocks(c + ('up3_res',), f'{up}.1.4', n_res_t, F_GEN))
  t[c + ('up4_conv',)] = (F_GEN, f'{up}.1.6', 'block')
  t[c + ('output',)] = (F_GEN, f'{up}.1.7.conv', 'block')
  return t


# Leaf names under a module: Flax (relative path) -> the reference's (relative name).
_LEAVES = {
    'block': {('conv', 'kernel'): 'conv.weight', ('conv', 'bias'): 'conv.bias',
              ('norm', 'scale'): 'norm.weight', ('norm', 'bias'): 'norm.bias'},
    'sn': {('conv', 'kernel'): 'conv.weight_orig', ('conv', 'bias'): 'conv.bias'},
    'deconv': {('kernel',): 'transConv.weight', ('bias',): 'transConv.bias'},
}


@functools.lru_cache(maxsize=None)
def flax_shapes(width_s: int = 64, n_res_s: int = 4, width_t: int = 64, n_res_t: int = 2
                ) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Parameter paths and shapes of G_s (plain convs) and G_t, nested as in 'structure_flow'."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.structure_flow import StructureReconstructor, TextureGenerator

  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  key = jax.random.key(0)
  trees = {
      'structure': jax.eval_shape(lambda a, b, c: StructureReconstructor(
          width_s, n_res_s, spectral_norm=False).init(key, a, b, c, train=False), x, x, m),
      'texture': jax.eval_shape(lambda a, b, c: TextureGenerator(width_t, n_res_t).init(
          key, a, b, c, train=False), x, x, m),
  }
  out = {}
  for top, tree in trees.items():
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree['params'])[0]:
      out[(top,) + tuple(k.key for k in path)] = tuple(leaf.shape)
  return out


def _split(path: tuple[str, ...], table) -> tuple[tuple[str, ...], tuple[str, ...]]:
  for n in range(len(path) - 1, 0, -1):
    if path[:n] in table:
      return path[:n], path[n:]
  raise KeyError(path)


def torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
  """The reference's shape of the tensor that becomes the Flax leaf `path` of `shape`."""
  if path[-1] == 'kernel':
    kh, kw, cin, cout = shape
    deconv = path[-2].endswith('_deconv')
    return (cin, cout, kh, kw) if deconv else (cout, cin, kh, kw)
  if path[-2:] in (('norm', 'scale'), ('norm', 'bias')):
    return (shape[0], 1, 1)
  return shape


def expected_state_dicts(width_s: int = 64, n_res_s: int = 4, width_t: int = 64,
                         n_res_t: int = 2) -> dict[str, dict[str, tuple[int, ...]]]:
  """{'s_gen': {name: shape}, 'f_gen': {...}}: the state dicts the reference saves."""
  table = module_table(n_res_s, n_res_t)
  out: dict[str, dict[str, tuple[int, ...]]] = {S_GEN: {}, F_GEN: {}}
  for path, shape in flax_shapes(width_s, n_res_s, width_t, n_res_t).items():
    module, leaf = _split(path, table)
    file, prefix, kind = table[module]
    shp = torch_shape(path, shape)
    out[file][f'{prefix}.{_LEAVES[kind][leaf]}'] = shp
    if kind == 'sn' and leaf == ('conv', 'kernel'):
      out[file][f'{prefix}.conv.weight_u'] = (shp[0],)
      out[file][f'{prefix}.conv.weight_v'] = (int(np.prod(shp[1:])),)
  return out


def strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """A state dict without nn.DataParallel's 'module.' prefix (when every name has it)."""
  if state_dict and all(k.startswith('module.') for k in state_dict):
    return {k[len('module.'):]: v for k, v in state_dict.items()}
  return dict(state_dict)


def _count_res_blocks(state_dict: Mapping[str, Any], prefix: str) -> int:
  pattern = re.compile(re.escape(prefix) + r'\.model\.(\d+)\.')
  found = {int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m}
  return max(found) + 1 if found else 0


def infer_sizes(s_gen: Mapping[str, Any], f_gen: Mapping[str, Any]) -> dict[str, int]:
  """{'width_s', 'n_res_s', 'width_t', 'n_res_t'} from the tensors' shapes and names."""
  try:
    width_s = int(np.shape(s_gen['input_layer.conv.weight_orig'])[0])
  except KeyError:
    raise ConversionError(_not_a('structure reconstructor (StructureGen)', s_gen,
                                 'input_layer.conv.weight_orig')) from None
  try:
    width_t = 2 * int(np.shape(f_gen['flow_column.down_sample_flow.0.0.conv.weight'])[0])
  except KeyError:
    raise ConversionError(_not_a('texture generator (FlowGen)', f_gen,
                                 'flow_column.down_sample_flow.0.0.conv.weight')) from None
  return {'width_s': width_s, 'n_res_s': _count_res_blocks(s_gen, 'up_sample.0.0'),
          'width_t': width_t,
          'n_res_t': _count_res_blocks(f_gen, 'flow_column.up_sample_flow.0.0')}


def _not_a(what: str, state_dict: Mapping[str, Any], key: str) -> str:
  some = ', '.join(sorted(state_dict)[:3]) or 'no tensors'
  return f'not a StructureFlow {what} state dict: it has no {key} (it has {some})'


def sn_sigma(weight: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
  """The reference's eval-mode sigma: u . (W v), W the weight as [out, in * kh * kw]."""
  w = np.asarray(weight, np.float64).reshape(weight.shape[0], -1)
  return float(np.dot(np.asarray(u, np.float64), w @ np.asarray(v, np.float64)))


def convert_generators(s_gen: Mapping[str, Any], f_gen: Mapping[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, int]]:
  """The two state dicts -> (`{'params': {'structure': ..., 'texture': ...}}`, sizes).

  `sizes` is `infer_sizes`' dict. Raises ConversionError naming missing, unexpected or
  mis-shaped tensors (each file separately).
  """
  dicts = {S_GEN: strip_prefix(s_gen), F_GEN: strip_prefix(f_gen)}
  sizes = infer_sizes(dicts[S_GEN], dicts[F_GEN])
  expected = expected_state_dicts(**sizes)
  table = module_table(sizes['n_res_s'], sizes['n_res_t'])
  # Spectral norm state version 0 (early torch): weight_orig, weight_u and the normalised
  # `weight`, which eval mode used directly; no weight_v.
  old_sn = set()
  for file, prefix, kind in table.values():
    names = expected[file]
    if (kind == 'sn' and f'{prefix}.conv.weight_v' not in dicts[file]
        and f'{prefix}.conv.weight' in dicts[file]):
      old_sn.add(prefix)
      del names[f'{prefix}.conv.weight_v']
      names[f'{prefix}.conv.weight'] = names[f'{prefix}.conv.weight_orig']
  what = {S_GEN: 'structure reconstructor (StructureGen)', F_GEN: 'texture generator (FlowGen)'}
  for file in (S_GEN, F_GEN):
    missing = sorted(set(expected[file]) - set(dicts[file]))
    unexpected = sorted(set(dicts[file]) - set(expected[file]))
    if missing or unexpected:
      raise ConversionError(f'{file}: not a StructureFlow {what[file]} state dict as '
                            f'released: {mismatch_summary(missing, unexpected)} tensor names')
    for name, shape in expected[file].items():
      value = float32_tensor(f'{file}: {name}', dicts[file][name])
      if value.shape != shape:
        raise ConversionError(f'{file}: {name} has shape {value.shape}, expected {shape}')

  params: dict[str, Any] = {}
  for path in flax_shapes(**sizes):
    module, leaf = _split(path, table)
    file, prefix, kind = table[module]
    name = f'{prefix}.{_LEAVES[kind][leaf]}'
    value = np.asarray(dicts[file][name]).astype(np.float32)
    if kind == 'sn' and leaf == ('conv', 'kernel') and prefix in old_sn:
      value = np.asarray(dicts[file][f'{prefix}.conv.weight']).astype(np.float32)
    elif kind == 'sn' and leaf == ('conv', 'kernel'):
      sigma = sn_sigma(value, dicts[file][f'{prefix}.conv.weight_u'],
                       dicts[file][f'{prefix}.conv.weight_v'])
      if not np.isfinite(sigma) or sigma <= 0:
        raise ConversionError(f'{file}: {prefix}: spectral norm sigma = u . (W v) is {sigma}, '
                              'not a positive number (corrupt weight_u / weight_v?)')
      value = (value.astype(np.float64) / sigma).astype(np.float32)
    if leaf[-1] == 'kernel':
      if kind == 'deconv':
        value = value[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # [in, out, kh, kw], mirrored
      else:
        value = value.transpose(2, 3, 1, 0)  # [out, in, kh, kw]
    value = np.ascontiguousarray(value.reshape(flax_shapes(**sizes)[path]))
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return {'params': params}, sizes


# --- The `convert` importer: the authors' checkpoint folder (or one of its files) -> Converted.

_FILE = re.compile(r'^(?P<iteration>.+)_net_(?P<net>s_gen|f_gen)\.pth$')
_WHAT = {S_GEN: 'the structure reconstructor', F_GEN: 'the texture generator'}


def _saves(folder: str) -> dict[str, dict[str, str]]:
  """iteration -> {'s_gen': path, 'f_gen': path} for the `<iteration>_net_*_gen.pth` in folder."""
  out: dict[str, dict[str, str]] = {}
  for name in sorted(os.listdir(folder)):
    m = _FILE.match(name)
    if m and os.path.isfile(os.path.join(folder, name)):
      out.setdefault(m['iteration'], {})[m['net']] = os.path.join(folder, name)
  return out


def find_files(path: str) -> dict[str, str]:
  """{'s_gen': path, 'f_gen': path} from what the user named (raises UserError).

  `path`: the authors' checkpoints folder (`results/places/checkpoints`), the experiment
  folder above it, or one of the two files (its partner is looked up next to it). In a folder,
  'latest' wins (test.py's default WHICH_ITER); otherwise there must be one complete save.
  """
  from flowinpaint.errors import UserError
  expect = ('give the authors\' checkpoints folder holding latest_net_s_gen.pth and '
            'latest_net_f_gen.pth (or <iteration>_net_s_gen.pth and _net_f_gen.pth), or one '
            'of those files')
  if not os.path.exists(path):
    raise UserError(f'{path!r} does not exist; {expect}')
  if os.path.isfile(path):
    m = _FILE.match(os.path.basename(path))
    if not m:
      raise UserError(f'{path!r} is not named like a StructureFlow generator file; {expect}')
    files = _saves(os.path.dirname(os.path.abspath(path))).get(m['iteration'], {})
    iteration = m['iteration']
  else:
    folder = path
    saves = _saves(folder)
    if not saves and os.path.isdir(os.path.join(path, 'checkpoints')):
      folder = os.path.join(path, 'checkpoints')
      saves = _saves(folder)
    # Iterations in numeric order (as the authors' natsort), 'latest' and other names last.
    order = lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)
    complete = sorted((k for k, v in saves.items() if len(v) == 2), key=order)
    if 'latest' in complete:
      iteration = 'latest'
    elif len(complete) == 1:
      iteration = complete[0]
    elif complete:
      example = os.path.join(folder, f'{complete[-1]}_net_f_gen.pth')
      raise UserError(f'{folder!r} holds several StructureFlow saves ({", ".join(complete)}); '
                      f'pass one file, e.g. {example}')
    elif saves:
      iteration = 'latest' if 'latest' in saves else sorted(saves, key=order)[-1]
    else:
      raise UserError(f'{folder!r} holds no latest_net_s_gen.pth / latest_net_f_gen.pth; {expect}')
    files = saves.get(iteration, {})
  for net in (S_GEN, F_GEN):
    if net not in files:
      have = ', '.join(os.path.basename(p) for p in files.values())
      raise UserError(f'{iteration}_net_{net}.pth ({_WHAT[net]}) is missing next to {have} in '
                      f'{os.path.dirname(os.path.abspath(next(iter(files.values()))))!r}; '
                      f'StructureFlow needs both {iteration}_net_s_gen.pth and '
                      f'{iteration}_net_f_gen.pth')
  return files


def read_state_dict(path: str) -> Mapping[str, Any]:
  """The state dict in one of the authors' .pth files (as saved, or wrapped in one dict)."""
  from flowinpaint.errors import UserError
  from flowinpaint.weights import torch_pickle
  obj = torch_pickle.load_file(path)
  is_sd = lambda d: (isinstance(d, Mapping) and d and all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in d.items()))
  if is_sd(obj):
    return obj
  inner = [v for v in obj.values() if is_sd(v)] if isinstance(obj, Mapping) else []
  if len(inner) == 1:
    return inner[0]
  raise UserError(f'{path!r} holds a {type(obj).__name__}, not a state dict (tensor names to '
                  'tensors)')


def convert_checkpoint(path: str, options: Any, fmt: str) -> Any:
  """`convert` importer 'structure_flow_pth': the authors' two generators -> 'structure_flow'.

  The checkpoint's config is configs/structure_flow_stage3.py (or --config) with the widths and
  ResBlock counts of the files, `structure_spectral_norm=False`, and the authors' RTV recipe for
  a damaged image (mask mode 'gradients', no dilation, zero-padded blur); the discriminator is
  fresh (the release has none).
  """
  from flowinpaint import convert
  from flowinpaint.errors import UserError
  if options.variant is not None:
    raise UserError("--variant is DeepFill v2's (contextual attention); structure_flow_pth has "
                    'no variants')
  files = find_files(path)
  dicts = {net: read_state_dict(p) for net, p in files.items()}
  try:
    g_vars, sizes = convert_generators(dicts[S_GEN], dicts[F_GEN])
  except ConversionError as e:
    raise UserError(f'{os.path.dirname(os.path.abspath(files[S_GEN]))!r}: {e}') from e
  default = os.path.join(convert._CONFIGS, 'structure_flow_stage3.py')  # pylint: disable=W0212
  config_path = options.config_path or default
  config = convert.load_config(config_path)
  if config.model.name != 'structure_flow':
    raise UserError(f'--config {config_path!r} is for model {config.model.name!r}, not '
                    'structure_flow')
  config.model.width = sizes['width_t']
  config.model.structure_width = sizes['width_s'] if sizes['width_s'] != sizes['width_t'] else 0
  config.model.n_res = sizes['n_res_s']
  config.model.texture_n_res = sizes['n_res_t']
  config.model.structure_spectral_norm = False
  # The authors' test-time structure of a damaged image: tsmooth(I_in, ..., mask) of their
  # scripts/matlab/code/tsmooth.m (issue #27; zero-padded blur, no dilation).
  config.model.rtv_mask_mode = 'gradients'
  config.model.rtv_mask_dilation = 0
  config.model.rtv_blur_padding = 'zero'
  print('note: the StructureFlow release holds no discriminator; fine-tuning starts from a '
        'fresh one', file=sys.stderr)
  source = {'format': fmt, 'files': [os.path.basename(files[S_GEN]),
                                     os.path.basename(files[F_GEN])],
            'spectral_norm': 'folded into the structure kernels (eval-mode sigma)'}
  summary = (f"StructureFlow: G_s width {sizes['width_s']}, {sizes['n_res_s']} ResBlocks; "
             f"G_t width {sizes['width_t']}, {sizes['n_res_t']} ResBlocks")
  return convert.Converted(config, g_vars, None, source, summary=summary)
