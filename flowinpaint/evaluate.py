r"""Score an inpainter on a folder of images with the fixed, seeded evaluation masks.

  python -m flowinpaint.evaluate --method telea --images photos/ --size 256 --num 100 \
      --output results.json
  python -m flowinpaint.evaluate --checkpoint workdir/ --images photos/

Images are the centre squares resized to --size (default: the size a checkpoint was trained
at), chosen evenly over the folder exactly as the trainer's evaluation does
(flowinpaint.data.pipeline.eval_batch); masks are
`flowinpaint.data.masks.eval_masks(num, size, size, seed=--mask-seed, kind=--mask-kind)`, so two
runs with the same arguments score the same pixels. Prints a table and writes JSON: PSNR, SSIM,
L1, L2 over the whole (composited) image and inside the hole, the mean hole ratio, and seconds
per image measured after a warm-up call (the first call, with compilation, reported apart).
--save-images DIR writes what was scored, to look at: INDEX_input.png, INDEX_mask.png and
INDEX_output.png for every image (INDEX: its 4-digit position in the evaluation set).

With a StructureFlow checkpoint, --save-structure DIR / --save-flow DIR also write each image's
structure and appearance flow (INDEX_structure.png, INDEX_flow.png, INDEX_flow.npy; INDEX is the
image's 4-digit position in the evaluation set; see flowinpaint.aux_outputs). They come from the
same pass as the scored images (one compilation, no second run over the set), so the timings
then include returning them from the device: compare speed without these options. With an
EdgeConnect checkpoint, --save-edges DIR writes the edge map each image was inpainted with
(INDEX_edges.png) the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

from flowinpaint import aux_outputs
from flowinpaint import inference
from flowinpaint import pretrained
from flowinpaint.errors import UserError, cli_entry

DEFAULT_SIZE = 256  # --size for classical methods (and checkpoints that do not record one).
METRIC_KEYS = ("psnr", "ssim", "l1", "l2", "psnr_hole", "ssim_hole", "l1_hole", "l2_hole",
               "hole_ratio")


def _metrics_fn():
  import jax  # Lazy: `--help` should not wait for JAX.
  from flowinpaint import metrics

  # Intensities in [0, 1]: PSNR with peak 1, L1 / L2 as fractions of full scale.
  return jax.jit(lambda a, b, m: metrics.all_metrics(a / 255.0, b / 255.0, m, data_range=1.0))


def score(outputs: np.ndarray, targets: np.ndarray, masks: np.ndarray, *,
          chunk: int = 16) -> dict[str, np.ndarray]:
  """Per-image metrics ([N] each, METRIC_KEYS) of uint8 outputs against uint8 targets."""
  fn = _metrics_fn()
  masks = np.asarray(masks, np.float32)
  if masks.ndim == 3:
    masks = masks[..., None]
  rows: dict[str, list[np.ndarray]] = {k: [] for k in METRIC_KEYS}
  n = len(outputs)
  for i in range(0, n, chunk):
    sl = slice(i, min(i + chunk, n))
    a, b, m = outputs[sl], targets[sl], masks[sl]
    if len(a) < chunk and n > chunk:
      # Pad the last chunk to the jitted shape instead of compiling a second one.
      pad = chunk - len(a)
      a, b, m = (np.concatenate([x, np.repeat(x[-1:], pad, 0)]) for x in (a, b, m))
    got = fn(a.astype(np.float32), b.astype(np.float32), m)
    for k in METRIC_KEYS:
      rows[k].append(np.asarray(got[k])[:sl.stop - sl.start])
  return {k: np.concatenate(v) for k, v in rows.items()}


def _as_uint8_images(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  from flowinpaint.inference import to_uint8  # float images are taken to be in [-1, 1]
  return to_uint8(images)


def evaluate_inpainter(inpainter: Any, images: np.ndarray, masks: np.ndarray, *,
                       return_outputs: bool = False) -> dict[str, Any]:
  """Runs `inpainter` on every (image, mask) and returns mean metrics and timings.

  Args:
    inpainter: an `inference.Inpainter` (batched through `inpaint_batch` when it has one).
    images: uint8 [N, H, W, 3], or float [N, H, W, 3] in [-1, 1] (the trainer's eval batch).
    masks: [N, H, W] or [N, H, W, 1], 1 = hole.

  Returns:
    {'psnr', 'ssim', 'l1', 'l2', 'psnr_hole', 'ssim_hole', 'l1_hole', 'l2_hole', 'hole_ratio'}:
    means over images (intensities in [0, 1]; PSNR in dB; hole metrics inside the hole only);
    'num_images'; 'seconds_per_image' (steady state, after a warm-up call);
    'first_call_seconds' (the warm-up: compilation included) and 'compile_seconds' (the
    warm-up's excess over the steady-state time of the same images; for an inpainter with a
    `warm_up(rgb, hole)` method, which compiles without inpainting, both are that call's time);
    'images_per_second' (steady state) and 'devices' (how many a batch is split over); with
    `return_outputs`, 'outputs' (uint8 [N, H, W, 3], the composited results that were scored).
  """
  images = _as_uint8_images(images)
  masks = np.asarray(masks)
  if masks.ndim == 4:
    masks = masks[..., 0]
  if images.ndim != 4 or images.shape[-1] != 3 or masks.shape != images.shape[:3]:
    raise ValueError(f"images [N,H,W,3] and masks [N,H,W] must match, got {images.shape} and "
                     f"{masks.shape}")
  n = len(images)
  if n == 0:
    raise ValueError("no images to evaluate")
  holes = masks >= 0.5 if np.issubdtype(masks.dtype, np.floating) else masks.astype(bool)
  # Warm-up on one batch of the size the inpainter will use: compiles that shape.
  capacity = getattr(inpainter, "batch_capacity", None)
  k = min(int(capacity() if capacity else getattr(inpainter, "max_batch", 1)), n)
  start = time.perf_counter()
  warm_up = getattr(inpainter, "warm_up", None)
  if warm_up is not None:
    # A per-image optimisation (DIP) compiles without fitting: a warm-up fit would cost as much
    # as scoring an image. first_call_seconds is then the compilation alone.
    warm_up(images[0], holes[0])
  else:
    inference.inpaint_batch(inpainter, images[:k], holes[:k])
  first = time.perf_counter() - start
  start = time.perf_counter()
  outputs = inference.inpaint_batch(inpainter, images, holes)
  seconds = time.perf_counter() - start
  per_image = seconds / n
  scores = score(outputs, images, holes)
  result: dict[str, Any] = {}
  for key, values in scores.items():
    finite = values[np.isfinite(values)] if key.startswith("psnr") else values[~np.isnan(values)]
    # PSNR of a perfect image is +inf; the mean is over the finite ones (reported as such).
    result[key] = float(finite.mean()) if finite.size else float("nan")
  result.update(
      num_images=n,
      seconds_per_image=per_image,
      images_per_second=n / seconds if seconds > 0 else float("inf"),
      devices=inference.devices_used(inpainter),
      first_call_seconds=first,
      compile_seconds=first if warm_up is not None else max(first - per_image * k, 0.0),
  )
  if return_outputs:
    result["outputs"] = outputs
  return result


def _table(result: dict[str, Any], where: str = "") -> str:
  """The printed summary; `where` says what ran it ('8 gpu devices')."""
  rows = [("", "whole image", "inside hole")]
  for name, key, fmt in (("PSNR (dB)", "psnr", "{:.3f}"), ("SSIM", "ssim", "{:.4f}"),
                         ("L1", "l1", "{:.5f}"), ("L2", "l2", "{:.6f}")):
    rows.append((name, fmt.format(result[key]), fmt.format(result[key + "_hole"])))
  width = [max(len(r[i]) for r in rows) for i in range(3)]
  lines = ["  ".join(c.ljust(width[i]) if i == 0 else c.rjust(width[i])
                     for i, c in enumerate(r)) for r in rows]
  lines += [
      f"hole ratio (mean): {result['hole_ratio']:.1%}   images: {result['num_images']}",
      f"seconds per image: {result['seconds_per_image']:.4f}   "
      f"first call: {result['first_call_seconds']:.2f} s "
      f"(compile ~{result['compile_seconds']:.2f} s)",
      f"throughput: {result['images_per_second']:.2f} images/s (steady state"
      + (f", {where})" if where else ")"),
  ]
  return "\n".join(lines)


class _Parser(argparse.ArgumentParser):

  def error(self, message: str):
    if message.startswith("one of the arguments --checkpoint --method"):
      raise _nothing_to_evaluate()
    raise UserError(f"{message} (see --help)")


def _nothing_to_evaluate() -> UserError:
  return UserError(f"choose what to evaluate: --method {'|'.join(inference.method_names())}, "
                   "--checkpoint DIR or --pretrained NAME")


def build_parser() -> argparse.ArgumentParser:
  from flowinpaint.data.masks import MASK_KINDS
  p = _Parser(prog="python -m flowinpaint.evaluate", description=__doc__.split("\n\n")[0],
              epilog=__doc__.split("\n\n", 1)[1],
              formatter_class=argparse.RawDescriptionHelpFormatter)
  how = p.add_mutually_exclusive_group(required=True)
  how.add_argument("--checkpoint", help="a flowinpaint training workdir or checkpoint folder")
  how.add_argument("--method", choices=inference.method_names(),
                   help="a method that needs no trained model: " + inference.methods_help())
  pretrained.add_arguments(p, how)
  p.add_argument("--radius", type=int, default=3, help="neighbourhood radius for --method")
  p.add_argument("--iterations", type=int, default=inference.DIP_ITERATIONS,
                 help="--method dip: Adam steps per image (default %(default)s, the reference's "
                 "setting for large holes)")
  p.add_argument("--seed", type=int, default=0, help="random seed of the methods that use one")
  p.add_argument("--images", required=True, help="folder of images (searched recursively)")
  p.add_argument("--size", type=int, default=None,
                 help="centre square resized to SIZE x SIZE (default: a checkpoint's training "
                 f"image_size, {DEFAULT_SIZE} for --method)")
  p.add_argument("--num", type=int, default=None,
                 help="number of images (default: all in the folder; more than there are "
                 "repeats images, each with its own mask)")
  p.add_argument("--mask-seed", type=int, default=2024,
                 help="seed of the evaluation masks: the same seed, size and kind give the same "
                 "masks on every run (default 2024, the trainer's eval_mask_seed)")
  p.add_argument("--mask-kind", default="free_form_and_box", choices=MASK_KINDS,
                 help="the kind of evaluation masks (flowinpaint.data.masks; default "
                 "free_form_and_box, DeepFill v2's training masks; outpaint: bands along 1-4 "
                 "sides, to score an outpainting model)")
  p.add_argument("--output", help="write the results as JSON here")
  p.add_argument("--save-images", metavar="DIR",
                 help="write what was scored: INDEX_input.png (the image), INDEX_mask.png "
                 "(white = hole) and INDEX_output.png (the result); DIR is created if missing")
  p.add_argument("--save-structure", metavar="DIR",
                 help="StructureFlow checkpoints: write INDEX_structure.png, the structure the "
                 "model inpainted each image with (RGB, SIZE x SIZE); DIR is created if missing")
  p.add_argument("--save-flow", metavar="DIR",
                 help="StructureFlow checkpoints: write INDEX_flow.png (the appearance flow "
                 "colour-coded, each 1/4-resolution cell a 4x4 block) and INDEX_flow.npy "
                 "(float32 [SIZE/4, SIZE/4, 2], (dx, dy) in image pixels)")
  p.add_argument("--save-edges", metavar="DIR",
                 help="EdgeConnect checkpoints: write INDEX_edges.png, the edge map the model "
                 "inpainted each image with (grayscale, 255 = edge, SIZE x SIZE); DIR is created "
                 "if missing")
  return p


def aux_name(index: int) -> str:
  """The file name prefix of evaluation image `index` (sorts in evaluation order)."""
  return f"{index:04d}"


class AuxRecorder:
  """A ModelInpainter whose batches also return auxiliary outputs, kept from the last batch call.

  `inpaint_batch` runs every image (an empty hole too) through `predict_with_aux` and composites
  as `ModelInpainter.inpaint_batch` does; `aux` then holds that call's outputs ([N, ...] each).
  """

  def __init__(self, inpainter: Any, keys: Sequence[str]):
    self.inpainter = inpainter
    self.keys = tuple(keys)
    self.max_batch = getattr(inpainter, "max_batch", 1)
    self.batch_capacity = getattr(inpainter, "batch_capacity", lambda: self.max_batch)
    self.num_devices = inference.devices_used(inpainter)
    self.aux: dict[str, np.ndarray] = {}

  def inpaint_batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    holes = np.stack([inference.as_hole_mask(m, images.shape[1:3]) for m in masks])
    pred, self.aux = self.inpainter.predict_with_aux(images, holes, self.keys)
    return np.stack([inference.composite(p, x, h) for p, x, h in zip(pred, images, holes)])


def write_aux(aux: dict[str, np.ndarray], dirs: dict[str, str], shape: Sequence[int], *,
              inputs: Sequence[str] = ()) -> list[str]:
  """Writes INDEX_structure.png / INDEX_flow.png / INDEX_flow.npy for every evaluation image.

  `aux` as `AuxRecorder.aux` ([N, ...] per key), `shape` the images' (H, W); returns the paths.
  """
  n = len(next(iter(aux.values()))) if aux else 0
  written = []
  for i in range(n):
    written += aux_outputs.write({k: v[i] for k, v in aux.items()}, dirs, aux_name(i), shape,
                                 inputs=inputs)
  return written


SAVED_IMAGES = ("input", "mask", "output")  # --save-images: INDEX_input.png, ...


def saved_image_paths(folder: str, num: int) -> list[str]:
  """The files --save-images DIR writes for `num` images, in evaluation order."""
  return [os.path.join(folder, f"{aux_name(i)}_{kind}.png") for i in range(num)
          for kind in SAVED_IMAGES]


def save_images(folder: str, images: np.ndarray, holes: np.ndarray, outputs: np.ndarray, *,
                inputs: Sequence[str] = ()) -> list[str]:
  """Writes what was scored: INDEX_input.png (the image), INDEX_mask.png (white = hole) and
  INDEX_output.png (the composited result); uint8 [N, H, W, 3], bool [N, H, W]."""
  from flowinpaint import image_io
  written = []
  paths = iter(saved_image_paths(folder, len(images)))
  for image, hole, output in zip(images, holes, outputs):
    mask = np.repeat((hole.astype(np.uint8) * 255)[..., None], 3, axis=-1)
    for array in (image, mask, output):
      path = next(paths)
      image_io.write_image(path, array, inputs=inputs)
      written.append(path)
  return written


def _check_data(args: argparse.Namespace) -> tuple[Any, int]:
  """(the image folder, the number of images); UserError on a wrong folder or output path."""
  if not os.path.isdir(args.images):
    raise UserError(f"--images {args.images!r} is not a folder")
  from flowinpaint.data import datasets
  folder = datasets.ImageFolder(args.images)
  if args.output:
    from flowinpaint import image_io
    image_io.check_not_input(args.output, folder.paths)
  num = args.num if args.num is not None else len(folder)
  dirs = aux_outputs.requested(args)
  written = [p for i in range(num) for p in aux_outputs.paths(dirs, aux_name(i))]
  if args.save_images:
    if os.path.isfile(args.save_images):
      raise UserError(f"--save-images {args.save_images!r} is a file; give a folder")
    written += saved_image_paths(args.save_images, num)
  aux_outputs.check_not_inputs(written, folder.paths)
  return folder, num


def _load(args: argparse.Namespace, num: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  import ml_collections
  from flowinpaint.data import pipeline
  data = ml_collections.ConfigDict({"dataset": "folder", "path": args.images})
  batch = pipeline.eval_batch(data, num_images=num, image_size=size, seed=args.mask_seed,
                              mask_kind=args.mask_kind)
  return _as_uint8_images(batch["image"]), batch["mask"][..., 0]


def eval_size(args: argparse.Namespace, inpainter: Any) -> int:
  """--size, else the checkpoint's training size (what the model learned at), else 256."""
  if args.size is not None:
    return args.size
  config = getattr(inpainter, "config", None)
  size = config.get("image_size") if config is not None else None
  return int(size) if size else DEFAULT_SIZE


def _json_safe(x: Any) -> Any:
  if isinstance(x, float) and not math.isfinite(x):
    return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
  return x


@cli_entry
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  if not args.method and not args.checkpoint and not args.pretrained:  # --checkpoint ''
    raise _nothing_to_evaluate()
  if args.size is not None and args.size < 8:
    raise UserError(f"--size must be >= 8, got {args.size}")
  if args.iterations < 1:
    raise UserError(f"--iterations must be >= 1, got {args.iterations}")
  if args.num is not None and args.num < 1:
    raise UserError(f"--num must be >= 1, got {args.num}")
  if args.output and os.path.isdir(args.output):
    raise UserError(f"--output {args.output!r} is a folder; give a .json file path")
  dirs = aux_outputs.requested(args)
  aux_outputs.check_request(dirs, args.method)
  # Paths first: a wrong folder or output fails before any model is loaded.
  _, num = _check_data(args)
  pretrained.resolve_args(args)
  inpainter = (inference.make_inpainter(args.method, radius=args.radius,
                                        iterations=args.iterations, seed=args.seed)
               if args.method else inference.make_inpainter(args.checkpoint))
  aux_outputs.check_model(inpainter, dirs, f"checkpoint {args.checkpoint!r}")
  size = eval_size(args, inpainter)
  images, masks = _load(args, num, size)
  # With --save-structure / --save-flow the scored pass also returns them (one compilation).
  runner = AuxRecorder(inpainter, tuple(dirs)) if dirs else inpainter
  result = evaluate_inpainter(runner, images, masks, return_outputs=bool(args.save_images))
  outputs = result.pop("outputs", None)
  print(_table(result, inference.devices_text(inpainter)))
  if args.save_images:
    written = save_images(args.save_images, images, masks.astype(bool), outputs,
                          inputs=[args.output] if args.output else [])
    print(f"wrote {len(written)} images (input, mask, output of each) to {args.save_images}")
  if dirs:
    written = write_aux(runner.aux, dirs, images.shape[1:3],
                        inputs=[args.output] if args.output else [])
    kinds = " / ".join(k for k in aux_outputs.OPTIONS if k in dirs)
    print(f"wrote {len(written)} {kinds} files to {', '.join(sorted(set(dirs.values())))}")
  if args.output:
    record = {
        "inpainter": args.method or args.pretrained or args.checkpoint,
        "model": getattr(inpainter, "name", type(inpainter).__name__),
        "images": os.path.abspath(args.images),
        "size": size,
        "mask_seed": args.mask_seed,
        "mask_kind": args.mask_kind,
        **({"iterations": args.iterations, "seed": args.seed} if args.method == "dip"
           else {"seed": args.seed} if args.method == "patchmatch" else {}),
        "metrics_scale": "intensities in [0, 1]; PSNR in dB; *_hole: inside the hole only",
        **{k: _json_safe(v) for k, v in result.items()},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
      json.dump(record, f, indent=2)
    print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
