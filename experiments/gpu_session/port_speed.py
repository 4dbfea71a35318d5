"""Speed of the PyTorch port of DeepFill v2 (nipponjo/deepfillv2-pytorch), built from a checkout.

  python3 experiments/gpu_session/port_speed.py --port .peer/deepfillv2-pytorch \
      --workloads infer:256:16,train:256:16,infer:512:1 --dtypes bfloat16,float32 \
      --iters 30 --warmup 5 --jsonl rows.jsonl
  python3 experiments/gpu_session/port_speed.py --port .peer/deepfillv2-pytorch \
      --highres 4096,2048 --dtypes bfloat16 --jsonl highres.jsonl

The port's own modules are imported from the checkout at run time (never copied here): the
generator of its `model/networks.py` (the one its train.py trains; 4.05 M parameters at cnum 48)
and that file's 6-layer SN-PatchGAN `Discriminator(cnum_in=4, cnum=64)` (5.95 M). What is
timed, with random weights and inputs and a centred square hole of a quarter of the area, as
flowinpaint.bench does for the Flax models:

* infer: the generator's forward pass and the composite, under `torch.inference_mode()`;
* train: one step as the port's train.py takes it: the discriminator on real and completed
  images (hinge loss, Adam), then the generator (L1 of both stages + the hinge generator loss,
  Adam); lr 1e-4, betas (0.5, 0.999).

fp32 runs with TF32 allowed (cuDNN convolutions and matmuls) and cudnn.benchmark on; bfloat16 is
`torch.autocast(dtype=torch.bfloat16)` over fp32 weights. Each row: the first call (cuDNN
autotuning) timed on its own, --warmup untimed calls, then the median of --iters synchronised
calls. `--highres` times whole-generator inference at batch 1 at each size instead, with the
peak of allocated device memory; a size that runs out of memory gets a row saying so. Every row
is one JSON line, appended as soon as it is known; a `{"event": "start"}` line before each
high-resolution size and a `{"event": "first_call"}` line after its first call tell a reader
how far it got if the process was killed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def write_row(path: str | None, row: dict) -> None:
  """Appends the row to `path`; prints one short line (the call returns only its output's end)."""
  what = row.get("event") or row.get("status") or ("ok" if "ms" in row else row.get("error"))
  print(f"{row.get('impl', '')} {row.get('workload', row.get('size'))} {row.get('dtype')}: {what}"
        + (f", {row['ms']:.2f} ms" if "ms" in row else "")
        + (f", first call {row['first_call_s']:.1f} s" if "first_call_s" in row else "")
        + (f", peak {row['peak_mib']:.0f} MiB" if row.get("peak_mib") else ""), flush=True)
  if path:
    with open(path, "a") as f:
      f.write(json.dumps(row) + "\n")


def _commit(port: str) -> str | None:
  """The checkout's commit: its COMMIT file (prepare.sh writes one), else git."""
  path = os.path.join(port, "COMMIT")
  if os.path.exists(path):
    return open(path).read().strip()
  try:
    return subprocess.run(["git", "-C", port, "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=10).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None


class Port:
  """The port's generator and discriminator on one device, with its inputs."""

  def __init__(self, port_dir: str, cnum: int, d_cnum: int, device):
    import torch
    sys.path.insert(0, os.path.abspath(port_dir))
    from model.networks import Discriminator, Generator  # The port's code, at run time.
    self.torch = torch
    self.device = device
    self._make = lambda: (Generator(cnum_in=5, cnum_out=3, cnum=cnum, return_flow=False),
                          Discriminator(cnum_in=4, cnum=d_cnum))
    self.build()
    count = lambda m: sum(p.numel() for p in m.parameters())
    self.g_params, self.d_params = count(self.g), count(self.d)

  def build(self) -> None:
    """Fresh networks for each row: the port's spectral norm keeps its power-iteration vector
    in the dtype of the last call (bf16 after an autocast step), which a later fp32 step
    cannot multiply with its fp32 weights."""
    self.torch.manual_seed(0)
    self.g, self.d = (m.to(self.device) for m in self._make())

  def inputs(self, size: int, batch: int):
    torch = self.torch
    gen = torch.Generator().manual_seed(0)
    image = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(self.device)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    mask = mask.to(self.device)
    ones = torch.ones_like(mask)
    x = torch.cat([image * (1 - mask), ones, ones * mask], dim=1)
    return image, mask, x

  def autocast(self, dtype: str):
    torch = self.torch
    if dtype == "bfloat16":
      return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=self.device.type, enabled=False)

  def infer_fn(self, size: int, batch: int, dtype: str):
    torch = self.torch
    self.build()
    image, mask, x = self.inputs(size, batch)
    self.g.eval()

    def fn():
      with torch.inference_mode(), self.autocast(dtype):
        _, x2 = self.g(x, mask)
        return x2.float() * mask + image * (1 - mask)
    return fn

  def train_fn(self, size: int, batch: int, dtype: str):
    torch = self.torch
    self.build()
    image, mask, x = self.inputs(size, batch)
    self.g.train()
    self.d.train()
    g_opt = torch.optim.Adam(self.g.parameters(), lr=1e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(self.d.parameters(), lr=1e-4, betas=(0.5, 0.999))
    relu = torch.nn.functional.relu

    def fn():
      with self.autocast(dtype):
        x1, x2 = self.g(x, mask)
        complete = x2 * mask + image * (1 - mask)
        # Discriminator: real and completed images (with the mask channel) in one batch.
        both = torch.cat([torch.cat([image, mask], 1), torch.cat([complete.detach(), mask], 1)])
        d_real, d_fake = torch.split(self.d(both), batch)
        d_loss = 0.5 * relu(1 - d_real).mean() + 0.5 * relu(1 + d_fake).mean()
      d_opt.zero_grad(set_to_none=True)
      d_loss.backward()
      d_opt.step()
      with self.autocast(dtype):
        recon = (image - x1).abs().mean() + (image - x2).abs().mean()
        g_loss = -self.d(torch.cat([complete, mask], 1)).mean() + recon
      g_opt.zero_grad(set_to_none=True)
      g_loss.backward()
      g_opt.step()
      return g_loss
    return fn


def _sync(torch, device) -> None:
  if device.type == "cuda":
    torch.cuda.synchronize()


def measure(port: Port, kind: str, size: int, batch: int, dtype: str, *, iters: int,
            warmup: int, max_seconds: float, on_first=None) -> dict:
  torch = port.torch
  if port.device.type == "cuda":
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
  fn = (port.infer_fn if kind == "infer" else port.train_fn)(size, batch, dtype)
  t0 = time.perf_counter()
  fn()
  _sync(torch, port.device)
  first = time.perf_counter() - t0
  if on_first is not None:  # The first call can take long at high resolution: say it now.
    on_first(first)
  for _ in range(warmup):
    fn()
  _sync(torch, port.device)
  times, deadline = [], time.perf_counter() + max_seconds
  for _ in range(iters):
    t0 = time.perf_counter()
    fn()
    _sync(torch, port.device)
    times.append(time.perf_counter() - t0)
    if time.perf_counter() > deadline and len(times) >= 3:
      break
  median = statistics.median(times)
  peak = (torch.cuda.max_memory_allocated() / 2**20 if port.device.type == "cuda" else None)
  return {"kind": kind, "size": size, "batch": batch, "dtype": dtype,
          "workload": f"{kind} {size}x{size} batch {batch}", "ms": median * 1e3,
          "img_per_s": batch / median, "ms_min": min(times) * 1e3, "iters": len(times),
          "first_call_s": first, "peak_mib": peak}


def _parse_workloads(text: str) -> list[tuple[str, int, int]]:
  out = []
  for item in text.split(","):
    kind, size, batch = item.split(":")
    if kind not in ("infer", "train"):
      raise SystemExit(f"port_speed: workload kind {kind!r} must be infer or train")
    out.append((kind, int(size), int(batch)))
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--port", required=True, help="checkout of nipponjo/deepfillv2-pytorch")
  p.add_argument("--workloads", default="infer:256:16,train:256:16,infer:512:1")
  p.add_argument("--highres", default=None,
                 help="comma-separated sizes: whole-generator inference at batch 1 instead")
  p.add_argument("--dtypes", default="bfloat16,float32")
  p.add_argument("--iters", type=int, default=30)
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--max-seconds", type=float, default=5.0,
                 help="stop timing a row after this long (at least 3 calls)")
  p.add_argument("--cnum", type=int, default=48, help="generator width (the port's is 48)")
  p.add_argument("--d-cnum", type=int, default=64, help="discriminator width (the port's: 64)")
  p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
  p.add_argument("--jsonl", default=None, help="append each row here")
  args = p.parse_args(argv)
  if not os.path.isfile(os.path.join(args.port, "model", "networks.py")):
    raise SystemExit(f"port_speed: {args.port} has no model/networks.py (make it with "
                     "experiments/gpu_session/prepare.sh)")
  import torch
  device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
  torch.backends.cudnn.benchmark = True
  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  port = Port(args.port, args.cnum, args.d_cnum, device)
  info = {"impl": "pytorch_port", "torch": torch.__version__,
          "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
          "port_commit": _commit(args.port), "cnum": args.cnum, "g_params": port.g_params,
          "d_params": port.d_params}
  dtypes = args.dtypes.split(",")
  failed = 0
  if args.highres:
    for size in (int(s) for s in args.highres.split(",")):
      for dtype in dtypes:
        write_row(args.jsonl, {"event": "start", "size": size, "dtype": dtype, **info})
        row = {"size": size, "batch": 1, "dtype": dtype, "workload": f"infer {size}x{size} "
               "batch 1", **info}
        first = lambda s, size=size, dtype=dtype: write_row(args.jsonl, {
            "event": "first_call", "size": size, "dtype": dtype, "first_call_s": s, **info})
        try:
          row.update(measure(port, "infer", size, 1, dtype, iters=3, warmup=0,
                             max_seconds=args.max_seconds, on_first=first))
          row["status"] = "ok"
        except torch.cuda.OutOfMemoryError as e:
          row.update(status="out of memory", error=str(e).splitlines()[0][:300])
        except RuntimeError as e:  # cuDNN / allocator failures at these sizes.
          row.update(status="error", error=f"{type(e).__name__}: {e}"[:300])
          failed += 1
        if device.type == "cuda":
          row["peak_mib"] = row.get("peak_mib") or torch.cuda.max_memory_allocated() / 2**20
          torch.cuda.empty_cache()
        write_row(args.jsonl, row)
    return 1 if failed else 0
  for dtype in dtypes:  # Every row of the first dtype first (bf16: what the targets are for).
    for kind, size, batch in _parse_workloads(args.workloads):
      try:
        row = {**info, **measure(port, kind, size, batch, dtype, iters=args.iters,
                                 warmup=args.warmup, max_seconds=args.max_seconds)}
      except RuntimeError as e:  # One failing row (out of memory, say) must not cost the rest.
        row = {**info, "kind": kind, "size": size, "batch": batch, "dtype": dtype,
               "workload": f"{kind} {size}x{size} batch {batch}",
               "error": f"{type(e).__name__}: {e}"[:300]}
        failed += 1
        if device.type == "cuda":
          torch.cuda.empty_cache()
      write_row(args.jsonl, row)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
