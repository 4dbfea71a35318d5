"""Flow EPE / speed table, DFC-Net vs Laplacian completion, and end-to-end removal quality.

  python experiments/flow/bench.py --flow-ckpt /tmp/exp/flow_net_tiny \
      --dfc-ckpt /tmp/exp/dfc_net_tiny [--sizes 64 128] [--out experiments/flow/results.json]

Held-out data: flowinpaint.data.flow_pipeline eval samples (photos never used in training,
seed 2024), the same generator as training. Speeds: median of repeated runs after a warm-up.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import dfc_net_tiny
from configs import flow_net_tiny
from flowinpaint.data import flow_pipeline as fp
from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.video import flow as flow_lib
from flowinpaint.video import learned
from flowinpaint.video import pipeline
from flowinpaint.video.flow_completion import LaplacianFlowCompleter


def epe(a, b, mask=None):
  e = np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).sum(-1))
  return float(e.mean() if mask is None else e[mask].mean())


def median_time(fn, repeats=5):
  fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def flow_table(flow_ckpt, sizes, n):
  cfg = flow_net_tiny.get_config().data
  rows = []
  estimators = {"zero flow": None, "OpenCV DIS (medium)": flow_lib.DISFlow("medium"),
                "OpenCV DIS (ultrafast)": flow_lib.DISFlow("ultrafast"),
                "OpenCV Farneback": flow_lib.FarnebackFlow(),
                "flow_net tiny (CPU-trained)": learned.LearnedFlowEstimator(flow_ckpt)}
  for size in sizes:
    batch = fp.eval_batch(cfg, num_images=n, image_size=size, seed=2024, mask_kind="none")
    frames = np.round((batch["image"] + 1) * 127.5).astype(np.uint8)
    first, second, target = frames[..., :3], frames[..., 3:], batch["target"]
    for name, est in estimators.items():
      if est is None:
        pred, fps = np.zeros_like(target), float("nan")
      elif isinstance(est, learned.LearnedFlowEstimator):
        pred = est.pairs(first, second)
        fps = len(first) / median_time(lambda: est.pairs(first, second), 3)
      else:
        grey = lambda x: np.stack([flow_lib._grey(f[None])[0] for f in x])
        g1, g2 = grey(first), grey(second)
        pred = np.stack([est.pair(a, b) for a, b in zip(g1, g2)])
        fps = len(first) / median_time(lambda: [est.pair(a, b) for a, b in zip(g1, g2)], 3)
      rows.append({"size": size, "method": name, "epe": epe(pred, target),
                   "pairs_per_s_cpu": fps})
      print(rows[-1], flush=True)
  # Speed at video resolution (432x240), one direction per pair.
  clip = make_clip("astronaut", 9, 240, 432, seed=0)
  for name, est in estimators.items():
    if est is None:
      continue
    if isinstance(est, learned.LearnedFlowEstimator):
      sec = median_time(lambda: est.pairs(clip.frames[:-1], clip.frames[1:]), 2)
    else:
      grey = flow_lib._grey(clip.frames)
      sec = median_time(lambda: [est.pair(a, b) for a, b in zip(grey[:-1], grey[1:])], 2)
    rows.append({"size": "432x240", "method": name, "pairs_per_s_cpu": 8 / sec})
    print(rows[-1], flush=True)
  return rows


def completion_table(dfc_ckpt, n):
  cfg = dfc_net_tiny.get_config()
  rows = []
  for size in (cfg.image_size, 64):
    batch = fp.eval_batch(cfg.data, num_images=n, image_size=size, seed=2024,
                          mask_kind="moving_objects")
    r = cfg.data.window // 2
    centre = batch["image"][..., 3 * r:3 * r + 2]
    hole = batch["mask"][..., 0] > 0.5
    target = batch["target"]
    zero = np.where(hole[..., None], 0, centre)
    lap = np.asarray(LaplacianFlowCompleter()(np.where(hole[..., None], 0, centre), hole))
    completer = learned.DFCNetCompleter(dfc_ckpt)
    out = np.asarray(completer._apply(completer.variables, jnp.asarray(batch["image"]),
                                      jnp.asarray(batch["mask"])))
    out = np.where(hole[..., None], out, centre)
    for name, pred in (("zero fill", zero), ("push-pull prefill (DFC-Net input)", centre),
                       ("Laplacian (classical, previous issue)", lap),
                       ("DFC-Net tiny (CPU-trained)", out)):
      rows.append({"size": size, "method": name, "epe_hole": epe(pred, target, hole)})
      print(rows[-1], flush=True)
  return rows


def removal_table(flow_ckpt, dfc_ckpt):
  from flowinpaint.inference import make_inpainter
  clip = make_clip("coffee", 12, 64, 96, seed=3, object_size=0.35, fps=12)
  hole = clip.masks
  rows = []
  combos = {"DIS + Laplacian": ("dis", "laplacian"),
            "flow_net + Laplacian": (flow_ckpt, "laplacian"),
            "DIS + DFC-Net": ("dis", dfc_ckpt),
            "flow_net + DFC-Net": (flow_ckpt, dfc_ckpt)}
  inpainter = make_inpainter("telea")
  for name, (flow, completion) in combos.items():
    est = flow_lib.make_flow_estimator(flow)
    comp = pipeline.make_flow_completer(completion)
    run = lambda: pipeline.remove_clip(clip.frames, hole, flow_estimator=est,
                                       flow_completer=comp, inpainter=inpainter)
    out = run()
    sec = median_time(run, 2)
    err = out.astype(np.float64) - clip.background
    mse = (err[hole] ** 2).mean()
    rows.append({"method": name, "psnr_hole": float(10 * np.log10(255 ** 2 / mse)),
                 "mae_hole": float(np.abs(err[hole]).mean()),
                 "frames_per_s_cpu": len(clip.frames) / sec})
    print(rows[-1], flush=True)
  return rows


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--flow-ckpt", required=True)
  p.add_argument("--dfc-ckpt", required=True)
  p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
  p.add_argument("--num", type=int, default=32)
  p.add_argument("--out", default="experiments/flow/results.json")
  args = p.parse_args()
  result = {"jax": jax.__version__, "device": str(jax.devices()[0]),
            "flow": flow_table(args.flow_ckpt, args.sizes, args.num),
            "completion": completion_table(args.dfc_ckpt, args.num),
            "removal": removal_table(args.flow_ckpt, args.dfc_ckpt)}
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
