"""RTV structure extraction throughput (images/s) on whatever device JAX picks.

  python experiments/rtv/bench.py --sizes 256 512 --batch 4 --repeats 3

Images are scikit-image's bundled photos (astronaut, coffee, chelsea, rocket), resized, in
[0, 1]; the settings are StructureFlow's (lambda 0.015, sigma 3, sharpness 1e-3, 3 iterations)
with the library's default CG tolerance. Reports the median of `repeats` timed calls after one
compile-and-run warm-up, and the mask-aware variant with a centre box hole.
"""

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from skimage import data as skdata
from skimage import transform

from flowinpaint.classical.rtv import rtv


def _images(size: int, batch: int) -> np.ndarray:
  photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
  out = [transform.resize(photos[i % len(photos)], (size, size), anti_aliasing=True)
         for i in range(batch)]
  return np.stack(out).astype(np.float32)


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # Compile + warm-up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512])
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--iterations', type=int, default=3)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f'# device: {device.device_kind} ({device.platform}), jax {jax.__version__}, '
        f'{platform.processor() or platform.machine()}')
  for size in args.sizes:
    images = jnp.asarray(_images(size, args.batch))
    mask = jnp.zeros((args.batch, size, size, 1)).at[:, size // 4:size // 2,
                                                     size // 4:3 * size // 4].set(1.0)
    plain = jax.jit(lambda x: rtv(x, 0.015, 3.0, 1e-3, args.iterations))
    masked = jax.jit(lambda x, m: rtv(x, 0.015, 3.0, 1e-3, args.iterations, mask=m))
    t_plain = _time(plain, images, repeats=args.repeats)
    t_masked = _time(masked, images, mask, repeats=args.repeats)
    row = {'size': size, 'batch': args.batch, 'device': device.device_kind,
           'images_per_s': args.batch / t_plain, 'masked_images_per_s': args.batch / t_masked,
           'seconds_per_batch': t_plain}
    print(json.dumps(row))


if __name__ == '__main__':
  main()
