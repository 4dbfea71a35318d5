r"""Remove an object or a person from a video: `python -m flowinpaint.remove`.

  python -m flowinpaint.remove --video clip.mp4 --masks masks/ --output clean.mp4
  python -m flowinpaint.remove --video frames/ --masks logo.png --output clean_frames/ --dilate 4
  python -m flowinpaint.remove --video walk.mp4 --segment person \
      --segmentation-weights deeplabv3_resnet50_coco-cd0a2569.pth --output clean.mp4
  python -m flowinpaint.remove --video clip.mp4 --masks masks/ --flow flownet2:fn2/ \
      --output clean.mp4 # fn2/: python -m flowinpaint.convert --from flownet2_pth ...
  python -m flowinpaint.remove --video lecture.mp4 --segment person --preset dfvi \
      --weights dfvi/ --fps 5 --output clean.mp4 # the seed system, from the authors' files

VIDEO is a video file (mp4, mov, mkv, avi, ...) or a folder of frames (natural sort order: 2.png
comes before 10.png). MASKS is a folder with one mask per frame, or one mask image for every frame
(white, > 127 in any channel, = remove). OUTPUT is a video file (H.264; same fps, size and frame
count as the input unless --fps/--resize say otherwise; each frame of a variable-frame-rate input
keeps its time) or a folder of PNG frames, where every pixel outside the (dilated) masks is the
input's, bit for bit. A video output keeps the input's
sound: the audio packets as they are when the container takes the codec, else re-encoded to AAC
(--no-audio drops it; a frame folder has none).

Pipeline (Deep Flow-Guided Video Inpainting, Xu et al. 2019): optical flow between neighbouring
frames, flow completion inside the holes, propagation of known pixels along the flow, and an
image inpainter for what no frame ever shows, repeated until nothing is left.

--preset dfvi runs that system as its authors did, with their networks and settings: FlowNet 2.0,
DFC-Net's three stages (ResNet-50 stage 1, DAVIS stages 2 and 3), their propagation (th_warp 40,
key frames at the ends of each run of unfilled frames, re-propagation) and their PyTorch
DeepFill v1. DIR holds the authors' files as they name them: FlowNet2_checkpoint.pth.tar,
resnet50_stage1.pth, davis_stage2.pth, davis_stage3.pth (also in DIR/DAVIS_model/) and
imagenet_deepfill.pth (--preset dfvi-movie: resnet101_movie.pth instead of the three stages);
each is converted on first use into DIR/converted/. With --segment person, torchvision's
deeplabv3_resnet50_coco-cd0a2569.pth or fcn_resnet50_coco-1167a1af.pth in DIR is used when
--segmentation-weights is not given.
"""

from __future__ import annotations

import argparse
import fractions
import os
import sys
import time
from typing import Iterator, Sequence

import cv2
import numpy as np

from flowinpaint import inference
from flowinpaint import pretrained
from flowinpaint.errors import UserError, cli_entry


class _Parser(argparse.ArgumentParser):
  """argparse whose errors are one `error: ...` line (via cli_entry)."""

  def error(self, message: str):
    raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m flowinpaint.remove", description=__doc__.split("\n\n")[0],
              epilog=__doc__.split("\n\n", 1)[1],
              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--video", required=True, help="video file or folder of frames")
  p.add_argument("--masks", help="folder of per-frame masks, or one mask image")
  p.add_argument("--segment", choices=("person",),
                 help="make the masks by segmenting this class instead of --masks (FCN or "
                 "DeepLabv3 ResNet-50, torchvision weights from --segmentation-weights)")
  p.add_argument("--segmentation-weights", metavar="FILE",
                 help="torchvision fcn_resnet50 / deeplabv3_resnet50 state dict (.pth)")
  p.add_argument("--segmentation-model", choices=("fcn", "deeplabv3"),
                 help="head of the weights (default: recognised from the file)")
  p.add_argument("--output", required=True, help="output video file (.mp4 ...) or PNG folder")
  p.add_argument("--dilate", type=int, metavar="N",
                 help="grow the masks by N pixels (segmentation masks miss edges and shadows; "
                 "default 0, with --segment 1/60 of the shorter side, at least 4)")
  p.add_argument("--fps", type=float, help="process and write at this lower frame rate")
  p.add_argument("--input-fps", type=float, default=24.0,
                 help="frame rate of a frame-folder input (default 24)")
  p.add_argument("--resize", help="process at WxH (e.g. 432x240) or a scale (e.g. 0.5)")
  p.add_argument("--fill-method",
                 help="image inpainter for never-seen regions: a method that needs no model "
                 f"({', '.join(inference.method_names())}) or a flowinpaint checkpoint folder "
                 "(default telea)")
  pretrained.add_arguments(p, flag="--pretrained",
                           what="the image inpainter for never-seen regions instead of "
                           "--fill-method")
  p.add_argument("--flow",
                 help="optical flow estimator: dis, farneback, flownet2:DIR (NVIDIA's FlowNet "
                 "2.0 weights converted with python -m flowinpaint.convert --from flownet2_pth), "
                 "or a flow_net checkpoint folder (default dis)")
  p.add_argument("--flow-completion",
                 help="flow completion inside the holes: laplacian, or a dfc_net checkpoint "
                 "folder (default laplacian)")
  p.add_argument("--preset", choices=("dfvi", "dfvi-movie"),
                 help="Deep Flow-Guided Video Inpainting as its authors ran it, from their "
                 "weight files in --weights DIR (sets the flow, completion, fill and "
                 "propagation; see below)")
  p.add_argument("--weights", metavar="DIR",
                 help="the folder of the authors' files (--preset; default: the weights "
                 "folder's dfvi/, see --weights-dir)")
  p.add_argument("--th-warp", type=float, metavar="PX",
                 help="--preset: DFVI's forward-backward threshold in pixels (default 40, as "
                 "their video_inpaint.py; their README suggests 3 for fixed regions)")
  p.add_argument("--dfc-sizes", metavar="WxH,WxH",
                 help="--preset dfvi: working sizes of DFC-Net stages 2 and 3 (default "
                 "600x320,840x480, the authors')")
  p.add_argument("--max-frames-in-memory", type=int, metavar="N",
                 help="frames held at once (the video streams through the stages in windows; "
                 "default: as many as a 1 GiB budget holds at the frame size)")
  p.add_argument("--window-overlap", type=int, metavar="N",
                 help="frames of context on each side of the frames a window outputs: earlier "
                 "outputs before them, later frames after them, so that holes near a window's "
                 "ends borrow from frames beyond it; below half of --max-frames-in-memory "
                 "(default: a quarter of it)")
  p.add_argument("--crf", type=int, default=17, help="H.264 quality, lower = better (17)")
  p.add_argument("--no-audio", action="store_true",
                 help="write the video without the input's sound (by default its audio track is "
                 "copied, or re-encoded to AAC where the output container cannot hold it)")
  p.add_argument("--quiet", action="store_true",
                 help="no progress bar and no time per stage")
  return p


def parse_resize(spec: str | None, width: int, height: int) -> tuple[int, int]:
  """(width, height) from 'WxH' or a scale factor; the input size when spec is None."""
  if not spec:
    return width, height
  try:
    if "x" in spec.lower():
      w, h = (int(v) for v in spec.lower().split("x"))
    else:
      s = float(spec)
      w, h = max(int(round(width * s)), 1), max(int(round(height * s)), 1)
  except ValueError:
    raise UserError(f"--resize {spec!r}: use WxH (e.g. 432x240) or a scale (e.g. 0.5)") from None
  if w < 2 or h < 2 or w > 16384 or h > 16384:
    raise UserError(f"--resize {spec!r} gives {w}x{h}; sizes from 2 to 16384 work")
  return w, h


def select_frames(num_frames: int, in_fps: fractions.Fraction, fps: float | None,
                  times: Sequence[float] | None = None
                  ) -> tuple[list[int], fractions.Fraction]:
  """Indices of the frames to keep for output rate `fps`, and that rate.

  `times`: each frame's time in seconds (a variable frame rate); None: frames 1 / in_fps apart.
  """
  if fps is None:
    return list(range(num_frames)), in_fps
  if fps <= 0:
    raise UserError(f"--fps must be positive, got {fps}")
  out = fractions.Fraction(fps).limit_denominator(1001)
  if out > in_fps:
    raise UserError(f"--fps {fps} is above the input's {float(in_fps):.3f} fps; --fps can only "
                    "reduce the frame rate")
  # Keep the first frame of each output frame interval.
  if times is None:
    slots = [int(i * out / in_fps) for i in range(num_frames)]
  else:
    slots = [int(t * out + 1e-9) for t in times]
  keep = [i for i in range(num_frames) if i == 0 or slots[i] != slots[i - 1]]
  return keep, out


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
  if (img.shape[1], img.shape[0]) == size:
    return img
  if nearest:
    return cv2.resize(img.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
  shrink = size[0] < img.shape[1]
  return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def parse_dfc_sizes(spec: str) -> tuple[tuple[int, int], tuple[int, int]]:
  """((h, w), (h, w)) of stages 2 and 3 from 'WxH,WxH'."""
  try:
    sizes = [tuple(int(v) for v in part.lower().split("x")) for part in spec.split(",")]
    if len(sizes) != 2 or any(len(s) != 2 or min(s) < 8 for s in sizes):
      raise ValueError
  except ValueError:
    raise UserError(f"--dfc-sizes {spec!r}: give two sizes WxH,WxH of at least 8x8 (the "
                    "authors' are 600x320,840x480)") from None
  return tuple((h, w) for w, h in sizes)


def _make_part(flag: str, value: str, make):
  """`make(value)`, its bad name or missing checkpoint as a one-line error naming `flag`."""
  try:
    return make(value)
  except (FileNotFoundError, ValueError) as e:
    raise UserError(f"{flag} {value}: {e}") from None


def _check_preset_flags(args) -> None:
  """--preset sets the parts itself; its own knobs need it."""
  if args.preset:
    if not args.weights:
      # The weights folder's release folder, as `python -m flowinpaint.pretrained` lists it.
      args.weights = os.path.join(pretrained.weights_dir(args.weights_dir), "dfvi")
      if not os.path.isdir(args.weights):
        raise UserError(f"--preset {args.preset} needs the authors' files: in --weights DIR, "
                        f"else in {args.weights} (not found; python -m flowinpaint.pretrained "
                        "--where dfvi says where they are published)")
    given = [flag for flag, value in (("--flow", args.flow), ("--flow-completion",
                                                              args.flow_completion),
                                      ("--fill-method", args.fill_method),
                                      ("--pretrained", args.pretrained)) if value]
    if given:
      raise UserError(f"--preset {args.preset} sets the flow, the flow completion and the fill "
                      f"itself; leave out {', '.join(given)}")
    if args.dfc_sizes and args.preset != "dfvi":
      raise UserError(f"--dfc-sizes is for the three stages of --preset dfvi, not "
                      f"{args.preset}")
    if args.th_warp is not None and args.th_warp <= 0:
      raise UserError(f"--th-warp must be positive, got {args.th_warp}")
    return
  given = [flag for flag, value in (("--weights", args.weights), ("--th-warp", args.th_warp),
                                    ("--dfc-sizes", args.dfc_sizes)) if value is not None]
  if given:
    raise UserError(f"{', '.join(given)} go with --preset dfvi")


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.pretrained and args.fill_method:
    raise UserError("--pretrained and --fill-method both choose the image inpainter; give one")
  from flowinpaint.video import io as vio  # Lazy: keep --help fast.
  from flowinpaint.video import pipeline

  _check_preset_flags(args)
  info = vio.probe(args.video, default_fps=args.input_fps)
  if (args.masks is None) == (args.segment is None):
    raise UserError("give either --masks or --segment person")
  if args.segment and not args.segmentation_weights and args.preset:
    from flowinpaint.video import dfvi
    args.segmentation_weights = dfvi.segmentation_weights(args.weights)
  if args.segment and not args.segmentation_weights:
    raise UserError("--segment needs --segmentation-weights FILE (a torchvision fcn_resnet50 or "
                    "deeplabv3_resnet50 .pth; nothing is downloaded)")
  out_kind = vio.check_output(args.output, args.video, args.masks or args.video)
  if args.segment:
    from flowinpaint.video.learned import PersonSegmenter
    segmenter = PersonSegmenter(args.segmentation_weights, args.segmentation_model)
    masks = None
  else:
    masks = vio.MaskSource(args.masks, info.num_frames, info.height, info.width)
  if args.dilate is None:
    args.dilate = max(4, min(info.height, info.width) // 60) if args.segment else 0
  if args.dilate < 0:
    raise UserError(f"--dilate must be >= 0, got {args.dilate}")
  if args.max_frames_in_memory is not None and args.max_frames_in_memory < 4:
    raise UserError("--max-frames-in-memory must be at least 4")
  if args.crf < 0 or args.crf > 51:
    raise UserError("--crf must be between 0 and 51")
  variable = info.variable_rate()  # (shortest, longest) gap, or None at a constant rate
  indices, out_fps = select_frames(info.num_frames, info.fps, args.fps,
                                   info.frame_times if variable else None)
  size = parse_resize(args.resize, info.width, info.height)
  audio = None
  if info.audio is not None and not args.no_audio:
    if out_kind == "folder":
      print(f"note: {args.output} is a folder of PNG frames: the audio of {args.video} "
            f"({info.audio}) is not kept", file=sys.stderr)
    else:
      # Every input frame's time span is processed (--fps keeps it at a lower rate), so the
      # whole track goes along; AudioCopy takes start/end for a part. Planned now, so that an
      # audio track the output cannot take fails before the long run, not after it.
      audio = vio.AudioCopy(args.video, args.output)
      if audio.reason:
        print(f"note: {audio.reason}: re-encoding the audio to AAC", file=sys.stderr)
      if info.audio.others:
        print(f"note: {args.video} has {info.audio.others + 1} audio streams; only the default "
              f"one ({info.audio}) is kept", file=sys.stderr)
  config = pipeline.RemovalConfig()
  if args.preset:
    from flowinpaint.video import dfvi
    parts = dfvi.preset_parts(
        args.preset, args.weights, th_warp=dfvi.TH_WARP if args.th_warp is None else args.th_warp,
        refine_sizes=parse_dfc_sizes(args.dfc_sizes) if args.dfc_sizes else dfvi.REFINE_SIZES)
    estimator, completer = parts.flow_estimator, parts.flow_completer
    inpainter, config = parts.inpainter, parts.config
  else:
    from flowinpaint.inference import make_inpainter
    from flowinpaint.video.flow import make_flow_estimator
    pretrained.resolve_args(args, "fill_method")
    estimator = _make_part("--flow", args.flow or "dis", make_flow_estimator)
    completer = _make_part("--flow-completion", args.flow_completion or "laplacian",
                           pipeline.make_flow_completer)
    # One frame per device per call: frames are large (on a CPU, one at a time, as before).
    inpainter = _make_part("--fill-method", args.fill_method or "telea",
                           lambda spec: make_inpainter(spec, max_batch=1))
    import jax
    if args.fill_method == "dip" and jax.default_backend() == "cpu":
      print("warning: --fill-method dip fits a network to every frame that keeps unseen "
            "pixels (thousands of steps each: hours per frame on a CPU); telea or patchmatch "
            "take seconds", file=sys.stderr)
  if args.window_overlap is not None:
    held = args.max_frames_in_memory or pipeline.max_frames_for(
        size[1], size[0], config, raw_flows=hasattr(completer, "complete_both"))
    if not 0 <= 2 * args.window_overlap < held:
      raise UserError(f"--window-overlap must be between 0 and {(held - 1) // 2} for windows of "
                      f"{held} frames (--max-frames-in-memory), got {args.window_overlap}")

  keep = set(indices)

  def frames() -> Iterator[np.ndarray]:
    for i, frame in enumerate(vio.iter_frames(info)):
      if i in keep:
        yield _resize(frame, size)

  def mask_iter() -> Iterator[np.ndarray]:
    if masks is None:  # Segment the kept frames (a second decoding pass over the video).
      for i, frame in enumerate(vio.iter_frames(info)):
        if i in keep:
          yield pipeline.dilate(segmenter(_resize(frame, size)[None])[0], args.dilate)
      return
    for i in indices:
      yield pipeline.dilate(_resize(masks[i], size, nearest=True), args.dilate)

  times = [info.frame_times[i] for i in indices] if variable else [None] * len(indices)
  if variable:
    gaps = f"frames {variable[0] * 1e3:.0f} to {variable[1] * 1e3:.0f} ms apart"
    print(f"note: {args.video} has a variable frame rate ({gaps}): "
          + (f"each frame keeps its time in {args.output}" if out_kind == "video" else
             f"{args.output} is a folder of PNG frames, which keep no times"), file=sys.stderr)
  stages = pipeline.Stages(len(indices), progress=not args.quiet)
  if out_kind == "video":
    root, ext = os.path.splitext(args.output)
    tmp = f"{root}.partial{ext}"
    if audio is not None:
      audio.log = stages.log
    writer = vio.VideoWriter(tmp, out_fps, size[1], size[0], crf=args.crf, audio=audio,
                             timed=bool(variable))
  else:
    names = [info.frame_names[i] for i in indices] if info.is_folder else None
    tmp, writer = None, vio.FolderWriter(args.output, names)
  start = time.perf_counter()
  done = False
  try:
    for frame in pipeline.remove_stream(
        frames(), mask_iter(), num_frames=len(indices), flow_estimator=estimator,
        flow_completer=completer, inpainter=inpainter, config=config,
        max_frames=args.max_frames_in_memory, overlap=args.window_overlap, stages=stages):
      stages.start("write")
      writer.write(frame, times[writer.count])
      stages.stop("write", 1)
    writer.close()
    done = True
  finally:
    stages.close()
    if tmp is not None:
      if done:
        os.replace(tmp, args.output)
      elif os.path.exists(tmp):
        writer.abort()  # The run failed already; the partial file goes either way.
        os.remove(tmp)
  seconds = time.perf_counter() - start
  if not args.quiet:
    print(f"time per stage: {stages.summary()}", file=sys.stderr)
  if writer.count != len(indices):
    print(f"warning: decoded {writer.count} of the {len(indices)} frames the container "
          "announced", file=sys.stderr)
  sound = f" with the {audio.summary}" if audio is not None else ""
  rate = (f"a variable frame rate, {float(out_fps):.3f} fps on average"
          if variable and out_kind == "video" else f"{float(out_fps):.3f} fps")
  print(f"wrote {writer.count} frames ({size[0]}x{size[1]}, {rate}){sound} to "
        f"{args.output} in {seconds:.1f} s ({writer.count / max(seconds, 1e-9):.2f} frames/s)",
        file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
