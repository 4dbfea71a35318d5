"""PatchMatch (flowinpaint.classical.patchmatch) side by side with Telea, NS and a pip peer.

  PYTHONPATH=. python experiments/patchmatch/bench.py --sizes 256 512 --kinds free_form box \
      --num 16 --jsonl experiments/patchmatch/results.jsonl --grid /tmp/patchmatch_grid
  PYTHONPATH=. python experiments/patchmatch/bench.py --large 2048 --sizes   # GPU: one 2048^2 photo

Images: scikit-image's bundled colour photos, centre squares resized to each size, with the
project's seeded evaluation masks (flowinpaint.data.pipeline.eval_batch, mask seed 2024), as
`python -m flowinpaint.evaluate` uses them. Every method fills the same holes; every output is
composited (pixels outside the hole are the input's). Scores: PSNR / SSIM over the image and
inside the hole (flowinpaint.evaluate.score), and the hole's gradient energy relative to the
truth (see `gradient_energy_ratio`; 1 = as much detail as the original, a blur is near 0).

Timing: all methods run one image at a time, interleaved (ours, peer, Telea, NS on image 1,
then image 2, ...) after a warm-up pass that compiles every shape ours needs; the warm-up's
time is reported apart. `batched` is ours on all images in batches of 8 (one jitted call per
pyramid level per batch). The peer is optional: pypatchmatch (import `patchmatch`, a C++
PatchMatch inpainter) or patchmatch-cython (import `patchmatch_cython`), whichever is
installed; --peer none skips it. It is never a dependency of flowinpaint.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

MASK_SEED = 2024
BATCH = 8


def gradient_energy_ratio(out: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
  """sum over the hole of |grad out|^2 / the same of the truth (uint8 [H, W, C] images).

  Forward differences (x and y), at every pixel in the hole whose right / lower neighbour
  exists; channels summed.
  """
  def energy(img):
    img = img.astype(np.float64)
    gx = np.zeros(img.shape[:2])
    gy = np.zeros(img.shape[:2])
    gx[:, :-1] = ((img[:, 1:] - img[:, :-1]) ** 2).sum(-1)
    gy[:-1] = ((img[1:] - img[:-1]) ** 2).sum(-1)
    return float((gx + gy)[hole].sum())
  return energy(out) / max(energy(truth), 1e-12)


def load_peer(name: str) -> tuple[Optional[str], Optional[Callable[..., np.ndarray]]]:
  """('package version', fill(rgb uint8, hole bool) -> uint8) of an installed peer, or Nones."""
  wanted = ("pypatchmatch", "patchmatch-cython") if name == "auto" else (name,)
  for package in wanted:
    try:
      if package == "pypatchmatch":
        import patchmatch  # pylint: disable=import-outside-toplevel
        fill = lambda rgb, hole: patchmatch.inpaint(rgb, hole.astype(np.uint8) * 255)
      elif package == "patchmatch-cython":
        import patchmatch_cython  # pylint: disable=import-outside-toplevel
        fill = lambda rgb, hole: patchmatch_cython.inpaint_pyramid(rgb, hole)
      else:
        continue
    except ImportError:
      continue
    return f"{package} {importlib.metadata.version(package)}", fill
  if name not in ("auto", "none"):
    raise SystemExit(f"peer {name!r} is not installed (pip install {name})")
  return None, None


def eval_set(size: int, kind: str, num: int) -> tuple[np.ndarray, np.ndarray]:
  import ml_collections
  from flowinpaint.data import pipeline
  batch = pipeline.eval_batch(ml_collections.ConfigDict({"dataset": "embedded"}),
                              num_images=num, image_size=size, seed=MASK_SEED, mask_kind=kind)
  images = np.clip(np.rint((batch["image"] + 1.0) * 127.5), 0, 255).astype(np.uint8)
  return images, batch["mask"][..., 0] > 0.5


def _composite(out: np.ndarray, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
  return np.where(hole[..., None], out, rgb).astype(np.uint8)


def run_setting(size: int, kind: str, num: int, repeats: int, peer: tuple[Any, Any],
                grid: Optional[str], with_batched: bool = True) -> list[dict[str, Any]]:
  from flowinpaint import evaluate, inference
  from flowinpaint.classical.opencv import inpaint_opencv
  images, holes = eval_set(size, kind, num)
  ours = inference.PatchMatchInpainter(max_batch=BATCH)
  methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"patchmatch": ours}
  peer_name, peer_fill = peer
  if peer_fill is not None:
    methods["peer"] = lambda rgb, hole: _composite(peer_fill(rgb, hole), rgb, hole)
  methods["telea"] = lambda rgb, hole: inpaint_opencv(rgb, hole, method="telea")
  methods["ns"] = lambda rgb, hole: inpaint_opencv(rgb, hole, method="ns")

  start = time.perf_counter()
  for rgb, hole in zip(images, holes):
    ours(rgb, hole)
  warmup = time.perf_counter() - start
  seconds = {name: [] for name in methods}
  outputs = {name: [None] * num for name in methods}
  for _ in range(repeats):
    for i, (rgb, hole) in enumerate(zip(images, holes)):
      for name, fill in methods.items():
        start = time.perf_counter()
        outputs[name][i] = fill(rgb, hole)
        seconds[name].append(time.perf_counter() - start)
  batched_seconds = batched_same = None
  if with_batched:
    ours.inpaint_batch(images[:BATCH], holes[:BATCH])  # Compiles the batch shapes.
    start = time.perf_counter()
    batched = ours.inpaint_batch(images, holes)
    batched_seconds = (time.perf_counter() - start) / num
    # Meant to be 1.0 (randomness is per pixel); recorded, not asserted, so a slip costs a
    # number rather than the run.
    batched_same = float((batched == np.stack(outputs["patchmatch"])).all(-1)[holes].mean())

  rows = []
  for name, outs in outputs.items():
    outs = np.stack(outs)
    assert np.array_equal(outs[~holes], images[~holes]), name  # composited
    scores = evaluate.score(outs, images, holes)
    grad = [gradient_energy_ratio(o, t, m) for o, t, m in zip(outs, images, holes)]
    row = {
        "size": size, "mask_kind": kind, "num_images": num, "method": name,
        "peer": peer_name if name == "peer" else None,
        "psnr": float(np.mean(scores["psnr"])), "psnr_hole": float(np.mean(scores["psnr_hole"])),
        "ssim": float(np.mean(scores["ssim"])), "l1_hole": float(np.mean(scores["l1_hole"])),
        "hole_ratio": float(np.mean(scores["hole_ratio"])),
        "gradient_energy": float(np.mean(grad)),
        "seconds_per_image": float(np.sum(seconds[name]) / (repeats * num)),
    }
    if name == "patchmatch":
      row["warmup_seconds"] = warmup
      row["batched_seconds_per_image"] = batched_seconds
      row["batched_same_fraction"] = batched_same
    rows.append(row)
  if "peer" in seconds:
    rows[0]["speedup_vs_peer"] = rows[1]["seconds_per_image"] / rows[0]["seconds_per_image"]
  if grid:
    write_grid(f"{grid}_{size}_{kind}.png", images, holes, outputs)
  return rows


def write_grid(path: str, images: np.ndarray, holes: np.ndarray,
               outputs: dict[str, list[np.ndarray]], rows: int = 6) -> None:
  """Rows of: input with the hole in white | each method's output | the original."""
  from PIL import Image
  lines = []
  for i in range(min(rows, len(images))):
    shown = images[i].copy()
    shown[holes[i]] = 255
    lines.append(np.concatenate([shown] + [outputs[k][i] for k in outputs] + [images[i]], 1))
  Image.fromarray(np.concatenate(lines, 0)).save(path)
  print(f"wrote {path} (columns: input, {', '.join(outputs)}, original)", file=sys.stderr)


def run_large(size: int, hole_fraction: float) -> dict[str, Any]:
  """Ours on one size x size photo ('coffee' upscaled) with strokes covering ~hole_fraction."""
  import cv2
  import jax
  import skimage.data
  from flowinpaint.classical import patchmatch
  from flowinpaint.data import masks
  rgb = cv2.resize(skimage.data.coffee(), (size, size), interpolation=cv2.INTER_CUBIC)
  rng = np.random.default_rng(MASK_SEED)
  hole = np.zeros((size, size), bool)
  while hole.mean() < hole_fraction:
    hole |= masks.sample_mask(rng, size, size, "free_form") > 0.5
  start = time.perf_counter()
  patchmatch.inpaint(rgb, hole)
  first = time.perf_counter() - start
  times = []
  for _ in range(3):
    start = time.perf_counter()
    patchmatch.inpaint(rgb, hole)
    times.append(time.perf_counter() - start)
  return {"size": size, "method": "patchmatch", "hole_ratio": float(hole.mean()),
          "first_call_seconds": first, "seconds": float(np.median(times)),
          "device": str(jax.devices()[0])}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sizes", type=int, nargs="*", default=[256, 512])
  p.add_argument("--kinds", nargs="+", default=["free_form", "box"])
  p.add_argument("--num", type=int, default=16, help="images per setting (photos repeat with "
                 "other masks past the 8 colour photos)")
  p.add_argument("--repeats", type=int, default=1)
  p.add_argument("--peer", default="auto", choices=["auto", "none", "pypatchmatch",
                                                    "patchmatch-cython"])
  p.add_argument("--large", type=int, default=0, help="also time one LARGE^2 photo")
  p.add_argument("--hole-fraction", type=float, default=0.1)
  p.add_argument("--no-batched", action="store_true",
                 help="skip the batched timing (it compiles the batch shapes: minutes)")
  p.add_argument("--jsonl", help="append result lines here")
  p.add_argument("--grid", help="write sample grids to GRID_SIZE_KIND.png")
  args = p.parse_args()
  import jax
  peer = load_peer(args.peer)
  context = {"jax": jax.__version__, "device": str(jax.devices()[0]), "cpus": os.cpu_count(),
             "machine": platform.processor() or platform.machine(),
             "load_average": os.getloadavg()[0]}
  print(f"peer: {peer[0] or 'none'}; {context}", file=sys.stderr)
  rows = []
  for size in args.sizes:
    for kind in args.kinds:
      rows += run_setting(size, kind, args.num, args.repeats, peer, args.grid,
                          with_batched=not args.no_batched)
  if args.large:
    rows.append(run_large(args.large, args.hole_fraction))
  print("| size | masks | method | PSNR | PSNR hole | SSIM | grad. energy | s/image | speed-up |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    if "mask_kind" not in r:
      print(f"| {r['size']} | {r['hole_ratio']:.0%} strokes | patchmatch | | | | | "
            f"{r['seconds']:.3f} ({r['device']}) | |")
      continue
    name = r["peer"] if r["method"] == "peer" else r["method"]
    speed = f"{r['speedup_vs_peer']:.1f}x" if "speedup_vs_peer" in r else ""
    print(f"| {r['size']} | {r['mask_kind']} | {name} | {r['psnr']:.2f} | {r['psnr_hole']:.2f} "
          f"| {r['ssim']:.3f} | {r['gradient_energy']:.2f} | {r['seconds_per_image']:.3f} | "
          f"{speed} |")
  if args.jsonl:
    with open(args.jsonl, "a") as f:
      for r in rows:
        f.write(json.dumps({**r, **context}) + "\n")


if __name__ == "__main__":
  main()
