"""Collects a step's raw results into $OUT/<step>/: table.md, results.json, logs.tar.gz,
images.tar (every PNG, those over 1 MiB halved) and up to 4 PNGs as they are (over 3 MiB
halved); the run tool returns at most 8 files. No JAX import: it runs
after every task, so whatever finished is already packed if a later task overruns.

  python3 experiments/gpu_session/summarize.py STEP RAW_DIR OUT_DIR
"""

import glob
import io
import json
import os
import re
import statistics
import sys
import tarfile

# PyTorch reference port of DeepFill v2 on the same H100 (../shared/gpu/README.md).
TORCH_REF = {
    ("infer 256x256 batch 16", "float32"): (31.0, 517.0),
    ("infer 256x256 batch 16", "bfloat16"): (27.6, 580.0),  # fp16 autocast
    ("infer 512x512 batch 1", "float32"): (12.7, 1 / 0.0127),
    ("infer 1024x1024 batch 1", "float32"): (55.5, 1 / 0.0555),
    ("infer 1024x1024 batch 1", "bfloat16"): (48.1, 1 / 0.0481),  # fp16 autocast
    ("infer 512x512 batch 8", "float32"): (84.5, 95.0),
    ("train 256x256 batch 16", "float32"): (88.8, 180.0),
    ("train 256x256 batch 32", "float32"): (170.0, 188.0),
}
MAX_DIRECT_PNGS = 4
MAX_PNG_BYTES = 3 << 20
MAX_TAR_BYTES = 15 << 20
MAX_TAR_PNG_BYTES = 1 << 20  # PNGs in images.tar larger than this are halved (repo-friendly).


def _jsonl(path):
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


def _json(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _f(x, fmt="{:.2f}"):
  if x is None:
    return "-"
  if isinstance(x, str):
    return x
  try:
    return fmt.format(x)
  except (ValueError, TypeError):
    return str(x)


def _table(header, rows):
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(out)


def bench_rows(raw):
  """flowinpaint.bench JSON files (or, if a run was cut short, the rows its log printed)."""
  out = []
  for path in sorted(glob.glob(os.path.join(raw, "bench_*.json"))):
    data = _json(path)
    name = os.path.basename(path)[len("bench_"):-len(".json")]
    if data:
      for r in data["rows"]:
        out.append(dict(r, source=name, header=data.get("header")))
  have = {p[len("bench_"):-len(".json")] for p in map(os.path.basename,
                                                        glob.glob(os.path.join(raw, "bench_*.json")))}
  for log in sorted(glob.glob(os.path.join(raw, "logs", "bench_*.log"))):
    name = os.path.basename(log)[len("bench_"):-len(".log")]
    if name in have:
      continue
    header = None
    with open(log) as f:
      for line in f:
        if " | JAX " in line:
          header = line.strip()
        # flowinpaint.bench's row: config, workload, dtype, ms/iter, img/s, compile s, G params.
        m = re.match(r"^\S+\s+((?:infer|train) \d+x\d+ batch \d+)\s+(\w+)\s+([\d.]+)\s+"
                     r"([\d.]+)\s+([\d.]+)\s", line)
        if m:
          out.append({"workload": m.group(1), "dtype": m.group(2), "ms": float(m.group(3)),
                      "img_per_s": float(m.group(4)), "compile_s": float(m.group(5)),
                      "source": name + " (log)", "header": header})
  return out


def bench_section(rows):
  if not rows:
    return ""
  body = []
  for r in rows:
    ref32 = TORCH_REF.get((r["workload"], "float32"))
    ref16 = TORCH_REF.get((r["workload"], "bfloat16"))
    body.append([r["workload"], r["dtype"], _f(r["ms"]), _f(r["img_per_s"], "{:.1f}"),
                 _f(r.get("compile_s"), "{:.1f}"),
                 f"{ref32[0]:.1f}" if ref32 else "-",
                 f"{ref32[0] / r['ms']:.2f}x" if ref32 else "-",
                 f"{ref16[0]:.1f}" if ref16 else "-",
                 f"{ref16[0] / r['ms']:.2f}x" if ref16 else "-"])
  header = rows[0].get("header") or ""
  return (f"## DeepFill v2 benchmark (flowinpaint.bench) - {header}\n\n" + _table(
      ["workload", "dtype", "ms/iter", "img/s", "compile s", "PyTorch fp32 ms (H100)",
       "speed-up vs fp32 ref", "PyTorch fp16-autocast ms", "speed-up vs fp16 ref"], body) +
      "\n\nIssue 2 target: fp32 row >= 1.0x and bf16 row >= 2.0x the PyTorch reference "
      "(../shared/gpu/README.md: 517 img/s inference 256 b16, 180 img/s train step).\n")


def speed_section(rows):
  if not rows:
    return ""
  body = []
  for r in rows:
    if "error" in r:
      body.append([r.get("config"), r.get("workload"), r.get("dtype"), "FAILED", "", "", "",
                   r["error"][:120]])
      continue
    body.append([r["model"], r["workload"], r["dtype"], _f(r["ms"]), _f(r["img_per_s"], "{:.1f}"),
                 _f(r["compile_s"], "{:.1f}"),
                 f"{r['g_params'] / 1e6:.2f} M / {r['d_params'] / 1e6:.2f} M",
                 f"d_steps {r['d_steps']}" if r.get("d_steps") else ""])
  dev = next((r.get("device") for r in rows if "device" in r), "")
  jax = next((r.get("jax") for r in rows if "jax" in r), "")
  return (f"## Speed rows, each model with its own config ({dev}, JAX {jax})\n\n" + _table(
      ["model", "workload", "dtype", "ms", "img/s", "compile s", "G / D params", "note"], body) +
      "\n")


def eval_section(rows):
  if not rows:
    return ""
  body = []
  for r in rows:
    if "error" in r:
      body.append([r["name"], "-", "FAILED: " + r["error"][:100], "", "", "", "", "", ""])
      continue
    body.append([r["name"], r.get("model"), str(r.get("checkpoint_step")), _f(r["psnr"]),
                 _f(r["psnr_hole"]), _f(r["ssim"], "{:.4f}"), _f(r["ssim_hole"], "{:.4f}"),
                 _f(r["l1_hole"], "{:.4f}"), _f(r["seconds_per_image"], "{:.4f}")])
  first = next((r for r in rows if "error" not in r), {})
  return (f"## Held-out evaluation ({first.get('num')} images of {first.get('images')}, "
          f"{first.get('size')}px, masks {first.get('mask_kind')} seed {first.get('mask_seed')}, "
          f"mean hole {_f(first.get('hole_ratio'), '{:.1%}')})\n\n" + _table(
              ["name", "model", "step", "PSNR", "PSNR hole", "SSIM", "SSIM hole", "L1 hole",
               "s/image"], body) + "\n")


def training_summaries(raw):
  out = []
  path = os.path.join(raw, "trainings.txt")
  if not os.path.exists(path):
    return out
  with open(path) as f:
    entries = [line.strip().split("\t") for line in f if line.strip()]
  for name, workdir in entries:
    stages_file = os.path.join(workdir, "stages.json")
    stage_dirs = [workdir]
    if os.path.exists(stages_file):
      listing = _json(stages_file) or {}
      order = listing.get("order") or listing.get("stages") or []
      if isinstance(order, dict):
        order = list(order)
      stage_dirs = [os.path.join(workdir, s) for s in order] or sorted(
          d for d in glob.glob(os.path.join(workdir, "*")) if os.path.isdir(d))
    for d in stage_dirs:
      label = name if d == workdir else f"{name}/{os.path.basename(d)}"
      metrics = _jsonl(os.path.join(d, "metrics.jsonl"))
      train = [m for m in metrics if "train/g_loss" in m]
      evals = [m for m in metrics if any(k.startswith("eval/") for k in m)]
      sps = [m["train/steps_per_sec"] for m in train if m.get("train/steps_per_sec")]
      config = _json(os.path.join(d, "config.json")) or {}
      samples = sorted(glob.glob(os.path.join(d, "samples", "*.png")))
      if not metrics and not config:
        out.append({"name": label, "workdir": d, "missing": True})
        continue
      out.append({
          "name": label, "workdir": d, "model": (config.get("model") or {}).get("name"),
          "batch_size": config.get("batch_size"), "image_size": config.get("image_size"),
          "dtype": config.get("dtype"), "num_train_steps": config.get("num_train_steps"),
          "last_step": train[-1]["step"] if train else None,
          "steps_per_sec_median": statistics.median(sps[1:] or sps) if sps else None,
          "last_train": {k[6:]: v for k, v in (train[-1] if train else {}).items()
                         if k.startswith("train/") and not k.endswith(("eta_sec",))},
          "last_eval": evals[-1] if evals else None,
          "samples": samples[-1] if samples else None,
      })
  return out


def training_section(items):
  if not items:
    return ""
  body = []
  for t in items:
    if t.get("missing"):
      body.append([t["name"], "-", "no run / no output", "", "", "", "", "", ""])
      continue
    ev = t["last_eval"] or {}
    lt = t["last_train"]
    body.append([t["name"], t["model"], f"{t['last_step']}/{t['num_train_steps']}",
                 f"{t['batch_size']} x {t['image_size']}px {t['dtype']}",
                 _f(t["steps_per_sec_median"]), _f(lt.get("g_loss"), "{:.4f}"),
                 _f(lt.get("d_loss"), "{:.4f}"), _f(lt.get("recon_loss"), "{:.4f}"),
                 f"step {ev.get('step')}: PSNR {_f(ev.get('eval/psnr'))}, hole "
                 f"{_f(ev.get('eval/psnr_hole'))}" if ev.get("eval/psnr") is not None else
                 (f"step {ev.get('step')}: EPE {_f(ev.get('eval/epe'), '{:.3f}')}, hole "
                  f"{_f(ev.get('eval/epe_hole'), '{:.3f}')}" if ev else "-")])
  return ("## Trainings (trainer's own logs; steps/s is the median of the reports; trainings run "
          "side by side share the GPU)\n\n" + _table(
              ["run", "model", "steps done", "batch", "steps/s", "g_loss", "d_loss", "recon",
               "trainer eval (last)"], body) + "\n")


def video_section(raw):
  parts = []
  rows = []
  for path in sorted(glob.glob(os.path.join(raw, "video_bench_*.jsonl"))):
    for r in _jsonl(path):
      st = r.get("stage_s_per_frame", {})
      total = sum(st.values()) if st else None
      meth = r.get("methods", {})
      fg = meth.get("flow-guided", {})
      rows.append([r["size"], f"{r['clips']} x {r['frames']}", r.get("device"),
                   " / ".join(f"{k} {v:.3f}" for k, v in st.items()),
                   _f(fg.get("s_per_frame"), "{:.3f}"), _f(total, "{:.3f}"),
                   _f(fg.get("psnr")), _f(fg.get("ssim"), "{:.3f}"),
                   _f(meth.get("telea", {}).get("psnr"))])
  if rows:
    parts.append("## Video removal bench (experiments/video_removal/bench.py)\n\n" + _table(
        ["size", "clips x frames", "device", "stage s/frame", "flow-guided s/frame (end to end, "
         "in memory)", "sum of stages", "PSNR hole", "SSIM hole", "Telea PSNR"], rows) + "\n")
  e2e = _json(os.path.join(raw, "video_e2e.json"))
  if e2e:
    parts.append(
        f"## {e2e['frames']}-frame {e2e['size']} clip through `python -m flowinpaint.remove` "
        "(mp4 in, mp4 out; wall = the whole process)\n\n" + _table(
            ["frames", "size", "wall s (process)", "tool s", "frames/s", "rc", "PSNR hole vs "
             "background", "target"],
            [[e2e["frames"], e2e["size"], _f(e2e["wall_s"], "{:.1f}"),
              _f(e2e.get("tool_reported_s"), "{:.1f}"), _f(e2e["frames_per_s"]),
              e2e["returncode"], _f(e2e.get("psnr_hole_vs_background")), "< 300 s"]]) + "\n")
  return "\n".join(parts)


def highres_section(raw):
  rows = _jsonl(os.path.join(raw, "highres.jsonl"))
  if not rows:
    return ""
  body = [[r["inpainter"], r["strategy"], r["ran"], " / ".join(map(str, r["seconds"])),
           r["peak_rss_mib"], r.get("backend"), len(r.get("compiled_shapes", []))] for r in rows]
  return ("## High resolution (experiments/highres/bench.py, 4000x3000)\n\n" + _table(
      ["inpainter", "strategy", "ran", "seconds (1st incl. compile / 2nd)", "peak RSS MiB",
       "backend", "compiled shapes"], body) + "\n")


def rtv_section(raw):
  rows = []
  for log in sorted(glob.glob(os.path.join(raw, "logs", "rtv*.log"))):
    rows += _jsonl(log)
  if not rows:
    return ""
  body = [[f"{r['size']}x{r['size']}", r["batch"], r["device"], _f(r["images_per_s"]),
           _f(r["masked_images_per_s"]), _f(r["seconds_per_batch"], "{:.4f}")] for r in rows]
  return ("## RTV (experiments/rtv/bench.py)\n\n" + _table(
      ["size", "batch", "device", "images/s plain", "images/s mask-aware", "s/batch"], body) + "\n")


def flow_section(raw):
  data = _json(os.path.join(raw, "flow_results.json"))
  if not data:
    return ""
  parts = [f"## Flow (experiments/flow/bench.py; device {data.get('device')}; the columns named "
           "'_cpu' by that script are measured on this device)\n"]
  parts.append(_table(["size", "method", "EPE", "pairs/s"],
                      [[r["size"], r["method"], _f(r.get("epe"), "{:.3f}"),
                        _f(r.get("pairs_per_s_cpu"), "{:.1f}")] for r in data.get("flow", [])]))
  parts.append("\n" + _table(["size", "method", "EPE in hole"],
                             [[r["size"], r["method"], _f(r["epe_hole"], "{:.3f}")]
                              for r in data.get("completion", [])]))
  parts.append("\n" + _table(["flow + completion", "PSNR hole", "MAE hole", "frames/s"],
                             [[r["method"], _f(r["psnr_hole"]), _f(r["mae_hole"]),
                               _f(r["frames_per_s_cpu"], "{:.1f}")]
                              for r in data.get("removal", [])]))
  return "\n".join(parts) + "\n"


def tasks_section(rows):
  if not rows:
    return ""
  body = [[r["task"], "skipped" if r.get("skipped") else r.get("rc"),
           _f(r.get("seconds"), "{:.1f}"), r.get("limit_s", "-"),
           "yes" if r.get("timed_out") else ""] for r in rows]
  return "## Tasks\n\n" + _table(["task", "rc", "seconds", "limit s", "timed out"], body) + "\n"


def _png_bytes(path, max_bytes):
  """The PNG as it is, or halved until it fits."""
  data = open(path, "rb").read()
  if len(data) <= max_bytes:
    return data
  from PIL import Image
  im = Image.open(path)
  while len(data) > max_bytes and min(im.size) > 64:
    im = im.resize((im.size[0] // 2, im.size[1] // 2), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
  return data


def pack(step, raw, out, trainings):
  os.makedirs(out, exist_ok=True)
  # StructureFlow's grid first (issue 5's picture), then the step's images in name order.
  images = sorted(glob.glob(os.path.join(raw, "images", "*.png")),
                  key=lambda p: ("structure_flow" not in os.path.basename(p), p))
  for t in trainings:  # The trainer's latest sample grid of each run.
    if t.get("samples"):
      images.append(t["samples"])
  names = []
  for path in images:
    name = os.path.basename(path)
    if path.startswith(os.path.join(raw, "images")):
      names.append((path, name))
    else:
      names.append((path, "trainer_" + t_safe(path)))
  # Up to 4 PNGs directly (the step's images/ in name order first), all in images.tar.
  for old in glob.glob(os.path.join(out, "*.png")):
    os.remove(old)
  for path, name in names[:MAX_DIRECT_PNGS]:
    with open(os.path.join(out, name), "wb") as f:
      f.write(_png_bytes(path, MAX_PNG_BYTES))
  total = 0
  tmp = os.path.join(out, "images.tar.tmp")
  with tarfile.open(tmp, "w") as tar:
    for path, name in names:
      data = _png_bytes(path, min(MAX_TAR_PNG_BYTES, max(MAX_TAR_BYTES - total, 1)))
      if total + len(data) > MAX_TAR_BYTES:
        continue
      info = tarfile.TarInfo(f"{step}/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
      total += len(data)
  os.replace(tmp, os.path.join(out, "images.tar"))
  tmp = os.path.join(out, "logs.tar.gz.tmp")
  with tarfile.open(tmp, "w:gz") as tar:
    for path in sorted(glob.glob(os.path.join(raw, "**", "*"), recursive=True)):
      if os.path.isfile(path) and not path.endswith(".png") and os.path.getsize(path) < (4 << 20):
        tar.add(path, arcname=f"{step}/{os.path.relpath(path, raw)}")
    for t in trainings:  # The runs' own records (not their checkpoints).
      if t.get("missing"):
        continue
      for n in ("metrics.jsonl", "config.json", "eval_metrics.json"):
        p = os.path.join(t["workdir"], n)
        if os.path.exists(p):
          tar.add(p, arcname=f"{step}/runs/{t['name']}/{n}")
  os.replace(tmp, os.path.join(out, "logs.tar.gz"))


def t_safe(path):
  parts = path.split(os.sep)
  # .../<run>/[<stage>/]samples/step_0000300.png -> run[_stage]_step_0000300.png
  i = parts.index("samples") if "samples" in parts else len(parts) - 1
  return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts[max(0, i - 2):i]) + "_" + parts[-1])


def main():
  step, raw, out = sys.argv[1:4]
  tasks = _jsonl(os.path.join(raw, "tasks.jsonl"))
  bench = bench_rows(raw)
  speed = []
  for path in sorted(glob.glob(os.path.join(raw, "speed_*.jsonl"))):
    speed += _jsonl(path)
  evals = []
  for path in sorted(glob.glob(os.path.join(raw, "eval*.jsonl"))):
    evals += _jsonl(path)
  trainings = training_summaries(raw)
  env = _json(os.path.join(raw, "env.json")) or {}
  sections = [f"# {step}\n\nDevice: {env.get('device_kind')} ({env.get('nvidia_smi')}); "
              f"JAX {env.get('jax')}, jaxlib {env.get('jaxlib')}, flax {env.get('flax')}, "
              f"Python {env.get('python')}, {env.get('cpus')} CPUs\n",
              bench_section(bench), speed_section(speed), training_section(trainings),
              eval_section(evals), video_section(raw), highres_section(raw), rtv_section(raw),
              flow_section(raw), tasks_section(tasks)]
  table = "\n".join(s for s in sections if s)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(table)
  results = {"step": step, "env": env, "tasks": tasks, "bench": bench, "speed": speed,
             "trainings": trainings, "eval": evals,
             "video_bench": [r for p in sorted(glob.glob(os.path.join(raw, "video_bench_*.jsonl")))
                             for r in _jsonl(p)],
             "video_e2e": _json(os.path.join(raw, "video_e2e.json")),
             "highres": _jsonl(os.path.join(raw, "highres.jsonl")),
             "rtv": [r for p in sorted(glob.glob(os.path.join(raw, "logs", "rtv*.log")))
                     for r in _jsonl(p)],
             "flow": _json(os.path.join(raw, "flow_results.json"))}
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)
  pack(step, raw, out, trainings)
  print(table)


if __name__ == "__main__":
  main()
