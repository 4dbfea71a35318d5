r"""Where flowinpaint's DeepFill v2 train step spends its time on the CPU: one traced step.

  python experiments/trainer_speed/profile_step.py --trace-dir /tmp/step_trace

Compiles the step as `bench.py` does (`flowinpaint.bench.prepare`, 256x256, batch 2, fp32),
runs it twice, then traces one step with `jax.profiler` and sums the XLA:CPU thunks' wall time
by kind (HLO op name without its number), grouped as in the README's profile table. Thunks run
one after another (each uses the thread pool inside), so the sum is close to the step's time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (group, regex over the thunk name without its trailing number); first match wins.
GROUPS = [
    ("conv forward + stride-1 input grads (YNNPACK convs)", r"^ynn_fusion"),
    ("strided-conv input grads (XLA convs)", r"^convolution|^conv_general_dilated"),
    ("kernel grad: im2col matmuls", r"^dot_general$|^dot$|copy_dot"),
    ("kernel grad: patch slices, stack, accumulate, loop",
     r"slice_bitcast|^stack$|^wrapped_add$|dynamic-slice|^copy$|^while$|^end: "),
    ("elementwise: ELU, sigmoid, gating (fwd + bwd), Adam",
     r"exponential|compare_select|add_divide|^wrapped_multiply$|multiply_multiply|"
     r"multiply_select|select_add|divide"),
    ("pads, concatenations, transposes", r"pad|concatenate|transpose|reverse"),
]
_SKIP = ("ThunkExecutor", "$", "SlinkyThreadPool", "PjitFunction")


def group_trace(path: str) -> tuple[dict, dict, float]:
  """Sums thunk durations (ms) of a perfetto trace by GROUPS; returns (ms, counts, total)."""
  trace = json.load(gzip.open(path))
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  ms, counts, total = collections.defaultdict(float), collections.Counter(), 0.0
  for e in events:
    if e.get("ph") != "X" or e["name"].startswith(_SKIP):
      continue
    name, dur = re.sub(r"\.\d+$", "", e["name"]), e["dur"] / 1e3
    total += dur
    group = next((g for g, rx in GROUPS if re.search(rx, name)), "other")
    ms[group] += dur
    counts[group] += 1
  return ms, counts, total


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--trace-dir", required=True, help="where jax.profiler writes the trace")
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--batch", type=int, default=2)
  args = p.parse_args(argv)
  if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
  import jax

  from flowinpaint import bench
  fn, _ = bench.prepare(bench.load_config("deepfill_v2"), "train", args.size, args.batch,
                        "float32")
  for _ in range(2):
    jax.block_until_ready(fn())
  with jax.profiler.trace(args.trace_dir, create_perfetto_trace=True):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    wall = time.perf_counter() - t0
  path = sorted(glob.glob(os.path.join(args.trace_dir, "plugins", "profile", "*",
                                       "perfetto_trace.json.gz")))[-1]
  ms, counts, total = group_trace(path)
  print(f"traced step {wall * 1e3:,.0f} ms wall, thunks {total:,.0f} ms, load "
        f"{os.getloadavg()[0]:.1f}")
  print("| part | thunks | ms | share |\n|---|---|---|---|")
  for g, v in sorted(ms.items(), key=lambda kv: -kv[1]):
    print(f"| {g} | {counts[g]} | {v:,.0f} | {100 * v / total:.0f}% |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
