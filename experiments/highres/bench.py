"""Times `flowinpaint.highres.inpaint_highres` on a large photo with a few holes; peak memory.

  PYTHONPATH=. python experiments/highres/bench.py --inpainter telea --strategy auto
  PYTHONPATH=. python experiments/highres/bench.py --inpainter deepfill_v2 --strategy crop

Run one configuration per process so that the peak RSS (ru_maxrss) belongs to that run. Prints
one JSON line (and appends it to --json). The photo is scikit-image's 'coffee' upscaled to the
requested size (a 12 MP photo is 4000x3000), the holes a box, two brush strokes, a disc and a
long thin scratch, drawn at the photo's scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import cv2
import numpy as np


def make_photo(width: int, height: int) -> np.ndarray:
  import skimage.data
  return cv2.resize(skimage.data.coffee(), (width, height), interpolation=cv2.INTER_LANCZOS4)


def make_holes(width: int, height: int) -> np.ndarray:
  """A few holes of the kinds people remove: a box, strokes, a round object, a scratch."""
  s = max(width, height) / 4000  # Sizes below are for a 4000 px wide photo.
  m = np.zeros((height, width), np.uint8)
  p = lambda x, y: (int(x * width), int(y * height))  # Positions as fractions of the photo.
  x0, y0 = p(0.08, 0.1)
  cv2.rectangle(m, (x0, y0), (x0 + int(300 * s), y0 + int(220 * s)), 1, -1)
  cv2.polylines(m, [np.array([p(0.55, 0.15), p(0.62, 0.22), p(0.58, 0.3), p(0.66, 0.36)])],
                False, 1, thickness=max(1, int(40 * s)))
  cv2.polylines(m, [np.array([p(0.2, 0.7), p(0.3, 0.62), p(0.36, 0.74)])], False, 1,
                thickness=max(1, int(25 * s)))
  cv2.circle(m, p(0.82, 0.75), int(150 * s), 1, -1)
  cv2.line(m, p(0.05, 0.92), p(0.7, 0.95), 1, thickness=max(1, int(6 * s)))
  return m.astype(bool)


def make_inpainter(name: str, cnum: int):
  from flowinpaint import inference
  if name in inference.CLASSICAL_METHODS:
    return inference.ClassicalInpainter(name)
  if os.path.exists(name):
    return inference.make_inpainter(name)
  # A registry model with random weights: the time and memory do not depend on the weights.
  import jax
  import jax.numpy as jnp
  from flowinpaint.models import registry
  from configs import default
  config = default.get_config()
  config.model.name = name
  config.model.cnum = cnum
  spec = registry.get(name)
  gen = spec.make_generator(config.model, jnp.float32)
  size = max(64, spec.multiple)
  variables = jax.jit(lambda k: gen.init(k, jnp.zeros((1, size, size, 3)),
                                         jnp.zeros((1, size, size, 1)), train=False))(
                                             jax.random.key(0))
  return inference.ModelInpainter(gen, variables, spec.multiple, model_name=name)


def rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--inpainter", default="telea", help="telea | ns | a model name | a checkpoint")
  p.add_argument("--cnum", type=int, default=24, help="generator width of a random model")
  p.add_argument("--strategy", default="auto")
  p.add_argument("--size", default="4000x3000", help="WxH")
  p.add_argument("--repeats", type=int, default=2,
                 help="runs; the first includes JAX compilation for a model")
  p.add_argument("--picture", help="write a before/after JPEG (reduced) here")
  p.add_argument("--detail", help="write a full-resolution before/after detail JPEG here")
  p.add_argument("--json", help="append the result line to this file")
  args = p.parse_args()

  import jax
  from flowinpaint import highres
  width, height = map(int, args.size.lower().split("x"))
  rgb, hole = make_photo(width, height), make_holes(width, height)
  inpainter = make_inpainter(args.inpainter, args.cnum)
  chosen = (highres.choose_strategy(rgb.shape, hole) if args.strategy == "auto"
            else args.strategy)
  before_mib = rss_mib()
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    out = highres.inpaint_highres(inpainter, rgb, hole, strategy=args.strategy)
    times.append(time.perf_counter() - start)
  assert out.shape == rgb.shape and np.array_equal(out[~hole], rgb[~hole])
  boxes = highres.crop_boxes(hole)
  result = {
      "inpainter": args.inpainter if not hasattr(inpainter, "variables")
                   else f"{args.inpainter} (cnum {args.cnum}, random weights)",
      "size": f"{width}x{height}", "hole_fraction": round(float(hole.mean()), 4),
      "strategy": args.strategy, "ran": chosen, "crops": [list(b.shape) for b in boxes],
      "seconds": [round(t, 2) for t in times],
      "compiled_shapes": sorted(map(list, getattr(inpainter, "compiled_shapes", []))),
      "rss_before_mib": round(before_mib), "peak_rss_mib": round(rss_mib()),
      "jax": jax.__version__, "backend": jax.default_backend(), "cpus": os.cpu_count(),
      "machine": platform.machine(),
  }
  print(json.dumps(result))
  if args.json:
    with open(args.json, "a") as f:
      f.write(json.dumps(result) + "\n")
  if args.picture or args.detail:
    from PIL import Image
    shown = rgb.copy()
    shown[hole] = (255, 255, 255)  # The holes as white, the way a mask file marks them.
    if args.picture:
      small = (width // 5, height // 5)
      pair = np.concatenate([cv2.resize(x, small, interpolation=cv2.INTER_AREA)
                             for x in (shown, out)], axis=1)
      Image.fromarray(pair).save(args.picture, quality=80)
    if args.detail:
      # Around the disc, at full resolution: the fill is not an upscaled blur of a small image.
      cx, cy, r = int(0.82 * width), int(0.75 * height), int(260 * width / 4000)
      ys, xs = slice(max(0, cy - r), cy + r), slice(max(0, cx - r), cx + r)
      Image.fromarray(np.concatenate([shown[ys, xs], out[ys, xs]], axis=1)).save(
          args.detail, quality=80)


if __name__ == "__main__":
  main()
