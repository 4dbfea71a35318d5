"""A long synthetic clip through the `flowinpaint.remove` command line, timed end to end.

  python3 experiments/gpu_session/video_e2e.py --frames 250 --size 854x480 --work DIR \
      --json result.json --strip strip.png [--budget 330] [-- extra remove options]

Renders a clip with flowinpaint.data.synthetic_video.make_clip (camera panning 25 % of the width
and zooming x1.1 over scikit-image's coffee photo, two occluders of 40 % of the frame height),
writes it as an H.264 mp4 (the library's VideoWriter, crf 17) and one mask PNG per frame, then
runs `python3 -m flowinpaint.remove --video clip.mp4 --masks masks/ --output out.mp4 --quiet` as
a separate process. The wall time of that process is the figure: decoding, flow, completion,
propagation, keyframe fill, encoding, Python start-up and JAX compilation included. PSNR inside
the holes is measured against the known background on the decoded output (so it includes two
H.264 round trips; the input's own PSNR outside the holes shows the codec's share).
"""

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


def psnr(a, b, where) -> float:
  """PSNR over the selected pixels of [T,H,W,3] uint8 clips, a frame at a time (memory)."""
  total, count = 0.0, 0
  for x, y, m in zip(a, b, where):
    d = (x.astype(np.float32) - y.astype(np.float32))[m]
    total += float(np.square(d, dtype=np.float64).sum())
    count += d.size
  mse = total / max(count, 1)
  return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--frames", type=int, default=250)
  p.add_argument("--size", default="854x480")
  p.add_argument("--photo", default="coffee")
  p.add_argument("--work", required=True, help="scratch folder for the clip, masks, output")
  p.add_argument("--json", required=True)
  p.add_argument("--strip", help="before/after strip of 4 frames (half size) here")
  p.add_argument("--budget", type=float, default=330.0,
                 help="seconds for this whole script: the tool's process gets what is left after "
                 "making the clip, less 40 s for reading back and scoring")
  p.add_argument("extra", nargs="*", help="more flowinpaint.remove options (after --)")
  args = p.parse_args()
  w, h = (int(v) for v in args.size.split("x"))
  from PIL import Image
  from flowinpaint.data.synthetic_video import make_clip
  from flowinpaint.video import io as vio

  script_start = time.perf_counter()
  os.makedirs(args.work, exist_ok=True)
  t0 = time.perf_counter()
  clip = make_clip(args.photo, args.frames, h, w, seed=0, object_size=0.4, zoom=1.1, fps=24.0)
  video, masks_dir, out = (os.path.join(args.work, n) for n in ("clip.mp4", "masks", "out.mp4"))
  vio.write_video(video, clip.frames, 24)
  os.makedirs(masks_dir, exist_ok=True)
  for i, m in enumerate(clip.masks):
    Image.fromarray((m * 255).astype(np.uint8)).save(os.path.join(masks_dir, f"{i:04d}.png"))
  make_s = time.perf_counter() - t0
  if os.path.exists(out):
    os.remove(out)
  cmd = [sys.executable, "-m", "flowinpaint.remove", "--video", video, "--masks", masks_dir,
         "--output", out, "--quiet", *args.extra]
  timeout = max(30.0, args.budget - (time.perf_counter() - script_start) - 40.0)
  print(f"running (timeout {timeout:.0f} s):", " ".join(cmd), flush=True)
  t0 = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rc, stderr = proc.returncode, proc.stderr
  except subprocess.TimeoutExpired as e:
    rc, stderr = "timeout", (e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr) or ""
  wall = time.perf_counter() - t0
  print(stderr[-3000:], flush=True)
  result = {"frames": args.frames, "size": args.size, "photo": args.photo,
            "hole_fraction": float(clip.masks.mean()), "make_clip_and_write_s": make_s,
            "command": " ".join(cmd[1:]), "returncode": rc, "wall_s": wall,
            "timeout_s": timeout, "s_per_frame": wall / args.frames,
            "frames_per_s": args.frames / wall}
  m = re.search(r"wrote (\d+) frames .* in ([\d.]+) s", stderr)
  if m:
    result["tool_reported_frames"] = int(m.group(1))
    result["tool_reported_s"] = float(m.group(2))  # From first decoded frame to last written.
  if rc == 0:
    frames_out, _ = vio.read_video(out)
    frames_in, _ = vio.read_video(video)
    result["output_frames"] = len(frames_out)
    result["psnr_hole_vs_background"] = psnr(frames_out, clip.background, clip.masks)
    result["psnr_outside_hole_input_codec"] = psnr(frames_in, clip.frames, ~clip.masks)
    if args.strip:
      idx = np.linspace(0, len(frames_out) - 1, 4).round().astype(int)
      top = np.concatenate([frames_in[j] for j in idx], 1)
      bot = np.concatenate([frames_out[j] for j in idx], 1)
      strip = np.concatenate([top, bot], 0)[::2, ::2]
      Image.fromarray(np.ascontiguousarray(strip)).save(args.strip, optimize=True)
  import jax
  result.update(jax=jax.__version__, device=str(jax.devices()[0]), cpus=os.cpu_count())
  print(json.dumps(result), flush=True)
  with open(args.json, "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
