"""A long synthetic clip through the `flowinpaint.remove` command line, timed end to end.

  python3 experiments/gpu_session/video_e2e.py --frames 250 --size 854x480 --work DIR --make-only
  python3 experiments/gpu_session/video_e2e.py --frames 250 --size 854x480 --work DIR \
      --json result.json --strip strip.png --timeout 60 [-- extra remove options]

Renders a clip with flowinpaint.data.synthetic_video.make_clip (camera panning 25 % of the width
and zooming x1.1 over scikit-image's coffee photo, two occluders of 40 % of the frame height)
into DIR: an H.264 mp4 (the library's VideoWriter, crf 17), one mask PNG per frame and the true
background (npy). `--make-only` stops there (the GPU run makes the clip while other parts run);
otherwise a clip already in DIR with the same frames and size is reused, and
`python3 -m flowinpaint.remove --video clip.mp4 --masks masks/ --output out.mp4` runs as a
separate process. The figure is that process's wall time: decoding, flow, completion,
propagation, keyframe fill, H.264 encoding, Python start-up and JAX compilation included; the
tool's own time (first decoded frame to last written) and its time per stage (read, flow,
complete, propagate, fill, write: seconds and frames/s) are parsed from what it prints. A run
stopped by --timeout reports how far its progress bar got. PSNR inside the holes is measured
against the known background on the decoded output (so it includes two H.264 round trips).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

STAGE_RE = re.compile(r"(\w+) ([\d.]+) s(?: \(([\d.]+|inf) frames/s\))?")


def parse_stages(text: str) -> dict[str, dict[str, float]] | None:
  """'time per stage: read 1.0 s (250.0 frames/s), flow 2.0 s, ...' -> {stage: {s, fps}}."""
  line = next((l for l in reversed(text.splitlines()) if "time per stage:" in l), None)
  if line is None:
    return None
  out = {}
  for name, seconds, fps in STAGE_RE.findall(line.split("time per stage:", 1)[1]):
    out[name] = {"s": float(seconds)}
    if fps:
      out[name]["frames_per_s"] = float(fps)
  return out


def parse_progress(text: str) -> int | None:
  """Frames written so far, from the tool's progress bar ('..., 120/250 frames written')."""
  found = re.findall(r"(\d+)/\d+ frames written", text)
  return int(found[-1]) if found else None


def psnr(a, b, where) -> float:
  """PSNR over the selected pixels of [T,H,W,3] uint8 clips, a frame at a time (memory)."""
  total, count = 0.0, 0
  for x, y, m in zip(a, b, where):
    d = (x.astype(np.float32) - y.astype(np.float32))[m]
    total += float(np.square(d, dtype=np.float64).sum())
    count += d.size
  mse = total / max(count, 1)
  return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def make(args, w: int, h: int) -> dict:
  """Renders the clip into args.work unless it is there already; returns its description."""
  from PIL import Image
  from flowinpaint.data.synthetic_video import make_clip
  from flowinpaint.video import io as vio
  info_path = os.path.join(args.work, "clip.json")
  want = {"frames": args.frames, "size": args.size, "photo": args.photo}
  if os.path.exists(info_path):
    with open(info_path) as f:
      info = json.load(f)
    if {k: info.get(k) for k in want} == want:
      return info
  os.makedirs(args.work, exist_ok=True)
  t0 = time.perf_counter()
  clip = make_clip(args.photo, args.frames, h, w, seed=0, object_size=0.4, zoom=1.1, fps=24.0)
  vio.write_video(os.path.join(args.work, "clip.mp4"), clip.frames, 24)
  masks_dir = os.path.join(args.work, "masks")
  os.makedirs(masks_dir, exist_ok=True)
  for i, m in enumerate(clip.masks):
    Image.fromarray((m * 255).astype(np.uint8)).save(os.path.join(masks_dir, f"{i:04d}.png"))
  np.save(os.path.join(args.work, "background.npy"), clip.background)
  np.save(os.path.join(args.work, "masks.npy"), clip.masks)
  info = dict(want, hole_fraction=float(clip.masks.mean()),
              make_s=time.perf_counter() - t0)
  with open(info_path, "w") as f:
    json.dump(info, f)
  return info


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--frames", type=int, default=250)
  p.add_argument("--size", default="854x480")
  p.add_argument("--photo", default="coffee")
  p.add_argument("--work", required=True, help="folder for the clip, masks and output")
  p.add_argument("--make-only", action="store_true", help="render the clip and stop")
  p.add_argument("--json", help="write the result here")
  p.add_argument("--strip", help="before/after strip of 4 frames (half size) here")
  p.add_argument("--timeout", type=float, default=300.0,
                 help="seconds for the tool's process (then it is killed and the progress "
                 "so far reported)")
  p.add_argument("extra", nargs="*", help="more flowinpaint.remove options (after --)")
  args = p.parse_args(argv)
  w, h = (int(v) for v in args.size.split("x"))
  clip = make(args, w, h)
  if args.make_only:
    print(json.dumps(clip), flush=True)
    return 0
  from flowinpaint.video import io as vio
  video, masks_dir, out = (os.path.join(args.work, n) for n in ("clip.mp4", "masks", "out.mp4"))
  if os.path.exists(out):
    os.remove(out)
  cmd = [sys.executable, "-m", "flowinpaint.remove", "--video", video, "--masks", masks_dir,
         "--output", out, *args.extra]
  print(f"running (timeout {args.timeout:.0f} s):", " ".join(cmd), flush=True)
  t0 = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    rc, stderr = proc.returncode, proc.stderr
  except subprocess.TimeoutExpired as e:
    rc, stderr = "timeout", (e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr) or ""
  wall = time.perf_counter() - t0
  lines = [l for l in re.split(r"[\r\n]", stderr) if l.strip() and "frames written [" not in l]
  print("\n".join(lines[-15:]), flush=True)
  result = {"frames": args.frames, "size": args.size, "photo": args.photo,
            "hole_fraction": clip.get("hole_fraction"), "command": " ".join(cmd[1:]),
            "returncode": rc, "wall_s": wall, "timeout_s": args.timeout,
            "frames_per_s": args.frames / wall if rc == 0 else None,
            "stages": parse_stages(stderr), "frames_written": parse_progress(stderr),
            "cpus": os.cpu_count()}
  m = re.search(r"wrote (\d+) frames .* in ([\d.]+) s", stderr)
  if m:
    result["frames_written"] = int(m.group(1))
    result["tool_s"] = float(m.group(2))  # From first decoded frame to last written.
    result["tool_frames_per_s"] = int(m.group(1)) / max(float(m.group(2)), 1e-9)
  if rc == 0:
    frames_out, _ = vio.read_video(out)
    frames_in, _ = vio.read_video(video)
    background = np.load(os.path.join(args.work, "background.npy"))
    masks = np.load(os.path.join(args.work, "masks.npy"))
    result["output_frames"] = len(frames_out)
    result["psnr_hole_vs_background"] = psnr(frames_out, background, masks)
    if args.strip:
      from PIL import Image
      idx = np.linspace(0, len(frames_out) - 1, 4).round().astype(int)
      top = np.concatenate([frames_in[j] for j in idx], 1)
      bot = np.concatenate([frames_out[j] for j in idx], 1)
      strip = np.concatenate([top, bot], 0)[::2, ::2]
      Image.fromarray(np.ascontiguousarray(strip)).save(args.strip, optimize=True)
  print(json.dumps(result), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return 0 if rc == 0 else 1


if __name__ == "__main__":
  sys.exit(main())
