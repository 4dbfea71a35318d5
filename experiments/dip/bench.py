"""Deep Image Prior beside the classical fills: hole PSNR, sharpness and seconds per image.

  python experiments/dip/bench.py --size 256 --num 8 --mask-kind free_form \
      --methods telea,patchmatch,dip --iterations 3001 --output experiments/dip/results.jsonl

Images and masks are the evaluate tool's: the 8 scikit-image colour photos (the embedded
source), centre squares resized to --size, with `data.masks.eval_masks(num, size, size,
seed=2024, kind=--mask-kind)`. Every method is an `inference.METHODS` inpainter built the way the
tools build it; a method not registered (patchmatch, before its branch is merged) is skipped with
a note. Per image: hole PSNR (evaluate.score: intensities in [0, 1], inside the hole), the
sharpness ratio (mean Sobel gradient magnitude of the result inside the hole over the photo's
own there: 1 = as much detail as the photo, below 1 = blurrier), and wall seconds (DIP's
compilation is done first by `warm_up` and reported apart). One JSON line per (method, image),
appended to --output; rows already there are not run again, so a long run can be resumed.
Prints a Markdown table of the means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import cv2
import jax
import ml_collections
import numpy as np

from flowinpaint import evaluate
from flowinpaint import inference
from flowinpaint.data import pipeline


def sharpness(rgb: np.ndarray, hole: np.ndarray) -> float:
  """Mean Sobel gradient magnitude of the grey image over the hole's pixels."""
  grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
  gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
  gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
  return float(np.sqrt(gx * gx + gy * gy)[hole].mean())


def _key(row: dict) -> tuple:
  return (row["method"], row["index"], row.get("iterations"), row["size"], row["mask_kind"])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--num", type=int, default=8)
  parser.add_argument("--mask-kind", default="free_form")
  parser.add_argument("--methods", default="telea,patchmatch,dip")
  parser.add_argument("--iterations", type=int, default=inference.DIP_ITERATIONS)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--only", type=int, nargs="*", default=None,
                      help="run only these image indices (the table still averages all rows)")
  parser.add_argument("--output", default="experiments/dip/results.jsonl")
  args = parser.parse_args()

  batch = pipeline.eval_batch(ml_collections.ConfigDict({"dataset": "embedded"}),
                              num_images=args.num, image_size=args.size, seed=2024,
                              mask_kind=args.mask_kind)
  images = inference.to_uint8(batch["image"])
  holes = batch["mask"][..., 0] > 0.5
  device = jax.devices()[0]
  machine = {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
             "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
             "load_1min": os.getloadavg()[0]}
  rows = []
  if os.path.exists(args.output):
    with open(args.output) as f:
      rows = [json.loads(line) for line in f if line.strip()]
  done = {_key(r) for r in rows}
  indices = args.only if args.only is not None else range(args.num)
  for method in args.methods.split(","):
    if method not in inference.METHODS:
      print(f"note: method {method!r} is not registered in inference.METHODS here; skipped")
      continue
    iterations = args.iterations if method == "dip" else None
    # DIP draws its bar with the loss on stderr even in a log file (progress=True).
    inpainter = inference.make_inpainter(method, iterations=args.iterations, seed=args.seed,
                                         progress=True)
    compile_s = None
    for i in indices:
      base = {"method": method, "index": i, "iterations": iterations, "size": args.size,
              "mask_kind": args.mask_kind}
      if _key(base) in done:
        continue
      if compile_s is None and hasattr(inpainter, "warm_up"):
        start = time.perf_counter()
        inpainter.warm_up(images[i], holes[i])
        compile_s = time.perf_counter() - start
      start = time.perf_counter()
      out = inpainter(images[i], holes[i])
      seconds = time.perf_counter() - start
      scores = evaluate.score(out[None], images[i][None], holes[i][None])
      row = {**base, "seed": args.seed if method == "dip" else None,
             "psnr_hole": float(scores["psnr_hole"][0]), "psnr": float(scores["psnr"][0]),
             "sharpness_ratio": sharpness(out, holes[i]) / sharpness(images[i], holes[i]),
             "seconds": seconds, "compile_seconds": compile_s,
             "hole_ratio": float(holes[i].mean()), **machine,
             "load_1min": os.getloadavg()[0]}
      if hasattr(inpainter, "last_fit") and inpainter.last_fit is not None:
        row["final_loss"] = inpainter.last_fit.loss
      print(json.dumps(row), flush=True)
      os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
      with open(args.output, "a") as f:
        f.write(json.dumps(row) + "\n")
      rows.append(row)
  print()
  print("| method | iterations | images | hole PSNR (dB) | sharpness ratio | s / image |")
  print("|---|---|---|---|---|---|")
  groups: dict[tuple, list] = {}
  for r in rows:
    if r["size"] == args.size and r["mask_kind"] == args.mask_kind:
      groups.setdefault((r["method"], r["iterations"]), []).append(r)
  for (method, iterations), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
    mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
    print(f"| {method} | {iterations or '-'} | {len(rs)} | {mean('psnr_hole'):.2f} | "
          f"{mean('sharpness_ratio'):.2f} | {mean('seconds'):.1f} |")


if __name__ == "__main__":
  main()
