"""Speed and memory of video removal on the CPU (issue 14, item 5).

  # The tool end to end (decode mp4 + masks, remove, encode mp4), each run in its own process,
  # code versions interleaved so that the machine's load hits them alike:
  python experiments/video_removal/speed.py tool --sizes 432x240,854x480 --frames 60 \
      --repeats 2 --code before=/path/to/old/checkout --code after=. --json speed.jsonl
  # A long clip streamed through remove_stream (rendered on the fly, never stored), peak RSS:
  python experiments/video_removal/speed.py stream --size 854x480 --frames 1000 --json ...
  # CPU seconds per stage in memory (a cold run with compilation, then a warm one), per code:
  python experiments/video_removal/speed.py stages --size 432x240 --frames 24 \
      --code before=/path/to/old/checkout --code after=. --json ...
  # Windowed vs whole-clip quality in the holes (exact ground truth, no video coding):
  # --window HELD:OVERLAP: at most HELD frames held, OVERLAP frames of context each side, so a
  # window outputs HELD - 2 * OVERLAP frames (the first and last more); repeat to compare several.
  python experiments/video_removal/speed.py windows --size 854x480 --frames 48 \
      --window 16:0 --window 16:4 --window 32:8 --json ...

Clips come from flowinpaint.data.synthetic_video.stream_clip: a camera panning and zooming over
a scikit-image photo, back and forth, with two occluders (40 % of the frame height) moving in
front of it; the background is known exactly. PSNR is measured inside the holes only.
CPU time is user + system of the whole process (all threads): frames per CPU-second is a lower
bound of the frames per second an otherwise idle machine gives (a compute-bound process keeps at
least one core busy), whatever the load when it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = ("coffee", "astronaut", "chelsea")


def clip_stream(size: str, frames: int, seed: int = 0):
  """(frame, background, mask) of the benchmark clip, one at a time."""
  from flowinpaint.data.synthetic_video import stream_clip

  w, h = (int(v) for v in size.split("x"))
  return stream_clip(PHOTOS[seed % len(PHOTOS)], frames, h, w, period=min(frames, 48),
                     seed=seed, object_size=0.4, object_speed=0.01, zoom=1.1)


def machine() -> dict:
  import cv2
  import jax

  return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
          "jax": jax.__version__, "opencv": cv2.__version__, "device": str(jax.devices()[0])}


class HolePSNR:
  """Running PSNR inside the holes over a stream of frames."""

  def __init__(self):
    self.se, self.n = 0.0, 0

  def add(self, out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
    d = out[mask].astype(np.float64) - truth[mask]
    self.se += float((d ** 2).sum())
    self.n += d.size

  @property
  def value(self) -> float:
    return 10 * np.log10(255.0 ** 2 / max(self.se / max(self.n, 1), 1e-10))


def usage() -> dict:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return {"cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mb": r.ru_maxrss / 1024}


def rss_mb() -> float:
  """The process's resident memory now (Linux /proc)."""
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


# --- tool: the command-line tool end to end, one process per run ----------------------------

def write_inputs(size: str, frames: int, folder: str) -> None:
  """in.mp4 (H.264, crf 17 as the tool writes) and masks/ (PNG) of the benchmark clip."""
  import cv2
  from flowinpaint.video import io as vio

  w, h = (int(v) for v in size.split("x"))
  os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
  writer = vio.VideoWriter(os.path.join(folder, "in.mp4"), 24, h, w)
  for i, (frame, _, mask) in enumerate(clip_stream(size, frames)):
    writer.write(frame)
    cv2.imwrite(os.path.join(folder, "masks", f"{i:05d}.png"), mask.astype(np.uint8) * 255)
  writer.close()


def child(report: str, argv: list[str]) -> None:
  """Runs `python -m flowinpaint.remove argv` in this process; its usage goes to `report`."""
  import runpy

  import flowinpaint

  sys.argv = ["flowinpaint.remove"] + argv
  t = time.perf_counter()
  code = 0
  try:
    runpy.run_module("flowinpaint.remove", run_name="__main__")
  except SystemExit as e:
    code = e.code or 0
  with open(report, "w") as f:
    json.dump(dict(usage(), wall_s=time.perf_counter() - t, exit=code,
                   package=os.path.dirname(flowinpaint.__file__)), f)


def parse_stages(stderr: str) -> dict:
  """{'flow': seconds, ...} from the tool's 'time per stage:' line."""
  line = [l for l in stderr.splitlines() if l.startswith("time per stage: ")]
  if not line:
    return {}
  return {m.group(1): float(m.group(2))
          for m in re.finditer(r"(\w+) ([\d.]+) s", line[-1][len("time per stage: "):])}


def run_tool(code: str, folder: str, extra: list[str]) -> dict:
  out = os.path.join(folder, "out.mp4")
  if os.path.exists(out):
    os.remove(out)
  report = os.path.join(folder, "report.json")
  env = dict(os.environ, PYTHONPATH=os.path.abspath(code), JAX_PLATFORMS="cpu")
  load = os.getloadavg()[0]
  res = subprocess.run([sys.executable, os.path.abspath(__file__), "_child", report, "--",
                        "--video", os.path.join(folder, "in.mp4"),
                        "--masks", os.path.join(folder, "masks"), "--output", out, *extra],
                       env=env, capture_output=True, text=True)
  if res.returncode != 0 or not os.path.exists(report):
    raise RuntimeError(res.stderr[-3000:])
  with open(report) as f:
    r = json.load(f)
  r["load_before"], r["load_after"] = load, os.getloadavg()[0]
  r["stage_s"] = parse_stages(res.stderr)
  return r


def tool_quality(size: str, frames: int, folder: str) -> float:
  """Hole PSNR of out.mp4 against the true background (both ends H.264 coded)."""
  from flowinpaint.video import io as vio

  info = vio.probe(os.path.join(folder, "out.mp4"))
  psnr = HolePSNR()
  for out, (_, truth, mask) in zip(vio.iter_frames(info), clip_stream(size, frames)):
    psnr.add(out, truth, mask)
  return psnr.value


def cmd_tool(args) -> None:
  codes = dict(c.split("=", 1) for c in args.code)
  base = tempfile.mkdtemp(prefix="vr_speed_")
  for size in args.sizes.split(","):
    write_inputs(size, args.frames, os.path.join(base, size))
  for rep in range(args.repeats):
    for size in args.sizes.split(","):
      names = list(codes) if rep % 2 == 0 else list(codes)[::-1]
      for name in names:
        folder = os.path.join(base, size)
        r = run_tool(codes[name], folder, args.extra)
        r.update(kind="tool", code=name, size=size, frames=args.frames, repeat=rep,
                 extra=args.extra, hole_psnr_h264=tool_quality(size, args.frames, folder),
                 fps_wall=args.frames / r["wall_s"], fps_per_cpu_s=args.frames / r["cpu_s"],
                 **machine())
        print(json.dumps(r), flush=True)
        if args.json:
          with open(args.json, "a") as f:
            f.write(json.dumps(r) + "\n")


# --- stream: a long clip through remove_stream, in this process -----------------------------

def cmd_stream(args) -> None:
  from flowinpaint.video import io as vio
  from flowinpaint.video import pipeline

  w, h = (int(v) for v in args.size.split("x"))
  fe, fc, inp = pipeline.make_pipeline_parts("dis", "telea")
  config = pipeline.RemovalConfig()
  truth, masks = [], []

  def frames():
    for frame, background, mask in clip_stream(args.size, args.frames):
      truth.append(background)
      masks.append(mask)
      yield frame

  def mask_iter():
    while True:
      yield masks[-1]

  stages = pipeline.Stages(args.frames, progress=False)
  psnr = HolePSNR()
  out_path = os.path.join(tempfile.mkdtemp(prefix="vr_stream_"), "out.mp4")
  writer = vio.VideoWriter(out_path, 24, h, w)
  load = os.getloadavg()[0]
  t = time.perf_counter()
  c0 = usage()["cpu_s"]
  n = 0
  for out in pipeline.remove_stream(frames(), mask_iter(), num_frames=args.frames,
                                    flow_estimator=fe, flow_completer=fc, inpainter=inp,
                                    config=config, max_frames=args.max_frames, stages=stages):
    stages.start("write")
    writer.write(out)
    stages.stop("write", 1)
    psnr.add(out, truth.pop(0), masks.pop(0))  # the pipeline has read this frame's mask
    n += 1
    if args.progress_every and n % args.progress_every == 0:
      u = usage()
      print(json.dumps(dict(progress=n, wall_s=round(time.perf_counter() - t, 1),
                            cpu_s=round(u["cpu_s"] - c0, 1), rss_mb=round(rss_mb()),
                            peak_rss_mb=round(u["peak_rss_mb"]), hole_psnr=psnr.value,
                            load=os.getloadavg()[0])), file=sys.stderr, flush=True)
  writer.close()
  wall = time.perf_counter() - t
  os.remove(out_path)
  u = usage()
  max_frames = args.max_frames or pipeline.max_frames_for(h, w, config)
  r = dict(kind="stream", size=args.size, frames=n, window=max_frames,
           overlap=pipeline.default_overlap(max_frames), wall_s=wall,
           cpu_s=u["cpu_s"] - c0, peak_rss_mb=u["peak_rss_mb"], hole_psnr=psnr.value,
           fps_wall=n / wall, fps_per_cpu_s=n / (u["cpu_s"] - c0),
           stage_s=dict(stages.seconds), load_before=load, load_after=os.getloadavg()[0],
           **machine())
  print(json.dumps(r), flush=True)
  if args.json:
    with open(args.json, "a") as f:
      f.write(json.dumps(r) + "\n")


# --- windows: windowed vs whole-clip quality ------------------------------------------------

def cmd_windows(args) -> None:
  from flowinpaint.video import pipeline

  fe, fc, inp = pipeline.make_pipeline_parts("dis", "telea")
  for seed in range(args.clips):
    parts = list(clip_stream(args.size, args.frames, seed))
    frames, truth, masks = (np.stack(p) for p in zip(*parts))
    results = {}
    plans = [("whole", len(frames), 0)] + [
        (f"held {w}, overlap {o}", int(w), int(o))
        for w, o in (spec.split(":") for spec in args.window)]
    for label, max_frames, overlap in plans:
      stages = pipeline.Stages(len(frames), progress=False)
      c0, t = usage()["cpu_s"], time.perf_counter()
      out = np.stack(list(pipeline.remove_stream(
          iter(frames), iter(masks), num_frames=len(frames), flow_estimator=fe,
          flow_completer=fc, inpainter=inp, max_frames=max_frames, overlap=overlap,
          stages=stages)))
      psnr = HolePSNR()
      psnr.add(out, truth, masks)
      results[label] = dict(max_frames=max_frames, overlap=overlap, hole_psnr=psnr.value,
                            windows=len(pipeline.windows(len(frames), max_frames, overlap)),
                            cpu_s=usage()["cpu_s"] - c0, wall_s=time.perf_counter() - t,
                            stage_cpu_s=dict(stages.cpu_seconds), load=os.getloadavg()[0])
      if label != "whole":
        results[label]["difference_db"] = psnr.value - results["whole"]["hole_psnr"]
      print(label, json.dumps(results[label]), file=sys.stderr, flush=True)
    r = dict(kind="windows", size=args.size, frames=args.frames, seed=seed,
             photo=PHOTOS[seed % len(PHOTOS)], runs=results, **machine())
    print(json.dumps(r), flush=True)
    if args.json:
      with open(args.json, "a") as f:
        f.write(json.dumps(r) + "\n")


# --- stages: CPU seconds per stage, before and after, one process per code version ---------

_STAGES_CHILD = r"""
import json, sys, time
import numpy as np
from flowinpaint.video import pipeline
clip = np.load(sys.argv[1])
frames, truth, masks = clip["frames"], clip["truth"], clip["masks"]
n = len(frames)
fe, fc, inp = pipeline.make_pipeline_parts("dis", "telea")
cpu = {}
start, stop = pipeline.Stages.start, pipeline.Stages.stop
def timed_start(self, stage):
  cpu[stage] = cpu.get(stage, 0.0) - time.process_time()
  start(self, stage)
def timed_stop(self, stage, frames=0):
  cpu[stage] += time.process_time()
  stop(self, stage, frames)
pipeline.Stages.start, pipeline.Stages.stop = timed_start, timed_stop
for label in ("cold", "warm"):
  cpu.clear()
  c0 = time.process_time()
  out = np.stack(list(pipeline.remove_stream(iter(frames), iter(masks), num_frames=n,
                                             flow_estimator=fe, flow_completer=fc,
                                             inpainter=inp)))
  d = out[masks].astype(np.float64) - truth[masks]
  print(json.dumps(dict(run=label, package=pipeline.__file__,
                        cpu_s=time.process_time() - c0, stage_cpu_s=dict(cpu),
                        hole_psnr=10 * np.log10(255.0 ** 2 / np.mean(d ** 2)))), flush=True)
"""


def cmd_stages(args) -> None:
  codes = dict(c.split("=", 1) for c in args.code)
  # The clip is made here (the code under test may predate stream_clip) and read by each child.
  clip = os.path.join(tempfile.mkdtemp(prefix="vr_stages_"), "clip.npz")
  frames, truth, masks = (np.stack(p) for p in zip(*clip_stream(args.size, args.frames)))
  np.savez(clip, frames=frames, truth=truth, masks=masks)
  for name, code in codes.items():
    env = dict(os.environ, PYTHONPATH=os.path.abspath(code), JAX_PLATFORMS="cpu")
    load = os.getloadavg()[0]
    # cwd: not this checkout, which `python -c` would import ahead of PYTHONPATH.
    res = subprocess.run([sys.executable, "-c", _STAGES_CHILD, clip], env=env,
                         cwd=os.path.dirname(clip), capture_output=True, text=True)
    if res.returncode != 0:
      raise RuntimeError(res.stderr[-3000:])
    for line in res.stdout.splitlines():
      r = dict(json.loads(line), kind="stages", code=name, size=args.size, frames=args.frames,
               load_before=load, load_after=os.getloadavg()[0], **machine())
      r["stage_fps_per_cpu_s"] = {k: args.frames / v for k, v in r["stage_cpu_s"].items()
                                  if v > 0 and k not in ("read", "write")}
      print(json.dumps(r), flush=True)
      if args.json:
        with open(args.json, "a") as f:
          f.write(json.dumps(r) + "\n")


def main():
  if len(sys.argv) > 2 and sys.argv[1] == "_child":
    return child(sys.argv[2], sys.argv[4:])
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  t = sub.add_parser("tool")
  t.add_argument("--sizes", default="432x240,854x480")
  t.add_argument("--frames", type=int, default=60)
  t.add_argument("--repeats", type=int, default=2)
  t.add_argument("--code", action="append", default=[],
                 help="NAME=PATH of a checkout to run (repeat; interleaved)")
  t.add_argument("--extra", nargs="*", default=[], help="more arguments for the tool")
  t.add_argument("--json")
  s = sub.add_parser("stream")
  s.add_argument("--size", default="854x480")
  s.add_argument("--frames", type=int, default=1000)
  s.add_argument("--max-frames", type=int)
  s.add_argument("--progress-every", type=int, default=50, metavar="N",
                 help="print frames done, CPU s, RSS and hole PSNR so far every N frames")
  s.add_argument("--json")
  w = sub.add_parser("windows")
  w.add_argument("--size", default="854x480")
  w.add_argument("--frames", type=int, default=60)
  w.add_argument("--clips", type=int, default=1)
  w.add_argument("--window", action="append", default=[], metavar="HELD:OVERLAP",
                 help="frames held at once : context frames each side (repeatable)")
  w.add_argument("--json")
  g = sub.add_parser("stages")
  g.add_argument("--size", default="432x240")
  g.add_argument("--frames", type=int, default=24)
  g.add_argument("--code", action="append", default=[],
                 help="NAME=PATH of a checkout to run (one process each)")
  g.add_argument("--json")
  args = p.parse_args()
  {"tool": cmd_tool, "stream": cmd_stream, "windows": cmd_windows,
   "stages": cmd_stages}[args.cmd](args)


if __name__ == "__main__":
  main()
