"""Collects the GPU run's raw results into $OUT: table.md, results.json, logs.tar.gz and PNGs.

  python3 experiments/gpu_session/summarize.py RAW_DIR OUT_DIR

No JAX or torch import: run.sh calls it after every task, so whatever finished is packed if a
later task overruns. Files in OUT_DIR that it did not write (the exported generator) count
towards the run tool's limit of 8 files; PNGs are dropped first when there would be more.
"""

from __future__ import annotations

import glob
import io
import json
import os
import statistics
import sys
import tarfile

MAX_FILES = 8
MAX_LOGS_BYTES = 15 << 20
MAX_PNG_BYTES = 4 << 20
# The project's goals for DeepFill v2 (issue 17): flowinpaint in bf16 against the port.
TARGETS = {"infer": 3.0, "train": 2.5}
VIDEO_TARGET_FPS = 25.0
OWN = ("table.md", "results.json", "logs.tar.gz")


def _jsonl(path: str) -> list[dict]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        line = line.strip()
        if line.startswith("{"):
          try:
            rows.append(json.loads(line))
          except json.JSONDecodeError:
            pass
  return rows


def _json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _f(x, fmt="{:.2f}") -> str:
  if x is None:
    return "-"
  if isinstance(x, str):
    return x
  try:
    return fmt.format(x)
  except (ValueError, TypeError):
    return str(x)


def _table(header: list[str], rows: list[list]) -> str:
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(out)


# --- Part 1 -------------------------------------------------------------------------------------

def speed_rows(raw: str) -> tuple[list[dict], list[dict]]:
  """(flowinpaint rows, port rows), as measured (JSON lines appended row by row)."""
  ours = [r for r in _jsonl(os.path.join(raw, "speed_flowinpaint.jsonl"))]
  port = [r for r in _jsonl(os.path.join(raw, "speed_port.jsonl"))]
  return ours, port


def ratio_rows(ours: list[dict], port: list[dict]) -> list[dict]:
  """One row per (workload, dtype) measured by either side, with the speed-ups."""
  index = {(r["workload"], r["dtype"]): r for r in port if "ms" in r}
  keys = []
  for r in ours + port:
    if "workload" in r and "dtype" in r and (r["workload"], r["dtype"]) not in keys:
      keys.append((r["workload"], r["dtype"]))
  mine = {(r["workload"], r["dtype"]): r for r in ours if "workload" in r}
  out = []
  for workload, dtype in keys:
    a, b = mine.get((workload, dtype), {}), index.get((workload, dtype), {})
    b32 = index.get((workload, "float32"), {})
    row = {"workload": workload, "dtype": dtype, "flowinpaint_ms": a.get("ms"),
           "flowinpaint_img_s": a.get("img_per_s"), "compile_s": a.get("compile_s"),
           "flowinpaint_error": a.get("error"), "port_ms": b.get("ms"),
           "port_img_s": b.get("img_per_s"), "port_error": b.get("error")}
    row["speedup"] = (b["ms"] / a["ms"]) if a.get("ms") and b.get("ms") else None
    row["speedup_vs_port_fp32"] = (b32["ms"] / a["ms"]) if a.get("ms") and b32.get("ms") \
        else None
    kind = workload.split()[0]
    row["target"] = TARGETS.get(kind) if dtype == "bfloat16" else None
    row["met"] = (row["speedup"] >= row["target"]) if row["target"] and row["speedup"] else None
    out.append(row)
  return out


def speed_section(ours: list[dict], port: list[dict]) -> str:
  rows = ratio_rows(ours, port)
  if not rows:
    return ""
  body = []
  for r in rows:
    body.append([
        r["workload"], r["dtype"],
        _f(r["flowinpaint_ms"]) if r["flowinpaint_ms"] else
        ("FAILED" if r["flowinpaint_error"] else "not run"),
        _f(r["flowinpaint_img_s"], "{:.0f}"), _f(r["compile_s"], "{:.0f}"),
        _f(r["port_ms"]) if r["port_ms"] else ("FAILED" if r["port_error"] else "not run"),
        _f(r["port_img_s"], "{:.0f}"),
        f"{r['speedup']:.2f}x" if r["speedup"] else "-",
        f"{r['speedup_vs_port_fp32']:.2f}x" if r["speedup_vs_port_fp32"] and
        r["dtype"] != "float32" else "-",
        "-" if r["target"] is None else
        f"{r['target']:.1f}x: " + ("met" if r["met"] else "NOT met" if r["met"] is False
                                   else "unknown")])
  a = next((r for r in ours if "device" in r), {})
  b = next((r for r in port if "torch" in r), {})
  params = (f"generator {a['g_params'] / 1e6:.2f} M / discriminator {a['d_params'] / 1e6:.2f} M"
            if a.get("g_params") else "")
  port_params = (f"generator {b['g_params'] / 1e6:.2f} M / discriminator "
                 f"{b['d_params'] / 1e6:.2f} M" if b.get("g_params") else "")
  return (
      "## 1. DeepFill v2 speed: flowinpaint vs the PyTorch port, same run, same GPU\n\n"
      f"flowinpaint (`python3 -m flowinpaint.bench`, JAX {a.get('jax', '-')}, {params}) and the "
      f"port (`port_speed.py`, torch {b.get('torch', '-')}, nipponjo/deepfillv2-pytorch "
      f"{str(b.get('port_commit') or '-')[:12]}, {port_params}); random weights, a centred "
      "square hole of 1/4 of the area; median ms per call. fp32 = TF32 allowed on both sides; "
      "bf16 = bfloat16 compute with fp32 parameters (torch: autocast). Speed-up = port ms / "
      "flowinpaint ms in the same dtype; the target (issue 17) is for the bf16 rows.\n\n" +
      _table(["workload", "dtype", "flowinpaint ms", "img/s", "compile s", "port ms",
              "port img/s", "speed-up", "vs port fp32", "target"], body) + "\n")


# --- Part 2 -------------------------------------------------------------------------------------

def highres_rows(raw: str) -> list[dict]:
  """Measured rows of both sides; a size that was started but never reported is 'killed'."""
  out = []
  for name in ("highres_flowinpaint.jsonl", "highres_port.jsonl"):
    rows = _jsonl(os.path.join(raw, name))
    done = {(r["size"], r["dtype"]) for r in rows if "event" not in r}
    first = {(r["size"], r["dtype"]): r["first_call_s"] for r in rows
             if r.get("event") == "first_call"}
    for r in rows:
      key = (r["size"], r["dtype"])
      if r.get("event") == "start":
        if key not in done:
          row = {k: v for k, v in r.items() if k != "event"}
          if key in first:
            row.update(first_call_s=first[key], status="killed at the part's deadline after "
                       f"its first call ({first[key]:.1f} s)")
          else:
            row["status"] = "killed at the part's deadline (first call not finished)"
          out.append(row)
      elif "event" not in r:
        out.append(r)
  return out


def highres_section(rows: list[dict]) -> str:
  if not rows:
    return ""
  body = [[f"{r['size']}x{r['size']}", r.get("dtype"), r.get("impl"), r.get("status", "-"),
           _f(r.get("ms"), "{:.1f}"), _f(r.get("compile_s"), "{:.1f}"),
           _f(r.get("first_call_s"), "{:.1f}"), _f(r.get("memory_mib"), "{:.0f}"),
           _f(r.get("peak_mib"), "{:.0f}"), r.get("ca_chunk_size") or "-"]
          for r in sorted(rows, key=lambda r: (r["size"], r.get("impl", "")))]
  return ("## 2. Whole-generator inference at high resolution (batch 1, hole 1/4 of the area)\n\n"
          "flowinpaint: `highres_gen.py` (contextual attention in chunks of foreground "
          "positions, chunk in the last column); port: `port_speed.py --highres`. Memory: XLA's "
          "buffer assignment for the compiled call; peak: the process's peak of allocated "
          "device memory so far (torch: max_memory_allocated of that size).\n\n" +
          _table(["size", "dtype", "impl", "status", "ms (median)", "compile s",
                  "first call s", "memory MiB", "peak MiB", "attention chunk"], body) + "\n")


# --- Part 3 -------------------------------------------------------------------------------------

def video_section(e2e: dict | None, clip: dict | None) -> str:
  if not e2e:
    return ""
  stages = e2e.get("stages") or {}
  stage_text = ", ".join(
      f"{k} {v['s']:.1f} s" + (f" ({v['frames_per_s']:.0f}/s)" if "frames_per_s" in v else "")
      for k, v in stages.items()) or "-"
  fps = e2e.get("frames_per_s")
  met = "-" if fps is None else ("met" if fps >= VIDEO_TARGET_FPS else "NOT met")
  return (f"## 3. Video removal end to end ({e2e['frames']} frames, {e2e['size']}, synthetic "
          f"clip, hole {_f((clip or {}).get('hole_fraction') or e2e.get('hole_fraction'), '{:.1%}')}"
          " of each frame)\n\n"
          f"`{e2e.get('command', '')}`: mp4 in, mp4 out; wall = the whole process (start-up, "
          "JAX compilation, decoding and H.264 encoding included); tool s = from the first "
          "decoded frame to the last written.\n\n" +
          _table(["frames", "rc", "wall s", "frames/s (wall)", "tool s", "frames/s (tool)",
                  "frames written", "time per stage", "PSNR hole (dB)",
                  f"target {VIDEO_TARGET_FPS:.0f} frames/s"],
                 [[e2e["frames"], e2e["returncode"], _f(e2e["wall_s"], "{:.1f}"), _f(fps),
                   _f(e2e.get("tool_s"), "{:.1f}"), _f(e2e.get("tool_frames_per_s")),
                   _f(e2e.get("frames_written"), "{}"), stage_text,
                   _f(e2e.get("psnr_hole_vs_background")), met]]) + "\n")


# --- Part 4 -------------------------------------------------------------------------------------

def training_summary(raw: str) -> dict | None:
  info = _json(os.path.join(raw, "train.json"))
  if not info:
    return None
  workdir = info.get("workdir", "")
  metrics = _jsonl(os.path.join(workdir, "metrics.jsonl"))
  train = [m for m in metrics if "train/g_loss" in m]
  sps = [m["train/steps_per_sec"] for m in train if m.get("train/steps_per_sec")]
  steps = train[-1]["step"] if train else None
  out = dict(info, reports=len(train), last_step=steps,
             steps_per_sec=statistics.median(sps[1:] or sps) if sps else None,
             last={k[6:]: v for k, v in (train[-1] if train else {}).items()
                   if k.startswith("train/")})
  if out["steps_per_sec"] and info.get("batch"):
    out["images_per_sec"] = out["steps_per_sec"] * info["batch"]
  return out


def eval_rows(raw: str) -> list[dict]:
  rows = []
  for name in ("telea", "patchmatch", "deepfill_v2"):
    r = _json(os.path.join(raw, f"eval_{name}.json"))
    if r:
      rows.append(dict(r, name=name))
  return rows


def training_section(t: dict | None, evals: list[dict], pack_source: str) -> str:
  if not t and not evals:
    return ""
  parts = ["## 4. Short DeepFill v2 training, then `evaluate` on held-out photos\n"]
  if t:
    last = t.get("last") or {}
    parts.append(
        f"`{t.get('command', '')}`\n\nTraining photos: {pack_source or '-'}\n\n" + _table(
            ["batch (why)", "dtype", "steps done", "trainer s (limit)", "steps/s", "images/s",
             "g_loss", "d_loss", "recon", "rc"],
            [[f"{t.get('batch')} ({t.get('batch_reason', '-')})", t.get("dtype"),
              _f(t.get("last_step"), "{}"), f"{_f(t.get('seconds'), '{:.0f}')} "
              f"({_f(t.get('limit_s'), '{}')})", _f(t.get("steps_per_sec")),
              _f(t.get("images_per_sec"), "{:.0f}"), _f(last.get("g_loss"), "{:.4f}"),
              _f(last.get("d_loss"), "{:.4f}"), _f(last.get("recon_loss"), "{:.4f}"),
              t.get("rc")]]) + "\n")
  if evals:
    first = evals[0]
    parts.append(
        f"Held-out: {first.get('num_images')} images of {first.get('images')} (scikit-image's "
        f"grayscale photos, as RGB), {first.get('size')} px, masks {first.get('mask_kind')} "
        f"seed {first.get('mask_seed')}, mean hole {_f(first.get('hole_ratio'), '{:.1%}')}; "
        "`python3 -m flowinpaint.evaluate`.\n\n" + _table(
            ["method", "PSNR", "PSNR hole", "SSIM", "SSIM hole", "L1 hole", "s/image"],
            [[r["name"], _f(r.get("psnr")), _f(r.get("psnr_hole")), _f(r.get("ssim"), "{:.4f}"),
              _f(r.get("ssim_hole"), "{:.4f}"), _f(r.get("l1_hole"), "{:.4f}"),
              _f(r.get("seconds_per_image"), "{:.4f}")] for r in evals]) + "\n")
  return "\n".join(parts)


def eval_grid(raw: str, rows: int = 4):
  """masked input | each method's output | ground truth, for the first images; or None."""
  import numpy as np
  from PIL import Image
  methods = [m for m in ("telea", "patchmatch", "deepfill_v2")
             if glob.glob(os.path.join(raw, "eval_images", m, "*_output.png"))]
  if not methods:
    return None
  base = os.path.join(raw, "eval_images", methods[-1])
  lines = []
  for i in range(rows):
    inp, mask = (os.path.join(base, f"{i:04d}_{k}.png") for k in ("input", "mask"))
    if not (os.path.exists(inp) and os.path.exists(mask)):
      break
    x = np.asarray(Image.open(inp).convert("RGB"))
    hole = np.asarray(Image.open(mask).convert("L")) > 127
    cols = [np.where(hole[..., None], 255, x).astype(np.uint8)]
    for m in methods:
      path = os.path.join(raw, "eval_images", m, f"{i:04d}_output.png")
      cols.append(np.asarray(Image.open(path).convert("RGB")) if os.path.exists(path)
                  else np.zeros_like(x))
    cols.append(x)
    lines.append(np.concatenate(cols, axis=1))
  if not lines:
    return None
  return Image.fromarray(np.concatenate(lines, axis=0)), methods


# --- Header, tasks, packing ---------------------------------------------------------------------

def header(env: dict, run: dict) -> str:
  versions = ", ".join(f"{k} {env[k]}" for k in (
      "python", "jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "torch",
      "torch_cuda", "cudnn", "cv2", "skimage", "av", "grain", "clu") if env.get(k))
  return (f"# GPU run (experiments/gpu_session/run.sh)\n\n"
          f"Date: {run.get('date', '-')}. Command: `{run.get('command', '-')}` "
          f"(budget {run.get('budget_s', '-')} s, SMOKE={run.get('smoke', '-')}).\n\n"
          f"Machine: {env.get('nvidia_smi') or env.get('device_kind', '-')}; JAX devices "
          f"{env.get('devices', '-')}; {env.get('cpus', '-')} CPUs.\n\n"
          f"Versions: {versions}.\n")


def tasks_section(rows: list[dict]) -> str:
  if not rows:
    return ""
  body = [[r["task"], r.get("part", "-"), "skipped" if r.get("skipped") else r.get("rc"),
           _f(r.get("seconds"), "{:.1f}"), r.get("limit_s", "-"),
           "yes" if r.get("timed_out") else "", r.get("note", "")] for r in rows]
  return "## Tasks (wall seconds; limits from the per-part deadlines)\n\n" + _table(
      ["task", "part", "rc", "seconds", "limit s", "timed out", "note"], body) + "\n"


def _png_bytes(image, max_bytes: int) -> bytes:
  """PNG bytes of a PIL image, halved until they fit."""
  from PIL import Image
  while True:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    if len(data) <= max_bytes or min(image.size) <= 64:
      return data
    image = image.resize((image.size[0] // 2, image.size[1] // 2), Image.LANCZOS)


def pack(raw: str, out: str, pngs: list[tuple[str, object]]) -> list[str]:
  """logs.tar.gz and the PNGs, keeping OUT at MAX_FILES files or fewer. Returns PNGs written."""
  os.makedirs(out, exist_ok=True)
  for old in glob.glob(os.path.join(out, "*.png")):
    os.remove(old)
  tmp = os.path.join(out, "logs.tar.gz.tmp")
  total = 0
  with tarfile.open(tmp, "w:gz") as tar:
    for path in sorted(glob.glob(os.path.join(raw, "**", "*"), recursive=True)):
      if not os.path.isfile(path) or path.endswith((".png", ".npy", ".mp4", ".jpg")):
        continue
      size = os.path.getsize(path)
      if size > (4 << 20) or total + size > MAX_LOGS_BYTES:
        continue
      tar.add(path, arcname=os.path.relpath(path, raw))
      total += size
    train = _json(os.path.join(raw, "train.json")) or {}
    workdir = train.get("workdir")
    for name in ("metrics.jsonl", "config.json", "parameters.txt"):
      if workdir and os.path.exists(os.path.join(workdir, name)):
        tar.add(os.path.join(workdir, name), arcname=f"train_run/{name}")
  os.replace(tmp, os.path.join(out, "logs.tar.gz"))
  others = [n for n in os.listdir(out) if n not in OWN and not n.endswith((".png", ".tmp"))]
  room = MAX_FILES - len(OWN) - len(others)
  written = []
  for name, image in pngs[:max(room, 0)]:
    with open(os.path.join(out, name), "wb") as f:
      f.write(_png_bytes(image, MAX_PNG_BYTES))
    written.append(name)
  return written


def main(argv=None) -> int:
  raw, out = (argv or sys.argv[1:])[:2]
  env = _json(os.path.join(raw, "env.json")) or {}
  run = _json(os.path.join(raw, "run.json")) or {}
  tasks = _jsonl(os.path.join(raw, "tasks.jsonl"))
  ours, port = speed_rows(raw)
  highres = highres_rows(raw)
  e2e = _json(os.path.join(raw, "video_e2e.json"))
  clip = _json(os.path.join(raw, "clip.json"))
  training = training_summary(raw)
  evals = eval_rows(raw)
  pack_source = run.get("pack_source", "")
  sections = [header(env, run), speed_section(ours, port), highres_section(highres),
              video_section(e2e, clip), training_section(training, evals, pack_source),
              tasks_section(tasks)]
  table = "\n".join(s for s in sections if s)
  os.makedirs(out, exist_ok=True)
  pngs = []
  grid = None
  try:
    grid = eval_grid(raw)
  except Exception as e:  # pylint: disable=broad-except  # A picture must not cost the table.
    table += f"\n(eval grid failed: {type(e).__name__}: {e})\n"
  if grid:
    pngs.append(("eval_grid.png", grid[0]))
    table += ("\n`eval_grid.png`: masked input | " + " | ".join(grid[1]) +
              " | ground truth (first held-out images).\n")
  strip = os.path.join(raw, "video_strip.png")
  if os.path.exists(strip):
    from PIL import Image
    pngs.append(("video_strip.png", Image.open(strip)))
    table += "\n`video_strip.png`: four frames, input (top) and output (bottom), half size.\n"
  results = {"env": env, "run": run, "tasks": tasks, "speed": ratio_rows(ours, port),
             "speed_flowinpaint": ours, "speed_port": port, "highres": highres,
             "video_e2e": e2e, "clip": clip, "training": training, "eval": evals}
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)
  written = pack(raw, out, pngs)
  files = sorted(os.listdir(out))
  table += f"\nFiles returned: {', '.join(files + ['table.md'] if 'table.md' not in files else files)}\n"
  dropped = [n for n, _ in pngs if n not in written]
  if dropped:
    table += f"(left out to stay within {MAX_FILES} files: {', '.join(dropped)})\n"
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
