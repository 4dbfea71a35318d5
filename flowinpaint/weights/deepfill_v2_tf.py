"""DeepFill v2 weights from the official TensorFlow release (JiahuiYu/generative_inpainting v2.0.0).

The release's checkpoints (`snap-0.index` + `snap-0.data-00000-of-00001`, read by
flowinpaint.weights.tf_checkpoint) hold the graph of `inpaint_model.py`:

* generator, under `inpaint_net/`: `tf.layers.conv2d` kernels and biases named after the layers,
  `inpaint_net/conv1/kernel` ... `inpaint_net/conv17/bias`, `xconv*`, `pmconv*`, `allconv*`; an
  upsampling layer `gen_deconv(name='conv13_upsample')` nests its conv as
  `inpaint_net/conv13_upsample/conv13_upsample_conv/kernel`. Flax's layer names are the same.
* discriminator, under `discriminator/sn_patch_gan/`: `conv1` ... `conv6` kernels and biases,
  and each spectral norm's power-iteration vector `conv{i}/kernel_sn/u` ([1, out]).
* the optimiser's slots (`.../kernel/Adam`, `.../kernel/Adam_1`, `beta1_power`, ...), ignored.

The layouts are Flax's already: kernels [kh, kw, in, out], gated convs' outputs
[features | gates], TF 'SAME' padding. One thing differs: the release was trained on images read
with OpenCV, i.e. in **BGR** order (its test.py feeds cv2.imread and reverses the output), while
flowinpaint's models take RGB. The converter therefore reverses the colour channels where
images enter (conv1, xconv1, pmconv1 and the discriminator's conv1: input channels 0-2; the
ones and mask channels stay) and leave (conv17, allconv17: output channels and biases), so the
converted generator on an RGB image computes exactly what the release computes on its BGR twin.

Run with the TF model's contextual attention (`VARIANTS['tf']`: score fusion on, patch norm
max(|w|, 1e-4)); see flowinpaint.weights.deepfill_v2_torch for the variants.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import numpy as np

from flowinpaint.weights.deepfill_v2_torch import (CNUM, ConversionError, _flax_shapes, _some,
                                                  float32_tensor, mismatch_summary)

G_SCOPE = 'inpaint_net'
D_SCOPE = 'discriminator/sn_patch_gan'
D_CNUM = 64
# Slot variables a TF optimiser keeps next to each weight (`<weight>/<slot>`): not weights.
_OPTIMIZER_SLOTS = frozenset({'Adam', 'Adam_1', 'Momentum', 'RMSProp', 'RMSProp_1', 'Adagrad',
                              'ExponentialMovingAverage'})
# Layers whose input channels 0-2 / outputs are image colours (BGR in the release).
_COLOUR_IN = frozenset({'conv1', 'xconv1', 'pmconv1'})
_COLOUR_OUT = frozenset({'conv17', 'allconv17'})


def tf_name(path: tuple[str, ...]) -> str:
  """Flax generator param path -> the release's variable name, e.g.

  ('conv1', 'conv', 'kernel') -> 'inpaint_net/conv1/kernel';
  ('conv13_upsample', 'gated_conv', 'conv', 'bias') ->
  'inpaint_net/conv13_upsample/conv13_upsample_conv/bias'.
  """
  layer, *inner, leaf = path
  if inner == ['conv']:
    return f'{G_SCOPE}/{layer}/{leaf}'
  if inner == ['gated_conv', 'conv']:
    return f'{G_SCOPE}/{layer}/{layer}_conv/{leaf}'
  raise ValueError(f'no TF name for generator parameter {"/".join(path)}')


def is_weight(name: str) -> bool:
  """Whether a checkpoint variable is a model weight (not an optimiser slot or counter)."""
  return (name.startswith((G_SCOPE + '/', D_SCOPE + '/')) and
          name.rsplit('/', 1)[-1] not in _OPTIMIZER_SLOTS)


def _check_names(scope: str, variables: Mapping[str, Any], expected: list[str],
                 what: str) -> None:
  present = {n for n in variables if n.startswith(scope + '/') and is_weight(n)}
  missing = [n for n in expected if n not in present]
  unexpected = sorted(present - set(expected))
  if missing or unexpected:
    raise ConversionError(f'not the {what} of the official DeepFill v2 release (cnum=48): '
                          + mismatch_summary(missing, unexpected) + ' variables')


def _bgr_to_rgb(layer: str, leaf: str, value: np.ndarray) -> np.ndarray:
  value = value.copy()
  if leaf == 'kernel' and layer in _COLOUR_IN:
    value[:, :, 0:3] = value[:, :, 2::-1]
  if layer in _COLOUR_OUT:
    value[..., 0:3] = value[..., 2::-1]  # kernel outputs (last axis) and bias
  return value


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def convert_generator(variables: Mapping[str, Any], *, cnum: int = CNUM,
                      bgr_to_rgb: bool = True) -> dict[str, Any]:
  """Release variables ({name: array}) -> `{'params': ...}` of DeepFillV2Generator(cnum).

  Optimiser slots and other scopes are ignored. `bgr_to_rgb=False` keeps the release's colour
  order (the generator then expects BGR images). Raises ConversionError naming missing,
  unexpected or mis-shaped variables.
  """
  if not any(n.startswith(G_SCOPE + '/') for n in variables):
    raise ConversionError('not a DeepFill v2 checkpoint: it has no inpaint_net/ variables '
                          f'(it has {_some(sorted(variables))})')
  shapes = _flax_shapes(cnum)
  expected = {tf_name(p): p for p in sorted(shapes, key=_layer_order)}
  _check_names(G_SCOPE, variables, list(expected), 'generator (inpaint_net/)')
  params: dict[str, Any] = {}
  for name, path in expected.items():
    value = float32_tensor(name, variables[name])
    if value.shape != shapes[path]:
      raise ConversionError(f'{name} has shape {value.shape}, expected {shapes[path]}')
    if bgr_to_rgb:
      value = _bgr_to_rgb(path[0], path[-1], value)
    _set(params, path, value)
  return {'params': params}


@functools.lru_cache(maxsize=None)
def _d_shapes(d_cnum: int = D_CNUM) -> dict[str, dict[tuple[str, ...], tuple[int, ...]]]:
  """Variable paths and shapes of SNPatchGAN(d_cnum) per collection, without computing."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.deepfill_v2 import SNPatchGAN

  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda x, m: SNPatchGAN(cnum=d_cnum).init(
      jax.random.key(0), x, m, train=False), image, mask)
  out = {}
  for collection, tree in shapes.items():
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    out[collection] = {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}
  return out


def _d_tf_name(path: tuple[str, ...]) -> str:
  """('conv1', 'conv', 'kernel') -> '.../conv1/kernel';
  ('conv1', 'spectral_norm', 'conv/kernel/u') -> '.../conv1/kernel_sn/u'."""
  layer, module, leaf = path
  if module == 'conv':
    return f'{D_SCOPE}/{layer}/{leaf}'
  if module == 'spectral_norm' and leaf == 'conv/kernel/u':
    return f'{D_SCOPE}/{layer}/kernel_sn/u'
  raise ValueError(f'no TF name for discriminator variable {"/".join(path)}')


def _sigma(kernel: np.ndarray, u: np.ndarray) -> np.float32:
  """The spectral norm's estimate after one power iteration from `u` (as SNConv computes)."""
  w = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
  v = u @ w.T
  v /= np.linalg.norm(v) + 1e-12
  u1 = v @ w
  u1 /= np.linalg.norm(u1) + 1e-12
  return np.float32((v @ w @ u1.T)[0, 0])


def convert_discriminator(variables: Mapping[str, Any], *, d_cnum: int = D_CNUM,
                          bgr_to_rgb: bool = True) -> Optional[dict[str, Any]]:
  """Release variables -> `{'params', 'batch_stats'}` of SNPatchGAN(d_cnum), or None when the
  checkpoint holds no discriminator (a generator-only export)."""
  if not any(n.startswith(D_SCOPE + '/') and is_weight(n) for n in variables):
    return None
  shapes = _d_shapes(d_cnum)
  wanted = [(c, p) for c in ('params', 'batch_stats') for p in sorted(shapes[c])
            if c == 'params' or p[-1].endswith('/u')]
  _check_names(D_SCOPE, variables, [_d_tf_name(p) for _, p in wanted],
               'discriminator (discriminator/sn_patch_gan/)')
  out: dict[str, Any] = {'params': {}, 'batch_stats': {}}
  for collection, path in wanted:
    name = _d_tf_name(path)
    value = float32_tensor(name, variables[name])
    if value.shape != shapes[collection][path]:
      raise ConversionError(f'{name} has shape {value.shape}, expected '
                            f'{shapes[collection][path]}')
    if bgr_to_rgb and path[0] == 'conv1' and path[-1] == 'kernel':
      value = value.copy()
      value[:, :, 0:3] = value[:, :, 2::-1]  # image channels; channel 3 is the mask
    _set(out[collection], path, value)
  for layer, node in out['batch_stats'].items():
    stats = node['spectral_norm']
    kernel = out['params'][layer]['conv']['kernel']
    stats['conv/kernel/sigma'] = _sigma(kernel, stats['conv/kernel/u'])
  return out


def _layer_order(path: tuple[str, ...]) -> tuple[int, int, tuple[str, ...]]:
  """conv*, then xconv*, pmconv*, allconv*, each by layer number (the graph's order)."""
  layer = path[0]
  branch = next((i for i, p in enumerate(('allconv', 'pmconv', 'xconv')) if
                 layer.startswith(p)), 3)
  digits = ''.join(ch for ch in layer.split('_')[0] if ch.isdigit())
  return (-branch, int(digits) if digits else 0, path)
