"""Scores inpainters on the held-out folder (the `flowinpaint.evaluate` computation) and writes a
sample grid of the first images, in one process (one compilation per model).

  python3 experiments/gpu_session/eval_heldout.py --images HELDOUT --size 256 --num 20 \
      --jsonl eval.jsonl --grid-dir grids/ NAME=WORKDIR [NAME=telea ...]

Images and masks are exactly `python -m flowinpaint.evaluate --images HELDOUT --size 256
--num 20` (flowinpaint.data.pipeline.eval_batch: centre squares, fixed seeded masks
`free_form_and_box`, seed 2024); the metrics are `flowinpaint.evaluate.evaluate_inpainter`'s
(PSNR, SSIM, L1, L2 whole image and inside the hole, seconds per image after a warm-up). Grid
rows: masked input | mask | output | ground truth; a StructureFlow checkpoint gets
masked input | RTV structure of the ground truth | reconstructed structure | appearance flow |
output | ground truth. A model that fails to load or run gets an 'error' line; the others go on.
"""

import argparse
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def load_set(folder: str, size: int, num: int, seed: int, kind: str):
  import ml_collections
  from flowinpaint.data import pipeline
  from flowinpaint.evaluate import _as_uint8_images
  data = ml_collections.ConfigDict({"dataset": "folder", "path": folder})
  batch = pipeline.eval_batch(data, num_images=num, image_size=size, seed=seed, mask_kind=kind)
  return _as_uint8_images(batch["image"]), batch["mask"][..., 0] >= 0.5


def _rtv_picture(images: np.ndarray, inpainter) -> np.ndarray:
  """RTV structure of the ground truth with the checkpoint's own RTV settings, uint8."""
  import jax.numpy as jnp
  from flowinpaint.classical.rtv import rtv
  config = getattr(inpainter, "config", None)
  model = (config.get("model", None) if config is not None else None) or {}
  kw = dict(lam=model.get("rtv_lam", 0.015), sigma=model.get("rtv_sigma", 3.0),
            sharpness=model.get("rtv_sharpness", 1e-3), iterations=model.get("rtv_iterations", 3))
  out = np.asarray(rtv(jnp.asarray(images, jnp.float32) / 255.0, **kw))
  return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def grid(images, holes, outputs, aux=None, rtv_images=None, rows=4) -> np.ndarray:
  from flowinpaint import aux_outputs
  lines = []
  for i in range(min(rows, len(images))):
    x, h = images[i], holes[i]
    masked = np.where(h[..., None], 255, x).astype(np.uint8)
    cols = [masked]
    if aux:
      cols += [rtv_images[i], aux["structure"][i],
               aux_outputs.flow_picture(aux["flow"][i], x.shape[:2])]
    else:
      cols += [np.repeat((h[..., None] * 255).astype(np.uint8), 3, axis=-1)]
    cols += [outputs[i], x]
    lines.append(np.concatenate(cols, axis=1))
  return np.concatenate(lines, axis=0)


def evaluate_one(name: str, spec: str, images, holes, args) -> dict:
  from flowinpaint import evaluate, inference
  t0 = time.perf_counter()
  inpainter = inference.make_inpainter(spec)
  load_s = time.perf_counter() - t0
  result = evaluate.evaluate_inpainter(inpainter, images, holes)
  record = {"name": name, "inpainter": spec,
            "model": getattr(inpainter, "model_name", None) or spec,
            "images": os.path.abspath(args.images), "size": args.size, "num": len(images),
            "mask_seed": args.mask_seed, "mask_kind": args.mask_kind, "load_s": load_s}
  record.update({k: evaluate._json_safe(v) for k, v in result.items()})
  step = None
  if spec not in ("telea", "ns"):
    try:
      from flowinpaint.train import checkpointing
      folder, _ = checkpointing.find_checkpoint(spec)
      step = max((int(n) for n in os.listdir(folder) if n.isdigit()), default=None)
    except Exception:  # Informational only.
      step = None
  record["checkpoint_step"] = step
  if args.grid_dir:
    k = min(args.grid_rows, len(images))
    aux_keys = inpainter.aux_keys() if hasattr(inpainter, "aux_keys") else ()
    if "structure" in aux_keys and "flow" in aux_keys:
      pred, aux = inpainter.predict_with_aux(images[:k], holes[:k], ("structure", "flow"))
      outputs = np.stack([inference.composite(p, x, h)
                          for p, x, h in zip(pred, images[:k], holes[:k])])
      picture = grid(images, holes, outputs, aux, _rtv_picture(images[:k], inpainter), rows=k)
    else:
      outputs = inference.inpaint_batch(inpainter, images[:k], holes[:k])
      picture = grid(images, holes, outputs, rows=k)
    from PIL import Image
    os.makedirs(args.grid_dir, exist_ok=True)
    path = os.path.join(args.grid_dir, f"heldout_{name}.png")
    Image.fromarray(picture).save(path, optimize=True)
    record["grid"] = path
  return record


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("models", nargs="+", help="NAME=WORKDIR or NAME=telea|ns")
  p.add_argument("--images", required=True)
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--num", type=int, default=20)
  p.add_argument("--mask-seed", type=int, default=2024)
  p.add_argument("--mask-kind", default="free_form_and_box")
  p.add_argument("--jsonl", required=True)
  p.add_argument("--grid-dir")
  p.add_argument("--grid-rows", type=int, default=4)
  args = p.parse_args()
  images, holes = load_set(args.images, args.size, args.num, args.mask_seed, args.mask_kind)
  print(f"{'name':<22} {'step':>6} {'PSNR':>7} {'PSNR hole':>9} {'SSIM':>6} {'L1 hole':>8} "
        f"{'s/img':>8}", flush=True)
  for item in args.models:
    name, _, spec = item.partition("=")
    spec = spec or name
    if spec not in ("telea", "ns") and not os.path.isdir(spec):
      record = {"name": name, "inpainter": spec, "error": "no checkpoint (training did not save)"}
    else:
      try:
        record = evaluate_one(name, spec, images, holes, args)
      except Exception as e:  # Report and go on with the next model.
        traceback.print_exc()
        record = {"name": name, "inpainter": spec, "error": f"{type(e).__name__}: {e}"[:2000]}
    if "error" in record:
      print(f"{name:<22} FAILED: {record['error'][:300]}", flush=True)
    else:
      print(f"{name:<22} {str(record['checkpoint_step']):>6} {record['psnr']:>7.2f} "
            f"{record['psnr_hole']:>9.2f} {record['ssim']:>6.3f} {record['l1_hole']:>8.4f} "
            f"{record['seconds_per_image']:>8.4f}", flush=True)
    with open(args.jsonl, "a") as f:
      f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
  main()
