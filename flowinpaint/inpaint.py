r"""Fill the holes of images: `python -m flowinpaint.inpaint`.

One image:
  python -m flowinpaint.inpaint --method telea --image photo.jpg --mask mask.png --output out.jpg
A folder (masks matched by file stem, or one mask file for every image):
  python -m flowinpaint.inpaint --checkpoint workdir/ --image photos/ --mask masks/ --output out/
A large photo (the default --strategy auto picks one by size; see flowinpaint.highres):
  python -m flowinpaint.inpaint --checkpoint workdir/ --strategy crop --image 12mp.jpg ...
Outpainting (no mask needed: the new border is the hole; flowinpaint.outpaint):
  python -m flowinpaint.inpaint --method telea --image photo.jpg --extend 10%,0,10%,0 \
      --output wider.png
  python -m flowinpaint.inpaint --checkpoint outpaint_run/ --image photo.jpg --extend-to 16:9 \
      --output wide.png
Deep Image Prior (no weights; fits a network to each photo: hours per photo on a CPU):
  python -m flowinpaint.inpaint --method dip --iterations 3001 --seed 0 --image photo.jpg \
      --mask mask.png --output out.png
StructureFlow's structure and appearance flow next to the result (flowinpaint.aux_outputs):
  python -m flowinpaint.inpaint --checkpoint sf_run/ --image photos/ --mask masks/ \
      --output out/ --save-structure out/structure --save-flow out/flow
EdgeConnect's edge map (the edges it inpainted with) next to the result:
  python -m flowinpaint.inpaint --checkpoint ec_run/ --image photo.jpg --mask mask.png \
      --output out.png --save-edges out/edges

Masks: white (> 127 in any channel) = hole. Any size and RGB / RGBA / grayscale images work: the
output has the input's size and mode (alpha kept unchanged), and every pixel outside the hole is
the input's, bit for bit (with a lossless output format such as PNG).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

from flowinpaint import aux_outputs
from flowinpaint import image_io
from flowinpaint import inference
from flowinpaint import outpaint as outpaint_lib
from flowinpaint import pretrained
from flowinpaint.data import masks as mask_ops
from flowinpaint.errors import UserError, cli_entry

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
INVERTED_WARNING_FRACTION = 0.6


class _Parser(argparse.ArgumentParser):
  """argparse whose errors are one `error: ...` line (via cli_entry), not usage + error."""

  def error(self, message: str):
    if message.startswith("one of the arguments --checkpoint --method"):
      raise _no_way_to_fill()
    raise UserError(f"{message} (see --help)")


def _no_way_to_fill() -> UserError:
  return UserError(f"choose how to fill: --method {'|'.join(inference.method_names())} (no "
                   "model), --checkpoint DIR (a trained flowinpaint model) or --pretrained NAME "
                   "(the authors' weights; python -m flowinpaint.pretrained lists them)")


def build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m flowinpaint.inpaint",
              description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--image", required=True, help="an image file, or a folder of images")
  p.add_argument("--mask",
                 help="a mask file (used for every image), or a folder of masks named like the "
                 "images (same file stem; 'STEM_mask' also matches); optional with --extend / "
                 "--extend-to")
  p.add_argument("--output", required=True,
                 help="output file (single image) or folder; never one of the inputs")
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
  p.add_argument("--resize-mask", action="store_true",
                 help="resize a mask of another size to the image (nearest neighbour)")
  p.add_argument("--mask-orientation", choices=("displayed", "stored"), default="displayed",
                 help="which pixels the mask was drawn on: 'displayed' (default), the photo as "
                 "viewers show it, turned by its EXIF orientation; 'stored', the pixels as the "
                 "file stores them (an editor that ignores EXIF), so the mask is turned too")
  p.add_argument("--invert-mask", action="store_true",
                 help="the mask marks what to KEEP (black = hole)")
  p.add_argument("--dilate", type=int, default=0, metavar="PX",
                 help="grow the hole by PX pixels (a disc) first: masks drawn tight or made by a "
                 "segmenter miss edges and shadows")
  p.add_argument("--feather", type=int, default=0, metavar="PX",
                 help="soft edge: fill the hole grown by PX, then blend the fill into the image "
                 "with a weight falling from 1 at the hole to 0 at PX outside it; pixels farther "
                 "out stay bit-identical")
  p.add_argument("--mask-from", choices=image_io.MASK_FROM, default="auto",
                 help="for masks with transparency: composite over black ('auto'), the alpha "
                 "channel, or the colour channels")
  p.add_argument("--format", help="output extension in folder mode (e.g. png); default: the "
                 "input's")
  p.add_argument("--quality", type=int, default=95, help="JPEG quality of JPEG outputs")
  p.add_argument("--max-pixels", type=int, default=None,
                 help="refuse larger images (decompression-bomb guard); default Pillow's ~89M, 0: no limit")
  p.add_argument("--postprocess", choices=("none", "glcic"), default="none",
                 help="'glcic': GLCIC's post-processing of the filled hole (OpenCV fast-marching "
                 "fill, then Poisson blending of the hole region)")
  op = p.add_argument_group(
      "outpainting (flowinpaint.outpaint)",
      "Grow the canvas and fill the new border with the method or checkpoint (a --mask, if "
      "given, is filled too). Large extensions run in steps: each grows a side by at most "
      "--extend-step of the current canvas, then the next extends that result. The photo's "
      "own pixels come back bit for bit.")
  ext = op.add_mutually_exclusive_group()
  ext.add_argument("--extend", metavar="L,T,R,B",
                   help="pixels to add left, top, right, bottom; each in pixels (64) or a "
                   "percentage of the image's width / height (25%%); one value: every side; "
                   "two: left/right, top/bottom")
  ext.add_argument("--extend-to", metavar="W:H",
                   help="grow to this aspect ratio (16:9, 4:3, 1.5), centred: the smallest "
                   "canvas that holds the photo")
  op.add_argument("--extend-step", type=float, default=outpaint_lib.STEP, metavar="F",
                  help="largest growth of a side in one step, as a fraction of the current "
                  "canvas (default %(default)s: each new band is at most 20%% of the canvas it "
                  "is filled in); 0: everything in one step")
  sf = p.add_argument_group(
      "model internals (StructureFlow and EdgeConnect checkpoints; flowinpaint.aux_outputs)",
      # Broken by hand: the raw formatter that keeps the examples' lines keeps these too.
      "Each image then runs whole, in one pass: --strategy full, or auto on images up\n"
      "to --crop-trigger px (crop and resize are refused: the structure and flow of\n"
      "crops or of a downscaled copy would not describe the image). Folders are\n"
      "created if missing.")
  sf.add_argument("--save-structure", metavar="DIR",
                  help="write STEM_structure.png: the structure the model inpainted with (the "
                  "reconstructed RTV structure), RGB at the image's size")
  sf.add_argument("--save-flow", metavar="DIR",
                  help="write STEM_flow.png (the appearance flow colour-coded, each 1/4-"
                  "resolution cell a 4x4 block) and STEM_flow.npy (float32 [ceil(H/4), "
                  "ceil(W/4), 2], (dx, dy) in image pixels)")
  sf.add_argument("--save-edges", metavar="DIR",
                  help="EdgeConnect: write STEM_edges.png, the edge map the model inpainted with "
                  "(predicted edges in the hole, Canny edges of the known pixels outside; "
                  "grayscale, 255 = edge) at the image's size")
  hd = p.add_argument_group("high resolution (flowinpaint.highres)")
  hd.add_argument("--strategy", choices=("auto", "full", "crop", "resize"), default="auto",
                  help="'crop': inpaint a margin around each hole region and paste back; "
                  "'resize': inpaint a downscaled copy and paste back only the hole; 'full': the "
                  "whole image at once; 'auto' (default): full up to --crop-trigger px, then crop "
                  "when the crops are small relative to the image, else resize")
  hd.add_argument("--crop-trigger", type=int, default=800,
                  help="auto: images whose longest side is at most this run whole (default 800)")
  hd.add_argument("--crop-margin", type=int, default=128,
                  help="crop: context pixels around each hole region (default 128)")
  hd.add_argument("--resize-limit", type=int, default=1280,
                  help="resize: longest side of the downscaled copy (default 1280)")
  hd.add_argument("--model-size", type=int, default=None, metavar="N",
                  help="crop: a crop of more than N*N pixels is downscaled to that many; "
                  "default 512 for a model, no limit for --method; 0: never downscale")
  return p


@dataclasses.dataclass
class Job:
  image: str
  mask: Optional[str]
  output: str


def _warn(msg: str) -> None:
  print(f"warning: {msg}", file=sys.stderr)


def _list_images(folder: str) -> list[str]:
  names = sorted(n for n in os.listdir(folder)
                 if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(folder, n)))
  return [os.path.join(folder, n) for n in names]


def _mask_index(folder: str) -> dict[str, str]:
  index: dict[str, str] = {}
  for path in _list_images(folder):
    index.setdefault(os.path.splitext(os.path.basename(path))[0], path)
  return index


def plan(args: argparse.Namespace) -> list[Job]:
  """The (image, mask, output) triples to run; checks the paths before any work."""
  for what, path in (("image", args.image), ("mask", args.mask)):
    if path is not None and not os.path.exists(path):
      raise UserError(f"{what} {path!r} does not exist")
  if os.path.isdir(args.image):
    if os.path.exists(args.output) and not os.path.isdir(args.output):
      raise UserError(f"--image is a folder, so --output must be a folder; {args.output!r} is a file")
    if image_io.same_file(args.output, args.image):
      raise UserError(f"output folder {args.output!r} is the input folder; the results would "
                      "overwrite the inputs, choose another output folder")
    images = _list_images(args.image)
    if not images:
      raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {args.image!r}")
    masks = _mask_index(args.mask) if args.mask and os.path.isdir(args.mask) else None
    if masks is not None and image_io.same_file(args.mask, args.image):
      # Masks kept beside their images ('x.png' + 'x_mask.png'): the masks are not images.
      images = [p for p in images
                if not os.path.splitext(os.path.basename(p))[0].endswith("_mask")]
    elif masks is None and args.mask:
      images = [p for p in images if not image_io.same_file(p, args.mask)]
    jobs = []
    for path in images:
      stem, ext = os.path.splitext(os.path.basename(path))
      if masks is None:
        mask = args.mask
      elif image_io.same_file(args.mask, args.image):
        mask = masks.get(f"{stem}_mask")
      else:
        mask = masks.get(stem) or masks.get(f"{stem}_mask")
      if args.format:
        ext = "." + args.format.lower().lstrip(".")
      jobs.append(Job(path, mask, os.path.join(args.output, stem + ext)))
  else:
    if args.mask and os.path.isdir(args.mask):
      stem = os.path.splitext(os.path.basename(args.image))[0]
      masks = _mask_index(args.mask)
      mask = masks.get(stem) or masks.get(f"{stem}_mask")
      if mask is None:
        raise UserError(f"no mask named {stem}.* in folder {args.mask!r}")
    else:
      mask = args.mask
    output = args.output
    if os.path.isdir(output):
      output = os.path.join(output, os.path.basename(args.image))
    jobs = [Job(args.image, mask, output)]
  inputs = set(images if os.path.isdir(args.image) else [args.image])
  inputs = image_io.InputFiles(sorted(inputs | {j.mask for j in jobs if j.mask}))
  for job in jobs:
    image_io.check_not_input(job.output, inputs)
    image_io._format_for(job.output)  # pylint: disable=protected-access  # fail before work
  _check_aux_paths(jobs, aux_outputs.requested(args), inputs)
  return jobs


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def _check_aux_paths(jobs: Sequence[Job], dirs: dict[str, str], inputs: Sequence[str]) -> None:
  """The structure / flow files overwrite no input, no result and no other image's files."""
  if not dirs:
    return
  seen = {os.path.realpath(j.output): f"the result of {j.image}" for j in jobs}
  for job in jobs:
    paths = aux_outputs.paths(dirs, _stem(job.image))
    aux_outputs.check_not_inputs(paths, inputs)
    for path in paths:
      key = os.path.realpath(path)
      if key in seen:
        # E.g. 'a.png' and 'a.jpg' share a stem, so they would share side files.
        raise UserError(f"{path} would be written twice: for {job.image} and as {seen[key]}; "
                        "choose other folders or rename one of the images")
      seen[key] = f"a side file of {job.image}"


def _make_inpainter(args: argparse.Namespace):
  if args.method:
    return inference.make_inpainter(args.method, radius=args.radius, iterations=args.iterations,
                                    seed=args.seed)
  return inference.make_inpainter(args.checkpoint)


class _MaskCache:
  """Reads each mask file once (a broadcast mask serves every image)."""

  def __init__(self, args: argparse.Namespace):
    self.args = args
    self.cache: dict[str, np.ndarray] = {}

  def get(self, path: Optional[str], shape: tuple[int, int], orientation: int = 1) -> np.ndarray:
    """The hole for an image of `shape` whose EXIF `orientation` was applied on reading."""
    if path is None:  # Outpainting without a mask: nothing inside the photo is a hole.
      return np.zeros(shape, bool)
    if path not in self.cache:
      self.cache[path] = image_io.read_mask(path, mask_from=self.args.mask_from,
                                            max_pixels=self.args.max_pixels)
    hole = self.cache[path]
    stored = self.args.mask_orientation == "stored"
    if stored:
      hole = image_io.apply_orientation(hole, orientation)
    if hole.shape != shape and self.args.resize_mask:
      print(f"note: mask {path} resized from {hole.shape[1]}x{hole.shape[0]} to "
            f"{shape[1]}x{shape[0]} (nearest)", file=sys.stderr)
    hole = image_io.fit_mask(hole, shape, resize=self.args.resize_mask, path=path,
                             orientation=1 if stored else orientation)
    return ~hole if self.args.invert_mask else hole


@dataclasses.dataclass
class _Work:
  """One image between reading and writing: a folder's images go through the model together."""
  job: Job
  img: Any  # image_io's loaded image: .rgb, .shape, .orientation, ...
  hole: np.ndarray  # bool [H, W]: what the model fills (grown by --feather).
  ratio: float  # The hole's share of the image (before --feather).
  seconds: float  # Time spent on this image so far.
  blend: Optional[np.ndarray] = None  # --feather weights, [H, W] float.
  strategy: str = "full"
  out: Optional[np.ndarray] = None  # The filled image, uint8 [H, W, 3].
  aux: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _prepare(job: Job, inpainter, masks: _MaskCache, args: argparse.Namespace,
             inputs: Sequence[str]) -> Optional[_Work]:
  """Reads an image and its hole; None when it is done already (an empty mask: copied)."""
  start = time.perf_counter()
  img = image_io.read_image(job.image, max_pixels=args.max_pixels)
  for note in img.notes:
    _warn(note)
  hole = masks.get(job.mask, img.shape, img.orientation)
  if args.dilate:
    hole = mask_ops.dilate(hole, args.dilate) > 0.5
  ratio = float(hole.mean())
  if extending(args):
    _run_outpaint(job, img, hole, inpainter, args, inputs, start)
    return
  if ratio > INVERTED_WARNING_FRACTION:
    hint = "" if args.invert_mask else " - inverted? use --invert-mask"
    _warn(f"mask {job.mask} covers {ratio:.0%} of {job.image}{hint}")
  dirs = aux_outputs.requested(args)
  if dirs:
    _check_one_pass(job.image, img.shape, dirs, args)
  work = _Work(job, img, hole, ratio, 0.0)
  if not hole.any():
    print(f"note: mask {job.mask} is empty; {job.image} is copied unchanged", file=sys.stderr)
    if dirs:
      # The structure / flow of an image without a hole still exists: every image gets its files.
      work.aux = inpainter.inpaint_with_aux(img.rgb, hole, tuple(dirs))[1]
    if os.path.splitext(job.output)[1].lower() == os.path.splitext(job.image)[1].lower():
      image_io.check_not_input(job.output, inputs)
      os.makedirs(os.path.dirname(os.path.abspath(job.output)), exist_ok=True)
      shutil.copyfile(job.image, job.output)
      side = _write_aux(work.aux, dirs, job, img.shape, inputs)
      if side:
        print(f"wrote {', '.join(side)}")
      return None
    work.out = img.rgb
  else:
    if args.feather:
      work.blend = mask_ops.feather_weights(hole, args.feather)
      work.hole = work.blend > 0  # The model fills the whole band that the blend reads.
    if not dirs:  # With them the image runs whole ('full'), checked above.
      from flowinpaint import highres  # Lazy, like the inpainter: `--help` stays fast.
      if args.strategy == "auto":
        work.strategy = highres.choose_strategy(img.shape, work.hole,
                                                crop_margin=args.crop_margin,
                                                crop_trigger=args.crop_trigger)
      else:
        work.strategy = args.strategy
  work.seconds = time.perf_counter() - start
  return work


def _fill(works: Sequence[_Work], inpainter, args: argparse.Namespace) -> None:
  """Fills every work's hole (sets .out, and .aux if asked). The images that run whole go through
  the model together (inference.inpaint_many: buckets of one padded size, batches over every
  device); crops and downscaled copies of large photos one image at a time (highres)."""
  dirs = aux_outputs.requested(args)
  todo = [w for w in works if w.out is None]
  whole = [w for w in todo if w.strategy == "full"]
  if whole:
    start = time.perf_counter()
    rgbs, holes = [w.img.rgb for w in whole], [w.hole for w in whole]
    if dirs:
      results = inpainter.inpaint_many_with_aux(rgbs, holes, tuple(dirs)) if hasattr(
          inpainter, "inpaint_many_with_aux") else [
              inpainter.inpaint_with_aux(x, m, tuple(dirs)) for x, m in zip(rgbs, holes)]
      for w, (out, aux) in zip(whole, results):
        w.out, w.aux = out, aux
    else:
      for w, out in zip(whole, inference.inpaint_many(inpainter, rgbs, holes)):
        w.out = inference.composite(out, w.img.rgb, w.hole)  # As highres' 'full' does.
    share = (time.perf_counter() - start) / len(whole)
    for w in whole:
      w.seconds += share
  for w in todo:
    if w.out is None:
      from flowinpaint import highres
      start = time.perf_counter()
      w.out = highres.inpaint_highres(inpainter, w.img.rgb, w.hole, strategy=w.strategy,
                                      model_size=args.model_size, crop_margin=args.crop_margin,
                                      crop_trigger=args.crop_trigger,
                                      resize_limit=args.resize_limit)
      w.seconds += time.perf_counter() - start


def _finish(work: _Work, args: argparse.Namespace, inputs: Sequence[str]) -> None:
  """Post-processes, blends and writes a filled image (and its structure / flow files)."""
  start = time.perf_counter()
  img, job, out = work.img, work.job, work.out
  if work.hole.any():
    if args.postprocess == "glcic":
      from flowinpaint.classical.poisson import glcic_postprocess
      out = glcic_postprocess(img.rgb, out, work.hole)
    if work.blend is not None:
      blend = work.blend[..., None]
      mixed = np.rint(blend * out + (1.0 - blend) * img.rgb)
      out = np.where(work.hole[..., None], mixed, img.rgb).astype(np.uint8)
  for note in image_io.save_loaded(job.output, out, img, inputs=inputs, quality=args.quality):
    _warn(note)
  side = _write_aux(work.aux, aux_outputs.requested(args), job, img.shape, inputs)
  h, w = img.shape
  how = "" if work.strategy == "full" else f", {work.strategy}"
  seconds = work.seconds + time.perf_counter() - start
  print(f"wrote {job.output} ({w}x{h}, hole {work.ratio:.1%}{how}, {seconds:.2f} s)"
        + (f" and {', '.join(side)}" if side else ""))


def run_one(job: Job, inpainter, masks: _MaskCache, args: argparse.Namespace,
            inputs: Sequence[str]) -> None:
  """Inpaints one image and writes it; UserError on bad input."""
  work = _prepare(job, inpainter, masks, args, inputs)
  if work is not None:
    _fill([work], inpainter, args)
    _finish(work, args, inputs)


def run_folder(jobs: Sequence[Job], inpainter, masks: _MaskCache, args: argparse.Namespace,
               inputs: Sequence[str]) -> int:
  """Inpaints every job, a model's batch of images at a time; returns how many failed.

  A job without a mask, or whose image or mask is bad, is skipped with a warning.
  """
  group = int(getattr(inpainter, "batch_capacity", lambda: 1)())
  failed = 0
  works: list[_Work] = []

  def flush() -> None:
    nonlocal failed
    try:
      _fill(works, inpainter, args)
    except UserError:  # Find the image at fault: fill them one by one.
      for work in list(works):
        try:
          _fill([work], inpainter, args)
        except UserError as e:
          _warn(f"{e}; skipped")
          failed += 1
          works.remove(work)
    for work in works:
      try:
        _finish(work, args, inputs)
      except UserError as e:
        _warn(f"{e}; skipped")
        failed += 1
    works.clear()

  for job in jobs:
    if job.mask is None and args.mask is not None:
      _warn(f"no mask for {job.image} in {args.mask} (expected "
            f"{os.path.splitext(os.path.basename(job.image))[0]}.*); skipped")
      failed += 1
      continue
    try:
      work = _prepare(job, inpainter, masks, args, inputs)
    except UserError as e:
      _warn(f"{e}; skipped")
      failed += 1
      continue
    if work is not None:
      works.append(work)
    if len(works) >= group:
      flush()
  flush()
  return failed


def extending(args: argparse.Namespace) -> bool:
  return bool(args.extend or args.extend_to)


def _margins(args: argparse.Namespace, shape: tuple[int, int]) -> outpaint_lib.Margins:
  h, w = shape
  try:
    if args.extend:
      return outpaint_lib.parse_margins(args.extend, w, h)
    return outpaint_lib.margins_for_aspect(w, h, args.extend_to)
  except ValueError as e:
    flag = "--extend" if args.extend else "--extend-to"
    raise UserError(f"{flag}: {e}") from e


def _run_outpaint(job: Job, img: image_io.LoadedImage, hole: np.ndarray, inpainter: Any,
                  args: argparse.Namespace, inputs: Sequence[str], start: float) -> None:
  """Grows the canvas of one image, fills the border (and `hole`) and writes it."""
  from flowinpaint import highres  # Lazy, like the inpainter: `--help` stays fast.
  margins = _margins(args, img.shape)
  h, w = img.shape
  new_w, new_h = margins.size(w, h)
  limit = image_io.MAX_PIXELS if args.max_pixels is None else args.max_pixels
  if limit and new_w * new_h > limit:
    raise UserError(f"extending {job.image} ({w}x{h}) by {margins} (L,T,R,B px) gives "
                    f"{new_w}x{new_h} = {new_w * new_h / 1e6:.1f} megapixels, over the limit of "
                    f"{limit / 1e6:g} (--max-pixels)")
  if not margins.any() and not hole.any():
    print(f"note: {job.image} is already {w}x{h} ({args.extend or args.extend_to}); written "
          "unchanged", file=sys.stderr)

  def fill(rgb: np.ndarray, new_hole: np.ndarray) -> np.ndarray:
    return highres.inpaint_highres(inpainter, rgb, new_hole, strategy=args.strategy,
                                   model_size=args.model_size, crop_margin=args.crop_margin,
                                   crop_trigger=args.crop_trigger, resize_limit=args.resize_limit)

  out, steps = outpaint_lib.outpaint(fill, img.rgb, margins, hole=hole if hole.any() else None,
                                     step=args.extend_step)
  # The new border is painted, so it is opaque in an image with transparency.
  alpha = None if img.alpha is None else outpaint_lib.extend_plane(img.alpha, margins, 255)
  like = dataclasses.replace(img, rgb=out, alpha=alpha)
  for note in image_io.save_loaded(job.output, out, like, inputs=inputs, quality=args.quality):
    _warn(note)
  how = f"{len(steps)} step{'s' if len(steps) != 1 else ''}"
  print(f"wrote {job.output} ({new_w}x{new_h}: {w}x{h} extended by {margins} px L,T,R,B in "
        f"{how}{f', hole {float(hole.mean()):.1%}' if hole.any() else ''}, "
        f"{time.perf_counter() - start:.2f} s)")


def _check_one_pass(image: str, shape: tuple[int, int], dirs: dict[str, str],
                    args: argparse.Namespace) -> None:
  """UserError unless the image runs whole (the structure, flow or edges of crops would not
  tile)."""
  if args.strategy == "auto" and max(shape) > args.crop_trigger:
    h, w = shape
    raise UserError(f"{image} is {w}x{h}, larger than --crop-trigger {args.crop_trigger}, so "
                    f"--strategy auto would not run it whole, which "
                    f"{' and '.join(aux_outputs.OPTIONS[k] for k in dirs)} "
                    f"need{'s' if len(dirs) == 1 else ''}; use --strategy full (or a larger "
                    "--crop-trigger)")


def _write_aux(aux: dict[str, np.ndarray], dirs: dict[str, str], job: Job,
               shape: tuple[int, int], inputs: Sequence[str]) -> list[str]:
  """Writes STEM_structure.png / STEM_flow.png / STEM_flow.npy / STEM_edges.png as requested;
  returns the paths."""
  if not dirs:
    return []
  return aux_outputs.write(aux, dirs, _stem(job.image), shape, inputs=inputs)


@cli_entry
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  if not args.method and not args.checkpoint and not args.pretrained:  # --checkpoint ''
    raise _no_way_to_fill()
  if args.radius < 1:
    raise UserError(f"--radius must be >= 1, got {args.radius}")
  if args.iterations < 1:
    raise UserError(f"--iterations must be >= 1, got {args.iterations}")
  if args.mask is None and not extending(args):
    raise UserError("--mask is required (a file or a folder of masks), unless --extend or "
                    "--extend-to grows the canvas")
  if extending(args):
    if not args.extend_step >= 0:
      raise UserError(f"--extend-step must be >= 0, got {args.extend_step}")
    for flag, bad in (("--feather", args.feather), ("--postprocess glcic",
                                                    args.postprocess == "glcic"),
                      ("--save-structure", args.save_structure), ("--save-flow", args.save_flow),
                      ("--save-edges", args.save_edges)):
      if bad:
        raise UserError(f"{flag} cannot be combined with --extend / --extend-to (it works on "
                        "holes inside the photo, in one pass)")
  for flag, value, low in (("--crop-trigger", args.crop_trigger, 1),
                           ("--crop-margin", args.crop_margin, 0),
                           ("--resize-limit", args.resize_limit, 1),
                           ("--model-size", args.model_size, 0),
                           ("--dilate", args.dilate, 0), ("--feather", args.feather, 0)):
    if value is not None and value < low:
      raise UserError(f"{flag} must be >= {low}, got {value}")
  dirs = aux_outputs.requested(args)
  aux_outputs.check_request(dirs, args.method)
  if dirs and args.strategy in ("crop", "resize"):
    raise UserError(f"{' and '.join(aux_outputs.OPTIONS[k] for k in dirs)} "
                    f"need{'s' if len(dirs) == 1 else ''} the whole image in one pass; "
                    f"--strategy {args.strategy} inpaints "
                    f"{'crops' if args.strategy == 'crop' else 'a downscaled copy'}: use "
                    "--strategy full (or auto, whole up to --crop-trigger px)")
  jobs = plan(args)
  pretrained.resolve_args(args)
  inputs = image_io.InputFiles(sorted({j.image for j in jobs} |
                                      {j.mask for j in jobs if j.mask}))
  inpainter = _make_inpainter(args)
  aux_outputs.check_model(inpainter, dirs, f"checkpoint {args.checkpoint!r}")
  masks = _MaskCache(args)
  if len(jobs) == 1 and not os.path.isdir(args.image):
    run_one(jobs[0], inpainter, masks, args, inputs)
    return 0
  start = time.perf_counter()
  failed = run_folder(jobs, inpainter, masks, args, inputs)
  seconds = time.perf_counter() - start
  done = len(jobs) - failed
  print(f"done: {done} of {len(jobs)} images written to {args.output}"
        + (f", {failed} failed or skipped" if failed else ""))
  print(f"throughput: {done / max(seconds, 1e-9):.2f} images/s ({done} in {seconds:.1f} s, "
        f"{inference.devices_text(inpainter)})")
  if failed and not done:
    raise UserError(f"all {failed} images failed or were skipped")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
