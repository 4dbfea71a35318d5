"""DeepFill v1 weights from the official TensorFlow release (JiahuiYu/generative_inpainting v1.0.0).

The release's checkpoints (Places2, CelebA, CelebA-HQ, ImageNet; read without TensorFlow by
flowinpaint.weights.tf_checkpoint) hold the graph of v1.0.0's `inpaint_model.py`:

* generator, under `inpaint_net/`: `tf.layers.conv2d` kernels [kh, kw, in, out] and biases named
  after the layers: coarse `conv1` ... `conv17`, refinement `xconv1` ... `xconv10_atrous`,
  `pmconv1` ... `pmconv10`, `allconv11` ... `allconv17`; an upsampling layer
  `gen_deconv(name='conv13_upsample')` nests its conv as `conv13_upsample/conv13_upsample_conv`.
  Flax's layer names are the same, under `coarse/` (conv*) and `refine/` (the rest).
* the WGAN-GP critics, under `discriminator/`: `discriminator_local/conv1..4`,
  `discriminator_global/conv1..4` (5x5 stride-2 convs) and the dense layers `dout_local_fc`,
  `dout_global_fc`, whose input sizes give the training crop (256 -> global 16x16x256) and the
  local patch (128 -> 8x8x512);
* optimiser slots and counters, ignored.

Colour order: the release was trained on images read with OpenCV, i.e. **BGR** (its test.py
feeds cv2.imread and writes the result back with cv2.imwrite). The converter reverses the colour
channels where images enter (conv1, xconv1, pmconv1 and both critics' conv1: input channels 0-2;
the ones and mask channels stay) and leave (conv17, allconv17), so the converted generator on an
RGB image computes what the release computes on its BGR twin.

The converted generator runs with `tf_resize=True` (the official graph's align-corners nearest
downscales of the mask and inside contextual attention; see models/deepfill_v1.py); with it the
Flax model reproduces the authors' TF graph (tests/weights/deepfill_v1_tf_test.py).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from typing import Any, Mapping, Optional

import numpy as np

from flowinpaint.weights.deepfill_v2_tf import _OPTIMIZER_SLOTS, _set
from flowinpaint.weights.deepfill_v2_torch import (ConversionError, _some, float32_tensor,
                                                  mismatch_summary)

G_SCOPE = 'inpaint_net'
D_SCOPE = 'discriminator'
CNUM = 32
D_CNUM = 64
_COLOUR_IN = frozenset({'conv1', 'xconv1', 'pmconv1'})
_COLOUR_OUT = frozenset({'conv17', 'allconv17'})


def is_weight(name: str) -> bool:
  """Whether a checkpoint variable is a model weight (not an optimiser slot or counter)."""
  return (name.startswith((G_SCOPE + '/', D_SCOPE + '/')) and
          name.rsplit('/', 1)[-1] not in _OPTIMIZER_SLOTS)


def tf_name(path: tuple[str, ...]) -> str:
  """Flax generator param path -> release name, e.g. ('coarse', 'conv1', 'kernel') ->
  'inpaint_net/conv1/kernel'; ('refine', 'allconv13_upsample', 'bias') ->
  'inpaint_net/allconv13_upsample/allconv13_upsample_conv/bias'."""
  _, layer, leaf = path
  if layer.endswith('_upsample'):
    return f'{G_SCOPE}/{layer}/{layer}_conv/{leaf}'
  return f'{G_SCOPE}/{layer}/{leaf}'


def d_tf_name(path: tuple[str, ...]) -> str:
  """Flax critic param path -> release name: ('local', 'conv1', 'kernel') ->
  'discriminator/discriminator_local/conv1/kernel'; ('global', 'dense', 'bias') ->
  'discriminator/dout_global_fc/bias'."""
  critic, layer, leaf = path
  if layer == 'dense':
    return f'{D_SCOPE}/dout_{critic}_fc/{leaf}'
  return f'{D_SCOPE}/discriminator_{critic}/{layer}/{leaf}'


def _shapes(tree) -> dict[tuple[str, ...], tuple[int, ...]]:
  import jax
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


@functools.lru_cache(maxsize=None)
def generator_shapes(cnum: int = CNUM) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Parameter paths and shapes of deepfill_v1.Generator(cnum), without computing anything."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.deepfill_v1 import Generator
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  return _shapes(jax.eval_shape(lambda x, m: Generator(cnum=cnum).init(
      jax.random.key(0), x, m, train=False), image, mask)['params'])


@functools.lru_cache(maxsize=None)
def critic_shapes(image_size: int, local_size: int,
                  d_cnum: int = D_CNUM) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Parameter paths and shapes of deepfill_v1.Critics for square images of `image_size`."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.deepfill_v1 import Critics
  image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, image_size, image_size, 1), jnp.float32)
  return _shapes(jax.eval_shape(lambda x, m: Critics(cnum=d_cnum, local_size=local_size).init(
      jax.random.key(0), x, m, train=False), image, mask)['params'])


def _check_names(scope: str, variables: Mapping[str, Any], expected, what: str) -> None:
  present = {n for n in variables if n.startswith(scope + '/') and is_weight(n)}
  missing = [n for n in expected if n not in present]
  unexpected = sorted(present - set(expected))
  if missing or unexpected:
    raise ConversionError(f'not the {what} of the official DeepFill v1 release: '
                          + mismatch_summary(missing, unexpected) + ' variables')


def _convert(variables, expected: dict[str, tuple[tuple[str, ...], tuple[int, ...]]],
             colour_in, colour_out, bgr_to_rgb: bool) -> dict[str, Any]:
  params: dict[str, Any] = {}
  for name, (path, shape) in expected.items():
    value = float32_tensor(name, variables[name])
    if value.shape != shape:
      raise ConversionError(f'{name} has shape {value.shape}, expected {shape}')
    layer, leaf = path[-2], path[-1]
    if bgr_to_rgb and leaf == 'kernel' and colour_in(path):
      value = value.copy()
      value[:, :, 0:3] = value[:, :, 2::-1]
    if bgr_to_rgb and layer in colour_out:
      value = value.copy()
      value[..., 0:3] = value[..., 2::-1]  # kernel outputs (last axis) and bias
    _set(params, path, value)
  return params


def convert_generator(variables: Mapping[str, Any], *, bgr_to_rgb: bool = True
                      ) -> dict[str, Any]:
  """Release variables ({name: array}) -> `{'params': ...}` of deepfill_v1.Generator(cnum=32).

  `bgr_to_rgb=False` keeps the release's colour order (the generator then expects BGR).
  Raises ConversionError naming missing, unexpected or mis-shaped variables.
  """
  if not any(n.startswith(G_SCOPE + '/') for n in variables):
    raise ConversionError('not a DeepFill v1 checkpoint: it has no inpaint_net/ variables '
                          f'(it has {_some(sorted(variables))})')
  first = np.shape(variables.get(f'{G_SCOPE}/conv1/kernel', ()))
  if len(first) == 4 and first[-1] != CNUM:
    hint = (' (48 outputs, gated: DeepFill v2\'s release; use --from deepfill_v2_tf)'
            if first[-1] == 48 else '')
    raise ConversionError(f'{G_SCOPE}/conv1/kernel has {first[-1]} outputs, the DeepFill v1 '
                          f'release {CNUM}{hint}')
  shapes = generator_shapes()
  expected = {tf_name(p): (p, s) for p, s in sorted(shapes.items())}
  _check_names(G_SCOPE, variables, list(expected), 'generator (inpaint_net/, cnum=32)')
  return {'params': _convert(variables, expected, lambda p: p[1] in _COLOUR_IN, _COLOUR_OUT,
                             bgr_to_rgb)}


def critic_sizes(variables: Mapping[str, Any]) -> Optional[tuple[int, int]]:
  """(image size, local patch size) the critics were trained at, from their dense layers'
  input widths (square crops: (size / 16)^2 x 256 global, x 512 local); None without critics."""
  sizes = []
  for critic, channels in (('global', 4 * D_CNUM), ('local', 8 * D_CNUM)):
    name = f'{D_SCOPE}/dout_{critic}_fc/kernel'
    if name not in variables:
      return None
    flat = np.shape(variables[name])[0]
    side = math.isqrt(flat // channels) if flat % channels == 0 else 0
    if side == 0 or side * side * channels != flat:
      raise ConversionError(f'{name} has {flat} inputs: not a square {critic} critic of '
                            f'{channels} channels')
    sizes.append(16 * side)
  return sizes[0], sizes[1]


def convert_critics(variables: Mapping[str, Any], *, bgr_to_rgb: bool = True
                    ) -> Optional[tuple[dict[str, Any], int, int]]:
  """Release variables -> (`{'params': ...}` of deepfill_v1.Critics, image size, local size),
  or None when the checkpoint holds no critics (a generator-only export)."""
  if not any(n.startswith(D_SCOPE + '/') and is_weight(n) for n in variables):
    return None
  sizes = critic_sizes(variables)
  if sizes is None:
    raise ConversionError('the critics of the DeepFill v1 release need both dense layers '
                          f'({D_SCOPE}/dout_global_fc, {D_SCOPE}/dout_local_fc)')
  image_size, local_size = sizes
  if local_size > image_size:
    raise ConversionError(f'the local critic ({local_size}) is larger than the global one '
                          f'({image_size})')
  shapes = critic_shapes(image_size, local_size)
  expected = {d_tf_name(p): (p, s) for p, s in sorted(shapes.items())}
  _check_names(D_SCOPE, variables, list(expected), 'critics (discriminator/)')
  params = _convert(variables, expected, lambda p: p[1] == 'conv1', frozenset(), bgr_to_rgb)
  return {'params': params}, image_size, local_size


def read(path: str) -> tuple[dict[str, Any], Optional[tuple[dict[str, Any], int, int]]]:
  """Generator and critics (when saved) from a release folder, prefix or .index file."""
  from flowinpaint.errors import UserError
  from flowinpaint.weights import tf_checkpoint
  try:
    reader = tf_checkpoint.CheckpointReader(path)
    if not any(n.startswith(G_SCOPE + '/') for n in reader.entries):
      raise UserError(f"{path!r} is a TensorFlow checkpoint but not DeepFill v1's: it has no "
                      f'inpaint_net/ variables ({len(reader.entries)} variables, e.g. '
                      f"{', '.join(sorted(reader.entries)[:3])})")
    variables = reader.read_all(is_weight)
  except tf_checkpoint.CheckpointError as e:
    raise UserError(str(e)) from e
  try:
    return convert_generator(variables), convert_critics(variables)
  except ConversionError as e:
    raise UserError(f'{path!r}: {e}') from e


def convert(path: str, options, fmt: str):
  """`--from deepfill_v1_tf`: the official release -> a deepfill_v1 checkpoint (tf_resize on)."""
  from flowinpaint import convert as convert_lib
  from flowinpaint.errors import UserError
  config_path = options.config_path or os.path.join(convert_lib._CONFIGS, 'deepfill_v1.py')
  config = convert_lib.load_config(config_path)
  if config.model.name != 'deepfill_v1':
    raise UserError(f'--config {config_path!r} is for model {config.model.name!r}, not '
                    'deepfill_v1')
  if options.variant is not None:
    raise UserError('--variant is for DeepFill v2; DeepFill v1 runs as the official TF graph')
  g_vars, critics = read(path)
  config.model.cnum = CNUM
  config.model.d_cnum = D_CNUM
  config.model.tf_resize = True
  d_vars = None
  source = {'format': fmt, 'file': os.path.basename(os.path.normpath(path)),
            'colour_order': 'bgr->rgb', 'tf_resize': True}
  if critics is not None:
    d_vars, image_size, local_size = critics
    config.image_size = image_size
    config.model.local_size = 0 if local_size * 2 == image_size else local_size
    source['discriminator'] = 'converted'
  else:
    source['discriminator'] = 'fresh'
    print('note: the checkpoint holds no critics; fine-tuning starts from fresh ones',
          file=sys.stderr)
  return convert_lib.Converted(config, g_vars, d_vars, source,
                               summary='DeepFill v1, official TF graph (BGR weights -> RGB)')
