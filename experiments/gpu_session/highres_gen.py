"""Whole-generator DeepFill v2 inference at high resolution: time and device memory (flowinpaint).

  python3 experiments/gpu_session/highres_gen.py --sizes 2048,4096 --dtypes bfloat16 \
      --jsonl highres.jsonl

The paper-width generator (cnum 48, `configs/deepfill_v2.py`'s model: contextual attention as
the TF reference, fusion on) with random weights runs on one size x size image at batch 1 with a
centred square hole of a quarter of the area, in one piece (no crops, no resizing), as the port
is run by port_speed.py --highres. Contextual attention's score matrix has (H/8 * W/8)^2
entries, 4.3e9 at 2048 and 6.9e10 at 4096; it is computed in chunks of foreground positions
(`ca_chunk_size`, chosen so that one chunk's scores hold about --score-elements entries) and the
row says which chunk was used. Per row: compile seconds, the median of --repeats calls, the
device memory the compiled call needs (XLA's buffer assignment) and the process's peak of
allocated device memory (GPU only). Rows are JSON lines, appended as they are measured; a
`{"event": "start"}` line comes before each, so a reader knows which one a kill interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from port_speed import write_row  # noqa: E402  (the kit's one row printer)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def chunk_for(size: int, score_elements: int) -> int | None:
  """Foreground chunk of contextual attention at `size` (None: all at once fits).

  The attention runs at 1/4 of the image, matched at 1/2 of that: fh x fw positions on each
  side. One chunk holds about (chunk + 2 * fh) x (fh * fw) scores (the fusion halo).
  """
  fh = math.ceil(math.ceil(size / 4) / 2)
  n = fh * fh
  if n * n <= score_elements:
    return None
  return max(score_elements // n - 2 * fh, fh)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sizes", default="2048,4096")
  p.add_argument("--dtypes", default="bfloat16")
  p.add_argument("--cnum", type=int, default=48)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--max-seconds", type=float, default=8.0,
                 help="fewer repeats once the timed calls of a size took this long")
  p.add_argument("--score-elements", type=float, default=2**30,
                 help="scores per attention chunk (default 2^30: 2 GiB in bf16)")
  p.add_argument("--jsonl", default=None)
  args = p.parse_args(argv)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from flowinpaint.bench import compiled_memory_mib, device_peak_mib
  from flowinpaint.models.deepfill_v2 import DeepFillV2Generator
  from flowinpaint.train import steps

  device = jax.devices()[0]
  info = {"impl": "flowinpaint", "jax": jax.__version__,
          "device": f"{device.device_kind} ({device.platform})", "cnum": args.cnum}
  failed = 0
  params = None
  for size in (int(s) for s in args.sizes.split(",")):
    for dtype in args.dtypes.split(","):
      chunk = chunk_for(size, int(args.score_elements))
      row = {"size": size, "batch": 1, "dtype": dtype, "workload": f"infer {size}x{size} batch 1",
             "ca_chunk_size": chunk, **info}
      write_row(args.jsonl, {"event": "start", **row})
      gen = DeepFillV2Generator(cnum=args.cnum, ca_chunk_size=chunk, dtype=jnp.dtype(dtype))
      try:
        if params is None:  # Parameters do not depend on the size: made once, at 64 px.
          small = jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 1))
          params = jax.jit(lambda k: gen.init(k, *small, train=False))(jax.random.key(0))
          row["g_params"] = int(sum(x.size for x in jax.tree.leaves(params)))
        rng = np.random.default_rng(0)
        image = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
        mask = np.zeros((1, size, size, 1), np.float32)
        mask[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
        mask = jnp.asarray(mask)
        t0 = time.perf_counter()
        compiled = jax.jit(steps.make_predict_fn(gen)).lower(params, image, mask).compile()
        row["compile_s"] = time.perf_counter() - t0
        row["memory_mib"] = compiled_memory_mib(compiled)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, image, mask))
        row["first_call_s"] = time.perf_counter() - t0
        times, stop = [], time.perf_counter() + args.max_seconds
        for _ in range(args.repeats):
          t0 = time.perf_counter()
          jax.block_until_ready(compiled(params, image, mask))
          times.append(time.perf_counter() - t0)
          if time.perf_counter() > stop:
            break
        row.update(ms=statistics.median(times) * 1e3, ms_min=min(times) * 1e3,
                   iters=len(times), status="ok")
      except Exception as e:  # pylint: disable=broad-except  # Out of memory, say: go on.
        text = f"{type(e).__name__}: {e}"
        row.update(status="out of memory" if "RESOURCE_EXHAUSTED" in text or
                   "out of memory" in text.lower() else "error", error=text[:300])
        failed += row["status"] == "error"
      row["peak_mib"] = device_peak_mib()
      write_row(args.jsonl, row)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
