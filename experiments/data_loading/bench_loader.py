"""Training-input throughput of flowinpaint.data.pipeline.train_batches.

  python experiments/data_loading/bench_loader.py            # full table (README numbers)
  python experiments/data_loading/bench_loader.py --quick    # a smoke run

Sources: the embedded scikit-image photos (decoded once, in memory) and a folder of JPEGs
written from them (decoded for every sample, like a real dataset on disk). Prints the
machine, versions, a per-sample cost breakdown and a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import os
import platform
import tempfile
import time

import cv2
import ml_collections
import numpy as np
from PIL import Image

from flowinpaint.data import datasets
from flowinpaint.data import masks
from flowinpaint.data import pipeline


def _cpu_name() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown CPU'


def _write_jpegs(folder: str, count: int, short_side: int) -> tuple[int, int]:
  """`count` JPEGs (quality 90) cut and resized from the embedded photos; returns a shape."""
  rng = np.random.default_rng(0)
  photos = datasets.embedded_images()
  shape = (0, 0)
  for i in range(count):
    photo = photos[i % len(photos)]
    h, w = photo.shape[:2]
    # Places365-like 3:4 landscape frames with the given short side.
    crop_h = min(h, int(w * 3 / 4))
    top = int(rng.integers(0, h - crop_h + 1))
    frame = photo[top:top + crop_h]
    new_w = round(short_side * frame.shape[1] / frame.shape[0])
    frame = cv2.resize(frame, (new_w, short_side), interpolation=cv2.INTER_AREA)
    Image.fromarray(frame).save(os.path.join(folder, f'{i:05d}.jpg'), quality=90)
    shape = frame.shape
  return shape


def _time_loader(config, *, batch_size, image_size, workers, threads, batches, warmup):
  t0 = time.perf_counter()
  with pipeline.train_batches(config, batch_size=batch_size, image_size=image_size, seed=0,
                              mask_kind='free_form_and_box', num_workers=workers,
                              num_threads=threads, prefetch=2) as it:
    for _ in itertools.islice(it, warmup):
      pass
    t1 = time.perf_counter()
    for _ in itertools.islice(it, batches):
      pass
    t2 = time.perf_counter()
  return t1 - t0, batches / (t2 - t1)


def _cpu_ms(fn, repeats: int, rounds: int = 5) -> float:
  """Median over rounds of CPU ms per call (all threads of this process, so OpenCV's own
  threads count too): much less sensitive to other users' load than wall time."""
  per_call = []
  for _ in range(rounds):
    t = time.process_time()
    for _ in range(repeats):
      fn()
    per_call.append((time.process_time() - t) / repeats * 1e3)
  return float(np.median(per_call))


def _per_sample_costs(jpeg_path: str, image_size: int, repeats: int = 20) -> dict[str, float]:
  """CPU milliseconds per sample of each stage."""
  rng = np.random.default_rng(0)
  photo = datasets.embedded_images()[0]
  batch = np.zeros((16, image_size, image_size, 3), np.uint8)
  make = pipeline._MakeExample(0, image_size, 'free_form_and_box')  # pylint: disable=protected-access
  return {
      'JPEG decode (PIL)': _cpu_ms(lambda: datasets.load_image(jpeg_path), repeats),
      'crop + flip': _cpu_ms(
          lambda: cv2.flip(pipeline.random_crop(photo, image_size, rng), 1), repeats),
      'free_form_and_box mask': _cpu_ms(
          lambda: masks.sample_mask(rng, image_size, image_size, 'free_form_and_box'), repeats),
      'whole worker sample, in-memory image': _cpu_ms(lambda: make(7, photo), repeats),
      'uint8 -> float32 in the main process': _cpu_ms(
          lambda: batch.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1),
          repeats) / 16,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_size', type=int, default=16)
  parser.add_argument('--image_size', type=int, default=256)
  parser.add_argument('--batches', type=int, default=40, help="timed batches per row and round")
  parser.add_argument('--warmup', type=int, default=5, help='untimed batches (worker start)')
  parser.add_argument('--workers', default='0,1,2')
  parser.add_argument('--threads', default='1,2', help='reader threads per process')
  parser.add_argument('--jpegs', type=int, default=200)
  parser.add_argument('--jpeg_short_side', type=int, default=512)
  parser.add_argument('--rounds', type=int, default=3, help='repeats of the table (median)')
  parser.add_argument('--quick', action='store_true')
  args = parser.parse_args()
  if args.quick:
    args.batches, args.warmup, args.jpegs, args.rounds = 5, 1, 16, 1
    args.workers, args.threads = '0,1', '1'

  versions = ', '.join(
      f'{p} {importlib.metadata.version(p)}'
      for p in ('numpy', 'grain', 'opencv-python-headless', 'pillow', 'scikit-image'))
  print(f'machine: {os.cpu_count()} CPUs ({_cpu_name()}), Python {platform.python_version()}')
  print(f'versions: {versions}')
  embedded_shapes = sorted(im.shape[:2] for im in datasets.embedded_images())
  print(f'embedded: {len(embedded_shapes)} photos, sizes {embedded_shapes[0]}..'
        f'{embedded_shapes[-1]} (decoded once, held in memory)')

  with tempfile.TemporaryDirectory() as folder:
    shape = _write_jpegs(folder, args.jpegs, args.jpeg_short_side)
    print(f'folder: {args.jpegs} JPEGs (quality 90), e.g. {shape[0]}x{shape[1]}, '
          'decoded per sample')
    print(f'batch {args.batch_size} at {args.image_size}x{args.image_size}, '
          'mask free_form_and_box, prefetch 2\n')

    print('per-sample CPU time, in-process (median of 5 rounds):')
    for stage, ms in _per_sample_costs(os.path.join(folder, '00000.jpg'),
                                       args.image_size).items():
      print(f'  {stage:45s} {ms:6.2f} ms')
    print()

    configs = {
        'embedded': ml_collections.ConfigDict({'dataset': 'embedded'}),
        'JPEG folder': ml_collections.ConfigDict({'dataset': 'folder', 'path': folder}),
    }
    rows = list(itertools.product(
        configs, [int(w) for w in args.workers.split(',')],
        [int(t) for t in args.threads.split(',')]))
    results = {row: [] for row in rows}
    # Rounds interleave the rows so that load from other users spreads over all of them.
    for r in range(args.rounds):
      print(f'round {r + 1}/{args.rounds}, load average {os.getloadavg()[0]:.1f}', flush=True)
      for name, workers, threads in rows:
        results[name, workers, threads].append(_time_loader(
            configs[name], batch_size=args.batch_size, image_size=args.image_size,
            workers=workers, threads=threads, batches=args.batches, warmup=args.warmup))
    print(f'load average at the end {os.getloadavg()[0]:.1f}\n')
    print('| source | workers | threads | start-up s | batches/s (median) | images/s | '
          'batches/s (min..max) |')
    print('|---|---|---|---|---|---|---|')
    for (name, workers, threads), runs in results.items():
      startup = np.median([s for s, _ in runs])
      rates = [rate for _, rate in runs]
      rate = float(np.median(rates))
      print(f'| {name} | {workers} | {threads} | {startup:.1f} | {rate:.1f} | '
            f'{rate * args.batch_size:.0f} | {min(rates):.1f}..{max(rates):.1f} |')


if __name__ == '__main__':  # Required: grain starts its workers with 'spawn'.
  main()
