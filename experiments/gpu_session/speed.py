"""Speed rows of several models, each with its own config: `python -m flowinpaint.bench`.

  python3 experiments/gpu_session/speed.py --configs deepfill_v2,deepfill_v1,glcic,pconv \
      --workloads infer:256:16,infer:512:1,train:256:16 --dtypes float32,bfloat16 \
      --iters 30 --warmup 3 --jsonl rows.jsonl

Kept for the step scripts: `--configs` is flowinpaint.bench's `--config`; every other option
is passed on as it is (one JSON line per row, appended as soon as it is measured).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from flowinpaint import bench  # noqa: E402

if __name__ == "__main__":
  argv = ["--config" if a == "--configs" else a for a in sys.argv[1:]]
  argv = [("--config=" + a[len("--configs="):]) if a.startswith("--configs=") else a
          for a in argv]
  sys.exit(bench.main(argv))
