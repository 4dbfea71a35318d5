"""Deep Image Prior's fill as the fit goes on: hole PSNR and sharpness at several step counts.

  python experiments/dip/curve.py --size 128 --only 0 1 2 3 \
      --checkpoints 100,250,500,1000,1500,2000,3001 --output experiments/dip/curve_128.jsonl

What bench.py measures at one iteration count, taken here at several from the same fits: each
photo's fit (the tools' `--method dip`: DIPInpainter's padding, setting, seed and compositing) is
advanced round-robin, every photo to the first checkpoint, then every photo to the next, so a run
stopped at any time has all photos at the same step count. At each checkpoint the composited
fill is scored like bench.py (hole PSNR, sharpness ratio) and one JSON line is appended. Photos
and masks are bench.py's (the evaluate tool's). Not resumable: the fits live in memory.

  python experiments/dip/curve.py --table --output experiments/dip/curve_128.jsonl

prints the Markdown table of the README from those lines: per step count reached by every photo,
the means over the photos, beside bench.py's Telea rows (results.jsonl) on the same photos,
size and masks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import sharpness  # noqa: E402  (the same measure as the quality table)

from flowinpaint import dip as dip_fit  # noqa: E402
from flowinpaint import evaluate  # noqa: E402
from flowinpaint import inference  # noqa: E402
from flowinpaint.data import pipeline  # noqa: E402


def _read(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def table(curve_path: str, bench_path: str) -> None:
  rows = _read(curve_path)
  photos = sorted({r["index"] for r in rows})
  size, kind = rows[0]["size"], rows[0]["mask_kind"]
  by_steps: dict[int, list[dict]] = {}
  for r in rows:
    by_steps.setdefault(r["iterations"], []).append(r)
  telea = [r for r in _read(bench_path) if r["method"] == "telea" and r["size"] == size
           and r["mask_kind"] == kind and r["index"] in photos]
  print(f"photos {photos}, {size}x{size}, {kind} masks")
  print("| method | steps | hole PSNR (dB) | per photo | sharpness ratio | s / step |")
  print("|---|---|---|---|---|---|")
  mean = lambda rs, k: float(np.mean([r[k] for r in rs]))  # noqa: E731
  per = lambda rs: " / ".join(f"{r['psnr_hole']:.1f}" for r in  # noqa: E731
                              sorted(rs, key=lambda r: r["index"]))
  if len(telea) == len(photos):
    print(f"| telea | - | {mean(telea, 'psnr_hole'):.2f} | {per(telea)} | "
          f"{mean(telea, 'sharpness_ratio'):.2f} | - |")
  for steps, rs in sorted(by_steps.items()):
    if len(rs) == len(photos):
      print(f"| dip | {steps} | {mean(rs, 'psnr_hole'):.2f} | {per(rs)} | "
            f"{mean(rs, 'sharpness_ratio'):.2f} | {mean(rs, 'seconds_per_step'):.2f} |")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--num", type=int, default=8, help="photos drawn (masks depend on it)")
  parser.add_argument("--only", type=int, nargs="*", default=None, help="photo indices to fit")
  parser.add_argument("--mask-kind", default="free_form")
  parser.add_argument("--checkpoints", default="100,250,500,1000,1500,2000,3001")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default="experiments/dip/curve_128.jsonl")
  parser.add_argument("--table", action="store_true", help="print the table of --output; no fit")
  parser.add_argument("--bench", default="experiments/dip/results.jsonl",
                      help="bench.py's lines (the Telea rows of --table)")
  args = parser.parse_args()
  if args.table:
    table(args.output, args.bench)
    return
  checkpoints = sorted(int(c) for c in args.checkpoints.split(","))

  batch = pipeline.eval_batch(ml_collections.ConfigDict({"dataset": "embedded"}),
                              num_images=args.num, image_size=args.size, seed=2024,
                              mask_kind=args.mask_kind)
  images = inference.to_uint8(batch["image"])
  holes = batch["mask"][..., 0] > 0.5
  indices = args.only if args.only is not None else list(range(args.num))
  inpainter = dip_fit.DIPInpainter(seed=args.seed, progress=False)
  fitter = inpainter.fitter
  machine = {"device": jax.devices()[0].device_kind, "jax": jax.__version__,
             "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}

  fits = {}
  start = time.perf_counter()
  for i in indices:
    x, known = inpainter._padded(images[i], holes[i])  # pylint: disable=protected-access
    x, known = jnp.asarray(x)[None], jnp.asarray(known)[..., None][None]
    fits[i] = {"x": x, "known": known, "steps": 0,
               "state": fitter.init(jax.random.key(args.seed), x, known)}
  # Compile the loop and the output once (zero steps), apart from the timed steps.
  probe = fits[indices[0]]
  jax.block_until_ready(fitter.output(fitter.run(
      fitter.init(jax.random.key(args.seed), probe["x"], probe["known"]), probe["x"],
      probe["known"], jnp.int32(0))))
  compile_s = time.perf_counter() - start
  print(f"compiled in {compile_s:.1f} s", flush=True)

  h, w = holes.shape[1:]
  for target in checkpoints:
    for i in indices:
      f = fits[i]
      t0 = time.perf_counter()
      f["state"] = fitter.run(f["state"], f["x"], f["known"], jnp.int32(target - f["steps"]))
      out = np.asarray(fitter.output(f["state"])[0])
      seconds = time.perf_counter() - t0
      steps_run = target - f["steps"]
      f["steps"] = target
      fill = inference.composite(inference.to_uint8(out[:h, :w] * 2.0 - 1.0), images[i],
                                 holes[i])
      scores = evaluate.score(fill[None], images[i][None], holes[i][None])
      row = {"method": "dip", "index": i, "iterations": target, "size": args.size,
             "mask_kind": args.mask_kind, "seed": args.seed,
             "psnr_hole": float(scores["psnr_hole"][0]), "psnr": float(scores["psnr"][0]),
             "sharpness_ratio": sharpness(fill, holes[i]) / sharpness(images[i], holes[i]),
             "loss": float(f["state"]["loss"]), "hole_ratio": float(holes[i].mean()),
             "seconds_per_step": seconds / steps_run, "compile_seconds": compile_s,
             "load_1min": os.getloadavg()[0], **machine}
      print(json.dumps(row), flush=True)
      with open(args.output, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
