"""Quality and speed of flow-guided video removal vs per-frame image inpainting.

  python experiments/video_removal/bench.py --size 432x240 --frames 24 --clips 3
  python experiments/video_removal/bench.py --size 854x480 --frames 16 --clips 1

Synthetic clips (flowinpaint.data.synthetic_video: camera panning/zooming over a still photo,
moving occluders) give the exact background, so PSNR/SSIM are measured inside the holes only.
Timings are steady state (a warm-up clip of the same size compiles the JAX functions first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import cv2
import jax
import numpy as np
from skimage.metrics import structural_similarity

from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import pipeline

PHOTOS = ("astronaut", "coffee", "chelsea")


def hole_psnr(out, gt, mask):
  mse = ((out.astype(np.float64) - gt) ** 2)[mask].mean()
  return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def hole_ssim(out, gt, mask):
  vals = []
  for o, g, m in zip(out, gt, mask):
    if m.any():
      _, s = structural_similarity(o, g, channel_axis=-1, data_range=255, full=True)
      vals.append(s.mean(-1)[m].mean())
  return float(np.mean(vals))


def per_frame(inpainter, clip):
  t = time.perf_counter()
  out = np.stack([inpainter(f, m) for f, m in zip(clip.frames, clip.masks)])
  return out, (time.perf_counter() - t) / len(out)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--size", default="432x240")
  p.add_argument("--frames", type=int, default=24)
  p.add_argument("--clips", type=int, default=3)
  p.add_argument("--flow", default="dis")
  p.add_argument("--fill-method", default="telea")
  p.add_argument("--model", help="checkpoint for the per-frame image-model column")
  p.add_argument("--strip", help="write a before/after strip PNG of the first clip here")
  p.add_argument("--json", help="append the results as one JSON line here")
  args = p.parse_args()
  w, h = (int(v) for v in args.size.split("x"))
  from flowinpaint.inference import make_inpainter

  fe, fc, inp = pipeline.make_pipeline_parts(args.flow, args.fill_method)
  baselines = {"telea": make_inpainter("telea"), "ns": make_inpainter("ns")}
  if args.model:
    baselines["model"] = make_inpainter(args.model)
  clips = [make_clip(PHOTOS[i % 3], args.frames, h, w, seed=i, object_size=0.4, zoom=1.1)
           for i in range(args.clips)]
  warm = make_clip("rocket", args.frames, h, w, seed=99)
  pipeline.remove_clip(warm.frames, warm.masks, flow_estimator=fe, flow_completer=fc,
                       inpainter=inp)
  rows = {k: {"psnr": [], "ssim": [], "s_per_frame": []} for k in ["flow-guided", *baselines]}
  stage_s = {s: 0.0 for s in pipeline.STAGES}
  n_frames = 0
  hole_frac = []
  for i, clip in enumerate(clips):
    stages = pipeline.Stages(len(clip.frames), progress=False)
    t = time.perf_counter()
    out = pipeline.remove_clip(clip.frames, clip.masks, flow_estimator=fe, flow_completer=fc,
                               inpainter=inp, stages=stages)
    total = time.perf_counter() - t
    for s, v in stages.seconds.items():
      stage_s[s] += v
    n_frames += len(clip.frames)
    hole_frac.append(clip.masks.mean())
    results = {"flow-guided": (out, total / len(out))}
    for name, fn in baselines.items():
      results[name] = per_frame(fn, clip)
    for name, (o, spf) in results.items():
      rows[name]["psnr"].append(hole_psnr(o, clip.background, clip.masks))
      rows[name]["ssim"].append(hole_ssim(o, clip.background, clip.masks))
      rows[name]["s_per_frame"].append(spf)
    if i == 0 and args.strip:
      idx = np.linspace(0, len(out) - 1, 4).round().astype(int)
      top = np.concatenate([clip.frames[j] for j in idx], 1)
      mid = np.concatenate([results["telea"][0][j] for j in idx], 1)
      bot = np.concatenate([out[j] for j in idx], 1)
      cv2.imwrite(args.strip, cv2.cvtColor(np.concatenate([top, mid, bot], 0),
                                           cv2.COLOR_RGB2BGR))
  summary = {
      "size": args.size, "frames": args.frames, "clips": args.clips, "flow": args.flow,
      "hole_fraction": float(np.mean(hole_frac)),
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
      "device": str(jax.devices()[0]), "jax": jax.__version__,
      "methods": {k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in rows.items()},
      "stage_s_per_frame": {s: v / n_frames for s, v in stage_s.items()},
  }
  print(json.dumps(summary, indent=1))
  if args.json:
    with open(args.json, "a") as f:
      f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
  main()
