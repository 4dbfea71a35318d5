"""Random StructureFlow state dicts (the authors' names and layouts), reproducible from a seed.

Each tensor is drawn from its own generator, seeded with (seed, file, name), so the values do not
depend on the order in which names are listed: the fixture script (which takes the names from the
authors' own modules) and the tests (which take them from the converter's table) get the same
numbers. No torch needed.

* conv weights: xavier normal with gain sqrt(2) (the authors' `INIT_TYPE: xavier`); the flow
  head's last conv is scaled by FLOW_GAIN so the random flow spans a few pixels (and at places
  leaves the feature map, which exercises the sampler's border clamp), the two tanh output
  convs by OUTPUT_GAIN;
* biases and LayerNorm shifts ~ U(-0.1, 0.1), LayerNorm scales ~ 1 + U(-0.3, 0.3);
* spectral norm: `weight_v` a random unit vector and `weight_u` = W v / |W v|, the state one
  power-iteration step leaves. Then sigma = u . (W v) = |W v| is well below the largest
  singular value, so a converter that recomputed sigma would not match.
"""

from __future__ import annotations

import collections
import zlib
from typing import Mapping

import numpy as np

FLOW_GAIN = 2.0
_FLOW_HEAD = 'flow_column.location.1.conv.weight'
# The tanh output convs, scaled down so that fewer outputs saturate at +-1.
OUTPUT_GAIN = 0.5
_OUTPUTS = ('image_net.conv.conv.weight', 'conv_column.up_sample.1.7.conv.conv.weight')


def _rng(seed: int, file: str, name: str) -> np.random.Generator:
  return np.random.default_rng([seed, zlib.crc32(file.encode()), zlib.crc32(name.encode())])


def _xavier(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
  receptive = int(np.prod(shape[2:]))
  std = np.sqrt(2.0) * np.sqrt(2.0 / ((shape[0] + shape[1]) * receptive))
  return rng.normal(0.0, std, shape)


def random_state_dict(file: str, shapes: Mapping[str, tuple[int, ...]], seed: int
                      ) -> 'collections.OrderedDict[str, np.ndarray]':
  """name -> float32 array for every name of `shapes` (one of 's_gen', 'f_gen')."""
  out = collections.OrderedDict()
  for name, shape in shapes.items():
    rng = _rng(seed, file, name)
    if name.endswith('.weight_u'):
      continue  # needs the weight: below
    if name.endswith('.weight_v'):
      v = rng.normal(size=shape)
      value = v / np.linalg.norm(v)
    elif len(shape) == 4:
      gain = FLOW_GAIN if name == _FLOW_HEAD else OUTPUT_GAIN if name in _OUTPUTS else 1.0
      value = _xavier(rng, shape) * gain
    elif name.endswith('.norm.weight'):
      value = 1.0 + rng.uniform(-0.3, 0.3, shape)
    else:
      value = rng.uniform(-0.1, 0.1, shape)
    out[name] = value.astype(np.float32)
  for name, shape in shapes.items():
    if name.endswith('.weight_u'):
      prefix = name[:-len('_u')]
      w = out[prefix + '_orig'].astype(np.float64).reshape(shape[0], -1)
      wv = w @ out[prefix + '_v'].astype(np.float64)
      out[name] = (wv / np.linalg.norm(wv)).astype(np.float32)
  return collections.OrderedDict((k, out[k]) for k in shapes)


def inputs(height: int, width: int, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
  """NHWC float32 inputs as the authors' Dataset gives them: 'image' (the ground truth in
  [-1, 1]), 'smooth' (a stand-in for its RTV structure: a blurred copy), 'mask' (1 = hole)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(-1, 1, (batch, height // 8 + 1, width // 8 + 1, 3))
  smooth = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :height, :width]
  image = np.clip(smooth + rng.normal(0, 0.3, smooth.shape), -1, 1)
  mask = np.zeros((batch, height, width, 1))
  mask[0, height // 4:height // 2 + 5, width // 3:width // 3 + 20] = 1
  mask[-1, 5:height - 9, 3:17] = 1
  mask[-1, height - 12:height - 4, width // 2:] = 1
  return {'image': image.astype(np.float32), 'smooth': smooth.astype(np.float32),
          'mask': mask.astype(np.float32)}
