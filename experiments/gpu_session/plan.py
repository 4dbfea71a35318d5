"""The training batch of the GPU run's part 4, from what part 1 measured.

  python3 experiments/gpu_session/plan.py RAW_DIR --cap 128 --default 64   # prints: BATCH REASON

Part 1's bf16 train-step row of flowinpaint.bench at 256x256 batch 16 carries the device memory
its compiled step needs (XLA's buffer assignment); part 4 takes the largest power of two, at most
--cap, whose step would need no more than --fraction of the memory JAX may use (env.json's
bytes_limit; else the GPU's total from nvidia-smi, times JAX's default 0.75). Memory grows
about linearly with the batch (activations; parameters and optimiser states are a few tens of
MiB). Without that row or a memory figure: --default.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys


def device_limit_mib(env: dict) -> float | None:
  if env.get("bytes_limit"):
    return env["bytes_limit"] / 2**20
  m = re.search(r"(\d+)\s*MiB", str(env.get("nvidia_smi") or ""))
  return 0.75 * float(m.group(1)) if m else None


def choose_batch(rows: list[dict], env: dict, *, cap: int, default: int,
                 fraction: float = 0.6, floor: int = 8) -> tuple[int, str]:
  """(batch, reason)."""
  row = next((r for r in rows if r.get("kind") == "train" and r.get("dtype") == "bfloat16"
              and r.get("memory_mib")), None)
  limit = device_limit_mib(env)
  if row is None or not limit:
    return default, "default: no bf16 train-step memory figure from part 1"
  per_image = row["memory_mib"] / row["batch"]
  batch = floor
  while batch * 2 <= cap and batch * 2 * per_image <= fraction * limit:
    batch *= 2
  return batch, (f"{per_image:.0f} MiB per image at batch {row['batch']}, "
                 f"{fraction:.0%} of {limit / 1024:.0f} GiB, cap {cap}")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("raw")
  p.add_argument("--cap", type=int, default=128)
  p.add_argument("--default", type=int, default=64)
  p.add_argument("--fraction", type=float, default=0.6)
  args = p.parse_args(argv)
  rows = []
  path = os.path.join(args.raw, "speed_flowinpaint.jsonl")
  if os.path.exists(path):
    with open(path) as f:
      rows = [json.loads(l) for l in f if l.strip().startswith("{")]
  try:
    with open(os.path.join(args.raw, "env.json")) as f:
      env = json.load(f)
  except (OSError, json.JSONDecodeError):
    env = {}
  batch, reason = choose_batch(rows, env, cap=args.cap, default=args.default,
                               fraction=args.fraction)
  print(batch, reason)
  return 0


if __name__ == "__main__":
  sys.exit(main())
